"""HTTP URL routing: dashboard, REST API v1, Django admin, docs. (The health and readiness
probes and the metrics are answered before routing: foundation.probes.)"""

from __future__ import annotations

from django.contrib import admin
from django.urls import include, path, re_path

from agents.api import router as agents_router
from agents.realtime.api import router as realtime_router
from agents.realtime.api import widget_client_secret, widget_config
from agents.telephony.api import router as telephony_router
from agents.telephony.batches_api import router as batches_router
from agents.telephony.calls_api import router as phone_calls_router
from agents.telephony.telnyx_views import telnyx_webhook
from agents.telephony.views import twilio_amd, twilio_consent, twilio_status, twilio_voice
from agents.webrtc.views import realtime_calls
from billing.api import router as usage_router
from foundation.api import api, api_urls, not_found_view
from foundation.docs import docs_page
from retention.api import router as retention_router
from tools.api import router as tools_router

api.add_router("/agents", agents_router)
api.add_router("/tools", tools_router)
api.add_router("/realtime", realtime_router)
api.add_router("", telephony_router)
api.add_router("", phone_calls_router)
api.add_router("", batches_router)
api.add_router("", usage_router)
api.add_router("", retention_router)


urlpatterns = [
    path("admin/", admin.site.urls),
    # Public and cross-origin (the widget on tenants' sites): outside the keyed API.
    path("v1/widget/client_secrets", widget_client_secret, name="widget_client_secret"),
    path("v1/widget/config", widget_config, name="widget_config"),
    # Carriers' webhooks: signed by the carrier, not keyed.
    path("v1/telephony/twilio/voice", twilio_voice, name="twilio_voice"),
    path("v1/telephony/twilio/status", twilio_status, name="twilio_status"),
    path("v1/telephony/twilio/amd", twilio_amd, name="twilio_amd"),
    path("v1/telephony/twilio/consent", twilio_consent, name="twilio_consent"),
    path("v1/telephony/telnyx/webhook", telnyx_webhook, name="telnyx_webhook"),
    # WebRTC: an SDP offer in, an SDP answer out (not JSON: outside the keyed API).
    path("v1/realtime/calls", realtime_calls, name="realtime_calls"),
    path("v1/", api_urls()),
    # Anything else under /v1 (the bare prefix too) answers a JSON 404, not a page.
    re_path(r"^v1(?:/(?P<rest>.*))?$", not_found_view),
    re_path(r"^docs/(?P<path>.*)$", docs_page, name="docs"),
    path("", include("dashboard.urls")),
]
