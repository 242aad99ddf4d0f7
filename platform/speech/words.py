"""The words of a transcript: tokens with their numbers read, rough stems, fuzzy matching.

The input is speech-to-text output ("I'd like a table for 2 at 7.", "half past eight
tomorrow"), so everything here is forgiving string work: number words become digits,
punctuation and casing are noise, and words are compared by rough stems.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from rapidfuzz import fuzz, process


def word_set(text: str) -> frozenset[str]:
    """The whitespace-separated words of a text, as a set."""
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

STOPWORDS = word_set(
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


# --- tokens ---------------------------------------------------------------------------------


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


# --- stems and names ------------------------------------------------------------------------


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


def base_word(word: str) -> str:
    """The word without a contraction: "what's" -> "what", "i'd" -> "i"; "o'brien" stays."""
    head, _, tail = word.partition("'")
    return head if tail in ("s", "d", "m", "ll", "ve", "re", "t") else word


def name_words(name: str) -> list[str]:
    """A property name as words: "partySize" and "party_size" give ["party", "size"]."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", name)
    return [word for word in re.split(r"[\W_]+", spaced.lower()) if word]


# --- fuzzy matching of utterances and phrases -----------------------------------------------


@dataclass(frozen=True)
class MatchText:
    """A text prepared for fuzzy comparison: its content stems and a flattened form."""

    words: tuple[str, ...]
    flat: str


def match_text(text: str) -> MatchText:
    """The text prepared for fuzzy comparison with ``similarity`` and ``explained``."""
    content: list[str] = []
    every: list[str] = []
    for token in tokenize(text):
        if token.number is not None or token.word[0].isdigit():
            word = "#"  # any number matches any number: "for 2" is "for two" is "for 6"
        else:
            base = base_word(token.word)
            word = _SAME_MEANING.get(stem(base), stem(base))
            if base in STOPWORDS or token.word in STOPWORDS:
                every.append(word)
                continue
        content.append(word)
        every.append(word)
    # A phrase made only of common words ("Who are you?") is compared on all of them.
    chosen = tuple(dict.fromkeys(content or every))
    return MatchText(chosen, " ".join(chosen))


def word_overlap(word: str, others: Sequence[str]) -> float:
    """How well a word is found among others: 1 if it is there, 0.8 if nearly, else 0."""
    if word in others:
        return 1.0
    if len(word) < 4:
        return 0.0
    # speech-to-text misspellings ("resevation") still count, for a little less
    close = process.extractOne(word, others, scorer=fuzz.ratio, score_cutoff=85)
    return 0.8 if close is not None else 0.0


def similarity(utterance: MatchText, phrase: MatchText) -> float:
    """How well an utterance matches a phrase, 0 to 1: mostly how much of the phrase it says."""
    if not utterance.words or not phrase.words:
        return 0.0
    matched = sum(word_overlap(word, utterance.words) for word in phrase.words)
    phrase_coverage = matched / len(phrase.words)
    utterance_coverage = min(1.0, matched / len(utterance.words))
    ratio = fuzz.ratio(utterance.flat, phrase.flat) / 100
    return 0.65 * phrase_coverage + 0.25 * utterance_coverage + 0.10 * ratio


def explained(utterance: MatchText, text: MatchText) -> float:
    """How much of an utterance a longer text (a tool's description) accounts for, 0 to 1."""
    if not utterance.words:
        return 0.0
    return sum(word_overlap(word, text.words) for word in utterance.words) / len(utterance.words)
