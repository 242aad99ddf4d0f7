"""The widget over WebRTC in real Chromium: its default transport. The caller's voice goes
as an Opus track, the agent's plays from the peer's track, the events cross the data
channel; when WebRTC cannot connect, the same call goes over the WebSocket."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from calls.models import TranscriptItem
from dashboard.management.commands.seed_demo import seed_demo
from tests.e2e.browser import chromium, events, hooks, open_page, say, wait_for, write_wav
from tests.e2e.server import restartable_daphne
from tests.e2e.test_widget_call import (
    OPENING_HOURS,
    QUESTION,
    DemoSite,
    caption,
    ended_call,
    hang_up_and_check_release,
    start_call,
)
from tests.local.helpers import silence

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.timeout(240),
]

BOOKING = "I'd like a table for two at seven."
BOOKED = "is booked"


def transports(page: Page) -> list[tuple[str, bool]]:
    return [(entry["transport"], entry["fallback"]) for entry in hooks(page, "koe:transport")]


def samples_heard(page: Page) -> int:
    """Audio samples the page's peer connection received and decoded (what it played)."""
    return int(
        page.evaluate(
            """async () => {
              let total = 0;
              for (const peer of window.__peers) {
                (await peer.getStats()).forEach((report) => {
                  if (report.type === "inbound-rtp" && report.kind === "audio") {
                    total += report.totalSamplesReceived || 0;
                  }
                });
              }
              return total;
            }"""
        )
    )


def test_the_widget_books_a_table_over_webrtc(demo_site: DemoSite, tmp_path: Path) -> None:
    quiet = write_wav(tmp_path / "quiet.wav", silence(1000))
    with chromium(microphone=quiet, loop=True) as browser:
        page = open_page(browser, demo_site.demo_url, mouth=True, transport="")
        start_call(page, accept=True)
        wait_for(page, lambda p: transports(p), "the call to connect")
        assert transports(page) == [("webrtc", False)]
        say(page, BOOKING)
        wait_for(page, lambda p: caption(p, "assistant", BOOKED), "the booking's confirmation")
        wait_for(
            page,
            lambda p: any(e["state"] == "drained" for e in hooks(p, "koe:playback")[1:]),
            "the confirmation to play out",
        )
        # Heard: the browser decoded seconds of the agent's voice from its track.
        assert samples_heard(page) > 48000 * 2
        states = [entry["state"] for entry in hooks(page, "koe:state")]
        assert "speaking" in states
        # The audio never crossed the data channel: it went as tracks, both ways.
        assert not events(page, "out", "input_audio_buffer.append")
        assert not events(page, "in", "response.output_audio.delta")
        assert events(page, "in", "output_audio_buffer.started")
        hang_up_and_check_release(page)
        wait_for(
            page,
            lambda p: p.evaluate("window.__peers.every(p => p.connectionState === 'closed')"),
            "the peer connection to close",
        )

    call = ended_call()
    assert call.media_quality["caller_packets_received"] > 100
    said = " ".join(
        item.text.lower() for item in TranscriptItem.objects.filter(call=call, role="user")
    )
    assert "table for" in said
    heard = " ".join(
        item.text for item in TranscriptItem.objects.filter(call=call, role="assistant")
    )
    assert BOOKED in heard


def test_when_webrtc_cannot_connect_the_widget_calls_over_the_websocket(
    demo_site: DemoSite, tmp_path: Path
) -> None:
    quiet = write_wav(tmp_path / "quiet.wav", silence(1000))
    with chromium(microphone=quiet, loop=True) as browser:
        page = open_page(browser, demo_site.demo_url, mouth=True, transport="")
        # The network in between drops WebRTC's offer (a proxy, a firewall).
        page.route("**/v1/realtime/calls", lambda route: route.abort("connectionfailed"))
        start_call(page, accept=True)
        wait_for(page, lambda p: transports(p), "the call to connect")
        assert transports(page) == [("websocket", True)]
        say(page, BOOKING)
        wait_for(page, lambda p: caption(p, "assistant", BOOKED), "the booking's confirmation")
        assert events(page, "out", "input_audio_buffer.append")  # the WebSocket's audio
        hang_up_and_check_release(page)

    call = ended_call()
    assert call.media_quality == {}  # not a WebRTC call


def test_a_caller_without_a_microphone_types_over_webrtc_and_hears_the_answer(
    demo_site: DemoSite,
) -> None:
    """No microphone: the peer connection only receives audio; the typed question crosses
    the data channel and the agent's answer is heard on the track."""
    with chromium(microphone=None) as browser:
        page = open_page(browser, demo_site.demo_url, transport="")
        start_call(page, accept=True)
        page.get_by_role("alert").wait_for(timeout=15000)  # the microphone is blocked
        page.get_by_role("button", name="Type instead").click()
        wait_for(page, lambda p: transports(p), "the call to connect")
        assert transports(page) == [("webrtc", False)]
        page.get_by_label("Type a message to the assistant").fill(QUESTION)
        page.get_by_role("button", name="Send").click()
        wait_for(page, lambda p: caption(p, "assistant", OPENING_HOURS), "a typed answer")
        wait_for(page, lambda p: samples_heard(p) > 48000, "the answer to be heard")
        assert events(page, "out", "conversation.item.create")
        hang_up_and_check_release(page, microphones=0)


def test_a_webrtc_call_cut_by_a_server_restart_reconnects_over_webrtc(
    settings,  # type: ignore[no-untyped-def]
    tmp_path: Path,
) -> None:
    """A deploy restarts the server: the call is ended as server_shutdown, the widget
    reconnects (a new token, a new peer connection) and the microphone stays open."""
    quiet = write_wav(tmp_path / "quiet.wav", silence(60000))
    with restartable_daphne(KOE_WIDGET_TOKENS_PER_MINUTE="1000") as server:
        settings.KOE_SITE_URL = server.base
        seed_demo()
        with chromium(microphone=quiet) as browser:
            page = open_page(browser, f"{server.base}/demo/", transport="")
            start_call(page, accept=True)
            wait_for(page, lambda p: caption(p, "assistant", "how can i help"), "the greeting")
            assert transports(page) == [("webrtc", False)]

            assert server.terminate() == 0  # SIGTERM: live calls end as server_shutdown
            wait_for(
                page,
                lambda p: [e for e in hooks(p, "koe:state") if e["state"] == "reconnecting"],
                "the widget to say it is reconnecting",
            )
            server.start()
            widget = page.locator("koe-agent")
            widget.get_by_text("Reconnected.").wait_for(timeout=30000)
            assert transports(page) == [("webrtc", False), ("webrtc", False)]
            wait_for(page, lambda p: len(events(p, "in", "session.created")) == 2, "a new session")
            assert page.evaluate("window.__streams[0].getTracks()[0].readyState") == "live"
            hang_up_and_check_release(page)
