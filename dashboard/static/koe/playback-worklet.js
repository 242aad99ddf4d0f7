/* Koe widget: the agent's voice (AudioWorklet module), a small jitter buffer.
 *
 * The main thread posts the agent's audio as it arrives ({type: "chunk", itemId, samples}:
 * PCM16 mono at 24 kHz); this processor plays it at the AudioContext's rate (linear
 * interpolation) and counts, per conversation item, how much has actually been played,
 * which is what a barge-in truncates the item to.
 *
 * Jitter: playback of a burst starts once `startMs` of audio is queued, or at once when the
 * main thread says the response's audio is complete ({type: "end"}). Running dry before
 * the end is an underrun: it waits for `startMs` again rather than crackling.
 *
 * Messages out: {type: "started", itemId}, {type: "progress", itemId, playedMs} about every
 * 100 ms, {type: "drained", itemId, playedMs} when everything queued has played after an
 * "end", and {type: "cleared", itemId, playedMs} answering {type: "clear"} (barge-in).
 *
 * "cleared" names the item being played and how much of it was played, or itemId null and
 * playedMs 0 when nothing has started since the last drain (the next response was still
 * buffering): a drained item is finished, and must never be what a barge-in truncates.
 */
const SOURCE_RATE = 24000;

class KoePlaybackProcessor extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const settings = (options && options.processorOptions) || {};
    this.startSamples = Math.round((SOURCE_RATE * (settings.startMs || 80)) / 1000);
    this.step = SOURCE_RATE / sampleRate; // source samples per output sample
    this.queue = []; // [{itemId, samples: Float32Array, offset}]
    this.queued = 0; // source samples waiting
    this.playing = false;
    this.ended = false; // the current response's audio is complete
    this.fraction = 0;
    this.previous = 0;
    this.next = 0;
    this.itemId = null; // the item whose audio is playing
    this.played = 0; // source samples of that item played
    this.sinceProgress = 0;
    this.progressEvery = Math.round(sampleRate / 10);
    this.port.onmessage = (message) => this.command(message.data);
  }

  command(data) {
    if (data.type === "chunk") {
      const pcm = new Int16Array(data.samples);
      const samples = new Float32Array(pcm.length);
      for (let i = 0; i < pcm.length; i++) samples[i] = pcm[i] / 0x8000;
      this.queue.push({ itemId: data.itemId, samples, offset: 0 });
      this.queued += samples.length;
      this.ended = false;
    } else if (data.type === "end") {
      this.ended = true;
    } else if (data.type === "clear") {
      this.port.postMessage({ type: "cleared", itemId: this.itemId, playedMs: this.playedMs() });
      this.reset();
    }
  }

  reset() {
    this.queue = [];
    this.queued = 0;
    this.playing = false;
    this.ended = false;
    this.fraction = 0;
    this.previous = 0;
    this.next = 0;
    this.itemId = null;
    this.played = 0;
  }

  playedMs() {
    return Math.floor((this.played * 1000) / SOURCE_RATE);
  }

  // The next source sample, or null when the queue is dry.
  take() {
    while (this.queue.length && this.queue[0].offset >= this.queue[0].samples.length) {
      this.queue.shift();
    }
    if (!this.queue.length) return null;
    const head = this.queue[0];
    if (head.itemId !== this.itemId) {
      this.itemId = head.itemId;
      this.played = 0;
      this.port.postMessage({ type: "started", itemId: this.itemId });
    }
    this.queued -= 1;
    this.played += 1;
    return head.samples[head.offset++];
  }

  process(inputs, outputs) {
    const output = outputs[0][0];
    if (!this.playing) {
      if (this.queued > 0 && (this.queued >= this.startSamples || this.ended)) {
        this.playing = true;
      } else {
        return true; // silence until enough is buffered
      }
    }
    for (let frame = 0; frame < output.length; frame++) {
      output[frame] = this.previous + (this.next - this.previous) * this.fraction;
      this.fraction += this.step;
      while (this.fraction >= 1) {
        this.fraction -= 1;
        const sample = this.take();
        this.previous = this.next;
        if (sample === null) {
          this.next = 0;
          this.fraction = 0;
          this.playing = false;
          if (this.ended) {
            this.port.postMessage({
              type: "drained",
              itemId: this.itemId,
              playedMs: this.playedMs(),
            });
            this.ended = false;
            // Finished: nothing is playing until the next item starts.
            this.itemId = null;
            this.played = 0;
          }
          return true;
        }
        this.next = sample;
      }
    }
    this.sinceProgress += output.length;
    if (this.sinceProgress >= this.progressEvery) {
      this.sinceProgress = 0;
      this.port.postMessage({ type: "progress", itemId: this.itemId, playedMs: this.playedMs() });
    }
    return true;
  }
}

registerProcessor("koe-playback", KoePlaybackProcessor);
