"""Twilio's voice webhook: a signed request for a tenant's number is answered with TwiML
that connects the call to Koe's media stream; anything else is refused, storing nothing."""

from __future__ import annotations

from typing import Any
from xml.etree import ElementTree

from django.conf import settings
from django.test import Client
from django.utils import timezone

from agents.telephony.models import PhoneCall, PhoneNumber
from calls.models import CallSession
from tenancy.models import hash_secret
from tests.conftest import TenantWorld
from tests.fakes.twilio import new_sid, parse_twiml_stream, twilio_signature
from tests.telephony.conftest import ACCOUNT_SID, AUTH_TOKEN, CALLER, NUMBER, Line, make_line

PATH = "/v1/telephony/twilio/voice"


def ring(
    *,
    to: str = NUMBER,
    auth_token: str = AUTH_TOKEN,
    account_sid: str = ACCOUNT_SID,
    call_sid: str | None = None,
    signature: str | None = None,
) -> Any:
    form = {
        "AccountSid": account_sid,
        "ApiVersion": "2010-04-01",
        "CallSid": call_sid or new_sid("CA"),
        "CallStatus": "ringing",
        "Direction": "inbound",
        "From": CALLER,
        "To": to,
    }
    if signature is None:
        signature = twilio_signature(auth_token, settings.KOE_SITE_URL + PATH, form)
    return Client().post(PATH, form, headers={"X-Twilio-Signature": signature})


def test_a_signed_call_is_connected_to_the_media_stream(line: Line) -> None:
    response = ring(call_sid="CA" + "1" * 32)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/xml")
    stream_url, parameters, _ = parse_twiml_stream(response.content.decode())
    assert stream_url == settings.KOE_SITE_URL.replace("http", "ws", 1) + (
        "/v1/telephony/twilio/stream"
    )
    token = parameters["token"]
    phone_call = PhoneCall.objects.get()
    assert phone_call.carrier_call_id == "CA" + "1" * 32
    assert phone_call.tenant == line.number.tenant and phone_call.agent == line.agent
    assert phone_call.stream_token_hash == hash_secret(token)  # only its digest is kept
    assert phone_call.stream_token_expires_at > timezone.now()
    assert not CallSession.objects.exists()  # the call opens when the stream connects


def test_a_bad_signature_is_refused_and_nothing_is_stored(line: Line) -> None:
    assert ring(auth_token="not-the-token").status_code == 403
    assert ring(signature="").status_code == 403
    assert ring(account_sid="AC" + "b" * 32).status_code == 403  # signed, another account
    assert not PhoneCall.objects.exists()
    assert not CallSession.objects.exists()


def test_an_unknown_number_answers_404(line: Line) -> None:
    response = ring(to="+14155550111")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "unknown_number"
    assert not PhoneCall.objects.exists()


def test_a_number_without_an_agent_says_the_line_is_closed(line: Line) -> None:
    PhoneNumber.objects.update(agent=None)
    response = ring()
    assert response.status_code == 200
    root = ElementTree.fromstring(response.content)
    assert [child.tag for child in root] == ["Say", "Hangup"]
    assert not PhoneCall.objects.exists()


def test_an_agent_that_needs_consent_is_not_reached_without_a_disclosure(
    tenant_a: TenantWorld,
) -> None:
    make_line(tenant_a, consent_required=True)
    root = ElementTree.fromstring(ring().content)
    assert [child.tag for child in root] == ["Say", "Hangup"]


def test_a_retried_webhook_gets_a_fresh_token_for_the_same_call(line: Line) -> None:
    call_sid = new_sid("CA")
    first = parse_twiml_stream(ring(call_sid=call_sid).content.decode())[1]["token"]
    second = parse_twiml_stream(ring(call_sid=call_sid).content.decode())[1]["token"]
    assert first != second
    assert PhoneCall.objects.get().stream_token_hash == hash_secret(second)


def test_tenant_bs_auth_token_cannot_reach_tenant_as_number(
    tenant_a: TenantWorld, tenant_b: TenantWorld
) -> None:
    make_line(tenant_a, number=NUMBER)
    make_line(tenant_b, number="+14155550200", account_sid="AC" + "b" * 32, auth_token="token-of-b")
    # Signed with B's token and account, for A's number: refused.
    refused = ring(to=NUMBER, auth_token="token-of-b", account_sid="AC" + "b" * 32)
    assert refused.status_code == 403
    # Each number reaches its own tenant's agent only.
    ring(to="+14155550200", auth_token="token-of-b", account_sid="AC" + "b" * 32)
    assert PhoneCall.objects.get().tenant == tenant_b.tenant
