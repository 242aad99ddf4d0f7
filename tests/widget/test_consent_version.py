"""The consent words a widget caller saw are the words their call records.

The config endpoint gives the current consent text and its version; the widget sends the
version back with its token request, and a token for a prompt that changed in between is
refused (409 consent_changed) so that no call records words its caller never read.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from agents.consent import DEFAULT_CONSENT_TEXT
from agents.models import Agent, ConsentText, WidgetKey
from agents.versions import save_agent
from calls.models import SessionToken
from tests.conftest import TenantWorld
from tests.factories import AgentFactory, WidgetKeyFactory

pytestmark = pytest.mark.django_db

ORIGIN = "https://shop.example"


@pytest.fixture
def widget(tenant_a: TenantWorld) -> tuple[Agent, WidgetKey]:
    agent = AgentFactory(
        tenant=tenant_a.tenant, consent_prompt="May we keep this call?", recording_offered=True
    )
    return agent, WidgetKeyFactory(agent=agent, allowed_origins=[ORIGIN])


def _config(key: WidgetKey) -> dict[str, Any]:
    response = Client().get("/v1/widget/config", {"key": key.key}, headers={"Origin": ORIGIN})
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


def _token(key: WidgetKey, **fields: Any) -> Any:
    return Client().post(
        "/v1/widget/client_secrets",
        {"key": key.key, "agent": key.agent.public_id, **fields},
        content_type="application/json",
        headers={"Origin": ORIGIN},
    )


def _change_prompt(agent: Agent, text: str) -> None:
    agent.consent_prompt = text
    save_agent(agent, user=None)


def test_the_token_records_the_text_and_version_the_config_showed(
    widget: tuple[Agent, WidgetKey],
) -> None:
    _, key = widget
    shown = _config(key)
    assert (shown["consent_text"], shown["consent_version"]) == ("May we keep this call?", 1)

    response = _token(key, consent="recording", consent_version=shown["consent_version"])

    assert response.status_code == 200
    token = SessionToken.objects.get()
    assert (token.consent_scope, token.consent_version, token.consent_text) == (
        "recording",
        1,
        "May we keep this call?",
    )


def test_a_prompt_changed_after_it_was_shown_refuses_the_token_until_asked_again(
    widget: tuple[Agent, WidgetKey],
) -> None:
    agent, key = widget
    seen = _config(key)["consent_version"]
    _change_prompt(agent, "We now also keep recordings for training. Do you agree?")

    stale = _token(key, consent="recording", consent_version=seen)

    assert stale.status_code == 409
    error = stale.json()["error"]
    assert error["code"] == "consent_changed"
    assert "ask again" in error["message"]
    assert stale["Access-Control-Allow-Origin"] == ORIGIN  # the widget may read why
    assert not SessionToken.objects.exists()

    # The widget reloads its config, shows the new words, and the caller answers them.
    current = _config(key)
    assert current["consent_text"] == "We now also keep recordings for training. Do you agree?"
    assert current["consent_version"] == 2
    again = _token(key, consent="transcript", consent_version=current["consent_version"])
    assert again.status_code == 200
    token = SessionToken.objects.get()
    assert (token.consent_scope, token.consent_version, token.consent_text) == (
        "transcript",
        2,
        current["consent_text"],
    )


def test_a_decline_also_answers_a_particular_version(widget: tuple[Agent, WidgetKey]) -> None:
    agent, key = widget
    seen = _config(key)["consent_version"]
    _change_prompt(agent, "Something else entirely?")
    assert _token(key, consent="none", consent_version=seen).status_code == 409


def test_without_a_version_the_current_one_is_recorded(widget: tuple[Agent, WidgetKey]) -> None:
    # Clients that predate consent_version keep working; they answered the current words.
    agent, key = widget
    _change_prompt(agent, "Version one?")
    _config(key)
    _change_prompt(agent, "Version two?")

    response = _token(key, consent="transcript")

    assert response.status_code == 200
    token = SessionToken.objects.get()
    assert (token.consent_version, token.consent_text) == (2, "Version two?")


@pytest.mark.parametrize("version", [True, "1", 0, -3, 1.5, [1], {"v": 1}])
def test_a_malformed_version_is_a_clear_400(version: Any, widget: tuple[Agent, WidgetKey]) -> None:
    _, key = widget
    response = _token(key, consent="transcript", consent_version=version)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_consent_version"
    assert not SessionToken.objects.exists()


def test_a_blank_prompt_shows_and_records_the_platform_default(tenant_a: TenantWorld) -> None:
    agent = AgentFactory(tenant=tenant_a.tenant, consent_prompt="  ")
    key = WidgetKeyFactory(agent=agent, allowed_origins=[ORIGIN])

    shown = _config(key)
    assert shown["consent_text"] == DEFAULT_CONSENT_TEXT
    assert _token(key, consent="transcript", consent_version=shown["consent_version"]).status_code
    token = SessionToken.objects.get()
    assert token.consent_text == DEFAULT_CONSENT_TEXT == shown["consent_text"]
    # Showing it again does not write a new version: the words did not change.
    assert _config(key)["consent_version"] == shown["consent_version"]
    assert ConsentText.objects.filter(agent=agent).count() == 1


def test_each_scope_the_widget_offers_is_recorded_as_chosen(
    widget: tuple[Agent, WidgetKey],
) -> None:
    # The widget's three buttons send these scopes; an agent without recording downgrades
    # "recording" to a transcript rather than recording what it never offered.
    agent, key = widget
    version = _config(key)["consent_version"]
    for scope in ("recording", "transcript", "none"):
        assert _token(key, consent=scope, consent_version=version).status_code == 200
    assert list(SessionToken.objects.order_by("pk").values_list("consent_scope", flat=True)) == [
        "recording",
        "transcript",
        "none",
    ]
    agent.recording_offered = False
    save_agent(agent, user=None)
    assert _token(key, consent="recording", consent_version=version).status_code == 200
    assert SessionToken.objects.order_by("-pk").first().consent_scope == "transcript"  # type: ignore[union-attr]
