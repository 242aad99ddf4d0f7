"""Searching calls by what was said: full-text on PostgreSQL, a plain match elsewhere.

``CallSession.transcript_text`` holds the consented transcript's words (kept in step by
``calls.ledger.store_progress``, emptied by retention with the transcript). On
PostgreSQL a search is an English full-text query (``websearch_to_tsquery``: words,
"quoted phrases", ``or``, ``-excluded``; "booking" finds "booked") against the stored
``transcript_search`` vector that migration 0005 generates from transcript_text and
indexes with GIN (a column of the table only there, not a model field). On SQLite (the
embedded default) it is a case-insensitive match of every word or quoted phrase.

Matches come newest first, like the unfiltered list, rather than by rank: the list pages
by time and a rank would have to be computed for every match (tens of thousands for a
common word in a large tenant) before the first page could be shown.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable
from typing import Any

from django.contrib.postgres.search import SearchHeadline, SearchQuery, SearchVectorField
from django.db import connections, transaction
from django.db.models import Expression, Q, QuerySet
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from calls.models import CallSession

SEARCH_CONFIG = "english"
# Steering a search (see _steered): how many of the newest calls to look at, how many
# matches among them make the words common, and how many matches in all are few enough
# to fetch by id.
RECENT_WINDOW = 10_000
COMMON_IN_WINDOW = 50
RARE_MATCHES = 500
SNIPPET_CHARACTERS = 160
# ts_headline marks matches with these; the text is escaped before they become <mark>.
_START, _STOP = "\x02", "\x03"
_MARKED = re.compile(f"{_START}([^{_START}{_STOP}]*){_STOP}")


def uses_full_text(queryset: QuerySet[CallSession]) -> bool:
    return connections[queryset.db].vendor == "postgresql"


class TranscriptVector(Expression):
    """The PostgreSQL-only ``transcript_search`` column of the calls being queried."""

    output_field = SearchVectorField()

    # A list of params, as Django's own expressions give (the search lookup adds lists).
    def as_sql(self, compiler: Any, connection: Any) -> tuple[str, list[Any]]:  # type: ignore[override]
        table = compiler.quote_name_unless_alias(compiler.query.get_initial_alias())
        return f"{table}.transcript_search", []


def transcript_query(text: str) -> SearchQuery:
    return SearchQuery(text, search_type="websearch", config=SEARCH_CONFIG)


def search_calls(queryset: QuerySet[CallSession], text: str) -> QuerySet[CallSession]:
    """The calls of ``queryset`` whose transcript matches ``text`` (a person's search words)."""
    text = text.strip()
    if not text:
        return queryset
    if uses_full_text(queryset):
        # alias(), not annotate(): the vector is for the WHERE clause only.
        matching = queryset.alias(transcript_search=TranscriptVector()).filter(
            transcript_search=transcript_query(text)
        )
        return _steered(queryset, matching)
    condition = Q()
    for term in plain_terms(text):
        condition &= Q(transcript_text__icontains=term)
    return queryset.filter(condition)


def _steered(
    filtered: QuerySet[CallSession], matching: QuerySet[CallSession]
) -> QuerySet[CallSession]:
    """``matching`` in a form PostgreSQL answers fast, whether the words are common or rare.

    A page is the newest 50 matches. For words in many calls the best plan walks the calls
    newest first and checks each (it stops after a few hundred); for rare words it is the
    GIN index, then a sort of the few matches. PostgreSQL picks by its estimate of how
    many calls match, and for a word it has no statistics on (an order number, a name) it
    guesses a fraction of the least common word it knows, which can be far too many: it
    then walks the whole tenant to find one call. So measure instead of guessing: count the
    matches among the newest calls (bounded work); if they are many, the walk is right;
    if not, read the matches' ids from the GIN index alone and hand them over.
    """
    newest_starts = filtered.order_by("-started_at", "-pk").values_list("started_at", flat=True)
    window_start = list(newest_starts[RECENT_WINDOW - 1 : RECENT_WINDOW])
    if not window_start:  # fewer calls than the window: any plan reads little
        return matching
    recent = matching.filter(started_at__gte=window_start[0]).order_by().values("pk")
    if recent[:COMMON_IN_WINDOW].count() >= COMMON_IN_WINDOW:
        return matching
    ids = _ids_from_the_index(matching, RARE_MATCHES + 1)
    if len(ids) <= RARE_MATCHES:
        return filtered.filter(pk__in=ids)
    return matching


def _ids_from_the_index(matching: QuerySet[CallSession], limit: int) -> list[int]:
    """Up to ``limit`` ids of ``matching``, read with bitmap scans only (the GIN index and
    the filters' indexes), so that no walk through the tenant's calls can be chosen."""
    connection = connections[matching.db]
    settings = ("enable_indexscan", "enable_indexonlyscan", "enable_seqscan")
    with transaction.atomic(using=matching.db), connection.cursor() as cursor:
        cursor.execute("SELECT " + ", ".join(f"current_setting('{name}')" for name in settings))
        saved = cursor.fetchone()
        # set_config(..., true) lasts to the end of the transaction; put back right after.
        cursor.execute(
            "SELECT " + ", ".join(f"set_config('{name}', 'off', true)" for name in settings)
        )
        try:
            return list(matching.order_by().values_list("pk", flat=True)[:limit])
        finally:
            cursor.execute(
                "SELECT " + ", ".join(f"set_config('{name}', %s, true)" for name in settings),
                list(saved or ("on", "on", "on")),
            )


def plain_terms(text: str) -> list[str]:
    """Words and "quoted phrases" of a search, for the plain (non-PostgreSQL) match."""
    try:
        terms = shlex.split(text)
    except ValueError:  # an unbalanced quote: take the words as they are
        terms = text.replace('"', " ").split()
    return [term for term in terms if term.strip()]


def snippets(calls: Iterable[CallSession], text: str) -> dict[int, SafeString]:
    """A short escaped extract around the first match in each call's transcript, the
    matching words in ``<mark>``, by call pk; for the rows of one page of results."""
    calls = list(calls)
    text = text.strip()
    if not calls or not text:
        return {}
    ids = [call.pk for call in calls]
    queryset = CallSession.objects.filter(pk__in=ids)
    if uses_full_text(queryset):
        headlines = queryset.annotate(
            headline=SearchHeadline(
                "transcript_text",
                transcript_query(text),
                config=SEARCH_CONFIG,
                start_sel=_START,
                stop_sel=_STOP,
                max_words=30,
                min_words=12,
                max_fragments=1,
            )
        ).values_list("pk", "headline")
        return {pk: _marked(headline or "") for pk, headline in headlines}
    texts = queryset.values_list("pk", "transcript_text")
    return {pk: _plain_snippet(transcript, plain_terms(text)) for pk, transcript in texts}


def _marked(headline: str) -> SafeString:
    # Escape everything first; only the markers ts_headline placed in pairs become tags,
    # and a stray marker that came with the caller's own text is dropped.
    escaped = escape(headline)
    marked = _MARKED.sub(r"<mark>\1</mark>", escaped)
    return mark_safe(marked.replace(_START, "").replace(_STOP, ""))  # noqa: S308 - escaped above


def _plain_snippet(transcript: str, terms: list[str]) -> SafeString:
    lowered = transcript.lower()
    found = [(lowered.find(term.lower()), term) for term in terms]
    found = [(position, term) for position, term in found if position >= 0]
    if not found:
        return _marked(transcript[:SNIPPET_CHARACTERS])
    position = min(position for position, _ in found)
    start = max(0, position - SNIPPET_CHARACTERS // 3)
    end = min(len(transcript), start + SNIPPET_CHARACTERS)
    excerpt = transcript[start:end]
    cleaned = excerpt.replace(_START, "").replace(_STOP, "")
    pattern = re.compile("|".join(re.escape(term) for _, term in found), re.IGNORECASE)
    with_markers = pattern.sub(lambda match: f"{_START}{match.group(0)}{_STOP}", cleaned)
    prefix = "…" if start > 0 else ""
    suffix = "…" if end < len(transcript) else ""
    return _marked(prefix + with_markers + suffix)
