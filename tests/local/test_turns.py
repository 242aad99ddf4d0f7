"""Turn detection rules over speech probabilities: server_vad as the Realtime API defines it."""

from __future__ import annotations

from speech.vad import (
    FRAME_MS,
    SilenceBegan,
    SpeechStarted,
    SpeechStopped,
    TurnDetector,
    TurnSettings,
)


def frames(milliseconds: int, probability: float) -> list[float]:
    return [probability] * (milliseconds // FRAME_MS)


def test_speech_starts_with_prefix_padding_and_stops_after_the_silence() -> None:
    detector = TurnDetector(
        TurnSettings(threshold=0.5, prefix_padding_ms=300, silence_duration_ms=500)
    )
    seen = detector.feed(frames(960, 0.0) + frames(1600, 0.9) + frames(800, 0.05))
    started = [e for e in seen if isinstance(e, SpeechStarted)]
    stopped = [e for e in seen if isinstance(e, SpeechStopped)]
    assert started == [SpeechStarted(960 - 300)]
    assert len(stopped) == 1
    assert stopped[0].speech_end_ms == 960 + 1600
    # audio_end_ms includes the silence that ended the turn
    assert 960 + 1600 + 500 <= stopped[0].audio_end_ms < 960 + 1600 + 500 + FRAME_MS
    assert not detector.speaking


def test_silence_shorter_than_the_setting_keeps_one_turn() -> None:
    detector = TurnDetector(TurnSettings(silence_duration_ms=500))
    seen = detector.feed(frames(640, 0.9) + frames(320, 0.0) + frames(640, 0.9) + frames(640, 0.0))
    assert [type(e) for e in seen if not isinstance(e, SilenceBegan)] == [
        SpeechStarted,
        SpeechStopped,
    ]


def test_a_click_is_not_speech() -> None:
    detector = TurnDetector()
    assert detector.feed(frames(64, 0.99) + frames(1000, 0.0)) == []


def test_threshold_is_the_agents() -> None:
    strict = TurnDetector(TurnSettings(threshold=0.8))
    loose = TurnDetector(TurnSettings(threshold=0.3))
    audio = frames(640, 0.6) + frames(1000, 0.0)
    assert strict.feed(list(audio)) == []
    assert [type(e) for e in loose.feed(list(audio)) if not isinstance(e, SilenceBegan)] == [
        SpeechStarted,
        SpeechStopped,
    ]


def test_early_transcription_is_signalled_once_per_pause_before_the_turn_ends() -> None:
    detector = TurnDetector(TurnSettings(silence_duration_ms=500))
    seen = detector.feed(frames(640, 0.9) + frames(800, 0.0))
    kinds = [type(e) for e in seen]
    assert kinds == [SpeechStarted, SilenceBegan, SpeechStopped]
    assert seen[1] == SilenceBegan(speech_end_ms=640)


def test_semantic_vad_eagerness_maps_to_silence() -> None:
    assert TurnSettings.from_session(
        {"type": "semantic_vad", "eagerness": "low"}
    ).silence_duration_ms > (
        TurnSettings.from_session({"type": "semantic_vad", "eagerness": "high"}).silence_duration_ms
    )
    assert TurnSettings.from_session(
        {
            "type": "server_vad",
            "threshold": 0.7,
            "prefix_padding_ms": 100,
            "silence_duration_ms": 900,
        }
    ) == TurnSettings(0.7, 100, 900)
