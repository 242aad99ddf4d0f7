"""The dashboard's test console in real Chromium, against a real Daphne and the demo agent.

A member logs in through the login form, opens the console of the demo's "Host" (the
built-in local provider, with a mock ``book_table`` tool) and asks for a table aloud through
Chromium's fake microphone. Everything the console promises is then read off the page: the
live panel of Realtime events both ways (audio runs folded into counted rows, any event's
JSON one click away), the latency of the turn, and the tool call with its arguments and
result; the call is stored as a real call placed by that member. A consent prompt edited
after the page was shown is asked again in its new words, and an auditor, who may not
place calls, is refused the page.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pytest
from django.db import connection
from django.urls import reverse

from agents.models import Agent
from calls.models import CallSession
from dashboard.management.commands.seed_demo import seed_demo
from tenancy.models import Tenant
from tenancy.roles import Role
from tests.e2e.browser import (
    chromium,
    hooks,
    open_page,
    say,
    screenshot,
    wait_for,
    write_wav,
)
from tests.factories import PASSWORD, MembershipFactory, UserFactory
from tests.live import daphne_server
from tests.local.helpers import show_tool_calls, silence

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Locator, Page

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.timeout(240),
]

BOOKING = "I'd like a table for two at seven."
AUDITOR_EMAIL = "auditor@demo.koe.local"
AUDIO_EVENTS = ("input_audio_buffer.append", "response.output_audio.delta")
NEW_PROMPT = "Calls to the bistro are recorded for training. May we keep this one?"
T = TypeVar("T")


@dataclass
class ConsoleSite:
    base: str
    agent_id: str
    console_path: str
    owner_email: str
    owner_password: str


@pytest.fixture
def console_site(settings) -> Iterator[ConsoleSite]:  # type: ignore[no-untyped-def]
    # Passwords are checked by the Daphne process, which knows only the default hashers
    # (not the fast one the test settings use).
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.PBKDF2PasswordHasher"]
    with daphne_server(KOE_LOCAL_WARM_UP="1") as base:
        settings.KOE_SITE_URL = base
        demo = seed_demo()
        show_tool_calls(demo["agent_id"], "hosted")  # the console lists the tool's events
        tenant = Tenant.objects.get(public_id=demo["tenant_id"])
        MembershipFactory(
            user=UserFactory(username=AUDITOR_EMAIL, email=AUDITOR_EMAIL),
            tenant=tenant,
            role=Role.AUDITOR,
        )
        yield ConsoleSite(
            base=base,
            agent_id=demo["agent_id"],
            console_path=reverse("dashboard:agent_console", args=[demo["agent_id"]]),
            owner_email=demo["owner_email"],
            owner_password=demo["owner_password"],
        )


def log_in(
    browser: Browser, site: ConsoleSite, email: str, password: str, *, mouth: bool = False
) -> Page:
    """Log in through the dashboard's form, asking to land on the console afterwards."""
    # Tall enough for the call, the turns, the tool calls and the events in one screenshot.
    page = open_page(
        browser,
        f"{site.base}{reverse('dashboard:login')}?next={site.console_path}",
        height=1400,
        mouth=mouth,
    )
    page.get_by_label("E-mail").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{site.base}{site.console_path}")
    return page


def beside_the_browser(work: Callable[[], T]) -> T:
    """Run database work while a browser is open: Playwright's sync API keeps an event loop
    running in this thread, beside which Django refuses synchronous queries."""

    def run() -> T:
        try:
            return work()
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(run).result()


def ended_call(timeout: float = 15) -> CallSession:
    """The console's call once the server has recorded its end (read after the browser
    has closed, for the same reason as above)."""
    deadline = time.monotonic() + timeout
    while True:
        call = CallSession.objects.filter(status="ended").first()
        if call is not None:
            return call
        assert time.monotonic() < deadline, "the call was never recorded as ended"
        time.sleep(0.1)


def event_log(page: Page) -> Locator:
    return page.get_by_role("list", name="Realtime events")


@dataclass
class Row:
    """One row of the events panel as the page shows it."""

    sender: str  # the direction column as a screen reader hears it: "Koe" or "the widget"
    type: str
    note: str  # an item id or error code; on a folded row the count and audio length
    is_folded: bool
    is_expandable: bool

    @property
    def count(self) -> int:
        match = re.fullmatch(r"\u00d7 (\d+) \((\d+) ms of audio\)", self.note)
        assert self.is_folded and match, f"{self.type} is not a folded row: {self.note!r}"
        return int(match.group(1))


# One snapshot of the panel and of what the widget reported, so the two are comparable.
SNAPSHOT = """() => ({
  rows: [...document.querySelectorAll("#console-events > li")].map((row) => ({
    sender: row.querySelector(".direction").textContent.replace(/^.*sent by /, ""),
    type: row.querySelector(".type").textContent,
    note: row.querySelector(".muted").textContent,
    is_folded: !row.querySelector("details"),
    is_expandable: !!row.querySelector("details > pre"),
  })),
  reported: window.__koe.filter((entry) => entry.name === "koe:event")
    .map((entry) => [entry.direction, entry.event.type]),
})"""


def panel(page: Page) -> tuple[list[Row], list[tuple[str, str]]]:
    """The panel's rows, and the (direction, type) of every event the widget reported."""
    snapshot = page.evaluate(SNAPSHOT)
    return [Row(**row) for row in snapshot["rows"]], [tuple(pair) for pair in snapshot["reported"]]


def tool_row(page: Page, name: str) -> Locator:
    return page.get_by_role("list", name="Tool calls").get_by_role("listitem").filter(has_text=name)


def test_a_member_books_a_table_in_the_console_and_sees_the_events_latency_and_tool_call(
    console_site: ConsoleSite, tmp_path: Path
) -> None:
    quiet = write_wav(tmp_path / "quiet.wav", silence(1000))
    with chromium(microphone=quiet, loop=True) as browser:
        page = log_in(
            browser, console_site, console_site.owner_email, console_site.owner_password,
            mouth=True,
        )  # fmt: skip
        assert page.get_by_role("heading", name="Test console: Host").is_visible()
        consent_shown = page.locator("koe-agent .consent-text").inner_text()
        assert consent_shown
        page.get_by_role("button", name="Yes, record and transcribe").click()
        # The member speaks once the greeting has played (had it not, barge-in would cut it).
        say(page, BOOKING)

        # The tool call appears as it happens, then its result once the platform ran it.
        booking = tool_row(page, "book_table")
        booking.wait_for(timeout=45000)
        booking.locator(".tool-output", has_text="booked").wait_for(timeout=30000)
        arguments = json.loads(booking.locator(".tool-arguments").inner_text())
        assert arguments == {"party_size": 2, "time": "19:00"}
        result = booking.locator(".tool-output").inner_text()
        assert result.startswith("→ ")
        assert json.loads(result.removeprefix("→ ")) == {
            "ok": True,
            "message": "Your table for 2 at 19:00 is booked. See you then!",
        }

        # The spoken confirmation is played: the turn's latency is shown.
        turns = page.get_by_role("list", name="Latency per turn").get_by_role("listitem")
        turns.first.wait_for(timeout=30000)
        assert page.locator("#console-turns-empty").is_hidden()
        first_turn = re.fullmatch(r"(\d+) ms", turns.first.inner_text())
        assert first_turn and 0 < int(first_turn.group(1)) < 15000, turns.first.inner_text()

        # An event's JSON opens on a click: the tool call as Koe shows it (the agent's tools
        # are run by Koe, so they come as hosted tool calls, which clients do not run).
        row = (
            event_log(page)
            .get_by_role("listitem")
            .filter(has=page.locator(".type", has_text="response.mcp_call_arguments.done"))
        )
        json_view = row.locator("pre")
        assert json_view.is_hidden()
        row.locator("summary").click()
        json_view.wait_for()
        assert json_view.inner_text(), "the JSON is written before the row opens, not after"
        event: dict[str, Any] = json.loads(json_view.inner_text())
        assert event["type"] == "response.mcp_call_arguments.done"
        assert json.loads(event["arguments"]) == arguments
        assert re.fullmatch(r"\+\d+\.\d{3}s", row.locator(".time").inner_text())

        screenshot(page, "console-booking")
        # Once the call has ended the panel stops moving, and can be compared with what the
        # widget reported (the microphone sends audio all through a live call).
        page.get_by_role("button", name="Hang up").click()
        wait_for(page, lambda p: hooks(p, "koe:state")[-1]["state"] == "ended", "the call to end")

        # Every turn the widget measured is listed, as it measured it.
        shown = [int(text.removesuffix(" ms")) for text in turns.all_inner_texts()]
        assert shown == [turn["latencyMs"] for turn in hooks(page, "koe:turn")]

        # Events both ways, by type, in the order they happened.
        rows, reported = panel(page)
        from_koe = [row.type for row in rows if row.sender == "Koe"]
        for expected in (
            "session.created",
            "input_audio_buffer.speech_started",
            "input_audio_buffer.speech_stopped",
            "response.mcp_call_arguments.done",
            "response.mcp_call.completed",
            "response.done",
        ):
            assert expected in from_koe, f"{expected} is not listed: {from_koe}"
        assert from_koe[0] == "session.created"
        assert from_koe.index("input_audio_buffer.speech_started") < from_koe.index(
            "response.mcp_call_arguments.done"
        )
        assert {row.type for row in rows if row.sender == "the widget"} >= {
            "input_audio_buffer.append"
        }
        # Every other event has a row of its own, with its JSON behind it.
        listed = [(row.sender, row.type) for row in rows if not row.is_folded]
        senders = {"in": "Koe", "out": "the widget"}
        assert listed == [
            (senders[direction], event_type)
            for direction, event_type in reported
            if event_type not in AUDIO_EVENTS
        ]
        assert all(row.is_expandable for row in rows if not row.is_folded)

        # Audio is folded: runs of chunks are counted rows, far fewer than the chunks, and
        # together they count every chunk the widget sent or received.
        for direction, event_type in (
            ("out", "input_audio_buffer.append"),
            ("in", "response.output_audio.delta"),
        ):
            folded = [row for row in rows if row.type == event_type]
            assert folded and all(row.is_folded for row in folded)
            assert all(row.sender == senders[direction] for row in folded)
            chunks = reported.count((direction, event_type))
            assert sum(row.count for row in folded) == chunks
            assert len(folded) < chunks / 2, (event_type, len(folded), chunks)

    # A real call, placed by the member, recorded with the consent given in the words shown.
    call = ended_call()
    assert (call.channel, call.end_user_ref) == ("widget", f"console:{console_site.owner_email}")
    assert (call.consent_scope, call.consent_text) == ("recording", consent_shown)


def test_a_prompt_edited_after_the_page_was_shown_is_asked_again_in_its_new_words(
    console_site: ConsoleSite, tmp_path: Path
) -> None:
    quiet = write_wav(tmp_path / "quiet.wav", silence(30000))
    with chromium(microphone=quiet) as browser:
        page = log_in(browser, console_site, console_site.owner_email, console_site.owner_password)
        widget = page.locator("koe-agent")
        old_prompt = widget.locator(".consent-text").inner_text()
        # Someone edits the agent's consent prompt while the console is open.
        beside_the_browser(
            lambda: Agent.objects.filter(public_id=console_site.agent_id).update(
                consent_prompt=NEW_PROMPT
            )
        )
        widget.get_by_role("button", name="Yes, record and transcribe").click()

        # The answer was to words that are no longer the agent's: no call, ask again.
        alert = widget.get_by_role("alert")
        alert.wait_for(timeout=15000)
        assert "wording of this question changed" in alert.inner_text()
        assert not hooks(page, "koe:event")
        widget.get_by_role("button", name="Try again").click()
        assert widget.locator(".consent-text").inner_text() == NEW_PROMPT != old_prompt
        widget.get_by_role("button", name="Yes, record and transcribe").click()
        wait_for(
            page,
            lambda p: [e for e in hooks(p, "koe:event") if e["event"]["type"] == "session.created"],
            "the call to start",
        )
        page.get_by_role("button", name="Hang up").click()
        wait_for(page, lambda p: hooks(p, "koe:state")[-1]["state"] == "ended", "the call to end")

    call = ended_call()
    assert (call.consent_scope, call.consent_text) == ("recording", NEW_PROMPT)
    assert CallSession.objects.count() == 1


def test_an_auditor_is_refused_the_console(console_site: ConsoleSite) -> None:
    with chromium(microphone=None) as browser:
        page = log_in(browser, console_site, AUDITOR_EMAIL, PASSWORD)
        # The login lands on the console, which answers 403; asking again answers the same.
        response = page.goto(f"{console_site.base}{console_site.console_path}")
        assert response is not None and response.status == 403
        assert page.locator("koe-agent").count() == 0
