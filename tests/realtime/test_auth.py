"""Who may open a call: each refusal is a clear error event and close code; nothing stored."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from agents.models import Agent, WidgetKey
from agents.realtime import tokens
from calls.models import CallSession, Channel, SessionToken
from tests.conftest import TenantWorld
from tests.factories import AgentFactory
from tests.realtime.conftest import auth_headers
from tests.realtime.doubles import ScriptedProvider
from tests.realtime.helpers import connect, receive, refused

pytestmark = pytest.mark.django_db(transaction=True)


def _refusal(
    path: str,
    headers: list[tuple[bytes, bytes]] | None = None,
    subprotocols: list[str] | None = None,
) -> tuple[dict, int]:
    async def scenario() -> tuple[dict, int]:
        communicator = await connect(path, headers, subprotocols)
        return await refused(communicator)

    return asyncio.run(scenario())


def _token(agent: Agent, **fields: str) -> str:
    return tokens.mint(tenant=agent.tenant, agent=agent, channel=Channel.WIDGET, **fields).value


def test_missing_credentials(
    openai_agent: Agent, scripted_provider: type[ScriptedProvider]
) -> None:
    event, code = _refusal(f"/v1/realtime?model={openai_agent.public_id}")
    assert event["type"] == "error"
    assert event["error"]["code"] == "missing_api_key"
    assert code == 4001
    assert not CallSession.objects.exists()
    assert scripted_provider.connections == []


@pytest.mark.parametrize("secret", ["sk_unknown", "nonsense", "pk_abc"])
def test_unknown_key(
    secret: str, openai_agent: Agent, scripted_provider: type[ScriptedProvider]
) -> None:
    event, code = _refusal(f"/v1/realtime?model={openai_agent.public_id}", auth_headers(secret))
    assert event["error"]["code"] in {"invalid_api_key", "invalid_session_token"}
    assert code == 4001
    assert not CallSession.objects.exists()


def test_revoked_key(
    tenant_a: TenantWorld, openai_agent: Agent, scripted_provider: type[ScriptedProvider]
) -> None:
    assert tenant_a.api_key is not None
    tenant_a.api_key.revoke()
    event, code = _refusal(
        f"/v1/realtime?model={openai_agent.public_id}", auth_headers(tenant_a.secret)
    )
    assert event["error"]["code"] == "invalid_api_key"
    assert "revoked" in event["error"]["message"]
    assert code == 4001
    assert not CallSession.objects.exists()


def test_other_tenants_agent(
    tenant_b: TenantWorld, openai_agent: Agent, scripted_provider: type[ScriptedProvider]
) -> None:
    event, code = _refusal(
        f"/v1/realtime?model={openai_agent.public_id}", auth_headers(tenant_b.secret)
    )
    assert event["error"]["code"] == "model_not_found"
    assert code == 4000
    assert not CallSession.objects.exists()


def test_expired_token(openai_agent: Agent, scripted_provider: type[ScriptedProvider]) -> None:
    value = _token(openai_agent)
    with time_machine.travel(timezone.now() + timedelta(seconds=61)):
        event, code = _refusal(f"/v1/realtime?model={openai_agent.public_id}&token={value}")
    assert event["error"]["code"] == "session_token_expired"
    assert code == 4001
    assert not CallSession.objects.exists()


def test_reused_token(openai_agent: Agent, scripted_provider: type[ScriptedProvider]) -> None:
    value = _token(openai_agent)

    async def first_call() -> None:
        communicator = await connect(
            f"/v1/realtime?model={openai_agent.public_id}",
            subprotocols=["realtime", f"openai-insecure-api-key.{value}"],
        )
        assert (await receive(communicator))["type"] == "session.created"
        await communicator.disconnect()

    asyncio.run(first_call())
    event, _ = _refusal(f"/v1/realtime?model={openai_agent.public_id}&token={value}")
    assert event["error"]["code"] == "session_token_used"
    assert CallSession.objects.count() == 1
    assert SessionToken.objects.get().used_at is not None


def test_token_for_another_agent(
    tenant_a: TenantWorld, openai_agent: Agent, scripted_provider: type[ScriptedProvider]
) -> None:
    other = AgentFactory(
        tenant=tenant_a.tenant, provider="openai", model="gpt-realtime", voice="alloy"
    )
    value = _token(other)
    event, _ = _refusal(f"/v1/realtime?model={openai_agent.public_id}&token={value}")
    assert event["error"]["code"] == "session_token_agent_mismatch"
    assert not CallSession.objects.exists()
    # The refused attempt did not spend the token.
    assert SessionToken.objects.get().used_at is None


def test_token_from_a_disallowed_origin(
    openai_agent: Agent, scripted_provider: type[ScriptedProvider]
) -> None:
    WidgetKey.objects.create(agent=openai_agent, allowed_origins=["https://shop.example"])
    value = _token(openai_agent, origin="https://shop.example")
    event, code = _refusal(
        f"/v1/realtime?token={value}", headers=[(b"origin", b"https://evil.example")]
    )
    assert event["error"]["code"] == "origin_not_allowed"
    assert code == 4001
    assert not CallSession.objects.exists()


def test_bearer_session_token_and_subprotocol_negotiation(
    openai_agent: Agent, scripted_provider: type[ScriptedProvider]
) -> None:
    value = _token(openai_agent, origin="https://shop.example")

    async def scenario() -> str | None:
        from channels.testing import WebsocketCommunicator

        from koe.asgi import application

        communicator = WebsocketCommunicator(
            application,
            "/v1/realtime",
            headers=[(b"origin", b"https://shop.example")],
            subprotocols=["realtime", f"openai-insecure-api-key.{value}"],
        )
        connected, subprotocol = await communicator.connect()
        assert connected
        assert (await receive(communicator))["type"] == "session.created"
        await communicator.disconnect()
        return subprotocol

    assert asyncio.run(scenario()) == "realtime"
    call = CallSession.objects.get()
    assert call.channel == "widget"


def test_concurrent_call_limit(
    tenant_a: TenantWorld, openai_agent: Agent, scripted_provider: type[ScriptedProvider]
) -> None:
    tenant_a.tenant.max_concurrent_calls = 1
    tenant_a.tenant.save()

    async def scenario() -> tuple[dict, int]:
        first = await connect(
            f"/v1/realtime?model={openai_agent.public_id}", auth_headers(tenant_a.secret)
        )
        assert (await receive(first))["type"] == "session.created"
        second = await connect(
            f"/v1/realtime?model={openai_agent.public_id}", auth_headers(tenant_a.secret)
        )
        result = await refused(second)
        await first.disconnect()
        return result

    event, code = asyncio.run(scenario())
    assert event["error"]["code"] == "concurrent_call_limit"
    assert code == 4029
    assert CallSession.objects.count() == 1
