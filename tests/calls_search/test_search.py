"""Searching the call list by what was said: plain match on SQLite, full text on PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from calls import search
from calls.models import CallSession, ConsentScope
from dashboard.forms.calls import CallFilterForm
from tenancy.roles import Role
from tests.calls_search.helpers import make_call, page_text, shown
from tests.conftest import TenantWorld

on_sqlite = pytest.mark.skipif(
    connection.vendor != "sqlite", reason="the plain (non-PostgreSQL) match is SQLite's path"
)


def said(tenant_world: TenantWorld, text: str, **fields: Any) -> CallSession:
    return make_call(
        tenant_world.tenant,
        consent_scope=ConsentScope.TRANSCRIPT,
        transcript_text=text,
        **fields,
    )


@pytest.fixture
def calls(tenant_a: TenantWorld) -> dict[str, CallSession]:
    return {
        "refund": said(tenant_a, "I would like a refund for my order\nOf course, one moment."),
        "table": said(tenant_a, "A table for two please\nBooked for two at eight."),
        "cancel": said(tenant_a, "Please cancel my table order\nIt is cancelled."),
        "silent": make_call(tenant_a.tenant),  # no consent: nothing to search
    }


def test_search_finds_calls_by_their_words(
    tenant_a: TenantWorld, calls: dict[str, CallSession]
) -> None:
    client = tenant_a.client_for(Role.AUDITOR)

    assert shown(client, calls, q="refund") == {"refund"}
    assert shown(client, calls, q="TABLE") == {"table", "cancel"}
    assert shown(client, calls, q="table order") == {"cancel"}  # every word
    assert shown(client, calls, q='"table for two"') == {"table"}
    assert shown(client, calls, q="   ") == set(calls)


def test_search_combines_with_the_other_filters(
    tenant_a: TenantWorld, calls: dict[str, CallSession]
) -> None:
    calls["long_table"] = said(tenant_a, "A table by the window", duration_s=900)

    assert shown(tenant_a.client_for(Role.AUDITOR), calls, q="table", min_duration="600") == {
        "long_table"
    }


def test_search_never_reaches_another_tenant(
    tenant_a: TenantWorld, tenant_b: TenantWorld, calls: dict[str, CallSession]
) -> None:
    theirs = said(tenant_b, "I would like a refund")

    assert shown(tenant_a.client_for(Role.OWNER), {**calls, "theirs": theirs}, q="refund") == {
        "refund"
    }


def test_no_match_explains_only_consented_calls_are_searchable(
    tenant_a: TenantWorld, calls: dict[str, CallSession]
) -> None:
    text = page_text(tenant_a.client_for(Role.AUDITOR), q="zeppelin")

    assert "No calls match these filters" in text
    assert "Only calls whose caller agreed to a transcript can be found" in text


def test_snippets_mark_the_match_and_escape_the_transcript(tenant_a: TenantWorld) -> None:
    said(tenant_a, "My name is <script>alert('x')</script> and I need a refund & a receipt")

    response = tenant_a.client_for(Role.AUDITOR).get(
        reverse("dashboard:call_list"), {"q": "refund"}
    )
    body = response.content.decode()

    assert "<script>alert" not in body
    # Escaped (PostgreSQL's headline parser drops the tags themselves, SQLite's shows them).
    assert "alert(&#x27;x&#x27;)" in body
    assert "<mark>refund</mark>" in body
    assert "&amp; a receipt" in body


def test_a_marker_character_in_the_transcript_makes_no_markup(tenant_a: TenantWorld) -> None:
    said(tenant_a, "refund \x02<b>bold\x03 and \x02 more")

    body = page_text(tenant_a.client_for(Role.AUDITOR), q="refund")

    assert "<mark>refund</mark>" in body
    assert "<mark><b>" not in body and "\x02" not in body


@on_sqlite
def test_sqlite_matches_part_of_a_word_case_insensitively(
    tenant_a: TenantWorld, calls: dict[str, CallSession]
) -> None:
    client = tenant_a.client_for(Role.AUDITOR)

    assert shown(client, calls, q="REFUN") == {"refund"}
    assert shown(client, calls, q='"table order') == {"cancel"}  # an unbalanced quote


# --- PostgreSQL full text --------------------------------------------------------------------


@pytest.mark.postgres
def test_postgres_search_is_stemmed_english_full_text(
    tenant_a: TenantWorld, calls: dict[str, CallSession]
) -> None:
    client = tenant_a.client_for(Role.AUDITOR)

    assert shown(client, calls, q="booking") == {"table"}  # "Booked"
    assert shown(client, calls, q="cancelling") == {"cancel"}  # "cancel", "cancelled"
    assert shown(client, calls, q="refunds") == {"refund"}
    assert shown(client, calls, q="table -cancel") == {"table"}
    assert shown(client, calls, q="refund or booked") == {"refund", "table"}
    # Only stop words: no lexeme to look for, no error either.
    assert shown(client, calls, q="the and") == set()


@pytest.mark.postgres
def test_postgres_snippet_marks_the_stemmed_match(
    tenant_a: TenantWorld, calls: dict[str, CallSession]
) -> None:
    body = page_text(tenant_a.client_for(Role.AUDITOR), q="booking")

    assert "<mark>Booked</mark>" in body


@pytest.mark.postgres
def test_postgres_search_can_use_the_gin_index(tenant_a: TenantWorld) -> None:
    form = CallFilterForm({"q": "refund"}, tenant=tenant_a.tenant)
    queryset = form.filter(CallSession.objects.all())
    with connection.cursor() as cursor:
        # A near-empty table is read sequentially; forbid that to see the index is usable.
        cursor.execute("SET LOCAL enable_seqscan = off")
        plan = queryset.explain()

    assert "call_transcript_search" in plan


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("window", "common", "rare"),
    [
        (3, 1, 100),  # the words are common among the newest calls: the plain query
        (3, 5, 100),  # rare among the newest: the matches' ids from the GIN index
        (3, 5, 1),  # not recent, yet too many to fetch by id: the plain query again
        (1000, 5, 1),  # fewer calls than the window
    ],
)
def test_postgres_search_gives_the_same_newest_first_page_on_every_path(
    tenant_a: TenantWorld, monkeypatch: Any, window: int, common: int, rare: int
) -> None:
    monkeypatch.setattr(search, "RECENT_WINDOW", window)
    monkeypatch.setattr(search, "COMMON_IN_WINDOW", common)
    monkeypatch.setattr(search, "RARE_MATCHES", rare)
    now = timezone.now()
    calls = {
        f"call_{age}": said(
            tenant_a,
            "the terrace is open" if age % 2 else "a table inside",
            started_at=now - timedelta(hours=age),
            duration_s=300 if age >= 4 else 60,
        )
        for age in range(8)
    }
    client = tenant_a.client_for(Role.AUDITOR)

    text = page_text(client, q="terrace")

    assert shown(client, calls, q="terrace") == {"call_1", "call_3", "call_5", "call_7"}
    assert text.index(calls["call_1"].public_id) < text.index(calls["call_3"].public_id)
    assert text.index(calls["call_5"].public_id) < text.index(calls["call_7"].public_id)
    # With another filter, applied before the search is steered.
    assert shown(client, calls, q="terrace", min_duration="200") == {"call_5", "call_7"}
