"""Reading argument values out of transcripts: numbers, times, dates, names, choices."""

from __future__ import annotations

import datetime
from typing import Any

import pytest

from speech.property_kinds import Kind, property_kind
from speech.slots import extract_arguments
from speech.when import format_time

TODAY = datetime.date(2025, 11, 25)  # a Tuesday

BOOKING: dict[str, Any] = {
    "type": "object",
    "properties": {
        "party_size": {"type": "integer", "description": "Number of guests"},
        "time": {"type": "string", "pattern": r"^([01]\d|2[0-3]):[0-5]\d$"},
        "date": {"type": "string", "format": "date"},
        "name": {"type": "string", "description": "Name for the booking"},
    },
}


# How callers say times and dates (tests/local/test_when.py holds dateparser to them too).
SPOKEN_TIMES = [
    ("at 7", "19:00"),  # no cue: 1 to 9 is the evening
    ("at 10", "10:00"),  # 10, 11 and 12 as said
    ("at 12", "12:00"),
    ("at 7 in the morning", "07:00"),
    ("at 11 tonight", "23:00"),
    ("7PM", "19:00"),
    ("7.30 p.m.", "19:30"),
    ("730 pm", "19:30"),
    ("19:45", "19:45"),
    ("09:30", "09:30"),
    ("seven thirty", "19:30"),
    ("seven oh five", "19:05"),
    ("twenty past seven", "19:20"),
    ("ten minutes to eight", "19:50"),
    ("quarter past 6", "18:15"),
    ("half eight", "20:30"),
    ("noon", "12:00"),
    ("midnight", "00:00"),
    ("nine in the morning", "09:00"),
    ("good morning, at 7 please", "19:00"),  # a greeting, not a part of the day
]
SPOKEN_DATES = [
    ("today", "2025-11-25"),
    ("tonight", "2025-11-25"),
    ("tomorrow", "2025-11-26"),
    ("the day after tomorrow", "2025-11-27"),
    ("on Friday", "2025-11-28"),
    ("on Tuesday", "2025-12-02"),  # the next Tuesday, not today
    ("this Tuesday", "2025-11-25"),
    ("December 3rd", "2025-12-03"),
    ("3rd of December", "2025-12-03"),
    ("the third of December", "2025-12-03"),
    ("December the 3rd 2026", "2026-12-03"),
    ("January 5", "2026-01-05"),  # already past this year
    ("on the 1st", "2025-12-01"),
    ("in 3 days", "2025-11-28"),
    ("2025-12-24", "2025-12-24"),
]


def read(text: str, expected: str | None = None, schema: dict[str, Any] = BOOKING) -> Any:
    return extract_arguments(text, schema, today=TODAY, expected=expected)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("I'd like a table for 2 at 7.", {"party_size": 2, "time": "19:00"}),
        ("a table for two at seven", {"party_size": 2, "time": "19:00"}),
        ("at 7 for 2", {"party_size": 2, "time": "19:00"}),
        ("party of four at 8:30pm", {"party_size": 4, "time": "20:30"}),
        ("2 people at 7 o'clock", {"party_size": 2, "time": "19:00"}),
        ("a couple of us at eight", {"party_size": 2, "time": "20:00"}),
        ("for ninety nine at 10", {"party_size": 99, "time": "10:00"}),
        ("for 3 at half past eight", {"party_size": 3, "time": "20:30"}),
        ("quarter to nine in the morning for 3", {"party_size": 3, "time": "08:45"}),
    ],
)
def test_each_number_goes_to_the_property_it_was_said_for(
    text: str, expected: dict[str, Any]
) -> None:
    assert read(text) == expected


@pytest.mark.parametrize(("text", "time"), SPOKEN_TIMES)
def test_times_are_read_in_many_shapes(text: str, time: str) -> None:
    assert read(text)["time"] == time


def test_a_bare_number_is_a_time_only_when_the_time_was_asked_for() -> None:
    assert read("eight", expected="time") == {"time": "20:00"}
    assert read("eight", expected="party_size") == {"party_size": 8}
    assert read("eight") == {"party_size": 8}  # the one number property it can be


def test_a_time_takes_the_shape_its_schema_asks_for() -> None:
    assert format_time(19, 0, {"format": "time"}) == "19:00:00"
    assert format_time(19, 5, {"pattern": r"^\d{1,2}:\d{2} (AM|PM)$"}) == "7:05 PM"
    assert format_time(7, 0, {"description": "Start, 12-hour clock"}) == "7:00 AM"
    assert format_time(9, 30, {}) == "09:30"


@pytest.mark.parametrize(("text", "day"), SPOKEN_DATES)
def test_dates_are_read_against_today(text: str, day: str) -> None:
    assert read(text)["date"] == day


def test_an_impossible_date_is_not_read() -> None:
    assert "date" not in read("February 30th")


def test_a_day_of_the_month_answers_the_date_question() -> None:
    assert read("the 28th", expected="date") == {"date": "2025-11-28"}
    assert read("28", expected="date") == {"date": "2025-11-28"}


def test_a_date_does_not_become_a_party_size() -> None:
    assert read("party of six, December 3rd at seven thirty") == {
        "party_size": 6,
        "date": "2025-12-03",
        "time": "19:30",
    }


@pytest.mark.parametrize(
    ("text", "expected", "name"),
    [
        ("my name is john o'brien", None, "John O'Brien"),
        ("under the name Smith", None, "Smith"),
        ("a table for Smith at noon", None, "Smith"),
        ("Yes, it's under Jones.", None, "Jones"),
        ("this is Maria calling", None, "Maria"),
        ("smith", "name", "Smith"),
        ("It's Garcia.", "name", "Garcia"),
    ],
)
def test_names_are_read_and_capitalised(text: str, expected: str | None, name: str) -> None:
    assert read(text, expected)["name"] == name


def test_words_that_are_not_names_are_not_taken_for_one() -> None:
    assert "name" not in read("I'm looking for a table for Friday")


def test_choices_booleans_and_free_text() -> None:
    schema = {
        "type": "object",
        "properties": {
            "seating": {"type": "string", "enum": ["indoor", "outdoor", "bar_counter"]},
            "high_chair": {"type": "boolean"},
            "notes": {"type": "string"},
            "extras": {"type": "array", "items": {"enum": ["cake", "flowers", "wine"]}},
        },
    }
    said = "Outdoor please, with a high chair, and cake and wine, because it's a birthday."
    assert read(said, schema=schema) == {
        "seating": "outdoor",
        "high_chair": True,
        "notes": "it's a birthday",
        "extras": ["cake", "wine"],
    }
    assert read("no high chair, at the bar", schema=schema) == {
        "seating": "bar_counter",
        "high_chair": False,
    }
    assert read("nope", expected="high_chair", schema=schema) == {"high_chair": False}
    assert read("Outdoors.", expected="seating", schema=schema) == {"seating": "outdoor"}
    assert read("um, it's for a quiet corner.", expected="notes", schema=schema) == {
        "notes": "it's for a quiet corner"
    }


def test_emails_and_phone_numbers() -> None:
    schema = {
        "type": "object",
        "properties": {
            "email": {"type": "string", "format": "email"},
            "phone_number": {"type": "string"},
            "guests": {"type": "integer"},
        },
    }
    assert read("john dot smith at example dot com", "email", schema) == {
        "email": "john.smith@example.com"
    }
    assert read("call me on five five five 0134 for 2 guests", schema=schema) == {
        "phone_number": "5550134",
        "guests": 2,
    }


def test_property_kinds_come_from_type_format_and_name() -> None:
    assert property_kind("party_size", {"type": "integer"}) is Kind.INTEGER
    assert property_kind("when", {"type": "string", "format": "date-time"}) is Kind.DATETIME
    assert property_kind("start_time", {"type": "string"}) is Kind.TIME
    assert property_kind("day", {"type": "string"}) is Kind.DATE
    assert property_kind("guestName", {"type": "string"}) is Kind.NAME
    assert property_kind("product_name", {"type": "string"}) is Kind.TEXT
    assert property_kind("size", {"type": "string", "enum": ["s", "m"]}) is Kind.CHOICE
    assert property_kind("address", {"type": "object"}) is Kind.UNSUPPORTED
