"""REST API for agents: CRUD, versions, validation as field errors, tenant isolation."""

from __future__ import annotations

from typing import Any

import pytest

from agents.models import Agent, AgentVersion
from tests.api import api_client
from tests.conftest import TenantWorld
from tests.factories import AgentFactory, CredentialFactory, ToolFactory

pytestmark = pytest.mark.django_db


def _post(world: TenantWorld, body: Any, path: str = "/v1/agents") -> Any:
    return api_client(world.secret).post(path, body, content_type="application/json")


def _patch(world: TenantWorld, agent_id: str, body: Any) -> Any:
    return api_client(world.secret).patch(
        f"/v1/agents/{agent_id}", body, content_type="application/json"
    )


def _field_errors(response: Any) -> dict[str, list[str]]:
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert (error["type"], error["code"]) == ("invalid_request_error", "invalid_fields")
    return dict(error["fields"])


def test_create_with_only_a_name_uses_the_model_defaults(tenant_a: TenantWorld) -> None:
    response = _post(tenant_a, {"name": "Front desk"})
    assert response.status_code == 201
    body = response.json()
    agent = Agent.objects.get(public_id=body["id"])
    assert agent.tenant == tenant_a.tenant
    assert body["name"] == "Front desk"
    assert (body["provider"], body["model"], body["voice"]) == ("local", "koe-local", "joe")
    assert body["turn_detection"] == {
        "type": "server_vad",
        "threshold": 0.5,
        "prefix_padding_ms": 300,
        "silence_duration_ms": 500,
        "eagerness": "auto",
    }
    assert body["credential"] is None
    assert body["tools"] == []
    assert body["current_version"] == 1
    assert (body["response_engine"], body["faq"]) == ("scripted", [])
    assert agent.versions.count() == 1
    assert set(body) == {
        "id", "name", "provider", "response_engine", "model", "credential", "instructions",
        "voice", "audio_format", "temperature", "turn_detection", "greeting", "faq", "language",
        "max_call_duration_seconds", "idle_timeout_seconds", "tools", "consent_prompt",
        "recording_offered", "consent_required", "widget_label", "widget_color",
        "widget_position", "client_may_override", "client_functions", "tool_calls_shown",
            "greet_api_callers",
        "strict_client_settings",
        "show_configuration_to_browsers", "current_version", "created_at", "updated_at",
        "transfer_number", "voicemail_action", "voicemail_message",
    }  # fmt: skip
    assert (body["transfer_number"], body["voicemail_action"]) == ("", "hang_up")
    assert (body["consent_required"], body["widget_color"], body["widget_position"]) == (
        False,
        "#2563eb",
        "bottom-right",
    )


def test_create_a_full_openai_agent(tenant_a: TenantWorld) -> None:
    credential = CredentialFactory(tenant=tenant_a.tenant)
    tools = [ToolFactory(tenant=tenant_a.tenant, name=name) for name in ("b_tool", "a_tool")]
    response = _post(
        tenant_a,
        {
            "name": "Concierge",
            "provider": "openai",
            "model": "gpt-realtime",
            "credential": credential.public_id,
            "instructions": "Be brief.",
            "voice": "marin",
            "temperature": 0.6,
            "turn_detection": {"type": "semantic_vad", "eagerness": "high"},
            "greeting": "Hello!",
            "language": "fr",
            "max_call_duration_seconds": 900,
            "idle_timeout_seconds": 0,
            "tools": [tool.public_id for tool in tools],
            "recording_offered": True,
            "client_may_override": True,
        },
    )
    assert response.status_code == 201, response.content
    body = response.json()
    agent = Agent.objects.get(public_id=body["id"])
    assert (agent.provider, agent.model, agent.voice) == ("openai", "gpt-realtime", "marin")
    assert agent.credential == credential
    assert (agent.turn_detection, agent.semantic_eagerness) == ("semantic_vad", "high")
    assert agent.vad_silence_duration_ms == 500  # omitted nested field keeps its default
    assert set(agent.tools.all()) == set(tools)
    assert body["tools"] == [tools[1].public_id, tools[0].public_id]  # by name
    assert body["credential"] == credential.public_id
    assert "sk-proj" not in response.content.decode()
    version = agent.versions.get()
    assert version.config["voice"] == "marin"
    assert [tool["name"] for tool in version.config["tools"]] == ["a_tool", "b_tool"]


def test_get_and_list_ordered_by_name_with_pagination(
    tenant_a: TenantWorld, tenant_b: TenantWorld
) -> None:
    for name in ("Zeta", "Alpha", "Mid"):
        AgentFactory(tenant=tenant_a.tenant, name=name)
    AgentFactory(tenant=tenant_b.tenant, name="Aaa other tenant")
    client = api_client(tenant_a.secret)
    body = client.get("/v1/agents").json()
    assert [agent["name"] for agent in body["items"]] == ["Alpha", "Mid", "Zeta"]
    assert body["count"] == 3
    page = client.get("/v1/agents?limit=1&offset=1").json()
    assert [agent["name"] for agent in page["items"]] == ["Mid"]
    one = client.get(f"/v1/agents/{body['items'][0]['id']}")
    assert one.status_code == 200
    assert one.json() == body["items"][0]
    for query in ("limit=101", "offset=-1", "limit=lots", "offset=99999999999999999999999"):
        response = client.get(f"/v1/agents?{query}")
        assert response.status_code == 400, (query, response.content)
        assert set(response.json()["error"]["fields"]) <= {"limit", "offset"}
    far = client.get(f"/v1/agents/{body['items'][0]['id']}/versions?offset=9223372036854775808")
    assert far.status_code == 400
    assert "offset" in far.json()["error"]["fields"]


def test_patch_creates_a_new_version_and_keeps_the_old_one(tenant_a: TenantWorld) -> None:
    tool = ToolFactory(tenant=tenant_a.tenant)
    agent = AgentFactory(tenant=tenant_a.tenant, name="Desk", tools=[tool])
    v1_config = agent.versions.get().config
    response = _patch(
        tenant_a,
        agent.public_id,
        {"instructions": "Speak slowly.", "turn_detection": {"threshold": 0.7}, "tools": []},
    )
    assert response.status_code == 200, response.content
    assert response.json()["current_version"] == 2
    agent.refresh_from_db()
    assert agent.instructions == "Speak slowly."
    assert agent.vad_threshold == 0.7
    assert agent.name == "Desk"  # not sent, not changed
    assert list(agent.tools.all()) == []
    assert agent.versions.get(number=1).config == v1_config
    assert v1_config["instructions"] == "You are a helpful receptionist."
    assert agent.versions.get(number=2).config["instructions"] == "Speak slowly."

    # The same values again are no new version.
    again = _patch(tenant_a, agent.public_id, {"instructions": "Speak slowly."})
    assert again.json()["current_version"] == 2
    assert agent.versions.count() == 2


def test_patch_leaves_tools_alone_unless_sent_and_can_clear_the_credential(
    tenant_a: TenantWorld,
) -> None:
    credential = CredentialFactory(tenant=tenant_a.tenant)
    tool = ToolFactory(tenant=tenant_a.tenant)
    agent = AgentFactory(
        tenant=tenant_a.tenant,
        provider="openai",
        model="gpt-realtime",
        voice="alloy",
        credential=credential,
        tools=[tool],
    )
    response = _patch(tenant_a, agent.public_id, {"credential": None})
    assert response.status_code == 200, response.content
    agent.refresh_from_db()
    assert agent.credential is None
    assert list(agent.tools.all()) == [tool]


def test_versions_list_and_detail(tenant_a: TenantWorld) -> None:
    agent = AgentFactory(tenant=tenant_a.tenant)
    _patch(tenant_a, agent.public_id, {"greeting": "Hi there"})
    client = api_client(tenant_a.secret)
    listing = client.get(f"/v1/agents/{agent.public_id}/versions").json()
    assert [version["number"] for version in listing["items"]] == [2, 1]
    assert listing["count"] == 2
    detail = client.get(f"/v1/agents/{agent.public_id}/versions/1")
    assert detail.status_code == 200
    assert detail.json()["config"] == agent.versions.get(number=1).config
    assert detail.json()["config"]["greeting"] == ""
    missing = client.get(f"/v1/agents/{agent.public_id}/versions/3")
    assert missing.status_code == 404
    assert missing.json()["error"]["type"] == "not_found"
    assert client.get(f"/v1/agents/{agent.public_id}/versions/one").status_code == 400


def test_delete_and_duplicate(tenant_a: TenantWorld) -> None:
    tool = ToolFactory(tenant=tenant_a.tenant)
    agent = AgentFactory(tenant=tenant_a.tenant, name="Desk", tools=[tool])
    client = api_client(tenant_a.secret)
    copy = client.post(f"/v1/agents/{agent.public_id}/duplicate")
    assert copy.status_code == 201
    body = copy.json()
    assert body["name"] == "Desk (copy)"
    assert body["id"] != agent.public_id
    assert body["tools"] == [tool.public_id]
    assert body["current_version"] == 1
    assert Agent.objects.filter(tenant=tenant_a.tenant).count() == 2

    deleted = client.delete(f"/v1/agents/{agent.public_id}")
    assert deleted.status_code == 204
    assert deleted.content == b""
    assert not Agent.objects.filter(pk=agent.pk).exists()
    assert not AgentVersion.objects.filter(agent_id=agent.pk).exists()
    assert client.get(f"/v1/agents/{agent.public_id}").status_code == 404


@pytest.mark.parametrize(
    ("body", "field", "fragment"),
    [
        ({"name": ""}, "name", "blank"),
        ({"name": "x" * 121}, "name", "at most 120"),
        ({"name": None}, "name", "valid string"),
        ({"provider": "skynet"}, "provider", "local"),
        ({"provider": "openai", "model": "gpt-2"}, "model", "gpt-realtime"),
        ({"provider": "openai", "model": "gpt-realtime", "voice": "joe"}, "voice", "alloy"),
        ({"provider": "azure", "voice": "alloy"}, "credential", "Azure needs"),
        ({"temperature": 3}, "temperature", "less than or equal to 2"),
        ({"temperature": "warm"}, "temperature", "number"),
        ({"turn_detection": {"type": "psychic"}}, "turn_detection.type", "server_vad"),
        ({"turn_detection": {"threshold": 1.5}}, "turn_detection.threshold", "less than"),
        (
            {"turn_detection": {"silence_duration_ms": 5}},
            "turn_detection.silence_duration_ms",
            "greater than",
        ),
        ({"turn_detection": {"eagerness": "eager"}}, "turn_detection.eagerness", "low"),
        ({"turn_detection": {"colour": "blue"}}, "turn_detection.colour", "not permitted"),
        # TextField lengths, which full_clean() alone would not check.
        ({"instructions": "x" * 20001}, "instructions", "at most 20000 characters"),
        ({"greeting": "x" * 2001}, "greeting", "at most 2000 characters"),
        ({"consent_prompt": "x" * 2001}, "consent_prompt", "at most 2000 characters"),
        ({"max_call_duration_seconds": 5}, "max_call_duration_seconds", "greater than"),
        ({"idle_timeout_seconds": -1}, "idle_timeout_seconds", "greater than"),
        ({"tools": "tool_abc"}, "tools", "valid list"),
        ({"tools": ["tool_missing"]}, "tools", "tool_missing"),
        ({"credential": "cred_missing"}, "credential", "Unknown credential"),
        ({"recording_offered": "perhaps"}, "recording_offered", "boolean"),
        # Numbers and booleans are strict: no quiet coercion of the wrong type.
        ({"recording_offered": 1}, "recording_offered", "boolean"),
        ({"client_may_override": "true"}, "client_may_override", "boolean"),
        ({"temperature": True}, "temperature", "number"),
        ({"temperature": "0.5"}, "temperature", "number"),
        ({"max_call_duration_seconds": "600"}, "max_call_duration_seconds", "integer"),
        ({"idle_timeout_seconds": 30.5}, "idle_timeout_seconds", "integer"),
        (
            {"turn_detection": {"prefix_padding_ms": "300"}},
            "turn_detection.prefix_padding_ms",
            "integer",
        ),
        ({"id": "agt_chosen"}, "id", "not permitted"),
        ({"response_engine": "oracle"}, "response_engine", "scripted"),
        ({"response_engine": None}, "response_engine", "scripted"),
        ({"faq": "Q: Why?"}, "faq", "valid list"),
        ({"faq": [{"question": "Why?"}]}, "faq.0.answer", "required"),
        ({"faq": [{"question": "Why?", "answer": 42}]}, "faq.0.answer", "valid string"),
        ({"faq": [{"question": "Why?", "answer": "Yes.", "x": 1}]}, "faq.0.x", "not permitted"),
        ({"faq": [{"question": " ", "answer": "Yes."}]}, "faq", "Entry 1: the question is empty"),
        (
            {"faq": [{"question": "Why?", "answer": "a" * 2001}]},
            "faq",
            "Entry 1: the answer is longer than 2000 characters",
        ),
        (
            {"faq": [{"question": "Why?", "answer": "Yes."}] * 101},
            "faq",
            "At most 100 questions and answers",
        ),
    ],
)
def test_invalid_agents_are_400_with_field_messages(
    tenant_a: TenantWorld, body: dict[str, Any], field: str, fragment: str
) -> None:
    fields = _field_errors(_post(tenant_a, {"name": "Desk", **body}))
    assert field in fields, fields
    assert fragment in " ".join(fields[field]), fields
    assert not Agent.objects.exists()


def test_duplicate_agent_name_is_a_name_error(tenant_a: TenantWorld, tenant_b: TenantWorld) -> None:
    AgentFactory(tenant=tenant_a.tenant, name="Desk")
    other = AgentFactory(tenant=tenant_a.tenant, name="Other")
    fields = _field_errors(_post(tenant_a, {"name": "Desk"}))
    assert "already taken" in fields["name"][0]
    assert (
        "already taken"
        in _field_errors(_patch(tenant_a, other.public_id, {"name": "Desk"}))["name"][0]
    )
    other.refresh_from_db()
    assert other.name == "Other"
    assert other.versions.count() == 1
    assert _post(tenant_b, {"name": "Desk"}).status_code == 201


def test_a_name_taken_concurrently_is_409_json(
    tenant_a: TenantWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    AgentFactory(tenant=tenant_a.tenant, name="Desk")
    # As if the other request committed between our validation and our insert.
    monkeypatch.setattr(Agent, "validate_constraints", lambda self, exclude=None: None)
    response = _post(tenant_a, {"name": "Desk"})
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "conflict"
    assert Agent.objects.count() == 1


def test_another_tenants_tool_or_credential_is_refused(
    tenant_a: TenantWorld, tenant_b: TenantWorld
) -> None:
    foreign_tool = ToolFactory(tenant=tenant_b.tenant)
    own_tool = ToolFactory(tenant=tenant_a.tenant)
    foreign_credential = CredentialFactory(tenant=tenant_b.tenant)
    fields = _field_errors(
        _post(tenant_a, {"name": "Desk", "tools": [own_tool.public_id, foreign_tool.public_id]})
    )
    assert fields["tools"] == [f"Unknown tool: {foreign_tool.public_id}."]
    fields = _field_errors(
        _post(
            tenant_a,
            {
                "name": "Desk",
                "provider": "openai",
                "model": "gpt-realtime",
                "voice": "alloy",
                "credential": foreign_credential.public_id,
            },
        )
    )
    assert "Unknown credential" in fields["credential"][0]
    assert not Agent.objects.exists()

    agent = AgentFactory(tenant=tenant_a.tenant, tools=[own_tool])
    assert "tools" in _field_errors(
        _patch(tenant_a, agent.public_id, {"tools": [foreign_tool.public_id]})
    )
    assert list(agent.tools.all()) == [own_tool]
    assert agent.versions.count() == 1


def test_other_tenants_agents_and_versions_are_404_and_unchanged(
    tenant_a: TenantWorld, tenant_b: TenantWorld
) -> None:
    agent = AgentFactory(tenant=tenant_b.tenant, name="Bistro desk")
    client = api_client(tenant_a.secret)
    path = f"/v1/agents/{agent.public_id}"
    responses = [
        client.get(path),
        client.patch(path, {"name": "Stolen"}, content_type="application/json"),
        client.delete(path),
        client.post(f"{path}/duplicate"),
        client.get(f"{path}/versions"),
        client.get(f"{path}/versions/1"),
        client.get("/v1/agents/agt_nonexistent"),
    ]
    for response in responses:
        assert response.status_code == 404, response.content
        assert response.json()["error"] == {
            "type": "not_found",
            "code": "not_found",
            "message": response.json()["error"]["message"],
        }
    agent.refresh_from_db()
    assert agent.name == "Bistro desk"
    assert agent.versions.count() == 1
    assert Agent.objects.count() == 1


@pytest.mark.parametrize(
    "raw_body",
    [
        "{",
        "}{",
        "nonsense",
        "[]",
        '[{"name": "Desk"}]',
        "null",
        "0",
        '"Desk"',
        '{"name": {"first": "Desk"}}',
        '{"name": "Desk", "turn_detection": "server_vad"}',
        '{"name": "Desk", "turn_detection": {"threshold": "high"}}',
        '{"name": "Desk", "tools": [1, 2]}',
        '{"name": "Desk", "tools": [null]}',
        '{"name": "Desk", "credential": 7}',
        '{"name": "Desk", "temperature": NaN}',
        '{"name": "Desk", "temperature": -Infinity}',
        '{"name": "Desk", "temperature": 1e999}',
        '{"name": "Desk", "max_call_duration_seconds": 1e30}',
        '{"name": "Desk", "max_call_duration_seconds": 99999999999999999999999}',
        '{"name": "\\u0000Desk"}',
        '{"name": "Desk", "language": "' + "x" * 100 + '"}',
        '{"name": "Desk", "instructions": "' + "x" * 30000 + '"}',
        '{"name": "Desk", "tools": ["' + "x" * 100000 + '"]}',
        '{"name": "Desk", "greeting": ' + "[" * 5000 + "]" * 5000 + "}",
        '{"name": "Desk", "extra": ' + '{"a": ' * 500 + "1" + "}" * 500 + "}",
        "\xff\xfe\x00garbage",
    ],
)
def test_garbage_bodies_are_400_never_500(tenant_a: TenantWorld, raw_body: str) -> None:
    agent = AgentFactory(tenant=tenant_a.tenant, name="Existing")
    client = api_client(tenant_a.secret)
    for response in (
        client.post("/v1/agents", raw_body, content_type="application/json"),
        client.patch(f"/v1/agents/{agent.public_id}", raw_body, content_type="application/json"),
    ):
        assert response.status_code == 400, (raw_body, response.content)
        assert response.json()["error"]["type"] == "invalid_request_error"
    assert Agent.objects.count() == 1
    assert agent.versions.count() == 1


def test_wrong_method_and_unknown_path_answer_json(tenant_a: TenantWorld) -> None:
    client = api_client(tenant_a.secret)
    response = client.put("/v1/agents", {}, content_type="application/json")
    assert response.status_code == 405
    assert set(response["Allow"].split(", ")) == {"GET", "POST"}
    assert response.json()["error"]["code"] == "method_not_allowed"
    for path in ("/v1/no-such-thing", "/v1/agents/", "/v1/", "/v1"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert response.json()["error"]["type"] == "not_found"


def test_audio_format_round_trip(tenant_a: TenantWorld) -> None:
    client = api_client(tenant_a.secret)
    created = client.post(
        "/v1/agents",
        {
            "name": "Phone line",
            "provider": "openai",
            "model": "gpt-realtime",
            "voice": "alloy",
            "audio_format": "g711_ulaw",
        },
        content_type="application/json",
    )
    assert created.status_code == 201, created.content
    assert created.json()["audio_format"] == "g711_ulaw"
    refused = client.post(
        "/v1/agents",
        {"name": "Local phone", "audio_format": "g711_alaw"},
        content_type="application/json",
    )
    assert refused.status_code == 400
    assert "audio_format" in refused.json()["error"]["fields"]


def test_faq_and_response_engine_round_trip_and_re_version(tenant_a: TenantWorld) -> None:
    faq = [
        {"question": "When are you open?", "answer": "Every day from noon to eleven."},
        {"question": "Is there parking?", "answer": "On  Quay\nRoad."},
    ]
    created = _post(tenant_a, {"name": "Host", "response_engine": "llm", "faq": faq})
    assert created.status_code == 201, created.content
    body = created.json()
    tidied = [faq[0], {"question": "Is there parking?", "answer": "On Quay Road."}]
    assert (body["response_engine"], body["faq"]) == ("llm", tidied)
    agent = Agent.objects.get(public_id=body["id"])
    assert agent.faq == tidied
    assert agent.versions.get().config["faq"] == tidied
    assert api_client(tenant_a.secret).get(f"/v1/agents/{agent.public_id}").json() == body

    # PATCH replaces the whole list; what is not sent stays.
    patched = _patch(tenant_a, agent.public_id, {"faq": [faq[0]]})
    assert patched.status_code == 200, patched.content
    assert patched.json()["faq"] == [faq[0]]
    assert patched.json()["response_engine"] == "llm"
    assert patched.json()["current_version"] == 2
    engine = _patch(tenant_a, agent.public_id, {"response_engine": "scripted"})
    assert engine.json()["current_version"] == 3
    assert agent.versions.get(number=3).config["response_engine"] == "scripted"
    assert agent.versions.get(number=1).config["faq"] == tidied

    refused = _patch(tenant_a, agent.public_id, {"faq": [{"question": "", "answer": ""}]})
    assert _field_errors(refused)["faq"] == [
        "Entry 1: the question is empty.",
        "Entry 1: the answer is empty.",
    ]
    agent.refresh_from_db()
    assert agent.faq == [faq[0]]
    assert agent.versions.count() == 3


def test_widget_look_and_required_consent_are_set_and_checked(tenant_a: TenantWorld) -> None:
    response = _post(
        tenant_a,
        {
            "name": "Front desk",
            "consent_required": True,
            "widget_label": "Ask us",
            "widget_color": "#0b7285",
            "widget_position": "bottom-left",
        },
    )
    assert response.status_code == 201, response.content
    agent = Agent.objects.get(public_id=response.json()["id"])
    assert (agent.consent_required, agent.widget_label, agent.widget_color) == (
        True,
        "Ask us",
        "#0b7285",
    )
    assert agent.widget_position == "bottom-left"
    assert set(_field_errors(_post(tenant_a, {"name": "Other", "widget_color": "blue"}))) == {
        "widget_color"
    }
    assert set(_field_errors(_post(tenant_a, {"name": "Other", "widget_position": "top"}))) == {
        "widget_position"
    }
    assert not Agent.objects.filter(name="Other").exists()


def test_phone_settings_are_versioned_and_a_transfer_number_must_be_e164(
    tenant_a: TenantWorld,
) -> None:
    from django.test import Client

    client = Client(headers={"Authorization": f"Bearer {tenant_a.secret}"})
    created = client.post(
        "/v1/agents", {"name": "Front desk"}, content_type="application/json"
    ).json()
    refused = client.patch(
        f"/v1/agents/{created['id']}",
        {"transfer_number": "0800 123"},
        content_type="application/json",
    )
    assert refused.status_code == 400
    assert "transfer_number" in refused.json()["error"]["fields"]
    changed = client.patch(
        f"/v1/agents/{created['id']}",
        {
            "transfer_number": "+14155550123",
            "voicemail_action": "leave_message",
            "voicemail_message": "Please call us back.",
        },
        content_type="application/json",
    ).json()
    assert changed["current_version"] == 2
    version = client.get(f"/v1/agents/{created['id']}/versions/2").json()["config"]
    assert (version["transfer_number"], version["voicemail_action"]) == (
        "+14155550123",
        "leave_message",
    )
