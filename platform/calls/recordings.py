"""Call recordings: the caller and the agent mixed into a stereo WAV while the call runs.

Only calls whose consent covers recording are recorded. The realtime broker feeds three
hooks from its relay (caller audio, agent audio, the client's truncation on barge-in);
they only append to an in-memory inbox, so the latency-critical relay does no decoding,
mixing or I/O. Every few seconds a flush, in a worker thread, places the inbox's audio on
the call's timeline and writes the *settled* part of it (older than a short margin, so a
late truncation can still cut agent audio) to storage as a raw part object:

    recordings/<tenant public id>/parts/<call public id>/00001.pcm

At the end of the call the parts are streamed, behind a WAV header, into
``recordings/<tenant public id>/<call public id>.wav`` (hashing and counting on the way),
then deleted. A call never holds more than a flush interval of audio plus the agent audio
queued for playback. Everything goes through Django's storage API, so the folder under
MEDIA_ROOT and an S3-compatible bucket behave alike. A failed recording is marked failed
and never breaks the call. A recorder that dies with its process (a crash, a killed
deploy) leaves its parts and a row still "recording"; ``recover_recording`` composes them
later, from the retention purge, once the call is over.

Where each sound lands on the call's timeline, and how G.711 audio is decoded, is the pure
audio logic of ``calls.mixer``; this module feeds it, stores what it renders and keeps the
Recording row up to date.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any, cast

from channels.db import database_sync_to_async
from django.conf import settings
from django.core.files.base import ContentFile, File
from django.core.files.storage import FileSystemStorage, Storage, default_storage
from django.utils import timezone

from calls.mixer import (
    CHANNELS,
    FRAME_BYTES,
    SAMPLE_RATE,
    AudioDecoder,
    CallMixer,
    RecordingError,
    wav_header,
)
from calls.models import CallSession, Recording, RecordingStatus

logger = logging.getLogger("koe.recordings")

# Time source for arrival times; a module attribute so tests can drive it.
monotonic: Callable[[], float] = time.monotonic


# --- where things are stored --------------------------------------------------------------


def parts_folder(tenant_public_id: str, call_public_id: str) -> str:
    """The folder of a live call's part objects (retention removes those of ended calls)."""
    return f"recordings/{tenant_public_id}/parts/{call_public_id}"


def part_name(tenant_public_id: str, call_public_id: str, number: int) -> str:
    return f"{parts_folder(tenant_public_id, call_public_id)}/{number:05d}.pcm"


def recording_name(tenant_public_id: str, call_public_id: str) -> str:
    return f"recordings/{tenant_public_id}/{call_public_id}.wav"


# --- storage: parts and the final WAV -----------------------------------------------------


class _PartsStream(io.RawIOBase):
    """A WAV header then every part, read one part at a time; hashes what is read."""

    def __init__(
        self, storage: Storage, header: bytes, part_names: list[str], audio_bytes: int
    ) -> None:
        super().__init__()
        self.storage = storage
        self.pending = list(part_names)
        self.current: Any = io.BytesIO(header)
        self.sha256 = hashlib.sha256()
        self.size = 0
        # The parts may hold more than the header announces (a recovered call's last part
        # ending in half a frame): the stream stops where the WAV's data ends.
        self.remaining = len(header) + audio_bytes

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while self.current is not None and self.remaining > 0:
            data = self.current.read(min(len(buffer), self.remaining))
            if data:
                self.remaining -= len(data)
                buffer[: len(data)] = data
                self.sha256.update(data)
                self.size += len(data)
                return len(data)
            self.current.close()
            self.current = self.storage.open(self.pending.pop(0), "rb") if self.pending else None
        return 0

    def close(self) -> None:
        if self.current is not None:
            self.current.close()
            self.current = None
        super().close()


@dataclass(frozen=True)
class StoredRecording:
    name: str
    size_bytes: int
    duration_ms: int
    sha256: str


class RecordingWriter:
    """Writes settled audio as numbered part objects and composes the WAV from them."""

    def __init__(
        self, tenant_public_id: str, call_public_id: str, storage: Storage | None = None
    ) -> None:
        self.tenant_public_id = tenant_public_id
        self.call_public_id = call_public_id
        self.storage = storage if storage is not None else default_storage
        self.part_names: list[str] = []
        self.audio_bytes = 0

    def write_part(self, pcm: bytes) -> None:
        if not pcm:
            return
        number = len(self.part_names) + 1
        name = part_name(self.tenant_public_id, self.call_public_id, number)
        self.part_names.append(self.storage.save(name, ContentFile(pcm)))
        self.audio_bytes += len(pcm)

    @classmethod
    def from_stored_parts(
        cls, tenant_public_id: str, call_public_id: str, storage: Storage | None = None
    ) -> RecordingWriter:
        """A writer over the parts a recorder left in storage (it died before composing).

        The parts are the mixer's rendered timeline cut in consecutive pieces, so their
        concatenation in number order is the recording. A missing number would shift all
        later audio, so gaps are refused; only the last part may end mid-frame (a crash
        while it was written), and that half frame is left out.
        """
        writer = cls(tenant_public_id, call_public_id, storage)
        numbered = writer._list_parts()
        if [number for number, _ in numbered] != list(range(1, len(numbered) + 1)):
            raise RecordingError(
                f"the parts of {call_public_id} are not numbered 1 to {len(numbered)}"
            )
        audio_bytes = 0
        for position, (_, name) in enumerate(numbered, start=1):
            size = writer.storage.size(name)
            if size % FRAME_BYTES and position < len(numbered):
                raise RecordingError(f"part {name} ends mid-frame")
            audio_bytes += size
        writer.part_names = [name for _, name in numbered]
        writer.audio_bytes = audio_bytes - audio_bytes % FRAME_BYTES
        return writer

    def _list_parts(self) -> list[tuple[int, str]]:
        folder = parts_folder(self.tenant_public_id, self.call_public_id)
        try:
            _, files = self.storage.listdir(folder)
        except FileNotFoundError:
            return []
        numbered = []
        for file_name in files:
            stem, dot, extension = file_name.partition(".")
            if dot and extension == "pcm" and stem.isdigit():
                numbered.append((int(stem), f"{folder}/{file_name}"))
            else:
                raise RecordingError(f"unexpected file {folder}/{file_name} among the parts")
        return sorted(numbered)

    def compose(self) -> StoredRecording:
        """Stream the parts into the final WAV, never holding the call in memory."""
        stored = self.write_wav()
        self.delete_parts()
        return stored

    def write_wav(self) -> StoredRecording:
        """Stream the parts into the final WAV and keep them (``compose`` deletes them)."""
        header = wav_header(self.audio_bytes)
        stream = _PartsStream(self.storage, header, self.part_names, self.audio_bytes)
        final = File(cast(IO[bytes], stream), name=f"{self.call_public_id}.wav")
        final.size = len(header) + self.audio_bytes
        try:
            name = self.storage.save(
                recording_name(self.tenant_public_id, self.call_public_id), final
            )
        finally:
            stream.close()
        if stream.size != final.size:
            # The storage did not read the content exactly once: the hash is not the file's.
            self.storage.delete(name)
            raise RecordingError(f"storage read {stream.size} of {final.size} bytes")
        return StoredRecording(
            name=name,
            size_bytes=stream.size,
            duration_ms=self.audio_bytes // FRAME_BYTES * 1000 // SAMPLE_RATE,
            sha256=stream.sha256.hexdigest(),
        )

    def delete_parts(self) -> None:
        for name in self.part_names:
            try:
                self.storage.delete(name)
            except Exception:  # the retention reconcile removes orphaned parts later
                logger.exception("could not delete recording part %s", name)
        self.part_names = []
        if isinstance(self.storage, FileSystemStorage):
            # A local folder keeps empty directories; remove this call's.
            with contextlib.suppress(OSError):
                os.rmdir(
                    self.storage.path(parts_folder(self.tenant_public_id, self.call_public_id))
                )


# --- the live recorder: what the broker holds ---------------------------------------------

_CALLER, _AGENT, _TRUNCATE = 0, 1, 2


class CallRecorder:
    """One call's recording while it runs: the broker's hooks, periodic parts, the WAV.

    The hooks run on the event loop and only append to the inbox. ``flush`` and ``finish``
    hand the inbox to a worker thread (one at a time: a lock orders them) that decodes,
    mixes and writes; the database is touched only at the start and the end.
    """

    def __init__(
        self,
        recording_id: int,
        tenant_public_id: str,
        call_public_id: str,
        *,
        audio_format: str = "pcm16",
        storage: Storage | None = None,
        flush_seconds: float | None = None,
        settle_ms: int | None = None,
    ) -> None:
        self.recording_id = recording_id
        self.call_public_id = call_public_id
        self.origin = monotonic()
        self.mixer = CallMixer()
        self.writer = RecordingWriter(tenant_public_id, call_public_id, storage)
        self.caller_decoder = AudioDecoder(audio_format)
        self.agent_decoder = AudioDecoder(audio_format)
        self.flush_seconds = float(
            settings.KOE_RECORDING_FLUSH_SECONDS if flush_seconds is None else flush_seconds
        )
        settle = settings.KOE_RECORDING_SETTLE_MS if settle_ms is None else settle_ms
        self.settle_samples = int(settle) * SAMPLE_RATE // 1000
        self.inbox: list[tuple[int, float, str, Any]] = []
        self.is_failed = False
        self.is_finished = False
        self._closing = asyncio.Event()
        self._order = asyncio.Lock()  # one flush or finish at a time, in call order
        self._mixing = threading.Lock()  # belt and braces for the worker threads

    # Hooks: on the relay path, so O(1) appends and nothing else.
    def caller_audio(self, audio: str) -> None:
        if not self.is_finished:
            self.inbox.append((_CALLER, monotonic(), "", audio))

    def agent_audio(self, item_id: str, audio: str) -> None:
        if not self.is_finished:
            self.inbox.append((_AGENT, monotonic(), item_id, audio))

    def truncate(self, item_id: str, audio_end_ms: int) -> None:
        if not self.is_finished:
            self.inbox.append((_TRUNCATE, monotonic(), item_id, audio_end_ms))

    # Writing.
    async def flush(self) -> None:
        """Write the settled audio as a part (in a worker thread)."""
        async with self._order:
            if self.is_finished:
                return
            batch, self.inbox = self.inbox, []
            now = monotonic()
            try:
                await asyncio.to_thread(self._write_settled, batch, now)
            except Exception:
                logger.exception("recording part failed call=%s", self.call_public_id)
                await self._fail()

    async def flush_periodically(self) -> None:
        """Flush every few seconds until the call ends (the broker runs it as a task)."""
        while not self.is_finished:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), self.flush_seconds)
            if self._closing.is_set():
                return
            await self.flush()

    async def finish(self) -> None:
        """The call ended: write the rest, compose the WAV, complete the Recording row.

        Never raises: a recording that cannot be finished is marked failed.
        """
        self._closing.set()
        async with self._order:
            if self.is_finished:
                return
            batch, self.inbox = self.inbox, []
            self.is_finished = True
            try:
                stored = await asyncio.to_thread(self._write_all, batch, monotonic())
                await database_sync_to_async(_complete)(self.recording_id, stored)
            except Exception:
                logger.exception("recording failed call=%s", self.call_public_id)
                await self._fail()
            else:
                logger.info(
                    "recording complete call=%s duration_ms=%d bytes=%d",
                    self.call_public_id,
                    stored.duration_ms,
                    stored.size_bytes,
                )

    # Worker-thread side.
    def _at(self, moment: float) -> int:
        return round((moment - self.origin) * SAMPLE_RATE)

    def _place(self, batch: list[tuple[int, float, str, Any]]) -> None:
        for kind, moment, item_id, payload in batch:
            if kind == _CALLER:
                self.mixer.add_caller(self.caller_decoder.decode(payload), self._at(moment))
            elif kind == _AGENT:
                self.mixer.add_agent(item_id, self.agent_decoder.decode(payload), self._at(moment))
            else:
                self.mixer.truncate(item_id, int(payload))

    def _write_settled(self, batch: list[tuple[int, float, str, Any]], now: float) -> None:
        with self._mixing:
            self._place(batch)
            self.writer.write_part(self.mixer.render(self._at(now) - self.settle_samples))

    def _write_all(self, batch: list[tuple[int, float, str, Any]], now: float) -> StoredRecording:
        with self._mixing:
            self._place(batch)
            ended = self._at(now)
            self.mixer.end_agent_at(ended)
            # Caller audio sent in a burst may run past the end; it was sent, so it stays.
            self.writer.write_part(self.mixer.render(max(ended, self.mixer.end)))
            return self.writer.compose()

    async def _fail(self) -> None:
        if self.is_failed:
            return
        self.is_failed = self.is_finished = True
        self._closing.set()
        self.inbox = []
        with contextlib.suppress(Exception):
            await asyncio.to_thread(self._discard)
        try:
            await database_sync_to_async(_mark_failed)(self.recording_id)
        except Exception:
            logger.exception("could not mark recording failed call=%s", self.call_public_id)

    def _discard(self) -> None:
        with self._mixing:
            self.writer.delete_parts()


# --- the Recording row --------------------------------------------------------------------


def open_recording(call_id: int) -> Recording | None:
    """A Recording row for the call if it records (consent and retention), else None."""
    call = CallSession.objects.select_related("tenant").get(pk=call_id)
    if not call.stores_recording:
        return None
    return Recording.objects.create(
        call=call,
        tenant=call.tenant,
        status=RecordingStatus.RECORDING,
        sample_rate=SAMPLE_RATE,
        channels=CHANNELS,
        started_at=timezone.now(),
    )


async def start_recorder(
    call_id: int,
    tenant_public_id: str,
    call_public_id: str,
    audio_format: str = "pcm16",
) -> CallRecorder | None:
    """The recorder for a call just accepted, or None (no recording consent, or an error:
    the call goes on unrecorded rather than not at all)."""
    try:
        recording = await database_sync_to_async(open_recording)(call_id)
    except Exception:
        logger.exception("could not start recording call=%s", call_public_id)
        return None
    if recording is None:
        return None
    return CallRecorder(
        recording.pk, tenant_public_id, call_public_id, audio_format=audio_format or "pcm16"
    )


def _complete(recording_id: int, stored: StoredRecording) -> None:
    Recording.objects.filter(pk=recording_id).update(
        status=RecordingStatus.COMPLETE,
        file=stored.name,
        duration_ms=stored.duration_ms,
        size_bytes=stored.size_bytes,
        sha256=stored.sha256,
        completed_at=timezone.now(),
    )


def _mark_failed(recording_id: int) -> None:
    Recording.objects.filter(pk=recording_id).update(
        status=RecordingStatus.FAILED, completed_at=timezone.now()
    )


# --- recovery: a recorder that died with its process --------------------------------------


def recover_recording(
    recording: Recording, *, keep_parts: bool = False, storage: Storage | None = None
) -> StoredRecording | None:
    """Compose the WAV of a recording whose recorder died before the call's end.

    A crashed or killed server process leaves the row in ``recording`` status (or
    ``failed``, when the failure could not clean up) and the settled audio in parts. The
    retention purge calls this once the call is over (ended, or lost); it composes what
    was flushed, the last seconds before the crash being gone, exactly as ``finish``
    would have, and completes the row. The parts are deleted only once the row names the
    WAV, and not at all with ``keep_parts`` (a call under legal hold keeps everything).

    Returns the stored WAV, or None when there is nothing to compose or the row is no
    longer waiting for it (removed by a purge or an erasure, or completed meanwhile).
    Raises RecordingError when the parts cannot make a faithful recording (a gap in the
    numbering, a frame cut in the middle, more than a WAV holds); other storage errors
    propagate, and a later run tries again.
    """
    tenant_public_id = recording.tenant.public_id
    call_public_id = recording.call.public_id
    writer = RecordingWriter.from_stored_parts(tenant_public_id, call_public_id, storage)
    if not writer.part_names:
        return None
    target = recording_name(tenant_public_id, call_public_id)
    if writer.storage.exists(target) and not Recording.objects.filter(file=target).exists():
        # What the dead recorder was composing: complete or not, nothing vouches for it,
        # and it holds the name the recording should have.
        writer.storage.delete(target)
    stored = writer.write_wav()
    completed = Recording.objects.filter(
        pk=recording.pk,
        status__in=[RecordingStatus.RECORDING, RecordingStatus.FAILED],
        file="",
    ).update(
        status=RecordingStatus.COMPLETE,
        file=stored.name,
        duration_ms=stored.duration_ms,
        size_bytes=stored.size_bytes,
        sha256=stored.sha256,
        completed_at=timezone.now(),
    )
    if not completed:
        if not Recording.objects.filter(file=stored.name).exists():
            writer.storage.delete(stored.name)
        return None
    if not keep_parts:
        writer.delete_parts()
    logger.warning(
        "recording recovered from its parts call=%s duration_ms=%d bytes=%d",
        call_public_id,
        stored.duration_ms,
        stored.size_bytes,
    )
    return stored
