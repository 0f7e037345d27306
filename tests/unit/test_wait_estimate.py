"""The wait announced to a queued caller: handle-time averaging, the estimate, a simulation of it, the rounding."""

from __future__ import annotations

import math
import random

import pytest

from dialplan.wait_estimate import HandleTimes, announce_rounding, estimated_wait_s


def test_prior_until_a_call_is_observed() -> None:
    assert HandleTimes().mean() == 180.0
    assert HandleTimes(prior_s=240.0).mean() == 240.0


def test_the_first_call_replaces_the_prior() -> None:
    times = HandleTimes(prior_s=180.0)
    times.observe(60.0)
    assert times.mean() == pytest.approx(60.0)


def test_steady_handle_times_give_that_mean() -> None:
    times = HandleTimes()
    for _ in range(500):
        times.observe(95.0)
    assert times.mean() == pytest.approx(95.0)


def test_first_calls_count_about_equally() -> None:
    times = HandleTimes()
    for seconds in (100.0, 200.0, 300.0):
        times.observe(seconds)
    assert times.mean() == pytest.approx(200.0, abs=3.0)


def test_a_call_weighs_half_after_a_half_life() -> None:
    times = HandleTimes(half_life_calls=1)
    times.observe(0.0)
    times.observe(90.0)
    # Weights 1/2 and 1.
    assert times.mean() == pytest.approx(60.0)


def test_weighted_by_age_in_calls() -> None:
    rng = random.Random(7)
    observed = [rng.uniform(30, 600) for _ in range(150)]
    times = HandleTimes(half_life_calls=20)
    for seconds in observed:
        times.observe(seconds)
    weights = [0.5 ** ((len(observed) - 1 - i) / 20) for i in range(len(observed))]
    expected = sum(w * x for w, x in zip(weights, observed, strict=True)) / sum(weights)
    assert times.mean() == pytest.approx(expected, rel=1e-9)


def test_recent_calls_move_the_mean() -> None:
    times = HandleTimes(half_life_calls=20)
    for _ in range(200):
        times.observe(100.0)
    for _ in range(20):
        times.observe(300.0)
    # One half-life of 300 s calls carries about half the weight.
    assert times.mean() == pytest.approx(200.0, abs=2.0)


@pytest.mark.parametrize(
    ("half_life", "prior", "message"),
    [
        (0, 180.0, "half_life_calls"),
        (-1, 180.0, "half_life_calls"),
        (math.inf, 180.0, "half_life_calls"),
        (20, -1.0, "prior_s"),
        (20, math.nan, "prior_s"),
    ],
)
def test_handle_times_rejects_nonsense_settings(half_life: float, prior: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        HandleTimes(half_life_calls=half_life, prior_s=prior)


@pytest.mark.parametrize("seconds", [-1.0, math.nan, math.inf])
def test_handle_times_rejects_nonsense_observations(seconds: float) -> None:
    times = HandleTimes()
    with pytest.raises(ValueError, match="handle time"):
        times.observe(seconds)
    assert times.mean() == 180.0


def test_estimate_is_position_times_handle_time_over_agents() -> None:
    assert estimated_wait_s(1, 1, 180.0) == pytest.approx(180.0)
    assert estimated_wait_s(1, 4, 180.0) == pytest.approx(45.0)
    assert estimated_wait_s(6, 4, 180.0) == pytest.approx(270.0)
    assert estimated_wait_s(3, 2, 0.0) == 0.0


def test_no_estimate_without_serving_agents() -> None:
    assert estimated_wait_s(1, 0, 180.0) is None
    assert estimated_wait_s(12, 0, 180.0) is None


def test_estimate_grows_with_position_and_shrinks_with_agents() -> None:
    by_position = [estimated_wait_s(p, 3, 180.0) for p in range(1, 20)]
    by_agents = [estimated_wait_s(5, n, 180.0) for n in range(1, 20)]
    assert by_position == sorted(by_position, key=lambda s: s or 0.0)
    assert by_agents == sorted(by_agents, key=lambda s: s or 0.0, reverse=True)


@pytest.mark.parametrize(
    ("position", "agents", "handle", "message"),
    [
        (0, 1, 180.0, "position"),
        (-3, 1, 180.0, "position"),
        (1, -1, 180.0, "serving_agents"),
        (1, 1, -5.0, "mean_handle_s"),
        (1, 1, math.nan, "mean_handle_s"),
        (1, 1, math.inf, "mean_handle_s"),
    ],
)
def test_estimate_rejects_nonsense(position: int, agents: int, handle: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        estimated_wait_s(position, agents, handle)


def simulated_wait(rng: random.Random, position: int, elapsed: list[float], mean_handle_s: float) -> float:
    """When the caller at `position` is answered, with one busy agent per entry of `elapsed`.

    Each call in progress has already lasted its entry of `elapsed`: its
    whole handle time is drawn exponential and kept only if longer, so the
    simulation does not assume the memorylessness the estimate relies on.
    An agent who frees up takes the next caller and draws a fresh call.
    """
    rate = 1 / mean_handle_s
    frees_at = []
    for already in elapsed:
        while (whole := rng.expovariate(rate)) <= already:
            pass
        frees_at.append(whole - already)
    now = 0.0
    for _ in range(position):
        agent = min(range(len(frees_at)), key=frees_at.__getitem__)
        now = frees_at[agent]
        frees_at[agent] = now + rng.expovariate(rate)
    return now


@pytest.mark.parametrize(
    ("position", "elapsed"),
    [
        (1, [0.0]),
        (3, [120.0]),
        (2, [0.0, 30.0, 200.0, 400.0]),
        (9, [0.0, 30.0, 200.0, 400.0]),
        (5, [float(s) for s in range(0, 300, 30)]),
    ],
)
def test_estimate_matches_a_simulation(position: int, elapsed: list[float]) -> None:
    rng = random.Random(20261123)
    handle = 180.0
    # Enough departures in all that the mean is within about 1% of its limit.
    runs = 24_000 // position
    mean = sum(simulated_wait(rng, position, elapsed, handle) for _ in range(runs)) / runs
    assert mean == pytest.approx(estimated_wait_s(position, len(elapsed), handle), rel=0.04)


@pytest.mark.parametrize(
    ("seconds", "minutes"),
    [(0.0, 1), (1.0, 1), (59.9, 1), (60.0, 1), (60.1, 2), (119.0, 2), (120.0, 2), (121.0, 3), (1800.0, 30)],
)
def test_announce_rounds_up_to_whole_minutes(seconds: float, minutes: int) -> None:
    assert announce_rounding(seconds) == minutes


@pytest.mark.parametrize("seconds", [-1.0, math.nan, math.inf])
def test_announce_rejects_nonsense(seconds: float) -> None:
    with pytest.raises(ValueError, match="seconds"):
        announce_rounding(seconds)
