"""Paging long lists without counting them: each page reads its rows and one more.

Django's Paginator counts the whole list for "page 3 of N", on every page. With a million
calls that count costs more than the page, and a capped count (read at most 10,000 rows)
is no cure: under a filter that one call in a hundred passes, finding 10,000 matches means
reading a million rows, where the page itself stops after 50 matches. So a page here knows
only whether there is another one after it (it read one row more than it shows); the list
offers "Newer" and "Older", and a bookmarked page number still works.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from django.db.models import Model, QuerySet

ModelT = TypeVar("ModelT", bound=Model)

# The deepest page a list serves: each page skips the rows before it, so a page 2,000
# deep (100,000 calls at 50 a page) reads 100,000 rows; past that, filter by date.
MAX_PAGE = 2_000


@dataclass(frozen=True)
class ListPage(Generic[ModelT]):
    object_list: list[ModelT]
    number: int
    has_next: bool
    is_past_end: bool = False  # a page number beyond the last row (e.g. an old bookmark)
    is_at_limit: bool = False  # the deepest page served, though there are more rows

    def __iter__(self) -> Any:
        return iter(self.object_list)

    @property
    def has_previous(self) -> bool:
        return self.number > 1

    @property
    def has_other_pages(self) -> bool:
        return self.has_previous or self.has_next

    @property
    def next_page_number(self) -> int:
        return self.number + 1

    @property
    def previous_page_number(self) -> int:
        return self.number - 1


def page_number(value: Any) -> int:
    """The page asked for: 1 unless a whole number from 1 to MAX_PAGE."""
    try:
        number = int(value)
    except (TypeError, ValueError):
        return 1
    return number if 1 <= number <= MAX_PAGE else 1


def list_page(queryset: QuerySet[ModelT], number: Any, per_page: int) -> ListPage[ModelT]:
    """Page ``number`` (as it came in the query string) of an ordered queryset."""
    page = page_number(number)
    offset = (page - 1) * per_page
    rows = list(queryset[offset : offset + per_page + 1])
    has_more = len(rows) > per_page
    return ListPage(
        object_list=rows[:per_page],
        number=page,
        has_next=has_more and page < MAX_PAGE,
        is_past_end=not rows and page > 1,
        is_at_limit=has_more and page == MAX_PAGE,
    )
