"""The scripted response engine: a deterministic dialogue driven by the agent's configuration.

It greets with the agent's greeting, answers FAQ entries, and calls tools after asking for
each missing required argument, one question at a time. Intents are picked by fuzzy
matching of what the caller said against FAQ questions and tool example phrases.

Its state (which tool is being filled in, what was just asked) is rebuilt by replaying the
conversation, so the same conversation always gets the same response, even on a fresh
engine; the instance only remembers the last replay so a long call is not replayed each turn.
"""

from __future__ import annotations

import datetime
import json
import logging
import re
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import SchemaError
from jsonschema.validators import validator_for

from agents.realtime.providers.local import slots
from agents.realtime.providers.local.engine import (
    CallFunction,
    EngineRequest,
    FaqEntry,
    Message,
    Output,
    ResponseEngine,
    Say,
    ToolCall,
    ToolResult,
    ToolSpec,
    Turn,
)

logger = logging.getLogger(__name__)

MATCH_THRESHOLD = 0.5  # similarity an utterance needs to count as asking for an intent
MAX_FAILURES = 3  # the same question asked this many times without an answer gives up

ANYTHING_ELSE = "Is there anything else I can help with?"
DIDNT_CATCH = "Sorry, I didn't catch that."
COULDNT_COMPLETE = "Sorry, I couldn't complete that right now."
GIVE_UP = "Sorry, I'm having trouble understanding, so let's leave that for now."
CANNOT_ASK = "Sorry, I can't take the details for that by voice."

# Only formats the engine writes itself; jsonschema's "time" wants an RFC 3339 offset.
_FORMATS = FormatChecker(formats=("date", "email"))
_SPEAKABLE_KEYS = ("message", "confirmation", "result", "text", "speech")
_VALIDATION_CODES = frozenset({"validation_error", "invalid_arguments", "bad_request"})
_STOP_PHRASES = (
    ("cancel",), ("never", "mind"), ("nevermind",), ("forget", "it"), ("stop",),
    ("don't", "bother"), ("forget", "about", "it"),
)  # fmt: skip


@dataclass(frozen=True)
class _Filling:
    """A tool whose arguments are being collected from the caller."""

    tool: ToolSpec
    arguments: Mapping[str, Any]
    asking: str | None = None  # the property the caller was last asked for
    failures: int = 0  # how many times in a row that question went unanswered


@dataclass(frozen=True)
class _State:
    filling: _Filling | None = None
    last_call: ToolCall | None = None


@dataclass(frozen=True)
class _Intent:
    """A tool or an FAQ entry, with the phrases that ask for it and how much each counts."""

    phrases: tuple[slots.MatchText, ...]
    name: slots.MatchText | None = None
    description: slots.MatchText | None = None
    tool: ToolSpec | None = None
    faq: FaqEntry | None = None

    def score(self, utterance: slots.MatchText) -> float:
        scores = [slots.similarity(utterance, phrase) for phrase in self.phrases]
        by_name = slots.similarity(utterance, self.name) if self.name else 0.0
        # weaker evidence: the tool's name, or its description explaining what was said
        scores.append(0.8 * by_name)
        if self.description is not None:
            scores.append(0.7 * slots.explained(utterance, self.description))
        # of two tools whose descriptions both mention "time", current_time is named for it
        return max(scores) + 0.05 * by_name


@dataclass(frozen=True)
class _Memo:
    """The state after a conversation prefix, valid while the configuration is unchanged."""

    turns: tuple[Turn, ...]
    tools: tuple[ToolSpec, ...]
    faq: tuple[FaqEntry, ...]
    today: datetime.date
    state: _State
    outputs: tuple[Output, ...]  # the response to the last of the turns

    def covers(self, request: EngineRequest, today: datetime.date) -> bool:
        configuration = (tuple(request.tools), tuple(request.faq), today)
        return (self.tools, self.faq, self.today) == configuration


class ScriptedEngine(ResponseEngine):
    name = "scripted"

    def __init__(self, *, today: Callable[[], datetime.date] | None = None) -> None:
        self._today = today or datetime.date.today
        self._memo: _Memo | None = None

    async def respond(self, request: EngineRequest) -> AsyncIterator[Output]:
        for output in self._plan(request):
            yield output

    def _plan(self, request: EngineRequest) -> list[Output]:
        history = list(request.history)
        has_user_turn = any(_is_user(turn) for turn in history)
        if request.response_instructions is not None and not has_user_turn:
            return [Say(_greeting(request))]
        answerable = [i for i, turn in enumerate(history) if _is_user(turn) or _is_result(turn)]
        if not answerable:
            return [Say(_greeting(request))]
        trigger = answerable[-1]
        today = self._today()
        turns = tuple(history[: trigger + 1])
        memo = self._memo
        if memo is not None and memo.covers(request, today) and memo.turns == turns:
            return list(memo.outputs)  # asked again with nothing new said
        dialogue = _Dialogue(request, today)
        state = self._replay(dialogue, turns[:-1], today)
        state, outputs = dialogue.step(state, turns[-1])
        self._memo = _Memo(
            turns, tuple(request.tools), tuple(request.faq), today, state, tuple(outputs)
        )
        return outputs

    def _replay(self, dialogue: _Dialogue, turns: Sequence[Turn], today: datetime.date) -> _State:
        state, start = _State(), 0
        memo = self._memo
        is_prefix = memo is not None and tuple(turns[: len(memo.turns)]) == memo.turns
        if memo is not None and is_prefix and memo.covers(dialogue.request, today):
            state, start = memo.state, len(memo.turns)
        for turn in turns[start:]:
            state, _ = dialogue.step(state, turn)
        return state


class _Dialogue:
    """One request's view of the dialogue: how each turn moves the state and what to say."""

    def __init__(self, request: EngineRequest, today: datetime.date) -> None:
        self.request = request
        self.today = today
        self.intents = _intents(request)

    def step(self, state: _State, turn: Turn) -> tuple[_State, list[Output]]:
        if isinstance(turn, ToolCall):
            return _State(last_call=turn), []
        if isinstance(turn, ToolResult):
            return self._on_result(state, turn)
        if turn.role == "user":
            return self._on_user(state, turn.text)
        return state, []

    # --- what the caller said --------------------------------------------------------------

    def _on_user(self, state: _State, text: str) -> tuple[_State, list[Output]]:
        said = slots.clean_transcript(text)
        filling = state.filling
        if not slots.tokenize(said):
            if filling is not None and filling.asking is not None:
                question = _question(filling.asking, _properties(filling.tool)[filling.asking])
                return _State(filling), [Say(f"{DIDNT_CATCH} {question}")]
            return _State(), [Say(DIDNT_CATCH)]
        utterance = slots.match_text(said)
        if filling is not None:
            return self._continue(filling, said, utterance)
        return self._start(said, utterance)

    def _start(self, said: str, utterance: slots.MatchText) -> tuple[_State, list[Output]]:
        reply = _small_talk([token.word for token in slots.tokenize(said)])
        if reply is not None:
            return _State(), [Say(reply)]
        intent = self._best_intent(utterance)
        if intent is None:
            return _State(), [Say(self._fallback())]
        if intent.faq is not None:
            return _State(), [Say(intent.faq.answer.strip())]
        assert intent.tool is not None
        arguments = self._extract(intent.tool, said, expected=None)
        return self._advance(_Filling(intent.tool, arguments), progressed=True, opening=True)

    def _continue(
        self, filling: _Filling, said: str, utterance: slots.MatchText
    ) -> tuple[_State, list[Output]]:
        words = [token.word for token in slots.tokenize(said)]
        if any(_contains(words, phrase) for phrase in _STOP_PHRASES):
            return _State(), [Say(f"Okay, I won't go ahead with that. {ANYTHING_ELSE}")]
        found = self._extract(filling.tool, said, expected=filling.asking)
        if not found:
            # a question in between ("do you have parking?") or a change of mind
            intent = self._best_intent(utterance)
            if intent is not None and intent.faq is not None and filling.asking is not None:
                question = _question(filling.asking, _properties(filling.tool)[filling.asking])
                return _State(filling), [Say(intent.faq.answer.strip()), Say(question)]
            if intent is not None and intent.tool not in (None, filling.tool):
                return self._start(said, utterance)
        arguments = {**filling.arguments, **found}
        return self._advance(replace(filling, arguments=arguments), progressed=bool(found))

    def _advance(
        self, filling: _Filling, *, progressed: bool, opening: bool = False
    ) -> tuple[_State, list[Output]]:
        """Ask for the next thing the tool needs, or call it when nothing is missing."""
        tool = filling.tool
        properties = _properties(tool)
        problems, unfixable = _check(tool, filling.arguments)
        arguments = {k: v for k, v in filling.arguments.items() if k not in problems}
        missing = [name for name in _required(tool) if name not in arguments]
        if problems:
            name, reason = next(iter(problems.items()))
            lead = f"Sorry, {reason}"
        elif missing:
            name = missing[0]
            lead = "" if progressed else DIDNT_CATCH
        elif unfixable:
            logger.warning("scripted engine cannot satisfy %s's schema: %s", tool.name, unfixable)
            return _State(), [Say(COULDNT_COMPLETE), Say(ANYTHING_ELSE)]
        else:
            # no "one moment" first: the call's result is spoken as soon as the tool answers
            ordered = {name: arguments[name] for name in properties if name in arguments}
            return _State(), [CallFunction(tool.name, ordered)]
        if slots.property_kind(name, properties[name]) is slots.Kind.UNSUPPORTED:
            return _State(), [Say(CANNOT_ASK), Say(ANYTHING_ELSE)]  # an object, say
        failures = filling.failures + 1 if name == filling.asking else 0
        if failures >= MAX_FAILURES:
            return _State(), [Say(GIVE_UP), Say(ANYTHING_ELSE)]
        if opening and not lead:
            lead = "Sure."
        text = f"{lead} {_question(name, properties[name])}".strip()
        return _State(_Filling(tool, arguments, name, failures)), [Say(text)]

    def _extract(self, tool: ToolSpec, said: str, *, expected: str | None) -> dict[str, Any]:
        parameters = _parameters(tool)
        return slots.extract_arguments(said, parameters, today=self.today, expected=expected)

    def _best_intent(self, utterance: slots.MatchText) -> _Intent | None:
        scores = [intent.score(utterance) for intent in self.intents]
        if not scores:
            return None
        # ties go to the earlier tool, then to the earlier FAQ entry
        best = max(range(len(scores)), key=lambda index: (scores[index], -index))
        return self.intents[best] if scores[best] >= MATCH_THRESHOLD else None

    def _fallback(self) -> str:
        abilities = [_ability(tool) for tool in self.request.tools][:3]
        topics = [_topic(entry.question) for entry in self.request.faq][:3]
        offers = []
        if abilities:
            offers.append(f"help you {_join(abilities, 'or')}")
        if any(topics):
            offers.append(f"answer questions about {_join([t for t in topics if t], 'and')}")
        if not offers:
            return "Sorry, I'm not able to help with that."
        return f"Sorry, I'm not sure I can help with that. I can {', or '.join(offers)}."

    # --- what a tool gave back -------------------------------------------------------------

    def _on_result(self, state: _State, result: ToolResult) -> tuple[_State, list[Output]]:
        call = state.last_call
        if call is not None and call.call_id != result.call_id:
            call = None
        try:
            data: Any = json.loads(result.output)
        except ValueError:
            text = result.output.strip()
            return _State(), [Say(text or "Done."), Say(ANYTHING_ELSE)]
        if isinstance(data, dict) and data.get("error"):
            return self._on_error(data["error"], call)
        return _State(), [Say(_result_speech(data)), Say(ANYTHING_ELSE)]

    def _on_error(self, error: Any, call: ToolCall | None) -> tuple[_State, list[Output]]:
        """Apologise; read a reason aloud only for a validation error, then ask again."""
        details = error if isinstance(error, dict) else {}
        code = str(details.get("code") or details.get("type") or "").lower()
        tool = next((t for t in self.request.tools if call and t.name == call.name), None)
        is_validation = code in _VALIDATION_CODES or "invalid" in code or "validation" in code
        if not is_validation or tool is None or call is None:
            return _State(), [Say(COULDNT_COMPLETE), Say(ANYTHING_ELSE)]
        message = str(details.get("message") or "")
        reason = _speakable_reason(message)
        lead = f"Sorry, that didn't work: {reason}" if reason else "Sorry, that didn't work."
        field = _error_field(details, message, _properties(tool))
        if field is None:
            return _State(), [Say(lead), Say(ANYTHING_ELSE)]
        arguments = {k: v for k, v in call.arguments.items() if k != field}
        question = _question(field, _properties(tool)[field])
        return _State(_Filling(tool, arguments, field)), [Say(f"{lead} {question}")]


# --- schema helpers -------------------------------------------------------------------------


def _parameters(tool: ToolSpec) -> dict[str, Any]:
    return tool.parameters if isinstance(tool.parameters, dict) else {}


def _properties(tool: ToolSpec) -> dict[str, dict[str, Any]]:
    found = _parameters(tool).get("properties") or {}
    return {name: schema for name, schema in found.items() if isinstance(schema, dict)}


def _required(tool: ToolSpec) -> list[str]:
    properties = _properties(tool)
    return [name for name in _parameters(tool).get("required") or [] if name in properties]


def _check(tool: ToolSpec, arguments: Mapping[str, Any]) -> tuple[dict[str, str], list[str]]:
    """What is wrong with the arguments: per property (to ask again), and otherwise."""
    properties = _properties(tool)
    problems: dict[str, str] = {}
    unfixable: list[str] = []
    schema = _parameters(tool)
    try:
        validator = validator_for(schema, default=Draft202012Validator)(
            schema, format_checker=_FORMATS
        )
        errors = list(validator.iter_errors(dict(arguments)))
    except SchemaError as schema_error:
        logger.warning("tool %s has an invalid schema: %s", tool.name, schema_error.message)
        return problems, unfixable
    for error in errors:
        path = list(error.absolute_path)
        if path and path[0] in properties:
            name = str(path[0])
            problems.setdefault(name, _reason(name, properties[name], str(error.validator)))
        elif error.validator != "required":  # missing ones are asked for anyway
            unfixable.append(error.message)
    return problems, unfixable


def _subject(name: str, schema: Mapping[str, Any]) -> str:
    """What a property is, as a noun phrase: "number of guests", "time of the booking"."""
    description = str(schema.get("description") or "").strip()
    # the first clause; "24-hour HH:MM" and other format notes come after it
    subject = re.split(r"[,;(]|\s-\s|\.(?:\s|$)", description)[0].strip()
    if not subject:
        subject = " ".join(slots.name_words(name))
    if subject[:1].isupper() and not subject[1:2].isupper():
        subject = subject[0].lower() + subject[1:]
    return subject


def _with_article(subject: str) -> str:
    return subject if re.match(r"(?:the|your|a|an|my)\s", subject) else f"the {subject}"


def _question(name: str, schema: Mapping[str, Any]) -> str:
    """The question that asks the caller for a property; ``x-koe-question`` overrides it."""
    custom = schema.get("x-koe-question")
    if isinstance(custom, str) and custom.strip():
        return custom.strip()
    description = str(schema.get("description") or "").strip()
    if description.endswith("?"):
        return description
    question = _phrase_question(slots.property_kind(name, schema), _subject(name, schema))
    items = schema.get("items")
    options = schema.get("enum") or (items.get("enum") if isinstance(items, dict) else None) or []
    if 1 < len(options) <= 5:
        question += f" You can choose {_join([_spoken(option) for option in options], 'or')}."
    return question


def _phrase_question(kind: slots.Kind, subject: str) -> str:
    whose = r"((?:the|your|this) .+)"
    if found := re.fullmatch(r"(?:the )?number of (.+)", subject):
        return f"How many {found[1]}?"
    if kind is slots.Kind.TIME:
        found = re.fullmatch(rf"(?:the )?time (?:of|for) {whose}", subject)
        return f"What time is {found[1]} for?" if found else "What time would you like?"
    if kind in (slots.Kind.DATE, slots.Kind.DATETIME):
        found = re.fullmatch(rf"(?:the )?(?:date|day) (?:of|for) {whose}", subject)
        if found:
            return f"What day is {found[1]} for?"
        if kind is slots.Kind.DATETIME:
            return "What day and time would you like?"
        if subject in ("date", "day", "the date", "the day"):
            return "What day would you like?"
    if kind is slots.Kind.NAME:
        found = re.fullmatch(rf"(?:the )?name (?:for|on|under) {whose}", subject)
        if found:
            return f"What name should I put {found[1]} under?"
        if subject in ("name", "full name", "your name", "your full name"):
            return "Can I have your name, please?"
    if kind is slots.Kind.BOOLEAN:
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


def _reason(name: str, schema: Mapping[str, Any], validator: str) -> str:
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


# --- speaking -------------------------------------------------------------------------------


def _is_user(turn: Turn) -> bool:
    return isinstance(turn, Message) and turn.role == "user"


def _is_result(turn: Turn) -> bool:
    return isinstance(turn, ToolResult)


def _greeting(request: EngineRequest) -> str:
    if request.greeting.strip():
        return request.greeting.strip()
    if request.agent_name.strip():
        return f"Hello, this is {request.agent_name.strip()}. How can I help you today?"
    return "Hello! How can I help you today?"


def _intents(request: EngineRequest) -> list[_Intent]:
    intents = []
    for tool in request.tools:
        phrases = tuple(slots.match_text(phrase) for phrase in tool.example_phrases)
        name = slots.match_text(" ".join(slots.name_words(tool.name)))
        description = slots.match_text(tool.description) if tool.description.strip() else None
        intents.append(_Intent(phrases, name, description, tool=tool))
    for entry in request.faq:
        if entry.question.strip() and entry.answer.strip():
            intents.append(_Intent((slots.match_text(entry.question),), faq=entry))
    return intents


def _contains(words: Sequence[str], phrase: Sequence[str]) -> bool:
    size = len(phrase)
    return any(tuple(words[i : i + size]) == tuple(phrase) for i in range(len(words) - size + 1))


def _small_talk(words: Sequence[str]) -> str | None:
    """A reply to an utterance made only of pleasantries, or None."""
    said = set(words)
    if not said:
        return None
    if said <= {"hi", "hello", "hey", "hiya", "there", "good", "morning", "afternoon", "evening"}:
        return "Hello! How can I help you?"
    closing = {"no", "nope", "that's", "that", "is", "it", "all", "nothing", "else", "for", "now"}
    closing |= {"bye", "goodbye", "thank", "thanks", "you", "very", "much", "ok", "okay"}
    if said <= closing and (said & {"bye", "goodbye", "no", "nope", "all", "nothing"}):
        return "Thank you for calling. Goodbye!"
    if said & {"thank", "thanks", "cheers"} and said <= closing | {"cheers", "great", "perfect"}:
        return f"You're welcome! {ANYTHING_ELSE}"
    if said <= {"yes", "yeah", "yep", "sure", "please", "i", "do"}:
        return "What can I help you with?"
    return None


def _ability(tool: ToolSpec) -> str:
    """What a tool does, to follow "I can help you": "book a table"."""
    clause = re.split(r"[.;:(,]| when | if | for the caller", tool.description.strip())[0]
    words = clause.split()[:10] or slots.name_words(tool.name)
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
    words = [t.text for t in slots.tokenize(question) if t.word not in slots.STOPWORDS]
    topic = " ".join(words).lower()
    return _TOPIC_NOUNS.get(topic, topic)


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


def _result_speech(data: Any) -> str:
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
            return _result_speech(value)
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
        label = " ".join("ID" if word == "id" else word for word in slots.name_words(key))
        fields.append(f"{_capital(label)}: {shown}.")
    return " ".join(["Done.", *fields[:4]])


def _speakable_reason(message: str) -> str | None:
    """A validation message fit to read to the caller: one short sentence, no instructions."""
    sentence = message.strip()
    instructive = re.search(r"apologi|assistant|model|instruct|tell the|offer", sentence, re.I)
    if not sentence or len(sentence) > 120 or instructive or re.search(r"[{}\n]|://", sentence):
        return None
    if re.search(r"[.!?]\s", sentence):
        return None
    return sentence if sentence[-1] in ".!?" else f"{sentence}."


def _error_field(
    details: Mapping[str, Any], message: str, properties: Mapping[str, Any]
) -> str | None:
    """The argument a validation error is about: named by the error, or in its message."""
    for key in ("field", "param", "parameter", "property", "argument", "path"):
        value = details.get(key)
        if isinstance(value, str):
            name = re.split(r"[/.]", value.strip("/$. "))[-1]
            if name in properties:
                return name
    for name in properties:
        if re.search(rf"\b{re.escape(name)}\b", message):
            return name
    return None
