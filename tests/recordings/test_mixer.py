"""calls.mixer: decoding the call's audio, placing it on the timeline, the WAV header."""

from __future__ import annotations

import base64
import io
import wave

import numpy as np
import pytest

from calls.mixer import (
    G711_TABLES,
    SAMPLE_RATE,
    AudioDecoder,
    CallMixer,
    RecordingError,
    wav_header,
)

MS = SAMPLE_RATE // 1000  # samples per millisecond


def tone(milliseconds: int, value: int) -> np.ndarray:
    """A constant 'signal' that is easy to find again on a channel."""
    return np.full(milliseconds * MS, value, dtype="<i2")


def channels(pcm: bytes) -> tuple[np.ndarray, np.ndarray]:
    stereo = np.frombuffer(pcm, dtype="<i2").reshape(-1, 2)
    return stereo[:, 0], stereo[:, 1]


def runs(signal: np.ndarray) -> list[tuple[int, int, int]]:
    """(start ms, end ms, value) of each stretch of equal non-zero samples."""
    found = []
    start = None
    for index in range(len(signal) + 1):
        value = int(signal[index]) if index < len(signal) else 0
        if start is not None and value != int(signal[start]):
            found.append((start // MS, index // MS, int(signal[start])))
            start = None
        if start is None and value != 0:
            start = index
    return found


# --- placement ---------------------------------------------------------------------------------


def test_caller_chunks_end_when_they_arrived_and_agent_audio_starts_when_it_arrived() -> None:
    mixer = CallMixer()
    mixer.add_caller(tone(40, 100), arrived=140 * MS)  # captured 100-140 ms
    mixer.add_caller(tone(40, 101), arrived=180 * MS)
    mixer.add_agent("item_a", tone(200, 7), arrived=500 * MS)
    left, right = channels(mixer.render(1000 * MS))
    assert runs(left) == [(100, 140, 100), (140, 180, 101)]
    assert runs(right) == [(500, 700, 7)]
    assert len(left) == 1000 * MS


def test_caller_audio_late_by_network_jitter_stays_continuous_but_a_pause_is_silence() -> None:
    mixer = CallMixer()
    mixer.add_caller(tone(40, 1), arrived=1040 * MS)  # captured 1000-1040 ms
    mixer.add_caller(tone(40, 2), arrived=1230 * MS)  # 150 ms late: jitter
    mixer.add_caller(tone(40, 3), arrived=1240 * MS)
    mixer.add_caller(tone(40, 4), arrived=2000 * MS)  # after a pause (e.g. muted)
    left, _ = channels(mixer.render(2500 * MS))
    assert runs(left) == [(1000, 1040, 1), (1040, 1080, 2), (1080, 1120, 3), (1960, 2000, 4)]


def test_an_agent_burst_plays_back_to_back_from_when_it_started() -> None:
    mixer = CallMixer()
    # One second of speech arrives in a tenth of a second, in four deltas.
    for number, arrival_ms in enumerate((300, 320, 350, 400)):
        mixer.add_agent("item_a", tone(250, number + 1), arrived=arrival_ms * MS)
    _, right = channels(mixer.render(2000 * MS))
    assert runs(right) == [(300, 550, 1), (550, 800, 2), (800, 1050, 3), (1050, 1300, 4)]


def test_agent_audio_that_arrives_slower_than_real_time_leaves_gaps_of_silence() -> None:
    mixer = CallMixer()
    mixer.add_agent("item_a", tone(100, 5), arrived=0)
    mixer.add_agent("item_a", tone(100, 6), arrived=300 * MS)  # the provider stalled
    _, right = channels(mixer.render(600 * MS))
    assert runs(right) == [(0, 100, 5), (300, 400, 6)]


def test_a_caller_burst_is_laid_out_in_order_without_overlap() -> None:
    mixer = CallMixer()
    # A client that sends three seconds at once (e.g. a file): one after the other.
    for number in range(3):
        mixer.add_caller(tone(1000, number + 1), arrived=3000 * MS)
    left, _ = channels(mixer.render(5000 * MS))
    assert runs(left) == [(2000, 3000, 1), (3000, 4000, 2), (4000, 5000, 3)]


def test_the_caller_and_the_agent_overlap_when_the_caller_barges_in() -> None:
    mixer = CallMixer()
    mixer.add_agent("item_a", tone(1000, 9), arrived=0)
    mixer.add_caller(tone(200, 4), arrived=600 * MS)
    left, right = channels(mixer.render(1000 * MS))
    assert runs(left) == [(400, 600, 4)]
    assert runs(right) == [(0, 1000, 9)]


# --- truncation ------------------------------------------------------------------------------------


def test_truncation_cuts_the_item_where_the_client_stopped_playing_it() -> None:
    mixer = CallMixer()
    mixer.add_agent("item_a", tone(2000, 3), arrived=100 * MS)
    mixer.truncate("item_a", audio_end_ms=700)
    # Deltas of the truncated item still in flight were never played.
    mixer.add_agent("item_a", tone(500, 3), arrived=900 * MS)
    # The next response plays from when it arrives.
    mixer.add_agent("item_b", tone(300, 8), arrived=1200 * MS)
    _, right = channels(mixer.render(3000 * MS))
    assert runs(right) == [(100, 800, 3), (1200, 1500, 8)]


def test_truncation_counts_the_items_own_audio_not_the_gaps_in_it() -> None:
    mixer = CallMixer()
    mixer.add_agent("item_a", tone(300, 1), arrived=0)
    mixer.add_agent("item_a", tone(300, 2), arrived=1000 * MS)  # after a 700 ms stall
    mixer.truncate("item_a", audio_end_ms=400)  # 300 ms of the first delta, 100 of the second
    _, right = channels(mixer.render(2000 * MS))
    assert runs(right) == [(0, 300, 1), (1000, 1100, 2)]


def test_truncation_drops_audio_queued_behind_the_item() -> None:
    mixer = CallMixer()
    mixer.add_agent("item_a", tone(1000, 1), arrived=0)
    mixer.add_agent("item_b", tone(1000, 2), arrived=10 * MS)  # queued after item_a
    mixer.truncate("item_a", audio_end_ms=500)
    _, right = channels(mixer.render(3000 * MS))
    assert runs(right) == [(0, 500, 1)]


def test_truncation_of_unknown_or_fully_heard_items_changes_nothing() -> None:
    mixer = CallMixer()
    mixer.add_agent("item_a", tone(300, 1), arrived=0)
    mixer.truncate("item_unknown", audio_end_ms=0)
    mixer.truncate("item_a", audio_end_ms=5000)
    _, right = channels(mixer.render(1000 * MS))
    assert runs(right) == [(0, 300, 1)]


def test_truncation_never_rewrites_audio_already_written() -> None:
    mixer = CallMixer()
    mixer.add_agent("item_a", tone(1000, 1), arrived=0)
    first = mixer.render(600 * MS)
    mixer.truncate("item_a", audio_end_ms=200)  # later than the settle margin allowed for
    second = mixer.render(1000 * MS)
    _, right = channels(first + second)
    assert runs(right) == [(0, 600, 1)]


# --- rendering in pieces ------------------------------------------------------------------------


def test_rendering_in_pieces_gives_the_same_audio_as_rendering_at_once() -> None:
    def scenario(mixer: CallMixer, cuts: list[int]) -> bytes:
        pieces = []
        events = [
            (0, lambda: mixer.add_caller(tone(900, 11), arrived=1000 * MS)),
            (1, lambda: mixer.add_agent("a", tone(1500, 12), arrived=1100 * MS)),
            (2, lambda: mixer.add_caller(tone(300, 13), arrived=3500 * MS)),
        ]
        for index, action in events:
            action()
            if index < len(cuts):
                pieces.append(mixer.render(cuts[index]))
        pieces.append(mixer.render(4000 * MS))
        return b"".join(pieces)

    at_once = scenario(CallMixer(), [])
    in_pieces = scenario(CallMixer(), [500 * MS, 1700 * MS, 2100 * MS])
    assert in_pieces == at_once
    left, right = channels(at_once)
    assert runs(left) == [(100, 1000, 11), (3200, 3500, 13)]
    assert runs(right) == [(1100, 2600, 12)]


def test_audio_is_never_placed_before_what_was_already_written() -> None:
    mixer = CallMixer()
    mixer.render(1000 * MS)
    mixer.add_caller(tone(200, 1), arrived=1100 * MS)  # would start at 900 ms
    left, _ = channels(mixer.render(1500 * MS))
    assert runs(left) == [(0, 200, 1)]  # relative to the 1000 ms already written


def test_the_end_of_the_call_drops_agent_audio_still_queued() -> None:
    mixer = CallMixer()
    mixer.add_agent("item_a", tone(3000, 1), arrived=0)
    mixer.end_agent_at(1000 * MS)
    assert mixer.end == 1000 * MS
    _, right = channels(mixer.render(mixer.end))
    assert runs(right) == [(0, 1000, 1)]


# --- decoding ---------------------------------------------------------------------------------------


def test_pcm16_passes_through_and_bad_base64_is_no_audio() -> None:
    decoder = AudioDecoder("pcm16")
    samples = np.array([1, -2, 300, -32768], dtype="<i2")
    payload = base64.b64encode(samples.tobytes()).decode()
    assert decoder.decode(payload).tolist() == [1, -2, 300, -32768]
    assert len(decoder.decode("not base64!")) == 0
    assert decoder.decode(base64.b64encode(b"\x01\x00\x02").decode()).tolist() == [1]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("audio_format", ["g711_ulaw", "g711_alaw"])
def test_g711_is_expanded_like_the_reference_codec_and_upsampled_to_24_khz(
    audio_format: str,
) -> None:
    import audioop

    codes = bytes(range(256))
    reference = audioop.ulaw2lin if audio_format == "g711_ulaw" else audioop.alaw2lin
    expected = np.frombuffer(reference(codes, 2), dtype="<i2")
    assert G711_TABLES[audio_format].tolist() == expected.tolist()

    decoder = AudioDecoder(audio_format)
    # A second of 8 kHz audio in 20 ms chunks comes out as (about) a second at 24 kHz.
    encoder = audioop.lin2ulaw if audio_format == "g711_ulaw" else audioop.lin2alaw
    sine = (8000 * np.sin(2 * np.pi * 440 * np.arange(8000) / 8000)).astype("<i2")
    encoded = encoder(sine.tobytes(), 2)
    out = np.concatenate(
        [
            decoder.decode(base64.b64encode(encoded[i : i + 160]).decode())
            for i in range(0, len(encoded), 160)
        ]
    )
    assert abs(len(out) - SAMPLE_RATE) <= 24
    spectrum = np.abs(np.fft.rfft(out[2400:21600].astype(float)))
    peak_hz = np.argmax(spectrum) * SAMPLE_RATE / len(out[2400:21600])
    assert abs(peak_hz - 440) < 5


# --- the WAV header ---------------------------------------------------------------------------------


def test_wav_header_describes_stereo_24_khz_pcm16() -> None:
    header = wav_header(96_000)
    with wave.open(io.BytesIO(header + bytes(96_000))) as wav:
        assert wav.getnchannels() == 2
        assert wav.getframerate() == 24_000
        assert wav.getsampwidth() == 2
        assert wav.getnframes() == 24_000
    with pytest.raises(RecordingError):
        wav_header(2**32)
