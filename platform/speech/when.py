"""Times and dates in a transcript: "half past eight", "7pm", "tomorrow", "December 3rd".

Times said with no am/pm and no part of the day ("at 7") are read as a restaurant or a
surgery would read them: 1 to 9 o'clock is in the afternoon or evening (19:00), 10, 11 and
12 are taken as said, and 0 or 13 to 23 are already on the 24-hour clock. Weekday names
mean the next such day (never today, unless said as "this Friday" on a Friday).
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from speech.words import Token

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
MONTHS = {
    "january": 1, "jan": 1, "february": 2, "feb": 2, "march": 3, "april": 4, "apr": 4,
    "may": 5, "june": 6, "jun": 6, "july": 7, "jul": 7, "august": 8, "aug": 8,
    "september": 9, "sep": 9, "sept": 9, "october": 10, "oct": 10, "november": 11,
    "nov": 11, "december": 12, "dec": 12,
}  # fmt: skip

_TIME_CUES = frozenset({"at", "around", "after", "before", "until", "till", "by"})
_PM_WORDS = frozenset({"pm", "tonight", "evening", "afternoon", "night", "dinner", "supper"})
_AM_WORDS = frozenset({"am", "morning", "breakfast"})


def _integer(token: Token | None) -> int | None:
    if token is None or token.is_ordinal or not isinstance(token.number, int):
        return None
    return token.number


# --- times ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TimeMention:
    hour: int
    minute: int
    meridiem: str | None  # "am", "pm", "24h" (already on the 24-hour clock) or None
    is_certain: bool  # "8pm", "7:30", "half past 8"; "at 7" is only likely a time
    start: int
    end: int


def _relative_time(tokens: Sequence[Token], index: int) -> tuple[int, int, int] | None:
    """ "half past 8", "quarter to 9", "20 past 7", "10 minutes to 8": (hour, minute, end)."""
    word = tokens[index].word
    said = 30 if word == "half" else 15 if word == "quarter" else _integer(tokens[index])
    relation_at = index + 1
    if relation_at < len(tokens) and tokens[relation_at].word == "minutes":
        relation_at += 1
    if said is None or said > 30 or relation_at + 1 >= len(tokens):
        return None
    relation = tokens[relation_at].word
    target = _integer(tokens[relation_at + 1])
    if target is None or not 1 <= target <= 12:
        return None
    if relation == "past":
        return target, said, relation_at + 2
    # "2 to 4 people" is not a time: "to" needs "quarter" or "minutes" before it
    if relation == "to" and (word == "quarter" or relation_at > index + 1):
        return (target - 1) or 12, 60 - said, relation_at + 2
    return None


def _clock_words(tokens: Sequence[Token], index: int) -> tuple[int, int, int, bool] | None:
    """A time said as a clock reading from tokens[index]: (hour, minute, end, is_certain)."""
    token = tokens[index]
    follower = tokens[index + 1] if index + 1 < len(tokens) else None
    clock = re.fullmatch(r"(\d{1,2})([:.])(\d{2})", token.word)
    if clock:
        return int(clock[1]), int(clock[3]), index + 1, clock[2] == ":"
    value = _integer(token)
    if value is None:
        return None
    if 100 <= value <= 1259 and follower and follower.word in ("am", "pm"):
        hour, minute = divmod(value, 100)  # "730 pm"
        return hour, minute, index + 1, True
    if value > 24:
        return None
    minutes = _integer(follower)
    is_minutes = minutes is not None and 10 <= minutes <= 59
    if 1 <= value <= 12 and follower and is_minutes and len(follower.text.lstrip("0")) != 1:
        return value, minutes or 0, index + 2, True  # "seven thirty", "7 30", not "7 5"
    if 1 <= value <= 12 and follower and follower.word in ("oh", "o") and index + 2 < len(tokens):
        units = _integer(tokens[index + 2])
        if units is not None and units < 10:
            return value, units, index + 3, True  # "seven oh five"
    return value, 0, index + 1, False


def _time_at(tokens: Sequence[Token], index: int) -> TimeMention | None:
    word = tokens[index].word
    if word in ("noon", "midday"):
        return TimeMention(12, 0, "pm", True, index, index + 1)
    if word == "midnight":
        return TimeMention(0, 0, "24h", True, index, index + 1)
    meridiem: str | None = None
    relative = _relative_time(tokens, index)
    half = _integer(tokens[index + 1]) if word == "half" and index + 1 < len(tokens) else None
    if relative is not None:
        hour, minute, end = relative
        is_certain = True
    elif half is not None and 1 <= half <= 12:
        hour, minute, end, is_certain = half, 30, index + 2, True  # "half eight"
    else:
        reading = _clock_words(tokens, index)
        if reading is None:
            return None
        hour, minute, end, is_certain = reading
        if hour > 23 or minute > 59:
            return None
        # "09:30", "0:15" and "19:00" are already on the 24-hour clock
        if hour > 12 or hour == 0 or (len(word) > 1 and word[0] == "0"):
            meridiem = "24h"
    if end < len(tokens) and tokens[end].word == "oclock":
        is_certain, end = True, end + 1
    if end < len(tokens) and tokens[end].word in ("am", "pm") and meridiem is None:
        meridiem, is_certain, end = tokens[end].word, True, end + 1
    # "nine in the morning"; not "for four tonight", which is a party of four tonight
    after = " ".join(token.word for token in tokens[end : end + 3])
    if re.match(r"(?:in the (?:morning|afternoon|evening)|at night)\b", after):
        is_certain = True
    if not is_certain and not (index and tokens[index - 1].word in _TIME_CUES):
        return None  # a bare number is a time only after "at", "around" and the like
    return TimeMention(hour, minute, meridiem, is_certain, index, end)


def find_times(tokens: Sequence[Token], used: set[int]) -> list[TimeMention]:
    """The times said, in order, leaving out the tokens already used for something else."""
    mentions: list[TimeMention] = []
    index = 0
    while index < len(tokens):
        mention = None if index in used else _time_at(tokens, index)
        if mention is not None and not used.intersection(range(mention.start, mention.end)):
            mentions.append(mention)
            index = mention.end
        else:
            index += 1
    return mentions


def answered_time(tokens: Sequence[Token], used: set[int]) -> TimeMention | None:
    """The first clock reading in an answer to "What time?", where a bare "eight" is a time."""
    for index in range(len(tokens)):
        reading = None if index in used else _clock_words(tokens, index)
        if reading is not None and reading[0] <= 23 and reading[1] <= 59:
            return TimeMention(reading[0], reading[1], None, True, index, reading[2])
    return None


def part_of_day(tokens: Sequence[Token], near: int) -> str | None:
    """Whether the part-of-day word nearest a position ("tonight", "7 am") says am or pm."""
    best: tuple[int, str] | None = None
    for index, token in enumerate(tokens):
        part = "pm" if token.word in _PM_WORDS else "am" if token.word in _AM_WORDS else None
        is_greeting = index > 0 and tokens[index - 1].word == "good"  # "good morning, at 7"
        if part and not is_greeting and (best is None or abs(index - near) < best[0]):
            best = (abs(index - near), part)
    return best[1] if best else None


def clock_time(mention: TimeMention, day_part: str | None) -> tuple[int, int]:
    """The mention on the 24-hour clock, reading an hour without am/pm as described above."""
    meridiem = mention.meridiem or day_part
    hour = mention.hour
    if meridiem == "24h" or hour > 12:
        return hour % 24, mention.minute
    if meridiem == "am":
        return (0 if hour == 12 else hour), mention.minute
    if meridiem == "pm" or 1 <= hour <= 9:
        return (hour if hour == 12 else hour + 12), mention.minute
    return hour, mention.minute


def format_time(hour: int, minute: int, schema: Mapping[str, Any]) -> str:
    """The time in the shape the property asks for: its pattern decides, else HH:MM."""
    twelve = f"{(hour % 12) or 12}:{minute:02d}"
    candidates = [
        f"{hour:02d}:{minute:02d}",
        f"{hour:02d}:{minute:02d}:00",
        f"{hour}:{minute:02d}",
        f"{twelve} {'PM' if hour >= 12 else 'AM'}",
        f"{twelve} {'pm' if hour >= 12 else 'am'}",
        f"{twelve}{'PM' if hour >= 12 else 'AM'}",
        f"{twelve}{'pm' if hour >= 12 else 'am'}",
    ]
    pattern = schema.get("pattern")
    if isinstance(pattern, str):
        try:
            return next(c for c in candidates if re.search(pattern, c))
        except (re.error, StopIteration):
            pass
    if schema.get("format") == "time":
        return candidates[1]
    if "12-hour" in str(schema.get("description", "")).lower():
        return candidates[3]
    return candidates[0]


# --- dates ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class DateMention:
    day: datetime.date
    is_explicit: bool  # a month and day ("December 3rd"), not "tomorrow" or "Friday"
    start: int
    end: int


def _year(token: Token | None) -> int | None:
    value = _integer(token)
    return value if value is not None and 1900 <= value <= 2100 else None


def _make_date(
    year: int | None, month: int, day: int, today: datetime.date
) -> datetime.date | None:
    try:
        if year is not None:
            return datetime.date(year, month, day)
        candidate = datetime.date(today.year, month, day)
        return candidate if candidate >= today else datetime.date(today.year + 1, month, day)
    except ValueError:
        return None


def next_day_of_month(day: int, today: datetime.date) -> datetime.date | None:
    """The first date from today on that falls on this day of the month ("the 3rd")."""
    this_month = _make_date(today.year, today.month, day, today)
    if this_month is not None and this_month >= today:
        return this_month
    following = today.replace(day=1) + datetime.timedelta(days=32)
    return _make_date(following.year, following.month, day, today)


def _explicit_date_at(
    tokens: Sequence[Token], index: int, today: datetime.date
) -> DateMention | None:
    def word(position: int) -> str:
        return tokens[position].word if position < len(tokens) else ""

    def day_at(position: int) -> int | None:
        token = tokens[position] if position < len(tokens) else None
        if token is None or not isinstance(token.number, int) or not 1 <= token.number <= 31:
            return None
        return token.number

    start = index
    if word(index) == "the":
        index += 1
    month = MONTHS.get(word(index))
    if month is not None:  # "December 3rd", "December the 3rd, 2025"
        offset = 2 if word(index + 1) == "the" else 1
        day = day_at(index + offset)
        if day is None:
            return None
        end = index + offset + 1
    else:  # "3rd of December", "3 December", "the 3rd"
        day = day_at(index)
        if day is None:
            return None
        offset = 2 if word(index + 1) == "of" else 1
        month = MONTHS.get(word(index + offset))
        if month is None:
            is_ordinal = tokens[index].is_ordinal
            if not is_ordinal or (start == index and word(index - 1) not in ("on", "the")):
                return None
            on_day = next_day_of_month(day, today)
            return DateMention(on_day, True, start, index + 1) if on_day else None
        end = index + offset + 1
        if day_at(end) is not None and _year(tokens[end]) is None:
            return None  # "party of six, December 3rd": the 3rd belongs to December
    year = _year(tokens[end] if end < len(tokens) else None)
    found = _make_date(year, month, day, today)
    if found is None:
        return None
    return DateMention(found, True, start, end + (year is not None))


def _date_at(tokens: Sequence[Token], index: int, today: datetime.date) -> DateMention | None:
    words = [token.word for token in tokens]
    word = words[index]
    if words[index : index + 3] == ["day", "after", "tomorrow"]:
        return DateMention(today + datetime.timedelta(days=2), False, index, index + 3)
    if word in ("today", "tonight", "tomorrow"):
        shift = 1 if word == "tomorrow" else 0
        return DateMention(today + datetime.timedelta(days=shift), False, index, index + 1)
    weekday = word[:-1] if word.endswith("s") and word[:-1] in WEEKDAYS else word
    if weekday in WEEKDAYS:
        ahead = (WEEKDAYS.index(weekday) - today.weekday()) % 7
        if ahead == 0 and (index == 0 or words[index - 1] != "this"):
            ahead = 7
        explicit = _explicit_date_at(tokens, index + 1, today)  # "Friday the 5th"
        if explicit is not None:
            return DateMention(explicit.day, True, index, explicit.end)
        return DateMention(today + datetime.timedelta(days=ahead), False, index, index + 1)
    if word == "in" and index + 2 < len(tokens):
        count = _integer(tokens[index + 1])
        unit = words[index + 2].rstrip("s")
        if count is not None and unit in ("day", "week"):
            days = count * (7 if unit == "week" else 1)
            return DateMention(today + datetime.timedelta(days=days), False, index, index + 3)
    iso = re.fullmatch(r"(\d{4})-(\d{1,2})-(\d{1,2})", word)
    if iso:
        found = _make_date(int(iso[1]), int(iso[2]), int(iso[3]), today)
        return DateMention(found, True, index, index + 1) if found else None
    return _explicit_date_at(tokens, index, today)


def find_dates(tokens: Sequence[Token], today: datetime.date) -> list[DateMention]:
    """The dates said, in order, each read against today."""
    mentions: list[DateMention] = []
    index = 0
    while index < len(tokens):
        mention = _date_at(tokens, index, today)
        if mention is not None:
            mentions.append(mention)
            index = mention.end
        else:
            index += 1
    return mentions
