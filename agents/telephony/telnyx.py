"""Telnyx's protocol, as its public docs give it: webhook signatures, Call Control events and
commands, media stream messages.

- Webhooks: every event of the calls on a Call Control (Voice API) application is POSTed
  as JSON ``{"data": {"record_type": "event", "event_type": "call.initiated", "id",
  "occurred_at", "payload": {"call_control_id", "call_leg_id", "call_session_id",
  "connection_id", "client_state", "from", "to", "direction": "incoming"|"outgoing",
  "state": "parked"|"bridging"}}}``. Delivery order is not guaranteed and duplicates happen.
  https://developers.telnyx.com/docs/voice/programmable-voice/receiving-webhooks
- Webhook security: ``telnyx-signature-ed25519`` is base64(Ed25519 signature) of
  ``f"{telnyx-timestamp}|{raw body}"``, made with the account's key pair whose public half
  the portal shows (Account Settings, Keys & Credentials, Public Key); ``telnyx-timestamp``
  is Unix seconds, and signatures outside a replay window (5 minutes) are rejected.
  https://developers.telnyx.com/docs/development/api-fundamentals/webhooks
  https://github.com/team-telnyx/telnyx-python/pull/242
- Commands: ``POST {api}/calls/{call_control_id}/actions/{answer|reject|hangup}`` with
  ``Authorization: Bearer <API key>``. ``answer`` with ``stream_url`` forks the call's
  media to a WebSocket; ``stream_track`` ``inbound_track`` (the caller),
  ``stream_bidirectional_mode`` ``rtp`` lets the application send audio back as RTP
  payloads (the default, ``mp3``, plays one file a second), ``stream_bidirectional_codec``
  ``PCMU``. ``reject`` (``cause`` ``CALL_REJECTED`` or ``USER_BUSY``) refuses an incoming
  call unanswered. A ``command_id`` repeated for the same call within 60 s is ignored.
  https://developers.telnyx.com/api/call-control/answer-call
  https://developers.telnyx.com/api/call-control/start-call-streaming
  https://developers.telnyx.com/api-reference/call-commands/reject-a-call
  https://github.com/deepgram/deepclaw/pull/8 (answer without the bidirectional mode is
  one-way: the caller hears nothing)
- Outbound: ``POST {api}/calls`` (Dial) with ``connection_id`` (the Call Control
  application), ``to``, ``from``, ``timeout_secs``, the same streaming parameters as
  ``answer``, ``answering_machine_detection`` and ``webhook_url``; it answers ``{"data":
  {"call_control_id", "call_leg_id", "call_session_id", ...}}``. Then come
  ``call.initiated`` (direction ``outgoing``), ``call.answered`` or ``call.hangup`` (with
  ``hangup_cause``: ``normal_clearing``, ``user_busy``, ``timeout``, ``no_answer``,
  ``call_rejected``, ``originator_cancel``, ``not_found``, ``time_limit``, ``unspecified``;
  ``start_time``, ``end_time``), and the answering-machine events:
  ``call.machine.detection.ended`` (``result`` human, machine, not_sure),
  ``call.machine.greeting.ended`` (``result`` beep_detected, ended, not_sure),
  ``call.machine.premium.detection.ended`` (human_residence, human_business, machine,
  silence, fax_detected, not_sure) and ``call.machine.premium.greeting.ended``.
  https://developers.telnyx.com/api-reference/call-commands/dial
  https://developers.telnyx.com/docs/voice/programmable-voice/answering-machine-detection
  https://developers.telnyx.com/api-reference/callbacks/call-machine-greeting-ended
  https://www.rubydoc.info/gems/telnyx/Telnyx/Models/CallHangup/Payload (hangup_cause)
- Consent by key press: ``answer`` without ``stream_url`` takes the call; on
  ``call.answered``, ``…/actions/gather_using_speak`` (``payload`` the text, ``voice``
  ``female`` with ``language``, ``minimum_digits``/``maximum_digits``, ``valid_digits``,
  ``timeout_millis``) reads it and collects a key; ``call.gather.ended`` brings ``digits``
  and ``status`` (``valid``, ``invalid``, ``timeout``, ``call_hangup``, ``cancelled``).
  ``…/actions/streaming_start`` then forks the media as ``answer`` would have.
  https://developers.telnyx.com/api-reference/call-commands/gather-using-speak
  https://developers.telnyx.com/api-reference/callbacks/call-gather-ended
  https://developers.telnyx.com/api-reference/call-commands/streaming-start
- ``POST {api}/calls/{call_control_id}/actions/transfer`` with ``to`` moves the call to a
  new destination (a cold transfer); if the new leg fails, the original call stays up.
  https://developers.telnyx.com/api-reference/call-commands/transfer-call
- The stream's messages: in ``connected``, ``start`` {stream_id, start.call_control_id,
  start.media_format {encoding PCMU, sample_rate 8000, channels 1}}, ``media``
  {sequence_number, media.track, media.chunk, media.timestamp, media.payload: base64 RTP
  payload}, ``dtmf`` {dtmf.digit}, ``mark`` (echoed once the audio before it has played),
  ``error``, ``stop``. Out ``media`` {media.payload} (20 ms to 30 s of audio a message),
  ``mark`` {mark.name}, ``clear`` (drops the queued audio and returns the queued marks).
  Frame order is not guaranteed: ``sequence_number`` orders them.
  https://developers.telnyx.com/api-reference/websockets/stream-call-media-over-websocket
"""

from __future__ import annotations

import base64
import binascii
import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_for_futures
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from django.conf import settings

logger = logging.getLogger("koe.telephony")

SIGNATURE_HEADER = "telnyx-signature-ed25519"
TIMESTAMP_HEADER = "telnyx-timestamp"
# Older (or newer) signatures are refused: a captured webhook cannot be replayed later.
SIGNATURE_TOLERANCE_SECONDS = 300
ED25519_PUBLIC_KEY_BYTES = 32

CALL_INITIATED = "call.initiated"
CALL_ANSWERED = "call.answered"
CALL_HANGUP = "call.hangup"
CALL_GATHER_ENDED = "call.gather.ended"
MACHINE_DETECTION_ENDED = "call.machine.detection.ended"
MACHINE_GREETING_ENDED = "call.machine.greeting.ended"
MACHINE_PREMIUM_DETECTION_ENDED = "call.machine.premium.detection.ended"
MACHINE_PREMIUM_GREETING_ENDED = "call.machine.premium.greeting.ended"
INCOMING = "incoming"

ANSWER = "answer"
REJECT = "reject"
HANGUP = "hangup"
TRANSFER = "transfer"
GATHER = "gather_using_speak"
STREAMING_START = "streaming_start"
# How long the caller has to press a key after the consent text is read.
GATHER_TIMEOUT_MILLIS = 10_000
CALL_REJECTED = "CALL_REJECTED"
USER_BUSY = "USER_BUSY"

# The answer lets the webhook's 200 go first; a hung Telnyx API must not hold a worker long.
COMMAND_TIMEOUT = httpx.Timeout(10.0, connect=5.0)


# --- webhook signatures ---------------------------------------------------------------------
def public_key(text: str) -> Ed25519PublicKey | None:
    """The Ed25519 public key the portal shows (base64 of its 32 bytes), or None."""
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    if len(raw) != ED25519_PUBLIC_KEY_BYTES:
        return None
    try:
        return Ed25519PublicKey.from_public_bytes(raw)
    except ValueError:
        return None


def is_signed(
    key_text: str, body: bytes, timestamp: str, signature: str, now: float | None = None
) -> bool:
    """Whether ``body`` was signed by the key pair of ``key_text`` at ``timestamp``, and
    that moment is within the replay window."""
    key = public_key(key_text) if key_text else None
    if key is None or not timestamp or not signature:
        return False
    try:
        signed_at = int(timestamp)
        signature_bytes = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        return False
    moment = time.time() if now is None else now
    if abs(moment - signed_at) > SIGNATURE_TOLERANCE_SECONDS:
        return False
    try:
        key.verify(signature_bytes, timestamp.encode() + b"|" + body)
    except InvalidSignature:
        return False
    return True


# --- webhook events -------------------------------------------------------------------------
@dataclass(frozen=True)
class CallEvent:
    """The fields of a Call Control webhook that Koe reads."""

    event_type: str
    call_control_id: str
    call_leg_id: str
    call_session_id: str
    connection_id: str
    from_number: str
    to_number: str
    direction: str
    client_state: str = ""
    hangup_cause: str = ""
    result: str = ""  # answering-machine detection's verdict
    start_time: str = ""
    end_time: str = ""
    digits: str = ""  # call.gather.ended: the keys pressed
    status: str = ""  # call.gather.ended: valid, invalid, timeout, call_hangup, cancelled

    @property
    def own_number(self) -> str:
        """The tenant's number on this call: called on an incoming call, calling on an
        outgoing one."""
        return self.to_number if self.direction == INCOMING else self.from_number


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def parse_event(document: Any) -> CallEvent | None:
    """A webhook's JSON as a ``CallEvent``; None when it is not shaped like one."""
    data = document.get("data") if isinstance(document, dict) else None
    if not isinstance(data, dict) or not isinstance(data.get("event_type"), str):
        return None
    payload = data.get("payload")
    payload = payload if isinstance(payload, dict) else {}
    return CallEvent(
        event_type=data["event_type"],
        call_control_id=_text(payload.get("call_control_id")),
        call_leg_id=_text(payload.get("call_leg_id")),
        call_session_id=_text(payload.get("call_session_id")),
        connection_id=_text(payload.get("connection_id")),
        from_number=_text(payload.get("from")),
        to_number=_text(payload.get("to")),
        direction=_text(payload.get("direction")),
        client_state=_text(payload.get("client_state")),
        hangup_cause=_text(payload.get("hangup_cause")),
        result=_text(payload.get("result")),
        start_time=_text(payload.get("start_time")),
        digits=_text(payload.get("digits")),
        status=_text(payload.get("status")),
        end_time=_text(payload.get("end_time")),
    )


# --- commands -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Command:
    """A Call Control command for one call, authorised by the account's API key."""

    api_key: str
    call_control_id: str
    action: str
    body: dict[str, Any]

    @property
    def url(self) -> str:
        # The id goes in the path: "/", "?" or "#" in it must not change the path.
        call = quote(self.call_control_id, safe=":")
        return f"{settings.KOE_TELNYX_API_URL}/calls/{call}/actions/{self.action}"


def _streaming(stream_url: str) -> dict[str, str]:
    """Koe's media stream, both ways, in μ-law."""
    return {
        "stream_url": stream_url,
        "stream_track": "inbound_track",
        "stream_bidirectional_mode": "rtp",
        "stream_bidirectional_codec": "PCMU",
    }


def answer(api_key: str, call_control_id: str, stream_url: str | None) -> Command:
    """Answer the call and fork it to Koe's media stream; without ``stream_url``, only
    answer it (the caller is asked for consent first)."""
    body = _streaming(stream_url) if stream_url is not None else {}
    # A duplicate webhook's answer is ignored by Telnyx rather than failing the call.
    body["command_id"] = f"koe-answer-{call_control_id}"[:128]
    return Command(api_key, call_control_id, ANSWER, body)


def gather_consent(api_key: str, call_control_id: str, prompt: str) -> Command:
    """Read ``prompt`` to the caller and collect one key."""
    body = {
        "payload": prompt,
        "voice": "female",
        "language": "en-US",
        "minimum_digits": 1,
        "maximum_digits": 1,
        "valid_digits": "0123456789*#",
        "timeout_millis": GATHER_TIMEOUT_MILLIS,
        "command_id": f"koe-consent-{call_control_id}"[:128],
    }
    return Command(api_key, call_control_id, GATHER, body)


def streaming_start(api_key: str, call_control_id: str, stream_url: str) -> Command:
    """Fork an answered call's media to Koe's media stream (after consent by key press)."""
    body = {**_streaming(stream_url), "command_id": f"koe-stream-{call_control_id}"[:128]}
    return Command(api_key, call_control_id, STREAMING_START, body)


def reject(api_key: str, call_control_id: str, cause: str = CALL_REJECTED) -> Command:
    """Refuse an incoming call without answering it (nothing is billed)."""
    body = {"cause": cause, "command_id": f"koe-reject-{call_control_id}"[:128]}
    return Command(api_key, call_control_id, REJECT, body)


def hang_up(api_key: str, call_control_id: str) -> Command:
    return Command(
        api_key, call_control_id, HANGUP, {"command_id": f"koe-hangup-{call_control_id}"[:128]}
    )


def transfer(api_key: str, call_control_id: str, target: str) -> Command:
    """Move the call to ``target``: Telnyx dials it and bridges the call there."""
    body = {"to": target, "command_id": f"koe-transfer-{call_control_id}"[:128]}
    return Command(api_key, call_control_id, TRANSFER, body)


class DialRefused(Exception):
    """Telnyx refused the Dial or could not be reached; ``message`` says why, for the tenant."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def dial(api_key: str, body: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Place a call (``POST /calls``): Telnyx's ``data`` for it, with its call_control_id."""
    headers = {"Authorization": f"Bearer {api_key}", "Accept": "application/json"}
    try:
        response = httpx.post(
            f"{settings.KOE_TELNYX_API_URL}/calls", json=body, headers=headers, timeout=timeout
        )
    except httpx.HTTPError as error:
        logger.warning("telnyx dial failed: %r", error)
        raise DialRefused("Telnyx could not be reached; please try again.") from error
    try:
        document = response.json()
    except ValueError:
        document = {}
    document = document if isinstance(document, dict) else {}
    if not response.is_success:
        errors = document.get("errors")
        first = errors[0] if isinstance(errors, list) and errors else {}
        reason = (first.get("detail") or first.get("title")) if isinstance(first, dict) else None
        logger.warning("telnyx dial refused status=%s: %s", response.status_code, reason)
        raise DialRefused(f"Telnyx refused: {reason or response.status_code}", response.status_code)
    data = document.get("data")
    if not isinstance(data, dict) or not _text(data.get("call_control_id")):
        raise DialRefused("Telnyx answered without a call_control_id.", response.status_code)
    return data


def send(command: Command) -> bool:
    """Send one command; False (logged) when Telnyx refused it or could not be reached.
    Never raises: a command is sent off a webhook or at a call's end, with nobody to
    hand an exception to."""
    headers = {
        "Authorization": f"Bearer {command.api_key}",
        "Accept": "application/json",
    }
    try:
        with httpx.Client(timeout=COMMAND_TIMEOUT) as client:
            response = client.post(command.url, json=command.body, headers=headers)
    except httpx.HTTPError as error:
        logger.warning("telnyx %s failed: %r", command.action, error)
        return False
    if response.is_success:
        logger.info("telnyx %s sent", command.action)
        return True
    # Telnyx's error body: {"errors": [{"code", "title", "detail"}]}; its text, not ours.
    logger.warning(
        "telnyx %s refused status=%s: %s",
        command.action,
        response.status_code,
        response.text[:300],
    )
    return False


class CommandQueue:
    """Commands sent off the webhook's request on a few threads: Telnyx gets its 200 at
    once (a slow answer would have it retry the webhook), and the command follows."""

    def __init__(self, workers: int = 4) -> None:
        self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="telnyx")
        self.pending: set[Future[bool]] = set()
        self.lock = threading.Lock()

    def submit(self, command: Command) -> None:
        future = self.executor.submit(send, command)
        with self.lock:
            self.pending.add(future)
        future.add_done_callback(self._done)

    def _done(self, future: Future[bool]) -> None:
        with self.lock:
            self.pending.discard(future)

    def wait(self, timeout: float = 15.0) -> None:
        """Until every command submitted so far has been sent (tests, shutdown)."""
        with self.lock:
            pending = list(self.pending)
        wait_for_futures(pending, timeout=timeout)


commands = CommandQueue()


# --- the media stream -----------------------------------------------------------------------
# "RTP media chunks sent back to Telnyx can contain 20 milliseconds to 30 seconds of audio":
# 20 ms of PCMU (one byte a sample at 8 kHz) is the least a media message may carry.
MIN_MEDIA_BYTES = 160
MULAW_SILENCE = 0xFF  # G.711 μ-law's code for 0


def media(payload: str) -> dict[str, Any]:
    return {"event": "media", "media": {"payload": payload}}


def mark(name: str) -> dict[str, Any]:
    return {"event": "mark", "mark": {"name": name}}


def clear() -> dict[str, Any]:
    return {"event": "clear"}
