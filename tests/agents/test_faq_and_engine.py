"""An agent's response engine and FAQ: validated on the model, part of every version."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from agents.models import Agent
from agents.versions import save_agent, version_diff
from tests.conftest import TenantWorld
from tests.factories import AgentFactory

OPENING_HOURS = {"question": "When are you open?", "answer": "Every day from noon to eleven."}


def faq_errors(tenant_a: TenantWorld, faq: Any) -> list[str]:
    agent = Agent(tenant=tenant_a.tenant, name="Host", faq=faq)
    with pytest.raises(ValidationError) as caught:
        agent.full_clean()
    return caught.value.message_dict["faq"]


def test_a_new_agent_is_scripted_with_no_faq(tenant_a: TenantWorld) -> None:
    agent = AgentFactory(tenant=tenant_a.tenant)

    config = agent.versions.get().config
    assert (config["response_engine"], config["faq"]) == ("scripted", [])


def test_a_valid_faq_is_stored_with_its_spaces_tidied(tenant_a: TenantWorld) -> None:
    agent = Agent(
        tenant=tenant_a.tenant,
        name="Host",
        response_engine="llm",
        faq=[{"question": "  When are\n you open? ", "answer": "Every day\tfrom noon to eleven."}],
    )

    agent.full_clean()
    save_agent(agent)

    agent.refresh_from_db()
    assert agent.faq == [OPENING_HOURS]
    assert agent.response_engine == "llm"
    config = agent.current_version.config
    assert config["faq"] == [OPENING_HOURS]
    assert config["response_engine"] == "llm"


@pytest.mark.parametrize(
    ("faq", "message"),
    [
        ("When are you open?", "A list of"),
        ([["When?", "Noon."]], "Entry 1: write it as"),
        ([{"question": "When?"}], "Entry 1: write it as"),
        ([{"question": "When?", "answer": "Noon.", "extra": "x"}], "Entry 1: write it as"),
        ([{"question": "When?", "answer": 12}], "Entry 1: write it as"),
        ([OPENING_HOURS, {"question": "  ", "answer": "Noon."}], "Entry 2: the question is empty."),
        ([{"question": "When?", "answer": "\n"}], "Entry 1: the answer is empty."),
        (
            [{"question": "q" * 301, "answer": "Noon."}],
            "Entry 1: the question is longer than 300 characters (it has 301).",
        ),
        (
            [{"question": "When?", "answer": "a" * 2001}],
            "Entry 1: the answer is longer than 2000 characters (it has 2001).",
        ),
        ([OPENING_HOURS] * 101, "At most 100 questions and answers (there are 101)."),
    ],
)
def test_an_invalid_faq_is_a_field_error(tenant_a: TenantWorld, faq: Any, message: str) -> None:
    errors = faq_errors(tenant_a, faq)

    assert any(message in error for error in errors), errors


def test_the_longest_faq_allowed_is_valid(tenant_a: TenantWorld) -> None:
    entry = {"question": "q" * 300, "answer": "a" * 2000}
    agent = Agent(tenant=tenant_a.tenant, name="Host", faq=[entry] * 100)

    agent.full_clean()

    assert agent.faq == [entry] * 100


def test_every_faq_problem_is_reported_at_once(tenant_a: TenantWorld) -> None:
    errors = faq_errors(
        tenant_a,
        [{"question": "", "answer": "Noon."}, OPENING_HOURS, {"question": "Where?", "answer": ""}],
    )

    assert errors == ["Entry 1: the question is empty.", "Entry 3: the answer is empty."]


def test_an_unknown_response_engine_is_refused(tenant_a: TenantWorld) -> None:
    agent = Agent(tenant=tenant_a.tenant, name="Host", response_engine="oracle")
    with pytest.raises(ValidationError) as caught:
        agent.full_clean()
    assert "response_engine" in caught.value.message_dict

    # The database keeps the invariant too, whatever skips validation.
    with pytest.raises(IntegrityError), transaction.atomic():
        agent.save()


def test_changing_the_faq_or_engine_records_a_version_with_a_diff(tenant_a: TenantWorld) -> None:
    agent = AgentFactory(tenant=tenant_a.tenant)

    agent.faq = [OPENING_HOURS]
    save_agent(agent)
    agent.response_engine = "llm"
    save_agent(agent)
    agent.faq = [OPENING_HOURS]
    unchanged = save_agent(agent)

    assert unchanged.number == 3
    assert agent.versions.count() == 3
    first, second, third = (agent.versions.get(number=n) for n in (1, 2, 3))
    assert first.config["faq"] == []
    assert second.config["faq"] == [OPENING_HOURS]
    assert third.config["response_engine"] == "llm"
    faq_diff = version_diff(first, second)
    assert '-  "faq": [],' in faq_diff
    assert '+      "question": "When are you open?"' in faq_diff
    engine_diff = version_diff(second, third)
    assert '-  "response_engine": "scripted",' in engine_diff
    assert '+  "response_engine": "llm",' in engine_diff
