// A live input level meter: an element with role="meter" and a <span> bar.

import { StreamAnalyser } from './audio.js';

const FLOOR_DB = -60;

export function levelFraction(dbfs) {
  if (!Number.isFinite(dbfs)) return 0;
  return Math.min(1, Math.max(0, (dbfs - FLOOR_DB) / -FLOOR_DB));
}

export class LevelMeter {
  #element;
  #bar;
  #analyser = null;
  #frame = 0;
  #shownPercent = -1;
  latest = { rms: -Infinity, peak: -Infinity };
  onLevel = null;

  constructor(element) {
    this.#element = element;
    this.#bar = element.querySelector('span');
  }

  attach(stream) {
    this.detach();
    this.#analyser = new StreamAnalyser(stream, 1024);
    this.#frame = requestAnimationFrame(() => this.#draw());
  }

  detach() {
    cancelAnimationFrame(this.#frame);
    this.#analyser?.close();
    this.#analyser = null;
    this.latest = { rms: -Infinity, peak: -Infinity };
    this.#show(0, false);
  }

  #draw() {
    this.latest = this.#analyser.level();
    this.#show(levelFraction(this.latest.rms), this.latest.peak > -1);
    this.onLevel?.(this.latest);
    this.#frame = requestAnimationFrame(() => this.#draw());
  }

  #show(fraction, clipping) {
    // transform only: the bar moves on the compositor, without layout.
    this.#bar.style.transform = `scaleX(${fraction.toFixed(3)})`;
    this.#element.dataset.clipping = String(clipping);
    const percent = Math.round(fraction * 20) * 5;
    if (percent !== this.#shownPercent) {
      this.#shownPercent = percent;
      this.#element.setAttribute('aria-valuenow', String(percent));
    }
  }
}
