// The agent's WebSocket to the bridge (docs/agent-protocol.md): versioned
// JSON messages, reconnection with backoff, and a heartbeat that notices a
// connection the network silently dropped.

export const PROTOCOL_VERSION = 1;

const FIRST_RETRY_MS = 500;
const MAX_RETRY_MS = 15_000;
const HEARTBEAT_MS = 20_000;

/**
 * The bridge keeps one socket per agent and closes the older one with 4001
 * when another tab connects (docs/agent-protocol.md).
 */
export const DISPLACED_CLOSE_CODE = 4001;

export function displacedByAnotherTab(closeEvent) {
  return closeEvent.code === DISPLACED_CLOSE_CODE;
}

/** The server ended the session (logout elsewhere, expiry): 1008 policy violation. */
export function sessionEnded(closeEvent) {
  return closeEvent.code === 1008;
}

export function socketUrl(path) {
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${location.host}${path}`;
}

export function retryDelay(attempt) {
  const base = Math.min(MAX_RETRY_MS, FIRST_RETRY_MS * 2 ** attempt);
  // Jitter keeps a room of agents from reconnecting in lockstep after a restart.
  return Math.round(base * (0.75 + Math.random() * 0.5));
}

/**
 * Events: `status` (detail: {status, attempt, retryAt}) where status is
 * `connecting`, `open`, `waiting` (a retry is scheduled) or `stopped`;
 * `message` (detail: the decoded message); `lost` (an open connection
 * closed; detail: {code, reason}).
 *
 * `shouldRetry(closeEvent)`, when given, can veto the automatic reconnection.
 */
export class AgentSocket extends EventTarget {
  #url;
  #ws = null;
  #attempt = 0;
  #retryTimer = 0;
  #heartbeatTimer = 0;
  #lastHeard = 0;
  #pingSentAt = 0;
  #stopped = false;
  status = 'connecting';
  retryAt = 0;

  constructor(path = '/ws/agent', { shouldRetry = () => true } = {}) {
    super();
    this.#url = socketUrl(path);
    this.shouldRetry = shouldRetry;
  }

  get attempt() {
    return this.#attempt;
  }

  connect() {
    this.#stopped = false;
    clearTimeout(this.#retryTimer);
    this.#setStatus('connecting');
    const ws = new WebSocket(this.#url);
    this.#ws = ws;
    ws.onopen = () => this.#onOpen(ws);
    ws.onmessage = (event) => this.#onMessage(event);
    ws.onclose = (event) => this.#onClose(ws, event);
  }

  /** Sends one message; false when there is no open connection to send it on. */
  send(type, fields = {}) {
    if (this.#ws?.readyState !== WebSocket.OPEN) return false;
    this.#ws.send(JSON.stringify({ v: PROTOCOL_VERSION, type, ...fields }));
    return true;
  }

  get isOpen() {
    return this.#ws?.readyState === WebSocket.OPEN;
  }

  /** Closes the connection as a network drop would; reconnection follows. */
  drop() {
    this.#ws?.close(4000, 'dropped on purpose');
  }

  stop() {
    this.#stopped = true;
    clearTimeout(this.#retryTimer);
    clearInterval(this.#heartbeatTimer);
    this.#ws?.close(1000);
    this.#ws = null;
    this.#setStatus('stopped');
  }

  #onOpen(ws) {
    if (ws !== this.#ws) return;
    this.#lastHeard = performance.now();
    this.#pingSentAt = 0;
    clearInterval(this.#heartbeatTimer);
    this.#heartbeatTimer = setInterval(() => this.#heartbeat(), HEARTBEAT_MS);
    this.#setStatus('open');
  }

  #onMessage(event) {
    this.#lastHeard = performance.now();
    let message;
    try {
      message = JSON.parse(event.data);
    } catch {
      console.warn('hotline: ignoring a message that is not JSON', event.data);
      return;
    }
    // Only a completed hello proves the server accepted us; an upgrade that
    // is closed at once must keep backing off.
    if (message?.type === 'hello') this.#attempt = 0;
    this.dispatchEvent(new CustomEvent('message', { detail: message }));
  }

  #onClose(ws, event = { code: 1006, reason: '' }) {
    if (ws !== this.#ws) return;
    const wasOpen = this.status === 'open';
    this.#ws = null;
    clearInterval(this.#heartbeatTimer);
    if (wasOpen) this.dispatchEvent(new CustomEvent('lost', { detail: { code: event.code, reason: event.reason } }));
    if (this.#stopped) return;
    if (!this.shouldRetry(event)) {
      this.#stopped = true;
      this.#setStatus('stopped');
      return;
    }
    const delay = retryDelay(this.#attempt);
    this.#attempt += 1;
    this.retryAt = Date.now() + delay;
    this.#retryTimer = setTimeout(() => this.connect(), delay);
    this.#setStatus('waiting');
  }

  // Judged against the previous ping rather than a fixed time, because a
  // hidden tab's timers may be throttled to once a minute.
  #heartbeat() {
    if (this.#pingSentAt && this.#lastHeard < this.#pingSentAt) {
      this.#abandon(); // a whole heartbeat without a word: the connection is gone
      return;
    }
    this.#pingSentAt = performance.now();
    this.send('ping', { t: this.#pingSentAt });
  }

  // A dead TCP connection can take minutes to report its close; stop
  // waiting for it and start over.
  #abandon() {
    const ws = this.#ws;
    if (!ws) return;
    ws.onclose = null;
    ws.onmessage = null;
    ws.close();
    this.#onClose(ws);
  }

  #setStatus(status) {
    this.status = status;
    this.dispatchEvent(new CustomEvent('status', {
      detail: { status, attempt: this.#attempt, retryAt: this.retryAt },
    }));
  }
}

/** Resolves with the round-trip time in ms of one `ping`, or rejects after `limitMs`. */
export function measurePing(socket, limitMs = 3000) {
  return new Promise((resolve, reject) => {
    const t = performance.now();
    const onMessage = (event) => {
      const message = event.detail;
      if (message?.type !== 'pong' || message.t !== t) return;
      finish();
      resolve(performance.now() - t);
    };
    const finish = () => {
      clearTimeout(timer);
      socket.removeEventListener('message', onMessage);
    };
    const timer = setTimeout(() => {
      finish();
      reject(new Error('no pong'));
    }, limitMs);
    socket.addEventListener('message', onMessage);
    if (!socket.send('ping', { t })) {
      finish();
      reject(new Error('not connected'));
    }
  });
}
