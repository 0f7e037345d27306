// Display formats. Times show in the agent's own time zone and locale.

const dayFormat = new Intl.DateTimeFormat(undefined, { weekday: 'short', day: 'numeric', month: 'short' });
const timeFormat = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });

/** 5 → "0:05", 754 → "12:34", 3723 → "1:02:03". */
export function formatDuration(totalSeconds) {
  const s = Math.max(0, Math.floor(totalSeconds));
  const hours = Math.floor(s / 3600);
  const minutes = Math.floor((s % 3600) / 60);
  const seconds = String(s % 60).padStart(2, '0');
  if (hours) return `${hours}:${String(minutes).padStart(2, '0')}:${seconds}`;
  return `${minutes}:${seconds}`;
}

export function formatDay(iso) {
  return dayFormat.format(new Date(iso));
}

export function formatTime(iso) {
  return timeFormat.format(new Date(iso));
}

export function formatDayTime(iso) {
  return `${formatDay(iso)} ${formatTime(iso)}`;
}

export function clientNames(clients) {
  return (clients ?? []).map((client) => client.name).join(', ');
}
