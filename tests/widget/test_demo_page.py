"""/demo/: the bistro's site with the widget, the demo widget key, and the widget's files."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.test import Client

from agents.models import WidgetKey
from dashboard.management.commands.seed_demo import demo_origins, seed_demo

pytestmark = pytest.mark.django_db


def test_the_demo_page_embeds_the_widget_for_the_seeded_agent(settings) -> None:  # type: ignore[no-untyped-def]
    settings.KOE_SITE_URL = "http://testserver"
    demo = seed_demo()

    response = Client().get("/demo/")

    assert response.status_code == 200
    page = response.content.decode()
    assert "Koe Bistro" in page and "Opening hours" in page and "12 Harbour Street" in page
    assert (
        f'<script src="/static/koe/widget.js" data-key="{demo["publishable_key"]}" '
        f'data-agent="{demo["agent_id"]}" async></script>'
    ) in page


def test_the_demo_page_is_off_in_production_by_setting(settings) -> None:  # type: ignore[no-untyped-def]
    settings.KOE_SITE_URL = "http://testserver"
    seed_demo()
    settings.KOE_DEMO_PAGE = False
    assert Client().get("/demo/").status_code == 404


def test_without_a_seeded_demo_the_page_says_how_to_make_one() -> None:
    response = Client().get("/demo/")
    assert response.status_code == 200
    assert b"manage.py seed_demo" in response.content
    assert b"widget.js" not in response.content


def test_an_origin_the_demo_key_does_not_allow_is_explained(settings) -> None:  # type: ignore[no-untyped-def]
    settings.KOE_SITE_URL = "https://demo.koe.example"
    seed_demo()
    response = Client().get("/demo/")  # served as http://testserver
    assert b"widget.js" not in response.content
    assert b"KOE_SITE_URL=http://testserver" in response.content


def test_the_demo_key_allows_the_site_and_both_loopback_names(settings) -> None:  # type: ignore[no-untyped-def]
    assert demo_origins("http://127.0.0.1:8000") == [
        "http://127.0.0.1:8000",
        "http://localhost:8000",
    ]
    assert demo_origins("https://Koe.Example/") == ["https://koe.example"]

    settings.KOE_SITE_URL = "http://127.0.0.1:8000"
    first = seed_demo()
    settings.KOE_SITE_URL = "http://localhost:9001"
    second = seed_demo()

    # One key, widened to the new site rather than replaced.
    assert first["publishable_key"] == second["publishable_key"]
    widget_key = WidgetKey.objects.get()
    for origin in ("http://127.0.0.1:8000", "http://127.0.0.1:9001", "http://localhost:9001"):
        assert widget_key.allows_origin(origin), origin
    seed_demo()
    assert len(WidgetKey.objects.get().allowed_origins) == 4  # idempotent


def test_seed_demo_prints_the_demo_page(settings) -> None:  # type: ignore[no-untyped-def]
    settings.KOE_SITE_URL = "http://127.0.0.1:8000"
    out = io.StringIO()
    call_command("seed_demo", stdout=out)
    assert "Demo page:       http://127.0.0.1:8000/demo/" in out.getvalue()


@pytest.mark.parametrize(
    "name", ["widget.js", "capture-worklet.js", "playback-worklet.js", "console.js"]
)
def test_the_widget_files_are_served_to_any_site(name: str) -> None:
    # AudioWorklet modules are fetched with CORS: a tenant's page needs the grant.
    response = Client().get(f"/static/koe/{name}", headers={"Origin": "https://shop.example"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/javascript")
    assert response["Access-Control-Allow-Origin"] == "*"
    body = b"".join(response.streaming_content)  # type: ignore[attr-defined]
    assert b"koe" in body.lower()
