// The agent's media leg for one call: an RTCPeerConnection offered to the
// bridge (complete, non-trickle), and repaired with an ICE restart when the
// path breaks during the call.

import { completeOffer, preferCodec } from './peer.js';

// A brief "disconnected" often heals by itself (Wi-Fi roaming); "failed" never does.
const DISCONNECTED_GRACE_MS = 2000;
// An ICE restart nobody answered stops blocking the next one after this.
const RESTART_ANSWER_LIMIT_MS = 10_000;

export class MediaLeg {
  #options;
  #settle;
  #disconnectTimer = 0;
  #restartedAt = 0;
  pc = null;
  sender = null;
  closed = false;

  /**
   * options: iceServers, codec, signal(sdp) (sends rtc_offer),
   * onRemoteStream(stream), mayRestart() (true while a call is up and the
   * offer can be sent), onRestart(), onError(text).
   */
  constructor(callId, options) {
    this.callId = callId;
    this.#options = options;
    // Settles once the first offer is out, or once it never will be.
    this.offerSent = new Promise((resolve) => {
      this.#settle = resolve;
    });
  }

  get state() {
    return this.pc?.connectionState ?? null;
  }

  /** Opens the connection with the microphone (receive-only without one) and sends the first offer. */
  async open(mic, micEnabled) {
    try {
      if (this.closed) return;
      this.pc = new RTCPeerConnection({ iceServers: this.#options.iceServers });
      const transceiver = this.#addMicrophone(mic, micEnabled);
      preferCodec(transceiver, this.#options.codec);
      this.pc.addEventListener('track', (event) => {
        this.#options.onRemoteStream(event.streams[0] ?? new MediaStream([event.track]));
      });
      this.pc.addEventListener('connectionstatechange', () => this.checkHealth());
      await this.#offer({});
    } finally {
      this.#settle();
    }
  }

  #addMicrophone(mic, micEnabled) {
    const track = mic?.getAudioTracks()[0];
    if (!track) {
      // No microphone: still negotiate, so the agent can at least hear the caller.
      const transceiver = this.pc.addTransceiver('audio', { direction: 'sendrecv' });
      this.sender = transceiver.sender;
      return transceiver;
    }
    track.enabled = micEnabled;
    this.sender = this.pc.addTrack(track, mic);
    return this.pc.getTransceivers().find((t) => t.sender === this.sender);
  }

  async #offer(options) {
    const sdp = await completeOffer(this.pc, options);
    if (!this.closed) this.#options.signal(sdp);
  }

  /** The bridge's answer to our latest offer. */
  async accept(sdp) {
    try {
      await this.pc.setRemoteDescription({ type: 'answer', sdp });
    } finally {
      this.#restartedAt = 0;
    }
  }

  replaceTrack(track) {
    return this.sender?.replaceTrack(track);
  }

  /** Reacts to a connection state (the current one unless given). */
  checkHealth(state = this.state) {
    clearTimeout(this.#disconnectTimer);
    if (this.closed || !this.#options.mayRestart()) return;
    if (state === 'failed') this.restartIce();
    else if (state === 'disconnected') this.#disconnectTimer = setTimeout(() => this.restartIce(), DISCONNECTED_GRACE_MS);
  }

  restartIce() {
    const inFlight = this.#restartedAt && performance.now() - this.#restartedAt < RESTART_ANSWER_LIMIT_MS;
    if (this.closed || !this.pc || inFlight || !this.#options.mayRestart()) return;
    this.#restartedAt = performance.now();
    this.#options.onRestart();
    this.#offer({ iceRestart: true }).catch((err) => {
      this.#restartedAt = 0;
      this.#options.onError(`The call audio could not be reconnected: ${err.message}`);
    });
  }

  close() {
    this.closed = true;
    this.#settle();
    clearTimeout(this.#disconnectTimer);
    this.pc?.close();
  }
}
