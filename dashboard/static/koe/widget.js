/* Koe voice widget: a call button for a tenant's web site. No build step, no dependencies.
 *
 * Embed (the publishable key and agent come from the dashboard's widget keys):
 *   <script src="https://KOE_HOST/static/koe/widget.js" data-key="pk_..." data-agent="agt_..." async></script>
 * or place the element yourself after loading the script:
 *   <koe-agent key="pk_..." agent="agt_..."></koe-agent>
 *
 * Attributes (data-* on the script tag, plain on the element): key, agent, host (Koe's base
 * URL; default: where this script was loaded from), label, color, position (bottom-right,
 * bottom-left), mode ("floating", default, or "inline": no launcher, the panel in the page),
 * transport ("auto", default: WebRTC, falling back to the WebSocket when WebRTC cannot
 * connect within WEBRTC_CONNECT_MS; "webrtc"; "websocket").
 * Theming: CSS custom properties on the element (see the STYLE block below), e.g.
 *   koe-agent { --koe-accent: #0b7285; --koe-size: 64px; --koe-offset-y: 32px; }
 * Label, colour and position default to the agent's widget settings (GET /v1/widget/config).
 *
 * Properties: `tokenProvider` (async (consent, {consentVersion}) => ({value, session: {model}}))
 * replaces the publishable-key token request (the dashboard's test console uses it); `config`
 * supplies the widget settings without fetching them. Methods: start(), hangUp(),
 * setMuted(bool), sendText(text).
 *
 * Consent: the panel shows the config's consent_text verbatim (the server records exactly
 * those words, as version consent_version) and offers the scopes the agent allows: "Yes,
 * record and transcribe" / "Transcript only" / "No thanks" where recording is offered, else
 * "Yes" / "No". The token request carries the answer and the version shown; if the prompt
 * changed meanwhile (409 consent_changed) the widget reloads its config and asks again.
 *
 * WebRTC (POST /v1/realtime/calls): the microphone goes as an Opus track (the browser's echo
 * cancellation and jitter buffer), the agent's voice plays from the peer's track, and the
 * events travel on the data channel "oai-events"; the server cuts the agent's audio when
 * the caller speaks over it (output_audio_buffer.cleared) and truncates what was unheard.
 *
 * Reconnects: a dropped call is retried with backoff; the retry series starts over only
 * after a connection has stayed up STABLE_CONNECTION_MS, and a call reconnects at most
 * MAX_RECONNECTS_PER_CALL times (each reconnect mints a token and opens a billed session).
 *
 * DOM events (bubbling, composed) for pages, the console and tests:
 *   koe:state    {state, previous, message, code}  idle|consent|connecting|listening|thinking|
 *                speaking|reconnecting|ended|error; message is the human sentence shown
 *   koe:event    {direction: "in"|"out", event, at}  every Realtime event (at: performance.now())
 *   koe:playback {itemId, playedMs, state: "playing"|"drained"|"interrupted"}
 *   koe:caption  {role: "user"|"assistant", itemId, text, final}
 *   koe:turn     {itemId, latencyMs}  end of the caller's speech -> first agent audio played
 *   koe:transport {transport: "webrtc"|"websocket", fallback}  how the call connected
 * Audio deltas are part of koe:event (the console counts them); nothing is logged to the
 * console except configuration problems.
 */
(() => {
  "use strict";

  const SCRIPT = document.currentScript;
  const SCRIPT_URL = SCRIPT && SCRIPT.src ? new URL(SCRIPT.src, location.href) : null;
  const PROTOCOL_RATE = 24000;
  const CHUNK_MS = 40;
  const RECONNECT_DELAYS_MS = [500, 1500, 3000, 6000];
  // A server that accepts and then drops at once must not earn a fresh retry series: the
  // series starts over only once a connection has lasted this long...
  const STABLE_CONNECTION_MS = 10000;
  // ...and however stable each one looked, a call reconnects at most this many times.
  const MAX_RECONNECTS_PER_CALL = 8;
  const TOKEN_SUBPROTOCOL = "openai-insecure-api-key.";
  // WebRTC that has not connected (offer answered, data channel open) by then falls back.
  const WEBRTC_CONNECT_MS = 5000;
  // Refusals of a WebRTC call that the WebSocket may not meet (anything else, a refusal of
  // the caller, would be refused there too).
  const WEBRTC_FALLBACK_CODES = new Set(["webrtc_failed", "network", "invalid_sdp", "missing_sdp"]);

  // What the caller reads for each refusal or ending the server reports (error codes).
  const MESSAGES = {
    microphone_blocked:
      "Your microphone is blocked. Allow microphone access for this site in your browser's " +
      "settings and try again, or type your message instead.",
    microphone_missing: "No microphone was found. Connect one and try again, or type instead.",
    microphone_busy: "Your microphone is being used by another application.",
    insecure_page: "Voice calls need a secure (https) page.",
    network: "We couldn't reach the assistant. Check your connection and try again.",
    connection_lost: "The connection to the assistant was lost. Please try again.",
    connection_unstable:
      "The connection to the assistant kept dropping, so the call was ended. Please try again later.",
    consent_changed:
      "The wording of this question changed since you saw it. Please read it again and choose.",
    budget_exceeded:
      "Calls are unavailable right now: this service has reached its limit. Please try later.",
    call_ended_budget: "The call ended: this service has reached its limit.",
    rate_limited: "Too many calls were started from your network. Please wait a minute.",
    concurrent_call_limit: "All lines are busy right now. Please try again in a moment.",
    origin_not_allowed: "This assistant isn't available on this website.",
    invalid_publishable_key: "This assistant isn't set up correctly on this website.",
    agent_mismatch: "This assistant isn't set up correctly on this website.",
    agent_not_ready: "This assistant isn't ready yet. Please try again later.",
    consent_required:
      "This call needs your consent to a transcript. Without it the call can't start.",
    provider_unavailable: "The assistant is unavailable right now. Please try again later.",
    call_ended_provider_error: "The assistant is unavailable right now. Please try again later.",
    call_ended_idle_timeout: "The call ended after a long silence.",
    call_ended_max_duration: "The call reached its time limit.",
    call_ended_operator: "The call was ended by the business.",
    call_ended_agent: "The assistant ended the call.",
  };
  // Refusals worth no retry, and endings that are a normal end of the call, not an error.
  const NORMAL_ENDINGS = new Set([
    "call_ended_idle_timeout",
    "call_ended_max_duration",
    "call_ended_operator",
    "call_ended_agent",
  ]);
  const STATUS_TEXT = {
    idle: "Ready",
    consent: "Before we start",
    connecting: "Connecting…",
    listening: "Listening",
    thinking: "Thinking…",
    speaking: "Speaking",
    reconnecting: "Connection lost, reconnecting…",
    ended: "Call ended",
    error: "The call couldn't continue",
  };
  const LIVE_STATES = new Set(["connecting", "listening", "thinking", "speaking", "reconnecting"]);
  const CONNECTED_STATES = new Set(["listening", "thinking", "speaking"]);

  const STYLE = `
    :host { all: initial; }
    .frame {
      /* Public theming hooks (set them on the element); the agent's settings fill in the
         rest. Declared here, below the host, so --_config-accent set on this frame counts. */
      --_accent: var(--koe-accent, var(--_config-accent, #2563eb));
      --_ink: var(--koe-accent-ink, #fff);
      --_size: var(--koe-size, 56px);
      --_x: var(--koe-offset-x, 20px);
      --_y: var(--koe-offset-y, 20px);
      --_width: var(--koe-panel-width, 360px);
      --_radius: var(--koe-radius, 14px);
      font-family: var(--koe-font, system-ui, -apple-system, "Segoe UI", sans-serif);
      color: #1d2430; font-size: 15px; line-height: 1.4;
    }
    * { box-sizing: border-box; }
    [hidden] { display: none !important; }
    button, input { font: inherit; }
    button:focus-visible, input:focus-visible { outline: 3px solid #91a7ff; outline-offset: 2px; }
    .launcher {
      position: fixed; bottom: var(--_y); z-index: var(--koe-z-index, 2147483000);
      min-width: var(--_size); height: var(--_size); border-radius: calc(var(--_size) / 2);
      border: 0; background: var(--_accent); color: var(--_ink); cursor: pointer;
      display: inline-flex; align-items: center; gap: .5rem; padding: 0 1.1rem 0 .9rem;
      box-shadow: 0 6px 20px rgba(0, 0, 0, .22); font-weight: 600;
    }
    .launcher svg { width: 24px; height: 24px; flex: none; }
    .right .launcher, .right .panel { right: var(--_x); }
    .left .launcher, .left .panel { left: var(--_x); }
    .panel {
      position: fixed; bottom: calc(var(--_y) + var(--_size) + 12px);
      z-index: var(--koe-z-index, 2147483000);
      width: min(var(--_width), calc(100vw - 2 * var(--_x)));
      max-height: min(70vh, 560px); display: flex; flex-direction: column;
      background: #fff; border-radius: var(--_radius); overflow: hidden;
      box-shadow: 0 12px 40px rgba(0, 0, 0, .25); border: 1px solid #d9dee5;
    }
    .inline .panel { position: static; width: 100%; max-height: none; min-height: 420px; box-shadow: none; }
    header { display: flex; align-items: center; gap: .6rem; padding: .75rem .9rem;
      background: var(--_accent); color: var(--_ink); }
    header .who { flex: 1; min-width: 0; }
    header strong { display: block; }
    .status { font-size: .85rem; opacity: .92; }
    .dot { width: 10px; height: 10px; border-radius: 50%; background: currentColor; opacity: .5; flex: none; }
    [data-state="listening"] .dot { opacity: 1; background: #8ce99a; }
    [data-state="speaking"] .dot { opacity: 1; background: #ffd43b; animation: pulse 1s infinite; }
    [data-state="thinking"] .dot, [data-state="connecting"] .dot, [data-state="reconnecting"] .dot {
      opacity: 1; animation: pulse 1.2s infinite; }
    [data-state="error"] .dot { opacity: 1; background: #ff8787; }
    @keyframes pulse { 50% { opacity: .3; } }
    @media (prefers-reduced-motion: reduce) { .dot { animation: none !important; } }
    .close { background: none; border: 0; color: inherit; font-size: 1.4rem; line-height: 1;
      cursor: pointer; padding: .2rem .4rem; border-radius: 6px; }
    .body { padding: .9rem; overflow-y: auto; flex: 1; display: flex; flex-direction: column; gap: .75rem; }
    .consent p { margin: 0 0 .75rem; }
    .row { display: flex; flex-wrap: wrap; gap: .5rem; }
    .btn { border-radius: 8px; padding: .5rem .9rem; cursor: pointer; border: 1px solid var(--_accent);
      background: var(--_accent); color: var(--_ink); font-weight: 600; }
    .btn.secondary { background: #fff; color: #1d2430; border-color: #adb5bd; }
    .btn.danger { background: #c92a2a; border-color: #c92a2a; color: #fff; }
    .btn[aria-pressed="true"] { background: #495057; border-color: #495057; color: #fff; }
    .note { color: #5b6574; font-size: .9rem; margin: 0; }
    .error { color: #a61e1e; background: #fff5f5; border: 1px solid #ffc9c9; border-radius: 8px;
      padding: .6rem .75rem; margin: 0; }
    .captions { list-style: none; margin: 0; padding: 0; display: flex; flex-direction: column; gap: .5rem; }
    .captions li { max-width: 88%; padding: .45rem .7rem; border-radius: 12px; white-space: pre-wrap;
      overflow-wrap: anywhere; }
    .captions .who { display: block; font-size: .75rem; font-weight: 600; opacity: .75; }
    .captions .user { align-self: flex-end; background: #e7f5ff; }
    .captions .assistant { align-self: flex-start; background: #f1f3f5; }
    .captions .system { align-self: center; background: none; color: #5b6574; font-size: .85rem; }
    .captions .pending .text { opacity: .6; font-style: italic; }
    .captions .interrupted .text::after { content: " …"; }
    .controls { display: flex; gap: .5rem; padding: 0 .9rem .6rem; flex-wrap: wrap; }
    form.text { display: flex; gap: .5rem; padding: .6rem .9rem .9rem; border-top: 1px solid #e9ecef; }
    form.text input { flex: 1; min-width: 0; padding: .5rem .6rem; border: 1px solid #adb5bd; border-radius: 8px; }
    .vh { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }
    @media (max-width: 480px) {
      .frame:not(.inline) .panel { left: 8px; right: 8px; width: auto;
        bottom: calc(var(--_y) + var(--_size) + 8px); max-height: 75vh; }
    }
  `;

  const MICROPHONE_ICON =
    '<svg viewBox="0 0 24 24" aria-hidden="true" fill="currentColor"><path d="M12 14a3 3 0 0 0 ' +
    '3-3V5a3 3 0 1 0-6 0v6a3 3 0 0 0 3 3Zm5-3a5 5 0 0 1-10 0H5a7 7 0 0 0 6 6.92V21h2v-3.08A7 ' +
    '7 0 0 0 19 11h-2Z"/></svg>';

  const TEMPLATE = `
    <div class="frame" part="frame">
      <button class="launcher" part="launcher" type="button" aria-expanded="false" aria-controls="panel">
        ${MICROPHONE_ICON}<span class="label">Talk to us</span>
      </button>
      <section class="panel" id="panel" part="panel" role="region" aria-labelledby="title" hidden>
        <header>
          <span class="dot" aria-hidden="true"></span>
          <div class="who"><strong id="title">Assistant</strong>
            <span class="status" role="status" aria-live="polite">Ready</span></div>
          <button class="close" type="button" aria-label="Close the call panel">×</button>
        </header>
        <div class="body">
          <div class="consent" hidden>
            <p class="consent-text" id="consent-text"></p>
            <div class="row" role="group" aria-labelledby="consent-text">
              <button class="btn accept" type="button" data-scope="recording">Yes, record and transcribe</button>
              <button class="btn secondary transcript-only" type="button" data-scope="transcript">Transcript only</button>
              <button class="btn secondary decline" type="button" data-scope="none">No thanks</button>
            </div>
            <p class="note consent-note"></p>
          </div>
          <p class="note notice" hidden></p>
          <ol class="captions" role="log" aria-live="polite" aria-label="Conversation captions"></ol>
          <p class="error" role="alert" hidden></p>
        </div>
        <div class="controls">
          <button class="btn secondary mute" type="button" aria-pressed="false" hidden>Mute</button>
          <button class="btn danger hangup" type="button" hidden>Hang up</button>
          <button class="btn again" type="button" hidden>Start a new call</button>
          <button class="btn secondary type-instead" type="button" hidden>Type instead</button>
        </div>
        <form class="text" hidden>
          <label class="vh" for="message">Type a message to the assistant</label>
          <input id="message" name="message" autocomplete="off" maxlength="2000" placeholder="Type a message…">
          <button class="btn" type="submit">Send</button>
        </form>
      </section>
    </div>`;

  function toBase64(buffer) {
    const bytes = new Uint8Array(buffer);
    let binary = "";
    for (let i = 0; i < bytes.length; i += 0x8000) {
      binary += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
    }
    return btoa(binary);
  }

  // PCM16 is little-endian on the wire, as typed arrays are on every platform browsers run on.
  function fromBase64(text) {
    const binary = atob(text);
    const bytes = new Uint8Array(binary.length - (binary.length % 2));
    for (let i = 0; i < bytes.length; i++) bytes[i] = binary.charCodeAt(i);
    return bytes.buffer;
  }

  // A Koe error code ("network", "consent_changed", ...), or "" for anything else: a
  // DOMException (say, a worklet that failed to load) has a numeric legacy `code`.
  function codeOf(error) {
    return error && typeof error.code === "string" ? error.code : "";
  }

  class WidgetError extends Error {
    constructor(code, message) {
      super(message || MESSAGES[code] || code);
      this.code = code;
    }
  }

  /**
   * A WebSocket's face on a WebRTC call, so the call's logic is one for both: readyState,
   * send, close, onopen/onmessage/onclose. The data channel carries the events; the agent's
   * audio plays in `audio` (an <audio> element made in the caller's click).
   */
  class RtcLink {
    constructor() {
      this.readyState = 0; // CONNECTING, as WebSocket's
      this.onopen = this.onmessage = this.onclose = null;
      this.peer = null;
      this.channel = null;
    }

    async open(host, token, stream, audio) {
      if (typeof RTCPeerConnection !== "function") throw new WidgetError("webrtc_failed");
      const peer = new RTCPeerConnection({ iceServers: token.ice_servers || [] });
      this.peer = peer;
      if (stream) stream.getAudioTracks().forEach((track) => peer.addTrack(track, stream));
      else peer.addTransceiver("audio", { direction: "recvonly" });
      peer.ontrack = (event) => {
        audio.srcObject = event.streams[0] || new MediaStream([event.track]);
        audio.play().catch(() => {});
      };
      const channel = peer.createDataChannel("oai-events");
      this.channel = channel;
      channel.onmessage = (message) => this.onmessage && this.onmessage({ data: message.data });
      channel.onclose = () => this.dropped(1006);
      peer.onconnectionstatechange = () => {
        if (peer.connectionState === "failed") this.dropped(1006);
      };
      await peer.setLocalDescription(await peer.createOffer());
      await this.gathered(peer);
      let response;
      try {
        response = await fetch(`${host}/v1/realtime/calls`, {
          method: "POST",
          credentials: "omit",
          headers: { Authorization: `Bearer ${token.value}`, "Content-Type": "application/sdp" },
          body: peer.localDescription.sdp,
        });
      } catch (error) {
        throw new WidgetError("network");
      }
      if (!response.ok) {
        const error = ((await response.json().catch(() => ({}))).error) || {};
        throw new WidgetError(error.code || "network", MESSAGES[error.code] || error.message);
      }
      await peer.setRemoteDescription({ type: "answer", sdp: await response.text() });
      await new Promise((resolve, reject) => {
        if (channel.readyState === "open") return resolve();
        const timer = setTimeout(() => reject(new WidgetError("webrtc_failed")), WEBRTC_CONNECT_MS);
        channel.onopen = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.readyState = 1; // OPEN
      if (this.onopen) this.onopen();
    }

    /** Koe answers without trickle ICE: the offer carries the candidates gathered. */
    gathered(peer) {
      if (peer.iceGatheringState === "complete") return Promise.resolve();
      return new Promise((resolve) => {
        const timer = setTimeout(resolve, 3000);
        peer.addEventListener("icegatheringstatechange", () => {
          if (peer.iceGatheringState === "complete") {
            clearTimeout(timer);
            resolve();
          }
        });
      });
    }

    send(text) {
      if (this.channel && this.channel.readyState === "open") this.channel.send(text);
    }

    dropped(code) {
      if (this.readyState >= 2) return;
      this.readyState = 3; // CLOSED
      if (this.peer) this.peer.close();
      if (this.onclose) this.onclose({ code, reason: "" });
    }

    close(code = 1000) {
      this.dropped(code);
    }
  }

  class KoeAgent extends HTMLElement {
    constructor() {
      super();
      this.tokenProvider = null;
      this.config = null;
      this.state = "idle";
      this.muted = false;
      this.consent = "none";
      this.consentVersion = null; // the version of the consent text the caller answered
      this.call = null; // the live call's resources, see start()
      this.root = this.attachShadow({ mode: "open" });
      this.root.innerHTML = `<style>${STYLE}</style>${TEMPLATE}`;
      const find = (selector) => this.root.querySelector(selector);
      this.ui = {
        frame: find(".frame"),
        launcher: find(".launcher"),
        label: find(".launcher .label"),
        panel: find(".panel"),
        title: find("#title"),
        status: find(".status"),
        close: find(".close"),
        consent: find(".consent"),
        consentText: find(".consent-text"),
        consentNote: find(".consent-note"),
        accept: find(".accept"),
        transcriptOnly: find(".transcript-only"),
        decline: find(".decline"),
        notice: find(".notice"),
        captions: find(".captions"),
        error: find(".error"),
        mute: find(".mute"),
        hangup: find(".hangup"),
        again: find(".again"),
        typeInstead: find(".type-instead"),
        form: find("form.text"),
        input: find("#message"),
      };
      this.ui.launcher.addEventListener("click", () => this.toggle());
      this.ui.close.addEventListener("click", () => this.close());
      for (const choice of [this.ui.accept, this.ui.transcriptOnly, this.ui.decline]) {
        choice.addEventListener("click", () => this.answerConsent(choice.dataset.scope));
      }
      this.ui.mute.addEventListener("click", () => this.setMuted(!this.muted));
      this.ui.hangup.addEventListener("click", () => this.hangUp());
      this.ui.again.addEventListener("click", () => this.askConsent());
      this.ui.typeInstead.addEventListener("click", () => this.start({ microphone: false }));
      this.ui.form.addEventListener("submit", (event) => {
        event.preventDefault();
        const text = this.ui.input.value.trim();
        if (text) {
          this.sendText(text);
          this.ui.input.value = "";
        }
      });
      this.root.addEventListener("keydown", (event) => {
        if (event.key === "Escape" && !this.inline) this.close();
      });
      this.onPageHide = () => this.hangUp({ silent: true });
    }

    get inline() {
      return this.getAttribute("mode") === "inline";
    }

    get host() {
      const explicit = this.getAttribute("host");
      if (explicit) return explicit.replace(/\/+$/, "");
      return SCRIPT_URL ? SCRIPT_URL.origin : location.origin;
    }

    connectedCallback() {
      window.addEventListener("pagehide", this.onPageHide);
      if (this.inline) {
        this.ui.frame.classList.add("inline");
        this.ui.launcher.hidden = true;
        this.ui.panel.hidden = false;
        this.ui.close.hidden = true;
      }
      this.loadConfig();
    }

    disconnectedCallback() {
      window.removeEventListener("pagehide", this.onPageHide);
      this.hangUp({ silent: true });
    }

    async loadConfig() {
      let config = this.config;
      if (!config) {
        if (!this.getAttribute("key")) {
          console.warn("koe-agent: set key=\"pk_...\" (or the config and tokenProvider properties).");
          this.ui.launcher.hidden = true;
          return;
        }
        try {
          config = await this.fetchConfig();
        } catch (error) {
          // Usually this page's origin is not among the key's allowed origins (the answer
          // then carries no CORS grant and the fetch fails): show no broken button.
          console.warn(`koe-agent: the widget is disabled on this page (${error.message}).`);
          this.ui.launcher.hidden = true;
          if (this.inline) this.fail(codeOf(error) || "network");
          return;
        }
      }
      this.config = config;
      this.applyConfig();
      if (this.inline && this.state === "idle") this.askConsent();
    }

    /**
     * The agent's widget settings for this key. `fresh` skips the browser's HTTP cache (the
     * answer may be cached for a minute): used when the consent prompt is known to have changed.
     */
    async fetchConfig({ fresh = false } = {}) {
      const key = this.getAttribute("key");
      const response = await fetch(`${this.host}/v1/widget/config?key=${encodeURIComponent(key)}`, {
        credentials: "omit",
        cache: fresh ? "reload" : "default",
      });
      const body = await response.json();
      if (!response.ok) throw new WidgetError(body.error.code, body.error.message);
      return body;
    }

    /**
     * The server refused the answer because the prompt changed after it was shown: show the
     * current prompt (from a fresh config) and ask again; nothing was recorded.
     */
    async askConsentAgain() {
      if (!this.getAttribute("key")) {
        // Settings supplied by the page (the console) cannot be refreshed from here.
        this.fail("consent_changed");
        return;
      }
      try {
        this.config = await this.fetchConfig({ fresh: true });
      } catch (error) {
        this.fail(codeOf(error) || "network");
        return;
      }
      this.applyConfig();
      this.askConsent();
      this.showNotice(MESSAGES.consent_changed);
    }

    applyConfig() {
      const config = this.config || {};
      const label = this.getAttribute("label") || config.label || "Talk to us";
      const color = this.getAttribute("color") || config.color;
      const position = this.getAttribute("position") || config.position || "bottom-right";
      this.ui.label.textContent = label;
      this.ui.launcher.setAttribute("aria-label", `${label}: start a voice call`);
      this.ui.title.textContent = config.name || "Assistant";
      if (color) this.ui.frame.style.setProperty("--_config-accent", color);
      this.ui.frame.classList.toggle("left", position === "bottom-left");
      this.ui.frame.classList.toggle("right", position !== "bottom-left");
    }

    static get observedAttributes() {
      return ["label", "color", "position"];
    }

    attributeChangedCallback() {
      if (this.config) this.applyConfig();
    }

    // --- panel ------------------------------------------------------------------------------
    toggle() {
      if (this.ui.panel.hidden) this.open();
      else this.close();
    }

    open() {
      this.ui.panel.hidden = false;
      this.ui.launcher.setAttribute("aria-expanded", "true");
      if (!LIVE_STATES.has(this.state)) this.askConsent();
      const focusable = this.root.querySelector(
        ".consent:not([hidden]) .accept, .hangup:not([hidden]), .again:not([hidden])",
      );
      if (focusable) focusable.focus();
    }

    close() {
      if (this.inline) return;
      // Closing the panel keeps a live call going; the launcher shows the call is on.
      this.ui.panel.hidden = true;
      this.ui.launcher.setAttribute("aria-expanded", "false");
      this.ui.launcher.focus();
    }

    /**
     * Put the agent's consent question, in the server's exact words (the call records the
     * version shown), with one button per scope the agent allows. The first is focused;
     * they are ordinary buttons, so Tab, Enter and Space work.
     */
    askConsent() {
      const config = this.config || {};
      this.ui.error.hidden = true;
      this.ui.notice.hidden = true;
      this.ui.again.hidden = true;
      this.ui.typeInstead.hidden = true;
      this.ui.consentText.textContent = config.consent_text || "";
      const recordingOffered = !!config.recording_offered;
      this.ui.accept.dataset.scope = recordingOffered ? "recording" : "transcript";
      this.ui.accept.textContent = recordingOffered ? "Yes, record and transcribe" : "Yes";
      this.ui.transcriptOnly.hidden = !recordingOffered;
      this.ui.decline.textContent = recordingOffered ? "No thanks" : "No";
      this.ui.consentNote.textContent = config.consent_required
        ? "The call needs your consent to at least a transcript."
        : "The call starts whichever you choose; if you say no, we keep no transcript or recording.";
      this.ui.consent.hidden = false;
      this.setState("consent");
      this.ui.accept.focus();
    }

    /** `scope`: "recording", "transcript" or "none", from the button the caller chose. */
    answerConsent(scope) {
      const config = this.config || {};
      if (scope === "none" && config.consent_required) {
        this.showNotice(MESSAGES.consent_required);
        return;
      }
      this.consent = scope;
      this.consentVersion = config.consent_version || null;
      this.ui.consent.hidden = true;
      this.start();
    }

    showNotice(text) {
      this.ui.notice.textContent = text;
      this.ui.notice.hidden = !text;
    }

    // --- state and events -----------------------------------------------------------------
    setState(state, { message = "", code = "" } = {}) {
      const previous = this.state;
      this.state = state;
      this.ui.frame.dataset.state = state;
      const muted = this.muted && LIVE_STATES.has(state) ? " (muted)" : "";
      this.ui.status.textContent = STATUS_TEXT[state] + muted;
      const live = LIVE_STATES.has(state);
      this.ui.mute.hidden = !live || !(this.call && this.call.stream);
      this.ui.hangup.hidden = !live;
      this.ui.form.hidden = !CONNECTED_STATES.has(state); // typing needs an open session
      this.ui.again.hidden = !(state === "ended" || state === "error");
      this.ui.again.textContent = state === "error" ? "Try again" : "Start a new call";
      this.ui.label.textContent = live
        ? "In call"
        : this.getAttribute("label") || (this.config && this.config.label) || "Talk to us";
      this.emit("koe:state", { state, previous, message, code });
    }

    emit(name, detail) {
      this.dispatchEvent(new CustomEvent(name, { detail, bubbles: true, composed: true }));
    }

    fail(code, message) {
      const text = message || MESSAGES[code] || MESSAGES.network;
      this.ui.error.textContent = text;
      this.ui.error.hidden = false;
      this.ui.typeInstead.hidden = !code.startsWith("microphone");
      this.setState("error", { message: text, code });
    }

    // --- a call ------------------------------------------------------------------------------
    /** Open the microphone (unless typing), get a token, connect. Call after consent. */
    async start({ microphone = true } = {}) {
      await this.teardown();
      this.ui.captions.replaceChildren();
      this.ui.error.hidden = true;
      this.ui.typeInstead.hidden = true;
      const call = {
        socket: null, // a WebSocket, or an RtcLink
        useRtc: this.transport !== "websocket" && typeof RTCPeerConnection === "function",
        audio: null, // the <audio> element WebRTC plays the agent's voice in
        stream: null,
        context: null,
        capture: null,
        playback: null,
        attempts: 0, // reconnects in the current retry series (index into RECONNECT_DELAYS_MS)
        reconnects: 0, // reconnects over the whole call, capped at MAX_RECONNECTS_PER_CALL
        stableTimer: null, // ends the retry series once a connection has lasted
        opened: false,
        closing: false,
        lastError: null,
        appendedMs: 0,
        appendTimes: [], // [audio ms at the chunk's end, performance.now() when sent]
        sentMs: new Map(), // item id -> ms of its audio received
        interrupted: new Set(), // items whose audio was cut off: later deltas are dropped
        interruptedResponses: new Set(), // responses cut off before all their items appeared
        responseId: null, // the latest response (response.created)
        responseItems: new Set(), // its items
        queuedItems: new Set(), // items with audio handed to the player since it last emptied
        playing: null, // {itemId, playedMs} while the agent's audio plays
        audioQueued: false,
        responseActive: false,
        speechEndedAt: null,
        clearWaiters: [],
        responseWaiters: [],
      };
      this.call = call;
      this.setState("connecting");
      try {
        // The AudioContext is made first, still inside the click that started the call,
        // so browsers' autoplay rules let it run.
        call.context = new AudioContext({ latencyHint: "interactive" });
        if (call.useRtc) {
          call.audio = new Audio();
          call.audio.autoplay = true;
        }
        if (microphone) call.stream = await this.openMicrophone();
        if (this.call !== call) return this.releaseAudio(call);
        await this.startAudio(call);
        await this.connect(call);
      } catch (error) {
        if (this.call !== call) return;
        await this.teardown();
        const code = codeOf(error);
        if (code === "consent_changed") {
          await this.askConsentAgain();
          return;
        }
        this.fail(code || "network", code ? undefined : String((error && error.message) || error));
      }
    }

    async openMicrophone() {
      if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
        throw new WidgetError("insecure_page");
      }
      try {
        return await navigator.mediaDevices.getUserMedia({
          audio: {
            echoCancellation: true,
            noiseSuppression: true,
            autoGainControl: true,
            channelCount: 1,
          },
        });
      } catch (error) {
        const code =
          error.name === "NotFoundError" || error.name === "OverconstrainedError"
            ? "microphone_missing"
            : error.name === "NotReadableError"
              ? "microphone_busy"
              : "microphone_blocked";
        throw new WidgetError(code);
      }
    }

    workletUrl(name) {
      return SCRIPT_URL ? new URL(name, SCRIPT_URL).href : `${this.host}/static/koe/${name}`;
    }

    get transport() {
      const chosen = this.getAttribute("transport") || "auto";
      return ["auto", "webrtc", "websocket"].includes(chosen) ? chosen : "auto";
    }

    async startAudio(call) {
      const context = call.context;
      if (context.state === "suspended") await context.resume();
      // On WebRTC the browser carries the audio both ways: no worklets (until a fallback).
      if (call.useRtc) return;
      await context.audioWorklet.addModule(this.workletUrl("playback-worklet.js"));
      call.playback = new AudioWorkletNode(context, "koe-playback", {
        numberOfInputs: 0,
        numberOfOutputs: 1,
        outputChannelCount: [1],
        processorOptions: { startMs: 80 },
      });
      call.playback.port.onmessage = (message) => this.onPlayback(call, message.data);
      call.playback.connect(context.destination);
      if (!call.stream) return;
      await context.audioWorklet.addModule(this.workletUrl("capture-worklet.js"));
      const source = context.createMediaStreamSource(call.stream);
      call.capture = new AudioWorkletNode(context, "koe-capture", {
        numberOfInputs: 1,
        numberOfOutputs: 1,
        processorOptions: { targetRate: PROTOCOL_RATE, chunkMs: CHUNK_MS },
      });
      call.capture.port.onmessage = (message) => this.onCapture(call, message.data);
      // Rendered only if pulled: route it through a silent gain so it runs, unheard.
      const silent = context.createGain();
      silent.gain.value = 0;
      source.connect(call.capture).connect(silent).connect(context.destination);
      this.applyMute(call);
    }

    async fetchToken() {
      if (this.tokenProvider) {
        return this.tokenProvider(this.consent, { consentVersion: this.consentVersion });
      }
      let response;
      try {
        response = await fetch(`${this.host}/v1/widget/client_secrets`, {
          method: "POST",
          credentials: "omit",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify({
            key: this.getAttribute("key"),
            agent: this.getAttribute("agent") || (this.config && this.config.agent) || "",
            consent: this.consent,
            consent_version: this.consentVersion,
          }),
        });
      } catch (error) {
        throw new WidgetError("network");
      }
      const body = await response.json().catch(() => ({}));
      if (!response.ok) {
        const error = body.error || {};
        throw new WidgetError(error.code || "network", MESSAGES[error.code] || error.message);
      }
      return body;
    }

    async connect(call) {
      let token = await this.fetchToken();
      if (this.call !== call) return;
      if (call.useRtc) {
        try {
          await this.connectRtc(call, token);
          return;
        } catch (error) {
          if (this.call !== call) return;
          if (this.transport !== "auto" || !WEBRTC_FALLBACK_CODES.has(codeOf(error))) throw error;
        }
        // WebRTC could not connect (blocked UDP, no TURN): the same call over the WebSocket,
        // with a token of its own (they are single-use).
        call.useRtc = false;
        call.fellBack = true;
        await this.startAudio(call);
        token = await this.fetchToken();
        if (this.call !== call) return;
      }
      await this.connectSocket(call, token);
    }

    async connectRtc(call, token) {
      const link = new RtcLink();
      call.socket = link;
      call.appendedMs = 0;
      call.appendTimes = [];
      call.lastError = null;
      link.onmessage = (message) => this.onMessage(call, message.data);
      link.onclose = (close) => {
        if (call.opened) this.onClose(call, link, close);
      };
      try {
        await link.open(this.host, token, call.stream, call.audio);
      } catch (error) {
        link.close();
        throw error;
      }
      if (this.call !== call) return;
      this.opened(call, link);
      this.emit("koe:transport", { transport: "webrtc", fallback: false });
      this.setState(call.playing ? "speaking" : "listening");
    }

    /** Up: a later drop is retried, and the retry series ends once it has lasted. */
    opened(call, socket) {
      call.opened = true;
      clearTimeout(call.stableTimer);
      call.stableTimer = setTimeout(() => {
        // Up long enough to count as working: a later drop starts a fresh retry series.
        if (this.call === call && call.socket === socket && socket.readyState === WebSocket.OPEN) {
          call.attempts = 0;
        }
      }, STABLE_CONNECTION_MS);
    }

    async connectSocket(call, token) {
      const agent = (token.session && token.session.model) || this.getAttribute("agent") || "";
      const url = new URL(`${this.host}/v1/realtime`);
      url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
      url.searchParams.set("model", agent);
      const socket = new WebSocket(url.href, ["realtime", TOKEN_SUBPROTOCOL + token.value]);
      call.socket = socket;
      call.appendedMs = 0; // the server's audio clock starts again with each session
      call.appendTimes = [];
      call.lastError = null;
      await new Promise((resolve, reject) => {
        socket.onopen = () => {
          this.opened(call, socket);
          resolve();
        };
        socket.onmessage = (message) => this.onMessage(call, message.data);
        socket.onclose = (close) => {
          if (!call.opened) reject(new WidgetError((call.lastError && call.lastError.code) || "network"));
          else this.onClose(call, socket, close);
        };
      });
      if (this.call !== call) return;
      this.emit("koe:transport", { transport: "websocket", fallback: !!call.fellBack });
      this.setState(call.playing ? "speaking" : "listening");
    }

    send(event) {
      const call = this.call;
      if (!call || !call.socket || call.socket.readyState !== WebSocket.OPEN) return false;
      call.socket.send(JSON.stringify(event));
      this.emit("koe:event", { direction: "out", event, at: performance.now() });
      return true;
    }

    onCapture(call, buffer) {
      if (this.call !== call || !call.socket || call.socket.readyState !== WebSocket.OPEN) return;
      const sent = this.send({ type: "input_audio_buffer.append", audio: toBase64(buffer) });
      if (!sent) return;
      call.appendedMs += (buffer.byteLength / 2 / PROTOCOL_RATE) * 1000;
      call.appendTimes.push([call.appendedMs, performance.now()]);
      if (call.appendTimes.length > 1500) call.appendTimes.splice(0, 500); // about a minute kept
    }

    silenceMs(session) {
      const input = session && session.audio && session.audio.input;
      const detection = input && input.turn_detection;
      return (detection && detection.silence_duration_ms) || 0;
    }

    // When the audio at `audioMs` of this session's input was captured (for turn latency).
    capturedAt(call, audioMs) {
      const entry = call.appendTimes.find(([endMs]) => endMs >= audioMs);
      return entry ? entry[1] - (entry[0] - audioMs) : performance.now();
    }

    onMessage(call, data) {
      if (this.call !== call) return;
      let event;
      try {
        event = JSON.parse(data);
      } catch (error) {
        return;
      }
      this.emit("koe:event", { direction: "in", event, at: performance.now() });
      switch (event.type) {
        case "input_audio_buffer.speech_started":
          this.bargeIn(call);
          if (!call.playing) this.setState("listening");
          break;
        case "session.created":
        case "session.updated":
          call.silenceMs = this.silenceMs(event.session);
          break;
        case "input_audio_buffer.speech_stopped":
          // audio_end_ms includes the silence that ended the turn; the speech ended before it.
          call.speechEndedAt = this.capturedAt(
            call,
            (event.audio_end_ms || call.appendedMs) - (call.silenceMs || 0),
          );
          this.pendingCaption("user", event.item_id);
          this.setState("thinking");
          break;
        case "conversation.item.input_audio_transcription.completed":
          this.caption("user", event.item_id, (event.transcript || "").trim(), true);
          break;
        case "conversation.item.input_audio_transcription.failed":
          this.caption("user", event.item_id, "", true);
          break;
        case "response.created":
          call.responseActive = true;
          call.responseId = (event.response && event.response.id) || null;
          call.responseItems = new Set();
          if (!call.playing) this.setState("thinking");
          break;
        case "response.output_item.added":
          if (event.item && event.item.id) this.noteResponseItem(call, event.response_id, event.item.id);
          break;
        case "response.output_audio.delta":
          this.noteResponseItem(call, event.response_id, event.item_id);
          this.queueAudio(call, event);
          break;
        case "response.output_audio.done":
          if (call.playback) call.playback.port.postMessage({ type: "end" });
          break;
        case "response.output_audio_transcript.delta":
        case "response.output_text.delta":
          if (!call.interrupted.has(event.item_id)) this.appendCaption(event.item_id, event.delta || "");
          break;
        case "response.output_audio_transcript.done":
        case "response.output_text.done":
          if (!call.interrupted.has(event.item_id)) {
            this.caption("assistant", event.item_id, event.transcript || event.text || "", true);
          }
          break;
        case "output_audio_buffer.started": // WebRTC: the agent's voice started playing
          call.playing = { itemId: [...call.responseItems].pop() || null, playedMs: 0 };
          if (call.speechEndedAt !== null) {
            const latencyMs = Math.round(performance.now() - call.speechEndedAt);
            call.speechEndedAt = null;
            this.emit("koe:turn", { itemId: call.playing.itemId, latencyMs });
          }
          this.setState("speaking");
          this.emit("koe:playback", { itemId: call.playing.itemId, playedMs: 0, state: "playing" });
          break;
        case "output_audio_buffer.stopped":
        case "output_audio_buffer.cleared":
          if (call.playing) {
            const state = event.type === "output_audio_buffer.stopped" ? "drained" : "interrupted";
            this.emit("koe:playback", { itemId: call.playing.itemId, playedMs: 0, state });
          }
          call.playing = null;
          if (LIVE_STATES.has(this.state) && this.state !== "reconnecting") {
            this.setState(call.responseActive ? "thinking" : "listening");
          }
          break;
        case "response.done":
          call.responseActive = false;
          call.responseWaiters.splice(0).forEach((resolve) => resolve());
          if (call.playback) call.playback.port.postMessage({ type: "end" });
          if (!call.playing && !call.audioQueued) this.setState("listening");
          break;
        case "error":
          this.onServerError(call, event.error || {});
          break;
        default:
          break;
      }
    }

    onServerError(call, error) {
      call.lastError = error;
      const code = error.code || "";
      // Refusals and endings are followed by the server closing the socket; onClose decides.
      if (code === "response_cancel_not_active") return; // the response had just finished
      if (code.startsWith("call_ended_") || MESSAGES[code]) return;
      // Anything else (a rejected event) leaves the call going; show it quietly.
      this.systemNote(error.message || "Something went wrong.");
    }

    onClose(call, socket, close) {
      if (this.call !== call || call.socket !== socket || call.closing) return;
      const code = (call.lastError && call.lastError.code) || "";
      if (NORMAL_ENDINGS.has(code)) {
        this.teardown().then(() => {
          this.systemNote(MESSAGES[code]);
          this.setState("ended", { message: MESSAGES[code], code });
        });
        return;
      }
      const retryable =
        code === "call_ended_server_shutdown" ||
        (!code && close.code !== 1000 && close.code < 4000 && close.code !== 1011);
      clearTimeout(call.stableTimer);
      if (retryable && this.mayReconnect(call)) {
        this.reconnect(call);
        return;
      }
      this.teardown().then(() => {
        if (!code && close.code === 1000) {
          this.setState("ended");
          return;
        }
        if (retryable) {
          // Dropped again after reconnecting: the connection keeps failing, not just once.
          this.fail(call.reconnects > 0 ? "connection_unstable" : "connection_lost");
          return;
        }
        this.fail(code || "connection_lost", MESSAGES[code] || (call.lastError && call.lastError.message));
      });
    }

    /** Within both limits: this retry series' delays and the call's total reconnects. */
    mayReconnect(call) {
      return call.attempts < RECONNECT_DELAYS_MS.length && call.reconnects < MAX_RECONNECTS_PER_CALL;
    }

    async reconnect(call) {
      const delay = RECONNECT_DELAYS_MS[call.attempts] * (0.8 + Math.random() * 0.4);
      call.attempts += 1;
      call.reconnects += 1;
      call.opened = false;
      await this.clearPlayback(call);
      call.playing = null;
      call.audioQueued = false;
      call.queuedItems.clear();
      // The next session starts with no response under way.
      call.responseActive = false;
      call.responseId = null;
      call.responseItems = new Set();
      if (call.attempts === 1) this.systemNote("Connection lost. Reconnecting…");
      this.setState("reconnecting");
      await new Promise((resolve) => setTimeout(resolve, delay));
      if (this.call !== call) return;
      try {
        await this.connect(call);
        this.systemNote("Reconnected.");
      } catch (error) {
        if (this.call !== call) return;
        const code = codeOf(error) || "network";
        if (code === "network" && this.mayReconnect(call)) {
          this.reconnect(call);
          return;
        }
        await this.teardown();
        if (code === "consent_changed") {
          // The prompt changed during the call: its next session needs a fresh answer.
          await this.askConsentAgain();
          return;
        }
        if (code === "network") {
          this.fail(call.reconnects >= MAX_RECONNECTS_PER_CALL ? "connection_unstable" : "connection_lost");
          return;
        }
        this.fail(code);
      }
    }

    /** Hang up: close the socket, stop the microphone's tracks, close the AudioContext. */
    async hangUp({ silent = false } = {}) {
      const wasLive = !!this.call;
      await this.teardown();
      if (wasLive && !silent) this.setState("ended");
    }

    async teardown() {
      const call = this.call;
      if (!call) return;
      this.call = null;
      call.closing = true;
      clearTimeout(call.stableTimer);
      if (call.socket && call.socket.readyState <= WebSocket.OPEN) call.socket.close(1000, "hang up");
      call.clearWaiters.forEach((resolve) => resolve({}));
      call.responseWaiters.forEach((resolve) => resolve());
      await this.releaseAudio(call);
    }

    async releaseAudio(call) {
      if (call.audio) call.audio.srcObject = null;
      if (call.stream) call.stream.getTracks().forEach((track) => track.stop());
      if (call.capture) call.capture.port.postMessage({ type: "stop" });
      if (call.context && call.context.state !== "closed") {
        try {
          await call.context.close();
        } catch (error) {
          /* already closing */
        }
      }
    }

    setMuted(muted) {
      this.muted = !!muted;
      this.ui.mute.setAttribute("aria-pressed", String(this.muted));
      this.ui.mute.textContent = this.muted ? "Unmute" : "Mute";
      if (this.call) this.applyMute(this.call);
      if (LIVE_STATES.has(this.state)) this.setState(this.state);
    }

    applyMute(call) {
      // A disabled track delivers silence: the server keeps hearing time pass, so a turn
      // cut short by muting still ends.
      if (call.stream) call.stream.getAudioTracks().forEach((track) => (track.enabled = !this.muted));
    }

    /** The text fallback: a user message, then a response (interrupting the agent). */
    async sendText(text) {
      const call = this.call;
      if (!call || !call.socket || call.socket.readyState !== WebSocket.OPEN) return;
      const itemId = `local_${Date.now().toString(36)}`;
      this.caption("user", itemId, text, true);
      await this.bargeIn(call);
      if (call.responseActive) {
        // One response at a time: cancel the agent's, and ask once it has finished.
        this.send({ type: "response.cancel" });
        await new Promise((resolve) => {
          call.responseWaiters.push(resolve);
          setTimeout(resolve, 3000);
        });
        if (this.call !== call) return;
      }
      this.send({
        type: "conversation.item.create",
        item: { type: "message", role: "user", content: [{ type: "input_text", text }] },
      });
      this.send({ type: "response.create" });
      this.setState("thinking");
    }

    // --- the agent's audio --------------------------------------------------------------------
    /** An item of a response; an item of a response the caller cut off is cut off too. */
    noteResponseItem(call, responseId, itemId) {
      if (!itemId) return;
      if (responseId && call.interruptedResponses.has(responseId)) call.interrupted.add(itemId);
      if (!responseId || responseId === call.responseId) call.responseItems.add(itemId);
    }

    queueAudio(call, event) {
      if (!call.playback || call.interrupted.has(event.item_id) || !event.delta) return;
      const samples = fromBase64(event.delta);
      const itemId = event.item_id;
      call.sentMs.set(itemId, (call.sentMs.get(itemId) || 0) + (samples.byteLength / 2 / PROTOCOL_RATE) * 1000);
      call.audioQueued = true;
      call.queuedItems.add(itemId);
      call.playback.port.postMessage({ type: "chunk", itemId, samples }, [samples]);
    }

    onPlayback(call, message) {
      if (this.call !== call) return;
      if (message.type === "cleared") {
        const waiters = call.clearWaiters.splice(0);
        waiters.forEach((resolve) => resolve(message));
        return;
      }
      if (message.type === "started") {
        call.playing = { itemId: message.itemId, playedMs: 0 };
        if (call.speechEndedAt !== null) {
          const latencyMs = Math.round(performance.now() - call.speechEndedAt);
          call.speechEndedAt = null;
          this.emit("koe:turn", { itemId: message.itemId, latencyMs });
        }
        this.setState("speaking");
        this.emit("koe:playback", { itemId: message.itemId, playedMs: 0, state: "playing" });
      } else if (message.type === "progress" && call.playing) {
        call.playing.playedMs = message.playedMs;
        this.emit("koe:playback", { itemId: message.itemId, playedMs: message.playedMs, state: "playing" });
      } else if (message.type === "drained") {
        call.playing = null;
        call.audioQueued = false;
        call.queuedItems.clear();
        this.emit("koe:playback", { itemId: message.itemId, playedMs: message.playedMs, state: "drained" });
        if (LIVE_STATES.has(this.state) && this.state !== "reconnecting") {
          this.setState(call.responseActive ? "thinking" : "listening");
        }
      }
    }

    clearPlayback(call) {
      if (!call.playback) return Promise.resolve({});
      return new Promise((resolve) => {
        call.clearWaiters.push(resolve);
        call.playback.port.postMessage({ type: "clear" });
      });
    }

    /**
     * The caller spoke over the agent (or typed): silence it now, drop the rest of what it
     * was saying, and tell the server how much of the item the caller actually heard.
     *
     * Cut off are the latest response (its items so far, and any later ones, by response id)
     * and every item with audio still in the player, even where none of it has played yet
     * (the response was still buffering). Only the item the player was playing is truncated,
     * at the milliseconds of it played (less the output latency, clamped to what arrived);
     * an item none of which was heard is not truncated.
     */
    async bargeIn(call) {
      if (call.useRtc) {
        // The server plays the audio: it cuts it off and truncates what was not heard (on
        // the caller's speech by itself; for typed words, when asked).
        if (call.playing) this.send({ type: "output_audio_buffer.clear" });
        if (call.responseActive && call.responseId) call.interruptedResponses.add(call.responseId);
        return;
      }
      // A finished response (no audio left, none coming) is not cut off: its captions stand.
      const speaking = call.audioQueued || call.responseActive;
      const cutOff = new Set(speaking ? [...call.queuedItems, ...call.responseItems] : []);
      if (call.responseActive && call.responseId) call.interruptedResponses.add(call.responseId);
      // Marked before awaiting the player, so deltas arriving meanwhile are dropped.
      cutOff.forEach((itemId) => call.interrupted.add(itemId));
      call.audioQueued = false;
      call.playing = null;
      call.queuedItems.clear();
      const cleared = await this.clearPlayback(call);
      const heardItem = cleared.playedMs > 0 ? cleared.itemId : null;
      if (heardItem) {
        cutOff.add(heardItem);
        call.interrupted.add(heardItem);
      }
      const latency = call.context ? (call.context.outputLatency || 0) * 1000 : 0;
      for (const itemId of cutOff) {
        let audioEndMs = 0;
        if (itemId === heardItem) {
          const heard = Math.max(0, Math.floor(cleared.playedMs - latency));
          audioEndMs = Math.min(heard, Math.floor(call.sentMs.get(itemId) || 0));
        }
        this.emit("koe:playback", { itemId, playedMs: audioEndMs, state: "interrupted" });
        const line = this.ui.captions.querySelector(`[data-item="${CSS.escape(itemId)}"]`);
        if (line) line.classList.add("interrupted");
        if (audioEndMs > 0) {
          this.send({
            type: "conversation.item.truncate",
            item_id: itemId,
            content_index: 0,
            audio_end_ms: audioEndMs,
          });
        }
      }
    }

    // --- captions ------------------------------------------------------------------------------
    captionLine(role, itemId) {
      let line = itemId ? this.ui.captions.querySelector(`[data-item="${CSS.escape(itemId)}"]`) : null;
      if (!line) {
        line = document.createElement("li");
        line.className = role;
        if (itemId) line.dataset.item = itemId;
        const who = document.createElement("span");
        who.className = "who";
        who.textContent = role === "user" ? "You" : (this.config && this.config.name) || "Assistant";
        const text = document.createElement("span");
        text.className = "text";
        line.append(who, text);
        this.ui.captions.append(line);
      }
      return line;
    }

    pendingCaption(role, itemId) {
      const line = this.captionLine(role, itemId);
      if (!line.querySelector(".text").textContent) {
        line.classList.add("pending");
        line.querySelector(".text").textContent = "…";
      }
      this.scrollCaptions();
    }

    appendCaption(itemId, delta) {
      const line = this.captionLine("assistant", itemId);
      line.querySelector(".text").textContent += delta;
      this.emit("koe:caption", { role: "assistant", itemId, text: line.querySelector(".text").textContent, final: false });
      this.scrollCaptions();
    }

    caption(role, itemId, text, final) {
      if (!text) {
        const line = itemId && this.ui.captions.querySelector(`[data-item="${CSS.escape(itemId)}"]`);
        if (line) line.remove(); // nothing was recognised
        return;
      }
      const line = this.captionLine(role, itemId);
      line.classList.remove("pending");
      line.querySelector(".text").textContent = text;
      this.emit("koe:caption", { role, itemId, text, final });
      this.scrollCaptions();
    }

    systemNote(text) {
      const line = document.createElement("li");
      line.className = "system";
      line.textContent = text;
      this.ui.captions.append(line);
      this.scrollCaptions();
    }

    scrollCaptions() {
      const body = this.root.querySelector(".body");
      body.scrollTop = body.scrollHeight;
    }
  }

  if (!customElements.get("koe-agent")) customElements.define("koe-agent", KoeAgent);

  // The one-line embed: the script tag's data-key adds the element to the page.
  function embedFromScript() {
    if (!SCRIPT || !SCRIPT.dataset.key) return;
    const element = document.createElement("koe-agent");
    for (const name of ["key", "agent", "host", "label", "color", "position", "transport"]) {
      if (SCRIPT.dataset[name]) element.setAttribute(name, SCRIPT.dataset[name]);
    }
    document.body.append(element);
  }
  if (document.body) embedFromScript();
  else document.addEventListener("DOMContentLoaded", embedFromScript);
})();
