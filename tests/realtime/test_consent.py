"""Consent at the door: the versioned text a caller answered, and agents that require consent."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from django.test import Client

from agents.consent import consent_text_for
from agents.models import Agent, ConsentText
from agents.versions import save_agent
from calls.models import CallSession, SessionToken
from tests.conftest import TenantWorld
from tests.factories import WidgetKeyFactory
from tests.realtime.conftest import auth_headers
from tests.realtime.doubles import ScriptedProvider
from tests.realtime.helpers import connect, receive, refused

ORIGIN = "https://shop.example"


def _mint(secret: str, agent: Agent, consent: str | None) -> Any:
    body: dict[str, Any] = {"session": {"type": "realtime", "model": agent.public_id}}
    if consent is not None:
        body["consent"] = consent
    return Client().post(
        "/v1/realtime/client_secrets",
        body,
        content_type="application/json",
        headers={"Authorization": f"Bearer {secret}"},
    )


def _change_prompt(agent: Agent, text: str) -> None:
    agent.consent_prompt = text
    save_agent(agent, user=None)


@pytest.mark.django_db
def test_each_changed_prompt_is_a_new_version_and_tokens_keep_the_words_shown(
    tenant_a: TenantWorld, openai_agent: Agent
) -> None:
    _change_prompt(openai_agent, "May we keep a transcript?")
    assert _mint(tenant_a.secret, openai_agent, "transcript").status_code == 200
    assert _mint(tenant_a.secret, openai_agent, "transcript").status_code == 200
    _change_prompt(openai_agent, "May we keep a transcript and a recording?")
    assert _mint(tenant_a.secret, openai_agent, "recording").status_code == 200

    assert list(ConsentText.objects.values_list("version", "text").order_by("version")) == [
        (1, "May we keep a transcript?"),
        (2, "May we keep a transcript and a recording?"),
    ]
    tokens = SessionToken.objects.order_by("pk")
    assert [(token.consent_version, token.consent_text) for token in tokens] == [
        (1, "May we keep a transcript?"),
        (1, "May we keep a transcript?"),
        (2, "May we keep a transcript and a recording?"),
    ]


@pytest.mark.django_db
def test_a_prompt_changed_back_is_a_new_version_not_an_old_one(openai_agent: Agent) -> None:
    for text in ("First.", "Second.", "First."):
        _change_prompt(openai_agent, text)
        consent_text_for(openai_agent)
    assert list(ConsentText.objects.values_list("version", "text").order_by("version")) == [
        (1, "First."),
        (2, "Second."),
        (3, "First."),
    ]


@pytest.mark.django_db
def test_without_consent_no_text_or_version_is_recorded(
    tenant_a: TenantWorld, openai_agent: Agent
) -> None:
    assert _mint(tenant_a.secret, openai_agent, None).status_code == 200
    token = SessionToken.objects.get()
    assert (token.consent_scope, token.consent_version, token.consent_text) == ("none", None, "")
    assert not ConsentText.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("consent", [None, "none"])
def test_an_agent_that_requires_consent_mints_no_token_without_it(
    tenant_a: TenantWorld, openai_agent: Agent, consent: str | None
) -> None:
    openai_agent.consent_required = True
    save_agent(openai_agent, user=None)
    response = _mint(tenant_a.secret, openai_agent, consent)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "consent_required"
    assert not SessionToken.objects.exists()
    assert _mint(tenant_a.secret, openai_agent, "transcript").status_code == 200


@pytest.mark.django_db
def test_the_widget_cannot_open_a_consent_required_agent_after_a_decline(
    openai_agent: Agent,
) -> None:
    openai_agent.consent_required = True
    save_agent(openai_agent, user=None)
    key = WidgetKeyFactory(agent=openai_agent, allowed_origins=[ORIGIN])

    def post(consent: str) -> Any:
        return Client().post(
            "/v1/widget/client_secrets",
            {"key": key.key, "agent": openai_agent.public_id, "consent": consent},
            content_type="application/json",
            headers={"Origin": ORIGIN},
        )

    declined = post("none")
    assert declined.status_code == 400
    assert declined.json()["error"]["code"] == "consent_required"
    accepted = post("transcript")
    assert accepted.status_code == 200
    token = SessionToken.objects.get()
    assert (token.consent_scope, token.consent_method, token.consent_version) == (
        "transcript",
        "widget_checkbox",
        1,
    )


@pytest.mark.django_db(transaction=True)
def test_a_call_records_the_consent_version_its_caller_answered(
    tenant_a: TenantWorld, openai_agent: Agent, scripted_provider: type[ScriptedProvider]
) -> None:
    _change_prompt(openai_agent, "Version one?")
    consent_text_for(openai_agent)
    _change_prompt(openai_agent, "Version two?")

    async def scenario() -> None:
        communicator = await connect(
            f"/v1/realtime?model={openai_agent.public_id}&consent=transcript",
            auth_headers(tenant_a.secret),
        )
        assert (await receive(communicator))["type"] == "session.created"
        await communicator.disconnect()

    asyncio.run(scenario())
    call = CallSession.objects.get()
    assert (call.consent_scope, call.consent_method) == ("transcript", "api_flag")
    assert (call.consent_version, call.consent_text) == (2, "Version two?")
    assert call.consent_at is not None


@pytest.mark.django_db(transaction=True)
def test_a_secret_key_call_without_consent_is_refused_by_a_consent_required_agent(
    tenant_a: TenantWorld, openai_agent: Agent, scripted_provider: type[ScriptedProvider]
) -> None:
    openai_agent.consent_required = True
    save_agent(openai_agent, user=None)

    async def scenario() -> tuple[dict[str, Any], int]:
        communicator = await connect(
            f"/v1/realtime?model={openai_agent.public_id}", auth_headers(tenant_a.secret)
        )
        return await refused(communicator)

    event, code = asyncio.run(scenario())
    assert event["type"] == "error"
    assert event["error"]["code"] == "consent_required"
    assert code == 4000
    assert not CallSession.objects.exists()
    assert not scripted_provider.connections


@pytest.mark.django_db
def test_a_backend_reports_consent_given_out_loud(
    tenant_a: TenantWorld, openai_agent: Agent
) -> None:
    body = {
        "session": {"type": "realtime", "model": openai_agent.public_id},
        "consent": "transcript",
        "consent_method": "spoken",
    }
    client = Client()
    headers = {"Authorization": f"Bearer {tenant_a.secret}"}
    response = client.post(
        "/v1/realtime/client_secrets", body, content_type="application/json", headers=headers
    )
    assert response.status_code == 200
    token = SessionToken.objects.get()
    assert (token.consent_scope, token.consent_method) == ("transcript", "spoken")

    body["consent_method"] = "widget_checkbox"  # only the widget itself says that
    refused_method = client.post(
        "/v1/realtime/client_secrets", body, content_type="application/json", headers=headers
    )
    assert refused_method.status_code == 400
    assert SessionToken.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_secret_key_call_records_spoken_consent_and_refuses_an_unknown_method(
    tenant_a: TenantWorld, openai_agent: Agent, scripted_provider: type[ScriptedProvider]
) -> None:
    base = f"/v1/realtime?model={openai_agent.public_id}&consent=recording"

    async def scenario() -> tuple[dict[str, Any], int]:
        spoken = await connect(base + "&consent_method=spoken", auth_headers(tenant_a.secret))
        assert (await receive(spoken))["type"] == "session.created"
        await spoken.disconnect()
        unknown = await connect(base + "&consent_method=telepathy", auth_headers(tenant_a.secret))
        return await refused(unknown)

    event, code = asyncio.run(scenario())
    assert event["error"]["code"] == "invalid_consent_method"
    assert code == 4000
    call = CallSession.objects.get()  # the refused connection opened no call
    # The agent does not offer recording: the consent counts as a transcript consent.
    assert (call.consent_scope, call.consent_method) == ("transcript", "spoken")
