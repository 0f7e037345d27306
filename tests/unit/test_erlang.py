"""Erlang C: textbook values, a direct formula, stability at thousands of agents, and the staffing inverse."""

from __future__ import annotations

import math
from collections.abc import Callable
from fractions import Fraction

import pytest

from dialplan.erlang import (
    agents_for_service_level,
    average_speed_of_answer,
    erlang_b,
    erlang_c,
    offered_load,
    service_level,
)


def direct_erlang_b(agents: int, load: Fraction) -> Fraction:
    terms = [load**k / math.factorial(k) for k in range(agents + 1)]
    return terms[-1] / sum(terms)


def direct_erlang_c(agents: int, load: Fraction) -> Fraction:
    """The textbook formula, in exact fractions with factorials: fine for a few dozen agents."""
    waiting = load**agents / math.factorial(agents) * agents / (agents - load)
    return waiting / (sum(load**k / math.factorial(k) for k in range(agents)) + waiting)


def log_space_erlang_c(agents: int, load: float) -> float:
    """The same formula in logarithms, for counts where factorials and powers overflow floats."""
    logs = [k * math.log(load) - math.lgamma(k + 1) for k in range(agents)]
    log_waiting = agents * math.log(load) - math.lgamma(agents + 1) + math.log(agents / (agents - load))
    top = max([*logs, log_waiting])
    total = sum(math.exp(x - top) for x in logs) + math.exp(log_waiting - top)
    return math.exp(log_waiting - top) / total


def test_offered_load_is_arrivals_times_handle_time() -> None:
    assert offered_load(360 / 3600, 240) == pytest.approx(24.0)
    assert offered_load(0, 240) == 0.0


def test_two_erlangs_on_three_agents() -> None:
    # B(3) = 4/19, C = 4/9: the classic small example.
    assert erlang_b(3, 2.0) == pytest.approx(4 / 19)
    assert erlang_c(3, 2.0) == pytest.approx(4 / 9)


@pytest.mark.parametrize(("agents", "load"), [(1, 0.5), (2, 1.0), (3, 2.0), (5, 4.5), (10, 7.3), (30, 24.0), (40, 39)])
def test_matches_the_direct_formula(agents: int, load: float) -> None:
    exact = Fraction(load)
    assert erlang_b(agents, load) == pytest.approx(float(direct_erlang_b(agents, exact)), rel=1e-12)
    assert erlang_c(agents, load) == pytest.approx(float(direct_erlang_c(agents, exact)), rel=1e-12)


def test_call_center_of_360_calls_an_hour() -> None:
    # 360 calls an hour of 4 minutes each: 24 erlangs.
    load = offered_load(360 / 3600, 240)
    for agents in range(25, 35):
        c = float(direct_erlang_c(agents, Fraction(24)))
        assert erlang_c(agents, load) == pytest.approx(c, rel=1e-12)
        assert service_level(agents, load, 240, 20) == pytest.approx(1 - c * math.exp(-(agents - 24) * 20 / 240))
        assert average_speed_of_answer(agents, load, 240) == pytest.approx(c * 240 / (agents - 24))
    # 80% within 20 s: 28 agents answer 76.1%, 29 answer 84.0%.
    assert service_level(28, load, 240, 20) == pytest.approx(0.7613, abs=1e-4)
    assert service_level(29, load, 240, 20) == pytest.approx(0.8403, abs=1e-4)
    assert agents_for_service_level(load, 240, 0.8, 20) == 29
    assert average_speed_of_answer(29, load, 240) == pytest.approx(11.63, abs=0.01)


def test_erlang_b_recurrence_endpoints() -> None:
    assert erlang_b(0, 5.0) == 1.0
    assert erlang_b(1, 1.0) == pytest.approx(0.5)
    assert erlang_b(4, 0.0) == 0.0


def test_nobody_waits_without_load() -> None:
    assert erlang_c(1, 0.0) == 0.0
    assert service_level(1, 0.0, 180, 0) == 1.0
    assert average_speed_of_answer(1, 0.0, 180) == 0.0


@pytest.mark.parametrize(("agents", "load"), [(3, 3.0), (3, 3.5), (0, 0.0), (0, 1.0), (10, 100.0)])
def test_unstable_queue(agents: int, load: float) -> None:
    assert erlang_c(agents, load) == 1.0
    assert service_level(agents, load, 180, 60) == 0.0
    assert average_speed_of_answer(agents, load, 180) == math.inf


def test_more_agents_answer_more_callers_sooner() -> None:
    load = 24.0
    levels = [service_level(n, load, 240, 20) for n in range(20, 60)]
    waits = [erlang_c(n, load) for n in range(20, 60)]
    speeds = [average_speed_of_answer(n, load, 240) for n in range(20, 60)]
    assert levels == sorted(levels)
    assert waits == sorted(waits, reverse=True)
    assert speeds == sorted(speeds, reverse=True)
    assert levels[-1] == pytest.approx(1.0)


def test_a_longer_threshold_and_a_lighter_load_help() -> None:
    assert service_level(30, 24, 240, 10) < service_level(30, 24, 240, 20) < service_level(30, 24, 240, 60)
    assert service_level(30, 26, 240, 20) < service_level(30, 24, 240, 20)


def test_erlang_c_is_at_least_erlang_b() -> None:
    # Waiting callers stay and hold agents busy longer than lost ones would.
    for agents, load in [(3, 2.0), (30, 24.0), (100, 95.0)]:
        assert erlang_b(agents, load) < erlang_c(agents, load) < 1.0


@pytest.mark.parametrize(("agents", "load"), [(2000, 1900.0), (2000, 1999.5), (2000, 1000.0), (1950, 1900.0)])
def test_stable_at_thousands_of_agents(agents: int, load: float) -> None:
    c = erlang_c(agents, load)
    assert 0.0 < c < 1.0
    assert c == pytest.approx(log_space_erlang_c(agents, load), rel=1e-9)
    sl = service_level(agents, load, 240, 20)
    assert 0.0 <= sl <= 1.0
    assert math.isfinite(average_speed_of_answer(agents, load, 240))


def test_far_more_agents_than_load_leaves_nobody_waiting() -> None:
    assert erlang_c(10_000, 1900.0) == pytest.approx(0.0, abs=1e-300)
    assert service_level(10_000, 1900.0, 240, 0) == 1.0


@pytest.mark.parametrize(
    ("load", "target", "within_s"),
    [(2.0, 0.8, 20), (24.0, 0.8, 20), (24.0, 0.95, 10), (48.0, 0.8, 20), (0.3, 0.99, 0), (1900.0, 0.9, 15)],
)
def test_agents_for_service_level_is_the_fewest(load: float, target: float, within_s: float) -> None:
    agents = agents_for_service_level(load, 240, target, within_s)
    assert service_level(agents, load, 240, within_s) >= target
    assert service_level(agents - 1, load, 240, within_s) < target


def test_agents_for_service_level_without_load() -> None:
    assert agents_for_service_level(0.0, 240, 0.999, 0) == 1


def test_agents_for_service_level_out_of_reach() -> None:
    with pytest.raises(ValueError, match="no number of agents up to 28"):
        agents_for_service_level(24.0, 240, 0.8, 20, max_agents=28)
    with pytest.raises(ValueError, match="no number of agents up to 30"):
        agents_for_service_level(40.0, 240, 0.5, 20, max_agents=30)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: offered_load(-1, 180), "arrivals_per_s"),
        (lambda: offered_load(1, -180), "mean_handle_s"),
        (lambda: offered_load(math.nan, 180), "arrivals_per_s"),
        (lambda: erlang_b(-1, 1.0), "agents must be >= 0"),
        (lambda: erlang_b(3, -0.5), "load must be"),
        (lambda: erlang_c(3, math.inf), "load must be"),
        (lambda: erlang_c(-2, 1.0), "agents must be >= 0"),
        (lambda: service_level(3, 2.0, 0, 20), "mean_handle_s must be"),
        (lambda: service_level(3, 2.0, 180, -1), "within_s must be"),
        (lambda: average_speed_of_answer(3, 2.0, -5), "mean_handle_s must be"),
        (lambda: agents_for_service_level(2.0, 180, 0.0, 20), "target must be"),
        (lambda: agents_for_service_level(2.0, 180, 1.0, 20), "target must be"),
        (lambda: agents_for_service_level(2.0, 180, math.nan, 20), "target must be"),
        (lambda: agents_for_service_level(-2.0, 180, 0.8, 20), "load must be"),
        (lambda: agents_for_service_level(2.0, 180, 0.8, 20, max_agents=-1), "max_agents must be >= 0"),
    ],
)
def test_rejects_nonsense(call: Callable[[], object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()
