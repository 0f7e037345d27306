// A client admin's page: their lines' weekend overflow. Every change goes
// through the same REST API scripts use (/api/overflow/...), and the live
// status (registered or not, the last error) is read every 2 s.

import { formatDayTime, formatDuration } from './lib/format.js';
import { loadRecordings, renderRecordings } from './lib/recordings.js';

const REFRESH_MS = 2000;
const DAYS = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'];
const byTestId = (id, root = document) => root.querySelector(`[data-testid="${id}"]`);
const ui = {
  name: byTestId('client-admin-name'),
  lines: byTestId('lines'),
  empty: byTestId('lines-empty'),
  audit: byTestId('audit').tBodies[0],
  calls: byTestId('overflow-calls').tBodies[0],
  error: byTestId('client-error'),
  errorText: byTestId('client-error-text'),
  template: byTestId('line-template'),
};
const cards = new Map(); // line id -> its card element (kept across refreshes, so edits survive)

async function api(method, path, body) {
  const response = await fetch(path, {
    method,
    credentials: 'same-origin',
    headers: body === undefined ? {} : { 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 401) location.assign('/login');
  const data = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(data.error ?? `HTTP ${response.status}`);
  return data;
}

function showError(text) {
  ui.errorText.textContent = text;
  ui.error.hidden = false;
}

async function change(method, path, body) {
  try {
    const view = await api(method, path, body);
    render(view, true);
    await refreshAudit();
  } catch (err) {
    showError(err.message);
  }
}

function spanRow(card, span = { from: 'fri 18:00', to: 'mon 08:00' }) {
  const li = document.createElement('li');
  const [fromDay, fromTime] = span.from.split(' ');
  const [toDay, toTime] = span.to.split(' ');
  const day = (value, label) => {
    const select = document.createElement('select');
    select.setAttribute('aria-label', label);
    for (const d of DAYS) select.add(new Option(d, d, false, d === value));
    return select;
  };
  const time = (value, label) => {
    const input = document.createElement('input');
    input.type = 'time';
    input.value = value;
    input.setAttribute('aria-label', label);
    return input;
  };
  const remove = document.createElement('button');
  remove.type = 'button';
  remove.textContent = 'Remove';
  remove.addEventListener('click', () => li.remove());
  li.append('From ', day(fromDay, 'From day'), time(fromTime, 'From time'), ' to ', day(toDay, 'To day'),
    time(toTime, 'To time'), remove);
  card.querySelector('.spans').append(li);
}

function readSpans(card) {
  return [...card.querySelectorAll('.spans li')].map((li) => {
    const [fromDay, toDay] = li.querySelectorAll('select');
    const [fromTime, toTime] = li.querySelectorAll('input[type=time]');
    return { from: `${fromDay.value} ${fromTime.value}`, to: `${toDay.value} ${toTime.value}` };
  });
}

function newCard(view) {
  const card = ui.template.content.firstElementChild.cloneNode(true);
  const id = view.line;
  card.dataset.testid = `line-${id}`;
  const tag = (selector, name) => { card.querySelector(selector).dataset.testid = `${name}-${id}`; };
  tag('.line-state', 'overflow-active');
  tag('.registration', 'registration');
  tag('.registration-error', 'registration-error');
  tag('.switch', 'overflow-switch');
  tag('.add-span', 'schedule-add');
  tag('.holidays', 'schedule-holidays');
  tag('.save-schedule', 'schedule-save');
  tag('.until', 'takeover-until');
  tag('.take-over', 'takeover');
  tag('.windows', 'windows');
  tag('.spans', 'schedule-spans');
  card.querySelector('.switch').addEventListener('change', (event) => {
    change('POST', `/api/overflow/lines/${id}/switch`, { on: event.target.checked });
  });
  card.querySelector('.add-span').addEventListener('click', () => spanRow(card));
  card.querySelector('.save-schedule').addEventListener('click', () => {
    const holidays = card.querySelector('.holidays').value.split(/\s+/).filter(Boolean);
    change('PUT', `/api/overflow/lines/${id}/schedule`, { weekly: readSpans(card), holidays });
  });
  card.querySelector('.take-over').addEventListener('click', () => {
    const local = card.querySelector('.until').value;
    if (!local) return showError('Choose until when the bridge takes the line.');
    change('POST', `/api/overflow/lines/${id}/takeover`, { until: new Date(local).toISOString() });
  });
  cards.set(id, card);
  ui.lines.append(card);
  return card;
}

// `fresh`: the schedule fields are rewritten too (after a load or a save), not only the live status.
function render(view, fresh) {
  let card = cards.get(view.line);
  if (!card) {
    card = newCard(view);
    fresh = true;
  }
  card.querySelector('.line-title').textContent = `${view.line} (${view.takeover === 'registration'
    ? 'the bridge registers as your line' : 'your PBX forwards calls to the bridge'})`;
  const state = view.active ? 'The bridge is taking this line now.'
    : view.switched_on ? 'Not in a window: your own team has the line.' : 'Overflow is off: your own team has the line.';
  card.querySelector('.line-state').textContent = state;
  card.querySelector('.switch').checked = view.switched_on;
  const reg = view.registration;
  card.querySelector('.registration').textContent = !reg ? ''
    : reg.registered ? `Registered since ${formatDayTime(reg.since)}.` : 'Not registered.';
  const error = card.querySelector('.registration-error');
  error.textContent = reg?.last_error ? `${reg.last_error} (${formatDayTime(reg.last_error_at)})` : '';
  error.hidden = !reg?.last_error;
  if (fresh) {
    card.querySelector('.spans').replaceChildren();
    for (const span of view.weekly) spanRow(card, span);
    card.querySelector('.holidays').value = view.holidays.join('\n');
  }
  card.querySelector('.windows').replaceChildren(
    ...view.windows.map((w) => {
      const li = document.createElement('li');
      li.textContent = `${formatDayTime(w.start)} → ${formatDayTime(w.end)} · ${w.source} · ${w.state}`;
      return li;
    }),
  );
}

async function refreshLines(fresh = false) {
  const { lines } = await api('GET', '/api/overflow/lines');
  ui.empty.hidden = lines.length > 0;
  for (const view of lines) render(view, fresh);
  return lines;
}

async function refreshAudit() {
  const { changes } = await api('GET', '/api/overflow/audit');
  ui.audit.replaceChildren(
    ...changes.map((c) => {
      const tr = document.createElement('tr');
      for (const text of [formatDayTime(c.at), c.actor, c.line_id, c.change, JSON.stringify(c.old), JSON.stringify(c.new)]) {
        const td = document.createElement('td');
        td.textContent = text;
        tr.append(td);
      }
      return tr;
    }),
  );
}

async function refreshCalls(lines) {
  const ids = new Set(lines.map((l) => l.line));
  const clients = [...new Set(lines.map((l) => l.client))];
  const found = [];
  for (const client of clients) {
    const { calls } = await api('GET', `/api/calls?client=${encodeURIComponent(client)}&limit=100`);
    found.push(...calls.filter((c) => ids.has(c.line_id)));
  }
  ui.calls.replaceChildren(
    ...found.map((c) => {
      const tr = document.createElement('tr');
      tr.dataset.testid = `overflow-call-${c.id}`;
      const cells = [formatDayTime(c.arrived_at), c.line_id, c.caller, c.outcome ?? 'in progress', c.answered_by ?? '—',
        formatDuration(Math.round(c.queue_wait_s ?? 0)), formatDuration(Math.round(c.talk_s ?? 0))];
      for (const text of cells) {
        const td = document.createElement('td');
        td.textContent = text;
        tr.append(td);
      }
      return tr;
    }),
  );
}

byTestId('client-error-dismiss').addEventListener('click', () => { ui.error.hidden = true; });
byTestId('logout').addEventListener('click', async () => {
  await fetch('/api/logout', { method: 'POST', credentials: 'same-origin' });
  location.assign('/login');
});

async function refreshRecordings() {
  const recordings = await loadRecordings();
  renderRecordings(byTestId('recordings').tBodies[0], byTestId('recordings-empty'), recordings);
}
byTestId('recordings-refresh').addEventListener('click', () => refreshRecordings().catch((err) => showError(err.message)));

async function boot() {
  const me = await api('GET', '/api/me');
  ui.name.textContent = me.name;
  const lines = await refreshLines(true);
  await refreshAudit();
  await refreshCalls(lines);
  await refreshRecordings();
  setInterval(() => refreshLines().catch((err) => showError(err.message)), REFRESH_MS);
  setInterval(() => refreshLines().then(refreshCalls).catch(() => {}), REFRESH_MS * 5);
}

boot().catch((err) => showError(err.message));
