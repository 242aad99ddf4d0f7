"""What the scripted engine says: greetings, questions for tool arguments, tool results."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from speech.engine import EngineRequest, ToolSpec
from speech.property_kinds import Kind, property_kind
from speech.words import STOPWORDS, name_words, tokenize

ANYTHING_ELSE = "Is there anything else I can help with?"
DIDNT_CATCH = "Sorry, I didn't catch that."
WORKING_ON_IT = "One moment, I'm working on that."
COULDNT_COMPLETE = "Sorry, I couldn't complete that right now."
GIVE_UP = "Sorry, I'm having trouble understanding, so let's leave that for now."
CANNOT_ASK = "Sorry, I can't take the details for that by voice."

_SPEAKABLE_KEYS = ("message", "confirmation", "result", "text", "speech")


def greeting(request: EngineRequest) -> str:
    """The agent's greeting, else a hello in the agent's name."""
    if request.greeting.strip():
        return request.greeting.strip()
    if request.agent_name.strip():
        return f"Hello, this is {request.agent_name.strip()}. How can I help you today?"
    return "Hello! How can I help you today?"


# --- what the agent can do ------------------------------------------------------------------


def fallback(request: EngineRequest) -> str:
    """The reply to something no tool or FAQ entry matches: what the agent can help with."""
    abilities = [_ability(tool) for tool in request.tools][:3]
    topics = [_topic(entry.question) for entry in request.faq][:3]
    offers = []
    if abilities:
        offers.append(f"help you {_join(abilities, 'or')}")
    if any(topics):
        offers.append(f"answer questions about {_join([t for t in topics if t], 'and')}")
    if not offers:
        return "Sorry, I'm not able to help with that."
    return f"Sorry, I'm not sure I can help with that. I can {', or '.join(offers)}."


def _ability(tool: ToolSpec) -> str:
    """What a tool does, to follow "I can help you": "book a table"."""
    clause = re.split(r"[.;:(,]| when | if | for the caller", tool.description.strip())[0]
    words = clause.split()[:10] or name_words(tool.name)
    verb = words[0].lower()
    irregular = {"has": "have", "does": "do", "goes": "go", "is": "be"}
    if verb in irregular:
        verb = irregular[verb]
    elif re.search(r"(?:ch|sh|ss|x)es$", verb):
        verb = verb[:-2]
    elif verb.endswith("s") and not verb.endswith("ss"):
        verb = verb[:-1]  # "Books a table" -> "book a table"
    return " ".join([verb, *words[1:]])


# FAQ questions often hide their topic in a verb: "When are you open?", "Where can I park?"
_TOPIC_NOUNS = {"open": "opening hours", "close": "closing time", "park": "parking"}


def _topic(question: str) -> str:
    """What an FAQ question is about: "What are your opening hours?" -> "opening hours"."""
    words = [t.text for t in tokenize(question) if t.word not in STOPWORDS]
    topic = " ".join(words).lower()
    return _TOPIC_NOUNS.get(topic, topic)


# --- asking for a tool's arguments ----------------------------------------------------------


def _subject(name: str, schema: Mapping[str, Any]) -> str:
    """What a property is, as a noun phrase: "number of guests", "time of the booking"."""
    description = str(schema.get("description") or "").strip()
    # the first clause; "24-hour HH:MM" and other format notes come after it
    subject = re.split(r"[,;(]|\s-\s|\.(?:\s|$)", description)[0].strip()
    if not subject:
        subject = " ".join(name_words(name))
    if subject[:1].isupper() and not subject[1:2].isupper():
        subject = subject[0].lower() + subject[1:]
    return subject


def _with_article(subject: str) -> str:
    return subject if re.match(r"(?:the|your|a|an|my)\s", subject) else f"the {subject}"


def question_for(name: str, schema: Mapping[str, Any]) -> str:
    """The question that asks the caller for a property; ``x-koe-question`` overrides it."""
    custom = schema.get("x-koe-question")
    if isinstance(custom, str) and custom.strip():
        return custom.strip()
    description = str(schema.get("description") or "").strip()
    if description.endswith("?"):
        return description
    question = _phrase_question(property_kind(name, schema), _subject(name, schema))
    items = schema.get("items")
    options = schema.get("enum") or (items.get("enum") if isinstance(items, dict) else None) or []
    if 1 < len(options) <= 5:
        question += f" You can choose {_join([_spoken(option) for option in options], 'or')}."
    return question


def _phrase_question(kind: Kind, subject: str) -> str:
    whose = r"((?:the|your|this) .+)"
    if found := re.fullmatch(r"(?:the )?number of (.+)", subject):
        return f"How many {found[1]}?"
    if kind is Kind.TIME:
        found = re.fullmatch(rf"(?:the )?time (?:of|for) {whose}", subject)
        return f"What time is {found[1]} for?" if found else "What time would you like?"
    if kind in (Kind.DATE, Kind.DATETIME):
        found = re.fullmatch(rf"(?:the )?(?:date|day) (?:of|for) {whose}", subject)
        if found:
            return f"What day is {found[1]} for?"
        if kind is Kind.DATETIME:
            return "What day and time would you like?"
        if subject in ("date", "day", "the date", "the day"):
            return "What day would you like?"
    if kind is Kind.NAME:
        found = re.fullmatch(rf"(?:the )?name (?:for|on|under) {whose}", subject)
        if found:
            return f"What name should I put {found[1]} under?"
        if subject in ("name", "full name", "your name", "your full name"):
            return "Can I have your name, please?"
    if kind is Kind.BOOLEAN:
        if found := re.fullmatch(r"whether to (.+)", subject):
            return f"Should I {found[1]}?"  # "Whether to add candles"
        pattern = r"whether (?:the )?(?:caller|customer|user|guest|you) (?:wants?|needs?) (.+)"
        found = re.fullmatch(pattern, subject)
        return f"Would you like {found[1]}?" if found else f"{_capital(subject)}: yes or no?"
    if subject.startswith("why "):
        return "Can you tell me why?"
    if subject.split(" ", 1)[0] in ("what", "which", "when", "where", "who", "how"):
        return f"{_capital(subject)}?"
    return f"What is {_with_article(subject)}?"


def refusal_reason(name: str, schema: Mapping[str, Any], validator: str) -> str:
    """Why a value was refused, as the rest of a sentence that starts with "Sorry, "."""
    subject = _with_article(_subject(name, schema))
    low = schema.get("minimum", schema.get("exclusiveMinimum"))
    high = schema.get("maximum", schema.get("exclusiveMaximum"))
    if validator in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        if low is not None and high is not None:
            return f"{subject} must be between {_spoken(low)} and {_spoken(high)}."
        if low is not None:
            return f"{subject} must be at least {_spoken(low)}."
        return f"{subject} must be at most {_spoken(high)}."
    if validator == "enum" and 1 < len(schema.get("enum") or []) <= 5:
        return f"{subject} must be {_join([_spoken(o) for o in schema['enum']], 'or')}."
    return "I didn't get that."


# --- what a tool gave back ------------------------------------------------------------------


def result_speech(data: Any) -> str:
    """What to say about a successful tool output (already parsed from JSON)."""
    if isinstance(data, str):
        return data.strip() or "Done."
    if data is False:
        return COULDNT_COMPLETE
    if not isinstance(data, dict):
        return "Done."
    for key in _SPEAKABLE_KEYS:
        value = data.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
        if isinstance(value, dict):
            return result_speech(value)
    fields = []
    for key, value in data.items():
        if key in ("ok", "success", "status_code") or value is None:
            continue
        if isinstance(value, bool):
            shown = "yes" if value else "no"
        elif isinstance(value, int | float) or (isinstance(value, str) and 0 < len(value) <= 60):
            shown = value if isinstance(value, str) else _spoken(value)
        else:
            continue
        label = " ".join("ID" if word == "id" else word for word in name_words(key))
        fields.append(f"{_capital(label)}: {shown}.")
    return " ".join(["Done.", *fields[:4]])


def speakable_reason(message: str) -> str | None:
    """A validation message fit to read to the caller: one short sentence, no instructions."""
    sentence = message.strip()
    instructive = re.search(r"apologi|assistant|model|instruct|tell the|offer", sentence, re.I)
    if not sentence or len(sentence) > 120 or instructive or re.search(r"[{}\n]|://", sentence):
        return None
    if re.search(r"[.!?]\s", sentence):
        return None
    return sentence if sentence[-1] in ".!?" else f"{sentence}."


# --- wording --------------------------------------------------------------------------------


def _join(items: Sequence[str], conjunction: str) -> str:
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} {conjunction} {items[-1]}"


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def _spoken(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).replace("_", " ")
