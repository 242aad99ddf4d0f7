"""Prometheus metrics of live calls (served at /metrics by foundation.metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

ACTIVE_CALLS = Gauge("koe_active_calls", "Calls in progress on this process", ["provider"])
CALLS_STARTED = Counter("koe_calls_started_total", "Calls started", ["provider"])
CALLS_ENDED = Counter("koe_calls_ended_total", "Calls ended, by end reason", ["reason"])
CALLS_REFUSED = Counter("koe_calls_refused_total", "Connections refused, by code", ["code"])
UPSTREAM_ERRORS = Counter("koe_upstream_errors_total", "Provider faults", ["provider"])
PROVIDER_SESSIONS_RENEWED = Counter(
    "koe_provider_sessions_renewed_total",
    "Provider sessions replaced mid-call (dropped, expired, or near their time limit)",
    ["provider"],
)
CLIENT_EVENTS_REJECTED = Counter(
    "koe_client_events_rejected_total", "Client events refused by the policy", ["code"]
)
LAYER_OUTAGES = Counter(
    "koe_channel_layer_outages_total",
    "Times a live call lost the channel layer (Redis) and carried on without it",
)
RELAY_LATENCY = Histogram(
    "koe_relay_latency_seconds",
    "Time the broker holds an event before forwarding it",
    ["direction"],
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1),
)

# Series exist from the start (at zero), so dashboards and alerts see them before a call.
for _provider in ("local", "openai", "azure"):
    ACTIVE_CALLS.labels(_provider)
    CALLS_STARTED.labels(_provider)
