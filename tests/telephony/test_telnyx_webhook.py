"""Telnyx's Call Control webhook: a signed call.initiated for a tenant's number is answered with
the answer command that forks the call to Koe's media stream; anything else is refused or
ignored, storing nothing."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.conf import settings
from django.test import Client
from django.utils import timezone

from agents.telephony import telnyx
from agents.telephony.models import PhoneCall, PhoneNumber
from calls.models import CallSession
from tenancy.models import hash_secret
from tests.conftest import TenantWorld
from tests.fakes.telnyx import FakeTelnyxRest, TelnyxKeys, call_event
from tests.telephony.conftest import CALLER, NUMBER, Line
from tests.telephony.telnyx_line import (
    API_KEY,
    KEYS_B,
    WEBHOOK,
    make_telnyx_line,
    post_event,
    ring,
)

# A body other than the one signed: the signature covers the exact bytes sent.
FORGED_BODY = (
    b'{"data": {"event_type": "call.initiated", "payload": {"to": "+14155550100", '
    b'"direction": "incoming", "call_control_id": "v3:forged"}}}'
)


@pytest.fixture
def line(tenant_a: TenantWorld) -> Line:
    return make_telnyx_line(tenant_a, greeting="Hello, Acme Dental.")


def settled(fake: FakeTelnyxRest) -> list[str]:
    """The commands Koe sent, once every one it queued has gone."""
    telnyx.commands.wait()
    return [request.action for request in fake.actions()]


def test_a_signed_call_is_answered_into_the_media_stream(
    line: Line, telnyx_api: FakeTelnyxRest
) -> None:
    call_control_id, response = ring(call_control_id=telnyx_api.ring())
    assert response.status_code == 200
    assert response.json() == {"status": "answered"}
    answer = telnyx_api.wait_for("answer")
    assert answer.status == 200 and answer.call_control_id == call_control_id
    assert answer.headers["authorization"] == f"Bearer {API_KEY}"
    url = urlsplit(answer.body["stream_url"])
    assert f"{url.scheme}://{url.netloc}{url.path}" == settings.KOE_SITE_URL.replace(
        "http", "ws", 1
    ) + ("/v1/telephony/telnyx/stream")
    token = parse_qs(url.query)["token"][0]
    assert answer.body == {
        "stream_url": answer.body["stream_url"],
        "stream_track": "inbound_track",
        "stream_bidirectional_mode": "rtp",
        "stream_bidirectional_codec": "PCMU",
        "command_id": f"koe-answer-{call_control_id}",
    }
    phone_call = PhoneCall.objects.get()
    assert (phone_call.carrier, phone_call.carrier_call_id) == ("telnyx", call_control_id)
    assert phone_call.direction == "inbound" and phone_call.remote_number == CALLER
    assert phone_call.tenant == line.number.tenant and phone_call.agent == line.agent
    assert phone_call.stream_token_hash == hash_secret(token)  # only its digest is kept
    assert phone_call.stream_token_expires_at > timezone.now()
    assert not CallSession.objects.exists()  # the call opens when the stream connects
    assert settled(telnyx_api) == ["answer"]


def test_the_webhook_answers_before_telnyx_does(line: Line, telnyx_api: FakeTelnyxRest) -> None:
    """Telnyx retries a webhook that is slow to answer: the command goes after the 200."""
    telnyx_api.latency = 1.5  # Telnyx's API is slow today
    call_control_id = telnyx_api.ring()
    began = time.monotonic()
    _, response = ring(call_control_id=call_control_id)
    assert response.status_code == 200
    assert time.monotonic() - began < 1
    assert not telnyx_api.requests
    answer = telnyx_api.wait_for("answer")
    assert answer.status == 200 and answer.at - began >= 1.5


@pytest.mark.parametrize(
    "forgery",
    [
        {"keys": KEYS_B},  # another account's key pair
        {"signature": ""},
        {"signature": "not base64!"},
        {"timestamp_offset": -6 * 60},  # replayed after the 5-minute window
        {"timestamp_offset": 6 * 60},
        {"body": FORGED_BODY},  # signed over other bytes
    ],
)
def test_a_bad_signature_is_refused_and_nothing_is_stored(
    line: Line, telnyx_api: FakeTelnyxRest, forgery: dict[str, Any]
) -> None:
    if "timestamp_offset" in forgery:
        forgery = {"timestamp": int(time.time()) + forgery["timestamp_offset"]}
    _, response = ring(call_control_id=telnyx_api.ring(), **forgery)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "invalid_signature"
    assert not PhoneCall.objects.exists()
    assert not CallSession.objects.exists()
    assert settled(telnyx_api) == []


def test_a_request_without_signature_headers_is_refused(line: Line) -> None:
    event = call_event(
        "call.initiated", call_control_id="v3:x", from_number=CALLER, to_number=NUMBER
    )
    response = Client().post(WEBHOOK, event, content_type="application/json")
    assert response.status_code == 403
    assert not PhoneCall.objects.exists()


def test_an_unknown_number_answers_404(line: Line, telnyx_api: FakeTelnyxRest) -> None:
    _, response = ring(to="+14155550111", call_control_id=telnyx_api.ring())
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "unknown_number"
    assert not PhoneCall.objects.exists()
    assert settled(telnyx_api) == []


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"{not json", "invalid_json"),
        (b"[1, 2]", "invalid_event"),
        (b'{"data": 5}', "invalid_event"),
    ],
)
def test_a_body_that_is_not_an_event_answers_400(line: Line, body: bytes, code: str) -> None:
    response = Client().post(WEBHOOK, body, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == code


def test_a_number_without_an_agent_rejects_the_call_unanswered(
    line: Line, telnyx_api: FakeTelnyxRest
) -> None:
    PhoneNumber.objects.update(agent=None)
    call_control_id, response = ring(call_control_id=telnyx_api.ring())
    assert response.status_code == 200 and response.json() == {"status": "rejected"}
    reject = telnyx_api.wait_for("reject")
    assert reject.status == 200 and reject.call_control_id == call_control_id
    assert reject.body["cause"] == "CALL_REJECTED"
    assert not PhoneCall.objects.exists()
    assert settled(telnyx_api) == ["reject"]


def test_an_agent_that_needs_consent_is_not_reached_without_a_disclosure(
    tenant_a: TenantWorld, telnyx_api: FakeTelnyxRest
) -> None:
    make_telnyx_line(tenant_a, consent_required=True)
    _, response = ring(call_control_id=telnyx_api.ring())
    assert response.json() == {"status": "rejected"}
    assert settled(telnyx_api) == ["reject"]


def test_a_tenant_over_its_hard_budget_is_busy(
    line: Line, telnyx_api: FakeTelnyxRest, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agents.realtime.access import AccessDenied
    from agents.telephony import admission

    def over_budget(tenant: object) -> None:
        raise AccessDenied("Over budget.", "budget_exceeded")

    monkeypatch.setattr(admission, "check_budget", over_budget)
    ring(call_control_id=telnyx_api.ring())
    assert telnyx_api.wait_for("reject").body["cause"] == "USER_BUSY"


def test_a_repeated_webhook_keeps_the_first_answer(line: Line, telnyx_api: FakeTelnyxRest) -> None:
    call_control_id = telnyx_api.ring()
    assert ring(call_control_id=call_control_id)[1].json() == {"status": "answered"}
    first = telnyx_api.wait_for("answer")
    assert ring(call_control_id=call_control_id)[1].json() == {"status": "duplicate"}
    assert settled(telnyx_api) == ["answer"]
    token = parse_qs(urlsplit(first.stream_url).query)["token"][0]
    assert PhoneCall.objects.get().stream_token_hash == hash_secret(token)


def test_other_events_are_acknowledged_and_ignored(line: Line, telnyx_api: FakeTelnyxRest) -> None:
    call_control_id = telnyx_api.ring()
    for event_type in ("call.answered", "streaming.started", "call.hangup"):
        event = call_event(
            event_type, call_control_id=call_control_id, from_number=CALLER, to_number=NUMBER
        )
        response = post_event(event)
        assert response.status_code == 200 and response.json() == {"status": "ignored"}
    # An event naming no number at all (streaming.* events name the call only).
    bare = {"data": {"event_type": "streaming.started", "payload": {"call_control_id": "v3:x"}}}
    assert post_event(bare).json() == {"status": "ignored"}
    # An outgoing call's call.initiated is outbound work, not this webhook's.
    outgoing = call_event(
        "call.initiated",
        call_control_id=call_control_id,
        from_number=NUMBER,
        to_number=CALLER,
        direction="outgoing",
    )
    assert post_event(outgoing).json() == {"status": "ignored"}
    # Events for a known number are still checked.
    hangup = call_event(
        "call.hangup", call_control_id=call_control_id, from_number=CALLER, to_number=NUMBER
    )
    assert post_event(hangup, keys=KEYS_B).status_code == 403
    assert not PhoneCall.objects.exists()
    assert settled(telnyx_api) == []


def test_tenant_bs_key_cannot_reach_tenant_as_number(
    tenant_a: TenantWorld, tenant_b: TenantWorld, telnyx_api: FakeTelnyxRest
) -> None:
    make_telnyx_line(tenant_a, number=NUMBER)
    make_telnyx_line(tenant_b, number="+14155550200", keys=KEYS_B)
    # Signed with B's key pair, for A's number: refused.
    _, refused = ring(to=NUMBER, keys=KEYS_B, call_control_id=telnyx_api.ring())
    assert refused.status_code == 403
    assert not PhoneCall.objects.exists()
    # Each number reaches its own tenant's agent only.
    _, answered = ring(to="+14155550200", keys=KEYS_B, call_control_id=telnyx_api.ring())
    assert answered.json() == {"status": "answered"}
    assert PhoneCall.objects.get().tenant == tenant_b.tenant


def test_signatures_are_checked_over_the_exact_bytes_and_time() -> None:
    keys = TelnyxKeys.generate()
    body = b'{"data":{"event_type":"call.initiated"}}'
    stamp = str(int(time.time()))
    signature = keys.sign(stamp, body)
    assert telnyx.is_signed(keys.public_key, body, stamp, signature)
    assert not telnyx.is_signed(keys.public_key, body + b" ", stamp, signature)
    assert not telnyx.is_signed(keys.public_key, body, str(int(stamp) + 1), signature)
    assert not telnyx.is_signed(KEYS_B.public_key, body, stamp, signature)
    assert not telnyx.is_signed("", body, stamp, signature)
    assert not telnyx.is_signed(keys.public_key, body, "yesterday", signature)
    later = float(stamp) + telnyx.SIGNATURE_TOLERANCE_SECONDS + 1
    assert not telnyx.is_signed(keys.public_key, body, stamp, signature, now=later)
    assert telnyx.public_key("c2hvcnQ=") is None and telnyx.public_key("***") is None
