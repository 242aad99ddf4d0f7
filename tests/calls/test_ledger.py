"""Writing a live call's progress and its end (calls/ledger.py), function by function.

The broker calls these in batches; a retried batch, a second end, a failing receiver of
the end must each leave the record exactly right. Transactional: the functions take
their own row locks and transactions, as they do under the broker.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from calls.ledger import end_call, store_progress
from calls.models import CallSession, CallStatus
from calls.signals import call_ended
from tests.factories import CallFactory

pytestmark = pytest.mark.django_db(transaction=True)


def said(role: str, text: str, item_id: str = "", **more: Any) -> dict[str, Any]:
    return {"role": role, "text": text, "item_id": item_id, **more}


def usage(response_id: str, input_tokens: int, output_tokens: int) -> dict[str, Any]:
    return {
        "response_id": response_id,
        "usage": {
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "total_tokens": input_tokens + output_tokens,
        },
    }


def flush(call: CallSession, *, transcript=(), usage_=(), interrupted=(), turns=0) -> None:  # type: ignore[no-untyped-def]
    store_progress(
        call.pk,
        transcript=list(transcript),
        usage=list(usage_),
        interrupted_item_ids=list(interrupted),
        turn_count=turns,
        latencies_ms=[100] * turns,
    )


def test_transcript_batches_continue_one_numbering_and_feed_the_search_text() -> None:
    call = CallFactory(consent_scope="transcript")
    flush(call, transcript=[said("user", "Hello.")], turns=1)
    flush(
        call,
        transcript=[
            said("assistant", "Hi!", "item_a"),
            said("tool", '{"ok": true}', tool_name="book_table"),
            said("user", ""),
        ],
        turns=2,
    )
    flush(call, transcript=[said("assistant", "Booked.", "item_b")], turns=3)

    rows = list(call.transcript.order_by("sequence").values_list("sequence", "role"))
    assert rows == [(1, "user"), (2, "assistant"), (3, "tool"), (4, "user"), (5, "assistant")]
    call.refresh_from_db()
    # What was said, in order; a tool's output and empty words are not search text.
    assert call.transcript_text == "Hello.\nHi!\nBooked."
    assert (call.turn_count, call.latencies_ms) == (3, [100, 100, 100])


def test_what_was_cut_short_is_marked_only_on_the_agents_items() -> None:
    call = CallFactory(consent_scope="transcript")
    flush(
        call, transcript=[said("assistant", "Let me see", "item_a"), said("user", "Stop", "item_u")]
    )
    flush(call, interrupted=["item_a", "item_u"])
    marked = dict(call.transcript.values_list("item_id", "interrupted"))
    assert marked == {"item_a": True, "item_u": False}


def test_without_transcript_consent_nothing_said_is_kept_but_usage_is() -> None:
    call = CallFactory(consent_scope="none")
    flush(
        call,
        transcript=[said("user", "My card number is 4242.")],
        usage_=[usage("resp_1", 10, 20)],
        interrupted=["item_a"],
        turns=1,
    )
    call.refresh_from_db()
    assert not call.transcript.exists()
    assert call.transcript_text == ""
    assert (call.input_tokens, call.output_tokens, call.total_tokens) == (10, 20, 30)


def test_usage_adds_up_across_batches_and_a_retried_batch_counts_once() -> None:
    call = CallFactory(consent_scope="none")
    flush(call, usage_=[usage("resp_1", 3, 5), usage("resp_2", 7, 11)])
    # The same batch again (a retried flush), then one more response.
    flush(call, usage_=[usage("resp_1", 3, 5), usage("resp_2", 7, 11), usage("resp_3", 13, 17)])
    flush(call, usage_=[usage("resp_4", 19, 23)])

    call.refresh_from_db()
    assert (call.input_tokens, call.output_tokens, call.total_tokens) == (42, 56, 98)
    assert sorted(call.usage.values_list("response_id", "input_tokens")) == [
        ("resp_1", 3),
        ("resp_2", 7),
        ("resp_3", 13),
        ("resp_4", 19),
    ]


def test_the_end_is_written_once_with_its_real_time_duration_and_a_bounded_detail() -> None:
    call = CallFactory()
    heard: list[str] = []

    def note(sender: Any, call: CallSession, **kwargs: Any) -> None:
        heard.append(call.end_reason)

    call_ended.connect(note, dispatch_uid="test-note")
    ended_at = call.started_at + timedelta(seconds=12, milliseconds=345)
    try:
        ended = end_call(call.pk, "client_closed", "x" * 3000, ended_at=ended_at)
        again = end_call(call.pk, "server_shutdown", "later")  # a second end is a no-op
    finally:
        call_ended.disconnect(dispatch_uid="test-note")
    assert (ended.status, ended.end_reason, ended.duration_ms) == ("ended", "client_closed", 12345)
    assert ended.end_detail == "x" * 2000
    call.refresh_from_db()
    assert (again.end_reason, call.end_reason, call.ended_at) == (
        "client_closed",
        "client_closed",
        ended_at,
    )
    assert heard == ["client_closed"]  # told once


def test_an_end_dated_before_the_start_lasts_zero_not_a_negative_time() -> None:
    call = CallFactory()
    ended = end_call(call.pk, "server_lost", ended_at=call.started_at - timedelta(seconds=5))
    assert (ended.ended_at, ended.duration_ms) == (call.started_at, 0)


def test_a_failing_receiver_of_the_end_never_undoes_it(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("the broker is down")

    monkeypatch.setattr("calls.ledger.settle_call_task.delay", refuse)
    call_ended.connect(refuse, dispatch_uid="test-refuse")
    try:
        ended = end_call(CallFactory().pk, "client_closed")
    finally:
        call_ended.disconnect(dispatch_uid="test-refuse")
    assert CallSession.objects.get(pk=ended.pk).status == CallStatus.ENDED
