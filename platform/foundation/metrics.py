"""The Prometheus endpoint: this process's metrics, behind a bearer token in production."""

from __future__ import annotations

import hmac

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

import calls.metrics  # noqa: F401  (registers the call metrics in this process)


def metrics(request: HttpRequest) -> HttpResponse:
    token = settings.KOE_METRICS_TOKEN
    if not token and settings.IS_PRODUCTION:
        # Open in development; a deployment must opt in with a token.
        return JsonResponse(
            {
                "error": {
                    "type": "invalid_request_error",
                    "code": "metrics_disabled",
                    "message": "Set KOE_METRICS_TOKEN to enable /metrics.",
                }
            },
            status=404,
        )
    if token:
        presented = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(presented.encode(), token.encode()):
            return JsonResponse(
                {
                    "error": {
                        "type": "authentication_error",
                        "code": "invalid_metrics_token",
                        "message": "Pass KOE_METRICS_TOKEN as a bearer token.",
                    }
                },
                status=401,
            )
    return HttpResponse(generate_latest(), content_type=CONTENT_TYPE_LATEST)
