"""The events part of the dashboard: the URL, its secret shown once, a test event, the log."""

from __future__ import annotations

import html
from typing import Any

import pytest
from django.db import connection
from django.urls import reverse

from calls.models import CallSession
from events.models import EventEndpoint, OutboundEvent
from foundation import signing
from tenancy.roles import Role
from tests.conftest import TenantWorld
from tests.factories import AgentFactory
from tests.fakes.http_receiver import HttpReceiver

pytestmark = pytest.mark.django_db

MANAGERS = [Role.OWNER, Role.ADMIN]
OTHERS = [Role.EDITOR, Role.AUDITOR]
SETTINGS_URL = reverse("dashboard:tenant_settings")
ENDPOINT_URL = reverse("dashboard:events_endpoint")
ROTATE_URL = reverse("dashboard:events_rotate_secret")
TEST_URL = reverse("dashboard:events_test")
LIST_URL = reverse("dashboard:event_list")


def text_of(response: Any) -> str:
    return html.unescape(response.content.decode())


@pytest.mark.parametrize("role", MANAGERS)
def test_setting_the_events_url_shows_the_signing_secret_once(
    role: str, tenant_a: TenantWorld
) -> None:
    client = tenant_a.client_for(role)

    response = client.post(ENDPOINT_URL, {"events_url": "https://backend.example/koe"})

    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    endpoint = EventEndpoint.objects.get(tenant=tenant_a.tenant)
    assert (endpoint.url, endpoint.is_active) == ("https://backend.example/koe", True)
    assert endpoint.signing_secret.startswith("whsec_")
    assert endpoint.signing_secret in text_of(response)
    settings_page = text_of(client.get(SETTINGS_URL))
    assert "https://backend.example/koe" in settings_page
    assert endpoint.signing_secret not in settings_page
    assert endpoint.signing_secret not in text_of(client.get(LIST_URL))


def test_changing_the_url_keeps_the_secret_and_does_not_show_it(tenant_a: TenantWorld) -> None:
    client = tenant_a.client_for(Role.OWNER)
    client.post(ENDPOINT_URL, {"events_url": "https://backend.example/koe"})
    secret = EventEndpoint.objects.get().signing_secret

    response = client.post(ENDPOINT_URL, {"events_url": "https://new.example/koe"}, follow=True)

    assert response.redirect_chain == [(SETTINGS_URL, 302)]
    assert "Events now go to https://new.example/koe." in text_of(response)
    assert secret not in text_of(response)
    endpoint = EventEndpoint.objects.get()
    assert (endpoint.url, endpoint.signing_secret) == ("https://new.example/koe", secret)


def test_the_signing_secret_is_encrypted_at_rest(tenant_a: TenantWorld) -> None:
    tenant_a.client_for(Role.OWNER).post(ENDPOINT_URL, {"events_url": "https://b.example/"})
    endpoint = EventEndpoint.objects.get()
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT signing_secret FROM {EventEndpoint._meta.db_table} WHERE id = %s",
            [endpoint.pk],
        )
        [stored] = cursor.fetchone()
    assert endpoint.signing_secret not in stored


def test_clearing_the_url_turns_events_off_and_keeps_the_secret(tenant_a: TenantWorld) -> None:
    client = tenant_a.client_for(Role.ADMIN)
    client.post(ENDPOINT_URL, {"events_url": "https://backend.example/koe"})
    secret = EventEndpoint.objects.get().signing_secret

    response = client.post(ENDPOINT_URL, {"events_url": ""}, follow=True)

    assert "Events are off" in text_of(response)
    endpoint = EventEndpoint.objects.get()
    assert (endpoint.url, endpoint.is_active, endpoint.signing_secret) == ("", False, secret)
    refused = client.post(TEST_URL, follow=True)
    assert "Set an events URL first" in text_of(refused)
    assert not OutboundEvent.objects.exists()
    client.post(ENDPOINT_URL, {"events_url": "https://backend.example/koe"})
    assert EventEndpoint.objects.get().signing_secret == secret


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://files.example/events", "Koe calls only http and https URLs"),
        ("http://127.0.0.1:8000/events", "127.0.0.1 is a loopback address"),
        ("http://169.254.169.254/latest/meta-data", "the cloud metadata service's address"),
        ("http://10.1.2.3/events", "10.1.2.3 is a private address"),
        ("http://[::ffff:192.168.0.1]/events", "192.168.0.1"),
        ("not a url", "Enter a valid URL"),
    ],
)
def test_an_unusable_url_is_a_field_error(
    url: str, message: str, tenant_a: TenantWorld, settings: Any
) -> None:
    settings.KOE_OUTBOUND_ALLOWLIST = []
    response = tenant_a.client_for(Role.OWNER).post(ENDPOINT_URL, {"events_url": url})

    assert response.status_code == 200
    errors = " ".join(response.context["events_form"].errors["events_url"])
    assert message in errors
    assert message in text_of(response)
    assert not EventEndpoint.objects.exists()


@pytest.mark.parametrize("role", OTHERS)
def test_editors_and_auditors_cannot_see_or_change_events(role: str, tenant_a: TenantWorld) -> None:
    EventEndpoint.objects.create(tenant=tenant_a.tenant, url="https://backend.example/koe")
    before = EventEndpoint.objects.get().signing_secret
    client = tenant_a.client_for(role)

    assert client.post(ENDPOINT_URL, {"events_url": "https://evil.example/"}).status_code == 403
    assert client.post(ROTATE_URL).status_code == 403
    assert client.post(TEST_URL).status_code == 403
    assert client.get(LIST_URL).status_code == 403

    endpoint = EventEndpoint.objects.get()
    assert (endpoint.url, endpoint.signing_secret) == ("https://backend.example/koe", before)
    assert not OutboundEvent.objects.exists()


def test_rotating_the_secret_shows_the_new_one_once(tenant_a: TenantWorld) -> None:
    client = tenant_a.client_for(Role.OWNER)
    client.post(ENDPOINT_URL, {"events_url": "https://backend.example/koe"})
    old_secret = EventEndpoint.objects.get().signing_secret
    assert "Rotate signing secret" in text_of(client.get(SETTINGS_URL))

    response = client.post(ROTATE_URL)

    new_secret = EventEndpoint.objects.get().signing_secret
    assert new_secret != old_secret
    assert new_secret in text_of(response)
    assert old_secret not in text_of(response)
    assert response["Cache-Control"] == "no-store"
    assert new_secret not in text_of(client.get(SETTINGS_URL))


def test_rotating_without_an_endpoint_says_to_set_a_url(tenant_a: TenantWorld) -> None:
    response = tenant_a.client_for(Role.OWNER).post(ROTATE_URL, follow=True)
    assert "Set an events URL first" in text_of(response)
    assert not EventEndpoint.objects.exists()


def test_send_test_event_delivers_a_ping_and_lists_it(
    tenant_a: TenantWorld, receiver: HttpReceiver, django_capture_on_commit_callbacks: Any
) -> None:
    client = tenant_a.client_for(Role.OWNER)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(ENDPOINT_URL, {"events_url": receiver.url("/hooks/koe")})
    secret = EventEndpoint.objects.get().signing_secret
    assert "Send test event" in text_of(client.get(SETTINGS_URL))

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(TEST_URL)

    assert response.status_code == 302
    assert response.url == LIST_URL
    [request] = receiver.requests
    signing.verify(secret, request.headers["koe-signature"], request.body)
    event = OutboundEvent.objects.get()
    assert (event.type, event.status, event.attempts) == ("ping", "delivered", 1)
    listing = text_of(client.get(LIST_URL))
    assert event.public_id in listing
    assert "Delivered" in listing


def test_the_event_log_shows_status_attempts_and_last_error_of_this_tenant_only(
    tenant_a: TenantWorld, tenant_b: TenantWorld
) -> None:
    mine = OutboundEvent.objects.create(
        tenant=tenant_a.tenant,
        type="call.ended",
        status="failed",
        attempts=8,
        last_status_code=500,
        last_error="HTTP 500: backend exploded",
    )
    theirs = OutboundEvent.objects.create(tenant=tenant_b.tenant, type="call.ended")
    client = tenant_a.client_for(Role.ADMIN)

    listing = text_of(client.get(LIST_URL))

    assert mine.public_id in listing
    assert "HTTP 500: backend exploded" in listing
    assert "Failed" in listing
    assert theirs.public_id not in listing
    detail = client.get(reverse("dashboard:event_detail", args=[mine.public_id]))
    assert detail.status_code == 200
    assert f'"id": "{mine.public_id}"' in text_of(detail)
    foreign = client.get(reverse("dashboard:event_detail", args=[theirs.public_id]))
    assert foreign.status_code == 404


def test_calls_needing_follow_up_are_badged(tenant_a: TenantWorld) -> None:
    agent = AgentFactory(tenant=tenant_a.tenant)
    call = CallSession.objects.create(
        tenant=tenant_a.tenant,
        agent=agent,
        agent_name=agent.name,
        version_number=1,
        channel="api",
        provider="local",
        model="koe-local",
        needs_follow_up=True,
        follow_up_reason="Asked for a manager.",
    )
    client = tenant_a.client_for(Role.AUDITOR)

    assert "Needs follow-up" in text_of(client.get(reverse("dashboard:call_list")))
    detail = text_of(client.get(reverse("dashboard:call_detail", args=[call.public_id])))
    assert "Needs follow-up" in detail
    assert "Asked for a manager." in detail
