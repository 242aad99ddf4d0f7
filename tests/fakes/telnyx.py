"""A protocol-faithful fake of Telnyx for tests: Call Control webhooks, its REST commands and
the media stream.

Three pieces, each written from Telnyx's public documentation (cited next to every fact):

* ``TelnyxKeys`` and ``send_webhook()`` play Telnyx delivering a Call Control webhook:
  the documented JSON envelope, signed with an Ed25519 key pair whose public half is what
  the portal shows the account (``telnyx-signature-ed25519``, ``telnyx-timestamp``).
* ``FakeTelnyxRest`` is a real HTTP server on loopback for Dial (``POST /v2/calls``) and
  the call commands (``answer``, ``reject``, ``hangup``, ``transfer``,
  ``gather_using_speak``, ``streaming_start``), with Bearer auth
  and Telnyx's error bodies, recording every request; a test waits for the ``answer`` (or
  the ``dial``) and takes the ``stream_url`` from it.
* ``MediaStream`` plays Telnyx's side of a bidirectional (RTP) media stream over a real
  WebSocket: ``connected``, ``start``, caller audio as paced 20 ms ``media`` frames, which
  it can deliver out of order as Telnyx may, ``dtmf``, ``stop``; and it plays what the
  server sends back as a phone would (the player is the Twilio fake's: μ-law heard at
  8000 bytes a second, ``mark`` echoed only once the audio before it has played,
  ``clear`` dropping unplayed audio and returning the pending marks at once).

Sources:
  https://developers.telnyx.com/docs/voice/programmable-voice/receiving-webhooks
  https://developers.telnyx.com/docs/development/api-fundamentals/webhooks
  https://github.com/team-telnyx/telnyx-python/pull/242 (Ed25519 over "timestamp|body")
  https://developers.telnyx.com/api/call-control/answer-call
  https://developers.telnyx.com/api/call-control/start-call-streaming
  https://developers.telnyx.com/api-reference/call-commands/reject-a-call
  https://developers.telnyx.com/api-reference/call-commands/dial
  https://developers.telnyx.com/api-reference/call-commands/transfer-call
  https://developers.telnyx.com/api-reference/call-commands/gather-using-speak
  https://developers.telnyx.com/api-reference/callbacks/call-gather-ended
  https://developers.telnyx.com/api-reference/call-commands/streaming-start
  https://developers.telnyx.com/docs/voice/programmable-voice/answering-machine-detection
  https://developers.telnyx.com/api-reference/websockets/stream-call-media-over-websocket
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import itertools
import json
import random
import re
import secrets
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.fakes.loopback_http import LoopbackHttp, QuietServer
from tests.fakes.twilio import CHUNK_BYTES, CHUNK_SECONDS, MULAW_SILENCE
from tests.fakes.twilio import MediaStream as TwilioMediaStream

SAMPLE_RATE = 8000
# "RTP media chunks sent back to Telnyx can contain 20 milliseconds to 30 seconds of
# audio" (stream-call-media-over-websocket, Bidirectional Media): PCMU, 8 bytes a ms.
MIN_PLAYBACK_BYTES = 20 * 8
MAX_PLAYBACK_BYTES = 30_000 * 8


def new_call_control_id() -> str:
    """A call_control_id like the documented ones ("v3:" and URL-safe base64)."""
    return "v3:" + secrets.token_urlsafe(36)


# --- webhooks ---------------------------------------------------------------------------


@dataclass
class TelnyxKeys:
    """A Telnyx account's webhook signing key pair. The portal shows the public half
    (Account Settings, Keys & Credentials, Public Key) as base64 of its 32 raw bytes."""

    private_key: Ed25519PrivateKey

    @classmethod
    def generate(cls) -> TelnyxKeys:
        return cls(Ed25519PrivateKey.generate())

    @property
    def public_key(self) -> str:
        raw = self.private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        return base64.b64encode(raw).decode()

    def sign(self, timestamp: str, body: bytes) -> str:
        """``telnyx-signature-ed25519``: base64 of the Ed25519 signature (64 bytes) of
        ``f"{timestamp}|{body}"``, the raw body as sent (telnyx-python PR 242; webhooks)."""
        return base64.b64encode(self.private_key.sign(timestamp.encode() + b"|" + body)).decode()


def call_event(
    event_type: str,
    *,
    call_control_id: str,
    from_number: str,
    to_number: str,
    direction: str = "incoming",
    state: str = "parked",
    connection_id: str = "1684641123236054244",
    call_leg_id: str | None = None,
    call_session_id: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A Call Control webhook's JSON, as in receiving-webhooks' example: ``data`` with
    record_type "event", event_type, id, occurred_at and the payload; ``meta`` carries the
    delivery attempt. The payload of ``call.initiated``: call_control_id, connection_id,
    call_leg_id, call_session_id, client_state, from, to, direction ("incoming" or
    "outgoing"), state ("parked" while it rings, or "bridging")."""
    payload: dict[str, Any] = {
        "call_control_id": call_control_id,
        "connection_id": connection_id,
        "call_leg_id": call_leg_id or str(uuid.uuid4()),
        "call_session_id": call_session_id or str(uuid.uuid4()),
        "client_state": None,
        "from": from_number,
        "to": to_number,
        "direction": direction,
        "state": state,
        "start_time": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
    }
    payload.update(extra or {})
    return {
        "data": {
            "record_type": "event",
            "event_type": event_type,
            "id": str(uuid.uuid4()),
            "occurred_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "payload": payload,
        },
        "meta": {"attempt": 1, "delivered_to": ""},
    }


def webhook_headers(
    keys: TelnyxKeys,
    body: bytes,
    *,
    timestamp: int | None = None,
    signature: str | None = None,
) -> dict[str, str]:
    """The headers Telnyx signs a webhook with: ``telnyx-timestamp`` (Unix seconds) and
    ``telnyx-signature-ed25519`` over that timestamp and the body."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    return {
        "Content-Type": "application/json",
        "telnyx-timestamp": stamp,
        "telnyx-signature-ed25519": signature if signature is not None else keys.sign(stamp, body),
        "User-Agent": "telnyx-webhooks",
    }


def encode(event: Mapping[str, Any]) -> bytes:
    """A webhook body as Telnyx sends it: compact JSON (the signature covers these bytes)."""
    return json.dumps(event, separators=(",", ":")).encode()


@dataclass
class Delivery:
    status_code: int
    body: str
    json: Any


async def send_webhook(
    url: str,
    event: Mapping[str, Any],
    keys: TelnyxKeys,
    *,
    timestamp: int | None = None,
    signature: str | None = None,
    timeout: float = 15.0,
) -> Delivery:
    """POST one webhook, signed, as Telnyx does; ``timestamp`` and ``signature`` override
    the real ones (old timestamps, forged signatures)."""
    body = encode(event)
    headers = webhook_headers(keys, body, timestamp=timestamp, signature=signature)
    async with httpx.AsyncClient(timeout=timeout) as client:
        response = await client.post(url, content=body, headers=headers)
    try:
        decoded = response.json()
    except ValueError:
        decoded = None
    return Delivery(response.status_code, response.text, decoded)


# --- the REST API -----------------------------------------------------------------------


@dataclass(frozen=True)
class ActionRequest:
    """A call command the fake received."""

    action: str
    call_control_id: str
    body: dict[str, Any]
    headers: dict[str, str]  # names in lower case
    status: int  # what the fake answered
    at: float = field(default_factory=time.monotonic)

    @property
    def stream_url(self) -> str:
        return str(self.body.get("stream_url") or "")


@dataclass
class FakeTelnyxCall:
    call_control_id: str
    # "parked" (ringing, as call.initiated says), "dialing" (placed by Dial), "answered",
    # or "hangup" once over.
    state: str = "parked"
    command_ids: dict[str, float] = field(default_factory=dict)  # command_id -> when
    transferred_to: str = ""


_ACTION = re.compile(r"^/v2/calls/(?P<call>[^/]+)/actions/(?P<action>[a-z_]+)$")
_DIAL = "/v2/calls"
# answering_machine_detection's documented settings (answering-machine-detection).
_AMD_SETTINGS = {"disabled", "detect", "detect_beep", "detect_words", "greeting_end", "premium"}
_TRACKS = {"inbound_track", "outbound_track", "both_tracks"}
_BIDIRECTIONAL_MODES = {"mp3", "rtp"}
_BIDIRECTIONAL_CODECS = {"PCMU", "PCMA", "G722", "OPUS", "AMR-WB", "L16"}
_REJECT_CAUSES = {"CALL_REJECTED", "USER_BUSY"}


def telnyx_error(code: str, title: str, detail: str = "") -> dict[str, Any]:
    """Telnyx's error body: ``{"errors": [{"code", "title", "detail"}]}``. Codes: 90018 "Call
    has already ended" is documented (https://developers.telnyx.com/api/errors/90018);
    the others here are as remembered, not checked against a page."""
    return {"errors": [{"code": code, "title": title, "detail": detail or title}]}


class _RestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: QuietServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if self.server.fake.latency:
            time.sleep(self.server.fake.latency)
        headers = {name.lower(): value for name, value in self.headers.items()}
        status, answer = self.server.fake._answer(self.command, self.path, headers, raw)
        content = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        try:
            self.wfile.write(content)
        except OSError:
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_DELETE = _handle


class FakeTelnyxRest(LoopbackHttp):
    """Call Control commands on loopback: ``with FakeTelnyxRest(api_key) as telnyx:``, then
    point ``KOE_TELNYX_API_URL`` at ``telnyx.base_url``.

    ``POST /v2/calls/{call_control_id}/actions/answer`` answers a ringing (parked) incoming
    call; with ``stream_url`` (ws:// or wss://) the media is forked there, ``stream_track``
    one of inbound_track (default), outbound_track, both_tracks,
    ``stream_bidirectional_mode`` mp3 (default) or rtp, ``stream_bidirectional_codec``
    PCMU (default), PCMA, G722, OPUS, AMR-WB, L16 (answer-call, start-call-streaming).
    ``…/actions/reject`` refuses it unanswered, ``cause`` CALL_REJECTED or USER_BUSY
    (reject-a-call). ``…/actions/hangup`` ends a live call. A ``command_id`` seen for the
    same call in the last 60 s is ignored ("Telnyx will ignore any command with the same
    command_id for the same call_control_id"). Success is ``200 {"data": {"result":
    "ok"}}``; auth is ``Authorization: Bearer <API key>``.
    """

    def __init__(self, api_key: str, *, host: str = "127.0.0.1") -> None:
        self.api_key = api_key
        self.host = host
        self.calls: dict[str, FakeTelnyxCall] = {}
        self.requests: list[ActionRequest] = []
        self.latency = 0.0  # seconds each command takes to be answered (a slow API)
        self.refusal: tuple[int, dict[str, Any]] | None = None  # the next request's answer
        self.lock = threading.Lock()
        self.serve(_RestHandler, host, "fake-telnyx-rest")

    @property
    def base_url(self) -> str:
        """Stands for ``https://api.telnyx.com/v2``."""
        return f"http://{self.host}:{self.port}/v2"

    # --- running -----------------------------------------------------------------------

    # --- scripting and reading ---------------------------------------------------------
    def ring(self, call_control_id: str | None = None) -> str:
        """An incoming call is ringing (parked): the one its call.initiated names."""
        call_control_id = call_control_id or new_call_control_id()
        with self.lock:
            self.calls[call_control_id] = FakeTelnyxCall(call_control_id)
        return call_control_id

    def fail_next(self, status: int, code: str, title: str, detail: str = "") -> None:
        """The next request (Dial or command) is refused with this Telnyx error."""
        with self.lock:
            self.refusal = (status, telnyx_error(code, title, detail))

    def answer_call(self, call_control_id: str) -> None:
        """The callee of a dialled call picked up (call.answered follows)."""
        with self.lock:
            self.calls[call_control_id].state = "answered"

    def actions(self, action: str | None = None) -> list[ActionRequest]:
        with self.lock:
            return [r for r in self.requests if action is None or r.action == action]

    def wait_for(self, action: str, timeout: float = 10.0, count: int = 1) -> ActionRequest:
        """Until ``count`` ``action`` commands have arrived: the last of them."""
        deadline = time.monotonic() + timeout
        while len(found := self.actions(action)) < count:
            if time.monotonic() >= deadline:
                raise TimeoutError(f"no {action} command within {timeout} s")
            time.sleep(0.01)
        return found[count - 1]

    async def wait_for_async(
        self, action: str, timeout: float = 10.0, count: int = 1
    ) -> ActionRequest:
        deadline = time.monotonic() + timeout
        while len(found := self.actions(action)) < count:
            if time.monotonic() >= deadline:
                raise TimeoutError(f"no {action} command within {timeout} s")
            await asyncio.sleep(0.01)
        return found[count - 1]

    # --- answering ---------------------------------------------------------------------
    def _answer(
        self, method: str, path: str, headers: dict[str, str], raw: bytes
    ) -> tuple[int, dict[str, Any]]:
        bare = path.split("?", 1)[0]
        match = _ACTION.match(bare)
        action = match.group("action") if match else ("dial" if bare == _DIAL else "")
        call_control_id = match.group("call") if match else ""
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = None
        with self.lock:
            if not action or method != "POST":
                status, answer = 404, telnyx_error("10005", "Resource not found")
            elif self.refusal is not None:
                (status, answer), self.refusal = self.refusal, None
            elif action == "dial":
                status, answer = self._dial(headers, body)
                call_control_id = answer.get("data", {}).get("call_control_id", "")
            else:
                status, answer = self._route(action, call_control_id, headers, body)
            self.requests.append(
                ActionRequest(
                    action=action,
                    call_control_id=call_control_id,
                    body=body if isinstance(body, dict) else {},
                    headers=headers,
                    status=status,
                )
            )
        return status, answer

    def _route(
        self, action: str, call_control_id: str, headers: dict[str, str], body: Any
    ) -> tuple[int, dict[str, Any]]:
        scheme, _, key = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not secrets.compare_digest(key, self.api_key):
            return 401, telnyx_error("10009", "Authentication failed")
        if not isinstance(body, dict):
            return 422, telnyx_error("10015", "Invalid request body")
        call = self.calls.get(call_control_id)
        if call is None:
            return 404, telnyx_error("10005", "Resource not found", "Unknown call_control_id")
        command_id = body.get("command_id")
        now = time.monotonic()
        if isinstance(command_id, str):
            if now - call.command_ids.get(command_id, -60.0) < 60:
                return 200, {"data": {"result": "ok"}}  # a repeated command: ignored
            call.command_ids[command_id] = now
        if call.state == "hangup":
            return 422, telnyx_error("90018", "Call has already ended")
        if action == "answer":
            if call.state != "parked":
                return 422, telnyx_error("90015", "Invalid call state", "Already answered")
            problem = _check_answer(body)
            if problem is not None:
                return 422, telnyx_error("10015", "Invalid parameter", problem)
            call.state = "answered"
        elif action == "reject":
            if call.state != "parked":
                return 422, telnyx_error("90015", "Invalid call state", "Only a ringing call")
            if body.get("cause") not in _REJECT_CAUSES:
                return 422, telnyx_error("10015", "Invalid parameter", "cause is required")
            call.state = "hangup"
        elif action == "hangup":
            call.state = "hangup"
        elif action == "gather_using_speak":
            # "Speak text to the call and gather DTMF" (gather-using-speak): payload and
            # voice are required, language with the basic voices; an answered call only.
            if call.state != "answered":
                return 422, telnyx_error("90015", "Invalid call state", "Not answered")
            problem = _check_gather(body)
            if problem is not None:
                return 422, telnyx_error("10015", "Invalid parameter", problem)
        elif action == "streaming_start":
            # "Start streaming the media from a call" (streaming-start): an answered call,
            # a WebSocket stream_url, answer's streaming parameters.
            if call.state != "answered":
                return 422, telnyx_error("90015", "Invalid call state", "Not answered")
            problem = _check_answer(body) if body.get("stream_url") else "stream_url is required"
            if problem is not None:
                return 422, telnyx_error("10015", "Invalid parameter", problem)
        elif action == "transfer":
            # "Transfer a call to a new destination" (transfer-call): ``to`` is required.
            if not isinstance(body.get("to"), str) or not body["to"]:
                return 422, telnyx_error("10015", "Invalid parameter", "to is required")
            if call.state not in ("parked", "answered"):
                return 422, telnyx_error("90015", "Invalid call state", "Not a live call")
            call.transferred_to = body["to"]
        else:
            return 404, telnyx_error("10005", "Resource not found", f"No action {action}")
        return 200, {"data": {"result": "ok"}}

    def _dial(self, headers: dict[str, str], body: Any) -> tuple[int, dict[str, Any]]:
        """Dial: ``connection_id``, ``to`` and ``from`` are required; the streaming
        parameters are answer's; the answer is the new call's ``data`` (dial)."""
        scheme, _, key = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not secrets.compare_digest(key, self.api_key):
            return 401, telnyx_error("10009", "Authentication failed")
        if not isinstance(body, dict):
            return 422, telnyx_error("10015", "Invalid request body")
        for name in ("connection_id", "to", "from"):
            if not isinstance(body.get(name), str) or not body[name]:
                return 422, telnyx_error("10015", "Invalid parameter", f"{name} is required")
        problem = _check_answer(body)
        if body.get("answering_machine_detection", "disabled") not in _AMD_SETTINGS:
            problem = "answering_machine_detection is not a supported setting"
        if problem is not None:
            return 422, telnyx_error("10015", "Invalid parameter", problem)
        call_control_id = new_call_control_id()
        self.calls[call_control_id] = FakeTelnyxCall(call_control_id, state="dialing")
        data = {
            "call_control_id": call_control_id,
            "call_leg_id": str(uuid.uuid4()),
            "call_session_id": str(uuid.uuid4()),
            "client_state": body.get("client_state"),
            "is_alive": False,
            "record_type": "call",
        }
        return 200, {"data": data}


def _check_gather(body: dict[str, Any]) -> str | None:
    """Why a gather_using_speak would be refused, or None."""
    if not isinstance(body.get("payload"), str) or not body["payload"]:
        return "payload is required"
    if body.get("voice") not in ("male", "female") and not str(body.get("voice", "")).startswith(
        ("Polly.", "Azure.", "ElevenLabs.", "Telnyx.")
    ):
        return "voice is required"
    if body.get("voice") in ("male", "female") and not body.get("language"):
        return "language is required with the basic voices"
    low, high = body.get("minimum_digits", 1), body.get("maximum_digits", 128)
    if not (isinstance(low, int) and isinstance(high, int) and 1 <= low <= high <= 128):
        return "minimum_digits and maximum_digits are 1 to 128, in order"
    if not set(str(body.get("valid_digits", "0123456789#*"))) <= set("0123456789#*ABCD"):
        return "valid_digits has a character that is not a key"
    return None


def _check_answer(body: dict[str, Any]) -> str | None:
    """Why an answer's streaming parameters would be refused, or None."""
    stream_url = body.get("stream_url")
    if stream_url is not None and not (
        isinstance(stream_url, str) and stream_url.startswith(("ws://", "wss://"))
    ):
        return "stream_url must be a WebSocket URL"
    if body.get("stream_track", "inbound_track") not in _TRACKS:
        return "stream_track is not one of " + ", ".join(sorted(_TRACKS))
    if body.get("stream_bidirectional_mode", "mp3") not in _BIDIRECTIONAL_MODES:
        return "stream_bidirectional_mode is mp3 or rtp"
    # "Case sensitive" (start-call-streaming).
    if body.get("stream_bidirectional_codec", "PCMU") not in _BIDIRECTIONAL_CODECS:
        return "stream_bidirectional_codec is not a supported codec"
    return None


# --- the media stream -------------------------------------------------------------------


class MediaStream(TwilioMediaStream):
    """Telnyx's side of a bidirectional media stream, as a client; what the server sends
    is played by the Twilio fake's player (the two carriers document the same behaviour
    for ``media``, ``mark`` and ``clear``).

    Message shapes: https://developers.telnyx.com/api-reference/websockets/stream-call-media-over-websocket
    and the WebSocket events of https://developers.telnyx.com/api/call-control/start-call-streaming.
    """

    def __init__(
        self,
        connection: ClientConnection,
        *,
        stream_id: str,
        call_control_id: str,
        from_number: str,
        to_number: str,
        seed: int = 0,
    ) -> None:
        super().__init__(
            connection,
            stream_sid=stream_id,
            call_sid=call_control_id,
            account_sid="",
            parameters={},
        )
        self.stream_id = stream_id
        self.call_control_id = call_control_id
        self.from_number = from_number
        self.to_number = to_number
        self.user_id = str(uuid.uuid4())
        self.random = random.Random(seed)
        self.frames_out_of_order = 0  # media frames sent after a higher-numbered one
        self._highest_media = 0
        self._telnyx_sequence = itertools.count(1)

    @classmethod
    async def open_telnyx(
        cls,
        stream_url: str,
        *,
        call_control_id: str,
        from_number: str,
        to_number: str,
        stream_id: str | None = None,
        seed: int = 0,
        open_timeout: float = 10.0,
    ) -> MediaStream:
        """Connect to the ``stream_url`` the answer command named, then send ``connected``
        and ``start`` as Telnyx does."""
        connection = await connect(
            stream_url, open_timeout=open_timeout, max_size=None, compression=None
        )
        stream = cls(
            connection,
            stream_id=stream_id or str(uuid.uuid4()).upper(),
            call_control_id=call_control_id,
            from_number=from_number,
            to_number=to_number,
            seed=seed,
        )
        try:
            await stream._begin()
        except BaseException:
            await connection.close()
            raise
        return stream

    async def _begin(self) -> None:
        # "When the WebSocket connection is established": {"event": "connected",
        # "version": "1.0.0"}, with no sequence_number.
        await self._send({"event": "connected", "version": "1.0.0"})
        # Then start, "sequence_number": "1", stream_id at the top level, the call and the
        # media format (PCMU, 8000, mono) inside.
        await self._send(
            {
                "event": "start",
                "stream_id": self.stream_id,
                "start": {
                    "user_id": self.user_id,
                    "call_control_id": self.call_control_id,
                    "call_session_id": str(uuid.uuid4()),
                    "from": self.from_number,
                    "to": self.to_number,
                    "tags": [],
                    "client_state": None,
                    "custom_parameters": {},
                    "media_format": {"encoding": "PCMU", "sample_rate": 8000, "channels": 1},
                },
            },
            numbered=True,
        )
        self.opened_at = time.monotonic()
        self._reader = asyncio.create_task(self._read(), name="telnyx-fake-reader")
        self._player = asyncio.create_task(self._play(), name="telnyx-fake-player")

    # --- sending (the caller's side) ------------------------------------------------
    def _numbered(self, message: dict[str, Any]) -> dict[str, Any]:
        """``sequence_number``: "First message starts with 1 and then is incremented for
        each message", a string in every example; numbered when made, so frames delivered
        out of order keep the numbers of their true order."""
        return {
            "event": message["event"],
            "sequence_number": str(next(self._telnyx_sequence)),
        } | {key: value for key, value in message.items() if key != "event"}

    async def _transmit(self, message: dict[str, Any]) -> None:
        async with self._send_lock:
            if message["event"] == "media":
                number = int(message["sequence_number"])
                if number < self._highest_media:
                    self.frames_out_of_order += 1
                self._highest_media = max(self._highest_media, number)
            self.sent.append(message)
            await self.connection.send(json.dumps(message))

    async def _send(self, message: dict[str, Any], *, numbered: bool = False) -> None:
        await self._transmit(self._numbered(message) if numbered else message)

    async def send_audio(self, mulaw: bytes, *, pace: float = 1.0, reorder: int = 0) -> None:
        """The caller speaking: 20 ms ``media`` frames of 160 bytes (the last padded with
        μ-law silence), one every 20 ms / ``pace``; ``pace=0`` sends them at once.

        media.track "inbound" (stream_track inbound_track), media.chunk counting frames
        from "1", media.timestamp in milliseconds, media.payload base64 RTP payload "without
        RTP headers". With ``reorder`` above 1, frames go out shuffled within runs of that
        many: "Media frame order is not guaranteed. Use media.chunk, media.timestamp, and
        sequence_number to order frames when required."
        """
        if pace < 0:
            raise ValueError("pace must be 0 (no pacing) or positive")
        interval = CHUNK_SECONDS / pace if pace else 0.0
        now = time.monotonic()
        if pace:
            elapsed_ms = int((now - self.opened_at) * 1000)
            self._media_clock_ms = max(self._media_clock_ms, elapsed_ms // 20 * 20)
            if self._next_chunk_at is None or self._next_chunk_at < now - interval:
                self._next_chunk_at = now
        window: list[dict[str, Any]] = []
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
            message = self._numbered(
                {
                    "event": "media",
                    "media": {
                        "track": "inbound",
                        "chunk": str(next(self._chunks)),
                        "timestamp": str(self._media_clock_ms),
                        "payload": base64.b64encode(chunk).decode(),
                    },
                    "stream_id": self.stream_id,
                }
            )
            self._media_clock_ms += 20
            window.append(message)
            if len(window) >= max(reorder, 1):
                await self._deliver(window)
                window = []
        await self._deliver(window)

    async def _deliver(self, frames: list[dict[str, Any]]) -> None:
        self.random.shuffle(frames)
        for frame in frames:
            await self._transmit(frame)

    async def send_dtmf(self, digit: str) -> None:
        """A key press: {"event": "dtmf", "stream_id", "occurred_at", "sequence_number",
        "dtmf": {"digit"}}."""
        await self._send(
            {
                "event": "dtmf",
                "stream_id": self.stream_id,
                "occurred_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
                "dtmf": {"digit": digit},
            },
            numbered=True,
        )

    async def stop(self) -> None:
        """The call ends: ``stop`` (stop.user_id, stop.call_control_id), then close."""
        if self.closed_at is None and not self._closing:
            with contextlib.suppress(ConnectionClosed):
                await self._send(
                    {
                        "event": "stop",
                        "stop": {"user_id": self.user_id, "call_control_id": self.call_control_id},
                        "stream_id": self.stream_id,
                    },
                    numbered=True,
                )
        await self.close()

    # --- receiving (what the caller hears) ----------------------------------------------
    async def _handle(self, frame: str | bytes) -> None:
        if isinstance(frame, bytes):
            self._error(f"binary frame of {len(frame)} bytes (Telnyx reads JSON text frames)")
            return
        try:
            message = json.loads(frame)
        except ValueError:
            self._error(f"not JSON: {frame[:80]!r}")
            return
        self.received_events.append(message)
        if not isinstance(message, dict):
            self._error(f"not a JSON object: {frame[:80]!r}")
            return
        event = message.get("event")
        # "the connected application can send media, mark, and clear frames back".
        if event not in {"media", "mark", "clear"}:
            self._error(f"unsupported event {event!r}")
            return
        now = time.monotonic()
        if event == "media":
            media = message.get("media")
            payload = media.get("payload") if isinstance(media, dict) else None
            try:
                size = len(base64.b64decode(payload, validate=True)) if payload else 0
            except (binascii.Error, ValueError, TypeError):
                size = -1
            if 0 < size < MIN_PLAYBACK_BYTES or size > MAX_PLAYBACK_BYTES:
                # "RTP media chunks … can contain 20 milliseconds to 30 seconds of audio".
                self._error(f"media of {size} bytes: not 20 ms to 30 s of PCMU")
                return
            self._on_media(message, now)
        elif event == "mark":
            await self._on_mark(message, now)
        else:
            await self._on_clear(now)

    async def _echo(self, mark: Any) -> None:
        # "Telnyx sends a mark callback when the media immediately preceding a submitted
        # mark finishes playing … A clear frame also returns queued marks."
        mark.echoed_at = time.monotonic()
        self.echoed_marks.append(mark)
        with contextlib.suppress(ConnectionClosed):
            await self._send(
                {"event": "mark", "stream_id": self.stream_id, "mark": {"name": mark.name}},
                numbered=True,
            )
