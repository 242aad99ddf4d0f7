"""The scripted engine: greeting, FAQ, tool calls with follow-up questions, tool results."""

from __future__ import annotations

import asyncio
import datetime
import json
import time
from typing import Any

import pytest

from speech.engine import (
    CallFunction,
    EngineRequest,
    FaqEntry,
    Message,
    Output,
    Say,
    ToolCall,
    ToolResult,
    ToolSpec,
    Turn,
)
from speech.scripted import ScriptedEngine

TODAY = datetime.date(2025, 11, 25)  # a Tuesday

BOOK_TABLE = ToolSpec(
    name="book_table",
    description="Books a table for the caller.",
    parameters={
        "type": "object",
        "properties": {
            "party_size": {
                "type": "integer",
                "minimum": 1,
                "maximum": 12,
                "description": "Number of guests",
            },
            "time": {
                "type": "string",
                "pattern": r"^([01]\d|2[0-3]):[0-5]\d$",
                "description": "Time of the booking, 24-hour HH:MM",
            },
            "name": {"type": "string", "description": "Name for the booking"},
            "date": {"type": "string", "format": "date", "description": "Day of the booking"},
        },
        "required": ["party_size", "time"],
    },
    example_phrases=(
        "I'd like a table for two at seven",
        "book a table",
        "can I make a reservation",
    ),
)
CANCEL_BOOKING = ToolSpec(
    name="cancel_booking",
    description="Cancels an existing booking.",
    parameters={
        "type": "object",
        "properties": {
            "reference": {"type": "string", "description": "The booking reference"},
        },
        "required": ["reference"],
    },
    example_phrases=("cancel my booking", "I need to cancel my reservation"),
)
ORDER_CAKE = ToolSpec(
    name="order_cake",
    description="Orders a birthday cake.",
    parameters={
        "type": "object",
        "properties": {
            "flavour": {
                "type": "string",
                "enum": ["chocolate", "vanilla", "lemon_drizzle"],
                "description": "Flavour of the cake",
            },
            "candles": {"type": "boolean", "description": "Whether to add candles"},
        },
        "required": ["flavour"],
    },
    example_phrases=("I'd like to order a cake", "can I get a birthday cake"),
)
FAQ = (
    FaqEntry("What are your opening hours?", "We're open from noon to eleven every day."),
    FaqEntry("Is there parking nearby?", "There's a free car park on Quay Road."),
)


def collect(engine: ScriptedEngine, request: EngineRequest) -> list[Output]:
    async def run() -> list[Output]:
        return [output async for output in engine.respond(request)]

    return asyncio.run(run())


class Call:
    """A call as the broker runs it: the history grows with each side's turns."""

    def __init__(self, *tools: ToolSpec, faq: tuple[FaqEntry, ...] = FAQ) -> None:
        self.tools = tools or (BOOK_TABLE, CANCEL_BOOKING)
        self.faq = faq
        self.history: list[Turn] = []
        self.engine = ScriptedEngine(today=lambda: TODAY)

    def request(self) -> EngineRequest:
        return EngineRequest(history=list(self.history), tools=self.tools, faq=self.faq)

    def respond(self) -> list[Output]:
        outputs = collect(self.engine, self.request())
        spoken = " ".join(output.text for output in outputs if isinstance(output, Say))
        if spoken:
            self.history.append(Message("assistant", spoken))
        for output in outputs:
            if isinstance(output, CallFunction):
                call_id = f"call_{len(self.history)}"
                self.history.append(ToolCall(call_id, output.name, output.arguments))
        return outputs

    def say(self, text: str) -> list[Output]:
        self.history.append(Message("user", text))
        return self.respond()

    def tool_answers(self, output: str) -> list[Output]:
        call = next(turn for turn in reversed(self.history) if isinstance(turn, ToolCall))
        self.history.append(ToolResult(call.call_id, output))
        return self.respond()


def spoken(outputs: list[Output]) -> str:
    return " ".join(output.text for output in outputs if isinstance(output, Say))


def called(outputs: list[Output]) -> CallFunction | None:
    return next((output for output in outputs if isinstance(output, CallFunction)), None)


# --- greeting ---------------------------------------------------------------------------------


def test_the_greeting_response_says_the_agents_greeting() -> None:
    request = EngineRequest(history=[], response_instructions="Greet", greeting="Hi, Koe Bistro!")
    assert collect(ScriptedEngine(), request) == [Say("Hi, Koe Bistro!")]


def test_an_empty_greeting_becomes_a_hello_naming_the_agent() -> None:
    request = EngineRequest(history=[], response_instructions="Greet", agent_name="Host")
    [greeting] = collect(ScriptedEngine(), request)
    assert isinstance(greeting, Say) and "Host" in greeting.text


def test_response_instructions_after_the_caller_spoke_answer_the_caller() -> None:
    request = EngineRequest(
        history=[Message("user", "Is there any parking?")],
        response_instructions="Greet",
        greeting="Hello!",
        faq=FAQ,
    )
    assert collect(ScriptedEngine(), request) == [Say("There's a free car park on Quay Road.")]


# --- FAQ and fallback -------------------------------------------------------------------------


def test_an_faq_question_is_answered_when_asked_in_other_words() -> None:
    call = Call()
    assert spoken(call.say("Where can I park nearby?")) == "There's a free car park on Quay Road."
    assert spoken(call.say("when are you open")) == "We're open from noon to eleven every day."


def test_something_it_cannot_do_gets_a_list_of_what_it_can() -> None:
    reply = spoken(Call().say("What's the weather like in Paris?"))
    assert "book a table" in reply
    assert "cancel an existing booking" in reply
    assert "opening hours" in reply and "parking" in reply


def test_a_blank_utterance_is_not_caught() -> None:
    assert spoken(Call().say("  [BLANK_AUDIO] ")) == "Sorry, I didn't catch that."


# --- calling a tool ---------------------------------------------------------------------------


def test_a_booking_said_with_digits_calls_the_tool_at_once() -> None:
    outputs = Call().say("I'd like a table for 2 at 7.")
    assert outputs == [CallFunction("book_table", {"party_size": 2, "time": "19:00"})]


def test_a_booking_said_with_number_words_calls_the_tool_at_once() -> None:
    outputs = Call().say("I'd like a table for two at seven")
    assert outputs == [CallFunction("book_table", {"party_size": 2, "time": "19:00"})]


def test_missing_arguments_are_asked_for_one_at_a_time() -> None:
    call = Call()
    assert spoken(call.say("Book a table.")) == "Sure. How many guests?"
    assert spoken(call.say("Four.")) == "What time is the booking for?"
    assert call.say("8:30 pm") == [CallFunction("book_table", {"party_size": 4, "time": "20:30"})]


def test_a_bare_hour_answering_the_time_question_is_in_the_evening() -> None:
    call = Call()
    call.say("Can I make a reservation for 3 people?")
    assert called(call.say("eight")) == CallFunction(
        "book_table", {"party_size": 3, "time": "20:00"}
    )


def test_a_fresh_engine_picks_up_a_half_filled_booking_from_the_history() -> None:
    call = Call()
    call.say("book a table")
    call.say("for six")
    call.history.append(Message("user", "half past eight"))
    outputs = collect(ScriptedEngine(today=lambda: TODAY), call.request())
    assert outputs == [CallFunction("book_table", {"party_size": 6, "time": "20:30"})]


def test_the_same_conversation_always_gets_the_same_response() -> None:
    call = Call()
    call.say("a table please")
    call.history.append(Message("user", "seven of us"))
    first = collect(call.engine, call.request())
    assert first == collect(call.engine, call.request())
    assert first == collect(ScriptedEngine(today=lambda: TODAY), call.request())


def test_dates_and_names_are_read_from_the_booking() -> None:
    call = Call()
    outputs = call.say("A table for 4 on Friday at 7:30pm under the name smith")
    assert called(outputs) == CallFunction(
        "book_table", {"party_size": 4, "time": "19:30", "name": "Smith", "date": "2025-11-28"}
    )
    outputs = Call().say("Can I book a table for tomorrow at noon for five? My name is Ana Ruiz.")
    assert called(outputs) == CallFunction(
        "book_table", {"party_size": 5, "time": "12:00", "name": "Ana Ruiz", "date": "2025-11-26"}
    )
    outputs = Call().say("Book a table, party of six, December 3rd at seven thirty.")
    assert called(outputs) == CallFunction(
        "book_table", {"party_size": 6, "time": "19:30", "date": "2025-12-03"}
    )


def test_a_number_out_of_range_is_refused_and_asked_again() -> None:
    call = Call()
    reply = spoken(call.say("A table for 20 at 7 please."))
    assert reply == "Sorry, the number of guests must be between 1 and 12. How many guests?"
    assert called(call.say("OK, twelve then.")) == CallFunction(
        "book_table", {"party_size": 12, "time": "19:00"}
    )


def test_an_unanswered_question_is_asked_again_then_given_up() -> None:
    call = Call()
    call.say("book a table")
    assert spoken(call.say("hmm, let me think")) == "Sorry, I didn't catch that. How many guests?"
    call.say("I'm not sure")
    reply = spoken(call.say("what?"))
    assert "let's leave that" in reply
    assert spoken(call.say("When are you open?")) == "We're open from noon to eleven every day."


def test_cancel_abandons_the_pending_tool() -> None:
    call = Call()
    call.say("I'd like to make a reservation")
    reply = spoken(call.say("Actually, never mind."))
    assert "won't go ahead" in reply
    assert called(call.say("four")) is None


def test_a_question_in_the_middle_is_answered_and_the_booking_goes_on() -> None:
    call = Call()
    call.say("book a table for 2")
    outputs = call.say("Is there parking nearby?")
    assert outputs == [
        Say("There's a free car park on Quay Road."),
        Say("What time is the booking for?"),
    ]
    assert called(call.say("at 9")) == CallFunction(
        "book_table", {"party_size": 2, "time": "21:00"}
    )


def test_the_intent_picks_the_right_tool() -> None:
    call = Call()
    reply = spoken(call.say("I need to cancel my booking"))
    assert reply == "Sure. What is the booking reference?"
    assert called(call.say("It's A B 12.")) == CallFunction(
        "cancel_booking", {"reference": "A B 12"}
    )
    assert spoken(Call().say("Can I book a table?")) == "Sure. How many guests?"


def test_an_enum_is_picked_from_what_was_said_and_choices_are_offered() -> None:
    outputs = Call(ORDER_CAKE).say("I'd like to order a lemon cake with candles")
    assert called(outputs) == CallFunction(
        "order_cake", {"flavour": "lemon_drizzle", "candles": True}
    )
    call = Call(ORDER_CAKE)
    reply = spoken(call.say("can I get a birthday cake"))
    assert reply == (
        "Sure. What is the flavour of the cake? You can choose chocolate, vanilla or lemon drizzle."
    )
    assert called(call.say("Chocolate please")) == CallFunction(
        "order_cake", {"flavour": "chocolate"}
    )


def test_a_property_can_say_its_own_question() -> None:
    tool = ToolSpec(
        name="call_back",
        description="Arranges a call back.",
        parameters={
            "type": "object",
            "properties": {
                "phone": {"type": "string", "x-koe-question": "What number can we reach you on?"}
            },
            "required": ["phone"],
        },
        example_phrases=("please call me back",),
    )
    call = Call(tool)
    assert spoken(call.say("Could you call me back?")) == "Sure. What number can we reach you on?"
    assert called(call.say("It's 555 0134 22")) == CallFunction("call_back", {"phone": "555013422"})


# --- speaking about a tool's result -----------------------------------------------------------


def booked_call() -> Call:
    call = Call()
    call.say("a table for 2 at 7")
    return call


def test_a_result_message_is_spoken() -> None:
    outputs = booked_call().tool_answers(json.dumps({"message": "Your table is booked."}))
    assert outputs == [Say("Your table is booked."), Say("Is there anything else I can help with?")]


def test_a_plain_text_result_is_spoken() -> None:
    outputs = booked_call().tool_answers("Booked for 19:00.")
    assert outputs[0] == Say("Booked for 19:00.")


def test_other_result_objects_are_done_with_their_simple_fields() -> None:
    output = json.dumps({"booking_id": "B-42", "confirmed": True, "tables": [1, 2]})
    reply = spoken(booked_call().tool_answers(output))
    assert reply.startswith("Done. Booking ID: B-42. Confirmed: yes.")


@pytest.mark.parametrize(
    "error",
    [
        {
            "code": "tool_unavailable",
            "message": "The tool cannot be run. Apologise and offer another way to help.",
        },
        "Upstream returned 502; tell the caller to ring back.",
    ],
)
def test_an_error_is_apologised_for_without_reading_its_instructions(error: Any) -> None:
    reply = spoken(booked_call().tool_answers(json.dumps({"error": error})))
    assert reply == (
        "Sorry, I couldn't complete that right now. Is there anything else I can help with?"
    )


def test_a_validation_error_says_why_and_asks_again() -> None:
    call = booked_call()
    error = {
        "error": {
            "code": "validation_error",
            "message": "We have no tables left at that time.",
            "field": "time",
        }
    }
    reply = spoken(call.tool_answers(json.dumps(error)))
    assert reply == (
        "Sorry, that didn't work: We have no tables left at that time. "
        "What time is the booking for?"
    )
    assert called(call.say("9pm then")) == CallFunction(
        "book_table", {"party_size": 2, "time": "21:00"}
    )


# --- speed ------------------------------------------------------------------------------------


def test_a_turn_in_a_long_call_is_quick() -> None:
    call = Call()
    for _ in range(20):
        call.say("book a table for 2 at 7")
        call.tool_answers('{"message": "Booked."}')
    call.history.append(Message("user", "Can I book a table for 4 tomorrow at 8 for Smith?"))
    started = time.perf_counter()
    collect(ScriptedEngine(today=lambda: TODAY), call.request())  # replays all 81 turns
    assert time.perf_counter() - started < 0.5
    started = time.perf_counter()
    collect(call.engine, call.request())  # remembers the call so far: one turn's work
    assert time.perf_counter() - started < 0.05


def test_while_a_background_tool_runs_it_says_it_is_working_on_it() -> None:
    call = Call()
    call.history.append(Message("user", "A table for two at seven please."))
    assert called(call.respond()) is not None
    # The broker asks for a response before the (background) tool's result is in.
    working = collect(
        call.engine,
        EngineRequest(
            history=list(call.history),
            tools=call.tools,
            faq=call.faq,
            response_instructions="A tool you called is still running.",
        ),
    )
    assert spoken(working) == "One moment, I'm working on that."
    assert called(working) is None
