"""`hotline simulate`: a day of calls for a tenant file, on a virtual clock.

The glue around `dialplan.simulator`: reading the tenant and the arrivals
(a CSV file, or Poisson rates given on the command line), checking them
with errors that name the line and the field, and printing the figures as
aligned text or as JSON.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields, is_dataclass, replace
from datetime import UTC, date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import TextIO, TypeVar

from config.errors import ConfigError
from config.tenant_file import load_tenant
from dialplan.queues import QueueConfig, Strategy
from dialplan.simulator import (
    DAY_S,
    AgentStats,
    Arrival,
    DayResult,
    RateWindow,
    TrafficStats,
    day_span,
    draw_calls,
    poisson_arrivals,
    simulate,
)
from dialplan.tenant import Tenant

T = TypeVar("T")

_UNITS = {"s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}
_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(s|m|min|h)?")
_RATE = re.compile(r"([^=\s]+)=(\d+(?:\.\d*)?|\.\d+)/(h|min)(?:@(\d{2}):(\d{2})-(\d{2}):(\d{2}))?")
_RATE_FORM = "CLIENT=CALLS/h or CLIENT=CALLS/min, optionally @HH:MM-HH:MM in the client's time zone"
_CLOCK = re.compile(r"\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?")
COLUMNS = ("time", "client", "handle_s", "patience_s")
REQUIRED_COLUMNS = ("time", "client")


# ---- arguments --------------------------------------------------------------------------------


def duration_arg(raw: str) -> float:
    """Seconds from 180s, 3m, 3min, 0.5h or a plain number of seconds."""
    match = _DURATION.fullmatch(raw.strip())
    if match is None:
        raise argparse.ArgumentTypeError(f"expected a duration such as 180s, 3m or 0.5h, got {raw!r}")
    return float(match.group(1)) * _UNITS[match.group(2) or "s"]


def positive_duration_arg(raw: str) -> float:
    seconds = duration_arg(raw)
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"expected a duration longer than 0 s, got {raw!r}")
    return seconds


def patience_arg(raw: str) -> float | None:
    """The mean patience, or None for callers who never hang up."""
    if raw.strip().lower() == "none":
        return None
    try:
        return positive_duration_arg(raw)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected a duration such as 120s or 2m, or none, got {raw!r}") from None


def day_arg(raw: str) -> date:
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date such as 2026-11-23, got {raw!r}") from None


def parse_rates(spec: str, tenant: Tenant) -> list[RateWindow]:
    """`acme=120/h,globex=2/min@09:00-12:00`: Poisson rates per client, over local hours (default: all day).

    Raises ConfigError naming every bad item.
    """
    problems: list[str] = []
    windows: list[RateWindow] = []
    items = [item.strip() for item in spec.split(",")]
    for item in items:
        match = _RATE.fullmatch(item)
        if match is None:
            problems.append(f"--rate: {item!r}: expected {_RATE_FORM}, such as acme=120/h@09:00-12:00")
            continue
        client_id, count, unit, *clock = match.groups()
        if client_id not in tenant.clients:
            problems.append(f"--rate: {item!r}: unknown client {client_id!r}; expected one of: {_names(tenant)}")
            continue
        per_hour = float(count) * (60.0 if unit == "min" else 1.0)
        from_s, to_s = 0.0, DAY_S
        if clock[0] is not None:
            h1, m1, h2, m2 = (int(part) for part in clock if part is not None)
            if h1 > 23 or m1 > 59 or h2 > 24 or m2 > 59 or (h2 == 24 and m2 > 0):
                problems.append(f"--rate: {item!r}: hours must be between 00:00 and 24:00")
                continue
            from_s, to_s = h1 * 3600.0 + m1 * 60.0, h2 * 3600.0 + m2 * 60.0
            if to_s <= from_s:
                problems.append(f"--rate: {item!r}: the hours must end after they start")
                continue
        windows.append(RateWindow(client_id, per_hour, from_s, to_s))
    if problems:
        raise ConfigError(problems)
    return windows


def _names(tenant: Tenant) -> str:
    return ", ".join(sorted(tenant.clients))


# ---- the arrivals file ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Day:
    day: date
    start: datetime
    end: datetime

    def describe(self) -> str:
        return f"{self.start:%Y-%m-%d %H:%M} to {self.end:%Y-%m-%d %H:%M} UTC"


def read_arrivals(path: Path, day: date, tenant: Tenant) -> list[Arrival]:
    """The arrivals CSV: a header naming `time`, `client` and optionally `handle_s`, `patience_s`, then a row per call.

    `time` is HH:MM[:SS] on `day` in UTC, or an ISO date-time (UTC if it has no zone) within
    the simulated day; `handle_s` the talk time in seconds; `patience_s` seconds, or none for
    a caller who never hangs up. Empty cells are drawn from the model. Raises ConfigError with
    every bad row, as `<file>: line <n>: <column>: <what>`.
    """
    name = path.name
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError([f"{name}: cannot read file: {exc.strerror or exc}"]) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ConfigError([f"{name}: line {line}: not UTF-8 text"]) from None
    start, end = day_span(tenant, day)
    return _parse_arrivals(text, name, _Day(day, start, end), tenant)


def _parse_arrivals(text: str, name: str, day: _Day, tenant: Tenant) -> list[Arrival]:
    problems: list[str] = []
    rows = _rows(text, name)
    if not rows:
        raise ConfigError([f"{name}: empty file; expected a header line: {','.join(COLUMNS)}"])
    header_line, header = rows[0]
    columns = [cell.strip() for cell in header]
    for column in columns:
        if column not in COLUMNS:
            problems.append(f"{name}: line {header_line}: unknown column {column!r}; expected {', '.join(COLUMNS)}")
        elif columns.count(column) > 1:
            problems.append(f"{name}: line {header_line}: column {column!r} appears twice")
    problems += [
        f"{name}: line {header_line}: missing column {column!r}" for column in REQUIRED_COLUMNS if column not in columns
    ]
    if problems:
        raise ConfigError(problems)
    if len(rows) == 1:
        raise ConfigError([f"{name}: no arrivals: expected a row per call after the header"])
    arrivals: list[Arrival] = []
    for number, row in rows[1:]:
        where = f"{name}: line {number}"
        if len(row) != len(columns):
            problems.append(f"{where}: expected {len(columns)} fields ({','.join(columns)}), got {len(row)}")
            continue
        cells = {column: cell.strip() for column, cell in zip(columns, row, strict=True)}
        found: list[str] = []
        at = _cell(cells, "time", lambda v: _instant(v, day), found)
        client_id = _cell(cells, "client", lambda v: _client(v, tenant), found)
        talk_s = _cell(cells, "handle_s", _talk, found)
        patience_s = _cell(cells, "patience_s", _patience, found)
        problems += [f"{where}: {problem}" for problem in found]
        if not found and at is not None and client_id is not None:
            arrivals.append(Arrival(at, client_id, talk_s, patience_s))
    if problems:
        raise ConfigError(problems)
    return arrivals


def _rows(text: str, name: str) -> list[tuple[int, list[str]]]:
    """The rows that aren't blank, each with its line number."""
    reader = csv.reader(io.StringIO(text))
    rows: list[tuple[int, list[str]]] = []
    try:
        for row in reader:
            if any(cell.strip() for cell in row):
                rows.append((reader.line_num, row))
    except csv.Error as exc:
        raise ConfigError([f"{name}: line {reader.line_num}: {exc}"]) from None
    return rows


def _cell(cells: dict[str, str], column: str, parse: Callable[[str], T], found: list[str]) -> T | None:
    value = cells.get(column, "")
    if value == "":
        if column in REQUIRED_COLUMNS:
            found.append(f"{column}: missing")
        return None
    try:
        return parse(value)
    except ValueError as exc:
        found.append(f"{column}: {exc}")
        return None


def _instant(value: str, day: _Day) -> datetime:
    if _CLOCK.fullmatch(value):
        try:
            clock = time.fromisoformat(value if value[1] != ":" else f"0{value}")
        except ValueError:
            raise ValueError(f"expected HH:MM:SS (UTC) or an ISO date-time, got {value!r}") from None
        at = datetime.combine(day.day, clock, tzinfo=UTC)
    else:
        try:
            at = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"expected HH:MM:SS (UTC) or an ISO date-time, got {value!r}") from None
        at = at if at.tzinfo is not None else at.replace(tzinfo=UTC)
    if not day.start <= at < day.end:
        raise ValueError(f"{value} is outside the simulated day, {day.describe()}")
    return at.astimezone(UTC)


def _client(value: str, tenant: Tenant) -> str:
    if value not in tenant.clients:
        raise ValueError(f"unknown client {value!r}; expected one of: {_names(tenant)}")
    return value


def _seconds(value: str) -> float | None:
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) else None


def _talk(value: str) -> float:
    seconds = _seconds(value)
    if seconds is None or seconds <= 0:
        raise ValueError(f"expected a number of seconds above 0, got {value!r}")
    return seconds


def _patience(value: str) -> float:
    if value.lower() == "none":
        return math.inf
    seconds = _seconds(value)
    if seconds is None or seconds < 0:
        raise ValueError(f"expected a number of seconds, 0 or more, or none, got {value!r}")
    return seconds


# ---- the run ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    config: Path
    day: date
    arrivals: Path | None
    rate: str | None
    handle_s: float
    patience_s: float | None
    answer_after_s: float
    strategy: Strategy | None
    compare: Strategy | None
    seed: int
    as_json: bool


def queues_for(tenant: Tenant, strategy: Strategy | None) -> list[QueueConfig]:
    """The tenant's queues (a default one for each client without any), every one with `strategy` when given."""
    queues = list(tenant.all_queues.values())
    return queues if strategy is None else [replace(q, strategy=strategy) for q in queues]


def run(options: Options, out: TextIO) -> None:
    """Simulate the day (and the comparison) and print the figures.

    Raises ConfigError, with every problem found, for a bad tenant file, arrivals file or option.
    """
    tenant = load_tenant(options.config)
    if options.arrivals is not None:
        arrivals = read_arrivals(options.arrivals, options.day, tenant)
    else:
        arrivals = poisson_arrivals(tenant, options.day, parse_rates(options.rate or "", tenant), options.seed)
    runs = [(_label(tenant, options.strategy), queues_for(tenant, options.strategy))]
    if options.compare is not None:
        runs.append((options.compare.value, queues_for(tenant, options.compare)))
    _check_answer_after(options.answer_after_s, [q for _, queues in runs for q in queues])
    calls = draw_calls(arrivals, mean_talk_s=options.handle_s, mean_patience_s=options.patience_s, seed=options.seed)
    start, end = day_span(tenant, options.day)
    results: list[tuple[str, DayResult]] = []
    for label, queues in runs:
        result = simulate(
            tenant, queues, calls, start=start, end=end, answer_after_s=options.answer_after_s, seed=options.seed
        )
        results.append((label, result))
    if options.as_json:
        json.dump(_json_report(tenant, options, results), out, indent=2, ensure_ascii=False)
        out.write("\n")
    elif len(results) == 1:
        out.write(format_day(tenant, options, *results[0]))
    else:
        out.write(format_comparison(tenant, options, results))


def _label(tenant: Tenant, strategy: Strategy | None) -> str:
    if strategy is not None:
        return strategy.value
    found = {q.strategy.value for q in tenant.all_queues.values()}
    return found.pop() if len(found) == 1 else "as configured"


def _check_answer_after(answer_after_s: float, queues: Sequence[QueueConfig]) -> None:
    shortest = min(q.ring_timeout_s for q in queues)
    if answer_after_s >= shortest:
        raise ConfigError(
            [
                f"--answer-after: {answer_after_s:g} s is not shorter than the ring timeout ({shortest:g} s): "
                "every offer would time out"
            ]
        )


# ---- text -------------------------------------------------------------------------------------


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], left: int = 1) -> str:
    """Columns padded to their widest cell: the first `left` to the left, numbers to the right."""
    everything = [list(header), *(list(row) for row in rows)]
    widths = [max(len(row[i]) for row in everything) for i in range(len(header))]
    lines = []
    for row in everything:
        cells = [
            cell.ljust(w) if i < left else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _secs(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _hms(seconds: float) -> str:
    whole = round(seconds)
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


def _money(agent: AgentStats) -> str:
    return ", ".join(f"{amount} {currency}" for currency, amount in agent.earned.items()) or "0"


def _heading(tenant: Tenant, options: Options, result: DayResult) -> str:
    return (
        f"Tenant {tenant.id!r}, {options.day.isoformat()} "
        f"({result.start:%Y-%m-%d %H:%M} to {result.end:%Y-%m-%d %H:%M} UTC), seed {options.seed}: "
        f"{len(result.calls)} call{'' if len(result.calls) == 1 else 's'}"
    )


def _closed_note(result: DayResult, label: str = "") -> str:
    closed = sum(1 for c in result.calls if c.reason == "closed")
    if not closed:
        return ""
    prefix = f"{label}: " if label else ""
    return f"{prefix}{closed} callers still waiting when the simulation closed are counted as abandoned.\n"


def format_day(tenant: Tenant, options: Options, label: str, result: DayResult) -> str:
    within = f"{result.within_s:g} s"
    queues = _table(
        ("queue", "client", "offered", "answered", "abandoned", "fallback", f"SL {within}", "ASA s", "abandoned %"),
        [
            (
                q.name,
                q.client_id,
                str(q.offered),
                str(q.answered),
                str(q.abandoned),
                str(q.fallback),
                _pct(q.service_level),
                _secs(q.asa_s),
                _pct(q.abandonment_rate),
            )
            for q in result.queues
        ],
        left=2,
    )
    erlang_rows = []
    for q in result.queues:
        e = q.erlang
        if e is None:
            erlang_rows.append((q.name, "-", "-", "-", "-", "-", _pct(q.service_level), "-", _secs(q.asa_s), "-"))
            continue
        erlang_rows.append(
            (
                q.name,
                f"{e.arrivals_per_h:.1f}",
                f"{e.mean_handle_s:.1f}",
                f"{e.load:.2f}",
                f"{e.staffed:.2f}",
                str(e.agents),
                _pct(q.service_level),
                _pct(e.service_level),
                _secs(q.asa_s),
                _secs(e.asa_s),
            )
        )
    erlang_table = _table(
        ("queue", "calls/h", "handle s", "erlangs", "staffed", "N", "SL sim", "SL Erlang", "ASA sim", "ASA Erlang"),
        erlang_rows,
    )
    agents = _table(
        ("agent", "logged in", "calls", "talk", "wrap-up", "occupancy", "earnings"),
        [
            (
                a.login,
                _hms(a.logged_in_s),
                str(a.calls),
                _hms(a.talk_s),
                _hms(a.wrap_up_s),
                _pct(a.occupancy),
                _money(a),
            )
            for a in result.agents
        ],
    )
    return (
        f"{_heading(tenant, options, result)}\nStrategy: {label}\n\n"
        f"Queues (SL: answered within {within} over answered plus abandoned after {within})\n{queues}\n"
        f"{_closed_note(result)}\n"
        f"Erlang C for the same traffic (-: under 2 calls, or the load reaches the agents)\n{erlang_table}\n\n"
        f"Agents\n{agents}\n\n"
        f"Earnings Gini: {result.earnings_gini:.3f}\n"
    )


def format_comparison(tenant: Tenant, options: Options, results: Sequence[tuple[str, DayResult]]) -> str:
    labels = [label for label, _ in results]
    first = results[0][1]
    within = f"{first.within_s:g} s"
    queue_rows: list[tuple[str, ...]] = []
    metrics: list[tuple[str, Callable[[TrafficStats], str]]] = [
        ("offered", lambda q: str(q.offered)),
        ("answered", lambda q: str(q.answered)),
        ("abandoned", lambda q: str(q.abandoned)),
        ("fallback", lambda q: str(q.fallback)),
        (f"SL {within}", lambda q: _pct(q.service_level)),
        ("ASA s", lambda q: _secs(q.asa_s)),
        ("abandoned %", lambda q: _pct(q.abandonment_rate)),
        ("SL Erlang", lambda q: _pct(q.erlang.service_level if q.erlang else None)),
    ]
    for index, queue in enumerate(first.queues):
        for position, (metric, show) in enumerate(metrics):
            queue_rows.append(
                (queue.name if position == 0 else "", metric, *(show(r.queues[index]) for _, r in results))
            )
    agent_rows: list[tuple[str, ...]] = []
    agent_metrics: list[tuple[str, Callable[[AgentStats], str]]] = [
        ("calls", lambda a: str(a.calls)),
        ("occupancy", lambda a: _pct(a.occupancy)),
        ("earnings", _money),
    ]
    for index, agent in enumerate(first.agents):
        for position, (metric, show_agent) in enumerate(agent_metrics):
            agent_rows.append(
                (agent.login if position == 0 else "", metric, *(show_agent(r.agents[index]) for _, r in results))
            )
    gini_row = ("Earnings Gini", *(f"{r.earnings_gini:.3f}" for _, r in results))
    return (
        f"{_heading(tenant, options, first)}\nStrategies compared on the same calls: {' vs '.join(labels)}\n\n"
        f"Queues\n{_table(('queue', 'metric', *labels), queue_rows, left=2)}\n"
        f"{''.join(_closed_note(r, label) for label, r in results)}\n"
        f"Agents\n{_table(('agent', 'metric', *labels), agent_rows, left=2)}\n\n"
        f"{_table(('', *labels), [gini_row])}\n"
    )


# ---- JSON -------------------------------------------------------------------------------------


def _jsonable(value: object) -> object:
    if is_dataclass(value) and not isinstance(value, type):
        found = {f.name: _jsonable(getattr(value, f.name)) for f in fields(value)}
        if isinstance(value, AgentStats):
            found["earned_total"] = str(value.earned_total)
        return found
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _json_report(tenant: Tenant, options: Options, results: Sequence[tuple[str, DayResult]]) -> object:
    return {
        "tenant": tenant.id,
        "day": options.day.isoformat(),
        "seed": options.seed,
        "answer_after_s": options.answer_after_s,
        "mean_handle_s": options.handle_s,
        "mean_patience_s": options.patience_s,
        "runs": [{"strategy": label, "result": _jsonable(result)} for label, result in results],
    }
