"""The day simulator (dialplan/simulator.py) and `hotline simulate` (hotline/simulate.py)."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from config.tenant_file import load_tenant, load_tenant_text
from dialplan import erlang
from dialplan.queues import AgentTimers, Announcements, Fallback, FallbackKind, QueueConfig, Strategy
from dialplan.schedule import DatedSpan, WeeklyCalendar
from dialplan.simulator import (
    Arrival,
    DayResult,
    RateWindow,
    day_span,
    draw_calls,
    gini,
    poisson_arrivals,
    simulate,
)
from dialplan.tenant import Agent, Client, Greeting, ServedClient, Shift, Tenant
from hotline.cli import main
from hotline.simulate import queues_for, read_arrivals

REPO = Path(__file__).resolve().parents[2]
FIXTURE = REPO / "tests" / "fixtures" / "tenants" / "simulator.toml"
DAY = date(2026, 11, 23)  # a Monday: the fixture's agents are on shift
START = datetime(2026, 11, 23, tzinfo=UTC)
UTCZ = ZoneInfo("UTC")
# Position announcements and tiers only add router deadlines; these tests don't need them.
QUIET = QueueConfig("acme", "acme", announcements=Announcements(position=False), tier_delay_s=0)


def one_client_floor(agents: int, hours: float, *, wrap_up_s: int = 0) -> Tenant:
    """One client and `agents` agents, all on one slot from before the start to well after `hours`."""
    client = Client("acme", "Acme", UTCZ, Greeting(text="hi"), wrap_up_s=wrap_up_s)
    logins = [f"a{i:02d}" for i in range(agents)]
    slot = DatedSpan(datetime(2026, 11, 22, 23), datetime(2026, 11, 23) + timedelta(hours=hours, days=1))
    return Tenant(
        "t",
        "T",
        {"acme": client},
        (),
        {login: Agent(login, login, "$argon2id$x", (ServedClient("acme"),)) for login in logins},
        tuple(Shift(login, WeeklyCalendar(UTCZ, dated=(slot,))) for login in logins),
    )


def poisson(per_hour: float, hours: float, seed: int) -> list[Arrival]:
    rng = random.Random(seed)
    arrivals, at = [], rng.expovariate(per_hour / 3600)
    while at < hours * 3600:
        arrivals.append(Arrival(START + timedelta(seconds=at), "acme"))
        at += rng.expovariate(per_hour / 3600)
    return arrivals


def accounted(result: DayResult) -> None:
    """Every call ends exactly one way, in the queue and the client it arrived in."""
    for stats in (*result.queues, *result.clients):
        assert stats.answered + stats.abandoned + stats.fallback == stats.offered
    assert sum(q.offered for q in result.queues) == len(result.calls)
    assert sum(c.offered for c in result.clients) == len(result.calls)
    for call in result.calls:
        assert call.outcome in ("answered", "abandoned", "fallback")
        assert call.wait_s >= 0
        assert (call.agent is not None) == (call.outcome == "answered")


# ---- Erlang C ---------------------------------------------------------------------------------

# 8 agents, 6.4 erlangs offered (80 % occupancy), 3-minute exponential calls, Poisson arrivals,
# nobody hangs up, no wrap-up, answered at once: Erlang C's own model. Waits come in long
# correlated stretches at 80 %, so it takes many calls: 400 simulated hours are about 51,000.
# Over seeds 1 to 20 the simulated service level stayed within 1.1 points of Erlang C for the
# traffic generated (0.55 points typical), the ASA within 13 %.
ERLANG_AGENTS = 8
ERLANG_LOAD = 6.4
ERLANG_HANDLE_S = 180.0
ERLANG_HOURS = 400.0
ERLANG_SEED = 7


def erlang_scenario(seed: int) -> tuple[float, float, float, float, int]:
    """The simulated service level and ASA, Erlang C's for the traffic generated, and the number of calls."""
    per_hour = ERLANG_LOAD / ERLANG_HANDLE_S * 3600
    tenant = one_client_floor(ERLANG_AGENTS, ERLANG_HOURS)
    calls = draw_calls(
        poisson(per_hour, ERLANG_HOURS, seed), mean_talk_s=ERLANG_HANDLE_S, mean_patience_s=None, seed=seed
    )
    result = simulate(
        tenant,
        [QUIET],
        calls,
        start=START,
        end=START + timedelta(hours=ERLANG_HOURS),
        answer_after_s=0,
        timers={"acme": AgentTimers(wrap_up_s=0)},
    )
    queue = result.queues[0]
    figures = queue.erlang
    assert figures is not None
    assert figures.service_level is not None
    assert figures.asa_s is not None
    assert queue.service_level is not None
    assert queue.asa_s is not None
    # Erlang C is given the traffic as it came: the agents on the slot, the load near the nominal one.
    assert figures.staffed == pytest.approx(ERLANG_AGENTS)
    assert figures.agents == ERLANG_AGENTS
    assert figures.load == pytest.approx(ERLANG_LOAD, abs=0.15)
    assert queue.answered == queue.offered == len(calls)
    return queue.service_level, figures.service_level, queue.asa_s, figures.asa_s, len(calls)


def test_the_service_level_agrees_with_erlang_c_in_its_own_model() -> None:
    simulated, predicted, asa, predicted_asa, calls = erlang_scenario(ERLANG_SEED)
    assert calls > 50_000
    assert abs(simulated - predicted) <= 0.02
    # The mean wait spreads more than the service level: a looser check.
    assert asa == pytest.approx(predicted_asa, rel=0.2)
    # And the textbook figure for the nominal traffic is not far either.
    nominal = erlang.service_level(ERLANG_AGENTS, ERLANG_LOAD, ERLANG_HANDLE_S, 20)
    assert abs(simulated - nominal) <= 0.04


# ---- outcomes ---------------------------------------------------------------------------------


def test_abandonment_rises_with_load() -> None:
    # 4 agents, 3-minute calls, callers hanging up after a minute on average: 2, 3.2 and 4.4
    # erlangs offered over 8 hours, the same seed for each.
    tenant = one_client_floor(4, 8, wrap_up_s=10)
    rates = []
    for per_hour in (40, 64, 88):
        calls = draw_calls(poisson(per_hour, 8, seed=3), mean_talk_s=180, mean_patience_s=60, seed=3)
        result = simulate(tenant, [QUIET], calls, start=START, end=START + timedelta(hours=8))
        accounted(result)
        rate = result.queues[0].abandonment_rate
        assert rate is not None
        rates.append(rate)
    # Seeds 1 to 10 all give about 0.1, 0.2 and 0.3.
    assert rates[0] < rates[1] < rates[2]
    assert rates[2] > 2 * rates[0]


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_csv_arrivals_are_replayed_exactly(tmp_path: Path) -> None:
    tenant = load_tenant(FIXTURE)
    path = write(
        tmp_path,
        "day.csv",
        "time,client,handle_s,patience_s\n"
        "09:00:00,acme,90,\n"
        "09:00:10,acme,30,5\n"
        "\n"
        "2026-11-23T09:00:20Z,acme,45,none\n"
        "09:30:00.5,globex,,\n",
    )
    arrivals = read_arrivals(path, DAY, tenant)
    at = datetime(2026, 11, 23, 9, tzinfo=UTC)
    assert arrivals == [
        Arrival(at, "acme", 90.0, None),
        Arrival(at + timedelta(seconds=10), "acme", 30.0, 5.0),
        Arrival(at + timedelta(seconds=20), "acme", 45.0, float("inf")),
        Arrival(at + timedelta(minutes=30, milliseconds=500), "globex", None, None),
    ]
    calls = draw_calls(arrivals, mean_talk_s=180, mean_patience_s=120, seed=0)
    assert [c.talk_s for c in calls[:3]] == [90.0, 30.0, 45.0]
    drawn = calls[3]
    assert drawn.talk_s > 0
    assert drawn.patience_s > 0
    assert draw_calls(arrivals, mean_talk_s=180, mean_patience_s=120, seed=0) == calls

    start, end = day_span(tenant, DAY)
    result = simulate(tenant, queues_for(tenant, None), calls, start=start, end=end, answer_after_s=3)
    accounted(result)
    first, second, third, fourth = result.calls
    # At 09:00 only ann is on shift for acme; she answers 3 s after the offer.
    assert (first.arrived_at, first.outcome, first.agent, first.wait_s, first.talk_s) == (at, "answered", "ann", 3, 90)
    assert first.earned == Decimal("1.50")
    # Nobody free: the second caller hangs up after their 5 s of patience.
    assert (second.outcome, second.reason, second.wait_s) == ("abandoned", "patience", 5)
    # The third waits for ann: her call ends at 09:01:33, acme's wrap-up is 10 s, the answer 3 s later.
    assert (third.outcome, third.agent, third.wait_s, third.earned) == ("answered", "ann", 86, Decimal("0.20"))
    # globex's caller reaches cat, unless their drawn patience is under 3 s.
    expected = ("answered", 3.0) if drawn.patience_s > 3 else ("abandoned", drawn.patience_s)
    assert (fourth.client_id, fourth.outcome, fourth.wait_s) == ("globex", *expected)
    ann = next(a for a in result.agents if a.login == "ann")
    assert (ann.calls, ann.talk_s, ann.wrap_up_s, ann.earned) == (2, 135, 20, {"EUR": Decimal("1.70")})
    # ann is logged in for her slot, 08:00 to 17:00.
    assert ann.logged_in_s == 9 * 3600


@pytest.mark.parametrize(
    ("strategy", "patience_s"),
    [(Strategy.LONGEST_IDLE, 240.0), (Strategy.RING_ALL, 240.0), (Strategy.FAIR_EARNINGS, None)],
)
def test_every_call_is_accounted_for(strategy: Strategy, patience_s: float | None) -> None:
    # A busy day on the fixture: calls come around the clock, agents work 08:00 to 20:00, the
    # queues hold at most 5 callers and for at most 5 minutes, so callers leave every way.
    tenant = load_tenant(FIXTURE)
    windows = [RateWindow("acme", 20), RateWindow("globex", 15)]
    calls = draw_calls(
        poisson_arrivals(tenant, DAY, windows, seed=5), mean_talk_s=150, mean_patience_s=patience_s, seed=5
    )
    queues = [replace(q, max_length=5, max_wait_s=300) for q in queues_for(tenant, strategy)]
    start, end = day_span(tenant, DAY)
    result = simulate(tenant, queues, calls, start=start, end=end)
    accounted(result)
    assert {c.outcome for c in result.calls} == {"answered", "abandoned", "fallback"}
    # Without patience, only the callers still waiting at the close (arrived in the day's last
    # 5 minutes, when nobody is on shift any more) count as abandoned.
    expected = {"patience", "closed"} if patience_s else {"closed"}
    assert {c.reason for c in result.calls if c.outcome == "abandoned"} == expected
    assert {c.reason for c in result.calls if c.outcome == "fallback"} == {"queue_full", "max_wait"}
    assert [c.call_id for c in result.calls] == [c.call_id for c in calls]


def test_callers_nobody_will_answer_are_counted_abandoned_at_the_close() -> None:
    # After 20:00 nobody is on shift; with infinite patience and no queue limits these callers
    # would wait forever: the simulation closes when the last agent has left.
    tenant = load_tenant(FIXTURE)
    start, end = day_span(tenant, DAY)
    late = [Arrival(datetime(2026, 11, 23, 21, minute, tzinfo=UTC), "globex", 60.0, float("inf")) for minute in (0, 5)]
    result = simulate(
        tenant,
        queues_for(tenant, None),
        draw_calls(late, mean_talk_s=60, mean_patience_s=None, seed=0),
        start=start,
        end=end,
    )
    accounted(result)
    assert [(c.outcome, c.reason) for c in result.calls] == [("abandoned", "closed")] * 2
    assert result.closed_at == end
    assert result.calls[0].wait_s == (end - late[0].at).total_seconds()


def test_an_agent_finishes_the_call_they_are_on_when_their_slot_ends() -> None:
    tenant = load_tenant(FIXTURE)
    start, end = day_span(tenant, DAY)
    # cat's slot ends at 17:00, in the middle of this 10-minute call.
    arrivals = [Arrival(datetime(2026, 11, 23, 16, 55, tzinfo=UTC), "globex", 600.0, float("inf"))]
    result = simulate(
        tenant,
        queues_for(tenant, None),
        draw_calls(arrivals, mean_talk_s=1, mean_patience_s=None, seed=0),
        start=start,
        end=end,
    )
    (call,) = result.calls
    assert (call.outcome, call.agent, call.talk_s) == ("answered", "cat", 600)
    cat = next(a for a in result.agents if a.login == "cat")
    # Logged in from 08:00 until the call (answered at 16:55:03) and its 5 s wrap-up are over.
    assert cat.logged_in_s == 9 * 3600 + 3 + 600 + 5 - 300
    assert cat.wrap_up_s == 5


def test_an_agent_back_on_shift_before_their_call_ends_stays_logged_in() -> None:
    tenant = load_tenant(FIXTURE)
    (cat,) = (s for s in tenant.shifts if s.agent_login == "cat")
    # cat gets a second slot from 17:05, while still on the call that ran past 17:00.
    evening = WeeklyCalendar(UTCZ, dated=(DatedSpan(datetime(2026, 11, 23, 17, 5), datetime(2026, 11, 23, 18)),))
    tenant = replace(tenant, shifts=(*tenant.shifts, replace(cat, calendar=evening)))
    start, end = day_span(tenant, DAY)
    arrivals = [
        Arrival(datetime(2026, 11, 23, 16, 55, tzinfo=UTC), "globex", 600.0, float("inf")),
        Arrival(datetime(2026, 11, 23, 17, 30, tzinfo=UTC), "globex", 60.0, float("inf")),
    ]
    calls = draw_calls(arrivals, mean_talk_s=1, mean_patience_s=None, seed=0)
    result = simulate(tenant, queues_for(tenant, None), calls, start=start, end=end)
    assert [(c.outcome, c.agent, c.wait_s) for c in result.calls] == [("answered", "cat", 3), ("answered", "cat", 3)]
    stats = next(a for a in result.agents if a.login == "cat")
    # One stretch, 08:00 to 18:00: the call across 17:00 doesn't log her out.
    assert stats.logged_in_s == 10 * 3600


def test_a_fallback_to_another_queue_keeps_the_caller_waiting() -> None:
    tenant = load_tenant(FIXTURE)
    overflow = QueueConfig("acme-overflow", "acme", announcements=Announcements(position=False))
    main_queue = QueueConfig(
        "acme",
        "acme",
        max_wait_s=30,
        fallback=Fallback(FallbackKind.QUEUE, "acme-overflow"),
        announcements=overflow.announcements,
    )
    start, end = day_span(tenant, DAY)
    # Nobody is on shift before 08:00: after 30 s in acme the caller moves on, and ann answers at 08:00.
    arrivals = [Arrival(datetime(2026, 11, 23, 7, tzinfo=UTC), "acme", 60.0, float("inf"))]
    result = simulate(
        tenant,
        [main_queue, overflow],
        draw_calls(arrivals, mean_talk_s=1, mean_patience_s=None, seed=0),
        start=start,
        end=end,
    )
    accounted(result)
    (call,) = result.calls
    assert (call.queue_id, call.outcome, call.agent, call.wait_s) == ("acme", "answered", "ann", 3603)
    assert [(q.name, q.offered, q.answered) for q in result.queues] == [("acme", 1, 1), ("acme-overflow", 0, 0)]


def test_gini() -> None:
    assert gini([]) == 0
    assert gini([0, 0]) == 0
    assert gini([5, 5, 5]) == 0
    assert gini([0, 0, 0, 10]) == pytest.approx(0.75)
    assert gini([1, 2, 3]) == pytest.approx(2 / 9)


# ---- the command ------------------------------------------------------------------------------


def simulate_cli(*args: str) -> list[str]:
    return ["simulate", "--config", str(FIXTURE), "--day", DAY.isoformat(), *args]


def test_compare_evens_out_earnings_where_longest_idle_does_not(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # ann (on shift from 08:00) and ben (from 12:00) both take acme's calls, which pay 1.50 EUR
    # from a minute of talk and 0.20 EUR under. From 12:30 a call comes every 10 minutes,
    # alternately 5 minutes long and 30 seconds, so both agents are idle at every arrival.
    # longest_idle then alternates ann, ben, ann...: ann gets every long call, ben every short
    # one. fair_earnings gives each call to whoever earned less so far, whatever its length.
    rows = [
        f"{START + timedelta(hours=12, minutes=30 + 10 * i):%H:%M:%S},acme,{300 if i % 2 == 0 else 30},none"
        for i in range(20)
    ]
    path = write(tmp_path, "alternating.csv", "time,client,handle_s,patience_s\n" + "\n".join(rows) + "\n")
    code = main(
        simulate_cli("--arrivals", str(path), "--strategy", "longest_idle", "--compare", "fair_earnings", "--json")
    )
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    (base_label, base), (other_label, other) = ((r["strategy"], r["result"]) for r in report["runs"])
    assert (base_label, other_label) == ("longest_idle", "fair_earnings")

    def earned(result: dict[str, object], login: str) -> Decimal:
        agents = result["agents"]
        assert isinstance(agents, list)
        return Decimal(next(a["earned_total"] for a in agents if a["login"] == login))

    assert (earned(base, "ann"), earned(base, "ben")) == (Decimal("15.00"), Decimal("2.00"))
    assert abs(earned(other, "ann") - earned(other, "ben")) <= Decimal("1.50")
    # cat, logged in for globex, earns nothing either way: part of both coefficients.
    assert other["earnings_gini"] < base["earnings_gini"]
    # The same calls, all answered at once, in both runs.
    assert [c["arrived_at"] for c in base["calls"]] == [c["arrived_at"] for c in other["calls"]]
    assert {c["wait_s"] for c in base["calls"] + other["calls"]} == {3.0}


def test_simulate_prints_the_figures(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(simulate_cli("--rate", "acme=20/h@09:00-18:00,globex=0.25/min", "--seed", "2")) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("Tenant 'sim', 2026-11-23 (2026-11-22 23:00 to 2026-11-24 00:00 UTC), seed 2: ")
    assert lines[1] == "Strategy: longest_idle"
    sections = {
        "Queues (SL: answered within 20 s over answered plus abandoned after 20 s)": (
            "queue  client  offered  answered  abandoned  fallback  SL 20 s  ASA s  abandoned %"
        ),
        "Erlang C for the same traffic (-: under 2 calls, or the load reaches the agents)": (
            "queue  calls/h  handle s  erlangs  staffed  N  SL sim  SL Erlang  ASA sim  ASA Erlang"
        ),
        "Agents": "agent  logged in  calls  talk  wrap-up  occupancy  earnings",
    }
    for heading, columns in sections.items():
        header = lines[lines.index(heading) + 1]
        assert " ".join(header.split()) == " ".join(columns.split())
        first_column = [row.split()[0] for row in lines[lines.index(heading) + 2 : lines.index(heading) + 4]]
        assert first_column == (["ann", "ben"] if heading == "Agents" else ["acme", "globex"])
    assert lines[-1].startswith("Earnings Gini: ")


def test_compare_prints_both_strategies_side_by_side(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(simulate_cli("--rate", "acme=30/h", "--compare", "fair_earnings")) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1] == "Strategies compared on the same calls: longest_idle vs fair_earnings"
    assert lines[lines.index("Queues") + 1].split() == ["queue", "metric", "longest_idle", "fair_earnings"]
    assert lines[-1].split()[:2] == ["Earnings", "Gini"]


@pytest.mark.parametrize(
    ("rate", "problems"),
    [
        (
            "acme=fast",
            [
                "--rate: 'acme=fast': expected CLIENT=CALLS/h or CLIENT=CALLS/min, optionally @HH:MM-HH:MM "
                "in the client's time zone, such as acme=120/h@09:00-12:00"
            ],
        ),
        (
            "acme=10/h,initech=5/h,acme=2/min@12:00-09:00",
            [
                "--rate: 'initech=5/h': unknown client 'initech'; expected one of: acme, globex",
                "--rate: 'acme=2/min@12:00-09:00': the hours must end after they start",
            ],
        ),
        ("acme=10/h@09:00-25:00", ["--rate: 'acme=10/h@09:00-25:00': hours must be between 00:00 and 24:00"]),
    ],
)
def test_a_bad_rate_is_named_and_exits_2(rate: str, problems: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(simulate_cli("--rate", rate)) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines() == problems


def test_a_bad_csv_names_every_bad_row_and_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(
        tmp_path,
        "bad.csv",
        "time,client,handle_s\n"
        "09:00:00,acme,60\n"
        "25:00:00,acme,60\n"
        "09:10:00,acmee,abc\n"
        "09:20:00,acme\n"
        "2026-11-25T09:00:00,globex,\n"
        ",globex,-3\n",
    )
    assert main(simulate_cli("--arrivals", str(path))) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.splitlines() == [
        "bad.csv: line 3: time: expected HH:MM:SS (UTC) or an ISO date-time, got '25:00:00'",
        "bad.csv: line 4: client: unknown client 'acmee'; expected one of: acme, globex",
        "bad.csv: line 4: handle_s: expected a number of seconds above 0, got 'abc'",
        "bad.csv: line 5: expected 3 fields (time,client,handle_s), got 2",
        "bad.csv: line 6: time: 2026-11-25T09:00:00 is outside the simulated day, "
        "2026-11-22 23:00 to 2026-11-24 00:00 UTC",
        "bad.csv: line 7: time: missing",
        "bad.csv: line 7: handle_s: expected a number of seconds above 0, got '-3'",
    ]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "bad.csv: empty file; expected a header line: time,client,handle_s,patience_s"),
        ("time,client\n", "bad.csv: no arrivals: expected a row per call after the header"),
        (
            "time,caller\n09:00,acme\n",
            "bad.csv: line 1: unknown column 'caller'; expected time, client, handle_s, patience_s",
        ),
    ],
)
def test_a_csv_without_calls_is_refused(
    tmp_path: Path, text: str, problem: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(simulate_cli("--arrivals", str(write(tmp_path, "bad.csv", text)))) == 2
    assert problem in capsys.readouterr().err.splitlines()


def test_an_answer_slower_than_the_ring_timeout_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(simulate_cli("--rate", "acme=10/h", "--answer-after", "15s")) == 2
    assert capsys.readouterr().err == (
        "--answer-after: 15 s is not shorter than the ring timeout (15 s): every offer would time out\n"
    )


def test_the_command_exits_2_on_bad_input() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "hotline", *simulate_cli("--rate", "acme=lots")],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith("--rate: 'acme=lots': expected CLIENT=CALLS/h")


def test_the_tenant_s_configured_queues_are_simulated() -> None:
    text = FIXTURE.read_text() + '\n[[queues]]\nid = "acme-line"\nclient = "acme"\nstrategy = "ring_all"\n'
    tenant = load_tenant_text(text, FIXTURE.name, FIXTURE.parent)
    queues = queues_for(tenant, None)
    assert {q.id: (q.client_id, q.strategy) for q in queues} == {
        "acme-line": ("acme", Strategy.RING_ALL),
        "globex": ("globex", Strategy.LONGEST_IDLE),
    }
    assert {q.strategy for q in queues_for(tenant, Strategy.FAIR_EARNINGS)} == {Strategy.FAIR_EARNINGS}
