"""The widget in real Chromium against a scripted Koe: its API requests and its realtime
WebSocket are answered by the test (Playwright routes).

Races a real server produces only by chance (a barge-in while the next answer is still
buffering, a server that accepts and then drops) are played here event by event. The page
and the widget's own files (dashboard/static/koe, unchanged) come from a small static file
server on loopback: Chromium fetches AudioWorklet modules outside Playwright's routes.
Nothing touches the database.
"""

from __future__ import annotations

import base64
import json
import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from tests.e2e.browser import PROBE, TRANSPORT
from tests.live import ROOT

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page, Route, WebSocketRoute

STATIC = ROOT / "dashboard" / "static" / "koe"
PROTOCOL_RATE = 24000
PAGE = b"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Shop</title></head>
<body><h1>A tenant's page</h1>
<script src="/static/koe/widget.js" data-key="pk_test" async></script>
</body></html>"""


class _SiteHandler(BaseHTTPRequestHandler):
    """The tenant's page at /site/ and the widget's files at /static/koe/<name>."""

    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        name = path.removeprefix("/static/koe/")
        if path == "/site/":
            body, kind = PAGE, "text/html; charset=utf-8"
        elif path.startswith("/static/koe/") and "/" not in name and (STATIC / name).is_file():
            body, kind = (STATIC / name).read_bytes(), "text/javascript"
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet


@contextmanager
def tenant_site() -> Iterator[str]:
    """Serve the page and the widget on a free loopback port (a secure context, which
    AudioWorklet needs); yields the origin."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SiteHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def config(**overrides: Any) -> dict[str, Any]:
    """What GET /v1/widget/config answers (see agents.realtime.api.widget_settings)."""
    return {
        "agent": "agt_test",
        "name": "Front desk",
        "label": "Talk to us",
        "color": "#0b7285",
        "position": "bottom-right",
        "consent_text": "May we keep this call to improve our service?",
        "consent_version": 3,
        "recording_offered": True,
        "consent_required": False,
        **overrides,
    }


def tone_base64(milliseconds: int, value: int = 6000) -> str:
    """PCM16 at 24 kHz, a square-ish tone (audible, so a player that plays it plays it)."""
    samples = PROTOCOL_RATE * milliseconds // 1000
    pcm = b"".join(
        (value if math.sin(2 * math.pi * 440 * n / PROTOCOL_RATE) >= 0 else -value).to_bytes(
            2, "little", signed=True
        )
        for n in range(samples)
    )
    return base64.b64encode(pcm).decode()


@dataclass
class FakeKoe:
    """The scripted server: its answers, and everything the widget sent it."""

    origin: str
    config: dict[str, Any] = field(default_factory=config)
    token_requests: list[dict[str, Any]] = field(default_factory=list)
    sockets: list[WebSocketRoute] = field(default_factory=list)
    received: list[dict[str, Any]] = field(default_factory=list)  # client events, all sockets
    requests: list[str] = field(default_factory=list)  # every API path asked, in order

    def install(self, page: Page) -> None:
        page.route(f"{self.origin}/v1/**", self._api)
        page.route_web_socket(lambda url: "/v1/realtime" in url, self._socket)

    def _api(self, route: Route) -> None:
        request = route.request
        path = request.url.removeprefix(self.origin).split("?")[0]
        self.requests.append(path)
        if path == "/v1/sentinel":
            route.fulfill(status=204)
        elif path == "/v1/widget/config":
            route.fulfill(status=200, content_type="application/json", json=self.config)
        elif path == "/v1/widget/client_secrets":
            self.token_requests.append(json.loads(request.post_data or "{}"))
            token = {
                "value": f"ek_test{len(self.token_requests)}",
                "expires_at": 0,
                "session": {"type": "realtime", "model": "agt_test"},
            }
            route.fulfill(status=200, content_type="application/json", json=token)
        else:
            route.fulfill(status=404, body="not scripted")

    def _socket(self, socket: WebSocketRoute) -> None:
        # Not connected to any server: the page's socket opens at once and hears only us.
        socket.on_message(lambda message: self.received.append(json.loads(message)))
        self.sockets.append(socket)
        self.send({"type": "session.created", "event_id": "ev_0", "session": {"type": "realtime"}})

    # --- what the server says -------------------------------------------------------------
    def send(self, event: dict[str, Any], socket: WebSocketRoute | None = None) -> None:
        (socket or self.sockets[-1]).send(json.dumps(event))

    def response_created(self, response_id: str) -> None:
        self.send(
            {
                "type": "response.created",
                "response": {
                    "id": response_id,
                    "object": "realtime.response",
                    "status": "in_progress",
                },
            }
        )

    def item_added(self, response_id: str, item_id: str) -> None:
        self.send(
            {
                "type": "response.output_item.added",
                "response_id": response_id,
                "output_index": 0,
                "item": {"id": item_id, "type": "message", "role": "assistant", "content": []},
            }
        )

    def answer_begins(self, response_id: str, item_id: str, milliseconds: int) -> None:
        """A response starts with one audio item, of which ``milliseconds`` arrive."""
        self.response_created(response_id)
        self.item_added(response_id, item_id)
        self.audio(response_id, item_id, milliseconds)

    def audio(self, response_id: str, item_id: str, milliseconds: int, chunk_ms: int = 100) -> None:
        """Audio deltas for the item, ``chunk_ms`` each (the last one shorter)."""
        sent = 0
        while sent < milliseconds:
            piece = min(chunk_ms, milliseconds - sent)
            self.send(
                {
                    "type": "response.output_audio.delta",
                    "response_id": response_id,
                    "item_id": item_id,
                    "output_index": 0,
                    "content_index": 0,
                    "delta": tone_base64(piece),
                }
            )
            sent += piece

    def response_finished(self, response_id: str, item_id: str) -> None:
        self.send(
            {
                "type": "response.output_audio.done",
                "response_id": response_id,
                "item_id": item_id,
                "output_index": 0,
                "content_index": 0,
            }
        )
        self.send(
            {
                "type": "response.done",
                "response": {
                    "id": response_id,
                    "object": "realtime.response",
                    "status": "completed",
                },
            }
        )

    def speech_started(self, audio_start_ms: int = 1000) -> None:
        self.send(
            {
                "type": "input_audio_buffer.speech_started",
                "audio_start_ms": audio_start_ms,
                "item_id": "item_caller",
            }
        )

    def sentinel_request(self, page: Page) -> None:
        """A request the page makes now, waited for: whatever the page had asked before
        it has been seen by then (for checks that something was *not* asked)."""
        page.evaluate("(origin) => fetch(origin + '/v1/sentinel')", self.origin)
        assert "/v1/sentinel" in self.requests

    def sent_by_widget(self, event_type: str) -> list[dict[str, Any]]:
        return [event for event in self.received if event.get("type") == event_type]


def open_scripted_page(browser: Browser, koe: FakeKoe, *, fake_clock: bool = False) -> Page:
    """The tenant's page with the widget on the WebSocket (the protocol this fake speaks),
    every request answered by ``koe``."""
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.add_init_script(TRANSPORT % json.dumps("websocket"))
    if fake_clock:
        page.clock.install()
    koe.install(page)
    page.add_init_script(PROBE)
    page.goto(f"{koe.origin}/site/")
    return page
