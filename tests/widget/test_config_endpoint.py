"""GET /v1/widget/config: the widget's settings for a publishable key, under its origin rule."""

from __future__ import annotations

import pytest
from django.test import Client
from django.utils import timezone

from tests.conftest import TenantWorld
from tests.factories import AgentFactory, WidgetKeyFactory

pytestmark = pytest.mark.django_db

ORIGIN = "https://shop.example"


def _config(key: str, origin: str | None = ORIGIN, method: str = "get") -> object:
    headers = {"Origin": origin} if origin else {}
    return getattr(Client(), method)("/v1/widget/config", {"key": key}, headers=headers)


def test_an_allowed_origin_gets_the_agents_widget_settings_with_a_cors_grant(
    tenant_a: TenantWorld,
) -> None:
    agent = AgentFactory(
        tenant=tenant_a.tenant,
        name="Front desk",
        widget_label="Ask the desk",
        widget_color="#0b7285",
        widget_position="bottom-left",
        consent_prompt="May we keep a transcript?",
        recording_offered=True,
        consent_required=True,
    )
    widget_key = WidgetKeyFactory(agent=agent, allowed_origins=[ORIGIN])

    response = _config(widget_key.key)

    assert response.status_code == 200
    assert response.json() == {
        "agent": agent.public_id,
        "name": "Front desk",
        "label": "Ask the desk",
        "color": "#0b7285",
        "position": "bottom-left",
        "consent_text": "May we keep a transcript?",
        "consent_version": 1,
        "recording_offered": True,
        "consent_required": True,
    }
    assert response["Access-Control-Allow-Origin"] == ORIGIN
    assert "Origin" in response["Vary"]


def test_the_preflight_allows_get_from_the_page(tenant_a: TenantWorld) -> None:
    widget_key = WidgetKeyFactory(agent=AgentFactory(tenant=tenant_a.tenant))
    response = Client().options(
        f"/v1/widget/config?key={widget_key.key}", headers={"Origin": ORIGIN}
    )
    assert response.status_code == 204
    assert response["Access-Control-Allow-Origin"] == ORIGIN
    assert "GET" in response["Access-Control-Allow-Methods"]


def test_a_foreign_origin_is_refused_without_a_cors_grant(tenant_a: TenantWorld) -> None:
    widget_key = WidgetKeyFactory(agent=AgentFactory(tenant=tenant_a.tenant))

    response = _config(widget_key.key, origin="https://copycat.example")

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "origin_not_allowed"
    assert "Access-Control-Allow-Origin" not in response


def test_origins_match_exactly_not_by_prefix_or_scheme(tenant_a: TenantWorld) -> None:
    widget_key = WidgetKeyFactory(agent=AgentFactory(tenant=tenant_a.tenant))
    for origin in ("http://shop.example", "https://shop.example.evil.example", "null"):
        assert _config(widget_key.key, origin=origin).status_code == 403, origin
    # The same origin written differently (default port, case) is the same origin.
    assert _config(widget_key.key, origin="https://SHOP.example:443").status_code == 200


def test_unknown_revoked_or_missing_keys_answer_json_errors(tenant_a: TenantWorld) -> None:
    revoked = WidgetKeyFactory(agent=AgentFactory(tenant=tenant_a.tenant))
    revoked.revoked_at = timezone.now()
    revoked.save()

    for key in ("pk_doesnotexist", revoked.key):
        response = _config(key)
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "invalid_publishable_key"
        # The page may read why (it is not an origin problem).
        assert response["Access-Control-Allow-Origin"] == ORIGIN
    missing = Client().get("/v1/widget/config", headers={"Origin": ORIGIN})
    assert missing.status_code == 400
    assert missing.json()["error"]["code"] == "missing_publishable_key"


def test_only_get_is_allowed(tenant_a: TenantWorld) -> None:
    widget_key = WidgetKeyFactory(agent=AgentFactory(tenant=tenant_a.tenant))
    response = _config(widget_key.key, method="post")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"


def test_a_same_origin_page_sends_no_origin_and_is_judged_by_koes_own_host(
    tenant_a: TenantWorld,
) -> None:
    # Browsers omit Origin on same-origin GETs: the page is then on Koe's host (testserver).
    agent = AgentFactory(tenant=tenant_a.tenant)
    on_koe = WidgetKeyFactory(agent=agent, allowed_origins=["http://testserver"])
    elsewhere = WidgetKeyFactory(agent=agent, allowed_origins=[ORIGIN])

    assert _config(on_koe.key, origin=None).status_code == 200
    assert _config(elsewhere.key, origin=None).status_code == 403
