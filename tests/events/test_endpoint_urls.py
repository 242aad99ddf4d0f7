"""An events URL that is not a public address is refused when it is saved, wherever from."""

from __future__ import annotations

import html
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from events.actions import set_events_url
from events.models import EventEndpoint
from tenancy.roles import Role
from tests.conftest import TenantWorld
from tests.tools.refused_urls import ACCEPTED_URLS, REFUSED_URLS

pytestmark = pytest.mark.django_db

ENDPOINT_URL = reverse("dashboard:events_endpoint")


@pytest.fixture(autouse=True)
def no_allowlist(settings: Any) -> None:
    settings.KOE_OUTBOUND_ALLOWLIST = []


@pytest.mark.parametrize(("url", "message"), REFUSED_URLS)
def test_the_dashboard_refuses_an_events_url_that_is_not_public(
    url: str, message: str, tenant_a: TenantWorld
) -> None:
    response = tenant_a.client_for(Role.OWNER).post(ENDPOINT_URL, {"events_url": url})

    assert response.status_code == 200
    assert message in " ".join(response.context["events_form"].errors["events_url"])
    assert message in html.unescape(response.content.decode())
    assert not EventEndpoint.objects.exists()


def test_a_refused_url_keeps_the_endpoint_as_it_was(tenant_a: TenantWorld) -> None:
    EventEndpoint.objects.create(tenant=tenant_a.tenant, url="https://backend.example/koe")

    response = tenant_a.client_for(Role.OWNER).post(
        ENDPOINT_URL, {"events_url": "http://metadata.google.internal/computeMetadata/v1/"}
    )

    assert "the cloud metadata service's address" in " ".join(
        response.context["events_form"].errors["events_url"]
    )
    assert EventEndpoint.objects.get().url == "https://backend.example/koe"


@pytest.mark.parametrize("url", ACCEPTED_URLS)
def test_public_events_urls_are_saved(url: str, tenant_a: TenantWorld) -> None:
    tenant_a.client_for(Role.OWNER).post(ENDPOINT_URL, {"events_url": url})

    assert EventEndpoint.objects.get().url == url


def test_the_allowlist_admits_what_it_names(tenant_a: TenantWorld, settings: Any) -> None:
    settings.KOE_OUTBOUND_ALLOWLIST = ["127.0.0.1"]

    tenant_a.client_for(Role.OWNER).post(ENDPOINT_URL, {"events_url": "http://localhost:9000/"})

    assert EventEndpoint.objects.get().url == "http://localhost:9000/"


@pytest.mark.parametrize(
    "url", ["http://localhost:8000/koe", "http://0x7f.1/koe", "http://[fd00:ec2::254]/"]
)
def test_set_events_url_refuses_what_the_form_would(url: str, tenant_a: TenantWorld) -> None:
    with pytest.raises(ValidationError):
        set_events_url(tenant_a.tenant, url)

    assert not EventEndpoint.objects.exists()


def test_the_model_refuses_it_too_for_the_admin(tenant_a: TenantWorld) -> None:
    endpoint = EventEndpoint(tenant=tenant_a.tenant, url="http://api.localhost/events")

    with pytest.raises(ValidationError) as refused:
        endpoint.full_clean()

    assert "api.localhost stands for 127.0.0.1" in str(refused.value.message_dict["url"])
