"""Reading tool arguments out of what a caller said, and matching what they said to phrases.

The input is speech-to-text output ("I'd like a table for 2 at 7.", "half past eight
tomorrow"), so everything here is forgiving string work: number words become digits,
punctuation and casing are noise, and words are compared by rough stems.

Times said with no am/pm and no part of the day ("at 7") are read as a restaurant or a
surgery would read them: 1 to 9 o'clock is in the afternoon or evening (19:00), 10, 11 and
12 are taken as said, and 0 or 13 to 23 are already on the 24-hour clock. Weekday names
mean the next such day (never today, unless said as "this Friday" on a Friday).
"""

from __future__ import annotations

import datetime
import difflib
import enum
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# --- words and numbers ----------------------------------------------------------------------


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_UNITS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
    "eight": 8, "nine": 9,
}  # fmt: skip
_TEENS = {
    "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15,
    "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19,
}  # fmt: skip
_TENS = {
    "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70,
    "eighty": 80, "ninety": 90,
}  # fmt: skip
_ORDINALS = {
    "first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7,
    "eighth": 8, "ninth": 9, "tenth": 10, "eleventh": 11, "twelfth": 12, "thirteenth": 13,
    "fourteenth": 14, "fifteenth": 15, "sixteenth": 16, "seventeenth": 17, "eighteenth": 18,
    "nineteenth": 19, "twentieth": 20, "thirtieth": 30,
}  # fmt: skip
_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_MONTHS = {
    "january": 1, "jan": 1, "february": 2, "feb": 2, "march": 3, "april": 4, "apr": 4,
    "may": 5, "june": 6, "jun": 6, "july": 7, "jul": 7, "august": 8, "aug": 8,
    "september": 9, "sep": 9, "sept": 9, "october": 10, "oct": 10, "november": 11,
    "nov": 11, "december": 12, "dec": 12,
}  # fmt: skip

STOPWORDS = _words(
    """a an the i me my mine we our us you your it its is are was were be been am do does
    did doing can could would will should shall may might must to of for at in on by with
    from about and or but so if then than that this these those there here what when where
    which who whom how why please like want wanted need needed just also some any get got
    have has had make made let know okay ok um uh er hi hello hey yes yeah no not thank
    thanks don doesn isn can't won didn aren wasn i'd i'm i'll i've id im ive speak talk"""
)

# Words callers use interchangeably for the same request, folded together after stemming.
# ("speak" and "talk" above are stopwords: on a phone line "can I speak to" says nothing.)
_SAME_MEANING = {
    "reserv": "book", "cost": "pric", "fee": "pric", "charg": "pric",
    "someon": "person", "somebody": "person", "human": "person", "peopl": "person",
}  # fmt: skip

_SUFFIXES = (
    ("ations", ""), ("ation", ""), ("ments", ""), ("ment", ""), ("ings", ""), ("ing", ""),
    ("ies", "y"), ("ied", "y"), ("ed", ""), ("es", ""), ("ly", ""), ("s", ""), ("e", ""),
)  # fmt: skip


@dataclass(frozen=True)
class Token:
    """One word of a transcript; spelled-out numbers are already folded into one token."""

    text: str  # as transcribed, with its casing ("Smith", "twenty five")
    word: str  # lower case; a number is given in digits ("25", "7:30", "3rd")
    number: int | float | None = None
    is_ordinal: bool = False


_BRACKETED = re.compile(r"\[[^\]]*\]|\([^)]*\)|\*[^*]*\*")
_TOKEN = re.compile(
    r"\d{4}-\d{1,2}-\d{1,2}|\d+(?:[:.]\d+)?(?:st|nd|rd|th)?|[^\W\d_]+(?:'[^\W\d_]+)*"
)


def clean_transcript(text: str) -> str:
    """The transcript without speech-to-text markers such as "[BLANK_AUDIO]" or "(music)"."""
    return " ".join(_BRACKETED.sub(" ", text).split())


def _prepare(text: str) -> str:
    text = clean_transcript(text).replace("\u2019", "'").replace("\u2018", "'")
    text = re.sub(r"\b([ap])\.\s?m\b\.?", r"\1m", text, flags=re.IGNORECASE)
    text = re.sub(r"(\d)([ap]m)\b", r"\1 \2", text, flags=re.IGNORECASE)
    text = re.sub(r"\bo'?clock\b", " oclock", text, flags=re.IGNORECASE)
    text = re.sub(r"(\d),(\d{3})\b", r"\1\2", text)
    # "twenty-five" and "check-in" read as two words
    return re.sub(r"(?<=[^\W\d_])-(?=[^\W\d_])", " ", text)


def _spelled_number(words: Sequence[str], start: int) -> tuple[int, int, bool] | None:
    """The number spelled out from words[start]: (value, words used, is ordinal)."""
    count = len(words)
    index = start
    total = 0
    if words[index] == "a" and index + 1 < count and words[index + 1] == "couple":
        return 2, 2, False
    if index + 1 < count and words[index + 1] == "hundred":
        if words[index] == "a":
            total = 100
        elif words[index] in _UNITS:
            total = 100 * _UNITS[words[index]]
        else:
            return None
        index += 2
        if index + 1 < count and words[index] == "and" and _is_number_word(words[index + 1]):
            index += 1
    if index < count:
        word = words[index]
        if word in _TENS:
            total += _TENS[word]
            index += 1
            if index < count and _UNITS.get(words[index], 0) > 0:
                total += _UNITS[words[index]]
                index += 1
            elif index < count and _ORDINALS.get(words[index], 99) < 10:
                return total + _ORDINALS[words[index]], index + 1 - start, True
        elif word in _TEENS or word in _UNITS:
            total += _TEENS.get(word, _UNITS.get(word, 0))
            index += 1
        elif word in _ORDINALS:
            return total + _ORDINALS[word], index + 1 - start, True
    if index == start:
        return None
    return total, index - start, False


def _is_number_word(word: str) -> bool:
    return word in _UNITS or word in _TEENS or word in _TENS or word in _ORDINALS


def tokenize(text: str) -> list[Token]:
    """The transcript's words, with "twenty five" as one token "25" and "3rd" as ordinal 3."""
    raw = _TOKEN.findall(_prepare(text))
    words = [piece.lower() for piece in raw]
    tokens: list[Token] = []
    index = 0
    while index < len(words):
        word = words[index]
        spelled = _spelled_number(words, index)
        if spelled is not None:
            value, used, is_ordinal = spelled
            spoken = " ".join(raw[index : index + used])
            tokens.append(Token(spoken, str(value), value, is_ordinal))
            index += used
            continue
        digits = re.fullmatch(r"(\d+(?:\.\d+)?)(st|nd|rd|th)?", word)
        if digits:
            number = float(digits[1]) if "." in digits[1] else int(digits[1])
            tokens.append(Token(raw[index], word, number, digits[2] is not None))
        else:
            tokens.append(Token(raw[index], word))
        index += 1
    return tokens


def stem(word: str) -> str:
    """A rough stem, enough for "booking" to meet "book" and "tables" to meet "table"."""
    for suffix, replacement in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            if suffix == "s" and word.endswith("ss"):
                continue
            stemmed = word[: -len(suffix)] + replacement
            # "shopping" -> "shopp" -> "shop"; double l is often real ("call")
            if suffix in ("ing", "ed") and stemmed[-1] == stemmed[-2] and stemmed[-1] in "bdgmnpt":
                stemmed = stemmed[:-1]
            return stemmed
    return word


def _base(word: str) -> str:
    # "what's" -> "what", "i'd" -> "i"; keeps "o'brien" whole
    head, _, tail = word.partition("'")
    return head if tail in ("s", "d", "m", "ll", "ve", "re", "t") else word


# --- fuzzy matching of utterances and phrases -----------------------------------------------


@dataclass(frozen=True)
class MatchText:
    """A text prepared for fuzzy comparison: its content stems and a flattened form."""

    words: tuple[str, ...]
    flat: str


def match_text(text: str) -> MatchText:
    content: list[str] = []
    every: list[str] = []
    for token in tokenize(text):
        if token.number is not None or token.word[0].isdigit():
            word = "#"  # any number matches any number: "for 2" is "for two" is "for 6"
        else:
            base = _base(token.word)
            word = _SAME_MEANING.get(stem(base), stem(base))
            if base in STOPWORDS or token.word in STOPWORDS:
                every.append(word)
                continue
        content.append(word)
        every.append(word)
    # A phrase made only of common words ("Who are you?") is compared on all of them.
    chosen = tuple(dict.fromkeys(content or every))
    return MatchText(chosen, " ".join(chosen))


def _word_overlap(word: str, others: Sequence[str]) -> float:
    if word in others:
        return 1.0
    if len(word) < 4:
        return 0.0
    # speech-to-text misspellings ("resevation") still count, for a little less
    best = max((difflib.SequenceMatcher(None, word, other).ratio() for other in others), default=0)
    return 0.8 if best >= 0.85 else 0.0


def similarity(utterance: MatchText, phrase: MatchText) -> float:
    """How well an utterance matches a phrase, 0 to 1: mostly how much of the phrase it says."""
    if not utterance.words or not phrase.words:
        return 0.0
    matched = sum(_word_overlap(word, utterance.words) for word in phrase.words)
    phrase_coverage = matched / len(phrase.words)
    utterance_coverage = min(1.0, matched / len(utterance.words))
    ratio = difflib.SequenceMatcher(None, utterance.flat, phrase.flat).ratio()
    return 0.65 * phrase_coverage + 0.25 * utterance_coverage + 0.10 * ratio


def explained(utterance: MatchText, text: MatchText) -> float:
    """How much of an utterance a longer text (a tool's description) accounts for, 0 to 1."""
    if not utterance.words:
        return 0.0
    return sum(_word_overlap(word, text.words) for word in utterance.words) / len(utterance.words)


# --- what kind of value a property wants ----------------------------------------------------


class Kind(enum.Enum):
    INTEGER = "integer"
    NUMBER = "number"
    BOOLEAN = "boolean"
    CHOICE = "choice"  # a string enum
    CHOICES = "choices"  # an array of a string enum
    TIME = "time"
    DATE = "date"
    DATETIME = "datetime"
    NAME = "name"
    EMAIL = "email"
    PHONE = "phone"
    TEXT = "text"
    UNSUPPORTED = "unsupported"


_FORMAT_KINDS = {
    "date": Kind.DATE,
    "time": Kind.TIME,
    "date-time": Kind.DATETIME,
    "email": Kind.EMAIL,
}
_KIND_HINTS = _words("datetime date day time hour email phone telephone mobile name surname")
_NOT_PERSON_NAMES = _words("product company business file item street city")
_REASON_WORDS = _words(
    """reason purpose note notes comment comments message details detail description request
    topic subject issue problem symptom symptoms summary query question concern"""
)


def name_words(name: str) -> list[str]:
    """A property name as words: "partySize" and "party_size" give ["party", "size"]."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", name)
    return [word for word in re.split(r"[\W_]+", spaced.lower()) if word]


def json_type(schema: Mapping[str, Any]) -> str | None:
    """The property's JSON type; of ["string", "null"], the one that is not null."""
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((item for item in kind if item != "null"), None)
    return kind if isinstance(kind, str) else None


def property_kind(name: str, schema: Mapping[str, Any]) -> Kind:
    """What a property wants, from its type and format, else from the words in its name."""
    json_kind = json_type(schema)
    choices = schema.get("enum")
    if isinstance(choices, list) and choices:
        if all(isinstance(choice, int | float) for choice in choices):
            return Kind.INTEGER if json_kind == "integer" else Kind.NUMBER
        return Kind.CHOICE
    if json_kind == "array":
        items = schema.get("items")
        return Kind.CHOICES if isinstance(items, dict) and items.get("enum") else Kind.UNSUPPORTED
    simple = {"boolean": Kind.BOOLEAN, "integer": Kind.INTEGER, "number": Kind.NUMBER}
    if json_kind in simple:
        return simple[json_kind]
    if json_kind not in ("string", None):
        return Kind.UNSUPPORTED
    if schema.get("format") in _FORMAT_KINDS:
        return _FORMAT_KINDS[schema["format"]]
    words = set(name_words(name))
    if not words & _KIND_HINTS:  # "when": "Date of the visit"
        words |= set(str(schema.get("description", "")).lower().split()[:1])
    if "datetime" in words or {"date", "time"} <= words:
        return Kind.DATETIME
    if words & {"time", "hour"} or ":" in str(schema.get("pattern", "")):
        return Kind.TIME
    if words & {"date", "day"}:
        return Kind.DATE
    if "email" in words:
        return Kind.EMAIL
    if words & {"phone", "telephone", "mobile"}:
        return Kind.PHONE
    if words & {"name", "surname"} and not words & _NOT_PERSON_NAMES:
        return Kind.NAME
    return Kind.TEXT


# --- times ----------------------------------------------------------------------------------

_TIME_CUES = frozenset({"at", "around", "after", "before", "until", "till", "by"})
_PM_WORDS = frozenset({"pm", "tonight", "evening", "afternoon", "night", "dinner", "supper"})
_AM_WORDS = frozenset({"am", "morning", "breakfast"})


@dataclass(frozen=True)
class TimeMention:
    hour: int
    minute: int
    meridiem: str | None  # "am", "pm", "24h" (already on the 24-hour clock) or None
    is_certain: bool  # "8pm", "7:30", "half past 8"; "at 7" is only likely a time
    start: int
    end: int


def _integer(token: Token | None) -> int | None:
    if token is None or token.is_ordinal or not isinstance(token.number, int):
        return None
    return token.number


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


def _day_part(tokens: Sequence[Token], near: int) -> str | None:
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
    month = _MONTHS.get(word(index))
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
        month = _MONTHS.get(word(index + offset))
        if month is None:
            is_ordinal = tokens[index].is_ordinal
            if not is_ordinal or (start == index and word(index - 1) not in ("on", "the")):
                return None
            this_month = _make_date(today.year, today.month, day, today)
            if this_month is not None and this_month >= today:
                return DateMention(this_month, True, start, index + 1)
            following = today.replace(day=1) + datetime.timedelta(days=32)
            later = _make_date(following.year, following.month, day, today)
            return DateMention(later, True, start, index + 1) if later else None
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
    weekday = word[:-1] if word.endswith("s") and word[:-1] in _WEEKDAYS else word
    if weekday in _WEEKDAYS:
        ahead = (_WEEKDAYS.index(weekday) - today.weekday()) % 7
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


# --- everything else a caller may say -------------------------------------------------------

_YES = _words("yes yeah yep yup sure please correct right ok okay absolutely definitely certainly")
_NO = _words("no nope nah not don't dont without never")
_NAME_INTROS_CASED = (("this", "is"), ("i'm",), ("i", "am"), ("it's",), ("under",), ("for",))
_NAME_INTROS = (
    ("my", "name", "is"), ("my", "name's"), ("name", "is"), ("name's",), ("call", "me"),
    ("under", "the", "name", "of"), ("under", "the", "name"),
)  # fmt: skip
_NOT_NAMES = (
    STOPWORDS
    | set(_WEEKDAYS)
    | set(_MONTHS)
    | {"tomorrow", "today", "tonight", "table", "booking", "reservation", "please", "thanks"}
)
_ANSWER_FILLERS = _words(
    """it's it is its that's that the name my yes yeah sure um uh oh well please put under
    call me i'm i am this of okay ok just"""
)
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")


def _capitalise(word: str) -> str:
    if word != word.lower():
        return word  # the transcript already cased it ("McDonald")
    return "'".join(part[:1].upper() + part[1:] for part in word.split("'"))


def _name_after(tokens: Sequence[Token], start: int, *, needs_capital: bool) -> str | None:
    words: list[str] = []
    for token in tokens[start : start + 3]:
        is_wordlike = token.number is None and token.word.replace("'", "").isalpha()
        if not is_wordlike or token.word in _NOT_NAMES or len(token.word) < 2:
            break
        if needs_capital and not token.text[:1].isupper():
            break
        words.append(_capitalise(token.text))
    return " ".join(words) or None


def _person_name(tokens: Sequence[Token], *, is_expected: bool) -> str | None:
    words = [token.word for token in tokens]
    for intros, needs_capital in ((_NAME_INTROS, False), (_NAME_INTROS_CASED, not is_expected)):
        for intro in intros:
            for index in range(len(words) - len(intro)):
                if tuple(words[index : index + len(intro)]) == intro:
                    start = index + len(intro)
                    name = _name_after(tokens, start, needs_capital=needs_capital)
                    if name:
                        return name
    if not is_expected:
        return None
    start = 0
    while start < len(words) and words[start] in _ANSWER_FILLERS:
        start += 1
    return _name_after(tokens, start, needs_capital=False)


def _name_part(full_name: str, property_name: str) -> str:
    words = set(name_words(property_name))
    parts = full_name.split()
    if "first" in words or "given" in words:
        return parts[0]
    if len(parts) > 1 and words & {"last", "surname", "family"}:
        return parts[-1]
    return full_name


def _email(text: str, *, is_expected: bool) -> str | None:
    found = _EMAIL.search(text)
    if found is None and is_expected:  # "john dot smith at example dot com"
        spoken = re.sub(r"\s+at\s+", "@", f" {text.lower()} ")
        spoken = re.sub(r"\s+dot\s+", ".", spoken)
        found = _EMAIL.search(spoken.replace(" ", ""))
    return found[0].rstrip(".").lower() if found else None


def _phone(tokens: Sequence[Token], used: set[int]) -> tuple[str, range] | None:
    """The longest run of spoken digits ("five five five, 1234") of at least six digits."""
    best: tuple[str, range] | None = None
    index = 0
    while index < len(tokens):
        digits = ""
        end = index
        while end < len(tokens) and end not in used:
            token = tokens[end]
            if isinstance(token.number, int) and not token.is_ordinal:
                digits += token.text if token.text.isdigit() else str(token.number)  # "0134"
            elif token.word in ("oh", "o") and digits:
                digits += "0"
            else:
                break
            end += 1
        if len(digits) >= 6 and (best is None or len(digits) > len(best[0])):
            prefix = "+" if index and tokens[index - 1].word == "plus" else ""
            best = (prefix + digits, range(index, end))
        index = max(end, index + 1)
    return best


def _boolean(tokens: Sequence[Token], property_name: str, *, is_expected: bool) -> bool | None:
    words = [token.word for token in tokens]
    if is_expected:
        for word in words:
            if word in _YES or word in _NO:
                return word in _YES
        return None
    # not asked: "with outdoor seating" sets outdoor_seating, "no outdoor seating" clears it
    wanted = [stem(word) for word in name_words(property_name) if word not in STOPWORDS]
    wanted = [word for word in wanted if word not in ("is", "has", "want", "need", "includ")]
    stems = [stem(_base(word)) for word in words]
    if not wanted or not all(word in stems for word in wanted):
        return None
    first = min(stems.index(word) for word in wanted)
    return not any(word in _NO for word in words[max(0, first - 3) : first])


def _choice_score(value: str, stems: Sequence[str]) -> float:
    wanted = [stem(_base(token.word)) for token in tokenize(value.replace("_", " "))]
    if not wanted:
        return 0.0
    return sum(_word_overlap(word, stems) for word in wanted) / len(wanted)


def _choices(
    tokens: Sequence[Token], options: Sequence[Any], *, is_expected: bool, many: bool
) -> Any:
    stems = [stem(_base(token.word)) for token in tokens]
    scored = [(_choice_score(str(option), stems), option) for option in options]
    if many:
        picked = [option for score, option in scored if score >= 0.5]
        return picked or None
    best_score, best = max(scored, key=lambda pair: pair[0], default=(0.0, None))
    if best_score >= 0.5:
        return best
    if is_expected:  # a near miss of the whole answer ("outdoors" for "outdoor")
        said = " ".join(token.word for token in tokens)
        names = {str(option).lower().replace("_", " "): option for option in options}
        close = difflib.get_close_matches(said, list(names), n=1, cutoff=0.75)
        return names[close[0]] if close else None
    return None


def _free_text(text: str, property_name: str, *, is_expected: bool) -> str | None:
    cleaned = clean_transcript(text).strip(" .,!?;:")
    is_reason = bool(set(name_words(property_name)) & _REASON_WORDS)
    if is_expected:
        # "It's A B 12" is the reference "A B 12"; "it's been hurting" stays a reason
        lead = r"um|uh|er|well|so" if is_reason else r"um|uh|er|well|so|it's|it is|that's|yes|ok"
        cleaned = re.sub(rf"^(?:(?:{lead})\b[\s,]*)+", "", cleaned, flags=re.IGNORECASE)
        return cleaned or None
    if not is_reason:
        return None
    # not asked: only what follows a cue word ("... because my tooth hurts")
    cue = re.search(r"\b(?:because(?: of)?|regarding|about|for an?)\s+(.+)$", cleaned, re.I)
    if cue is None or re.match(r"(?:\d|couple\b)", cue[1]):
        return None
    return cue[1].strip(" .,!?;:") or None


# --- numbers: which number is which property ------------------------------------------------

_PEOPLE = _words("people person guest adult party size seat diner visitor attendee group pax")


def _keywords(name: str, schema: Mapping[str, Any]) -> set[str]:
    description = str(schema.get("description", ""))
    words = name_words(name) + re.findall(r"[a-z]+", description.lower())
    stems = {stem(word) for word in words if word not in STOPWORDS}
    if stems & {stem(word) for word in _PEOPLE}:
        stems.add("people")
    return stems


def _context(tokens: Sequence[Token], index: int) -> set[str]:
    nearby = [*tokens[max(0, index - 3) : index], *tokens[index + 1 : index + 4]]
    stems = {stem(_base(token.word)) for token in nearby if token.number is None}
    if stems & {stem(word) for word in _PEOPLE}:
        stems.add("people")
    return stems


def _assign_numbers(
    tokens: Sequence[Token],
    used: set[int],
    numeric: Mapping[str, Mapping[str, Any]],
    expected: str | None,
    may_guess: bool,
) -> dict[str, int | float]:
    candidates = [
        index
        for index, token in enumerate(tokens)
        if index not in used and token.number is not None and not token.is_ordinal
    ]
    scored: list[tuple[float, int, int, str]] = []
    for order, (name, schema) in enumerate(numeric.items()):
        keywords = _keywords(name, schema)
        is_count = bool(keywords & {"people", "size", "count", "number", "quantiti"})
        for index in candidates:
            score = float(len(_context(tokens, index) & keywords))
            if is_count and index and tokens[index - 1].word == "for":
                score += 0.5  # "a table for 2"
            if score > 0:
                scored.append((-score, index, order, name))
    found: dict[str, int | float] = {}
    taken: set[int] = set()
    for _score, index, _order, name in sorted(scored):
        if name not in found and index not in taken:
            found[name] = _number(tokens[index])
            taken.add(index)
    leftover = [index for index in candidates if index not in taken]
    open_names = [name for name in numeric if name not in found]
    if leftover and expected in open_names:
        found[str(expected)] = _number(tokens[leftover.pop(0)])
    elif leftover and may_guess and len(open_names) == 1:
        # one number nobody claimed and one place it can go
        found[open_names[0]] = _number(tokens[leftover[0]])
    return found


def _number(token: Token) -> int | float:
    value = token.number or 0
    return int(value) if isinstance(value, float) and value.is_integer() else value


# --- putting it together --------------------------------------------------------------------


def extract_arguments(
    text: str,
    parameters: Mapping[str, Any],
    *,
    today: datetime.date,
    expected: str | None = None,
) -> dict[str, Any]:
    """The argument values a caller's utterance gives for a tool's JSON-Schema parameters.

    ``expected`` names the property the caller was just asked about: a bare "eight" is then
    that property's value (8 guests, or 20:00), and a free-text property takes the whole
    answer. Values are as said; checking them against the schema is the caller's job.
    """
    properties = {
        name: schema
        for name, schema in (parameters.get("properties") or {}).items()
        if isinstance(schema, dict)
    }
    kinds = {name: property_kind(name, schema) for name, schema in properties.items()}
    if expected is not None and kinds.get(expected) is Kind.TEXT:
        answer = _free_text(text, expected, is_expected=True)
        return {expected: answer} if answer else {}
    tokens = tokenize(text)
    used: set[int] = set()
    found: dict[str, Any] = {}

    def of_kind(*wanted: Kind) -> list[str]:
        return [name for name, kind in kinds.items() if kind in wanted]

    for name in of_kind(Kind.EMAIL):
        if (email := _email(text, is_expected=name == expected)) is not None:
            found[name] = email
    for name in of_kind(Kind.PHONE):
        if (phone := _phone(tokens, used)) is not None:
            found[name] = phone[0]
            used.update(phone[1])

    dates = find_dates(tokens, today)
    for date_mention in dates:
        used.update(range(date_mention.start, date_mention.end))
    dates.sort(key=lambda mention: not mention.is_explicit)
    time_names = of_kind(Kind.TIME, Kind.DATETIME)
    # "at 7" is a time only when the tool wants one; "7pm" always is, and is no count
    times = [t for t in find_times(tokens, used) if t.is_certain or time_names]
    for time_mention in times:
        used.update(range(time_mention.start, time_mention.end))
    if not times and expected in time_names:  # "What time?" "Eight."
        for index in range(len(tokens)):
            reading = None if index in used else _clock_words(tokens, index)
            if reading is not None and reading[0] <= 23 and reading[1] <= 59:
                times = [TimeMention(reading[0], reading[1], None, True, index, reading[2])]
                used.update(range(index, reading[2]))
                break
    if not dates and expected in of_kind(Kind.DATE, Kind.DATETIME):  # "Which day?" "The 3rd."
        for index, token in enumerate(tokens):
            if index not in used and isinstance(token.number, int) and 1 <= token.number <= 31:
                stand_in = [Token("the", "the"), Token(token.text, token.word, token.number, True)]
                dates = find_dates(stand_in, today)
                used.add(index)
                break

    clocks = [clock_time(t, _day_part(tokens, t.start)) for t in times]
    for name, clock in zip(of_kind(Kind.TIME), clocks, strict=False):
        found[name] = format_time(*clock, properties[name])
    for name in of_kind(Kind.DATE):
        if dates:
            found[name] = dates[0].day.isoformat()
    for name in of_kind(Kind.DATETIME):
        if clocks:
            on = dates[0].day if dates else today
            found[name] = datetime.datetime.combine(on, datetime.time(*clocks[0])).isoformat()

    numeric = {name: properties[name] for name in of_kind(Kind.INTEGER, Kind.NUMBER)}
    may_guess = expected is None or expected in numeric
    found.update(_assign_numbers(tokens, used, numeric, expected, may_guess))

    for name in of_kind(Kind.BOOLEAN):
        flag = _boolean(tokens, name, is_expected=name == expected)
        if flag is not None:
            found[name] = flag
    for name in of_kind(Kind.CHOICE, Kind.CHOICES):
        schema = properties[name]
        many = kinds[name] is Kind.CHOICES
        options = schema["items"]["enum"] if many else schema["enum"]
        choice = _choices(tokens, options, is_expected=name == expected, many=many)
        if choice is not None:
            found[name] = choice
    for name in of_kind(Kind.NAME):
        person = _person_name(tokens, is_expected=name == expected)
        if person is not None:
            found[name] = _name_part(person, name)
    for name in of_kind(Kind.TEXT):
        text_value = _free_text(text, name, is_expected=False)
        if text_value is not None:
            found[name] = text_value
    return found
