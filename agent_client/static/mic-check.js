// Pre-shift check: the microphone picks up sound, and the bridge answers fast.

import { AgentSocket, measurePing } from './lib/socket.js';
import { microphoneProblem, openMicrophone, resumeAudio } from './lib/audio.js';
import { fillDeviceSelect, listAudioDevices, prefs } from './lib/devices.js';
import { LevelMeter } from './lib/meter.js';

const PINGS = 10;
const PING_GAP_MS = 50;
// Judge the microphone on its loudest moment of the last few seconds.
const VERDICT_WINDOW_MS = 3000;
const SILENT_DBFS = -60;
const FAINT_DBFS = -42;
const CLIP_DBFS = -1;

const byTestId = (id) => document.querySelector(`[data-testid="${id}"]`);
const ui = {
  start: byTestId('mic-start'),
  select: byTestId('mic-select'),
  verdict: byTestId('mic-verdict'),
  rtt: byTestId('mic-check-rtt'),
  rttRun: byTestId('mic-check-rtt-run'),
  rttVerdict: byTestId('mic-check-rtt-verdict'),
};
const meter = new LevelMeter(byTestId('mic-level'));
let stream = null;
let recent = []; // [time, peak dBFS]
let startedAt = 0;

function setVerdict(element, verdict, text) {
  element.dataset.verdict = verdict;
  if (element.textContent !== text) element.textContent = text;
}

function judgeMicrophone({ peak }) {
  const now = performance.now();
  recent.push([now, peak]);
  recent = recent.filter(([t]) => now - t <= VERDICT_WINDOW_MS);
  if (now - startedAt < 1000) return;
  const loudest = Math.max(...recent.map(([, p]) => p));
  const clipped = recent.filter(([, p]) => p >= CLIP_DBFS).length / recent.length;
  if (loudest < SILENT_DBFS) {
    setVerdict(ui.verdict, 'bad', 'We hear nothing: check your mute switch, or pick another microphone.');
  } else if (clipped > 0.05) {
    setVerdict(ui.verdict, 'bad', 'You are too loud: lower the microphone volume.');
  } else if (loudest < FAINT_DBFS) {
    setVerdict(ui.verdict, 'none', 'We hear you, but faintly: move the microphone closer or raise its volume.');
  } else {
    setVerdict(ui.verdict, 'good', 'Your microphone is working.');
  }
}

async function startMicrophone(deviceId = prefs.get('mic')) {
  resumeAudio();
  try {
    const next = await openMicrophone(deviceId);
    for (const track of stream?.getTracks() ?? []) track.stop();
    stream = next;
  } catch (err) {
    setVerdict(ui.verdict, 'bad', microphoneProblem(err));
    return;
  }
  recent = [];
  startedAt = performance.now();
  setVerdict(ui.verdict, 'none', 'Listening… say a few words.');
  meter.attach(stream);
  ui.start.hidden = true;
  const { inputs } = await listAudioDevices();
  fillDeviceSelect(ui.select, inputs, stream.getAudioTracks()[0]?.getSettings().deviceId, 'Microphone');
}

function rttVerdict(avg) {
  if (avg < 150) return ['good', 'Your connection is good for calls.'];
  if (avg < 300) return ['none', 'Your connection is usable; callers may notice a slight delay.'];
  return ['bad', 'Your connection is slow: callers will hear delays. Try a wired connection.'];
}

async function measureRoundTrip() {
  ui.rttRun.disabled = true;
  setVerdict(ui.rttVerdict, 'none', '');
  ui.rtt.textContent = 'Measuring…';
  // A probe socket only answers pings: an open softphone tab keeps its place.
  const socket = new AgentSocket('/ws/agent?probe=1', { shouldRetry: () => false });
  try {
    await connected(socket);
    const times = [];
    for (let i = 0; i < PINGS; i += 1) {
      times.push(await measurePing(socket));
      await new Promise((resolve) => setTimeout(resolve, PING_GAP_MS));
    }
    showRoundTrip(times);
  } catch {
    ui.rtt.textContent = 'No answer from the bridge.';
    setVerdict(ui.rttVerdict, 'bad', 'We cannot reach the bridge. Check your connection, or sign in again.');
  } finally {
    socket.stop();
    ui.rttRun.disabled = false;
  }
}

function showRoundTrip(times) {
  const min = Math.min(...times);
  const avg = times.reduce((a, b) => a + b, 0) / times.length;
  ui.rtt.textContent = `Round trip: fastest ${Math.round(min)} ms, average ${Math.round(avg)} ms (${times.length} messages)`;
  setVerdict(ui.rttVerdict, ...rttVerdict(avg));
}

function connected(socket, limitMs = 5000) {
  // A probe gets no hello: the open connection is the answer.
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no connection')), limitMs);
    socket.addEventListener('status', (event) => {
      if (event.detail.status === 'connecting') return;
      clearTimeout(timer);
      if (event.detail.status === 'open') resolve();
      else reject(new Error('closed'));
    });
    socket.connect();
  });
}

async function boot() {
  meter.onLevel = judgeMicrophone;
  ui.start.addEventListener('click', () => startMicrophone());
  ui.select.addEventListener('change', () => {
    prefs.set('mic', ui.select.value);
    startMicrophone(ui.select.value);
  });
  ui.rttRun.addEventListener('click', measureRoundTrip);
  const permission = await navigator.permissions?.query({ name: 'microphone' }).catch(() => null);
  if (permission?.state === 'granted') startMicrophone();
  await measureRoundTrip();
}

boot();
