// The recordings a signed-in person may play (the bridge lists only those),
// each with a native <audio> player. Every play is checked and audited by the
// bridge; the page never decides who may listen.

import { formatDayTime, formatDuration } from './format.js';

export async function loadRecordings() {
  const response = await fetch('/api/recordings', { credentials: 'same-origin' });
  if (!response.ok) throw new Error((await response.json().catch(() => ({}))).error ?? `HTTP ${response.status}`);
  return (await response.json()).recordings;
}

function cell(text) {
  const td = document.createElement('td');
  td.textContent = text;
  return td;
}

// Rows of `tbody` for `recordings`; `names` maps client ids to names.
export function renderRecordings(tbody, empty, recordings, names = {}) {
  empty.hidden = recordings.length > 0;
  tbody.replaceChildren(
    ...recordings.map((recording) => {
      const tr = document.createElement('tr');
      tr.dataset.testid = `recording-row-${recording.call_id}`;
      const who = recording.started_by === 'policy' ? 'always recorded' : `started by ${recording.started_by}`;
      tr.append(
        cell(formatDayTime(recording.stored_at)),
        cell(names[recording.client] ?? recording.client),
        cell(formatDuration(recording.duration_s)),
        cell(who),
      );
      const td = document.createElement('td');
      if (recording.purged) {
        td.textContent = 'Purged after its retention';
      } else {
        const audio = document.createElement('audio');
        audio.controls = true;
        audio.preload = 'none';
        audio.src = recording.url;
        audio.dataset.testid = `recording-audio-${recording.call_id}`;
        audio.setAttribute('aria-label', `Recording of the call at ${formatDayTime(recording.stored_at)}`);
        td.append(audio);
      }
      tr.append(td);
      return tr;
    }),
  );
}
