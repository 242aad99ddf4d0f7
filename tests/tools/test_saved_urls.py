"""The dashboard refuses to save a tool whose webhook or MCP server is not a public address."""

from __future__ import annotations

import html
from typing import Any

import pytest
from django.urls import reverse

from tenancy.roles import Role
from tests.conftest import TenantWorld
from tests.dashboard.test_tools import tool_data
from tests.factories import ToolFactory
from tests.tools.refused_urls import ACCEPTED_URLS, REFUSED_URLS
from tools.models import ToolDefinition

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def no_allowlist(settings: Any) -> None:
    settings.KOE_OUTBOUND_ALLOWLIST = []


def field_errors(response: Any, field: str) -> str:
    assert response.status_code == 200
    errors = " ".join(response.context["form"].errors.get(field, []))
    assert errors, response.context["form"].errors
    return errors


@pytest.mark.parametrize(("url", "message"), REFUSED_URLS)
def test_a_webhook_url_that_is_not_public_is_a_field_error(
    url: str, message: str, tenant_a: TenantWorld
) -> None:
    response = tenant_a.client_for(Role.EDITOR).post(
        reverse("dashboard:tool_create"), tool_data(webhook_url=url)
    )

    assert message in field_errors(response, "webhook_url")
    assert message in html.unescape(response.content.decode())
    assert not ToolDefinition.objects.exists()


@pytest.mark.parametrize(("url", "message"), REFUSED_URLS)
def test_an_mcp_server_url_that_is_not_public_is_a_field_error(
    url: str, message: str, tenant_a: TenantWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[str] = []
    monkeypatch.setattr(
        "dashboard.forms.tools.list_tools_of", lambda tool, url, **kwargs: asked.append(url)
    )

    response = tenant_a.client_for(Role.EDITOR).post(
        reverse("dashboard:tool_create"),
        tool_data(kind="mcp", webhook_url="", mcp_server_url=url),
    )

    assert message in field_errors(response, "mcp_server_url")
    assert not ToolDefinition.objects.exists()
    assert asked == []  # the refused server was not asked for its tools


def test_an_edit_to_a_refused_url_keeps_the_stored_one(tenant_a: TenantWorld) -> None:
    tool = ToolFactory(tenant=tenant_a.tenant, webhook_url="https://hooks.example.com/book")

    response = tenant_a.client_for(Role.EDITOR).post(
        reverse("dashboard:tool_edit", args=[tool.public_id]),
        tool_data(name=tool.name, webhook_url="http://169.254.169.254/latest/meta-data/"),
    )

    assert "the cloud metadata service's address" in field_errors(response, "webhook_url")
    tool.refresh_from_db()
    assert tool.webhook_url == "https://hooks.example.com/book"


@pytest.mark.parametrize("url", ACCEPTED_URLS)
def test_public_webhook_urls_are_saved(url: str, tenant_a: TenantWorld) -> None:
    response = tenant_a.client_for(Role.EDITOR).post(
        reverse("dashboard:tool_create"), tool_data(webhook_url=url)
    )

    assert "will not be shown again" in response.content.decode()  # the created tool's page
    assert ToolDefinition.objects.get().webhook_url == url


@pytest.mark.parametrize(
    ("allowlist", "url"),
    [
        (["127.0.0.1"], "http://127.0.0.1:9000/hook"),
        (["127.0.0.1"], "http://localhost:9000/hook"),
        (["10.0.0.0/8"], "http://10.20.30.40/hook"),
    ],
)
def test_the_allowlist_admits_what_it_names(
    allowlist: list[str], url: str, tenant_a: TenantWorld, settings: Any
) -> None:
    settings.KOE_OUTBOUND_ALLOWLIST = allowlist

    response = tenant_a.client_for(Role.EDITOR).post(
        reverse("dashboard:tool_create"), tool_data(webhook_url=url)
    )

    assert "will not be shown again" in response.content.decode()  # the created tool's page
    assert ToolDefinition.objects.get().webhook_url == url
