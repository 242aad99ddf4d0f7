"""The local session's conversation: Realtime items in order, and what engines see of them."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from typing import Any

from speech.engine import Message, ToolCall, ToolResult, Turn


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(10)}"


@dataclass
class SpokenPart:
    """One synthesised sentence of an assistant item, for truncation."""

    text: str
    start_ms: int
    duration_ms: int


@dataclass
class Conversation:
    items: list[dict[str, Any]] = field(default_factory=list)
    spoken: dict[str, list[SpokenPart]] = field(default_factory=dict)

    @property
    def last_item_id(self) -> str | None:
        return self.items[-1]["id"] if self.items else None

    def get(self, item_id: str) -> dict[str, Any] | None:
        return next((item for item in self.items if item["id"] == item_id), None)

    def add(self, item: dict[str, Any]) -> str | None:
        """Append an item; returns the id of the item before it (previous_item_id)."""
        previous = self.last_item_id
        self.items.append(item)
        return previous

    def delete(self, item_id: str) -> bool:
        item = self.get(item_id)
        if item is None:
            return False
        self.items.remove(item)
        self.spoken.pop(item_id, None)
        return True

    def truncate(self, item_id: str, audio_end_ms: int) -> bool:
        """Keep only what the caller heard of an assistant item (whole sentences started)."""
        item = self.get(item_id)
        if item is None or item.get("role") != "assistant":
            return False
        heard = [part.text for part in self.spoken.get(item_id, []) if part.start_ms < audio_end_ms]
        for content in item.get("content") or []:
            if content.get("type") == "output_audio":
                content["transcript"] = " ".join(heard)
        return True

    def history(self) -> list[Turn]:
        """The conversation as a response engine sees it, oldest first."""
        turns: list[Turn] = []
        for item in self.items:
            kind = item.get("type")
            if kind == "message" and item.get("role") in ("user", "assistant"):
                text = message_text(item)
                if text is not None:
                    turns.append(Message(role=item["role"], text=text))
            elif kind == "function_call":
                turns.append(
                    ToolCall(
                        call_id=str(item.get("call_id", "")),
                        name=str(item.get("name", "")),
                        arguments=_arguments(item.get("arguments")),
                    )
                )
            elif kind == "function_call_output":
                turns.append(
                    ToolResult(call_id=str(item.get("call_id", "")), output=str(item["output"]))
                )
        return turns

    def system_notes(self) -> list[str]:
        """Text of system messages the client added (extra instructions)."""
        return [
            text
            for item in self.items
            if item.get("type") == "message" and item.get("role") == "system"
            for text in [message_text(item)]
            if text
        ]


def message_text(item: dict[str, Any]) -> str | None:
    """The words of a message item, or None while its audio is still being transcribed."""
    pieces = []
    for content in item.get("content") or []:
        kind = content.get("type")
        if kind in ("input_text", "output_text", "text"):
            pieces.append(str(content.get("text") or ""))
        elif kind in ("input_audio", "output_audio", "audio"):
            transcript = content.get("transcript")
            if transcript is None:
                return None
            pieces.append(str(transcript))
    return " ".join(piece for piece in pieces if piece).strip()


def _arguments(raw: Any) -> dict[str, Any]:
    try:
        parsed = json.loads(raw) if isinstance(raw, str) else raw
    except json.JSONDecodeError:
        return {}
    return parsed if isinstance(parsed, dict) else {}
