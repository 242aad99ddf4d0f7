"""The scripted response engine: a deterministic dialogue driven by the agent's configuration.

It greets with the agent's greeting, answers FAQ entries, and calls tools after asking for
each missing required argument, one question at a time. What the caller asks for is
recognised in ``intents``; what the engine says is worded in ``replies``.

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

from speech.engine import (
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
from speech.intents import (
    best_intent,
    request_intents,
    small_talk,
    wants_to_stop,
)
from speech.property_kinds import Kind, property_kind, schema_properties
from speech.replies import (
    ANYTHING_ELSE,
    CANNOT_ASK,
    COULDNT_COMPLETE,
    DIDNT_CATCH,
    GIVE_UP,
    WORKING_ON_IT,
    fallback,
    greeting,
    question_for,
    refusal_reason,
    result_speech,
    speakable_reason,
)
from speech.slots import extract_arguments
from speech.words import MatchText, clean_transcript, match_text, tokenize

logger = logging.getLogger(__name__)

MAX_FAILURES = 3  # the same question asked this many times without an answer gives up

# Only formats the engine writes itself; jsonschema's "time" wants an RFC 3339 offset.
_FORMATS = FormatChecker(formats=("date", "email"))
_VALIDATION_CODES = frozenset({"validation_error", "invalid_arguments", "bad_request"})


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
            return [Say(greeting(request))]
        if history and isinstance(history[-1], ToolCall):
            # A background tool is still running (its result comes as a later turn).
            return [Say(WORKING_ON_IT)]
        answerable = [i for i, turn in enumerate(history) if _is_user(turn) or _is_result(turn)]
        if not answerable:
            return [Say(greeting(request))]
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
        self.intents = request_intents(request)

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
        said = clean_transcript(text)
        filling = state.filling
        if not tokenize(said):
            if filling is not None and filling.asking is not None:
                question = question_for(filling.asking, _properties(filling.tool)[filling.asking])
                return _State(filling), [Say(f"{DIDNT_CATCH} {question}")]
            return _State(), [Say(DIDNT_CATCH)]
        utterance = match_text(said)
        if filling is not None:
            return self._continue(filling, said, utterance)
        return self._start(said, utterance)

    def _start(self, said: str, utterance: MatchText) -> tuple[_State, list[Output]]:
        reply = small_talk([token.word for token in tokenize(said)])
        if reply is not None:
            return _State(), [Say(reply)]
        intent = best_intent(self.intents, utterance)
        if intent is None:
            return _State(), [Say(fallback(self.request))]
        if intent.faq is not None:
            return _State(), [Say(intent.faq.answer.strip())]
        assert intent.tool is not None
        arguments = self._extract(intent.tool, said, expected=None)
        return self._advance(_Filling(intent.tool, arguments), progressed=True, opening=True)

    def _continue(
        self, filling: _Filling, said: str, utterance: MatchText
    ) -> tuple[_State, list[Output]]:
        words = [token.word for token in tokenize(said)]
        if wants_to_stop(words):
            return _State(), [Say(f"Okay, I won't go ahead with that. {ANYTHING_ELSE}")]
        found = self._extract(filling.tool, said, expected=filling.asking)
        if not found:
            # a question in between ("do you have parking?") or a change of mind
            intent = best_intent(self.intents, utterance)
            if intent is not None and intent.faq is not None and filling.asking is not None:
                question = question_for(filling.asking, _properties(filling.tool)[filling.asking])
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
        if property_kind(name, properties[name]) is Kind.UNSUPPORTED:
            return _State(), [Say(CANNOT_ASK), Say(ANYTHING_ELSE)]  # an object, say
        failures = filling.failures + 1 if name == filling.asking else 0
        if failures >= MAX_FAILURES:
            return _State(), [Say(GIVE_UP), Say(ANYTHING_ELSE)]
        if opening and not lead:
            lead = "Sure."
        text = f"{lead} {question_for(name, properties[name])}".strip()
        return _State(_Filling(tool, arguments, name, failures)), [Say(text)]

    def _extract(self, tool: ToolSpec, said: str, *, expected: str | None) -> dict[str, Any]:
        parameters = _parameters(tool)
        return extract_arguments(said, parameters, today=self.today, expected=expected)

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
        return _State(), [Say(result_speech(data)), Say(ANYTHING_ELSE)]

    def _on_error(self, error: Any, call: ToolCall | None) -> tuple[_State, list[Output]]:
        """Apologise; read a reason aloud only for a validation error, then ask again."""
        details = error if isinstance(error, dict) else {}
        code = str(details.get("code") or details.get("type") or "").lower()
        tool = next((t for t in self.request.tools if call and t.name == call.name), None)
        is_validation = code in _VALIDATION_CODES or "invalid" in code or "validation" in code
        if not is_validation or tool is None or call is None:
            return _State(), [Say(COULDNT_COMPLETE), Say(ANYTHING_ELSE)]
        message = str(details.get("message") or "")
        reason = speakable_reason(message)
        lead = f"Sorry, that didn't work: {reason}" if reason else "Sorry, that didn't work."
        field = _error_field(details, message, _properties(tool))
        if field is None:
            return _State(), [Say(lead), Say(ANYTHING_ELSE)]
        arguments = {k: v for k, v in call.arguments.items() if k != field}
        question = question_for(field, _properties(tool)[field])
        return _State(_Filling(tool, arguments, field)), [Say(f"{lead} {question}")]


# --- schema helpers -------------------------------------------------------------------------


def _parameters(tool: ToolSpec) -> dict[str, Any]:
    return tool.parameters if isinstance(tool.parameters, dict) else {}


def _properties(tool: ToolSpec) -> dict[str, dict[str, Any]]:
    return schema_properties(_parameters(tool))


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
            problems.setdefault(name, refusal_reason(name, properties[name], str(error.validator)))
        elif error.validator != "required":  # missing ones are asked for anyway
            unfixable.append(error.message)
    return problems, unfixable


# --- reading the conversation ---------------------------------------------------------------


def _is_user(turn: Turn) -> bool:
    return isinstance(turn, Message) and turn.role == "user"


def _is_result(turn: Turn) -> bool:
    return isinstance(turn, ToolResult)


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
