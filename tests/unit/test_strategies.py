"""Each queue strategy's defining order (dialplan/strategies.py)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from dialplan.queues import QueueConfig, Strategy
from dialplan.strategies import Standing, rank

NOW = datetime(2026, 11, 23, 9, tzinfo=UTC)


def queue(strategy: Strategy, order: tuple[str, ...] = ()) -> QueueConfig:
    return QueueConfig("q", "acme", strategy=strategy, agent_order=order)


def standing(login: str, idle_min: float, calls: int = 0, talk: float = 0.0, earned: str = "0") -> Standing:
    return Standing(login, NOW - timedelta(minutes=idle_min), calls, talk, Decimal(earned))


# Each agent leads on a different measure, so each strategy picks someone else first.
AGENTS = [
    standing("ann", idle_min=30, calls=9, talk=900, earned="40"),  # idle longest
    standing("ben", idle_min=5, calls=1, talk=800, earned="30"),  # fewest calls
    standing("cat", idle_min=10, calls=5, talk=100, earned="20"),  # least talk
    standing("dan", idle_min=1, calls=7, talk=700, earned="5"),  # earned least
]


def first(strategy: Strategy, **kwargs: object) -> list[str]:
    return [group[0] for group in rank(queue(strategy), AGENTS, **kwargs)]  # type: ignore[arg-type]


def test_longest_idle_orders_by_idle_time() -> None:
    assert first(Strategy.LONGEST_IDLE) == ["ann", "cat", "ben", "dan"]


def test_fewest_calls_orders_by_calls_today() -> None:
    assert first(Strategy.FEWEST_CALLS) == ["ben", "cat", "dan", "ann"]


def test_least_talk_time_orders_by_talk_today() -> None:
    assert first(Strategy.LEAST_TALK_TIME) == ["cat", "dan", "ben", "ann"]


def test_fair_earnings_orders_by_earnings_today() -> None:
    assert first(Strategy.FAIR_EARNINGS) == ["dan", "cat", "ben", "ann"]


def test_fair_earnings_breaks_ties_by_idle_time() -> None:
    even = [standing("x", 1), standing("y", 9), standing("z", 5)]
    assert [g[0] for g in rank(queue(Strategy.FAIR_EARNINGS), even)] == ["y", "z", "x"]


def test_ring_all_rings_everyone_at_once() -> None:
    assert rank(queue(Strategy.RING_ALL), AGENTS) == [("ann", "ben", "cat", "dan")]


def test_top_down_follows_the_configured_order_then_logins() -> None:
    ordered = rank(queue(Strategy.TOP_DOWN, ("dan", "ben")), AGENTS)
    assert [g[0] for g in ordered] == ["dan", "ben", "ann", "cat"]
    # Always from the top, whoever was offered last.
    assert rank(queue(Strategy.TOP_DOWN, ("dan", "ben")), AGENTS, last_offered="dan") == ordered


def test_round_robin_starts_after_the_last_offered() -> None:
    q = queue(Strategy.ROUND_ROBIN, ("ann", "ben", "cat", "dan"))
    assert [g[0] for g in rank(q, AGENTS, last_offered="ben")] == ["cat", "dan", "ann", "ben"]
    assert [g[0] for g in rank(q, AGENTS, last_offered="dan")] == ["ann", "ben", "cat", "dan"]


def test_round_robin_keeps_its_place_when_the_last_offered_is_busy() -> None:
    # Ben took the last call, so he is not eligible now: the turn passes to cat, not back to ann.
    q = queue(Strategy.ROUND_ROBIN)
    without_ben = [a for a in AGENTS if a.login != "ben"]
    assert [g[0] for g in rank(q, without_ben, last_offered="ben")] == ["cat", "dan", "ann"]


def test_random_is_a_permutation_drawn_from_the_given_generator() -> None:
    orders = {tuple(first(Strategy.RANDOM, rng=random.Random(seed))) for seed in range(40)}
    assert all(sorted(o) == ["ann", "ben", "cat", "dan"] for o in orders)
    assert len(orders) > 5, "different seeds give different orders"
    assert first(Strategy.RANDOM, rng=random.Random(7)) == first(Strategy.RANDOM, rng=random.Random(7))


@pytest.mark.parametrize("strategy", list(Strategy))
def test_every_strategy_offers_each_eligible_agent_exactly_once(strategy: Strategy) -> None:
    groups = rank(queue(strategy), AGENTS, rng=random.Random(1))
    offered = [login for group in groups for login in group]
    assert sorted(offered) == ["ann", "ben", "cat", "dan"]
    assert rank(queue(strategy), [], rng=random.Random(1)) == []
