/* Koe widget: microphone capture (AudioWorklet module).
 *
 * Runs on the audio rendering thread. Takes the microphone at the AudioContext's own rate
 * (44.1 or 48 kHz, whatever the device runs at), mixes it to mono, resamples it to the
 * Realtime protocol's 24 kHz and posts PCM16 chunks of `chunkMs` (default 40 ms) to the
 * main thread as transferred ArrayBuffers. Resampling is a two-tap low-pass (a zero at
 * the input's Nyquist frequency, against aliasing) followed by linear interpolation:
 * plenty for speech, which the server resamples to 16 kHz for recognition anyway.
 */
class KoeCaptureProcessor extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const settings = (options && options.processorOptions) || {};
    this.targetRate = settings.targetRate || 24000;
    this.chunkSamples = Math.round((this.targetRate * (settings.chunkMs || 40)) / 1000);
    this.step = sampleRate / this.targetRate; // input samples per output sample
    this.nextOutputAt = 0; // input-sample position of the next output sample
    this.inputIndex = 0; // absolute index of the input sample being read
    this.previousRaw = 0;
    this.previousSmoothed = 0;
    this.chunk = new Int16Array(this.chunkSamples);
    this.filled = 0;
    this.running = true;
    this.port.onmessage = (message) => {
      if (message.data && message.data.type === "stop") this.running = false;
    };
  }

  emit(value) {
    const clamped = Math.max(-1, Math.min(1, value));
    this.chunk[this.filled++] = clamped < 0 ? clamped * 0x8000 : clamped * 0x7fff;
    if (this.filled === this.chunkSamples) {
      this.port.postMessage(this.chunk.buffer, [this.chunk.buffer]);
      this.chunk = new Int16Array(this.chunkSamples);
      this.filled = 0;
    }
  }

  process(inputs) {
    if (!this.running) return false;
    const channels = inputs[0];
    if (!channels || channels.length === 0) return true; // no input connected yet
    const frames = channels[0].length;
    for (let frame = 0; frame < frames; frame++) {
      let raw = 0;
      for (let channel = 0; channel < channels.length; channel++) raw += channels[channel][frame];
      raw /= channels.length;
      const smoothed = 0.5 * (raw + this.previousRaw);
      this.previousRaw = raw;
      // Every output instant between the previous input sample and this one.
      while (this.nextOutputAt <= this.inputIndex) {
        const fraction = this.nextOutputAt - (this.inputIndex - 1);
        this.emit(this.previousSmoothed + (smoothed - this.previousSmoothed) * fraction);
        this.nextOutputAt += this.step;
      }
      this.previousSmoothed = smoothed;
      this.inputIndex += 1;
    }
    return true;
  }
}

registerProcessor("koe-capture", KoeCaptureProcessor);
