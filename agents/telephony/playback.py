"""What the caller has heard of the agent: audio sent to the carrier, and the marks it echoes.

A carrier plays the agent's audio at real time from its own buffer, so what Koe has sent
is ahead of what the caller has heard. After each piece of audio Koe sends a mark; the
carrier echoes it once the audio before it has played. On a barge-in the buffer is
cleared, and the agent's item is truncated at what the echoed marks say was heard, so the
transcript and the model agree with the caller's ears. Pure bookkeeping, no I/O.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

# G.711 at 8 kHz: one byte a sample, eight a millisecond.
G711_BYTES_PER_MS = 8


@dataclass(frozen=True)
class _Mark:
    name: str
    item_id: str
    end_ms: int  # where in the item the audio before this mark ends


class Playback:
    def __init__(self, bytes_per_ms: int = G711_BYTES_PER_MS) -> None:
        self.bytes_per_ms = bytes_per_ms
        self.pending: deque[_Mark] = deque()  # sent, not yet echoed, in order
        self.sent_bytes: dict[str, int] = {}  # per agent item
        self.heard_ms: dict[str, int] = {}
        self.marks_sent = 0

    @property
    def playing(self) -> bool:
        """Whether audio sent to the carrier may still be playing to the caller."""
        return bool(self.pending)

    def sent(self, item_id: str, audio_bytes: int) -> str:
        """Audio of ``item_id`` went to the carrier: the name of the mark to send after it."""
        total = self.sent_bytes.get(item_id, 0) + audio_bytes
        self.sent_bytes[item_id] = total
        self.marks_sent += 1
        name = f"koe-{self.marks_sent}"
        self.pending.append(_Mark(name, item_id, total // self.bytes_per_ms))
        return name

    def echoed(self, name: str) -> None:
        """The carrier echoed a mark: the audio up to it has played. Marks are echoed in
        the order they were sent; an unknown name (one forgotten by a barge-in) is ignored."""
        if not any(mark.name == name for mark in self.pending):
            return
        while self.pending:
            mark = self.pending.popleft()
            self.heard_ms[mark.item_id] = mark.end_ms
            if mark.name == name:
                return

    def interrupt(self) -> tuple[str, int] | None:
        """The caller spoke over the agent: the item they were hearing and how many
        milliseconds of it they heard (None when nothing was playing). The pending marks
        are forgotten: the carrier's buffer is being cleared."""
        if not self.pending:
            return None
        item_id = self.pending[0].item_id
        self.pending.clear()
        sent_ms = self.sent_bytes.get(item_id, 0) // self.bytes_per_ms
        return item_id, min(self.heard_ms.get(item_id, 0), sent_ms)
