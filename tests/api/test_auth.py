"""Secret-key authentication of the REST API: every failure is a 401 with a JSON error."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from tenancy.models import ApiKey
from tests.api import api_client
from tests.conftest import TenantWorld
from tests.factories import AgentFactory

pytestmark = pytest.mark.django_db

PROTECTED = ["/v1/agents", "/v1/tools", "/v1/agents/agt_whatever"]


def _assert_unauthenticated(response: Any) -> None:
    assert response.status_code == 401
    assert response["Content-Type"].startswith("application/json")
    assert response["WWW-Authenticate"].startswith("Bearer")
    error = response.json()["error"]
    assert error["type"] == "authentication_error"
    assert error["code"] == "invalid_api_key"
    assert "Bearer" in error["message"]


@pytest.mark.parametrize("path", PROTECTED)
def test_no_authorization_header_is_401(tenant_a: TenantWorld, path: str) -> None:
    _assert_unauthenticated(Client().get(path))


@pytest.mark.parametrize(
    "header",
    [
        "Basic dXNlcjpwYXNz",
        "Token {secret}",
        "{secret}",
        "Bearer",
        "Bearer ",
        "Bearer sk_not-a-real-key",
        "Bearer pk_not-a-secret-key",
        "Bearer {secret}x",
        "bearer{secret}",
    ],
)
def test_malformed_or_unknown_keys_are_401(tenant_a: TenantWorld, header: str) -> None:
    response = Client().get(
        "/v1/agents", headers={"Authorization": header.format(secret=tenant_a.secret)}
    )
    _assert_unauthenticated(response)


def test_revoked_key_is_401(tenant_a: TenantWorld) -> None:
    client = api_client(tenant_a.secret)
    assert client.get("/v1/agents").status_code == 200
    assert tenant_a.api_key is not None
    tenant_a.api_key.revoke()
    _assert_unauthenticated(client.get("/v1/agents"))


def test_unauthenticated_writes_change_nothing(tenant_a: TenantWorld) -> None:
    agent = AgentFactory(tenant=tenant_a.tenant, name="Front desk")
    response = Client().patch(
        f"/v1/agents/{agent.public_id}", {"name": "Hijacked"}, content_type="application/json"
    )
    _assert_unauthenticated(response)
    response = Client().delete(f"/v1/agents/{agent.public_id}")
    _assert_unauthenticated(response)
    agent.refresh_from_db()
    assert agent.name == "Front desk"


def test_valid_key_is_scoped_to_its_tenant_and_records_use(
    tenant_a: TenantWorld, tenant_b: TenantWorld
) -> None:
    AgentFactory(tenant=tenant_a.tenant, name="Acme agent")
    AgentFactory(tenant=tenant_b.tenant, name="Bistro agent")
    response = api_client(tenant_a.secret).get("/v1/agents")
    assert response.status_code == 200
    assert [agent["name"] for agent in response.json()["items"]] == ["Acme agent"]
    assert ApiKey.objects.get(pk=tenant_a.api_key.pk).last_used_at is not None  # type: ignore[union-attr]


def test_realtime_client_secrets_keeps_the_json_error_shape(tenant_a: TenantWorld) -> None:
    response = api_client(tenant_a.secret).post(
        "/v1/realtime/client_secrets",
        {"session": {"type": "realtime", "model": "agt_missing"}},
        content_type="application/json",
    )
    assert response.status_code == 404
    assert response.json()["error"]["type"] == "not_found"
    assert "agt_missing" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("post", "/v1/made/up"),
        ("get", "/v1/made/up"),
        ("put", "/v1"),
    ],
)
def test_unknown_api_paths_answer_json_never_a_page(method: str, path: str) -> None:
    """Clients read the body as JSON: a CSRF page or an HTML 404 breaks them."""
    client = Client(enforce_csrf_checks=True)
    if method == "get":
        response = client.get(path)
    else:
        response = getattr(client, method)(path, "v=0\r\n", content_type="application/sdp")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"]["type"] == "not_found"


def test_the_webrtc_entry_point_answers_a_bad_offer_with_json_not_a_csrf_page() -> None:
    response = Client(enforce_csrf_checks=True).post(
        "/v1/realtime/calls", "v=0\r\n", content_type="application/sdp"
    )
    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"]["code"] == "invalid_sdp"


def test_a_csrf_refusal_under_the_api_prefix_is_json() -> None:
    from django.test import RequestFactory

    from foundation.api import csrf_failure

    response = csrf_failure(RequestFactory().post("/v1/anything"), "no token")
    assert response.status_code == 403
    assert response["Content-Type"] == "application/json"
    page = csrf_failure(RequestFactory().post("/login/"), "no token")
    assert "text/html" in page["Content-Type"]
