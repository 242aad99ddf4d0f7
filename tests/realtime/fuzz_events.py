"""A seeded generator of client events: the whole GA client event set, valid and mutated.

Each event starts from a valid shape of one of the eleven client event types (values
drawn at random: formats, turn detection, items of every kind, response options), and
most are then mutated as a hostile or buggy client would: a value swapped for one of
another type, a key dropped or invented, an enum value made up, a number out of range,
the event type changed, the JSON cut short. Deterministic for a seed, so a failure can
be replayed.
"""

from __future__ import annotations

import base64
import json
import random
import struct
from collections.abc import Callable, Iterator
from typing import Any

CLIENT_TYPES = [
    "session.update",
    "input_audio_buffer.append",
    "input_audio_buffer.commit",
    "input_audio_buffer.clear",
    "output_audio_buffer.clear",
    "conversation.item.create",
    "conversation.item.truncate",
    "conversation.item.delete",
    "conversation.item.retrieve",
    "response.create",
    "response.cancel",
]


class EventSource:
    def __init__(self, seed: int) -> None:
        self.random = random.Random(seed)
        self.item_ids = ["item_1", "item_x", ""]

    # --- values ------------------------------------------------------------------------------
    def chance(self, probability: float) -> bool:
        return self.random.random() < probability

    def some(self, *options: Any) -> Any:
        return self.random.choice(options)

    def text(self, longest: int = 40) -> str:
        alphabet = "abc xyz 0123 é ß 漢字 \u202e \x00 \" ' \\ { } < > 🙂"
        return "".join(self.random.choice(alphabet) for _ in range(self.random.randint(0, longest)))

    def junk(self, depth: int = 0) -> Any:
        """Any JSON value, of any type."""
        kinds: list[Callable[[], Any]] = [
            lambda: None,
            lambda: self.some(True, False),
            lambda: self.random.randint(-(2**63), 2**63),
            lambda: self.some(0, -1, 1, 24000, 8000, 2**31, 10**18),
            lambda: self.some(0.5, -0.0, 1e308, -1e308, 3.14159, 1e-300),
            self.text,
            lambda: "x" * self.random.randint(0, 5000),
        ]
        if depth < 3:
            kinds += [
                lambda: [self.junk(depth + 1) for _ in range(self.random.randint(0, 4))],
                lambda: {
                    self.text(8): self.junk(depth + 1) for _ in range(self.random.randint(0, 4))
                },
            ]
        return self.random.choice(kinds)()

    def audio(self) -> str:
        milliseconds = self.some(0, 10, 20, 40, 100)
        samples = 24 * milliseconds
        kind = self.some("silence", "noise", "tone")
        if kind == "silence":
            pcm = bytes(2 * samples)
        elif kind == "noise":
            pcm = struct.pack(
                f"<{samples}h", *(self.random.randint(-3000, 3000) for _ in range(samples))
            )
        else:
            pcm = struct.pack(f"<{samples}h", *((i % 40) * 400 - 8000 for i in range(samples)))
        if self.chance(0.1):
            pcm = pcm[:-1]  # an odd number of bytes: not whole samples
        encoded = base64.b64encode(pcm).decode()
        if self.chance(0.05):
            encoded = encoded[:-2] + "!!"  # not base64
        return encoded

    def audio_format(self) -> dict[str, Any]:
        return self.some(
            {"type": "audio/pcm", "rate": 24000}, {"type": "audio/pcmu"}, {"type": "audio/pcma"}
        )

    def turn_detection(self) -> dict[str, Any] | None:
        if self.chance(0.2):
            return None
        if self.chance(0.5):
            return {
                "type": "semantic_vad",
                "eagerness": self.some("low", "medium", "high", "auto"),
                "create_response": self.some(True, False),
                "interrupt_response": self.some(True, False),
            }
        return {
            "type": "server_vad",
            "threshold": round(self.random.random(), 2),
            "prefix_padding_ms": self.random.randint(0, 1000),
            "silence_duration_ms": self.random.randint(100, 1500),
            "create_response": self.some(True, False),
            "interrupt_response": self.some(True, False),
        }

    def tool(self) -> dict[str, Any]:
        return {
            "type": "function",
            "name": self.some("book_table", "refund", "get_weather"),
            "description": self.text(),
            "parameters": {"type": "object", "properties": {"x": {"type": "string"}}},
        }

    def session(self) -> dict[str, Any]:
        session: dict[str, Any] = {"type": "realtime"}
        options: dict[str, Callable[[], Any]] = {
            "instructions": self.text,
            "model": lambda: self.some("gpt-realtime", "agt_x", "koe-local", None),
            "tools": lambda: [self.tool() for _ in range(self.random.randint(0, 2))],
            "tool_choice": lambda: self.some(
                "auto", "none", "required", {"type": "function", "name": "refund"}
            ),
            "output_modalities": lambda: self.some(["audio"], ["text"]),
            "max_output_tokens": lambda: self.some("inf", 1, 4096),
            "truncation": lambda: self.some("auto", "disabled"),
            "tracing": lambda: self.some("auto", None),
            "prompt": lambda: self.some(None, {"id": "pmpt_1"}),
            "include": lambda: ["item.input_audio_transcription.logprobs"],
        }
        for key, make in options.items():
            if self.chance(0.2):
                session[key] = make()
        audio: dict[str, Any] = {}
        if self.chance(0.6):
            audio["input"] = {
                key: make()
                for key, make in {
                    "format": self.audio_format,
                    "turn_detection": self.turn_detection,
                    "noise_reduction": lambda: self.some(
                        None, {"type": "near_field"}, {"type": "far_field"}
                    ),
                    "transcription": lambda: self.some(
                        None, {"model": "whisper-1", "language": "en"}
                    ),
                }.items()
                if self.chance(0.5)
            }
        if self.chance(0.4):
            audio["output"] = {
                key: make()
                for key, make in {
                    "format": self.audio_format,
                    "voice": lambda: self.some("alloy", "joe", "ash", {"id": "voice_1"}),
                    "speed": lambda: self.some(0.25, 1.0, 1.5),
                }.items()
                if self.chance(0.5)
            }
        if audio:
            session["audio"] = audio
        return session

    def item(self) -> dict[str, Any]:
        kind = self.some("user", "user", "user", "system", "assistant", "output", "call", "mcp")
        item: dict[str, Any]
        if kind == "user":
            part = self.some(
                {"type": "input_text", "text": self.some("When are you open?", self.text())},
                {"type": "input_audio", "audio": self.audio()},
                {"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgo="},
            )
            item = {"type": "message", "role": "user", "content": [part]}
        elif kind == "system":
            item = {
                "type": "message",
                "role": "system",
                "content": [{"type": "input_text", "text": self.text()}],
            }
        elif kind == "assistant":
            item = {
                "type": "message",
                "role": "assistant",
                "content": [{"type": "output_text", "text": self.text()}],
            }
        elif kind == "output":
            item = {
                "type": "function_call_output",
                "call_id": self.some("call_1", "call_x"),
                "output": self.text(),
            }
        elif kind == "call":
            item = {
                "type": "function_call",
                "call_id": "call_9",
                "name": "refund",
                "arguments": "{}",
            }
        else:
            item = {"type": "mcp_approval_response", "approval_request_id": "x", "approve": True}
        if self.chance(0.3):
            item["id"] = self.some(*self.item_ids, "item_" + self.text(6))
        return item

    # --- events ------------------------------------------------------------------------------
    def valid(self) -> dict[str, Any]:
        kind = self.random.choices(CLIENT_TYPES, weights=[12, 30, 6, 4, 3, 12, 6, 3, 3, 12, 9])[0]
        event: dict[str, Any] = {"type": kind}
        if self.chance(0.3):
            event["event_id"] = "evt_" + self.text(8)
        if kind == "session.update":
            event["session"] = self.session()
        elif kind == "input_audio_buffer.append":
            event["audio"] = self.audio()
        elif kind == "conversation.item.create":
            event["item"] = self.item()
            if self.chance(0.2):
                event["previous_item_id"] = self.some(*self.item_ids)
        elif kind == "conversation.item.truncate":
            event.update(
                item_id=self.some(*self.item_ids),
                content_index=self.some(0, 1),
                audio_end_ms=self.random.randint(0, 100_000),
            )
        elif kind in ("conversation.item.delete", "conversation.item.retrieve"):
            event["item_id"] = self.some(*self.item_ids)
        elif kind == "response.create" and self.chance(0.6):
            response: dict[str, Any] = {}
            for key, make in {
                "instructions": lambda: self.some(None, "", self.text()),
                "conversation": lambda: self.some("auto", "none"),
                "metadata": lambda: {"k": self.text(10)},
                "output_modalities": lambda: self.some(["audio"], ["text"]),
                "input": lambda: [self.item(), {"type": "item_reference", "id": "item_1"}],
                "audio": lambda: {"output": {"voice": self.some("alloy", "verse")}},
                "tool_choice": lambda: self.some("auto", "none"),
            }.items():
                if self.chance(0.3):
                    response[key] = make()
            event["response"] = response
        elif kind == "response.cancel" and self.chance(0.5):
            event["response_id"] = self.some("resp_1", self.text(6))
        return event

    def mutate(self, event: dict[str, Any]) -> Any:
        mutation = self.random.randrange(8)
        if mutation == 0:  # a value of the wrong type (or shape) somewhere inside
            self._at_random_place(
                event, lambda container, key: container.__setitem__(key, self.junk())
            )
        elif mutation == 1:  # a key (or a list's item) dropped
            self._at_random_place(event, lambda container, key: container.__delitem__(key))
        elif mutation == 2:  # a key the API does not know
            containers = list(self._dicts(event))
            self.random.choice(containers)[self.text(10) or "extra"] = self.junk()
        elif mutation == 3:  # another event's type, or one that does not exist
            event["type"] = self.some(
                *CLIENT_TYPES, "session.create", "response.audio.delta", "", 7, None
            )
        elif mutation == 4:  # an enum value made up
            self._at_random_place(
                event, lambda container, key: container.__setitem__(key, self.text(12))
            )
        elif mutation == 5:  # a number out of range
            self._at_random_place(
                event,
                lambda container, key: container.__setitem__(
                    key, self.some(-1, 10**12, 1e308, -0.5, 2**64)
                ),
            )
        elif mutation == 6:  # not an object at all
            return self.some([event], "session.update", 42, None, [])
        else:  # deep nesting
            nested: Any = self.junk()
            for _ in range(self.random.randint(10, 200)):
                nested = {"a": nested} if self.chance(0.5) else [nested]
            event[self.some("session", "item", "response", "audio")] = nested
        return event

    def _dicts(self, value: Any) -> Iterator[dict[str, Any]]:
        if isinstance(value, dict):
            yield value
            for inner in value.values():
                yield from self._dicts(inner)
        elif isinstance(value, list):
            for inner in value:
                yield from self._dicts(inner)

    def _at_random_place(self, event: dict[str, Any], change: Callable[[Any, Any], None]) -> None:
        places: list[tuple[Any, Any]] = []

        def walk(value: Any) -> None:
            if isinstance(value, dict):
                for key, inner in value.items():
                    places.append((value, key))
                    walk(inner)
            elif isinstance(value, list):
                for index, inner in enumerate(value):
                    places.append((value, index))
                    walk(inner)

        walk(event)
        if places:
            change(*self.random.choice(places))

    def frames(self, count: int) -> Iterator[str]:
        for _ in range(count):
            event = self.valid()
            if self.chance(0.6):
                event = self.mutate(event)
            frame = json.dumps(event)
            if self.chance(0.02):
                frame = frame[: self.random.randint(0, len(frame))]  # cut short: not JSON
            yield frame
