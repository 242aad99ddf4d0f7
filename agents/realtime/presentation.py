"""How a call's server events are shown to its client: platform-run tools never as functions.

Clients and frameworks built for OpenAI run every ``function_call`` they see (the Agents
SDK raises "Tool book_table not found" for one it does not have; pipecat answers it).
The agent's own tools are run by Koe, so the client is shown them in one of two ways
(the agent's ``tool_calls_shown``):

- ``hidden`` (the default): not at all. The client sees the response that asked for
  the tool (without the call in its output) and then what the agent says. Every client
  copes: Pipecat's typed events, for one, know only messages and functions, and its
  receive loop dies on an item of any other type.
- ``hosted``: the way OpenAI shows the tools it runs itself, hosted MCP tools:
  ``mcp_call`` items and the ``response.mcp_call_arguments.*`` / ``response.mcp_call.*``
  events, so a client can show "booking a table..." (the OpenAI SDKs, the Agents SDK
  and Koe's own console know them).

The model upstream still sees functions, and the call's tracker still reads the original
events; only what the client receives is rewritten. Koe's own answers to those calls
(the ``function_call_output`` items it adds) are never shown: the client never saw the
call id.

Plain Python over parsed events, so it can be tested with lists of events.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agents.realtime import events
from foundation.ids import random_token


def _event_id() -> str:
    return "event_" + random_token(20)


SERVER_LABEL = "koe"
ITEM_EVENTS = frozenset(
    {
        events.OUTPUT_ITEM_ADDED,
        events.OUTPUT_ITEM_DONE,
        events.ITEM_ADDED,
        events.ITEM_DONE,
        "conversation.item.retrieved",
    }
)
ARGUMENT_EVENTS = {
    "response.function_call_arguments.delta": "response.mcp_call_arguments.delta",
    events.FUNCTION_CALL_ARGUMENTS_DONE: "response.mcp_call_arguments.done",
}


@dataclass
class ShownCall:
    call_id: str
    output_index: int
    name: str
    arguments: str
    previous_item_id: str | None = None  # where it stands in the conversation


@dataclass
class ServerToolPresenter:
    server_tools: frozenset[str]
    hosted: bool = False  # show the calls as mcp_call items; else hide them
    # Platform-run calls the client was shown: item id -> the call as shown.
    _calls: dict[str, ShownCall] = field(default_factory=dict)
    _call_ids: set[str] = field(default_factory=set)
    # Items the client is not shown: item id -> the shown item before it. An item after
    # one of them names that one as its previous_item_id (clients place items by it).
    _hidden_before: dict[str, str | None] = field(default_factory=dict)

    def present(self, event: dict[str, Any]) -> list[dict[str, Any]] | None:
        """The events the client gets for ``event``: None for "as it is" (the common
        case, no copy made), else its replacement (possibly none at all)."""
        kind = event.get("type")
        shown: list[dict[str, Any]] | None = None
        if kind in ITEM_EVENTS:
            shown = self._item_event(event)
        elif kind in ARGUMENT_EVENTS:
            shown = self._arguments_event(event)
        elif kind == events.RESPONSE_DONE:
            shown = self._response_done(event)
        if self._hidden_before:
            shown = self._placed_after_shown_items(event, shown)
        return shown

    def completed(self, call_id: str, output: str, *, failed: bool = False) -> list[dict[str, Any]]:
        """The events that tell the client a platform-run call has finished: completed (or
        failed), then the call's item in its final state, with the output (as a hosted
        tool's item carries it); none where the calls are hidden."""
        if not self.hosted:
            return []
        for item_id, call in self._calls.items():
            if call.call_id != call_id:
                continue
            kind = "response.mcp_call.failed" if failed else "response.mcp_call.completed"
            item: dict[str, Any] = {
                "id": item_id,
                "object": "realtime.item",
                "type": "mcp_call",
                "name": call.name,
                "arguments": call.arguments,
                "server_label": SERVER_LABEL,
                "output": None if failed else output,
                "error": {"type": "tool_execution_error", "message": output} if failed else None,
            }
            return [
                {
                    "type": kind,
                    "event_id": _event_id(),
                    "item_id": item_id,
                    "output_index": call.output_index,
                },
                {
                    "type": events.ITEM_DONE,
                    "event_id": _event_id(),
                    "previous_item_id": call.previous_item_id,
                    "item": item,
                },
            ]
        return []

    # --- rewriting -------------------------------------------------------------------------
    def _is_server_call(self, item: Any) -> bool:
        return (
            isinstance(item, dict)
            and item.get("type") == "function_call"
            and item.get("name") in self.server_tools
        )

    def _is_server_output(self, item: Any) -> bool:
        return (
            isinstance(item, dict)
            and item.get("type") == "function_call_output"
            and item.get("call_id") in self._call_ids
        )

    def _as_mcp_call(self, item: dict[str, Any], output_index: int) -> dict[str, Any]:
        call_id = str(item.get("call_id") or "")
        item_id = str(item.get("id") or "")
        arguments = str(item.get("arguments") or "")
        if item_id:
            known = self._calls.setdefault(
                item_id, ShownCall(call_id, output_index, str(item.get("name")), arguments)
            )
            known.arguments = arguments or known.arguments
        self._call_ids.add(call_id)
        shown: dict[str, Any] = {
            "id": item_id,
            "type": "mcp_call",
            "name": item.get("name"),
            "arguments": item.get("arguments") or "",
            "server_label": SERVER_LABEL,
            "output": None,
            "error": None,
        }
        if "object" in item:
            shown["object"] = item["object"]
        return shown

    def _item_event(self, event: dict[str, Any]) -> list[dict[str, Any]] | None:
        item = event.get("item")
        if self._is_server_output(item):
            self._hide(item, event)  # Koe's own answer to a call the client never ran
            return []
        if not isinstance(item, dict) or not self._is_server_call(item):
            return None
        index = event.get("output_index")
        as_mcp_call = self._as_mcp_call(item, index if isinstance(index, int) else 0)
        if "previous_item_id" in event:
            self._calls[as_mcp_call["id"]].previous_item_id = self._shown_before(
                event["previous_item_id"]
            )
        if not self.hosted:
            self._hide(item, event)
            return []
        return [{**event, "item": as_mcp_call}]

    def _hide(self, item: Any, event: dict[str, Any]) -> None:
        item_id = item.get("id") if isinstance(item, dict) else None
        if isinstance(item_id, str) and "previous_item_id" in event:
            self._hidden_before[item_id] = self._shown_before(event["previous_item_id"])

    def _shown_before(self, item_id: Any) -> str | None:
        seen: set[str] = set()
        while item_id in self._hidden_before and item_id not in seen:
            seen.add(item_id)
            item_id = self._hidden_before[item_id]
        return item_id if isinstance(item_id, str) else None

    def _placed_after_shown_items(
        self, event: dict[str, Any], shown: list[dict[str, Any]] | None
    ) -> list[dict[str, Any]] | None:
        """Events whose previous_item_id names a hidden item name the shown one before it."""
        placed = []
        changed = False
        for each in [event] if shown is None else shown:
            previous = each.get("previous_item_id")
            if isinstance(previous, str) and previous in self._hidden_before:
                each = {**each, "previous_item_id": self._shown_before(previous)}
                changed = True
            placed.append(each)
        return placed if changed or shown is not None else None

    def _arguments_event(self, event: dict[str, Any]) -> list[dict[str, Any]] | None:
        item_id = event.get("item_id")
        name = event.get("name")
        if item_id not in self._calls and name not in self.server_tools:
            return None
        if item_id not in self._calls:
            # The arguments came before the item was announced (a provider's order).
            call_id = str(event.get("call_id") or "")
            self._calls[str(item_id)] = ShownCall(call_id, 0, str(name), "")
            self._call_ids.add(call_id)
        if "arguments" in event:
            self._calls[str(item_id)].arguments = str(event["arguments"])
        if not self.hosted:
            return []
        shown = {
            key: value for key, value in event.items() if key not in ("call_id", "name", "type")
        }
        shown["type"] = ARGUMENT_EVENTS[str(event["type"])]
        presented = [shown]
        if event["type"] == events.FUNCTION_CALL_ARGUMENTS_DONE:
            presented.append(
                {
                    "type": "response.mcp_call.in_progress",
                    "event_id": _event_id(),
                    "item_id": item_id,
                    "output_index": event.get("output_index", 0),
                }
            )
        return presented

    def _response_done(self, event: dict[str, Any]) -> list[dict[str, Any]] | None:
        response = event.get("response")
        if not isinstance(response, dict):
            return None
        output = response.get("output")
        if not isinstance(output, list) or not any(self._is_server_call(i) for i in output):
            return None
        # Every call is noted (its output item is hidden later), then shown or left out.
        calls = {
            index: self._as_mcp_call(item, index)
            for index, item in enumerate(output)
            if self._is_server_call(item)
        }
        shown_output = [
            calls.get(index, item)
            for index, item in enumerate(output)
            if self.hosted or index not in calls
        ]
        return [{**event, "response": {**response, "output": shown_output}}]
