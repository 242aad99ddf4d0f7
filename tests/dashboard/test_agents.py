"""The agents pages: list, create/edit with versions, duplicate, delete, widget keys, roles."""

from __future__ import annotations

import html
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from agents.models import Agent, AgentVersion, WidgetKey
from tenancy.roles import Role
from tests.conftest import TenantWorld
from tests.factories import AgentFactory, CredentialFactory, ToolFactory, WidgetKeyFactory

EDITING_ROLES = [Role.OWNER, Role.ADMIN, Role.EDITOR]


def agent_data(**overrides: Any) -> dict[str, Any]:
    """A valid agent form submission for the built-in provider."""
    data: dict[str, Any] = {
        "name": "Reception",
        "instructions": "You are the receptionist of a dental clinic.",
        "greeting": "Hello, Acme Dental.",
        "language": "en",
        "provider": "local",
        "response_engine": "scripted",
        "model": "koe-local",
        "credential": "",
        "voice": "joe",
        "audio_format": "pcm16",
        "temperature": "0.8",
        "turn_detection": "server_vad",
        "vad_threshold": "0.5",
        "vad_prefix_padding_ms": "300",
        "vad_silence_duration_ms": "500",
        "semantic_eagerness": "auto",
        "max_call_duration_seconds": "600",
        "idle_timeout_seconds": "60",
        "consent_prompt": "May we record this call?",
        "widget_label": "Talk to us",
        "widget_color": "#2563eb",
        "widget_position": "bottom-right",
        "client_functions": "servers",
        "tool_calls_shown": "hidden",
        "faq": "",
        "voicemail_action": "hang_up",
    }
    data.update(overrides)
    return data


def database_state() -> dict[str, list[tuple[Any, ...]]]:
    return {
        "agents": sorted(Agent.objects.values_list(), key=repr),
        "versions": sorted(AgentVersion.objects.values_list(), key=repr),
        "widget_keys": sorted(WidgetKey.objects.values_list(), key=repr),
        "agent_tools": sorted(Agent.tools.through.objects.values_list(), key=repr),
    }


def text_of(response: Any) -> str:
    return html.unescape(response.content.decode())


def detail_url(agent: Agent) -> str:
    return reverse("dashboard:agent_detail", args=[agent.public_id])


# --- list ---------------------------------------------------------------------------------


def test_empty_list_invites_the_editor_to_create_tools_then_an_agent(tenant_a: TenantWorld) -> None:
    response = tenant_a.client_for(Role.EDITOR).get(reverse("dashboard:agent_list"))

    page = text_of(response)
    assert response.status_code == 200
    assert "No agents yet — create your first agent" in page
    assert "create its tools first" in page
    assert reverse("dashboard:agent_create") in page


def test_empty_list_drops_the_tools_hint_once_tools_exist(tenant_a: TenantWorld) -> None:
    ToolFactory(tenant=tenant_a.tenant)

    page = text_of(tenant_a.client_for(Role.EDITOR).get(reverse("dashboard:agent_list")))

    assert "No agents yet — create your first agent" in page
    assert "create its tools first" not in page


def test_list_shows_only_the_current_tenants_agents(
    tenant_a: TenantWorld, tenant_b: TenantWorld
) -> None:
    AgentFactory(tenant=tenant_a.tenant, name="Front desk")
    AgentFactory(tenant=tenant_b.tenant, name="Sommelier")

    page = text_of(tenant_a.client_for(Role.AUDITOR).get(reverse("dashboard:agent_list")))

    assert "Front desk" in page
    assert "Sommelier" not in page


# --- create and edit ----------------------------------------------------------------------


@pytest.mark.parametrize("role", EDITING_ROLES)
def test_editing_roles_create_an_agent_with_tools_as_version_1(
    role: str, tenant_a: TenantWorld
) -> None:
    tool = ToolFactory(tenant=tenant_a.tenant, name="book_appointment")

    response = tenant_a.client_for(role).post(
        reverse("dashboard:agent_create"), agent_data(tools=[tool.public_id])
    )

    agent = Agent.objects.get(tenant=tenant_a.tenant, name="Reception")
    assert response.status_code == 302
    assert response["Location"] == detail_url(agent)
    assert list(agent.tools.all()) == [tool]
    version = agent.versions.get()
    assert version.number == 1
    assert agent.current_version == version
    assert version.created_by == tenant_a.members[role].user
    assert version.config["tools"][0]["name"] == "book_appointment"
    assert version.config["instructions"] == "You are the receptionist of a dental clinic."


def test_create_form_groups_fields_in_fieldsets(tenant_a: TenantWorld) -> None:
    response = tenant_a.client_for(Role.EDITOR).get(reverse("dashboard:agent_create"))

    page = text_of(response)
    assert response.status_code == 200
    for legend in [
        "Basics",
        "Questions and answers",
        "Voice & model",
        "Turn detection",
        "Call limits",
        "Tools",
        "Consent",
    ]:
        assert f"<legend>{legend}</legend>" in page


def test_a_duplicate_agent_name_is_a_field_error(tenant_a: TenantWorld) -> None:
    AgentFactory(tenant=tenant_a.tenant, name="Reception")

    response = tenant_a.client_for(Role.EDITOR).post(
        reverse("dashboard:agent_create"), agent_data()
    )

    assert response.status_code == 200
    assert response.context["form"].errors["name"] == ["An agent named “Reception” already exists."]
    assert Agent.objects.filter(tenant=tenant_a.tenant).count() == 1


def test_the_same_name_in_another_tenant_is_fine(
    tenant_a: TenantWorld, tenant_b: TenantWorld
) -> None:
    AgentFactory(tenant=tenant_b.tenant, name="Reception")

    response = tenant_a.client_for(Role.EDITOR).post(
        reverse("dashboard:agent_create"), agent_data()
    )

    assert response.status_code == 302
    assert Agent.objects.filter(name="Reception").count() == 2


def test_a_foreign_tool_id_is_a_field_error_and_never_attached(
    tenant_a: TenantWorld, tenant_b: TenantWorld
) -> None:
    own_tool = ToolFactory(tenant=tenant_a.tenant)
    foreign_tool = ToolFactory(tenant=tenant_b.tenant)

    response = tenant_a.client_for(Role.EDITOR).post(
        reverse("dashboard:agent_create"),
        agent_data(tools=[own_tool.public_id, foreign_tool.public_id]),
    )

    assert response.status_code == 200
    assert "is not one of the available choices" in response.context["form"].errors["tools"][0]
    assert not Agent.objects.filter(name="Reception").exists()
    assert not foreign_tool.agents.exists()


def test_editing_with_a_foreign_tool_id_leaves_the_agent_as_it_was(
    tenant_a: TenantWorld, tenant_b: TenantWorld
) -> None:
    own_tool = ToolFactory(tenant=tenant_a.tenant)
    agent = AgentFactory(tenant=tenant_a.tenant, tools=[own_tool])
    foreign_tool = ToolFactory(tenant=tenant_b.tenant)

    response = tenant_a.client_for(Role.EDITOR).post(
        reverse("dashboard:agent_edit", args=[agent.public_id]),
        agent_data(name=agent.name, tools=[foreign_tool.public_id]),
    )

    assert response.status_code == 200
    assert "tools" in response.context["form"].errors
    assert list(agent.tools.all()) == [own_tool]
    assert agent.versions.count() == 1


def test_the_credential_list_offers_only_the_tenants_own(
    tenant_a: TenantWorld, tenant_b: TenantWorld
) -> None:
    own = CredentialFactory(tenant=tenant_a.tenant, name="Our OpenAI key")
    foreign = CredentialFactory(tenant=tenant_b.tenant, name="Their OpenAI key")
    client = tenant_a.client_for(Role.EDITOR)

    page = text_of(client.get(reverse("dashboard:agent_create")))
    response = client.post(
        reverse("dashboard:agent_create"),
        agent_data(
            provider="openai", model="gpt-realtime", voice="marin", credential=foreign.public_id
        ),
    )

    assert own.public_id in page
    assert foreign.public_id not in page
    assert response.status_code == 200
    assert "credential" in response.context["form"].errors
    assert not Agent.objects.filter(name="Reception").exists()


def test_an_agent_can_use_the_tenants_credential(tenant_a: TenantWorld) -> None:
    credential = CredentialFactory(tenant=tenant_a.tenant)

    response = tenant_a.client_for(Role.EDITOR).post(
        reverse("dashboard:agent_create"),
        agent_data(
            provider="openai", model="gpt-realtime", voice="marin", credential=credential.public_id
        ),
    )

    assert response.status_code == 302
    assert Agent.objects.get(name="Reception").credential == credential


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"provider": "openai", "model": "gpt-realtime", "voice": "joe"}, "voice", "voices"),
        (
            {"provider": "openai", "model": "koe-local", "voice": "marin"},
            "model",
            "realtime models",
        ),
        ({"provider": "azure", "model": "my-deployment", "voice": "marin"}, "credential", "Azure"),
        ({"temperature": "5"}, "temperature", "less than or equal to 2"),
        ({"vad_silence_duration_ms": "50"}, "vad_silence_duration_ms", "greater than or equal"),
        ({"max_call_duration_seconds": "99999"}, "max_call_duration_seconds", "less than"),
        ({"turn_detection": "telepathy"}, "turn_detection", "Select a valid choice"),
        ({"name": ""}, "name", "required"),
    ],
)
def test_invalid_configuration_is_reported_at_the_field(
    overrides: dict[str, str], field: str, message: str, tenant_a: TenantWorld
) -> None:
    response = tenant_a.client_for(Role.EDITOR).post(
        reverse("dashboard:agent_create"), agent_data(**overrides)
    )

    assert response.status_code == 200
    errors = response.context["form"].errors
    assert field in errors, errors
    assert message in " ".join(errors[field])
    assert not Agent.objects.exists()


def test_a_local_agent_with_a_credential_is_a_credential_error(tenant_a: TenantWorld) -> None:
    credential = CredentialFactory(tenant=tenant_a.tenant)

    response = tenant_a.client_for(Role.EDITOR).post(
        reverse("dashboard:agent_create"), agent_data(credential=credential.public_id)
    )

    assert response.status_code == 200
    assert response.context["form"].errors["credential"]
    assert not Agent.objects.exists()


def test_editing_records_version_2_and_leaves_version_1_unchanged(tenant_a: TenantWorld) -> None:
    agent = AgentFactory(tenant=tenant_a.tenant, name="Reception", instructions="Be brief.")
    version_1_config = AgentVersion.objects.get(agent=agent, number=1).config
    editor = tenant_a.members[Role.EDITOR].user

    response = tenant_a.client_for(Role.EDITOR).post(
        reverse("dashboard:agent_edit", args=[agent.public_id]),
        agent_data(instructions="Be warm and brief."),
    )

    assert response.status_code == 302
    agent.refresh_from_db()
    assert agent.instructions == "Be warm and brief."
    version_1 = AgentVersion.objects.get(agent=agent, number=1)
    version_2 = AgentVersion.objects.get(agent=agent, number=2)
    assert version_1.config == version_1_config
    assert version_1.config["instructions"] == "Be brief."
    assert version_2.config["instructions"] == "Be warm and brief."
    assert version_2.created_by == editor
    assert agent.current_version == version_2


def test_showing_tool_calls_to_clients_is_a_versioned_choice(tenant_a: TenantWorld) -> None:
    agent = AgentFactory(tenant=tenant_a.tenant, name="Reception")
    assert agent.current_version.config["tool_calls_shown"] == "hidden"
    url = reverse("dashboard:agent_edit", args=[agent.public_id])

    refused = tenant_a.client_for(Role.EDITOR).post(url, agent_data(tool_calls_shown="function"))
    shown = tenant_a.client_for(Role.EDITOR).post(url, agent_data(tool_calls_shown="hosted"))

    assert refused.status_code == 200
    assert "tool_calls_shown" in refused.context["form"].errors
    assert shown.status_code == 302
    agent.refresh_from_db()
    assert agent.current_version.config["tool_calls_shown"] == "hosted"
    detail = text_of(tenant_a.client_for(Role.EDITOR).get(detail_url(agent)))
    assert "Shown to clients as hosted tool calls (mcp_call)" in detail


def test_saving_without_changes_records_no_new_version(tenant_a: TenantWorld) -> None:
    client = tenant_a.client_for(Role.EDITOR)
    client.post(reverse("dashboard:agent_create"), agent_data())
    agent = Agent.objects.get(name="Reception")

    response = client.post(
        reverse("dashboard:agent_edit", args=[agent.public_id]), agent_data(), follow=True
    )

    assert agent.versions.count() == 1
    assert "Nothing changed" in text_of(response)


def test_the_edit_form_shows_the_current_configuration(tenant_a: TenantWorld) -> None:
    credential = CredentialFactory(tenant=tenant_a.tenant)
    tool = ToolFactory(tenant=tenant_a.tenant)
    agent = AgentFactory(
        tenant=tenant_a.tenant,
        provider="openai",
        model="gpt-realtime",
        voice="marin",
        credential=credential,
        tools=[tool],
    )

    response = tenant_a.client_for(Role.EDITOR).get(
        reverse("dashboard:agent_edit", args=[agent.public_id])
    )

    page = response.content.decode()
    assert response.status_code == 200
    assert f'<option value="{credential.public_id}" selected>' in page
    assert f'value="{tool.public_id}"' in page
    assert "checked" in page.split(f'value="{tool.public_id}"')[1].split(">")[0]


# --- FAQ and response engine --------------------------------------------------------------

FAQ_TEXT = """Q: When are you open?
A: Every day from noon
   to eleven.

q: Is there parking?
a: On Quay Road.
"""


def test_creating_an_agent_parses_the_faq_text(tenant_a: TenantWorld) -> None:
    response = tenant_a.client_for(Role.EDITOR).post(
        reverse("dashboard:agent_create"), agent_data(faq=FAQ_TEXT, response_engine="llm")
    )

    assert response.status_code == 302
    agent = Agent.objects.get(name="Reception")
    expected = [
        {"question": "When are you open?", "answer": "Every day from noon to eleven."},
        {"question": "Is there parking?", "answer": "On Quay Road."},
    ]
    assert agent.faq == expected
    assert agent.response_engine == "llm"
    assert agent.versions.get().config["faq"] == expected
    assert agent.versions.get().config["response_engine"] == "llm"


def test_the_edit_form_writes_the_faq_back_as_text_and_saving_it_changes_nothing(
    tenant_a: TenantWorld,
) -> None:
    agent = AgentFactory(
        tenant=tenant_a.tenant,
        name="Reception",
        faq=[
            {"question": "When are you open?", "answer": "Every day."},
            {"question": "Where are you?", "answer": "12 Harbour Street."},
        ],
    )
    client = tenant_a.client_for(Role.EDITOR)

    form = client.get(reverse("dashboard:agent_edit", args=[agent.public_id])).context["form"]
    text = form["faq"].value()
    response = client.post(
        reverse("dashboard:agent_edit", args=[agent.public_id]),
        agent_data(faq=text, instructions=agent.instructions, greeting=agent.greeting),
    )

    assert text == (
        "Q: When are you open?\nA: Every day.\n\nQ: Where are you?\nA: 12 Harbour Street."
    )
    assert response.status_code == 302
    agent.refresh_from_db()
    assert agent.faq[1] == {"question": "Where are you?", "answer": "12 Harbour Street."}


def test_the_form_offers_the_engine_and_an_faq_box_with_a_label_and_help(
    tenant_a: TenantWorld,
) -> None:
    page = text_of(tenant_a.client_for(Role.EDITOR).get(reverse("dashboard:agent_create")))

    assert '<label for="id_faq">Questions and answers:</label>' in page
    assert 'aria-describedby="id_faq_helptext"' in page
    assert '<option value="scripted" selected>Scripted (greeting, FAQ and tools' in page
    assert '<option value="llm">Language model' in page
    assert "built-in provider" in page


MALFORMED_FAQ = """Q: When are you open?
A: Every day.

When can I come?
Any time.

Q: Is there parking?

A: On Quay Road.

Q: Where are you?
A: Harbour Street.
A: Next to the market.

Q:
A: Nothing.
"""


def test_a_malformed_faq_names_the_lines_and_keeps_what_was_typed(tenant_a: TenantWorld) -> None:
    agent = AgentFactory(tenant=tenant_a.tenant, name="Reception", instructions="Be brief.")
    before = database_state()

    response = tenant_a.client_for(Role.EDITOR).post(
        reverse("dashboard:agent_edit", args=[agent.public_id]),
        agent_data(faq=MALFORMED_FAQ, instructions="Be warm."),
    )

    assert response.status_code == 200
    assert response.context["form"].errors["faq"] == [
        "Line 4: start each entry with a line “Q: …” (the question), "
        "then a line “A: …” (the answer).",
        "Line 7: the question has no answer: add a line “A: …” after it.",
        "Line 9: this answer has no question: put a line “Q: …” right above it, "
        "with no blank line between.",
        "Line 13: the question on line 11 already has an answer: leave a blank line, "
        "then start the next entry with “Q: …”.",
        "Line 15: the question is empty.",
    ]
    page = text_of(response)
    assert "Line 13: the question on line 11 already has an answer" in page
    # Nothing typed is lost: the FAQ and the other fields come back as they were sent.
    assert MALFORMED_FAQ in page
    assert "Be warm." in page
    assert database_state() == before


@pytest.mark.parametrize(
    ("faq", "message"),
    [
        ("Q: " + "q" * 301 + "\nA: Yes.", "Line 1: the question is longer than 300 characters"),
        ("Q: Why?\nA: " + "a" * 2001, "Line 2: the answer is longer than 2000 characters"),
        ("Q: Why?\nA:   ", "Line 2: the answer is empty."),
        ("\n\n".join(["Q: Why?\nA: Because."] * 101), "At most 100 questions and answers"),
    ],
)
def test_faq_limits_are_field_errors(faq: str, message: str, tenant_a: TenantWorld) -> None:
    response = tenant_a.client_for(Role.EDITOR).post(
        reverse("dashboard:agent_create"), agent_data(faq=faq)
    )

    assert response.status_code == 200
    assert message in " ".join(response.context["form"].errors["faq"])
    assert not Agent.objects.exists()


def test_an_empty_faq_box_clears_the_faq(tenant_a: TenantWorld) -> None:
    agent = AgentFactory(
        tenant=tenant_a.tenant, name="Reception", faq=[{"question": "Why?", "answer": "Yes."}]
    )

    response = tenant_a.client_for(Role.EDITOR).post(
        reverse("dashboard:agent_edit", args=[agent.public_id]), agent_data(faq="  \n")
    )

    assert response.status_code == 302
    agent.refresh_from_db()
    assert agent.faq == []
    assert agent.current_version.config["faq"] == []


def test_detail_shows_the_engine_the_faq_and_tool_phrases(tenant_a: TenantWorld) -> None:
    tool = ToolFactory(tenant=tenant_a.tenant, example_phrases=["book a table"])
    agent = AgentFactory(
        tenant=tenant_a.tenant,
        tools=[tool],
        faq=[{"question": "Is there parking?", "answer": "On Quay Road."}],
    )

    page = text_of(tenant_a.client_for(Role.AUDITOR).get(detail_url(agent)))

    assert "<dt>Response engine</dt><dd>Scripted (greeting, FAQ and tools" in page
    assert "<dt>Is there parking?</dt><dd>On Quay Road.</dd>" in page
    assert "Callers say: “book a table”" in page


# --- versions -----------------------------------------------------------------------------


def test_version_page_shows_the_config_and_the_changed_lines(tenant_a: TenantWorld) -> None:
    agent = AgentFactory(tenant=tenant_a.tenant, name="Reception", instructions="Be brief.")
    client = tenant_a.client_for(Role.EDITOR)
    client.post(
        reverse("dashboard:agent_edit", args=[agent.public_id]),
        agent_data(instructions="Be warm and brief."),
    )

    response = tenant_a.client_for(Role.AUDITOR).get(
        reverse("dashboard:agent_version", args=[agent.public_id, 2])
    )

    page = text_of(response)
    assert response.status_code == 200
    assert '<pre class="diff">' in page
    assert '<span class="del">-  "instructions": "Be brief.",</span>' in page
    assert '<span class="add">+  "instructions": "Be warm and brief.",</span>' in page
    assert '<span class="hunk">@@' in page
    assert '"greeting": "Hello, Acme Dental."' in page


def test_the_first_version_diffs_against_nothing(tenant_a: TenantWorld) -> None:
    agent = AgentFactory(tenant=tenant_a.tenant, instructions="Be brief.")

    response = tenant_a.client_for(Role.EDITOR).get(
        reverse("dashboard:agent_version", args=[agent.public_id, 1])
    )

    assert response.status_code == 200
    assert '<span class="add">+  "instructions": "Be brief.",</span>' in text_of(response)


def test_an_unknown_version_number_is_not_found(tenant_a: TenantWorld) -> None:
    agent = AgentFactory(tenant=tenant_a.tenant)

    response = tenant_a.client_for(Role.OWNER).get(
        reverse("dashboard:agent_version", args=[agent.public_id, 7])
    )

    assert response.status_code == 404


def test_detail_lists_configuration_tools_keys_and_history(tenant_a: TenantWorld) -> None:
    tool = ToolFactory(tenant=tenant_a.tenant, name="check_order")
    agent = AgentFactory(tenant=tenant_a.tenant, name="Reception", tools=[tool])
    widget_key = WidgetKeyFactory(agent=agent, allowed_origins=["https://shop.example"])
    tenant_a.client_for(Role.EDITOR).post(
        reverse("dashboard:agent_edit", args=[agent.public_id]),
        agent_data(tools=[tool.public_id], greeting="Hi!"),
    )

    response = tenant_a.client_for(Role.EDITOR).get(detail_url(agent))

    page = text_of(response)
    assert response.status_code == 200
    assert "check_order" in page
    assert (
        '<script src="http://127.0.0.1:8000/static/koe/widget.js" '
        f'data-key="{widget_key.key}" data-agent="{agent.public_id}" async></script>'
    ) in page
    assert "https://shop.example" in page
    assert reverse("dashboard:agent_version", args=[agent.public_id, 1]) in page
    assert reverse("dashboard:agent_version", args=[agent.public_id, 2]) in page
    assert tenant_a.members[Role.EDITOR].user.email in page
    assert reverse("dashboard:widget_key_revoke", args=[agent.public_id, widget_key.key]) in page


# --- duplicate and delete -----------------------------------------------------------------


def test_duplicating_copies_the_configuration_and_tools(tenant_a: TenantWorld) -> None:
    tool = ToolFactory(tenant=tenant_a.tenant)
    agent = AgentFactory(tenant=tenant_a.tenant, name="Reception", tools=[tool], voice="joe")

    response = tenant_a.client_for(Role.EDITOR).post(
        reverse("dashboard:agent_duplicate", args=[agent.public_id])
    )

    copy = Agent.objects.get(tenant=tenant_a.tenant, name="Reception (copy)")
    assert response.status_code == 302
    assert response["Location"] == detail_url(copy)
    assert copy.public_id != agent.public_id
    assert list(copy.tools.all()) == [tool]
    assert copy.versions.get().number == 1
    assert copy.instructions == agent.instructions


def test_duplicate_answers_only_post(tenant_a: TenantWorld) -> None:
    agent = AgentFactory(tenant=tenant_a.tenant)

    response = tenant_a.client_for(Role.EDITOR).get(
        reverse("dashboard:agent_duplicate", args=[agent.public_id])
    )

    assert response.status_code == 405
    assert Agent.objects.count() == 1


def test_delete_asks_for_confirmation_then_deletes(tenant_a: TenantWorld) -> None:
    agent = AgentFactory(tenant=tenant_a.tenant, name="Reception")
    client = tenant_a.client_for(Role.EDITOR)
    url = reverse("dashboard:agent_delete", args=[agent.public_id])

    confirm = client.get(url)
    assert confirm.status_code == 200
    assert "Delete “Reception”?" in text_of(confirm)
    assert Agent.objects.filter(pk=agent.pk).exists()

    response = client.post(url)
    assert response.status_code == 302
    assert response["Location"] == reverse("dashboard:agent_list")
    assert not Agent.objects.filter(pk=agent.pk).exists()
    assert not AgentVersion.objects.filter(agent_id=agent.pk).exists()


# --- widget keys --------------------------------------------------------------------------


def test_creating_a_widget_key_stores_normalised_origins(tenant_a: TenantWorld) -> None:
    agent = AgentFactory(tenant=tenant_a.tenant)

    response = tenant_a.client_for(Role.EDITOR).post(
        reverse("dashboard:widget_key_create", args=[agent.public_id]),
        {
            "allowed_origins": "https://Shop.Example:443/\n\nhttp://localhost:8080\nhttps://shop.example"
        },
    )

    assert response.status_code == 302
    widget_key = agent.widget_keys.get()
    assert widget_key.key.startswith("pk_")
    assert widget_key.allowed_origins == ["https://shop.example", "http://localhost:8080"]


@pytest.mark.parametrize(
    ("origins", "message"),
    [
        ("https://x.example/path", "has a path"),
        ("ftp://x", "is not an origin"),
        ("https://x.example:99999", "is not an origin"),
        ("http://[::1", "is not an origin"),
    ],
)
def test_a_bad_origin_is_a_field_error(origins: str, message: str, tenant_a: TenantWorld) -> None:
    agent = AgentFactory(tenant=tenant_a.tenant)

    response = tenant_a.client_for(Role.EDITOR).post(
        reverse("dashboard:widget_key_create", args=[agent.public_id]),
        {"allowed_origins": f"https://fine.example\n{origins}"},
    )

    assert response.status_code == 200
    errors = response.context["widget_key_form"].errors["allowed_origins"]
    assert message in " ".join(errors)
    assert message in text_of(response)
    assert not WidgetKey.objects.exists()


def test_a_widget_key_needs_an_origin(tenant_a: TenantWorld) -> None:
    agent = AgentFactory(tenant=tenant_a.tenant)

    response = tenant_a.client_for(Role.EDITOR).post(
        reverse("dashboard:widget_key_create", args=[agent.public_id]), {"allowed_origins": " \n "}
    )

    assert response.status_code == 200
    assert response.context["widget_key_form"].errors["allowed_origins"]
    assert not WidgetKey.objects.exists()


def test_revoking_a_widget_key_keeps_it_listed_without_its_snippet(tenant_a: TenantWorld) -> None:
    agent = AgentFactory(tenant=tenant_a.tenant)
    widget_key = WidgetKeyFactory(agent=agent)
    client = tenant_a.client_for(Role.EDITOR)

    response = client.post(
        reverse("dashboard:widget_key_revoke", args=[agent.public_id, widget_key.key])
    )

    widget_key.refresh_from_db()
    assert response.status_code == 302
    assert widget_key.revoked_at is not None
    page = text_of(client.get(detail_url(agent)))
    assert "Revoked" in page
    assert f'data-key="{widget_key.key}"' not in page


def test_a_widget_key_of_another_agent_is_not_found(tenant_a: TenantWorld) -> None:
    agent = AgentFactory(tenant=tenant_a.tenant)
    other_key = WidgetKeyFactory(agent=AgentFactory(tenant=tenant_a.tenant))

    response = tenant_a.client_for(Role.EDITOR).post(
        reverse("dashboard:widget_key_revoke", args=[agent.public_id, other_key.key])
    )

    other_key.refresh_from_db()
    assert response.status_code == 404
    assert other_key.revoked_at is None


# --- auditors -----------------------------------------------------------------------------


def test_auditors_read_every_page_without_edit_buttons(tenant_a: TenantWorld) -> None:
    agent = AgentFactory(tenant=tenant_a.tenant, tools=[ToolFactory(tenant=tenant_a.tenant)])
    widget_key = WidgetKeyFactory(agent=agent)
    client = tenant_a.client_for(Role.AUDITOR)
    mutating_urls = [
        reverse("dashboard:agent_create"),
        reverse("dashboard:agent_edit", args=[agent.public_id]),
        reverse("dashboard:agent_duplicate", args=[agent.public_id]),
        reverse("dashboard:agent_delete", args=[agent.public_id]),
        reverse("dashboard:widget_key_create", args=[agent.public_id]),
        reverse("dashboard:widget_key_revoke", args=[agent.public_id, widget_key.key]),
    ]

    for url in [
        reverse("dashboard:agent_list"),
        detail_url(agent),
        reverse("dashboard:agent_version", args=[agent.public_id, 1]),
    ]:
        response = client.get(url)
        page = response.content.decode()
        assert response.status_code == 200, url
        assert widget_key.key in page or url != detail_url(agent)
        for mutating_url in mutating_urls:
            assert mutating_url not in page, (url, mutating_url)
        assert "Duplicate" not in page
        assert "Revoke" not in page


@pytest.mark.parametrize(
    ("name", "method"),
    [
        ("agent_create", "GET"),
        ("agent_create", "POST"),
        ("agent_edit", "GET"),
        ("agent_edit", "POST"),
        ("agent_duplicate", "POST"),
        ("agent_delete", "GET"),
        ("agent_delete", "POST"),
        ("widget_key_create", "POST"),
        ("widget_key_revoke", "POST"),
    ],
)
def test_auditors_cannot_change_agents(name: str, method: str, tenant_a: TenantWorld) -> None:
    agent = AgentFactory(tenant=tenant_a.tenant, name="Reception")
    widget_key = WidgetKeyFactory(agent=agent)
    kwargs = {
        "agent_create": {},
        "widget_key_revoke": {"agent_id": agent.public_id, "key": widget_key.key},
    }.get(name, {"agent_id": agent.public_id})
    url = reverse(f"dashboard:{name}", kwargs=kwargs)
    data = {**agent_data(name="Changed"), "allowed_origins": "https://new.example"}
    before = database_state()

    client = tenant_a.client_for(Role.AUDITOR)
    response = client.get(url) if method == "GET" else client.post(url, data)

    assert response.status_code == 403
    assert database_state() == before


# --- other tenants ------------------------------------------------------------------------


@pytest.mark.parametrize("role", Role.values)
def test_another_tenants_agent_urls_are_not_found(
    role: str, tenant_a: TenantWorld, tenant_b: TenantWorld
) -> None:
    agent = AgentFactory(tenant=tenant_a.tenant, name="Reception")
    widget_key = WidgetKeyFactory(agent=agent)
    requests = [
        ("GET", reverse("dashboard:agent_detail", args=[agent.public_id])),
        ("GET", reverse("dashboard:agent_edit", args=[agent.public_id])),
        ("POST", reverse("dashboard:agent_edit", args=[agent.public_id])),
        ("GET", reverse("dashboard:agent_version", args=[agent.public_id, 1])),
        ("POST", reverse("dashboard:agent_duplicate", args=[agent.public_id])),
        ("GET", reverse("dashboard:agent_delete", args=[agent.public_id])),
        ("POST", reverse("dashboard:agent_delete", args=[agent.public_id])),
        ("POST", reverse("dashboard:widget_key_create", args=[agent.public_id])),
        ("POST", reverse("dashboard:widget_key_revoke", args=[agent.public_id, widget_key.key])),
    ]
    data = {**agent_data(name="Hijacked"), "allowed_origins": "https://evil.example"}
    before = database_state()
    client: Client = tenant_b.client_for(role)

    for method, url in requests:
        response = client.get(url) if method == "GET" else client.post(url, data)
        assert response.status_code == 404, (method, url)
    assert database_state() == before
