"""Minting session tokens: the backend endpoint (secret key) and the public widget one."""

from __future__ import annotations

import time
from typing import Any

import pytest
from django.core.cache import cache
from django.test import Client

from agents.models import Agent, WidgetKey
from calls.models import SessionToken
from tenancy.models import hash_secret
from tests.conftest import TenantWorld
from tests.factories import AgentFactory

pytestmark = pytest.mark.django_db

ORIGIN = "https://shop.example"


def _mint(client: Client, secret: str, body: dict[str, Any]) -> Any:
    return client.post(
        "/v1/realtime/client_secrets",
        body,
        content_type="application/json",
        headers={"Authorization": f"Bearer {secret}"},
    )


def test_backend_mints_an_openai_shaped_client_secret(tenant_a: TenantWorld) -> None:
    agent = AgentFactory(tenant=tenant_a.tenant)
    before = time.time()
    response = _mint(
        Client(),
        tenant_a.secret,
        {
            "expires_after": {"anchor": "created_at", "seconds": 30},
            "session": {"type": "realtime", "model": agent.public_id},
            "consent": "transcript",
            "end_user": "cust-7",
        },
    )
    assert response.status_code == 200
    body = response.json()
    assert body["value"].startswith("ek_")
    assert before + 29 <= body["expires_at"] <= time.time() + 31
    assert body["session"]["model"] == agent.public_id
    token = SessionToken.objects.get()
    assert token.token_hash == hash_secret(body["value"])  # only the digest is stored
    assert (token.agent, token.consent_scope, token.consent_method, token.end_user_ref) == (
        agent,
        "transcript",
        "api_flag",
        "cust-7",
    )


def test_backend_minting_is_tenant_scoped(tenant_a: TenantWorld, tenant_b: TenantWorld) -> None:
    agent = AgentFactory(tenant=tenant_a.tenant)
    body = {"session": {"type": "realtime", "model": agent.public_id}}
    assert _mint(Client(), tenant_b.secret, body).status_code == 404
    assert (
        Client()
        .post("/v1/realtime/client_secrets", body, content_type="application/json")
        .status_code
        == 401
    )
    assert not SessionToken.objects.exists()


def test_backend_minting_validates_its_input(tenant_a: TenantWorld) -> None:
    agent = AgentFactory(tenant=tenant_a.tenant)
    too_long = {
        "expires_after": {"seconds": 7200},
        "session": {"type": "realtime", "model": agent.public_id},
    }
    assert _mint(Client(), tenant_a.secret, too_long).status_code == 400
    bad_consent = {
        "consent": "everything",
        "session": {"type": "realtime", "model": agent.public_id},
    }
    assert _mint(Client(), tenant_a.secret, bad_consent).status_code in {400, 422}
    assert _mint(Client(), tenant_a.secret, {"session": {}}).status_code in {400, 422}
    assert not SessionToken.objects.exists()


@pytest.fixture
def widget_agent(tenant_a: TenantWorld) -> tuple[Agent, WidgetKey]:
    agent = AgentFactory(tenant=tenant_a.tenant, recording_offered=True)
    return agent, WidgetKey.objects.create(agent=agent, allowed_origins=[ORIGIN])


def _widget(client: Client, body: Any, origin: str = ORIGIN) -> Any:
    return client.post(
        "/v1/widget/client_secrets",
        body,
        content_type="application/json",
        headers={"Origin": origin},
    )


def test_widget_mints_from_an_allowed_origin(widget_agent: tuple[Agent, WidgetKey]) -> None:
    agent, key = widget_agent
    response = _widget(Client(), {"key": key.key, "agent": agent.public_id, "consent": "recording"})
    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == ORIGIN
    assert response.json()["value"].startswith("ek_")
    token = SessionToken.objects.get()
    assert (token.origin, token.channel, token.consent_scope, token.consent_method) == (
        ORIGIN,
        "widget",
        "recording",
        "widget_checkbox",
    )
    assert token.consent_text == agent.consent_prompt
    assert token.consent_at is not None


def test_widget_declined_consent_is_recorded_as_none(widget_agent: tuple[Agent, WidgetKey]) -> None:
    agent, key = widget_agent
    assert (
        _widget(Client(), {"key": key.key, "agent": agent.public_id, "consent": "none"}).status_code
        == 200
    )
    assert SessionToken.objects.get().consent_scope == "none"


def test_widget_refuses_other_origins_without_a_cors_grant(
    widget_agent: tuple[Agent, WidgetKey],
) -> None:
    agent, key = widget_agent
    response = _widget(
        Client(), {"key": key.key, "agent": agent.public_id}, origin="https://evil.example"
    )
    assert response.status_code == 403
    assert "Access-Control-Allow-Origin" not in response
    assert response.json()["error"]["code"] == "origin_not_allowed"
    assert not SessionToken.objects.exists()


@pytest.mark.parametrize(
    "body",
    [{"key": "pk_unknown"}, "not json", [1, 2], {"key": 5}, {"key": None, "consent": "all"}],
)
def test_widget_bad_requests_are_json_4xx(body: Any, widget_agent: tuple[Agent, WidgetKey]) -> None:
    response = _widget(Client(), body)
    assert 400 <= response.status_code < 500
    assert "error" in response.json()
    assert not SessionToken.objects.exists()


def test_widget_preflight(widget_agent: tuple[Agent, WidgetKey]) -> None:
    response = Client().options("/v1/widget/client_secrets", headers={"Origin": ORIGIN})
    assert response.status_code == 204
    assert response["Access-Control-Allow-Origin"] == ORIGIN
    assert "POST" in response["Access-Control-Allow-Methods"]


def test_widget_minting_is_rate_limited_per_address(
    widget_agent: tuple[Agent, WidgetKey], settings: Any
) -> None:
    cache.clear()
    settings.KOE_WIDGET_TOKENS_PER_MINUTE = 3
    agent, key = widget_agent
    statuses = [
        _widget(
            Client(REMOTE_ADDR="203.0.113.9"), {"key": key.key, "agent": agent.public_id}
        ).status_code
        for _ in range(5)
    ]
    assert statuses == [200, 200, 200, 429, 429]
    # Another address is not affected.
    assert _widget(Client(REMOTE_ADDR="203.0.113.10"), {"key": key.key}).status_code == 200
    assert SessionToken.objects.count() == 4


def test_revoked_widget_key(widget_agent: tuple[Agent, WidgetKey]) -> None:
    agent, key = widget_agent
    key.revoked_at = key.created_at
    key.save()
    assert _widget(Client(), {"key": key.key, "agent": agent.public_id}).status_code == 400


def test_metrics_endpoint(settings: Any) -> None:
    response = Client().get("/metrics")
    assert response.status_code == 200
    assert b"koe_active_calls" in response.content
    settings.KOE_METRICS_TOKEN = "s3cret"
    assert Client().get("/metrics").status_code == 401
    assert Client().get("/metrics", headers={"Authorization": "Bearer s3cret"}).status_code == 200


def test_a_forged_forwarded_for_header_does_not_escape_the_rate_limit(
    widget_agent: tuple[Agent, WidgetKey], settings: Any
) -> None:
    cache.clear()
    settings.KOE_WIDGET_TOKENS_PER_MINUTE = 2
    settings.KOE_TRUSTED_PROXIES = 1  # one proxy appends the real address
    agent, key = widget_agent
    statuses = [
        Client()
        .post(
            "/v1/widget/client_secrets",
            {"key": key.key, "agent": agent.public_id},
            content_type="application/json",
            headers={"Origin": ORIGIN, "X-Forwarded-For": f"10.0.0.{n}, 198.51.100.7"},
        )
        .status_code
        for n in range(4)
    ]
    assert statuses == [200, 200, 429, 429]
