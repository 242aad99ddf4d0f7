"""Filling a tool's JSON-Schema arguments from what a caller said.

Each kind of property (see ``property_kinds``) has its reader here; ``extract_arguments``
runs them over one utterance, phone numbers, dates and times first, so that their digits
are not read again as counts.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Mapping, Sequence
from typing import Any

from rapidfuzz import fuzz, process

from speech.property_kinds import Kind, property_kind, schema_properties
from speech.when import (
    MONTHS,
    WEEKDAYS,
    DateMention,
    answered_time,
    clock_time,
    find_dates,
    find_times,
    format_time,
    next_day_of_month,
    part_of_day,
)
from speech.words import (
    STOPWORDS,
    Token,
    base_word,
    clean_transcript,
    name_words,
    stem,
    tokenize,
    word_overlap,
    word_set,
)

# --- names, emails, phone numbers, yes or no, choices, free text ---------------------------

_YES = word_set(
    "yes yeah yep yup sure please correct right ok okay absolutely definitely certainly"
)
_NO = word_set("no nope nah not don't dont without never")
_NAME_INTROS_CASED = (("this", "is"), ("i'm",), ("i", "am"), ("it's",), ("under",), ("for",))
_NAME_INTROS = (
    ("my", "name", "is"), ("my", "name's"), ("name", "is"), ("name's",), ("call", "me"),
    ("under", "the", "name", "of"), ("under", "the", "name"),
)  # fmt: skip
_NOT_NAMES = (
    STOPWORDS
    | set(WEEKDAYS)
    | set(MONTHS)
    | {"tomorrow", "today", "tonight", "table", "booking", "reservation", "please", "thanks"}
)
_ANSWER_FILLERS = word_set(
    """it's it is its that's that the name my yes yeah sure um uh oh well please put under
    call me i'm i am this of okay ok just"""
)
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_REASON_WORDS = word_set(
    """reason purpose note notes comment comments message details detail description request
    topic subject issue problem symptom symptoms summary query question concern"""
)


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
    stems = [stem(base_word(word)) for word in words]
    if not wanted or not all(word in stems for word in wanted):
        return None
    first = min(stems.index(word) for word in wanted)
    return not any(word in _NO for word in words[max(0, first - 3) : first])


def _choice_score(value: str, stems: Sequence[str]) -> float:
    wanted = [stem(base_word(token.word)) for token in tokenize(value.replace("_", " "))]
    if not wanted:
        return 0.0
    return sum(word_overlap(word, stems) for word in wanted) / len(wanted)


def _choices(
    tokens: Sequence[Token], options: Sequence[Any], *, is_expected: bool, many: bool
) -> Any:
    stems = [stem(base_word(token.word)) for token in tokens]
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
        close = process.extractOne(said, list(names), scorer=fuzz.ratio, score_cutoff=75)
        return names[close[0]] if close is not None else None
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

_PEOPLE = word_set("people person guest adult party size seat diner visitor attendee group pax")


def _keywords(name: str, schema: Mapping[str, Any]) -> set[str]:
    description = str(schema.get("description", ""))
    words = name_words(name) + re.findall(r"[a-z]+", description.lower())
    stems = {stem(word) for word in words if word not in STOPWORDS}
    if stems & {stem(word) for word in _PEOPLE}:
        stems.add("people")
    return stems


def _context(tokens: Sequence[Token], index: int) -> set[str]:
    nearby = [*tokens[max(0, index - 3) : index], *tokens[index + 1 : index + 4]]
    stems = {stem(base_word(token.word)) for token in nearby if token.number is None}
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
    properties = schema_properties(parameters)
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
        said_time = answered_time(tokens, used)
        if said_time is not None:
            times = [said_time]
            used.update(range(said_time.start, said_time.end))
    if not dates and expected in of_kind(Kind.DATE, Kind.DATETIME):  # "Which day?" "The 3rd."
        for index, token in enumerate(tokens):
            if index not in used and isinstance(token.number, int) and 1 <= token.number <= 31:
                day = next_day_of_month(token.number, today)
                dates = [DateMention(day, True, index, index + 1)] if day else []
                used.add(index)
                break

    clocks = [clock_time(t, part_of_day(tokens, t.start)) for t in times]
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
