/* The dashboard's test console: the widget (tokens minted for the logged-in member) and a
 * live panel of what it says and hears, built from the widget's koe:* DOM events.
 *
 * Audio events (input_audio_buffer.append, response.output_audio.delta) arrive 25 and 5
 * times a second: runs of them are folded into one row with a count and the audio's length
 * unless "Show audio events one by one" is ticked. At most MAX_ROWS rows are kept.
 */
(() => {
  "use strict";

  const MAX_ROWS = 600;
  const AUDIO_EVENTS = new Set(["input_audio_buffer.append", "response.output_audio.delta"]);
  const container = document.getElementById("console-call");
  const log = document.getElementById("console-events");
  const showAudio = document.getElementById("console-audio-events");
  const turns = document.getElementById("console-turns");
  const tools = document.getElementById("console-tools");
  const config = JSON.parse(document.getElementById("koe-console-config").textContent);
  let startedAt = null;
  // Folded audio rows being counted, by event type, since the last other event.
  let folded = new Map();
  const toolRows = new Map(); // call_id -> <li>

  const widget = document.createElement("koe-agent");
  widget.setAttribute("mode", "inline");
  widget.config = config;
  // The widget passes the version of the consent text it showed; the server records those
  // words, or refuses (409 consent_changed) if the agent's prompt changed since this page
  // was rendered.
  widget.tokenProvider = async (consent, { consentVersion = null } = {}) => {
    const response = await fetch(container.dataset.tokenUrl, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": container.dataset.csrfToken },
      body: JSON.stringify({ consent, consent_version: consentVersion }),
    });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) {
      // The refusal carries the current settings: the widget's "Try again" then asks in
      // the new words instead of repeating the stale ones.
      if (body.config) {
        widget.config = body.config;
        widget.applyConfig();
      }
      const error = new Error((body.error && body.error.message) || `HTTP ${response.status}`);
      error.code = (body.error && body.error.code) || "network";
      throw error;
    }
    return body;
  };
  container.append(widget);

  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function clock(at) {
    if (startedAt === null) startedAt = at;
    return `+${((at - startedAt) / 1000).toFixed(3)}s`;
  }

  // Milliseconds of PCM16 24 kHz audio in a base64 string.
  function audioMs(base64) {
    return ((base64 || "").length * 3) / 4 / 2 / 24;
  }

  function keepScrolled(append) {
    const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
    append();
    while (log.children.length > MAX_ROWS) log.firstElementChild.remove();
    if (atBottom) log.scrollTop = log.scrollHeight;
  }

  // The arrow is for the eye; a screen reader hears who sent the event instead.
  function directionCell(direction) {
    const sender = direction === "in" ? "sent by Koe" : "sent by the widget";
    const cell = element("span", "direction");
    cell.title = sender;
    const arrow = element("span", null, direction === "in" ? "↓" : "↑");
    arrow.setAttribute("aria-hidden", "true");
    cell.append(arrow, element("span", "visually-hidden", sender));
    return cell;
  }

  function summaryCells(direction, at, type, extra) {
    return [
      element("span", "time", clock(at)),
      directionCell(direction),
      element("span", "type", type),
      element("span", "muted", extra || ""),
    ];
  }

  function addEvent({ direction, event, at }) {
    const type = event.type || "(no type)";
    if (AUDIO_EVENTS.has(type) && !showAudio.checked) {
      const ms = audioMs(event.audio || event.delta);
      let row = folded.get(type);
      if (row && row.isConnected) {
        row.count += 1;
        row.ms += ms;
      } else {
        row = element("li", `collapsed-row ${direction}`);
        row.count = 1;
        row.ms = ms;
        const line = element("div", "collapsed");
        line.append(...summaryCells(direction, at, type));
        row.append(line);
        folded.set(type, row);
        keepScrolled(() => log.append(row));
      }
      row.querySelector(".muted").textContent = `× ${row.count} (${Math.round(row.ms)} ms of audio)`;
      return;
    }
    folded = new Map();
    keepScrolled(() => {
      const row = element("li", `${direction}${type === "error" ? " error" : ""}`);
      const details = element("details");
      const summary = element("summary");
      const hint = event.error ? event.error.code || "" : event.item_id || "";
      summary.append(...summaryCells(direction, at, type, hint));
      const json = element("pre");
      // Built when first opened: most rows are never read, and their JSON can be long. A click
      // on the summary (Enter and Space click it too) runs before the row opens, so the row
      // never shows an empty box; "toggle" would fire only after it had opened.
      summary.addEventListener("click", () => {
        if (!json.textContent) json.textContent = JSON.stringify(event, null, 2);
      });
      details.append(summary, json);
      row.append(details);
      log.append(row);
    });
    trackTools(event, direction);
  }

  // The agent's tools, which Koe runs, arrive as hosted tool calls (mcp_call items); a
  // function the page declared itself would arrive as a function_call.
  function trackTools(event, direction) {
    if (direction !== "in") return;
    const item = event.item;
    if (
      (event.type === "response.output_item.added" || event.type === "response.output_item.done") &&
      item && (item.type === "mcp_call" || item.type === "function_call") && !toolRows.has(item.id)
    ) {
      const row = element("li");
      row.append(
        element("strong", "mono", item.name || "function"),
        " ",
        element("code", "tool-arguments", item.arguments || "{}"),
        element("span", "tool-output", "running…"),
      );
      toolRows.set(item.id, row);
      tools.append(row);
      document.getElementById("console-tools-empty").hidden = true;
    }
    const callId = event.item_id;
    if (
      (event.type === "response.mcp_call_arguments.done" ||
        event.type === "response.function_call_arguments.done") &&
      toolRows.has(callId)
    ) {
      toolRows.get(callId).querySelector(".tool-arguments").textContent = event.arguments || "{}";
    }
    if (
      event.type === "conversation.item.done" && item && item.type === "mcp_call" &&
      toolRows.has(item.id) && (item.output !== null || item.error)
    ) {
      const result = item.output !== null ? item.output : (item.error && item.error.message) || "";
      toolRows.get(item.id).querySelector(".tool-output").textContent = `→ ${result}`;
    }
  }

  widget.addEventListener("koe:event", (event) => addEvent(event.detail));
  widget.addEventListener("koe:turn", (event) => {
    turns.append(element("li", null, `${event.detail.latencyMs} ms`));
    document.getElementById("console-turns-empty").hidden = true;
  });
  widget.addEventListener("koe:state", (event) => {
    if (event.detail.state === "connecting" && event.detail.previous !== "reconnecting") {
      startedAt = null;
    }
  });
  showAudio.addEventListener("change", () => {
    folded = new Map();
  });
  document.getElementById("console-clear").addEventListener("click", () => {
    log.replaceChildren();
    folded = new Map();
  });
})();
