"""Real Chromium for the widget's end-to-end tests: launch options, caller speech, page probes.

Chromium is Debian's (``apt-get install chromium``), driven by the ``playwright`` package
through ``executable_path``: nothing is downloaded. Its fake microphone plays a WAV file
synthesised here by the local voice, looping unless the path ends in ``%noloop``; or the
page is given a microphone the test speaks into once the widget is ready (``say``).
"""

from __future__ import annotations

import base64
import json
import time
import wave
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tests.conftest import chromium_path
from tests.live import ROOT
from tests.local.helpers import silence, spoken

if TYPE_CHECKING:  # imported when used: without playwright the tests skip, not crash
    from playwright.sync_api import Browser, Page

PROTOCOL_RATE = 24000
ARTIFACTS = ROOT / "var" / "test-artifacts" / "e2e"

# Runs in the page before its own scripts: records the widget's hooks (koe:* DOM events)
# without the audio itself, and every microphone stream and AudioContext the page opens,
# so a test can check that hanging up released them.
PROBE = """
window.__koe = [];
window.__streams = [];
window.__contexts = [];
const keep = (name) => document.addEventListener(name, (event) => {
  const detail = event.detail;
  if (name === "koe:event") {
    const e = detail.event;
    const audio = e.type === "input_audio_buffer.append" ? e.audio
      : e.type === "response.output_audio.delta" ? e.delta : null;
    const copy = audio === null ? e : {type: e.type, item_id: e.item_id, bytes: audio.length * 3 / 4};
    window.__koe.push({name, direction: detail.direction, event: copy, at: detail.at});
  } else {
    window.__koe.push({name, ...detail});
  }
});
["koe:state", "koe:event", "koe:playback", "koe:caption", "koe:turn", "koe:transport"].forEach(keep);
const NativeAudioContext = window.AudioContext;
if (navigator.mediaDevices) {
  const getUserMedia = navigator.mediaDevices.getUserMedia.bind(navigator.mediaDevices);
  navigator.mediaDevices.getUserMedia = async (constraints) => {
    let stream = await getUserMedia(constraints);  // the real prompt, the fake device
    if (window.__mouth_wanted) {
      // A microphone the test speaks into when the widget is ready (window.__say), so no
      // word is lost to a slow start: the device's own track ends with the mouth's.
      const context = new NativeAudioContext({ sampleRate: 24000 });
      const destination = context.createMediaStreamDestination();
      const device = stream;
      const track = destination.stream.getAudioTracks()[0];
      const stop = track.stop.bind(track);
      track.stop = () => { stop(); device.getTracks().forEach((t) => t.stop()); context.close(); };
      window.__mouth = { context, destination };
      stream = destination.stream;
    }
    window.__streams.push(stream);
    return stream;
  };
}
window.__say = (base64) => {
  const { context, destination } = window.__mouth;
  const bytes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
  const samples = new Int16Array(bytes.buffer, 0, bytes.length >> 1);
  const buffer = context.createBuffer(1, samples.length, 24000);
  const channel = buffer.getChannelData(0);
  for (let i = 0; i < samples.length; i++) channel[i] = samples[i] / 32768;
  const source = context.createBufferSource();
  source.buffer = buffer;
  source.connect(destination);
  source.start();
  return new Promise((resolve) => { source.onended = () => resolve(samples.length / 24); });
};
window.AudioContext = class extends NativeAudioContext {
  constructor(options) { super(options); window.__contexts.push(this); }
};
window.__peers = [];
if (window.RTCPeerConnection) {
  const NativePeer = window.RTCPeerConnection;
  window.RTCPeerConnection = class extends NativePeer {
    constructor(...options) { super(...options); window.__peers.push(this); }
  };
}
"""
MOUTH = "window.__mouth_wanted = true;"
# The widget's transport for a page (its "transport" attribute, unless the page sets one).
TRANSPORT = """
(() => {
  const chosen = %s;
  const apply = () => document.querySelectorAll("koe-agent:not([transport])")
    .forEach((element) => element.setAttribute("transport", chosen));
  new MutationObserver(apply).observe(document, { childList: true, subtree: true });
})();
"""


def write_wav(path: Path, pcm: bytes) -> Path:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(PROTOCOL_RATE)
        wav.writeframes(pcm)
    return path


@contextmanager
def chromium(*, microphone: Path | None, loop: bool = False) -> Iterator[Browser]:
    """Headless Chromium. With ``microphone`` its fake device plays that file and the
    permission prompt is answered yes; without, the page is refused the microphone."""
    arguments = ["--autoplay-policy=no-user-gesture-required", "--use-fake-device-for-media-stream"]
    if microphone is not None:
        arguments += [
            "--use-fake-ui-for-media-stream",
            f"--use-file-for-fake-audio-capture={microphone}{'' if loop else '%noloop'}",
        ]
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=arguments)
        try:
            yield browser
        finally:
            browser.close()


def open_page(
    browser: Browser,
    url: str,
    *,
    width: int = 1280,
    height: int = 800,
    mouth: bool = False,
    transport: str = "websocket",
) -> Page:
    """Open ``url`` with the probe. With ``mouth``, the page's microphone is one the test
    speaks into with ``say`` (Chromium's fake device still answers the permission).
    ``transport`` is the widget's (the WebSocket unless a test is about WebRTC; "" leaves
    the widget's default, auto)."""
    page = browser.new_page(viewport={"width": width, "height": height})
    if transport:
        page.add_init_script(TRANSPORT % json.dumps(transport))
    if mouth:
        page.add_init_script(MOUTH)
    page.add_init_script(PROBE)
    page.goto(url)
    return page


def say(page: Page, text: str, *, when: str = "listening") -> None:
    """Speak ``text`` into the page's microphone once the widget is in state ``when``
    (default: listening, so the greeting has played and the socket is open), followed by
    enough silence to end the turn. Waits on the widget, never on the clock."""
    wait_for(
        page,
        lambda p: hooks(p, "koe:state")[-1:] and hooks(p, "koe:state")[-1]["state"] == when,
        f"the widget to be {when}",
    )
    speech = base64.b64encode(spoken(text) + silence(1500)).decode()
    page.evaluate("(audio) => window.__say(audio)", speech)


def hooks(page: Page, name: str) -> list[dict[str, Any]]:
    return [entry for entry in page.evaluate("window.__koe") if entry["name"] == name]


def events(page: Page, direction: str, event_type: str) -> list[dict[str, Any]]:
    return [
        entry["event"]
        for entry in hooks(page, "koe:event")
        if entry["direction"] == direction and entry["event"]["type"] == event_type
    ]


def wait_for(page: Page, condition: Any, what: str, timeout: float = 45) -> Any:
    """Poll ``condition(page)`` until it is truthy; fail saying ``what`` never happened."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition(page)
        if result:
            return result
        if time.monotonic() > deadline:
            states = [
                f"{entry['state']} {entry['code']}".strip() for entry in hooks(page, "koe:state")
            ]
            raise AssertionError(f"timed out waiting for {what}; widget states: {states}")
        page.wait_for_timeout(100)


def screenshot(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path))
    print(f"screenshot: {path}")
    return path
