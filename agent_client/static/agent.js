// The agent's softphone: state and shifts, the ringing screen-pop, the call
// and its WebRTC media leg. Protocol: docs/agent-protocol.md (v=1).

import {
  AgentSocket, displacedByAnotherTab, PROTOCOL_VERSION, sessionEnded,
} from './lib/socket.js';
import {
  audioContext, microphoneProblem, openMicrophone, playDtmfFeedback, resumeAudio, Ringer,
} from './lib/audio.js';
import { MediaLeg } from './lib/media-leg.js';
import { canChooseSpeaker, fillDeviceSelect, listAudioDevices, prefs } from './lib/devices.js';
import { LevelMeter } from './lib/meter.js';
import { RemoteProbe } from './lib/remote-probe.js';
import { clientNames, formatDayTime, formatDuration, formatDay, formatTime } from './lib/format.js';

const STATE_LABELS = {
  logged_out: 'Offline',
  available: 'Available',
  ringing: 'Ringing',
  on_call: 'On call',
  wrap_up: 'Wrap-up',
  paused: 'Paused',
};
const REASON_LABELS = {
  break: 'break',
  lunch: 'lunch',
  training: 'training',
  technical_issue: 'technical issue',
  other: 'other',
  disconnected: 'connection lost',
};
const BUSY_STATES = new Set(['ringing', 'on_call']);
const CANCELLED = {
  caller_hung_up: 'The caller hung up before you answered.',
  timeout: 'Not answered in time: the call went to the next agent.',
  declined: 'You declined the call.',
  disconnected: 'The connection dropped: the call went to the next agent.',
};
const ENDED_BY = {
  caller: 'The caller hung up.',
  agent: 'You hung up.',
  bridge: 'The bridge ended the call.',
};
const PHASE_HEADINGS = { idle: 'No call', ringing: 'Incoming call', connected: 'On call', held: 'On hold' };
const PAGE_TITLE = 'Softphone · Hotline';
const TIMER_TICK_MS = 250;
const byTestId = (id) => document.querySelector(`[data-testid="${id}"]`);

const ui = {
  agentName: byTestId('agent-name'),
  connection: byTestId('connection-status'),
  connectionText: byTestId('connection-status').querySelector('.conn-text'),
  reconnectHere: byTestId('reconnect-here'),
  errorBanner: byTestId('error-banner'),
  errorText: byTestId('error-text'),
  errorDismiss: byTestId('error-dismiss'),
  logout: byTestId('logout'),
  stateLabel: byTestId('state-label'),
  stateReason: byTestId('state-reason'),
  stateTimer: byTestId('state-timer'),
  shiftNow: byTestId('shift-now'),
  goAvailable: byTestId('go-available'),
  whyNot: byTestId('go-available-why'),
  pauseReason: byTestId('pause-reason'),
  pause: byTestId('pause'),
  callPanel: byTestId('call-panel'),
  callHeading: byTestId('call-heading'),
  callStatus: byTestId('call-status'),
  brand: byTestId('brand-label'),
  kbLink: byTestId('kb-link'),
  caller: byTestId('caller-number'),
  wait: byTestId('wait-timer'),
  ringCountdown: byTestId('ring-countdown'),
  ringProgress: document.querySelector('.ring-progress'),
  callTimer: byTestId('call-timer'),
  answer: byTestId('answer'),
  decline: byTestId('decline'),
  silence: byTestId('silence-ringer'),
  mute: byTestId('mute'),
  hold: byTestId('hold'),
  hangup: byTestId('hangup'),
  record: byTestId('record'),
  recording: byTestId('recording-indicator'),
  dtmfKeys: [...document.querySelectorAll('[data-digit]')],
  dtmfSent: byTestId('dtmf-sent'),
  shiftList: byTestId('shift-list'),
  shiftEmpty: byTestId('shift-empty'),
  micPermission: byTestId('mic-permission'),
  micSelect: byTestId('mic-select'),
  micLevel: byTestId('mic-level'),
  speakerSelect: byTestId('speaker-select'),
  speakerHint: byTestId('speaker-hint'),
  ringerMute: byTestId('ringer-mute'),
  notifyEnable: byTestId('notify-enable'),
  notifyStatus: byTestId('notify-status'),
  announcer: byTestId('announcer'),
  alertAnnouncer: byTestId('alert-announcer'),
  remoteAudio: byTestId('remote-audio'),
};

const app = {
  clockOffsetMs: 0, // server clock minus ours, from hello.server_time
  iceServers: [],
  codec: 'PCMU',
  ringTimeoutS: 15,
  state: null,
  slots: [],
  offer: null, // the ringing offer
  offerAt: 0, // Date.now() when it arrived
  answering: false,
  call: null, // the live call, status connected or held
  callAt: 0,
  callWaitS: null, // queue wait plus ring time, frozen at answer
  pendingHold: false,
  hangingUp: false,
  leg: null, // the MediaLeg of the ringing or live call
  mic: null,
  micOpening: null,
  muted: false,
  notification: null,
  displaced: false, // another tab took the agent's socket
  outbox: new Map(), // call controls waiting for the socket (see sendCallControl)
  answerClickedAt: null, // performance.now() of the last Answer, for window.hotlineTest
};

const socket = new AgentSocket('/ws/agent', {
  // Two tabs reconnecting in turn would keep knocking each other off.
  shouldRetry: (closeEvent) => !displacedByAnotherTab(closeEvent) && !sessionEnded(closeEvent),
});
const ringer = new Ringer();
const meter = new LevelMeter(ui.micLevel);
const probe = new RemoteProbe();

// ------------------------------------------------------------------ helpers

function serverNow() {
  return Date.now() + app.clockOffsetMs;
}

function secondsSince(iso) {
  return (serverNow() - Date.parse(iso)) / 1000;
}

function setText(element, text) {
  if (element.textContent !== text) element.textContent = text;
}

const pendingAnnouncements = { polite: [], assertive: [] };

function announce(text, urgent = false) {
  const queue = urgent ? pendingAnnouncements.assertive : pendingAnnouncements.polite;
  const region = urgent ? ui.alertAnnouncer : ui.announcer;
  queue.push(text);
  if (queue.length > 1) return;
  // Clearing first makes screen readers repeat an identical message; messages
  // arriving together (call ended, then wrap-up) are read as one.
  region.textContent = '';
  setTimeout(() => {
    region.textContent = queue.join(' ');
    queue.length = 0;
  }, 50);
}

function showError(text) {
  ui.errorText.textContent = text;
  ui.errorBanner.hidden = false;
}

function hideError() {
  ui.errorBanner.hidden = true;
}

function setAriaDisabled(button, disabled) {
  // aria-disabled, not disabled: the button stays focusable, so keyboard and
  // screen-reader users still reach it and hear why it is unavailable.
  button.setAttribute('aria-disabled', String(disabled));
}

function sendOrWarn(type, fields) {
  if (socket.send(type, fields)) return true;
  showError('Not connected to the bridge. Wait for the connection to come back, then try again.');
  return false;
}

/**
 * Call controls made while the socket is reconnecting: the call goes on
 * meanwhile (its media does not use the socket), so the latest intent per
 * control is sent once the bridge says hello again.
 */
function sendCallControl(type, fields) {
  if (socket.send(type, fields)) return;
  app.outbox.set(type, fields);
  announce('Reconnecting to the bridge: this will be sent as soon as the connection is back.');
}

function flushOutbox(call) {
  for (const [type, fields] of app.outbox) {
    if (call?.call_id === fields.call_id) socket.send(type, fields);
  }
  app.outbox.clear();
}

function focusIfLost(element, panelHadFocus) {
  if (panelHadFocus || document.activeElement === document.body) element.focus();
}

// --------------------------------------------------------------- connection

function onSocketStatus({ status, attempt }) {
  ui.connection.dataset.status = status;
  renderConnection();
  if (status === 'waiting' && attempt >= 2) checkSession();
}

function renderConnection() {
  const texts = {
    connecting: 'Connecting to the bridge…',
    open: 'Connected',
    stopped: app.displaced ? 'Open in another tab or window' : 'Disconnected',
  };
  ui.reconnectHere.hidden = !(app.displaced && socket.status === 'stopped');
  let text = texts[socket.status];
  if (socket.status === 'waiting') {
    const seconds = Math.max(0, Math.ceil((socket.retryAt - Date.now()) / 1000));
    text = `Connection lost. Reconnecting in ${seconds} s…`;
  }
  setText(ui.connectionText, text);
}

async function checkSession() {
  try {
    const response = await fetch('/api/me', { credentials: 'same-origin' });
    if (response.status === 401) goToLogin(true);
    else if (socket.status === 'stopped' && !app.displaced) socket.connect();
  } catch {
    // The bridge is unreachable: keep retrying the socket.
  }
}

function goToLogin(expired = false) {
  socket.stop();
  location.assign(expired ? '/login?expired=1' : '/login');
}

function onSocketLost({ code, reason }) {
  // The server ends a ringing offer as soon as the socket closes (contract).
  if (app.offer) dropOffer(CANCELLED.disconnected);
  app.displaced = displacedByAnotherTab({ code, reason });
  if (sessionEnded({ code })) checkSession();
  renderConnection();
  if (app.displaced) showError('Your softphone opened in another tab or window, so this one stopped taking calls.');
}

function reconnectHere() {
  app.displaced = false;
  hideError();
  socket.connect();
}

const handlers = {
  hello: onHello,
  state: onState,
  shifts: onShifts,
  offer: onOffer,
  rtc_answer: onRtcAnswer,
  offer_cancelled: onOfferCancelled,
  call: onCall,
  supervision: onSupervision,
  pong: () => {},
  error: onServerError,
};

function onMessage(message) {
  if (message?.v !== PROTOCOL_VERSION) {
    showError('The bridge speaks a different version of the softphone protocol. Reload the page.');
    return;
  }
  const handler = handlers[message.type];
  if (handler) handler(message);
  else console.warn('hotline: unknown message type', message.type);
}

// Sent only where the client's policy lets agents see who is listening.
const SUPERVISION_WORDS = { listen: 'is listening', whisper: 'is whispering to you', barge: 'has joined the call' };

function onSupervision(message) {
  const banner = byTestId('supervision-banner');
  const words = SUPERVISION_WORDS[message.mode];
  banner.hidden = !words || app.call?.call_id !== message.call_id;
  banner.textContent = words ? `${message.supervisor} ${words}.` : '';
}

// Earnings come from the call records (never the page's own counting): today's and this week's.
function totals(statement) {
  return (statement.statements ?? []).map((s) => `${s.total} ${s.currency}`).join(' + ') || '0';
}

async function refreshEarnings() {
  const today = new Date().toISOString().slice(0, 10);
  try {
    const get = (query) => fetch(`/api/pay/statement?${query}`, { credentials: 'same-origin' })
      .then((r) => (r.ok ? r.json() : Promise.reject(new Error(`HTTP ${r.status}`))));
    const [day, week] = await Promise.all([get(`from=${today}&to=${today}`), get('')]);
    byTestId('earnings-today').textContent = totals(day);
    byTestId('earnings-week').textContent = totals(week);
  } catch {
    // The figures stay as they were; the next call's end tries again.
  }
}

function onHello(hello) {
  refreshEarnings();
  app.clockOffsetMs = Date.parse(hello.server_time) - Date.now() || 0;
  app.iceServers = hello.ice_servers ?? [];
  app.codec = hello.codec ?? 'PCMU';
  app.ringTimeoutS = hello.ring_timeout_s ?? app.ringTimeoutS;
  if (hello.agent?.name) ui.agentName.textContent = hello.agent.name;
  let call = hello.call;
  // A mute made while reconnecting wins over the bridge's older view.
  const mute = app.outbox.get('mute');
  if (call && mute?.call_id === call.call_id) call = { ...call, muted: mute.on };
  reattach(call);
  flushOutbox(call);
}

/** After a reconnection: pick up the live call, or notice it ended meanwhile. */
function reattach(call) {
  if (!call || call.status === 'ended') {
    if (app.call) endCall({ call_id: app.call.call_id, ended_by: null });
    return;
  }
  onCall(call);
  const leg = app.leg;
  if (leg?.callId === call.call_id && leg.pc && leg.state !== 'closed') {
    if (['failed', 'disconnected'].includes(leg.state)) leg.restartIce();
    return;
  }
  // A reloaded page has no media leg left: offer a fresh one for the live call.
  preparePeer(call.call_id);
}

// -------------------------------------------------------------------- state

function onState(state) {
  const previous = app.state?.state;
  app.state = state;
  renderState();
  if (previous !== state.state) announceState(state);
}

function reasonLabel(reason) {
  return REASON_LABELS[reason] ?? String(reason).replaceAll('_', ' ');
}

function renderState() {
  const s = app.state;
  ui.stateLabel.textContent = STATE_LABELS[s.state] ?? s.state;
  ui.stateLabel.dataset.state = s.state;
  ui.stateReason.textContent = s.state === 'paused' && s.reason ? `(${reasonLabel(s.reason)})` : '';
  renderShiftNow(s);
  renderAvailability(s);
  const busy = BUSY_STATES.has(s.state);
  ui.pause.disabled = busy;
  ui.pauseReason.disabled = busy;
  updateTimers();
}

function renderShiftNow(s) {
  ui.shiftNow.dataset.onShift = String(Boolean(s.on_shift));
  if (s.on_shift && s.current_slot) {
    const slot = s.current_slot;
    ui.shiftNow.textContent = `On shift now: ${clientNames(slot.clients)}, until ${formatTime(slot.end)}`;
  } else if (s.on_shift) {
    ui.shiftNow.textContent = 'On shift now';
  } else {
    // When the next slot starts is in the Go available explanation.
    ui.shiftNow.textContent = 'Not on shift';
  }
}

function renderAvailability(s) {
  const already = s.state === 'available';
  const busy = BUSY_STATES.has(s.state);
  setAriaDisabled(ui.goAvailable, !s.can_go_available || already || busy);
  let why = '';
  if (already) why = 'You are taking calls.';
  else if (busy) why = 'Finish the current call first.';
  else if (!s.can_go_available) why = s.why_not || (s.on_shift ? '' : whyNotFallback(s));
  setText(ui.whyNot, why);
}

function whyNotFallback(s) {
  if (s.next_slot_start) return `You are not on shift. Your next slot starts ${formatDayTime(s.next_slot_start)}.`;
  return 'You are not on shift, and no slot is booked in the next 7 days.';
}

function announceState(s) {
  const sentences = {
    available: 'You are available for calls.',
    paused: `You are paused${s.reason ? `: ${reasonLabel(s.reason)}` : ''}.`,
    wrap_up: 'Wrap-up. Go available when you are ready for the next call.',
    logged_out: 'You are offline.',
  };
  if (sentences[s.state]) announce(sentences[s.state]);
}

async function goAvailable() {
  if (ui.goAvailable.getAttribute('aria-disabled') === 'true') {
    announce(ui.whyNot.textContent);
    return;
  }
  resumeAudio();
  ensureMic();
  sendOrWarn('set_state', { state: 'available' });
}

function pause() {
  sendOrWarn('set_state', { state: 'paused', reason: ui.pauseReason.value });
}

// ------------------------------------------------------------------- shifts

function onShifts(message) {
  app.slots = message.slots ?? [];
  renderShifts();
}

function renderShifts() {
  const items = app.slots.map(slotItem);
  ui.shiftList.replaceChildren(...items);
  ui.shiftEmpty.hidden = items.length > 0;
}

function slotItem(slot) {
  const item = document.createElement('li');
  item.className = 'slot';
  item.dataset.testid = 'shift-slot';
  item.dataset.now = String(Boolean(slot.now));
  const parts = [
    ['slot-day', formatDay(slot.start)],
    ['slot-time', `${formatTime(slot.start)}–${formatTime(slot.end)}`],
    ['slot-clients', clientNames(slot.clients)],
  ];
  if (slot.now) parts.push(['slot-badge', 'On shift now']);
  for (const [className, text] of parts) {
    const span = document.createElement('span');
    span.className = className;
    span.textContent = text;
    item.append(span);
  }
  return item;
}

// -------------------------------------------------------------- ringing call

function onOffer(offer) {
  app.offer = offer;
  app.offerAt = Date.now();
  app.answering = false;
  hideError();
  ringer.start();
  renderCall();
  restartRingProgress(offer);
  notifyIncoming(offer);
  announce(`Incoming call for ${offer.client?.name ?? 'a client'}. Press A to answer, D to decline.`, true);
  preparePeer(offer.call_id);
}

function onOfferCancelled(message) {
  if (app.offer?.call_id !== message.call_id) return;
  dropOffer(CANCELLED[message.reason] ?? 'The call stopped ringing.');
}

function dropOffer(sentence) {
  const panelHadFocus = ui.callPanel.contains(document.activeElement);
  ringer.stop();
  closeNotification();
  closePeer();
  app.offer = null;
  app.answering = false;
  renderCall();
  announce(sentence);
  focusIfLost(ui.callHeading, panelHadFocus);
}

async function answer() {
  const offer = app.offer;
  if (!offer || app.answering) return;
  if (!socket.isOpen) {
    sendOrWarn('answer', { call_id: offer.call_id }); // explains why nothing happens
    return;
  }
  app.answerClickedAt = performance.now();
  probe.restart();
  app.answering = true;
  resumeAudio();
  ringer.stop();
  closeNotification();
  // Answering is what un-holds the pre-negotiated leg, so start listening now.
  unmuteRemote();
  renderCall();
  // The bridge connects the leg that rtc_offer opens: a quick click must not overtake it.
  if (app.leg?.callId === offer.call_id) await app.leg.offerSent;
  if (app.offer !== offer) return; // cancelled meanwhile
  if (!sendOrWarn('answer', { call_id: offer.call_id })) {
    app.answering = false;
    renderCall();
  }
}

function decline() {
  if (!app.offer || app.answering) return;
  if (sendOrWarn('decline', { call_id: app.offer.call_id })) dropOffer(CANCELLED.declined);
}

function silenceRinger() {
  ringer.stop();
  renderCall();
}

function restartRingProgress(offer) {
  const bar = ui.ringProgress;
  const total = (offer.ring_timeout_s ?? app.ringTimeoutS) * 1000;
  bar.style.setProperty('--ring-ms', `${total}ms`);
  bar.classList.remove('running');
  void bar.offsetWidth; // restart the CSS animation for the new offer
  bar.classList.add('running');
}

function notifyIncoming(offer) {
  if (!('Notification' in window) || Notification.permission !== 'granted') return;
  try {
    const notification = new Notification(`Incoming call: ${offer.client?.name ?? 'a client'}`, {
      body: `Caller ${offer.caller ?? 'unknown'}, waited ${formatDuration(offer.waited_s ?? 0)}`,
      tag: `hotline-${offer.call_id}`,
      requireInteraction: true,
      silent: true, // the page rings already
    });
    notification.onclick = () => {
      window.focus();
      notification.close();
    };
    app.notification = notification;
  } catch (err) {
    console.warn('hotline: notification failed', err);
  }
}

function closeNotification() {
  app.notification?.close();
  app.notification = null;
}

// ----------------------------------------------------------------- live call

function onCall(call) {
  if (call.status === 'ended') {
    byTestId('supervision-banner').hidden = true;
    endCall(call);
    return;
  }
  const isNew = app.call?.call_id !== call.call_id;
  const wasHeld = app.call?.status === 'held';
  const focusOnRingButtons = [ui.answer, ui.decline, ui.silence].includes(document.activeElement);
  if (isNew) app.callWaitS = app.offer?.call_id === call.call_id ? currentWaitS() : null;
  // Later `call` messages may omit client details the offer had (the KB link).
  const knownClient = isNew ? (app.offer?.call_id === call.call_id ? app.offer.client : null) : app.call.client;
  app.call = { ...call, client: { ...knownClient, ...call.client } };
  app.callAt = Date.now();
  if (app.offer?.call_id === call.call_id) {
    ringer.stop();
    closeNotification();
    app.offer = null;
  }
  app.answering = false;
  app.pendingHold = false;
  const recordingStarted = !isNew && app.call?.recording !== 'on' && call.recording === 'on';
  app.pendingRecord = false;
  app.muted = Boolean(call.muted);
  applyMute();
  unmuteRemote();
  renderCall();
  if (isNew) {
    announce(`Connected. ${call.client?.name ?? ''} caller on the line.`);
    if (focusOnRingButtons || document.activeElement === document.body) ui.mute.focus();
  } else if (recordingStarted) {
    announce('This call is now being recorded.');
  } else if (wasHeld !== (call.status === 'held')) {
    announce(call.status === 'held' ? 'The caller is on hold.' : 'The caller is back from hold.');
  }
}

function endCall(call) {
  // The record is closed a moment after the call: read the new figures once it is.
  setTimeout(refreshEarnings, 1500);
  if (app.offer?.call_id === call.call_id && !app.call) {
    dropOffer(ENDED_BY[call.ended_by] ?? 'The call ended.');
    return;
  }
  if (app.call?.call_id !== call.call_id) return;
  const panelHadFocus = ui.callPanel.contains(document.activeElement);
  ringer.stop();
  closeNotification();
  closePeer();
  app.call = null;
  app.hangingUp = false;
  app.pendingHold = false;
  app.muted = false;
  applyMute();
  ui.dtmfSent.value = '';
  renderCall();
  announce(ENDED_BY[call.ended_by] ?? 'The call ended.');
  focusIfLost(ui.callHeading, panelHadFocus);
}

function hangup() {
  if (!app.call || app.hangingUp) return;
  sendCallControl('hangup', { call_id: app.call.call_id });
  app.hangingUp = true;
  renderCall();
}

function toggleMute() {
  if (!app.call) return;
  app.muted = !app.muted;
  // The local track is disabled too, so muting works even before the bridge confirms.
  applyMute();
  sendCallControl('mute', { call_id: app.call.call_id, on: app.muted });
  renderCall();
  announce(app.muted ? 'Microphone muted.' : 'Microphone on.');
}

function applyMute() {
  for (const track of app.mic?.getAudioTracks() ?? []) track.enabled = !app.muted;
}

function toggleHold() {
  if (!app.call || app.pendingHold) return;
  const on = app.call.status !== 'held';
  sendCallControl('hold', { call_id: app.call.call_id, on });
  app.pendingHold = true;
  renderCall();
}

function startRecording() {
  if (app.call?.recording !== 'available' || app.pendingRecord) return;
  if (!sendOrWarn('record', { call_id: app.call.call_id })) return;
  app.pendingRecord = true;
  renderCall();
}

function sendDtmf(digit) {
  if (app.call?.status !== 'connected') return;
  if (!sendOrWarn('dtmf', { call_id: app.call.call_id, digits: digit })) return;
  playDtmfFeedback(digit);
  ui.dtmfSent.value = (ui.dtmfSent.value + digit).slice(-16);
}

function currentPhase() {
  if (app.call) return app.call.status === 'held' ? 'held' : 'connected';
  return app.offer ? 'ringing' : 'idle';
}

function callStatusText(phase) {
  if (phase === 'ringing') {
    if (app.answering) return 'Connecting…';
    return ringer.ringing ? '' : 'Ringer silent';
  }
  if (phase === 'held') return app.pendingHold ? 'Taking off hold…' : 'On hold: the caller hears music';
  if (phase === 'connected') {
    if (app.hangingUp) return 'Hanging up…';
    if (app.pendingHold) return 'Putting on hold…';
    return app.muted ? 'Connected, your microphone is muted' : 'Connected';
  }
  return '';
}

function renderCall() {
  const phase = currentPhase();
  const info = app.call ?? app.offer;
  ui.callPanel.dataset.phase = phase;
  setText(ui.callHeading, PHASE_HEADINGS[phase]);
  setText(ui.callStatus, callStatusText(phase));
  renderCallInfo(info ?? {});
  ui.answer.disabled = app.answering;
  ui.decline.disabled = app.answering;
  ui.silence.disabled = !ringer.ringing;
  ui.mute.setAttribute('aria-pressed', String(app.muted));
  ui.hold.setAttribute('aria-pressed', String(phase === 'held'));
  ui.hold.disabled = app.pendingHold || app.hangingUp;
  ui.mute.disabled = app.hangingUp;
  ui.hangup.disabled = app.hangingUp;
  // "available": the client records on demand and nobody has started it yet.
  const recording = app.call?.recording ?? 'off';
  ui.record.hidden = recording !== 'available';
  ui.record.disabled = Boolean(app.pendingRecord) || app.hangingUp;
  ui.recording.hidden = recording !== 'on';
  for (const key of ui.dtmfKeys) key.disabled = phase !== 'connected' || app.hangingUp;
  document.title = info && phase !== 'idle' ? `${PHASE_HEADINGS[phase]}: ${info.client?.name ?? ''} · Hotline` : PAGE_TITLE;
  updateTimers();
}

// Idle, everything is cleared: nothing stale lingers for the next call.
function renderCallInfo(info) {
  const idle = !info.call_id;
  const client = info.client ?? {};
  setText(ui.brand, idle ? '' : client.name ?? 'Unknown client');
  ui.kbLink.hidden = !client.kb_url;
  if (client.kb_url) {
    ui.kbLink.href = client.kb_url;
    setText(ui.kbLink, client.name ? `Open the ${client.name} knowledge base` : 'Open the knowledge base');
  }
  setText(ui.caller, idle ? '' : info.caller || 'Unknown number');
  if (idle) {
    setText(ui.wait, '');
    setText(ui.ringCountdown, '');
    setText(ui.callTimer, '');
  }
}

function currentWaitS() {
  return (app.offer.waited_s ?? 0) + (Date.now() - app.offerAt) / 1000;
}

function callSeconds() {
  if (app.call.answered_at) return secondsSince(app.call.answered_at);
  return (app.call.talk_s ?? 0) + (Date.now() - app.callAt) / 1000;
}

function updateTimers() {
  setText(ui.stateTimer, app.state?.since ? formatDuration(secondsSince(app.state.since)) : '');
  if (app.offer) {
    const rungS = (Date.now() - app.offerAt) / 1000;
    const timeoutS = app.offer.ring_timeout_s ?? app.ringTimeoutS;
    setText(ui.wait, formatDuration(currentWaitS()));
    setText(ui.ringCountdown, `${Math.max(0, Math.ceil(timeoutS - rungS))} s`);
  }
  if (app.call) {
    setText(ui.wait, app.callWaitS == null ? '—' : formatDuration(app.callWaitS));
    setText(ui.callTimer, formatDuration(callSeconds()));
  }
  if (socket.status === 'waiting') renderConnection();
}

function onServerError(error) {
  if (error.ref === 'hold') app.pendingHold = false;
  if (error.ref === 'hangup') app.hangingUp = false;
  if (error.ref === 'record') app.pendingRecord = false;
  if (error.ref === 'answer') app.answering = false;
  if (error.ref === 'answer' && error.code === 'no_such_call' && app.offer) {
    dropOffer('That call is no longer waiting.');
  } else {
    renderCall();
  }
  showError(error.message || `The bridge refused that (${error.code}).`);
}

// -------------------------------------------------------------------- media

async function ensureMic() {
  if (app.mic?.active) return app.mic;
  app.micOpening ??= openMicrophone(prefs.get('mic'))
    .then(useMic)
    .catch((err) => {
      showError(microphoneProblem(err));
      ui.micPermission.hidden = false;
      return null;
    })
    .finally(() => {
      app.micOpening = null;
    });
  return app.micOpening;
}

function useMic(stream) {
  app.mic = stream;
  const track = stream.getAudioTracks()[0];
  track.enabled = !app.muted;
  track.addEventListener('ended', onMicLost);
  meter.attach(stream);
  ui.micPermission.hidden = true;
  refreshDevices();
  return stream;
}

function releaseMic(stream) {
  for (const track of stream?.getTracks() ?? []) {
    track.removeEventListener('ended', onMicLost);
    track.stop();
  }
}

function onMicLost() {
  showError('Your microphone was disconnected. Switching to the default microphone.');
  switchMic(null);
}

async function switchMic(deviceId) {
  prefs.set('mic', deviceId ?? '');
  let stream;
  try {
    stream = await openMicrophone(deviceId);
  } catch (err) {
    showError(microphoneProblem(err));
    return;
  }
  const previous = app.mic;
  useMic(stream);
  await app.leg?.replaceTrack(stream.getAudioTracks()[0]);
  if (previous !== stream) releaseMic(previous);
}

async function preparePeer(callId) {
  closePeer();
  const leg = new MediaLeg(callId, {
    iceServers: app.iceServers,
    codec: app.codec,
    signal: (sdp) => socket.send('rtc_offer', { call_id: callId, sdp }),
    onRemoteStream: attachRemote,
    mayRestart: () => app.call?.call_id === callId && socket.isOpen,
    onRestart: () => announce('The call audio dropped. Reconnecting it…'),
    onError: showError,
  });
  app.leg = leg;
  // getUserMedia first: without it Chromium hides its host addresses behind mDNS names.
  const mic = await ensureMic();
  try {
    await leg.open(mic, !app.muted);
  } catch (err) {
    if (app.leg === leg) showError(`The call audio could not be prepared: ${err.message}`);
  }
}

async function onRtcAnswer(message) {
  const leg = app.leg;
  if (!leg?.pc || leg.callId !== message.call_id) return;
  try {
    await leg.accept(message.sdp);
  } catch (err) {
    showError(`The call audio could not be connected: ${err.message}`);
  }
}

function closePeer() {
  app.leg?.close();
  app.leg = null;
  probe.detach();
  ui.remoteAudio.srcObject = null;
  ui.remoteAudio.muted = true;
}

function attachRemote(stream) {
  const audio = ui.remoteAudio;
  audio.srcObject = stream;
  // The leg is negotiated while ringing; it stays silent until answered.
  audio.muted = !(app.answering || app.call);
  audio.play().catch(() => {});
  probe.attach(stream);
}

function unmuteRemote() {
  ui.remoteAudio.muted = false;
  if (ui.remoteAudio.srcObject) ui.remoteAudio.play().catch(() => {});
}

// ------------------------------------------------------------------ devices

async function refreshDevices() {
  try {
    const { inputs, outputs } = await listAudioDevices();
    const micId = app.mic?.getAudioTracks()[0]?.getSettings().deviceId ?? prefs.get('mic');
    fillDeviceSelect(ui.micSelect, inputs, micId, 'Microphone');
    fillDeviceSelect(ui.speakerSelect, outputs, prefs.get('speaker'), 'Speaker');
    ui.speakerSelect.disabled = !canChooseSpeaker || !outputs.length;
    ui.speakerHint.hidden = canChooseSpeaker;
  } catch (err) {
    console.warn('hotline: could not list audio devices', err);
  }
}

async function chooseSpeaker(deviceId, quiet = false) {
  prefs.set('speaker', deviceId);
  if (!canChooseSpeaker) return;
  try {
    await ui.remoteAudio.setSinkId(deviceId);
    // The ringtone and keypad tones follow the call audio.
    await audioContext().setSinkId?.(deviceId);
  } catch (err) {
    if (!quiet) showError(`That speaker cannot be used: ${err.message}`);
  }
}

async function initMicrophone() {
  let permission = 'prompt';
  try {
    permission = (await navigator.permissions.query({ name: 'microphone' })).state;
  } catch {
    // Not every browser can query the microphone permission.
  }
  if (permission === 'granted') {
    await ensureMic();
  } else {
    ui.micPermission.hidden = false;
    await refreshDevices();
  }
}

// ------------------------------------------------------------ notifications

function renderNotifyControls() {
  if (!('Notification' in window)) return;
  ui.notifyEnable.hidden = Notification.permission !== 'default';
  ui.notifyStatus.hidden = Notification.permission !== 'denied';
  ui.notifyStatus.textContent = 'Desktop notifications are blocked for this site. Calls still ring here.';
}

async function askNotificationPermission() {
  await Notification.requestPermission();
  renderNotifyControls();
}

// ---------------------------------------------------------------- shortcuts

const isRinging = () => Boolean(app.offer);
const isOnCall = () => Boolean(app.call);

const SHORTCUTS = [
  { key: 'a', shift: false, when: isRinging, run: answer },
  { key: 'd', shift: false, when: isRinging, run: decline },
  { key: 'escape', shift: false, when: isRinging, run: silenceRinger },
  { key: 'm', shift: false, when: isOnCall, run: toggleMute },
  { key: 'o', shift: false, when: isOnCall, run: toggleHold },
  { key: 'h', shift: true, when: isOnCall, run: hangup },
];
const DTMF_KEYS = new Set([...'0123456789*#']);

function isTyping(target) {
  if (target.isContentEditable) return true;
  if (target.tagName === 'TEXTAREA' || target.tagName === 'SELECT') return true;
  return target.tagName === 'INPUT' && !['checkbox', 'radio', 'button', 'submit'].includes(target.type);
}

function onShortcut(event) {
  if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey || event.isComposing) return;
  if (event.repeat || isTyping(event.target)) return;
  if (DTMF_KEYS.has(event.key) && app.call) {
    event.preventDefault();
    sendDtmf(event.key);
    return;
  }
  const key = event.key.toLowerCase();
  const shortcut = SHORTCUTS.find((s) => s.key === key && s.shift === event.shiftKey && s.when());
  if (!shortcut) return;
  event.preventDefault();
  shortcut.run();
}

// ------------------------------------------------------------- test hooks

// Documented in agent_client/README.md. Times are performance.now() ms.
window.hotlineTest = Object.freeze({
  get answerClickedAt() {
    return app.answerClickedAt;
  },
  firstRemoteToneAt: (freqHz) => probe.firstSeen(freqHz),
  receivedLevel: () => probe.level(),
  remoteFrequencyEnergy: (freqHz) => probe.share(freqHz),
  micLevel: () => meter.latest.rms,
  remoteAudible: () => Boolean(ui.remoteAudio.srcObject) && !ui.remoteAudio.muted && !ui.remoteAudio.paused,
  ringing: () => ringer.ringing,
  peerState: () => app.leg?.state ?? null,
  dropSocket: () => socket.drop(),
  simulateMediaFailure: (state = 'failed') => app.leg?.checkHealth(state),
});

// --------------------------------------------------------------------- boot

async function logout() {
  if (app.call || app.offer) {
    showError('Finish the call before you log out.');
    return;
  }
  socket.stop();
  closePeer();
  try {
    await fetch('/api/logout', { method: 'POST', credentials: 'same-origin' });
  } finally {
    location.assign('/login');
  }
}

async function whoAmI() {
  try {
    const response = await fetch('/api/me', { credentials: 'same-origin' });
    if (response.status === 401) return null;
    return response.ok ? await response.json() : {};
  } catch {
    return {}; // unreachable for now; the socket keeps retrying
  }
}

function bindControls() {
  ui.goAvailable.addEventListener('click', goAvailable);
  ui.pause.addEventListener('click', pause);
  ui.answer.addEventListener('click', answer);
  ui.decline.addEventListener('click', decline);
  ui.silence.addEventListener('click', silenceRinger);
  ui.mute.addEventListener('click', toggleMute);
  ui.hold.addEventListener('click', toggleHold);
  ui.hangup.addEventListener('click', hangup);
  ui.record.addEventListener('click', startRecording);
  for (const key of ui.dtmfKeys) key.addEventListener('click', () => sendDtmf(key.dataset.digit));
  ui.logout.addEventListener('click', logout);
  ui.errorDismiss.addEventListener('click', hideError);
  ui.reconnectHere.addEventListener('click', reconnectHere);
  ui.micPermission.addEventListener('click', () => {
    resumeAudio();
    ensureMic();
  });
  ui.micSelect.addEventListener('change', () => switchMic(ui.micSelect.value || null));
  ui.speakerSelect.addEventListener('change', () => chooseSpeaker(ui.speakerSelect.value));
  ui.ringerMute.addEventListener('change', () => {
    ringer.setMuted(ui.ringerMute.checked);
    prefs.set('ringerMuted', String(ringer.muted));
    if (app.offer && !ringer.muted) ringer.start();
    renderCall();
  });
  ui.notifyEnable.addEventListener('click', askNotificationPermission);
  document.addEventListener('keydown', onShortcut);
  // Browsers keep audio suspended until a user gesture; any click or key counts.
  document.addEventListener('pointerdown', resumeAudio);
  document.addEventListener('keydown', resumeAudio);
  navigator.mediaDevices?.addEventListener('devicechange', refreshDevices);
}

async function boot() {
  bindControls();
  ringer.setMuted(prefs.get('ringerMuted') === 'true');
  ui.ringerMute.checked = ringer.muted;
  socket.addEventListener('status', (event) => onSocketStatus(event.detail));
  socket.addEventListener('message', (event) => onMessage(event.detail));
  socket.addEventListener('lost', (event) => onSocketLost(event.detail));
  const me = await whoAmI();
  if (!me) {
    goToLogin();
    return;
  }
  if (me.name) ui.agentName.textContent = me.name;
  if (me.role && me.role !== 'agent') {
    // The bridge refuses the agent socket to other roles; say so instead of retrying forever.
    showError(`The softphone is for agents. You are signed in with the role: ${me.role.replaceAll('_', ' ')}.`);
    socket.stop();
    return;
  }
  socket.connect();
  setInterval(updateTimers, TIMER_TICK_MS);
  renderNotifyControls();
  if (prefs.get('speaker')) chooseSpeaker(prefs.get('speaker'), true);
  initMicrophone();
}

boot();
