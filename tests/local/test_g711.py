"""speech.g711: μ-law and A-law as ITU-T G.711 defines them, on whole numpy arrays."""

from __future__ import annotations

import numpy as np
import pytest

from speech.g711 import (
    ALAW_TABLE,
    G711_RATE,
    G711_TABLES,
    ULAW_TABLE,
    decode_alaw,
    decode_ulaw,
    encode_ulaw,
)

ALL_CODES = bytes(range(256))
ALL_SAMPLES = np.arange(-32768, 32768, dtype=np.int32).astype(np.int16)


def reference_ulaw(sample: int) -> int:
    """One sample through ITU-T G.191's ``ulaw_compress``, transcribed line by line."""
    # 14-bit magnitude, the one's complement for negative samples, plus the bias (33).
    absolute = ((~sample) >> 2) + 33 if sample < 0 else (sample >> 2) + 33
    absolute = min(absolute, 0x1FFF)
    rest, segment = absolute >> 6, 1
    while rest:
        segment += 1
        rest >>= 1
    high_nibble = 0x08 - segment
    low_nibble = 0x0F - ((absolute >> segment) & 0x0F)
    code = (high_nibble << 4) | low_nibble
    return code | 0x80 if sample >= 0 else code


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_decoding_matches_the_reference_codec() -> None:
    import audioop

    expected_ulaw = np.frombuffer(audioop.ulaw2lin(ALL_CODES, 2), dtype="<i2")
    expected_alaw = np.frombuffer(audioop.alaw2lin(ALL_CODES, 2), dtype="<i2")
    assert decode_ulaw(ALL_CODES).tolist() == expected_ulaw.tolist()
    assert decode_alaw(ALL_CODES).tolist() == expected_alaw.tolist()
    assert G711_TABLES["g711_ulaw"] is ULAW_TABLE
    assert G711_TABLES["g711_alaw"] is ALAW_TABLE
    assert decode_ulaw(ALL_CODES).dtype == np.int16


def test_every_sample_encodes_as_the_itu_reference_does() -> None:
    encoded = encode_ulaw(ALL_SAMPLES)
    assert len(encoded) == len(ALL_SAMPLES)
    expected = bytes(reference_ulaw(int(sample)) for sample in ALL_SAMPLES)
    assert encoded == expected


def test_every_code_survives_a_round_trip_but_the_negative_zero() -> None:
    decoded = decode_ulaw(ALL_CODES)
    # 0xFF and 0x7F are +0 and -0: both decode to 0, which encodes as +0 (0xFF).
    assert decoded[0xFF] == decoded[0x7F] == 0
    round_trip = encode_ulaw(decoded)
    assert [code for code in range(256) if round_trip[code] != code] == [0x7F]
    assert round_trip[0x7F] == 0xFF


def test_a_sine_comes_back_within_the_quantisation_error() -> None:
    time = np.arange(G711_RATE) / G711_RATE
    sine = (20000 * np.sin(2 * np.pi * 440 * time)).astype(np.int16)
    back = decode_ulaw(encode_ulaw(sine)).astype(np.int64)
    error = np.abs(back - sine)
    # A step of μ-law's segment is 1/16 of the segment's (biased) start: half a step is
    # at most 1/32 of the biased magnitude.
    assert np.all(error <= (np.abs(sine) + 0x84) // 32 + 1)
    signal_to_noise = 10 * np.log10(np.sum(sine.astype(float) ** 2) / np.sum(error**2.0))
    assert signal_to_noise > 35  # G.711 μ-law: about 38 dB on a loud sine


def test_extremes_clip_and_any_length_is_audio() -> None:
    assert encode_ulaw(np.array([-32768, 32767], dtype=np.int16)) == bytes([0x00, 0x80])
    assert decode_ulaw(bytes([0x00, 0x80])).tolist() == [-32124, 32124]
    assert encode_ulaw(np.zeros(0, dtype=np.int16)) == b""
    assert len(decode_ulaw(b"\x01\x02\x03")) == 3
    assert len(decode_alaw(b"\xd5")) == 1
