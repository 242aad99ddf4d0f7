"""Twilio's protocol, as its public docs give it: webhook signatures, TwiML, stream messages.

- Webhook security: ``X-Twilio-Signature`` is base64(HMAC-SHA1(auth token, the full URL
  Twilio requested + each POST parameter's name and value, sorted by name)).
  https://www.twilio.com/docs/usage/webhooks/webhooks-security
- ``<Connect><Stream url="wss://…">`` opens a bidirectional media stream (``<Start>`` would
  be receive-only); ``<Parameter name value>`` reach the stream in ``start.customParameters``.
  https://www.twilio.com/docs/voice/twiml/stream
- The stream's messages: in ``connected``, ``start``, ``media``, ``mark``, ``dtmf``,
  ``stop``; out ``media`` {streamSid, media.payload: base64 μ-law 8 kHz}, ``mark``
  {streamSid, mark.name} (echoed back once the audio sent before it has played) and
  ``clear`` (drops the audio Twilio has buffered, and echoes the marks still pending).
  https://www.twilio.com/docs/voice/media-streams/websocket-messages
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from typing import Any
from xml.etree import ElementTree

SIGNATURE_HEADER = "X-Twilio-Signature"


def signature(auth_token: str, url: str, params: Mapping[str, str]) -> str:
    payload = url + "".join(name + params[name] for name in sorted(params))
    digest = hmac.new(auth_token.encode(), payload.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def is_signed(auth_token: str, url: str, params: Mapping[str, str], given: str) -> bool:
    if not given or not auth_token:
        return False
    return hmac.compare_digest(signature(auth_token, url, params), given)


def _twiml(response: ElementTree.Element) -> str:
    return '<?xml version="1.0" encoding="UTF-8"?>' + ElementTree.tostring(
        response, encoding="unicode"
    )


def connect_stream(stream_url: str, parameters: Mapping[str, str]) -> str:
    """TwiML that connects the call to a bidirectional media stream."""
    response = ElementTree.Element("Response")
    connect = ElementTree.SubElement(response, "Connect")
    stream = ElementTree.SubElement(connect, "Stream", url=stream_url)
    for name, value in parameters.items():
        ElementTree.SubElement(stream, "Parameter", name=name, value=value)
    return _twiml(response)


def say_and_hang_up(text: str) -> str:
    response = ElementTree.Element("Response")
    ElementTree.SubElement(response, "Say").text = text
    ElementTree.SubElement(response, "Hangup")
    return _twiml(response)


def gather_key(prompt: str, action_url: str, timeout_seconds: int = 8) -> str:
    """TwiML that says ``prompt`` and posts the key the caller presses to ``action_url``
    (also when they press none: actionOnEmptyResult).
    https://www.twilio.com/docs/voice/twiml/gather"""
    response = ElementTree.Element("Response")
    gather = ElementTree.SubElement(
        response,
        "Gather",
        input="dtmf",
        numDigits="1",
        timeout=str(timeout_seconds),
        action=action_url,
        method="POST",
        actionOnEmptyResult="true",
    )
    ElementTree.SubElement(gather, "Say").text = prompt
    return _twiml(response)


def dial(target: str) -> str:
    """TwiML that moves the call to another number (a cold transfer)."""
    response = ElementTree.Element("Response")
    ElementTree.SubElement(response, "Dial").text = target
    return _twiml(response)


def media(stream_sid: str, payload: str) -> dict[str, Any]:
    return {"event": "media", "streamSid": stream_sid, "media": {"payload": payload}}


def mark(stream_sid: str, name: str) -> dict[str, Any]:
    return {"event": "mark", "streamSid": stream_sid, "mark": {"name": name}}


def clear(stream_sid: str) -> dict[str, Any]:
    return {"event": "clear", "streamSid": stream_sid}
