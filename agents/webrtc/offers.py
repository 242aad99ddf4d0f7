"""Answering a WebRTC offer: ``POST /v1/realtime/calls`` without the HTTP.

The order keeps a refusal cheap and honest: this process's capacity first (nothing read);
then the offer itself (a malformed SDP is a 400 before anything is stored); then the
caller's credentials and the tenant's limits (``access.open_call``, which opens the call
record); then the provider session (refused with 503 if it cannot be opened, the call's
end recorded). Only then is the answer made, and the ``PeerCall`` takes the call over.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription
from django.conf import settings

from agents.realtime.access import AccessDenied, Caller, open_call
from agents.realtime.call import Call
from agents.realtime.providers import ProviderError
from agents.realtime.transport import PROVIDER_UNAVAILABLE, SERVER_UNAVAILABLE
from agents.webrtc.audio import set_jitter_buffer
from agents.webrtc.peer import PeerCall
from calls.load import LOAD
from calls.metrics import CALLS_REFUSED
from foundation.call_threads import on_call_threads

logger = logging.getLogger("koe.webrtc")

MAX_OFFER_BYTES = 64 * 1024
MAX_MEDIA_SECTIONS = 4  # audio, the data channel, and room for a camera it will not get
# WebRTC's audio reaches the provider as the Realtime protocol's PCM16 at 24 kHz.
WEBRTC_AUDIO_FORMAT = "pcm16"
# The status of each refusal code that is not a plain bad request (400).
REFUSAL_STATUS = {
    "authentication_error": 401,
    "rate_limit_error": 429,
    "model_not_found": 404,
    "origin_not_allowed": 403,
    "server_busy": 503,
    "server_draining": 503,
    "server_unavailable": 503,
    "provider_unavailable": 503,
}


@dataclass(frozen=True)
class Answer:
    call_id: str
    sdp: str


class OfferRefused(Exception):
    """No call: the status, and the error the caller is told."""

    def __init__(self, message: str, code: str, error_type: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.error_type = error_type
        self.status = REFUSAL_STATUS.get(code) or REFUSAL_STATUS.get(error_type, 400)


def ice_servers() -> list[RTCIceServer]:
    """``KOE_ICE_SERVERS`` (a JSON list of {urls, username, credential}) for aiortc."""
    return [
        RTCIceServer(
            urls=server["urls"],
            username=_text(server.get("username")),
            credential=_text(server.get("credential")),
        )
        for server in settings.KOE_ICE_SERVERS
    ]


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


async def answer(offer: str, caller: Caller) -> Answer:
    """Admit the caller, start its call's peer connection, and give the SDP answer."""
    weight = settings.KOE_WEBRTC_CALL_WEIGHT
    refusal = LOAD.admit(weight)
    if refusal is not None:
        CALLS_REFUSED.labels(refusal.code).inc()
        raise OfferRefused(refusal.message, refusal.code, "server_error")
    peer = RTCPeerConnection(RTCConfiguration(iceServers=ice_servers()))
    peer_call = PeerCall(peer, weight)
    try:
        await _take_offer(peer, offer)
        set_jitter_buffer(peer, settings.KOE_WEBRTC_JITTER_FRAMES)
        call = await _open_call(caller, peer_call)
    except BaseException:
        LOAD.release(weight)
        await peer.close()
        raise
    peer_call.attach(call)  # from here on, the call's end closes the peer and frees the slot
    try:
        await peer.setLocalDescription(await peer.createAnswer())
    except Exception as error:
        await call.fail(error, "webrtc answer")
        raise OfferRefused(SERVER_UNAVAILABLE, "server_unavailable", "server_error") from None
    return Answer(call.grant.call_public_id, peer.localDescription.sdp)


async def _take_offer(peer: RTCPeerConnection, offer: str) -> None:
    if not offer.strip():
        raise OfferRefused("The body must be the caller's SDP offer.", "missing_sdp")
    if len(offer) > MAX_OFFER_BYTES:
        raise OfferRefused("The SDP offer is too large.", "invalid_sdp")
    if "m=audio" not in offer:
        raise OfferRefused("The SDP offer has no audio (m=audio) section.", "invalid_sdp")
    if offer.count("\nm=") > MAX_MEDIA_SECTIONS:
        raise OfferRefused(
            f"The SDP offer has more than {MAX_MEDIA_SECTIONS} media sections.", "invalid_sdp"
        )
    try:
        await peer.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
    except Exception as error:  # aiortc's parser raises whatever the text trips it on
        raise OfferRefused(f"The SDP offer could not be used: {error}", "invalid_sdp") from None
    if not any(t.kind == "audio" for t in peer.getTransceivers()):
        raise OfferRefused("The SDP offer has no audio (m=audio) section.", "invalid_sdp")
    for transceiver in peer.getTransceivers():
        if transceiver.kind != "audio":
            # A call carries audio (and its data channel): video is answered inactive, so
            # no frame of it is sent or decoded.
            transceiver.direction = "inactive"


async def _open_call(caller: Caller, transport: PeerCall) -> Call:
    try:
        grant = await on_call_threads(open_call)(caller)
    except AccessDenied as denied:
        CALLS_REFUSED.labels(denied.code).inc()
        raise OfferRefused(denied.message, denied.code, denied.error_type) from None
    except Exception:
        logger.exception("webrtc call set-up failed")
        CALLS_REFUSED.labels("server_unavailable").inc()
        raise OfferRefused(SERVER_UNAVAILABLE, "server_unavailable", "server_error") from None
    config = dataclasses.replace(grant.config, audio_format=WEBRTC_AUDIO_FORMAT)
    call = Call(dataclasses.replace(grant, config=config), transport=transport)
    try:
        await call.connect_provider()
    except ProviderError:
        raise OfferRefused(PROVIDER_UNAVAILABLE, "provider_unavailable", "server_error") from None
    return call
