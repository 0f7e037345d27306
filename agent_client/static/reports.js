// Reports from /api/reports (the call records): a table, a plain SVG bar chart and the CSV.

const byTestId = (id) => document.querySelector(`[data-testid="${id}"]`);
const ui = {
  form: byTestId('report-form'),
  group: byTestId('report-group'),
  by: byTestId('report-by'),
  from: byTestId('report-from'),
  to: byTestId('report-to'),
  csv: byTestId('report-csv'),
  chart: byTestId('report-chart'),
  rows: byTestId('report-table').tBodies[0],
  error: byTestId('report-error'),
  errorText: byTestId('report-error-text'),
};
const SVG = 'http://www.w3.org/2000/svg';

function query() {
  const params = new URLSearchParams({ group: ui.group.value, by: ui.by.value, from: ui.from.value, to: ui.to.value });
  return `/api/reports?${params}`;
}

function cell(text) {
  const td = document.createElement('td');
  td.textContent = text;
  return td;
}

function percent(share) {
  return share === null ? '—' : `${Math.round(share * 100)} %`;
}

function seconds(value) {
  return value === null ? '—' : `${value} s`;
}

function duration(value) {
  if (value === null) return '—';
  const minutes = Math.round(value / 60);
  return minutes < 60 ? `${minutes} min` : `${Math.floor(minutes / 60)} h ${String(minutes % 60).padStart(2, '0')}`;
}

function renderTable(rows) {
  ui.rows.replaceChildren(
    ...rows.map((r) => {
      const tr = document.createElement('tr');
      tr.dataset.testid = `report-row-${r.group}-${r.period}`;
      tr.append(cell(r.period), cell(r.group), cell(String(r.offered)), cell(String(r.answered)),
        cell(String(r.abandoned)), cell(String(r.fallback)), cell(percent(r.service_level)),
        cell(seconds(r.avg_speed_of_answer_s)), cell(seconds(r.avg_handle_s)), cell(duration(r.staffed_s)),
        cell(percent(r.occupancy)));
      return tr;
    }),
  );
}

function renderChart(rows) {
  const totals = new Map();
  for (const r of rows) {
    const t = totals.get(r.group) ?? { answered: 0, abandoned: 0 };
    t.answered += r.answered;
    t.abandoned += r.abandoned;
    totals.set(r.group, t);
  }
  const groups = [...totals];
  const peak = Math.max(1, ...groups.map(([, t]) => t.answered + t.abandoned));
  const slot = 600 / Math.max(1, groups.length);
  const parts = [];
  groups.forEach(([name, t], i) => {
    const x = i * slot + slot * 0.2;
    const width = slot * 0.6;
    const answeredHeight = (t.answered / peak) * 130;
    const abandonedHeight = (t.abandoned / peak) * 130;
    for (const [height, y, opacity] of [[answeredHeight, 145 - answeredHeight, 1],
      [abandonedHeight, 145 - answeredHeight - abandonedHeight, 0.35]]) {
      const bar = document.createElementNS(SVG, 'rect');
      bar.setAttribute('x', x.toFixed(1));
      bar.setAttribute('y', y.toFixed(1));
      bar.setAttribute('width', width.toFixed(1));
      bar.setAttribute('height', height.toFixed(1));
      bar.setAttribute('fill', '#0e5a6e');
      bar.setAttribute('fill-opacity', String(opacity));
      parts.push(bar);
    }
    const label = document.createElementNS(SVG, 'text');
    label.setAttribute('x', (x + width / 2).toFixed(1));
    label.setAttribute('y', '158');
    label.setAttribute('text-anchor', 'middle');
    label.setAttribute('font-size', '11');
    label.textContent = `${name} (${t.answered}/${t.answered + t.abandoned})`;
    parts.push(label);
  });
  ui.chart.replaceChildren(...parts);
}

async function run() {
  ui.error.hidden = true;
  ui.csv.href = `${query()}&format=csv`;
  const response = await fetch(query(), { credentials: 'same-origin' });
  if (response.status === 401) location.assign('/login');
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    ui.errorText.textContent = data.error ?? `HTTP ${response.status}`;
    ui.error.hidden = false;
    return;
  }
  renderTable(data.rows);
  renderChart(data.rows);
}

const today = new Date().toISOString().slice(0, 10);
ui.from.value = today;
ui.to.value = today;
ui.form.addEventListener('submit', (event) => {
  event.preventDefault();
  run();
});
run();
