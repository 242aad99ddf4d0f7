"""The server events of a local response: output items, their parts, and response.done.

A mixin of LocalSession, kept apart because it is the protocol's bookkeeping (the order
and shape of GA events) rather than the speech pipeline.
"""

from __future__ import annotations

import asyncio
import copy
import json
from dataclasses import dataclass, field
from typing import Any

from agents.realtime import events
from agents.realtime.providers.local.conversation import Conversation, new_id
from speech.audio import PCM16
from speech.engine import CallFunction

# A session's audio format until its client chooses another.
AUDIO_FORMAT = PCM16.description()


@dataclass
class Response:
    """One response in progress: its output items and what it produced."""

    id: str
    instructions: str | None
    input_audio_ms: int
    # The client's response.metadata, echoed back: clients match their request to the
    # response by it (LiveKit's generate_reply waits for its client_event_id there).
    metadata: dict[str, Any] | None = None
    output: list[dict[str, Any]] = field(default_factory=list)
    message: dict[str, Any] | None = None  # the assistant message item being spoken
    transcript: list[str] = field(default_factory=list)
    audio_ms: int = 0
    output_text_chars: int = 0
    cancel_reason: str = ""
    error: dict[str, Any] | None = None
    task: asyncio.Task[None] | None = None


class ResponseEvents:
    session: dict[str, Any]
    conversation: Conversation

    def emit(self, event: dict[str, Any]) -> None:
        raise NotImplementedError

    def _speaks_audio(self) -> bool:
        return "audio" in (self.session.get("output_modalities") or ["audio"])

    def _open_message(self, response: Response) -> dict[str, Any]:
        item: dict[str, Any] = {
            "id": new_id("item"),
            "object": "realtime.item",
            "type": "message",
            "role": "assistant",
            "status": "in_progress",
            "content": [],
        }
        response.message = item
        response.output.append(item)
        self.emit(
            {
                "type": events.OUTPUT_ITEM_ADDED,
                "response_id": response.id,
                "output_index": len(response.output) - 1,
                "item": copy.deepcopy(item),
            }
        )
        self.add_item(item, done=False)
        part = {"type": "audio", "transcript": ""} if self._speaks_audio() else {"type": "text"}
        self.emit(
            {
                "type": "response.content_part.added",
                "response_id": response.id,
                "item_id": item["id"],
                "output_index": len(response.output) - 1,
                "content_index": 0,
                "part": {**part, "text": ""} if part["type"] == "text" else part,
            }
        )
        return item

    def _close_message(self, response: Response, status: str) -> None:
        item = response.message
        if item is None:
            return
        response.message = None
        text = " ".join(response.transcript)
        response.transcript = []
        where = {
            "response_id": response.id,
            "item_id": item["id"],
            "output_index": response.output.index(item),
            "content_index": 0,
        }
        if self._speaks_audio():
            self.emit({"type": events.OUTPUT_AUDIO_DONE, **where})
            self.emit({"type": events.OUTPUT_AUDIO_TRANSCRIPT_DONE, **where, "transcript": text})
            part: dict[str, Any] = {"type": "audio", "transcript": text}
            content: dict[str, Any] = {"type": "output_audio", "transcript": text}
        else:
            self.emit({"type": events.OUTPUT_TEXT_DONE, **where, "text": text})
            part = {"type": "text", "text": text}
            content = {"type": "output_text", "text": text}
        self.emit({"type": "response.content_part.done", **where, "part": part})
        item["status"] = status
        item["content"] = [content]
        self._item_done(response, item)

    def _function_call(self, response: Response, call: CallFunction) -> None:
        arguments = json.dumps(call.arguments)
        item: dict[str, Any] = {
            "id": new_id("item"),
            "object": "realtime.item",
            "type": "function_call",
            "status": "in_progress",
            "name": call.name,
            "call_id": new_id("call"),
            "arguments": "",
        }
        response.output.append(item)
        output_index = len(response.output) - 1
        self.emit(
            {
                "type": events.OUTPUT_ITEM_ADDED,
                "response_id": response.id,
                "output_index": output_index,
                "item": copy.deepcopy(item),
            }
        )
        self.add_item(item, done=False)
        where = {
            "response_id": response.id,
            "item_id": item["id"],
            "output_index": output_index,
            "call_id": item["call_id"],
        }
        self.emit({"type": "response.function_call_arguments.delta", **where, "delta": arguments})
        self.emit(
            {
                "type": events.FUNCTION_CALL_ARGUMENTS_DONE,
                **where,
                "name": call.name,
                "arguments": arguments,
            }
        )
        item["status"] = "completed"
        item["arguments"] = arguments
        response.output_text_chars += len(arguments)
        self._item_done(response, item)

    def _item_done(self, response: Response, item: dict[str, Any]) -> None:
        self.emit(
            {
                "type": events.OUTPUT_ITEM_DONE,
                "response_id": response.id,
                "output_index": response.output.index(item),
                "item": copy.deepcopy(item),
            }
        )
        self.emit(
            {
                "type": events.ITEM_DONE,
                "previous_item_id": self._previous_id(item["id"]),
                "item": copy.deepcopy(item),
            }
        )

    def _response_object(self, response: Response, status: str = "in_progress") -> dict[str, Any]:
        details: dict[str, Any] | None = None
        if status == "cancelled":
            details = {"type": "cancelled", "reason": response.cancel_reason}
        elif status == "failed":
            details = {"type": "failed", "error": response.error}
        return {
            "id": response.id,
            "object": "realtime.response",
            "status": status,
            "status_details": details,
            "output": copy.deepcopy(response.output) if status != "in_progress" else [],
            "conversation_id": self.session["id"].replace("sess_", "conv_"),
            "output_modalities": list(self.session.get("output_modalities") or ["audio"]),
            "max_output_tokens": "inf",
            "audio": {
                "output": {
                    "format": copy.deepcopy(self.session["audio"]["output"]["format"]),
                    "voice": self.session["audio"]["output"].get("voice"),
                }
            },
            "usage": self._usage(response) if status != "in_progress" else None,
            "metadata": copy.deepcopy(response.metadata),
        }

    def _usage(self, response: Response) -> dict[str, Any]:
        """Token-equivalents in the API's proportions, so accounting has one path.

        Caller audio counts 1 token per 100 ms and agent audio 1 per 50 ms (OpenAI's
        rates); text counts 1 token per 4 characters. The local provider prices them at 0.
        """
        history_chars = sum(
            len(json.dumps(item.get("content") or item.get("arguments") or item.get("output")))
            for item in self.conversation.items
        )
        instructions = str(self.session.get("instructions") or "")
        input_text = (len(instructions) + history_chars) // 4
        input_audio = response.input_audio_ms // 100
        output_text = response.output_text_chars // 4
        output_audio = response.audio_ms // 50
        return {
            "total_tokens": input_text + input_audio + output_text + output_audio,
            "input_tokens": input_text + input_audio,
            "output_tokens": output_text + output_audio,
            "input_token_details": {
                "text_tokens": input_text,
                "audio_tokens": input_audio,
                "image_tokens": 0,
                "cached_tokens": 0,
                "cached_tokens_details": {"text_tokens": 0, "audio_tokens": 0, "image_tokens": 0},
            },
            "output_token_details": {"text_tokens": output_text, "audio_tokens": output_audio},
        }

    # --- helpers ---------------------------------------------------------------------------
    def add_item(self, item: dict[str, Any], *, done: bool = True) -> None:
        previous = self.conversation.add(item)
        self.emit(
            {
                "type": events.ITEM_ADDED,
                "previous_item_id": previous,
                "item": copy.deepcopy(item),
            }
        )
        if done:
            self.emit(
                {
                    "type": events.ITEM_DONE,
                    "previous_item_id": previous,
                    "item": copy.deepcopy(item),
                }
            )

    def _previous_id(self, item_id: str) -> str | None:
        ids = [item["id"] for item in self.conversation.items]
        index = ids.index(item_id) if item_id in ids else 0
        return ids[index - 1] if index > 0 else None
