"""The dashboard's test console: its page and the session tokens it mints for members."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from calls.models import SessionToken
from tenancy.models import hash_secret
from tenancy.roles import Role
from tests.conftest import TenantWorld
from tests.factories import AgentFactory

pytestmark = pytest.mark.django_db


def _token(client: Client, agent_id: str, body: object = None) -> object:
    return client.post(
        reverse("dashboard:agent_console_token", args=[agent_id]),
        body if body is not None else {"consent": "transcript"},
        content_type="application/json",
        headers={"Origin": "http://testserver"},
    )


@pytest.mark.parametrize("role", [Role.OWNER, Role.ADMIN, Role.EDITOR])
def test_members_who_edit_agents_can_open_the_console_and_mint_a_token(
    tenant_a: TenantWorld, role: str
) -> None:
    agent = AgentFactory(tenant=tenant_a.tenant, name="Front desk", widget_color="#0b7285")
    client = tenant_a.client_for(role)

    page = client.get(reverse("dashboard:agent_console", args=[agent.public_id]))
    assert page.status_code == 200
    assert page.context["widget_config"]["color"] == "#0b7285"
    assert b"koe/widget.js" in page.content and b"koe/console.js" in page.content

    response = _token(client, agent.public_id)
    assert response.status_code == 200
    body = response.json()
    assert body["value"].startswith("ek_")
    assert body["session"]["model"] == agent.public_id
    token = SessionToken.objects.get(token_hash=hash_secret(body["value"]))
    assert (token.agent, token.channel, token.consent_scope) == (agent, "widget", "transcript")
    assert token.origin == "http://testserver"  # the WebSocket must come from the dashboard
    member = tenant_a.members[role].user.get_username()
    assert token.end_user_ref == f"console:{member}"


def test_the_agent_page_links_to_its_console(tenant_a: TenantWorld) -> None:
    agent = AgentFactory(tenant=tenant_a.tenant)
    page = tenant_a.client_for("editor").get(
        reverse("dashboard:agent_detail", args=[agent.public_id])
    )
    assert reverse("dashboard:agent_console", args=[agent.public_id]).encode() in page.content


def test_auditors_place_no_console_calls(tenant_a: TenantWorld) -> None:
    """A console call is a real call that costs money: auditors change nothing."""
    agent = AgentFactory(tenant=tenant_a.tenant)
    client = tenant_a.client_for("auditor")
    page = client.get(reverse("dashboard:agent_detail", args=[agent.public_id]))
    assert reverse("dashboard:agent_console", args=[agent.public_id]).encode() not in page.content
    assert client.get(reverse("dashboard:agent_console", args=[agent.public_id])).status_code == 403
    assert _token(client, agent.public_id).status_code == 403
    assert not SessionToken.objects.exists()


def test_another_tenants_agent_is_not_found(tenant_a: TenantWorld, tenant_b: TenantWorld) -> None:
    foreign = AgentFactory(tenant=tenant_b.tenant)
    client = tenant_a.client_for("owner")
    assert (
        client.get(reverse("dashboard:agent_console", args=[foreign.public_id])).status_code == 404
    )
    assert _token(client, foreign.public_id).status_code == 404
    assert not SessionToken.objects.exists()


def test_strangers_get_no_token(tenant_a: TenantWorld) -> None:
    agent = AgentFactory(tenant=tenant_a.tenant)
    response = _token(Client(), agent.public_id)
    assert response.status_code == 302
    assert reverse("dashboard:login") in response["Location"]
    get = tenant_a.client_for("owner").get(
        reverse("dashboard:agent_console_token", args=[agent.public_id])
    )
    assert get.status_code == 405
    assert not SessionToken.objects.exists()


def test_the_console_needs_the_csrf_token_like_any_dashboard_post(tenant_a: TenantWorld) -> None:
    agent = AgentFactory(tenant=tenant_a.tenant)
    client = Client(enforce_csrf_checks=True)
    client.force_login(tenant_a.members["owner"].user)
    assert _token(client, agent.public_id).status_code == 403
    assert not SessionToken.objects.exists()


def test_refusals_are_json_errors(tenant_a: TenantWorld) -> None:
    strict = AgentFactory(tenant=tenant_a.tenant, consent_required=True)
    client = tenant_a.client_for("editor")

    declined = _token(client, strict.public_id, {"consent": "none"})
    assert declined.status_code == 400
    assert declined.json()["error"]["code"] == "consent_required"

    bad = _token(client, strict.public_id, {"consent": "everything"})
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "invalid_consent"

    not_json = client.post(
        reverse("dashboard:agent_console_token", args=[strict.public_id]),
        "not json",
        content_type="application/json",
    )
    assert not_json.status_code == 400
    for body in (["consent"], {"consent": 3}):
        response = _token(client, strict.public_id, body)
        assert response.status_code == 400, body
        assert response.json()["error"]["code"] == "invalid_json"
    assert not SessionToken.objects.exists()


def test_the_console_records_the_consent_version_it_showed(tenant_a: TenantWorld) -> None:
    agent = AgentFactory(tenant=tenant_a.tenant, consent_prompt="May we keep a transcript?")
    client = tenant_a.client_for("editor")
    page = client.get(reverse("dashboard:agent_console", args=[agent.public_id]))
    shown = page.context["widget_config"]
    assert shown["consent_text"] == "May we keep a transcript?"

    response = _token(
        client,
        agent.public_id,
        {"consent": "transcript", "consent_version": shown["consent_version"]},
    )
    assert response.status_code == 200
    token = SessionToken.objects.get(token_hash=hash_secret(response.json()["value"]))
    assert (token.consent_text, token.consent_version) == (
        "May we keep a transcript?",
        shown["consent_version"],
    )


def test_a_prompt_changed_since_the_page_was_shown_is_refused_with_the_new_settings(
    tenant_a: TenantWorld,
) -> None:
    agent = AgentFactory(tenant=tenant_a.tenant, consent_prompt="Old words?")
    client = tenant_a.client_for("editor")
    shown = client.get(reverse("dashboard:agent_console", args=[agent.public_id])).context[
        "widget_config"
    ]
    agent.consent_prompt = "New words?"
    agent.save(update_fields=["consent_prompt"])

    response = _token(
        client,
        agent.public_id,
        {"consent": "transcript", "consent_version": shown["consent_version"]},
    )
    assert response.status_code == 409
    body = response.json()
    assert body["error"]["code"] == "consent_changed"
    assert body["config"]["consent_text"] == "New words?"
    assert body["config"]["consent_version"] == shown["consent_version"] + 1
    assert not SessionToken.objects.exists()


@pytest.mark.parametrize("version", [0, -1, "1", 1.5, True, [1]])
def test_a_consent_version_that_is_not_a_positive_integer_is_a_bad_request(
    tenant_a: TenantWorld, version: object
) -> None:
    agent = AgentFactory(tenant=tenant_a.tenant)
    response = _token(
        tenant_a.client_for("editor"),
        agent.public_id,
        {"consent": "transcript", "consent_version": version},
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_consent_version"
    assert not SessionToken.objects.exists()
