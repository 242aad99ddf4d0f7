"""The widget in real Chromium against a scripted server (tests/e2e/fake_koe.py): barge-in
races, the consent choices it offers, and how often it reconnects to a failing server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.e2e.browser import chromium, hooks, wait_for, write_wav
from tests.e2e.fake_koe import FakeKoe, config, open_scripted_page, tenant_site
from tests.local.helpers import silence

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Browser]:
    # A silent microphone: the caller's speech is the scripted server's speech_started.
    quiet = write_wav(tmp_path / "quiet.wav", silence(1000))
    with chromium(microphone=quiet, loop=True) as browser:
        yield browser


@pytest.fixture
def site() -> Iterator[str]:
    with tenant_site() as origin:
        yield origin


def state(page: Page) -> dict[str, Any]:
    return hooks(page, "koe:state")[-1]


def states(page: Page, name: str) -> list[dict[str, Any]]:
    return [entry for entry in hooks(page, "koe:state") if entry["state"] == name]


def playback(page: Page, item_id: str, kind: str) -> list[dict[str, Any]]:
    return [
        entry
        for entry in hooks(page, "koe:playback")
        if entry["itemId"] == item_id and entry["state"] == kind
    ]


def plays_after(page: Page, koe: FakeKoe) -> None:
    """A sentinel answer, waited for until it plays: the player plays what it was given
    in order, so anything queued before it would have played (or been cut) by then."""
    koe.answer_begins("resp_sentinel", "item_sentinel", 400)
    koe.response_finished("resp_sentinel", "item_sentinel")
    wait_for(page, lambda p: playback(p, "item_sentinel", "playing"), "the sentinel answer")


def shadow_focus(page: Page) -> str:
    return str(
        page.evaluate("document.querySelector('koe-agent').shadowRoot.activeElement?.textContent")
    )


def connected_call(browser: Browser, site: str) -> tuple[FakeKoe, Page]:
    """A page on the scripted server with a call connected and listening."""
    koe = FakeKoe(site)
    page = open_scripted_page(browser, koe)
    start_connected_call(page, koe)
    return koe, page


def start_connected_call(
    page: Page, koe: FakeKoe, choice: str = "Yes, record and transcribe"
) -> None:
    page.get_by_role("button", name="Talk to us: start a voice call").click()
    page.get_by_role("button", name=choice).click()
    wait_for(page, lambda p: states(p, "listening"), "the call to connect")
    assert len(koe.sockets) == 1


# --- barge-in ------------------------------------------------------------------------------
def test_a_barge_in_while_the_next_answer_buffers_cuts_that_answer_not_the_finished_one(
    browser: Browser, site: str
) -> None:
    koe, page = connected_call(browser, site)
    # The first answer plays to its end.
    koe.answer_begins("resp_1", "item_first", 400)
    koe.response_finished("resp_1", "item_first")
    wait_for(page, lambda p: playback(p, "item_first", "drained"), "the first answer to finish")
    # The next answer has begun to arrive (40 ms: less than the player's start threshold)
    # when the caller speaks; the rest of it arrives afterwards.
    koe.answer_begins("resp_2", "item_next", 40)
    koe.speech_started()
    wait_for(page, lambda p: playback(p, "item_next", "interrupted"), "the next answer cut off")
    koe.audio("resp_2", "item_next", 600)
    koe.response_finished("resp_2", "item_next")
    plays_after(page, koe)

    # Nothing of the next answer is played, and nothing is truncated: the finished answer
    # was heard whole, the cut-off one not at all.
    assert not playback(page, "item_next", "playing")
    assert [entry["playedMs"] for entry in playback(page, "item_next", "interrupted")] == [0]
    assert not playback(page, "item_first", "interrupted")
    assert koe.sent_by_widget("conversation.item.truncate") == []


def test_a_barge_in_before_the_first_answer_plays_drops_all_of_it(
    browser: Browser, site: str
) -> None:
    koe, page = connected_call(browser, site)
    koe.answer_begins("resp_1", "item_answer", 40)
    koe.speech_started()
    wait_for(page, lambda p: playback(p, "item_answer", "interrupted"), "the answer cut off")
    koe.audio("resp_1", "item_answer", 800)
    # A second item of the same response (announced only now) is the same answer: dropped.
    koe.item_added("resp_1", "item_more")
    koe.audio("resp_1", "item_more", 400)
    koe.response_finished("resp_1", "item_more")
    plays_after(page, koe)

    played = [entry for entry in hooks(page, "koe:playback") if entry["state"] == "playing"]
    assert {entry["itemId"] for entry in played} == {"item_sentinel"}
    assert koe.sent_by_widget("conversation.item.truncate") == []


def test_a_barge_in_mid_answer_truncates_that_answer_at_what_was_played(
    browser: Browser, site: str
) -> None:
    koe, page = connected_call(browser, site)
    koe.answer_begins("resp_1", "item_answer", 3000)
    wait_for(
        page,
        lambda p: [e for e in playback(p, "item_answer", "playing") if e["playedMs"] >= 400],
        "the answer to be playing",
    )
    koe.speech_started()
    truncate = wait_for(
        page, lambda p: koe.sent_by_widget("conversation.item.truncate"), "a truncate"
    )[0]
    koe.audio("resp_1", "item_answer", 1000)  # arrives after the barge-in: dropped
    koe.response_finished("resp_1", "item_answer")
    plays_after(page, koe)

    assert (truncate["item_id"], truncate["content_index"]) == ("item_answer", 0)
    assert 300 <= truncate["audio_end_ms"] < 3000
    interrupted = playback(page, "item_answer", "interrupted")
    assert [entry["playedMs"] for entry in interrupted] == [truncate["audio_end_ms"]]
    entries = hooks(page, "koe:playback")
    later = entries[entries.index(interrupted[0]) + 1 :]
    assert not [entry for entry in later if entry["itemId"] == "item_answer"]
    assert len(koe.sent_by_widget("conversation.item.truncate")) == 1


# --- consent choices -----------------------------------------------------------------------
def test_with_recording_offered_the_caller_can_choose_a_transcript_only_by_keyboard(
    browser: Browser, site: str
) -> None:
    koe = FakeKoe(
        site, config=config(consent_text="Exactly these words, version 3.", consent_version=3)
    )
    page = open_scripted_page(browser, koe)
    page.get_by_role("button", name="Talk to us: start a voice call").click()

    widget = page.locator("koe-agent")
    choices = widget.get_by_role("group", name="Exactly these words, version 3.")
    assert [button.inner_text() for button in choices.get_by_role("button").all()] == [
        "Yes, record and transcribe",
        "Transcript only",
        "No thanks",
    ]
    assert widget.locator(".consent-text").inner_text() == "Exactly these words, version 3."
    # The first choice has the focus; Tab moves to the next, Enter chooses it.
    assert shadow_focus(page) == "Yes, record and transcribe"
    page.keyboard.press("Tab")
    assert shadow_focus(page) == "Transcript only"
    page.keyboard.press("Enter")

    wait_for(page, lambda p: koe.token_requests, "the token request")
    assert koe.token_requests == [
        {"key": "pk_test", "agent": "agt_test", "consent": "transcript", "consent_version": 3}
    ]


@pytest.mark.parametrize(
    ("choice", "scope"),
    [("Yes, record and transcribe", "recording"), ("No thanks", "none")],
)
def test_each_choice_asks_for_its_scope(
    browser: Browser, site: str, choice: str, scope: str
) -> None:
    koe = FakeKoe(site)
    page = open_scripted_page(browser, koe)
    page.get_by_role("button", name="Talk to us: start a voice call").click()
    page.get_by_role("button", name=choice).click()
    wait_for(page, lambda p: koe.token_requests, "the token request")
    assert koe.token_requests[0]["consent"] == scope


def test_without_recording_offered_the_choice_is_yes_or_no(browser: Browser, site: str) -> None:
    koe = FakeKoe(site, config=config(recording_offered=False, consent_required=True))
    page = open_scripted_page(browser, koe)
    page.get_by_role("button", name="Talk to us: start a voice call").click()
    widget = page.locator("koe-agent")
    visible = [b.inner_text() for b in widget.locator(".consent button").all() if b.is_visible()]
    assert visible == ["Yes", "No"]

    # An agent that requires consent explains itself, and no token is asked for.
    widget.get_by_role("button", name="No", exact=True).click()
    assert "needs your consent" in widget.locator(".notice").inner_text()
    widget.get_by_role("button", name="Yes", exact=True).press("Space")
    wait_for(page, lambda p: koe.token_requests, "the token request")
    # The one token request is the "Yes": the refusal asked for none (it came first).
    assert [request["consent"] for request in koe.token_requests] == ["transcript"]


# --- reconnects ----------------------------------------------------------------------------
def test_a_server_that_accepts_then_drops_is_retried_a_few_times_then_the_call_ends(
    browser: Browser, site: str
) -> None:
    koe = FakeKoe(site)
    page = open_scripted_page(browser, koe, fake_clock=True)
    start_connected_call(page, koe)
    # Every connection is accepted (and answered: session.created) and dropped at once.
    for dropped in range(1, 6):
        wait_for(page, lambda p, n=dropped: len(states(p, "listening")) >= n, "a connection")
        koe.sockets[-1].close(code=1012, reason="restarting")
        if dropped < 5:
            wait_for(page, lambda p, n=dropped: len(states(p, "reconnecting")) >= n, "a retry")
            page.clock.run_for(10_000)  # past any retry delay
            wait_for(page, lambda p, n=dropped: len(koe.sockets) > n, f"reconnect {dropped}")
    wait_for(page, lambda p: state(p)["state"] == "error", "the call to give up")

    assert state(page)["code"] == "connection_unstable"
    assert "kept dropping" in page.get_by_role("alert").inner_text()
    page.clock.run_for(120_000)  # any retry still pending would have fired
    koe.sentinel_request(page)
    # The first connection and four reconnects: five tokens, five (billed) sessions, no more.
    assert len(koe.token_requests) == len(koe.sockets) == 5


def test_a_call_reconnects_at_most_eight_times_however_long_each_connection_lasted(
    browser: Browser, site: str
) -> None:
    koe = FakeKoe(site)
    page = open_scripted_page(browser, koe, fake_clock=True)
    start_connected_call(page, koe)
    for connection in range(1, 10):
        wait_for(page, lambda p, n=connection: len(states(p, "listening")) >= n, "a connection")
        # Up long enough to count as working: the retry series starts over each time.
        page.clock.run_for(11_000)
        koe.sockets[-1].close(code=1012, reason="restarting")
        if connection == 9:
            break
        wait_for(page, lambda p, n=connection: len(states(p, "reconnecting")) >= n, "reconnecting")
        page.clock.run_for(1_000)  # the first delay of a fresh series (500 ms, jittered)

    wait_for(page, lambda p: state(p)["state"] == "error", "the call to give up")
    assert state(page)["code"] == "connection_unstable"
    page.clock.run_for(120_000)  # any retry still pending would have fired
    koe.sentinel_request(page)
    assert len(koe.sockets) == len(koe.token_requests) == 9
