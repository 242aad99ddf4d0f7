"""The recording writer: settled audio stored as part objects, then streamed into one WAV."""

from __future__ import annotations

import hashlib
import wave
from pathlib import Path

import numpy as np
from django.core.files.storage import FileSystemStorage

from calls.mixer import wav_header
from calls.recordings import RecordingWriter, part_name, recording_name


def test_parts_are_streamed_into_one_wav_with_its_checksum_then_deleted(tmp_path: Path) -> None:
    storage = FileSystemStorage(location=tmp_path)
    writer = RecordingWriter("ten_1", "call_1", storage)
    pieces = [np.random.default_rng(7).integers(-2000, 2000, 48_000, dtype="<i2").tobytes()]
    pieces += [bytes(range(256)) * 100, b"\x01\x00\x02\x00" * 24_000]
    for piece in pieces:
        writer.write_part(piece)
    folder = tmp_path / "recordings/ten_1/parts/call_1"
    assert sorted(path.name for path in folder.iterdir()) == ["00001.pcm", "00002.pcm", "00003.pcm"]
    assert part_name("ten_1", "call_1", 2) == "recordings/ten_1/parts/call_1/00002.pcm"

    stored = writer.compose()

    audio = b"".join(pieces)
    assert stored.name == recording_name("ten_1", "call_1") == "recordings/ten_1/call_1.wav"
    content = (tmp_path / stored.name).read_bytes()
    assert content == wav_header(len(audio)) + audio
    assert stored.size_bytes == len(content)
    assert stored.sha256 == hashlib.sha256(content).hexdigest()
    assert stored.duration_ms == len(audio) // 4 * 1000 // 24_000
    assert not folder.exists()  # parts and their folder are gone
    with wave.open(str(tmp_path / stored.name)) as wav:
        assert wav.getnframes() == len(audio) // 4


def test_a_call_without_audio_still_composes_a_valid_empty_wav(tmp_path: Path) -> None:
    writer = RecordingWriter("ten_1", "call_2", FileSystemStorage(location=tmp_path))
    writer.write_part(b"")
    stored = writer.compose()
    assert stored.size_bytes == 44 and stored.duration_ms == 0
    with wave.open(str(tmp_path / stored.name)) as wav:
        assert wav.getnframes() == 0
