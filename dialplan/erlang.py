"""Erlang C: how long callers wait in a queue answered by N identical agents.

The model: callers arrive at random (Poisson), handle times (talk plus
wrap-up) are exponential with mean `h`, N agents answer the queue in arrival
order, and no caller hangs up while waiting. The offered load A = arrival
rate times h, in erlangs, is the number of agents the traffic would keep busy on
average. The queue is stable only when A < N; otherwise it grows without
bound, every caller waits and the wait has no finite mean.

Pure: numbers in, numbers out. Everything is computed from the Erlang B
recurrence, which stays within [0, 1] at every step, so neither factorials
nor powers of A appear and thousands of agents pose no overflow.
"""

from __future__ import annotations

import math

DEFAULT_MAX_AGENTS = 10_000


def _check_finite_non_negative(name: str, value: float) -> None:
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")


def _check_finite_positive(name: str, value: float) -> None:
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")


def _check_count(name: str, value: int) -> None:
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")


def offered_load(arrivals_per_s: float, mean_handle_s: float) -> float:
    """The offered load A in erlangs: arrivals per second times mean handle time in seconds."""
    _check_finite_non_negative("arrivals_per_s", arrivals_per_s)
    _check_finite_non_negative("mean_handle_s", mean_handle_s)
    return arrivals_per_s * mean_handle_s


def _next_b(b: float, agents: int, load: float) -> float:
    """B(agents) from B(agents - 1)."""
    return load * b / (agents + load * b)


def erlang_b(agents: int, load: float) -> float:
    """The probability that a caller finds all `agents` busy when callers who find no agent are lost.

    Not the queue's answer by itself, but the stable stepping stone to Erlang C.
    """
    _check_count("agents", agents)
    _check_finite_non_negative("load", load)
    b = 1.0
    for n in range(1, agents + 1):
        b = _next_b(b, n, load)
    return b


def _erlang_c_from_b(agents: int, load: float, b: float) -> float:
    if load >= agents:
        return 1.0
    return agents * b / (agents - load * (1.0 - b))


def erlang_c(agents: int, load: float) -> float:
    """The probability that a caller waits at all before an agent answers.

    1.0 when load >= agents: the queue only grows, so everyone waits.
    """
    return _erlang_c_from_b(agents, load, erlang_b(agents, load))


def _service_level_from_c(agents: int, load: float, c: float, mean_handle_s: float, within_s: float) -> float:
    if load >= agents:
        return 0.0
    # Once a caller waits, the wait is exponential with rate (N - A)/h: the
    # queue drains at N/h while fresh arrivals refill it at A/h.
    return 1.0 - c * math.exp(-(agents - load) * within_s / mean_handle_s)


def service_level(agents: int, load: float, mean_handle_s: float, within_s: float) -> float:
    """The share of callers answered within `within_s` seconds of joining the queue.

    0.0 when load >= agents: the waits grow without bound.
    """
    _check_finite_positive("mean_handle_s", mean_handle_s)
    _check_finite_non_negative("within_s", within_s)
    c = erlang_c(agents, load)
    return _service_level_from_c(agents, load, c, mean_handle_s, within_s)


def average_speed_of_answer(agents: int, load: float, mean_handle_s: float) -> float:
    """The mean wait in seconds over all callers, those answered at once included.

    math.inf when load >= agents.
    """
    _check_finite_positive("mean_handle_s", mean_handle_s)
    c = erlang_c(agents, load)
    if load >= agents:
        return math.inf
    return c * mean_handle_s / (agents - load)


def agents_for_service_level(
    load: float, mean_handle_s: float, target: float, within_s: float, max_agents: int = DEFAULT_MAX_AGENTS
) -> int:
    """The fewest agents that answer at least `target` (a share, 0 < target < 1) of callers within `within_s`.

    A target of 1 is refused: with any load at all, some callers wait longer
    than any threshold, however many agents answer. Raises ValueError when
    even `max_agents` fall short.
    """
    _check_finite_non_negative("load", load)
    _check_finite_positive("mean_handle_s", mean_handle_s)
    _check_finite_non_negative("within_s", within_s)
    _check_count("max_agents", max_agents)
    if not 0 < target < 1:
        raise ValueError(f"target must be a share strictly between 0 and 1, got {target!r}")
    # Up to the load, agents answer nobody in time (the queue is unstable);
    # past it, the service level only rises with each added agent, so the
    # first count reaching the target is the fewest. B is carried along
    # rather than recomputed from scratch for each count.
    b = 1.0
    for agents in range(1, max_agents + 1):
        b = _next_b(b, agents, load)
        if agents <= load:
            continue
        c = _erlang_c_from_b(agents, load, b)
        if _service_level_from_c(agents, load, c, mean_handle_s, within_s) >= target:
            return agents
    raise ValueError(
        f"no number of agents up to {max_agents} answers {target:.1%} of callers within {within_s:g} s "
        f"at a load of {load:g} erlangs"
    )
