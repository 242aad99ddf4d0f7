"""The embeddable widget in real Chromium, on /demo/, against a real Daphne and the demo agent.

The caller's voice is Chromium's fake microphone playing speech synthesised in the test;
everything after it is real: consent, the widget's AudioWorklets, the token endpoint, the
realtime WebSocket, the local provider (VAD, Whisper, the scripted engine, Piper), playback
in the page, and the call stored in the database the way its consent allows: the consent
words and version the caller answered, the transcript, and the stereo recording in storage.
"""

from __future__ import annotations

import time
import wave
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import pytest
from django.db import connections

from agents.consent import consent_text_for
from agents.models import Agent
from agents.versions import save_agent
from calls.models import CallSession, Recording, TranscriptItem
from dashboard.management.commands.seed_demo import seed_demo
from tests.e2e.browser import (
    chromium,
    events,
    hooks,
    open_page,
    say,
    screenshot,
    wait_for,
    write_wav,
)
from tests.e2e.server import restartable_daphne
from tests.live import daphne_server
from tests.local.helpers import silence, spoken

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.timeout(240),
]

QUESTION = "When are you open?"
OPENING_HOURS = "noon to eleven"
T = TypeVar("T")


@dataclass
class DemoSite:
    base: str
    agent_id: str
    media: Path  # the server's MEDIA_ROOT: recordings land here

    @property
    def demo_url(self) -> str:
        return f"{self.base}/demo/"


@pytest.fixture
def demo_site(settings, tmp_path: Path) -> Iterator[DemoSite]:  # type: ignore[no-untyped-def]
    # KOE_LOCAL_WARM_UP=1: the server loads its speech models at start, as in production.
    # Every test mints from 127.0.0.1: on a shared Redis the per-address limit on minting
    # would count other suites' tokens too. The server and this test share a MEDIA_ROOT.
    media = tmp_path / "media"
    settings.MEDIA_ROOT = media
    with daphne_server(
        KOE_LOCAL_WARM_UP="1", KOE_WIDGET_TOKENS_PER_MINUTE="1000", MEDIA_ROOT=str(media)
    ) as base:
        # The demo's widget key must allow this server's origin (a free port each run).
        settings.KOE_SITE_URL = base
        demo = seed_demo()
        yield DemoSite(base=base, agent_id=demo["agent_id"], media=media)


def outside_the_browser(work: Callable[[], T]) -> T:
    """Run ORM work while the browser is open: Playwright's sync API keeps an event loop
    on this thread, beside which Django refuses synchronous queries; a worker thread has
    none (and its own connection, closed afterwards)."""

    def run() -> T:
        try:
            return work()
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(run).result()


def start_call(page: Page, *, accept: bool) -> None:
    page.get_by_role("button", name="Talk to us: start a voice call").click()
    # The demo agent offers recording: three choices.
    page.get_by_role("button", name="Yes, record and transcribe" if accept else "No thanks").click()


def caption(page: Page, role: str, words: str) -> dict[str, object] | None:
    return next(
        (
            entry
            for entry in hooks(page, "koe:caption")
            if entry["role"] == role and entry["final"] and words in str(entry["text"]).lower()
        ),
        None,
    )


def played_ms(page: Page, item_id: str) -> int:
    return max(
        (
            int(entry["playedMs"])
            for entry in hooks(page, "koe:playback")
            if entry["itemId"] == item_id
        ),
        default=0,
    )


def hang_up_and_check_release(page: Page, microphones: int = 1) -> None:
    """Hang up with the button; the microphone and the AudioContext must be released."""
    page.get_by_role("button", name="Hang up").click()
    wait_for(page, lambda p: hooks(p, "koe:state")[-1]["state"] == "ended", "the call to end")
    wait_for(
        page,
        lambda p: p.evaluate(
            "window.__streams.every(s => s.getTracks().every(t => t.readyState === 'ended'))"
            " && window.__contexts.every(c => c.state === 'closed')"
        ),
        "the microphone and audio to be released",
        timeout=5,
    )
    assert page.evaluate("window.__streams.length") == microphones


def ended_call(timeout: float = 15) -> CallSession:
    """The call, once the server has recorded its end. Call it after the browser has
    closed: Playwright's sync API keeps an event loop running, and the ORM refuses to run
    synchronous queries beside one."""
    deadline = time.monotonic() + timeout
    while True:
        call = CallSession.objects.filter(status="ended").first()
        if call is not None:
            return call
        assert time.monotonic() < deadline, "the call was never recorded as ended"
        time.sleep(0.1)


def ask_opening_hours(page: Page) -> str:
    """The caller's question is captioned; the agent's answer is captioned and played."""
    wait_for(page, lambda p: caption(p, "user", "open"), "the caller's words as a caption")
    answer = wait_for(
        page, lambda p: caption(p, "assistant", OPENING_HOURS), "the agent's answer as a caption"
    )
    item_id = str(answer["itemId"])
    # The answer is heard: its audio plays through the page (not just arrives).
    wait_for(page, lambda p: played_ms(p, item_id) >= 1500, "the answer's audio to play")
    widget = page.locator("koe-agent")
    # The caption shows what speech-to-text heard, which may differ from the script by a
    # word or a question mark: check the caption the widget reported is the one on screen.
    heard = caption(page, "user", "open")
    assert heard is not None
    assert widget.get_by_text(str(heard["text"]), exact=False).first.is_visible()
    assert widget.get_by_text(OPENING_HOURS, exact=False).is_visible()
    return item_id


def test_a_caller_who_consents_is_answered_aloud_and_the_transcript_is_kept(
    demo_site: DemoSite, tmp_path: Path
) -> None:
    quiet = write_wav(tmp_path / "quiet.wav", silence(1000))
    with chromium(microphone=quiet, loop=True) as browser:
        page = open_page(browser, demo_site.demo_url, mouth=True)
        start_call(page, accept=True)
        say(page, QUESTION)  # once the greeting has played, however long the start took
        ask_opening_hours(page)
        # The consent came before the microphone: the first state after it is connecting.
        states = [entry["state"] for entry in hooks(page, "koe:state")]
        assert states[:2] == ["consent", "connecting"]
        turns = hooks(page, "koe:turn")
        assert turns and all(0 < turn["latencyMs"] < 15000 for turn in turns)
        screenshot(page, "widget-consented-call")
        hang_up_and_check_release(page)

    call = ended_call()
    agent = Agent.objects.get(public_id=demo_site.agent_id)
    assert (call.channel, call.consent_scope, call.consent_method) == (
        "widget",
        "recording",  # the demo offers recording, and the caller chose it
        "widget_checkbox",
    )
    # The words and version the caller was shown are the ones the call keeps.
    shown = consent_text_for(agent)
    assert (call.consent_text, call.consent_version) == (shown.text, shown.version)
    assert shown.text == agent.consent_prompt
    # The call's audio is in storage: a complete, stereo (caller | agent) WAV.
    recording = Recording.objects.get(call=call)
    assert recording.status == "complete"
    assert recording.channels == 2
    name = str(recording.file.name)
    path = demo_site.media / name
    assert name.endswith(".wav") and path.is_file() and recording.file.storage.exists(name)
    with wave.open(str(path)) as wav:
        assert (wav.getnchannels(), wav.getsampwidth()) == (2, 2)
        assert wav.getnframes() / wav.getframerate() > 2  # the greeting and the answer at least
    assert path.stat().st_size == recording.size_bytes
    transcript = list(TranscriptItem.objects.filter(call=call).order_by("sequence"))
    said = " ".join(item.text.lower() for item in transcript if item.role == "user")
    heard = " ".join(item.text for item in transcript if item.role == "assistant")
    assert "open" in said
    assert OPENING_HOURS in heard


def test_a_caller_who_declines_is_still_answered_but_only_metadata_is_kept(
    demo_site: DemoSite, tmp_path: Path
) -> None:
    quiet = write_wav(tmp_path / "quiet.wav", silence(1000))
    with chromium(microphone=quiet, loop=True) as browser:
        page = open_page(browser, demo_site.demo_url, mouth=True)
        start_call(page, accept=False)
        say(page, QUESTION)
        ask_opening_hours(page)
        hang_up_and_check_release(page)

    call = ended_call()
    assert call.consent_scope == "none"
    assert not TranscriptItem.objects.filter(call=call).exists()
    # No audio either: no Recording row, and nothing written to storage at all.
    assert not Recording.objects.filter(call=call).exists()
    assert not [path for path in demo_site.media.rglob("*") if path.is_file()]
    assert call.transcript_text == ""
    assert call.duration_ms and call.duration_ms > 0
    assert call.turn_count >= 1


def test_a_caller_answering_an_outdated_consent_prompt_is_asked_again_in_the_new_words(
    demo_site: DemoSite, tmp_path: Path
) -> None:
    new_words = "We now also keep calls to train our staff. May we keep a transcript?"

    def change_the_prompt() -> None:
        agent = Agent.objects.get(public_id=demo_site.agent_id)
        agent.consent_prompt = new_words
        save_agent(agent, user=None)

    old_words = Agent.objects.get(public_id=demo_site.agent_id).consent_prompt
    quiet = write_wav(tmp_path / "quiet.wav", silence(30000))
    with chromium(microphone=quiet) as browser:
        page = open_page(browser, demo_site.demo_url)
        page.get_by_role("button", name="Talk to us: start a voice call").click()
        widget = page.locator("koe-agent")
        first_words = widget.locator(".consent-text").inner_text()
        # The business edits its prompt while the caller is reading the old one (the
        # page's config is cached for a minute: the widget must look again past the cache).
        outside_the_browser(change_the_prompt)
        page.get_by_role("button", name="Transcript only").click()

        widget.get_by_text(new_words).wait_for(timeout=15000)
        assert "wording of this question changed" in widget.locator(".notice").inner_text()
        page.get_by_role("button", name="Transcript only").click()
        wait_for(page, lambda p: caption(p, "assistant", "how can i help"), "the greeting")
        # The refused attempt had opened the microphone too, and released it.
        hang_up_and_check_release(page, microphones=2)

    call = ended_call()
    agent = Agent.objects.get(public_id=demo_site.agent_id)
    assert first_words == old_words
    assert (call.consent_scope, call.consent_text) == ("transcript", new_words)
    assert call.consent_version == consent_text_for(agent).version == 2
    assert CallSession.objects.count() == 1  # the refused answer opened no call
    assert TranscriptItem.objects.filter(call=call, role="assistant").exists()
    assert not Recording.objects.filter(call=call).exists()  # a transcript only


def test_speaking_over_the_agent_stops_its_voice_and_truncates_what_was_not_heard(
    demo_site: DemoSite, tmp_path: Path
) -> None:
    # The caller keeps asking (the file loops); the call starts muted and is unmuted while
    # the greeting plays, so the caller's voice lands on the agent's.
    voice = write_wav(tmp_path / "insisting.wav", spoken(QUESTION) + silence(400))
    with chromium(microphone=voice, loop=True) as browser:
        page = open_page(browser, demo_site.demo_url)
        page.evaluate("document.querySelector('koe-agent').setMuted(true)")
        start_call(page, accept=True)
        greeting = wait_for(
            page,
            lambda p: next(
                (
                    e
                    for e in hooks(p, "koe:playback")
                    if e["state"] == "playing" and e["playedMs"] >= 300
                ),
                None,
            ),
            "the greeting to start playing",
        )
        item_id = greeting["itemId"]
        page.get_by_role("button", name="Unmute").click()

        truncate = wait_for(
            page,
            lambda p: next(
                (
                    e
                    for e in events(p, "out", "conversation.item.truncate")
                    if e["item_id"] == item_id
                ),
                None,
            ),
            "a truncate of the greeting",
            timeout=20,
        )
        received_ms = (
            sum(
                e["bytes"]
                for e in events(page, "in", "response.output_audio.delta")
                if e["item_id"] == item_id
            )
            / 48
        )
        assert 300 <= truncate["audio_end_ms"] < received_ms  # cut short, at what was played
        assert truncate["content_index"] == 0
        interrupted = [
            e
            for e in hooks(page, "koe:playback")
            if e["itemId"] == item_id and e["state"] == "interrupted"
        ]
        assert [e["playedMs"] for e in interrupted] == [truncate["audio_end_ms"]]
        # The server took the truncation (the stored transcript keeps what was heard).
        wait_for(
            page,
            lambda p: [
                e for e in events(p, "in", "conversation.item.truncated") if e["item_id"] == item_id
            ],
            "the server to confirm the truncation",
            timeout=10,
        )
        # Playback stopped at once: the player reports "interrupted" only once it has dropped
        # its audio, and its messages arrive in order, so no progress of the greeting can
        # follow that report (checked after the server's round trip above, not a sleep).
        after = hooks(page, "koe:playback")
        index = after.index(interrupted[0])
        assert not [e for e in after[index + 1 :] if e["itemId"] == item_id]
        screenshot(page, "widget-barge-in")
        hang_up_and_check_release(page)


def test_a_blocked_microphone_says_so_and_the_caller_can_type_instead(
    demo_site: DemoSite,
) -> None:
    with chromium(microphone=None) as browser:
        page = open_page(browser, demo_site.demo_url)
        start_call(page, accept=True)

        alert = page.get_by_role("alert")
        alert.wait_for(timeout=15000)
        assert "microphone is blocked" in alert.inner_text()
        assert hooks(page, "koe:state")[-1]["code"] == "microphone_blocked"
        # Nothing was left open, and no call was started for a caller who cannot speak.
        assert page.evaluate("window.__contexts.every(c => c.state === 'closed')")
        assert not hooks(page, "koe:event")
        screenshot(page, "widget-microphone-blocked")

        page.get_by_role("button", name="Type instead").click()
        page.get_by_label("Type a message to the assistant").fill(QUESTION)
        page.get_by_role("button", name="Send").click()
        wait_for(page, lambda p: caption(p, "assistant", OPENING_HOURS), "a typed answer")
        hang_up_and_check_release(page, microphones=0)

    # One call: the typed one (the database is read once the browser's event loop is gone).
    assert ended_call().consent_scope == "recording"
    assert CallSession.objects.count() == 1


def test_a_dropped_connection_reconnects_with_a_new_token_and_says_so_on_a_phone(
    settings,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    quiet = write_wav(tmp_path / "quiet.wav", silence(60000))
    with restartable_daphne(KOE_WIDGET_TOKENS_PER_MINUTE="1000") as server:
        settings.KOE_SITE_URL = server.base
        seed_demo()
        with chromium(microphone=quiet) as browser:
            page = open_page(browser, f"{server.base}/demo/", width=390, height=844)
            start_call(page, accept=True)
            wait_for(page, lambda p: caption(p, "assistant", "how can i help"), "the greeting")
            # At a phone's width the panel stays on screen.
            box = page.locator("koe-agent").locator(".panel").bounding_box()
            assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390

            # The server dies mid-call (no close frame), then comes back on the same address.
            server.crash()
            wait_for(
                page,
                lambda p: [e for e in hooks(p, "koe:state") if e["state"] == "reconnecting"],
                "the widget to say it is reconnecting",
            )
            widget = page.locator("koe-agent")
            assert widget.get_by_text("Connection lost. Reconnecting…").is_visible()
            server.start()

            widget.get_by_text("Reconnected.").wait_for(timeout=30000)
            # A new session on a fresh single-use token; the microphone stayed open.
            wait_for(page, lambda p: len(events(p, "in", "session.created")) == 2, "a new session")
            assert page.evaluate("window.__streams[0].getTracks()[0].readyState") == "live"
            screenshot(page, "widget-reconnected-phone")
            hang_up_and_check_release(page)

    # The call cut off, and the one that took over. On a loaded machine the first connect
    # to the restarted server (still loading) may time out and be retried: one more row,
    # ended, never a session the page saw (it saw exactly two, above).
    calls = list(CallSession.objects.values_list("status", "end_reason", "started_at"))
    assert 2 <= len(calls) <= 3, calls
