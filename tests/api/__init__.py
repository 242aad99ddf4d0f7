"""Tests of the REST API v1, and a client that authenticates with a tenant's secret key."""

from __future__ import annotations

from django.test import Client


def api_client(secret: str) -> Client:
    return Client(headers={"Authorization": f"Bearer {secret}"})
