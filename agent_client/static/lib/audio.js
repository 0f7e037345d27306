// Microphone, level and tone analysis, ringtone and keypad feedback, all on
// one shared AudioContext (no audio files: everything is synthesised).

let sharedContext = null;

export function audioContext() {
  sharedContext ??= new AudioContext({ latencyHint: 'interactive' });
  return sharedContext;
}

/** Browsers start an AudioContext suspended until a user gesture; call this from one. */
export function resumeAudio() {
  const ctx = audioContext();
  if (ctx.state === 'suspended') ctx.resume().catch(() => {});
}

export async function openMicrophone(deviceId) {
  const audio = { echoCancellation: true, noiseSuppression: true, autoGainControl: true };
  if (deviceId) audio.deviceId = { exact: deviceId };
  try {
    return await navigator.mediaDevices.getUserMedia({ audio, video: false });
  } catch (err) {
    // A remembered device that was unplugged: fall back to the default one.
    if (deviceId && err.name === 'OverconstrainedError') return openMicrophone(null);
    throw err;
  }
}

/** Plain words for a getUserMedia failure. */
export function microphoneProblem(err) {
  switch (err?.name) {
    case 'NotAllowedError':
    case 'SecurityError':
      return 'The browser blocked the microphone. Allow it for this site (the icon in the address bar), then try again.';
    case 'NotFoundError':
      return 'No microphone found. Plug one in, then try again.';
    case 'NotReadableError':
      return 'Another program is using the microphone. Close it, then try again.';
    default:
      return `The microphone could not start (${err?.name ?? 'unknown error'}).`;
  }
}

export function toDbfs(amplitude) {
  return amplitude > 0 ? 20 * Math.log10(amplitude) : -Infinity;
}

/** Reads a stream's level and spectrum without playing it. */
export class StreamAnalyser {
  constructor(stream, fftSize = 1024) {
    const ctx = audioContext();
    this.source = ctx.createMediaStreamSource(stream);
    this.node = ctx.createAnalyser();
    this.node.fftSize = fftSize;
    this.node.smoothingTimeConstant = 0;
    this.source.connect(this.node);
    this.samples = new Float32Array(fftSize);
    this.bins = new Float32Array(fftSize / 2);
  }

  /** {rms, peak} of the latest window, both in dBFS. */
  level() {
    this.node.getFloatTimeDomainData(this.samples);
    let sum = 0;
    let peak = 0;
    for (const x of this.samples) {
      sum += x * x;
      peak = Math.max(peak, Math.abs(x));
    }
    return { rms: toDbfs(Math.sqrt(sum / this.samples.length)), peak: toDbfs(peak) };
  }

  /**
   * Share (0..1) of the energy of the newest `ms` of audio at freqHz, with
   * its level in dBFS. A Goertzel term on the raw newest samples: unlike the
   * FFT, whose window tapers the newest samples to nothing, it sees a tone
   * as soon as `ms` of it have arrived.
   */
  recentTone(freqHz, ms = 20) {
    this.node.getFloatTimeDomainData(this.samples);
    const rate = this.node.context.sampleRate;
    const n = Math.min(this.samples.length, Math.round((rate * ms) / 1000));
    const recent = this.samples.subarray(this.samples.length - n);
    const w = (2 * Math.PI * freqHz) / rate;
    let re = 0;
    let im = 0;
    let energy = 0;
    recent.forEach((x, i) => {
      re += x * Math.cos(w * i);
      im -= x * Math.sin(w * i);
      energy += x * x;
    });
    const meanSquare = energy / n;
    // A sine of amplitude A gives A²/2 here, which is also its mean square.
    const tonePower = (2 * (re * re + im * im)) / (n * n);
    return { share: meanSquare > 0 ? Math.min(1, tonePower / meanSquare) : 0, dbfs: toDbfs(Math.sqrt(meanSquare)) };
  }

  /** Share (0..1) of the window's energy within ±halfWidth bins of freqHz. */
  bandShare(freqHz, halfWidth = 2) {
    this.node.getFloatFrequencyData(this.bins);
    const binHz = this.node.context.sampleRate / this.node.fftSize;
    const centre = Math.round(freqHz / binHz);
    let band = 0;
    let total = 0;
    this.bins.forEach((db, i) => {
      const power = 10 ** (db / 10);
      total += power;
      if (Math.abs(i - centre) <= halfWidth) band += power;
    });
    return total > 0 ? band / total : 0;
  }

  close() {
    this.source.disconnect();
    this.node.disconnect();
  }
}

const RING_PERIOD_MS = 3000;
// Two soft notes, twice, then quiet: noticeable without being shrill.
const RING_NOTES = [
  [659.25, 0.0],
  [830.61, 0.22],
  [659.25, 0.9],
  [830.61, 1.12],
];

export class Ringer {
  #timer = 0;
  #out = null;
  muted = false;

  /** True while the ringtone is audible. */
  get ringing() {
    return this.#timer !== 0;
  }

  start() {
    if (this.muted || this.ringing) return;
    const ctx = audioContext();
    resumeAudio();
    this.#out = ctx.createGain();
    this.#out.connect(ctx.destination);
    this.#chime();
    this.#timer = setInterval(() => this.#chime(), RING_PERIOD_MS);
  }

  stop() {
    clearInterval(this.#timer);
    this.#timer = 0;
    this.#out?.disconnect();
    this.#out = null;
  }

  setMuted(muted) {
    this.muted = muted;
    if (muted) this.stop();
  }

  #chime() {
    const t0 = audioContext().currentTime + 0.02;
    for (const [freq, at] of RING_NOTES) playNote(this.#out, freq, t0 + at, 0.35, 0.22);
  }
}

function playNote(out, freq, at, seconds, gain) {
  const ctx = out.context;
  const osc = ctx.createOscillator();
  const env = ctx.createGain();
  osc.frequency.value = freq;
  env.gain.setValueAtTime(0, at);
  env.gain.linearRampToValueAtTime(gain, at + 0.02);
  env.gain.exponentialRampToValueAtTime(0.001, at + seconds);
  osc.connect(env).connect(out);
  osc.start(at);
  osc.stop(at + seconds + 0.05);
}

const DTMF_ROWS = { 1: 697, 2: 697, 3: 697, A: 697, 4: 770, 5: 770, 6: 770, B: 770,
  7: 852, 8: 852, 9: 852, C: 852, '*': 941, 0: 941, '#': 941, D: 941 };
const DTMF_COLS = { 1: 1209, 4: 1209, 7: 1209, '*': 1209, 2: 1336, 5: 1336, 8: 1336, 0: 1336,
  3: 1477, 6: 1477, 9: 1477, '#': 1477, A: 1633, B: 1633, C: 1633, D: 1633 };

/** A short local keypad tone, so a key press is heard as well as seen. */
export function playDtmfFeedback(digit) {
  const ctx = audioContext();
  if (ctx.state !== 'running' || !DTMF_ROWS[digit]) return;
  const at = ctx.currentTime + 0.01;
  playNote(ctx.destination, DTMF_ROWS[digit], at, 0.12, 0.08);
  playNote(ctx.destination, DTMF_COLS[digit], at, 0.12, 0.08);
}
