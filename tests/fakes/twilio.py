"""A protocol-faithful fake of Twilio for tests: the voice webhook and Media Streams (the
Calls API is ``tests.fakes.twilio_rest``).

Three pieces, each written from Twilio's public documentation (cited next to every fact):

* ``ring()`` plays Twilio answering a call: it POSTs the documented voice-webhook
  parameters, signed with ``X-Twilio-Signature``, and parses the TwiML answer
  (``<Connect><Stream url><Parameter/></Stream></Connect>``).
* ``MediaStream`` plays Twilio's side of a bidirectional Media Stream over a real
  WebSocket: ``connected``, ``start``, caller audio as paced 20 ms ``media`` frames,
  ``dtmf``, ``stop``; and it plays what the server sends back the way a phone would:
  μ-law audio heard at 8000 bytes a second, ``mark`` echoed only once the audio before it
  has played, ``clear`` dropping unplayed audio and echoing pending marks at once.
  Everything the server sends that Twilio would reject is kept in ``protocol_errors``.
* ``tests.fakes.twilio_rest.FakeTwilioRest`` is a real HTTP server on loopback for the
  Calls resource (create, fetch, update), with Basic auth and Twilio's error bodies,
  recording every request.

G.711 μ-law is implemented here from the ITU-T recommendation, so tests check the
product's codec against an independent one.

Sources:
  https://www.twilio.com/docs/voice/media-streams/websocket-messages
  https://www.twilio.com/docs/voice/media-streams
  https://www.twilio.com/docs/voice/twiml/stream
  https://www.twilio.com/docs/voice/twiml#request-parameters
  https://www.twilio.com/docs/usage/security#validating-requests
  https://www.twilio.com/docs/voice/api/call-resource
  https://www.twilio.com/docs/usage/twilios-response
  https://www.itu.int/rec/T-REC-G.711
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import hmac
import itertools
import json
import secrets
import time
import xml.etree.ElementTree as ElementTree
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

API_VERSION = "2010-04-01"
SAMPLE_RATE = 8000  # start.mediaFormat.sampleRate "is always 8000" (websocket-messages)
CHUNK_BYTES = 160  # 20 ms of 8 kHz μ-law, one byte a sample
CHUNK_SECONDS = CHUNK_BYTES / SAMPLE_RATE
MULAW_SILENCE = 0xFF  # the μ-law code of 0 (G.711: 0 encodes to 0xFF)


def new_sid(prefix: str) -> str:
    """A Twilio SID: two letters then 32 hex digits (e.g. CA…, MZ…, AC…)."""
    return prefix + secrets.token_hex(16)


# --- request signing ---------------------------------------------------------------------


def twilio_signature(auth_token: str, url: str, params: Mapping[str, str]) -> str:
    """The ``X-Twilio-Signature`` Twilio sends with a webhook.

    https://www.twilio.com/docs/usage/security#validating-requests: take the full URL
    (with any query string), append each POST parameter sorted by name as name then
    value with no separator, HMAC-SHA1 that with the auth token as the key, and
    base64-encode the digest. The docs' worked example (auth token ``12345``,
    ``https://mycompany.com/myapp.php?foo=1&bar=2``, CallSid/Caller/Digits/From/To)
    gives ``RSOYDt4T1cUTdK1PDd93/VVr8B8=``; the self-tests check it.
    """
    signed = url + "".join(name + params[name] for name in sorted(params))
    digest = hmac.new(auth_token.encode(), signed.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


# --- the voice webhook -------------------------------------------------------------------


@dataclass
class Ring:
    """What the application answered when Twilio asked it what to do with a call."""

    status_code: int
    body: str
    stream_url: str | None  # <Connect><Stream url="…">, None when absent
    parameters: dict[str, str]  # the <Parameter name value/> nouns inside that <Stream>
    call_sid: str
    content_type: str = ""
    sent: dict[str, str] = field(default_factory=dict)  # the form Twilio posted
    signature: str = ""  # the X-Twilio-Signature header sent
    stream_attributes: dict[str, str] = field(default_factory=dict)  # every <Stream> attribute


def parse_twiml_stream(body: str) -> tuple[str | None, dict[str, str], dict[str, str]]:
    """(url, custom parameters, all attributes) of ``<Response><Connect><Stream>``.

    https://www.twilio.com/docs/voice/twiml/stream: ``<Connect><Stream>`` opens a
    bidirectional stream (``<Start><Stream>`` a one-way one, not counted here); nested
    ``<Parameter name value/>`` nouns reach the WebSocket as ``start.customParameters``.
    """
    try:
        root = ElementTree.fromstring(body)
    except ElementTree.ParseError:
        return None, {}, {}
    if root.tag != "Response":
        return None, {}, {}
    stream = root.find("./Connect/Stream")
    if stream is None:
        return None, {}, {}
    parameters = {
        parameter.get("name", ""): parameter.get("value", "")
        for parameter in stream.findall("./Parameter")
    }
    return stream.get("url"), parameters, dict(stream.attrib)


async def ring(
    webhook_url: str,
    *,
    auth_token: str,
    account_sid: str,
    call_sid: str | None = None,
    from_number: str,
    to_number: str,
    direction: str = "inbound",
    call_status: str | None = None,
    sign: bool = True,
    signature: str | None = None,
    extra: Mapping[str, str] | None = None,
    timeout: float = 15.0,
    public_url: str | None = None,
) -> Ring:
    """POST the voice webhook the way Twilio does when a call comes in, and read the TwiML.

    Parameters per https://www.twilio.com/docs/voice/twiml#request-parameters: CallSid,
    AccountSid, From, To, CallStatus, ApiVersion, Direction are always sent (the
    geographic From*/To* fields and CallerName/ForwardedFrom only "if available": pass
    them in ``extra``). Twilio also sends the legacy Caller/Called pair (same values as
    From/To; documented for the 2008 API and still sent), so they are here too. The body
    is application/x-www-form-urlencoded (same page). An inbound call is asked while
    ``ringing``; an outbound-api call's Url is fetched once it is answered, ``in-progress``.

    ``sign=False`` sends a signature made with a wrong token; ``signature`` sends that
    exact header value. ``public_url`` is the URL configured at Twilio when a proxy or a
    tunnel in front of the application forwards it to ``webhook_url``: Twilio signs the
    URL it requested.
    """
    call_sid = call_sid or new_sid("CA")
    if call_status is None:
        call_status = "ringing" if direction == "inbound" else "in-progress"
    form = {
        "AccountSid": account_sid,
        "ApiVersion": API_VERSION,
        "CallSid": call_sid,
        "CallStatus": call_status,
        "Called": to_number,
        "Caller": from_number,
        "Direction": direction,
        "From": from_number,
        "To": to_number,
    }
    form.update(extra or {})
    if signature is None:
        signature = twilio_signature(
            auth_token if sign else auth_token + "-wrong", public_url or webhook_url, form
        )
    headers = {
        "X-Twilio-Signature": signature,
        "User-Agent": "TwilioProxy/1.1",
        "Accept": "*/*",
    }
    async with httpx.AsyncClient(timeout=timeout) as client:
        response = await client.post(webhook_url, data=form, headers=headers)
    stream_url, parameters, attributes = parse_twiml_stream(response.text)
    return Ring(
        status_code=response.status_code,
        body=response.text,
        stream_url=stream_url,
        parameters=parameters,
        call_sid=call_sid,
        content_type=response.headers.get("content-type", ""),
        sent=form,
        signature=signature,
        stream_attributes=attributes,
    )


# --- G.711 μ-law, from ITU-T G.711 -------------------------------------------------------
#
# https://www.itu.int/rec/T-REC-G.711 (Tables 2a/2b): μ-law codes 14-bit linear samples
# as a sign, a 3-bit segment and a 4-bit step, all bits inverted. The encoder follows the
# ITU-T's own reference code (G.191 Software Tools Library, ulaw_compress): drop the two
# low bits of the 16-bit sample (one's complement for negatives), add the bias 33, the
# segment is where the highest bit sits above bit 5, the step the 4 bits below it.
# (CPython's audioop rounds negative samples the other way: it can differ by one step.)

_MULAW_BIAS = 0x84  # 33 in 14-bit units, as seen on 16-bit samples
_SEGMENT_ENDS = np.array([0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF])


def pcm16_to_mulaw(samples: bytes) -> bytes:
    """Little-endian PCM16 mono to G.711 μ-law, one byte a sample."""
    pcm = np.frombuffer(samples, dtype="<i2").astype(np.int32)
    magnitude = np.minimum((np.where(pcm < 0, ~pcm, pcm) >> 2) + 33, 0x1FFF)
    segment = np.searchsorted(_SEGMENT_ENDS, magnitude, side="left")
    step = (magnitude >> (segment + 1)) & 0x0F
    code = ~((segment << 4) | step) & 0x7F
    return np.where(pcm >= 0, code | 0x80, code).astype(np.uint8).tobytes()


def _mulaw_table() -> np.ndarray:
    codes = ~np.arange(256, dtype=np.int32) & 0xFF
    step = codes & 0x0F
    segment = (codes & 0x70) >> 4
    magnitude = ((step << 3) + _MULAW_BIAS) << segment
    return np.where(codes & 0x80, _MULAW_BIAS - magnitude, magnitude - _MULAW_BIAS).astype("<i2")


_MULAW_TO_PCM = _mulaw_table()


def mulaw_to_pcm16(data: bytes) -> bytes:
    """G.711 μ-law to little-endian PCM16 mono."""
    return _MULAW_TO_PCM[np.frombuffer(data, dtype=np.uint8)].tobytes()


def _lowpass(cutoff: float, taps: int = 97) -> np.ndarray:
    """A windowed-sinc FIR low-pass; ``cutoff`` in cycles per sample (below 0.5)."""
    n = np.arange(taps) - (taps - 1) / 2
    kernel = 2 * cutoff * np.sinc(2 * cutoff * n) * np.blackman(taps)
    return kernel / kernel.sum()


_ANTI_ALIAS_24K = _lowpass(3600 / 24000)  # under the 4 kHz Nyquist of 8 kHz audio


def downsample_24k_to_8k(pcm16: bytes) -> bytes:
    """PCM16 24 kHz mono to 8 kHz: FIR low-pass at 3.6 kHz, then keep every third sample."""
    samples = np.frombuffer(pcm16, dtype="<i2").astype(np.float64)
    if samples.size == 0:
        return b""
    filtered = np.convolve(samples, _ANTI_ALIAS_24K, mode="same")
    decimated = filtered[: samples.size // 3 * 3 : 3]
    return np.clip(np.rint(decimated), -32768, 32767).astype("<i2").tobytes()


def tone_mulaw(milliseconds: int, frequency: float = 440.0, amplitude: int = 8000) -> bytes:
    """A sine as 8 kHz μ-law: what a caller says in tests."""
    count = SAMPLE_RATE * milliseconds // 1000
    sine = amplitude * np.sin(2 * np.pi * frequency * np.arange(count) / SAMPLE_RATE)
    return pcm16_to_mulaw(np.rint(sine).astype("<i2").tobytes())


# --- Media Streams -----------------------------------------------------------------------


@dataclass
class Mark:
    """A ``mark`` the server sent, and when the fake echoed it back."""

    name: str
    received_at: float  # time.monotonic()
    position: int  # bytes of audio queued before it (since the stream began)
    echoed_at: float | None = None
    cleared: bool = False  # echoed because a ``clear`` dropped the audio before it


@dataclass
class Clear:
    at: float  # time.monotonic()
    dropped_bytes: int  # unplayed audio thrown away
    marks: list[str]  # pending marks echoed because of it


class MediaStream:
    """Twilio's side of a bidirectional Media Stream (``<Connect><Stream>``), as a client.

    Message shapes: https://www.twilio.com/docs/voice/media-streams/websocket-messages.
    """

    def __init__(
        self,
        connection: ClientConnection,
        *,
        stream_sid: str,
        call_sid: str,
        account_sid: str,
        parameters: Mapping[str, str],
    ) -> None:
        self.connection = connection
        self.stream_sid = stream_sid
        self.call_sid = call_sid
        self.account_sid = account_sid
        self.custom_parameters = dict(parameters)
        # What the caller "heard", in order, and everything the server sent.
        self.played = bytearray()
        self.received_audio = bytearray()  # every media payload, cleared or not
        self.media_arrivals: list[tuple[float, int]] = []  # (monotonic time, bytes)
        self.received_marks: list[Mark] = []
        self.echoed_marks: list[Mark] = []
        self.clears: list[Clear] = []
        self.received_events: list[Any] = []  # every text frame the server sent, decoded
        self.protocol_errors: list[str] = []
        self.sent: list[dict[str, Any]] = []  # every message this fake sent
        self.close_code: int | None = None
        self.close_reason: str | None = None
        self.opened_at = time.monotonic()
        self.closed_at: float | None = None
        self._sequence = itertools.count(1)
        self._chunks = itertools.count(1)
        self._send_lock = asyncio.Lock()
        self._media_clock_ms = 0  # timestamp of the next inbound chunk
        self._next_chunk_at: float | None = None  # pacing deadline of the next chunk
        self._closing = False
        # The simulated player: audio plays at 8000 bytes a second from ``_anchor_time``,
        # when ``_anchor_played`` bytes had played; it restarts whenever audio arrives
        # to an empty queue.
        self._queue = bytearray()
        self._queued_total = 0
        self._anchor_time = 0.0
        self._anchor_played = 0
        self._pending_marks: deque[Mark] = deque()
        self._reader: asyncio.Task[None] | None = None
        self._player: asyncio.Task[None] | None = None

    # --- opening -----------------------------------------------------------------------
    @classmethod
    async def open(
        cls,
        stream_url: str,
        parameters: Mapping[str, str] | None = None,
        *,
        call_sid: str | None = None,
        account_sid: str,
        stream_sid: str | None = None,
        auth_token: str | None = None,
        open_timeout: float = 10.0,
    ) -> MediaStream:
        """Connect, then send ``connected`` and ``start`` as Twilio does.

        With ``auth_token``, the upgrade request carries ``X-Twilio-Signature`` over the
        stream URL and no parameters (Twilio signs its Media Streams requests too:
        https://www.twilio.com/docs/api/errors/31930 asks you to validate it).
        """
        headers = {}
        if auth_token is not None:
            headers["X-Twilio-Signature"] = twilio_signature(auth_token, stream_url, {})
        connection = await connect(
            stream_url,
            additional_headers=headers,
            open_timeout=open_timeout,
            max_size=None,
            compression=None,
        )
        stream = cls(
            connection,
            stream_sid=stream_sid or new_sid("MZ"),
            call_sid=call_sid or new_sid("CA"),
            account_sid=account_sid,
            parameters=parameters or {},
        )
        try:
            await stream._begin()
        except BaseException:
            await connection.close()
            raise
        return stream

    async def _begin(self) -> None:
        # "the first message your WebSocket server receives"; it has no sequenceNumber.
        await self._send({"event": "connected", "protocol": "Call", "version": "1.0.0"})
        # "sent immediately after the connected message … only sent once"; its
        # sequenceNumber is "1", incremented for each later message.
        await self._send(
            {
                "event": "start",
                "start": {
                    "accountSid": self.account_sid,
                    "streamSid": self.stream_sid,
                    "callSid": self.call_sid,
                    "tracks": ["inbound"],
                    "customParameters": self.custom_parameters,
                    "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
                },
                "streamSid": self.stream_sid,
            },
            numbered=True,
        )
        self.opened_at = time.monotonic()
        self._reader = asyncio.create_task(self._read(), name="twilio-fake-reader")
        self._player = asyncio.create_task(self._play(), name="twilio-fake-player")

    async def __aenter__(self) -> MediaStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- sending (the caller's side) ------------------------------------------------
    async def _send(self, message: dict[str, Any], *, numbered: bool = False) -> None:
        async with self._send_lock:
            if numbered:
                # sequenceNumber is a string in every documented example.
                message = {
                    "event": message["event"],
                    "sequenceNumber": str(next(self._sequence)),
                } | {key: value for key, value in message.items() if key != "event"}
            self.sent.append(message)
            await self.connection.send(json.dumps(message))

    async def send_audio(self, mulaw: bytes, *, pace: float = 1.0) -> None:
        """The caller speaking: 20 ms ``media`` frames of 160 bytes (the last padded with
        μ-law silence), one every 20 ms / ``pace`` by the monotonic clock; ``pace=0`` sends
        them as fast as possible.

        media.track "inbound"; media.chunk starts at "1" and increments; media.timestamp
        is milliseconds "from the start of the stream"; media.payload base64 (all strings,
        as in the documented example).
        """
        if pace < 0:
            raise ValueError("pace must be 0 (no pacing) or positive")
        interval = CHUNK_SECONDS / pace if pace else 0.0
        now = time.monotonic()
        if pace:
            # A caller who was silent does not rewind the media clock: timestamps follow
            # the wall clock across gaps, as Twilio's do.
            elapsed_ms = int((now - self.opened_at) * 1000)
            self._media_clock_ms = max(self._media_clock_ms, elapsed_ms // 20 * 20)
            # Carry on from the last deadline if it is recent, so back-to-back calls
            # do not drift; start afresh after a pause.
            if self._next_chunk_at is None or self._next_chunk_at < now - interval:
                self._next_chunk_at = now
        for offset in range(0, len(mulaw), CHUNK_BYTES):
            chunk = mulaw[offset : offset + CHUNK_BYTES]
            chunk = chunk + bytes([MULAW_SILENCE]) * (CHUNK_BYTES - len(chunk))
            if pace:
                assert self._next_chunk_at is not None
                delay = self._next_chunk_at - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                self._next_chunk_at += interval
            else:
                await asyncio.sleep(0)
            await self._send(
                {
                    "event": "media",
                    "media": {
                        "track": "inbound",
                        "chunk": str(next(self._chunks)),
                        "timestamp": str(self._media_clock_ms),
                        "payload": base64.b64encode(chunk).decode(),
                    },
                    "streamSid": self.stream_sid,
                },
                numbered=True,
            )
            self._media_clock_ms += 20

    async def send_silence(self, milliseconds: int, *, pace: float = 1.0) -> None:
        await self.send_audio(
            bytes([MULAW_SILENCE]) * (SAMPLE_RATE * milliseconds // 1000), pace=pace
        )

    async def send_dtmf(self, digit: str) -> None:
        """A key press: dtmf.track "is always inbound_track" (websocket-messages, DTMF)."""
        await self._send(
            {
                "event": "dtmf",
                "streamSid": self.stream_sid,
                "dtmf": {"track": "inbound_track", "digit": digit},
            },
            numbered=True,
        )

    async def stop(self) -> None:
        """The caller hangs up: ``stop`` (with stop.accountSid and stop.callSid), then close."""
        if self.closed_at is None and not self._closing:
            with contextlib.suppress(ConnectionClosed):
                await self._send(
                    {
                        "event": "stop",
                        "stop": {"accountSid": self.account_sid, "callSid": self.call_sid},
                        "streamSid": self.stream_sid,
                    },
                    numbered=True,
                )
        await self.close()

    async def close(self, code: int = 1000) -> None:
        """Close the WebSocket (without ``stop``) and stop the reader and the player."""
        self._closing = True
        with contextlib.suppress(ConnectionClosed):
            await self.connection.close(code)
        for task in (self._reader, self._player):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._note_closed()

    def _note_closed(self) -> None:
        if self.closed_at is None:
            self.closed_at = time.monotonic()
        self.close_code = self.connection.close_code
        self.close_reason = self.connection.close_reason

    @property
    def closed(self) -> bool:
        return self.closed_at is not None

    @property
    def closed_by_server(self) -> bool:
        """The server ended the stream (this side had not started closing)."""
        return self.closed_at is not None and not self._closing

    # --- receiving (what the caller hears) ----------------------------------------------
    async def _read(self) -> None:
        try:
            async for frame in self.connection:
                await self._handle(frame)
        except ConnectionClosed:
            pass
        finally:
            self._note_closed()
            if not self._closing and self._player is not None:
                self._player.cancel()  # nobody is listening any more

    def _error(self, problem: str) -> None:
        self.protocol_errors.append(problem)

    async def _handle(self, frame: str | bytes) -> None:
        if isinstance(frame, bytes):
            # "Send Media Streams messages as text WebSocket messages. Do not use binary
            # frames." https://www.twilio.com/docs/api/errors/31950
            self._error(f"binary frame of {len(frame)} bytes (Twilio warning 31950)")
            return
        try:
            message = json.loads(frame)
        except ValueError:
            self._error(f"not JSON (Twilio warning 31950): {frame[:80]!r}")
            return
        self.received_events.append(message)
        if not isinstance(message, dict):
            self._error(f"not a JSON object: {frame[:80]!r}")
            return
        event = message.get("event")
        # Only media, mark and clear may be sent back on a bidirectional stream
        # (websocket-messages, "Send WebSocket Messages to Twilio"; anything else is
        # https://www.twilio.com/docs/api/errors/31924).
        if event not in {"media", "mark", "clear"}:
            self._error(f"unsupported event {event!r} (Twilio error 31924)")
            return
        # Each carries the streamSid "of the Stream that should play the audio" / "receive
        # the mark" / "in which you wish to interrupt the audio".
        if message.get("streamSid") != self.stream_sid:
            self._error(
                f"{event} for streamSid {message.get('streamSid')!r}, not {self.stream_sid!r}"
            )
            return
        now = time.monotonic()
        if event == "media":
            self._on_media(message, now)
        elif event == "mark":
            await self._on_mark(message, now)
        else:
            await self._on_clear(now)

    def _on_media(self, message: dict[str, Any], now: float) -> None:
        media = message.get("media")
        payload = media.get("payload") if isinstance(media, dict) else None
        if not isinstance(payload, str) or not payload:
            self._error(f"media without a media.payload string: {str(message)[:120]}")
            return
        try:
            audio = base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            self._error(f"media.payload is not base64: {payload[:40]!r}")
            return
        # "Raw mulaw/8000 audio … do not include audio file header bytes"
        # (websocket-messages; https://www.twilio.com/docs/api/errors/31924).
        if audio[:4] in {b"RIFF", b"RIFX", b"FORM", b".snd", b"OggS", b"ID3\x03", b"ID3\x04"}:
            self._error(f"media.payload starts with a file header {audio[:4]!r}")
            return
        self._advance(now)
        if not self._queue:
            self._anchor_time = now  # the player was idle: it starts with this audio
            self._anchor_played = len(self.played)
        self._queue += audio
        self._queued_total += len(audio)
        self.received_audio += audio
        self.media_arrivals.append((now, len(audio)))

    async def _on_mark(self, message: dict[str, Any], now: float) -> None:
        mark_object = message.get("mark")
        name = mark_object.get("name") if isinstance(mark_object, dict) else None
        if not isinstance(name, str):
            self._error(f"mark without a mark.name string: {str(message)[:120]}")
            return
        # "Send a mark event message after sending a media event message to be notified
        # when the audio that you have sent has been completed" (websocket-messages).
        mark = Mark(name=name, received_at=now, position=self._queued_total)
        self.received_marks.append(mark)
        self._pending_marks.append(mark)
        self._advance(now)
        await self._echo_played_marks()

    async def _on_clear(self, now: float) -> None:
        # "This empties all buffered audio and causes any mark messages to be sent back
        # to your WebSocket server" (websocket-messages, "Send a Clear Message").
        self._advance(now)
        dropped = len(self._queue)
        self._queue.clear()
        self._queued_total = len(self.played)
        pending = list(self._pending_marks)
        self.clears.append(Clear(at=now, dropped_bytes=dropped, marks=[m.name for m in pending]))
        self._pending_marks.clear()
        for mark in pending:
            mark.cleared = True
            await self._echo(mark)

    def _advance(self, now: float) -> None:
        """Move the audio that has played by ``now`` from the queue to ``played``."""
        if not self._queue:
            return
        due = self._anchor_played + int((now - self._anchor_time) * SAMPLE_RATE)
        count = min(max(due - len(self.played), 0), len(self._queue))
        if count:
            self.played += self._queue[:count]
            del self._queue[:count]

    async def _echo_played_marks(self) -> None:
        while self._pending_marks and self._pending_marks[0].position <= len(self.played):
            await self._echo(self._pending_marks.popleft())

    async def _echo(self, mark: Mark) -> None:
        # The mark Twilio sends back: event, sequenceNumber, streamSid, mark.name.
        mark.echoed_at = time.monotonic()
        self.echoed_marks.append(mark)
        with contextlib.suppress(ConnectionClosed):
            await self._send(
                {"event": "mark", "streamSid": self.stream_sid, "mark": {"name": mark.name}},
                numbered=True,
            )

    async def _play(self) -> None:
        while True:
            now = time.monotonic()
            self._advance(now)
            await self._echo_played_marks()
            if self._pending_marks and self._queue:
                # Wake when the next mark's audio has played (or at the next tick).
                remaining = self._pending_marks[0].position - len(self.played)
                await asyncio.sleep(min(max(remaining / SAMPLE_RATE, 0.001), 0.02))
            else:
                await asyncio.sleep(0.005)

    # --- waiting -----------------------------------------------------------------------
    @property
    def queued_bytes(self) -> int:
        """Audio received and not yet played."""
        self._advance(time.monotonic())
        return len(self._queue)

    async def _wait(self, condition: Any, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() >= deadline:
                raise TimeoutError(f"{what} within {timeout} s")
            await asyncio.sleep(0.005)

    async def wait_for_audio(
        self, min_ms: int, timeout: float = 10.0, *, played: bool = False
    ) -> None:
        """Until the server has sent (or, with ``played``, the caller has heard) ``min_ms``."""
        wanted = SAMPLE_RATE * min_ms // 1000

        def enough() -> bool:
            self._advance(time.monotonic())
            return len(self.played if played else self.received_audio) >= wanted

        await self._wait(enough, timeout, f"no {min_ms} ms of agent audio")

    async def wait_until_quiet(self, silence_ms: int, timeout: float = 10.0) -> None:
        """Until no agent audio has arrived for ``silence_ms`` (counted from the last
        ``media`` frame, or from the start of the stream if none came)."""

        def quiet() -> bool:
            last = self.media_arrivals[-1][0] if self.media_arrivals else self.opened_at
            return time.monotonic() - last >= silence_ms / 1000

        await self._wait(quiet, timeout, f"agent audio did not pause for {silence_ms} ms")

    async def wait_for_playback(self, timeout: float = 10.0) -> None:
        """Until everything received so far has been played."""
        await self._wait(lambda: self.queued_bytes == 0, timeout, "audio still queued")

    async def wait_for_mark(self, name: str, timeout: float = 10.0) -> Mark:
        """Until the mark called ``name`` has been echoed back."""
        await self._wait(
            lambda: any(mark.name == name for mark in self.echoed_marks),
            timeout,
            f"mark {name!r} not echoed",
        )
        return next(mark for mark in self.echoed_marks if mark.name == name)

    async def wait_closed(self, timeout: float = 10.0) -> None:
        """Until the WebSocket is closed (by either side)."""
        await self._wait(lambda: self.closed_at is not None, timeout, "stream not closed")
