"""G.711 telephone audio: 8 kHz μ-law and A-law codes to and from 16-bit samples.

Phone lines (and the Realtime protocol's ``audio/pcmu`` and ``audio/pcma``) carry one
byte per sample at 8 kHz, companded as ITU-T G.711 specifies. Decoding looks each code up
in a 256-entry table; μ-law encoding is the standard's arithmetic (bias 0x84, clip at
32635, inverted bits), done on whole arrays with numpy.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

G711_RATE = 8000

# μ-law: a sample's magnitude is clipped here, so that adding the bias cannot overflow.
ULAW_CLIP = 32635
# μ-law: added to a magnitude so that each segment starts at a power of two.
ULAW_BIAS = 0x84
# A-law: even bits are inverted on the line (keeps a silent line's bits changing).
ALAW_INVERT = 0x55

Int16Audio = npt.NDArray[np.int16]

# μ-law's segment of a biased magnitude, looked up by its bits above bit 6 (1 to 255):
# the index of their highest set bit.
_SEGMENT_OF_TOP_BITS = np.array([max(n.bit_length() - 1, 0) for n in range(256)], np.int32)


def _ulaw_table() -> Int16Audio:
    """The sample each of the 256 μ-law codes stands for."""
    codes = ~np.arange(256, dtype=np.int32) & 0xFF
    exponent = (codes >> 4) & 0x07
    magnitude = (((codes & 0x0F) << 3) + ULAW_BIAS) << exponent
    samples = magnitude - ULAW_BIAS
    return np.where(codes & 0x80, -samples, samples).astype(np.int16)


def _alaw_table() -> Int16Audio:
    """The sample each of the 256 A-law codes stands for."""
    codes = np.arange(256, dtype=np.int32) ^ ALAW_INVERT
    exponent = (codes >> 4) & 0x07
    mantissa = codes & 0x0F
    magnitude = np.where(
        exponent == 0,
        (mantissa << 4) + 8,
        ((mantissa << 4) + 0x108) << np.maximum(exponent - 1, 0),
    )
    return np.where(codes & 0x80, magnitude, -magnitude).astype(np.int16)


ULAW_TABLE = _ulaw_table()
ALAW_TABLE = _alaw_table()
# By the names Koe's agents give their audio formats.
G711_TABLES = {"g711_ulaw": ULAW_TABLE, "g711_alaw": ALAW_TABLE}


def decode_ulaw(codes: bytes) -> Int16Audio:
    """16-bit samples of μ-law bytes (any number of them: one byte is one sample)."""
    return ULAW_TABLE[np.frombuffer(codes, dtype=np.uint8)]


def decode_alaw(codes: bytes) -> Int16Audio:
    """16-bit samples of A-law bytes (any number of them: one byte is one sample)."""
    return ALAW_TABLE[np.frombuffer(codes, dtype=np.uint8)]


def encode_ulaw(samples: npt.NDArray[np.integer]) -> bytes:
    """μ-law bytes of 16-bit samples, one byte each, as ITU-T G.711 quantises them.

    Zero encodes as 0xFF (the positive zero), so of the two codes that decode to 0,
    0x7F (the negative zero) does not come back unchanged; every other code does.
    """
    values = np.asarray(samples, dtype=np.int32)
    sign = np.where(values < 0, 0x80, 0x00)
    # A negative sample's magnitude is its one's complement (-1 is 0), as in the ITU-T
    # G.191 reference: the two halves then round alike, and -32768 needs no special case.
    magnitude = np.minimum(np.where(values < 0, ~values, values), ULAW_CLIP) + ULAW_BIAS
    # The segment is where the biased magnitude's highest bit lies, from bit 7 (segment 0)
    # to bit 14 (segment 7); the four bits below it are the step within the segment.
    exponent = _SEGMENT_OF_TOP_BITS[magnitude >> 7]
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    codes = ~(sign | (exponent << 4) | mantissa) & 0xFF
    return codes.astype(np.uint8).tobytes()
