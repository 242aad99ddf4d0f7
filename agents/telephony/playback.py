"""What the caller has heard of the agent: audio sent to the carrier, and the marks it echoes.

A carrier plays the agent's audio at real time from its own buffer, so what Koe has sent
is ahead of what the caller has heard. Koe sends a mark after every ~100 ms of an item's
audio (and at the end of an item or a response); the carrier echoes each once the audio
before it has played, and playback goes on at real time from there. On a barge-in the
buffer is cleared, and the agent's item is truncated at what the caller heard: the last
echoed mark plus the time since, never past the next mark nor what was sent, so the
transcript and the model agree with the caller's ears. Pure bookkeeping, no I/O.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

# G.711 at 8 kHz: one byte a sample, eight a millisecond.
G711_BYTES_PER_MS = 8
# A mark per this much audio: precise enough for a barge-in (the time since the last echo
# fills in between), and a third of the messages of a mark per 20 ms piece.
MARK_EVERY_MS = 100


@dataclass(frozen=True)
class _Mark:
    name: str
    item_id: str
    end_ms: int  # where in the item the audio before this mark ends


class Playback:
    def __init__(
        self,
        bytes_per_ms: int = G711_BYTES_PER_MS,
        mark_every_ms: int = MARK_EVERY_MS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.bytes_per_ms = bytes_per_ms
        self.mark_every_bytes = mark_every_ms * bytes_per_ms
        self.clock = clock
        self.pending: deque[_Mark] = deque()  # sent, not yet echoed, in order
        self.sent_bytes: dict[str, int] = {}  # per agent item
        self.heard_ms: dict[str, int] = {}
        self.unmarked_item = ""  # the item whose latest audio has no mark after it yet
        self.unmarked_bytes = 0
        self.echoed_item = ""  # the item of the last echoed mark, and when it came
        self.echoed_at = 0.0
        self.marks_sent = 0

    @property
    def playing(self) -> bool:
        """Whether audio sent to the carrier may still be playing to the caller."""
        return bool(self.pending) or self.unmarked_bytes > 0

    def audio(self, item_id: str, audio_bytes: int) -> tuple[str | None, str | None]:
        """Audio of ``item_id`` is going to the carrier: the marks to send before it (one
        closing another item's audio) and after it (when ~100 ms have gone unmarked)."""
        before = self.close() if self.unmarked_item not in ("", item_id) else None
        self.sent_bytes[item_id] = self.sent_bytes.get(item_id, 0) + audio_bytes
        self.unmarked_item = item_id
        self.unmarked_bytes += audio_bytes
        after = self.close() if self.unmarked_bytes >= self.mark_every_bytes else None
        return before, after

    def close(self) -> str | None:
        """A mark for the audio sent since the last one (an item or a response ended)."""
        if not self.unmarked_bytes:
            return None
        item_id = self.unmarked_item
        self.marks_sent += 1
        name = f"koe-{self.marks_sent}"
        self.pending.append(_Mark(name, item_id, self.sent_bytes[item_id] // self.bytes_per_ms))
        self.unmarked_item, self.unmarked_bytes = "", 0
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
                self.echoed_item, self.echoed_at = mark.item_id, self.clock()
                return

    def interrupt(self) -> tuple[str, int] | None:
        """The caller spoke over the agent: the item they were hearing and how many
        milliseconds of it they heard (None when nothing was playing). What was sent is
        forgotten: the carrier's buffer is being cleared."""
        if not self.playing:
            return None
        item_id = self.pending[0].item_id if self.pending else self.unmarked_item
        heard = self.heard_ms.get(item_id, 0)
        if item_id == self.echoed_item:
            # Playback went on at real time after the last echo.
            heard += int((self.clock() - self.echoed_at) * 1000)
        limit = self.sent_bytes.get(item_id, 0) // self.bytes_per_ms
        if self.pending and self.pending[0].item_id == item_id:
            limit = min(limit, self.pending[0].end_ms)  # its mark has not been echoed
        self.pending.clear()
        self.unmarked_item, self.unmarked_bytes = "", 0
        return item_id, min(heard, limit)
