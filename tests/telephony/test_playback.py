"""What the caller has heard: marks every ~100 ms of audio, and truncation at the ear."""

from __future__ import annotations

from agents.telephony.playback import Playback


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_mark_follows_every_100_ms_of_an_item_and_closes_it_when_another_begins() -> None:
    playback = Playback(clock=Clock())
    assert playback.audio("a", 320) == (None, None)  # 40 ms: not yet
    before, after = playback.audio("a", 480)  # 100 ms in all
    assert before is None and after is not None
    assert playback.audio("a", 160) == (None, None)
    before, after = playback.audio("b", 160)  # b begins: a's last 20 ms get their mark
    assert before is not None and after is None
    assert [(mark.item_id, mark.end_ms) for mark in playback.pending] == [("a", 100), ("a", 120)]
    assert playback.close() is not None  # the response is done: b's 20 ms are marked
    assert playback.close() is None


def test_a_barge_in_truncates_at_the_last_echo_plus_the_time_since_never_past_the_next_mark() -> (
    None
):
    clock = Clock()
    playback = Playback(clock=clock)
    names = [playback.audio("a", 800)[1] for _ in range(3)]  # marks at 100, 200, 300 ms
    playback.echoed(str(names[0]))
    clock.now += 0.04
    assert playback.interrupt() == ("a", 140)
    assert not playback.playing

    playback = Playback(clock=clock)
    names = [playback.audio("a", 800)[1] for _ in range(3)]
    playback.echoed(str(names[0]))
    clock.now += 5.0  # the next echo is late: the caller cannot be past the next mark
    assert playback.interrupt() == ("a", 200)


def test_nothing_heard_of_an_item_whose_audio_has_no_echo_yet() -> None:
    playback = Playback(clock=Clock())
    first = playback.audio("a", 800)[1]
    playback.audio("b", 400)
    playback.echoed(str(first))  # a played out; b's audio is on its way
    assert playback.interrupt() == ("b", 0)
    assert playback.interrupt() is None  # nothing is playing any more
    playback.echoed("koe-99")  # an echo a clear made the carrier send: ignored
