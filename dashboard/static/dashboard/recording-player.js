// Keeps a call's transcript in step with its recording: the turn being played is
// highlighted, and selecting a turn plays the recording from there.
//
// Turns carry data-offset-ms (milliseconds from the call's start); the panel carries
// data-recording-offset-ms (when the recording started, on the same clock).
(function () {
  "use strict";

  function setUp(panel) {
    const audio = panel.querySelector("audio[data-recording-player]");
    if (!audio) return;
    const status = panel.querySelector("[data-recording-status]");
    const recordingOffset = Number(panel.dataset.recordingOffsetMs) || 0;
    const turns = Array.from(document.querySelectorAll("[data-offset-ms]"))
      .map((element) => ({ element, at: Number(element.dataset.offsetMs) - recordingOffset }))
      .filter((turn) => Number.isFinite(turn.at))
      .sort((a, b) => a.at - b.at);
    let current = null;

    function turnAt(milliseconds) {
      let found = null;
      for (const turn of turns) {
        if (turn.at > milliseconds) break;
        found = turn;
      }
      return found;
    }

    function highlight() {
      const playing = turnAt(audio.currentTime * 1000);
      if (playing === current) return;
      if (current) {
        current.element.classList.remove("is-playing");
        current.element.removeAttribute("aria-current");
      }
      current = playing;
      if (current) {
        current.element.classList.add("is-playing");
        current.element.setAttribute("aria-current", "true");
      }
    }

    function playFrom(turn) {
      audio.currentTime = Math.max(0, turn.at) / 1000;
      highlight();
      // The browser may refuse to start playback by itself; the position is set anyway.
      audio.play().catch(() => {});
    }

    for (const turn of turns) {
      const element = turn.element;
      element.classList.add("is-seekable");
      if (!element.hasAttribute("tabindex")) element.tabIndex = 0;
      element.title = "Play the recording from here";
      element.addEventListener("click", (event) => {
        // Links, buttons and selected text inside a turn keep their own behaviour.
        if (event.target.closest("a, button, input, summary")) return;
        if (String(window.getSelection() || "")) return;
        playFrom(turn);
      });
      element.addEventListener("keydown", (event) => {
        if (event.target !== element) return;
        if (event.key === "Enter" || event.key === " ") {
          event.preventDefault();
          playFrom(turn);
        }
      });
    }

    audio.addEventListener("timeupdate", highlight);
    audio.addEventListener("seeked", highlight);
    audio.addEventListener("error", () => {
      if (status) {
        status.textContent =
          "The recording could not be loaded (its link may have expired). Reload the page to try again.";
      }
    });
  }

  document.querySelectorAll("[data-recording-offset-ms]").forEach(setUp);
})();
