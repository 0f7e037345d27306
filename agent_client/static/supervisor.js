// The supervisor's wallboard: the floor as the bridge pushes it (never
// polled), and one WebRTC leg per call the supervisor steps into. A mode
// change is one message: the bridge rewires its conference, the leg stays.

import { openMicrophone, resumeAudio } from './lib/audio.js';
import { formatDuration, formatTime } from './lib/format.js';
import { MediaLeg } from './lib/media-leg.js';
import { loadRecordings, renderRecordings } from './lib/recordings.js';
import { RemoteProbe } from './lib/remote-probe.js';
import { AgentSocket, sessionEnded } from './lib/socket.js';

const MODES = ['listen', 'whisper', 'barge'];
const MODE_LABELS = { listen: 'Listen', whisper: 'Whisper', barge: 'Barge' };
const STATE_LABELS = {
  logged_out: 'Signed out', available: 'Available', ringing: 'Ringing', on_call: 'On a call',
  wrap_up: 'Wrap-up', paused: 'Paused',
};
const CHART_COLOURS = ['#0e5a6e', '#a3261c', '#6b4fa0', '#2f7d32', '#b05f00', '#44546a'];
const CHART = { width: 600, height: 160, pad: 8 };

const byTestId = (id) => document.querySelector(`[data-testid="${id}"]`);
const ui = {
  name: byTestId('supervisor-name'),
  conn: byTestId('connection-status'),
  error: byTestId('supervisor-error'),
  errorText: byTestId('supervisor-error-text'),
  queues: byTestId('queues').tBodies[0],
  agents: byTestId('agents').tBodies[0],
  calls: byTestId('calls').tBodies[0],
  callsEmpty: byTestId('calls-empty'),
  chart: byTestId('waiting-chart'),
  legend: byTestId('chart-legend'),
  audio: byTestId('call-audio'),
  announcer: byTestId('announcer'),
  recordings: byTestId('recordings').tBodies[0],
  recordingsEmpty: byTestId('recordings-empty'),
};

const app = {
  hello: null,
  board: null,
  boardAt: 0, // performance.now() when the last board arrived: durations tick from it
  leg: null, // { callId, leg, mode }
  mic: null,
};
const probe = new RemoteProbe();
const socket = new AgentSocket('/ws/supervisor', { shouldRetry: (event) => !sessionEnded(event) });

// ---------------------------------------------------------------- messages

socket.addEventListener('status', (event) => showConnection(event.detail.status));
socket.addEventListener('message', (event) => {
  const message = event.detail;
  const handler = {
    hello: onHello,
    board: onBoard,
    joined: onJoined,
    mode: onMode,
    left: onLeft,
    error: onError,
  }[message.type];
  handler?.(message);
});
socket.addEventListener('lost', () => closeLeg());

function onHello(message) {
  app.hello = message;
  ui.name.textContent = message.supervisor.name;
  refreshRecordings();
}

function onBoard(message) {
  const ended = (app.board?.calls ?? []).some((old) => !message.calls.some((c) => c.call_id === old.call_id));
  // A recording is stored a moment after its call ends.
  if (ended) setTimeout(refreshRecordings, 4000);
  app.board = message;
  app.boardAt = performance.now();
  render();
}

async function onJoined(message) {
  if (app.leg?.callId !== message.call_id) return;
  app.leg.mode = message.mode;
  try {
    await app.leg.leg.accept(message.sdp);
  } catch (err) {
    showError(`The call audio could not be connected: ${err.message}`);
  }
  announce(`${MODE_LABELS[message.mode]} on the call.`);
  render();
}

function onMode(message) {
  if (app.leg?.callId !== message.call_id) return;
  app.leg.mode = message.mode;
  setMicrophone(message.mode !== 'listen');
  announce(`${MODE_LABELS[message.mode]}.`);
  render();
}

function onLeft(message) {
  if (app.leg?.callId !== message.call_id) return;
  closeLeg();
  announce(message.why === 'call_ended' ? 'The call ended.' : 'You left the call.');
  render();
}

function onError(message) {
  if (message.ref === 'join' && app.leg?.callId === message.call_id) closeLeg();
  showError(message.message);
  render();
}

// ------------------------------------------------------------------ stepping in

async function step(callId, mode) {
  resumeAudio();
  if (app.leg && app.leg.callId !== callId) leave();
  if (app.leg) {
    socket.send('mode', { call_id: callId, mode });
    return;
  }
  const entry = { callId, mode: null, leg: null };
  app.leg = entry;
  entry.leg = new MediaLeg(callId, {
    iceServers: app.hello?.ice_servers ?? [],
    codec: app.hello?.codec ?? 'PCMU',
    signal: (sdp) => socket.send('join', { call_id: callId, sdp, mode }),
    onRemoteStream: (stream) => {
      ui.audio.srcObject = stream;
      ui.audio.play().catch(() => {});
      probe.attach(stream);
    },
    mayRestart: () => false,
    onRestart: () => {},
    onError: showError,
  });
  try {
    app.mic ??= await openMicrophone(null);
  } catch {
    app.mic = null; // listening needs no microphone; whisper and barge will be silent
  }
  // The microphone is sent only while whispering or barging; listening sends silence.
  await entry.leg.open(app.mic, mode !== 'listen');
  render();
}

function leave() {
  if (!app.leg) return;
  socket.send('leave', { call_id: app.leg.callId });
  closeLeg();
  render();
}

function setMicrophone(on) {
  for (const track of app.mic?.getAudioTracks() ?? []) track.enabled = on;
}

function closeLeg() {
  app.leg?.leg?.close();
  app.leg = null;
  probe.detach();
  ui.audio.srcObject = null;
}

// ---------------------------------------------------------------- rendering

function render() {
  const board = app.board;
  if (!board) return;
  renderQueues(board.queues);
  renderCalls(board.calls, board.listening ?? {});
  renderAgents(board.agents);
  renderChart(board.history);
}

function since(iso) {
  if (!iso) return '';
  const boardAge = (performance.now() - app.boardAt) / 1000;
  const atBoard = (Date.parse(app.board.at) - Date.parse(iso)) / 1000;
  return formatDuration(Math.max(0, Math.round(atBoard + boardAge)));
}

function percent(share) {
  return share === null || share === undefined ? '—' : `${Math.round(share * 100)} %`;
}

function row(testId, cells) {
  const tr = document.createElement('tr');
  tr.dataset.testid = testId;
  for (const [text, cellId, warn] of cells) {
    const td = document.createElement('td');
    td.textContent = text;
    if (cellId) td.dataset.testid = cellId;
    if (warn) td.className = 'warn';
    tr.append(td);
  }
  return tr;
}

function renderQueues(queues) {
  ui.queues.replaceChildren(
    ...queues.map((q) =>
      row(`queue-row-${q.id}`, [
        [q.client.name + (q.id === q.client.id ? '' : ` · ${q.id}`)],
        [String(q.waiting), `queue-waiting-${q.id}`, q.waiting > 0],
        [since(q.longest_waiting_since) || '—', `queue-longest-${q.id}`],
        [percent(q.service_level), `queue-sl-${q.id}`, q.service_level !== null && q.service_level < 0.8],
        [`${q.abandoned} (${percent(q.abandonment)})`, `queue-abandoned-${q.id}`],
      ]),
    ),
  );
}

function renderAgents(agents) {
  ui.agents.replaceChildren(
    ...agents.map((a) => {
      const state = STATE_LABELS[a.state] ?? a.state;
      const noShow = a.no_shows.length ? ' · no-show' : '';
      return row(`agent-row-${a.login}`, [
        [a.name],
        [`${state}${a.reason ? ` (${a.reason})` : ''}${noShow}`, `agent-state-${a.login}`, a.no_shows.length > 0],
        [since(a.since)],
        [a.call ? `${a.call.client.name}, ${since(a.call.answered_at)}` : '—', `agent-call-${a.login}`],
        [String(a.calls_today)],
        [formatDuration(Math.round(a.talk_s_today))],
      ]);
    }),
  );
}

// The calls a supervisor may score: those in progress now, and those scored or seen earlier in this page.
const scorable = new Map(); // call id -> label

function renderScoreChoices(calls) {
  const before = scorable.size;
  for (const call of calls) {
    if (!scorable.has(call.call_id)) {
      scorable.set(call.call_id, `${call.client.name}, ${call.agent.name} (${formatTime(call.answered_at)})`);
    }
  }
  if (scorable.size === before) return; // rebuilding would close the list under the supervisor's pointer
  const select = byTestId('score-call');
  const chosen = select.value;
  select.replaceChildren(...[...scorable].map(([id, label]) => new Option(label, id, false, id === chosen)));
}

byTestId('score-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const callId = byTestId('score-call').value;
  const status = byTestId('score-status');
  if (!callId) return;
  const body = { score: Number(byTestId('score-value').value), comment: byTestId('score-comment').value };
  const response = await fetch(`/api/supervisor/calls/${encodeURIComponent(callId)}/score`, {
    method: 'POST',
    credentials: 'same-origin',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  });
  const data = await response.json().catch(() => ({}));
  status.textContent = response.ok ? `Scored ${body.score} for ${scorable.get(callId)}.` : (data.error ?? `HTTP ${response.status}`);
  if (response.ok) byTestId('score-comment').value = '';
});

function renderCalls(calls, listening) {
  renderScoreChoices(calls);
  ui.callsEmpty.hidden = calls.length > 0;
  ui.calls.replaceChildren(
    ...calls.map((call) => {
      const mine = app.leg?.callId === call.call_id ? app.leg.mode : null;
      const tr = row(`call-row-${call.call_id}`, [
        [call.client.name],
        [call.agent.name],
        [since(call.answered_at)],
        [mine ? MODE_LABELS[mine] : listening[call.call_id] ? MODE_LABELS[listening[call.call_id]] : '—',
          `call-mode-${call.call_id}`],
      ]);
      const td = document.createElement('td');
      const steps = document.createElement('div');
      steps.className = 'steps';
      for (const mode of MODES) {
        const button = document.createElement('button');
        button.type = 'button';
        button.textContent = MODE_LABELS[mode];
        button.dataset.testid = `${mode}-${call.call_id}`;
        button.setAttribute('aria-pressed', String(mine === mode));
        button.setAttribute('aria-label', `${MODE_LABELS[mode]}: ${call.agent.name} with ${call.client.name}`);
        button.disabled = !call.client.live_listening;
        button.addEventListener('click', () => step(call.call_id, mode));
        steps.append(button);
      }
      const leaveButton = document.createElement('button');
      leaveButton.type = 'button';
      leaveButton.textContent = 'Leave';
      leaveButton.dataset.testid = `leave-${call.call_id}`;
      leaveButton.hidden = !mine;
      leaveButton.addEventListener('click', leave);
      steps.append(leaveButton);
      if (call.recording === 'available') {
        const record = document.createElement('button');
        record.type = 'button';
        record.textContent = 'Record';
        record.dataset.testid = `record-${call.call_id}`;
        record.setAttribute('aria-label', `Record: ${call.agent.name} with ${call.client.name}`);
        record.addEventListener('click', () => socket.send({ type: 'record', call_id: call.call_id }));
        steps.append(record);
      } else if (call.recording === 'on') {
        const badge = document.createElement('span');
        badge.className = 'recording-badge';
        badge.textContent = 'Recording';
        badge.dataset.testid = `recording-${call.call_id}`;
        steps.append(badge);
      }
      td.append(steps);
      tr.append(td);
      return tr;
    }),
  );
}

function renderChart(history) {
  const svgNs = 'http://www.w3.org/2000/svg';
  const clients = Object.keys(history ?? {});
  const peak = Math.max(1, ...clients.flatMap((c) => history[c].map(([, n]) => n)));
  const now = Date.parse(app.board.at);
  const x = (iso) => CHART.pad + ((Date.parse(iso) - (now - 3600_000)) / 3600_000) * (CHART.width - 2 * CHART.pad);
  const y = (n) => CHART.height - CHART.pad - (n / peak) * (CHART.height - 2 * CHART.pad);
  const lines = clients.map((client, i) => {
    const line = document.createElementNS(svgNs, 'polyline');
    line.setAttribute('fill', 'none');
    line.setAttribute('stroke', CHART_COLOURS[i % CHART_COLOURS.length]);
    line.setAttribute('stroke-width', '2');
    line.setAttribute('points', history[client].map(([at, n]) => `${x(at).toFixed(1)},${y(n).toFixed(1)}`).join(' '));
    line.dataset.testid = `chart-line-${client}`;
    return line;
  });
  ui.chart.replaceChildren(...lines);
  const names = Object.fromEntries((app.hello?.clients ?? []).map((c) => [c.id, c.name]));
  ui.legend.replaceChildren(
    ...clients.map((client, i) => {
      const item = document.createElement('li');
      const swatch = document.createElement('span');
      swatch.style.background = CHART_COLOURS[i % CHART_COLOURS.length];
      const last = history[client].at(-1);
      item.append(swatch, `${names[client] ?? client}: ${last ? last[1] : 0} waiting (peak ${peak})`);
      return item;
    }),
  );
}

// ---------------------------------------------------------------- chrome

function showConnection(status) {
  ui.conn.dataset.status = status;
  ui.conn.querySelector('.conn-text').textContent = {
    open: 'Connected',
    connecting: 'Connecting to the bridge…',
    waiting: 'Connection lost. Retrying…',
    stopped: 'Signed out.',
  }[status] ?? status;
  if (status === 'stopped') location.assign('/login');
}

function showError(text) {
  ui.errorText.textContent = text;
  ui.error.hidden = false;
}

function announce(text) {
  ui.announcer.textContent = text;
}

byTestId('supervisor-error-dismiss').addEventListener('click', () => {
  ui.error.hidden = true;
});
byTestId('logout').addEventListener('click', async () => {
  leave();
  await fetch('/api/logout', { method: 'POST', credentials: 'same-origin' });
  location.assign('/login');
});
async function refreshRecordings() {
  try {
    const recordings = await loadRecordings();
    const names = Object.fromEntries((app.hello?.clients ?? []).map((c) => [c.id, c.name]));
    renderRecordings(ui.recordings, ui.recordingsEmpty, recordings, names);
    // A recorded call can be scored after listening to it.
    renderScoreChoices(recordings.map((r) => ({
      call_id: r.call_id, client: { name: names[r.client] ?? r.client }, agent: { name: 'recorded' }, answered_at: r.stored_at,
    })));
  } catch (err) {
    showError(err.message);
  }
}
byTestId('recordings-refresh').addEventListener('click', refreshRecordings);

// Durations tick between boards.
setInterval(render, 1000);

// Documented in agent_client/README.md.
window.hotlineTest = Object.freeze({
  remoteFrequencyEnergy: (freqHz) => probe.share(freqHz),
  mode: () => app.leg?.mode ?? null,
  boardAt: () => app.board?.at ?? null,
});

socket.connect();
