// Listens to the audio received from the bridge, for window.hotlineTest:
// its level, the share of a frequency, and when a tone first arrived.

import { StreamAnalyser } from './audio.js';

// 4096-point FFT at 48 kHz: 11.7 Hz bins, so a ±2-bin band around 440 Hz
// leaves out the hold music's nearest note (392 Hz); `share` uses it.
const FFT_SIZE = 4096;
const BAND_HALF_WIDTH_BINS = 2;
// A tone's arrival is judged on the newest 20 ms alone, so its moment is
// known to 10-20 ms: "there" when it holds half their energy at an audible
// level. Over 20 ms, 392 Hz leaks under 5% into a 440 Hz term.
const ONSET_WINDOW_MS = 20;
const TONE_MIN_SHARE = 0.5;
const TONE_MIN_DBFS = -50;
const WATCH_EVERY_MS = 10;

export class RemoteProbe {
  #analyser = null;
  #timer = 0;
  #watched = new Set([440]);
  #seen = new Map(); // frequency -> performance.now() of its first detection

  attach(stream) {
    this.detach();
    this.#analyser = new StreamAnalyser(stream, FFT_SIZE);
    this.#seen.clear(); // a new leg: nothing heard on it yet
    this.#timer = setInterval(() => this.#watch(), WATCH_EVERY_MS);
  }

  detach() {
    clearInterval(this.#timer);
    this.#timer = 0;
    this.#analyser?.close();
    this.#analyser = null;
  }

  /** Forget what was heard: detection starts over (at an answer). */
  restart() {
    this.#seen.clear();
  }

  firstSeen(freqHz) {
    this.#watched.add(freqHz);
    return this.#seen.get(freqHz) ?? null;
  }

  level() {
    return this.#analyser ? this.#analyser.level().rms : -Infinity;
  }

  share(freqHz) {
    return this.#analyser ? this.#analyser.bandShare(freqHz, BAND_HALF_WIDTH_BINS) : 0;
  }

  #watch() {
    if (!this.#analyser) return;
    for (const freq of this.#watched) {
      if (this.#seen.has(freq)) continue;
      const { share, dbfs } = this.#analyser.recentTone(freq, ONSET_WINDOW_MS);
      if (dbfs >= TONE_MIN_DBFS && share >= TONE_MIN_SHARE) this.#seen.set(freq, performance.now());
    }
  }
}
