"""The REST API v1 (django-ninja): tenant secret-key auth and JSON errors.

Domain routers (agents, tools) are attached in koe/urls.py.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from ninja import NinjaAPI
from ninja.security import HttpBearer

from tenancy.models import ApiKey


class SecretKeyAuth(HttpBearer):
    openapi_description = "A tenant secret key (sk_...) from the dashboard's API keys page."

    def authenticate(self, request: HttpRequest, token: str) -> ApiKey | None:
        key = ApiKey.authenticate(token)
        if key is not None:
            request.tenant = key.tenant  # type: ignore[attr-defined]
            request.api_key = key  # type: ignore[attr-defined]
        return key


api = NinjaAPI(
    title="Koe API",
    version="1",
    description="Manage a tenant's voice agents and tools. Authenticate with a secret key: "
    "`Authorization: Bearer sk_...`.",
    auth=SecretKeyAuth(),
    urls_namespace="api",
)


def error_body(message: str, code: str, **extra: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, **extra}}
