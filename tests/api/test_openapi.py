"""The API describes itself: an OpenAPI schema and Swagger UI served from our own static files."""

from __future__ import annotations

import re

import pytest
from django.contrib.staticfiles import finders
from django.test import Client

pytestmark = pytest.mark.django_db


def test_openapi_schema_is_public_and_lists_the_endpoints() -> None:
    response = Client().get("/v1/openapi.json")
    assert response.status_code == 200
    schema = response.json()
    assert schema["info"]["title"] == "Koe API"
    paths = schema["paths"]
    expected = {
        "/v1/agents": {"get", "post"},
        "/v1/agents/{agent_id}": {"get", "patch", "delete"},
        "/v1/agents/{agent_id}/duplicate": {"post"},
        "/v1/agents/{agent_id}/versions": {"get"},
        "/v1/agents/{agent_id}/versions/{number}": {"get"},
        "/v1/tools": {"get", "post"},
        "/v1/tools/{tool_id}": {"get", "patch", "delete"},
        "/v1/tools/{tool_id}/duplicate": {"post"},
        "/v1/realtime/client_secrets": {"post"},
    }
    for path, methods in expected.items():
        assert path in paths, sorted(paths)
        assert methods <= set(paths[path]), (path, set(paths[path]))


def test_openapi_schema_declares_bearer_auth_on_every_operation() -> None:
    schema = Client().get("/v1/openapi.json").json()
    schemes = schema["components"]["securitySchemes"]
    assert schemes["SecretKeyAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "description": schemes["SecretKeyAuth"]["description"],
    }
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            assert operation["security"] == [{"SecretKeyAuth": []}], (method, path)


def test_openapi_schema_never_offers_secrets_for_reading() -> None:
    components = Client().get("/v1/openapi.json").json()["components"]["schemas"]
    assert "headers" not in components["WebhookOut"]["properties"]
    assert "auth_header" not in components["McpOut"]["properties"]
    assert "signing_secret" not in components["ToolOut"]["properties"]
    assert "signing_secret" in components["ToolCreated"]["properties"]
    assert "headers" in components["WebhookIn"]["properties"]


def test_openapi_schema_describes_the_faq_engine_phrases_and_mock_reply() -> None:
    components = Client().get("/v1/openapi.json").json()["components"]["schemas"]
    for schema in ("AgentOut", "AgentPatch", "AgentCreate"):
        assert {"faq", "response_engine"} <= set(components[schema]["properties"]), schema
    for schema in ("ToolOut", "ToolPatch", "ToolCreate"):
        assert {"example_phrases", "mock_response"} <= set(components[schema]["properties"])
    assert set(components["FaqEntryIn"]["required"]) == {"question", "answer"}


def test_docs_page_is_public_and_loads_nothing_from_other_hosts() -> None:
    response = Client().get("/v1/docs")
    assert response.status_code == 200
    html = response.content.decode()
    assert "swagger-ui-bundle.js" in html
    assert "/v1/openapi.json" in html
    sources = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert sources, html
    for source in sources:
        assert source.startswith("/static/"), source
    assert not re.search(r"https?://|//cdn|jsdelivr|unpkg", html)
    assert '"validatorUrl": null' in html  # Swagger UI would otherwise call validator.swagger.io


def test_docs_static_files_are_served() -> None:
    html = Client().get("/v1/docs").content.decode()
    bundle = re.search(r'src="(/static/[^"]*swagger-ui-bundle[^"]*)"', html)
    assert bundle is not None
    path = bundle.group(1).removeprefix("/static/")
    assert finders.find(path) is not None
