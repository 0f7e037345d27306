"""The wait announced to a caller at a given place in a queue.

A queue's recent handle times (talk plus wrap-up) give the mean time an
agent takes to free up; the number of agents busy on the queue and the
caller's place in it give the expected wait. Like Erlang C, the estimate
takes handle times to be exponential: what it knows of a call in progress
is its queue's mean, not how long that call has lasted.

Pure: observations and numbers in, numbers out. One `HandleTimes` per queue;
whoever owns the queues keeps them.
"""

from __future__ import annotations

import math

DEFAULT_HALF_LIFE_CALLS = 20.0
DEFAULT_PRIOR_S = 180.0


class HandleTimes:
    """One queue's mean handle time, recent calls counting more than old ones.

    A call's weight halves every `half_life_calls` calls handled after it.
    Until the first call is observed, the mean is `prior_s`.
    """

    __slots__ = ("_decay", "_prior_s", "_weight", "_weighted_sum")

    def __init__(self, half_life_calls: float = DEFAULT_HALF_LIFE_CALLS, prior_s: float = DEFAULT_PRIOR_S) -> None:
        if not math.isfinite(half_life_calls) or half_life_calls <= 0:
            raise ValueError(f"half_life_calls must be a finite number > 0, got {half_life_calls!r}")
        if not math.isfinite(prior_s) or prior_s < 0:
            raise ValueError(f"prior_s must be a finite number >= 0, got {prior_s!r}")
        self._decay = 0.5 ** (1.0 / half_life_calls)
        self._prior_s = prior_s
        # The mean is the weighted sum over the total weight, rather than a
        # running average seeded with the first call or the prior: seeded, the
        # first call (or the prior) would keep most of the weight for dozens of
        # calls; divided, the first few calls count about equally, as they
        # should, and later the old ones fade at the half-life.
        self._weighted_sum = 0.0
        self._weight = 0.0

    def observe(self, seconds: float) -> None:
        """Record one handled call's talk plus wrap-up time."""
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError(f"a handle time must be a finite number of seconds >= 0, got {seconds!r}")
        self._weighted_sum = self._weighted_sum * self._decay + seconds
        self._weight = self._weight * self._decay + 1.0

    def mean(self) -> float:
        """The mean handle time in seconds: the prior until a call is observed."""
        if self._weight == 0.0:
            return self._prior_s
        return self._weighted_sum / self._weight


def estimated_wait_s(position: int, serving_agents: int, mean_handle_s: float) -> float | None:
    """The expected wait in seconds, from now, of the caller at 1-based `position` in the queue.

    `serving_agents` are the agents busy with this queue's calls; None when
    there are none, since then nothing says when anyone will free up, and the
    announcement says nothing about time.

    The caller is answered at the `position`-th time an agent frees up: the
    first `position - 1` agents to free up take the callers ahead. Handle
    times being memoryless, how long the caller has already waited changes
    nothing: it is already counted in the places the caller has moved up,
    and the calls in progress have as long left on average as a fresh call.
    So there is no parameter for it, and nothing to subtract.

    Callers ahead who hang up and agents who join or leave are not foreseen;
    the next announcement, from the new position and count, catches up.
    """
    if position < 1:
        raise ValueError(f"position is 1-based and must be >= 1, got {position!r}")
    if serving_agents < 0:
        raise ValueError(f"serving_agents must be >= 0, got {serving_agents!r}")
    if not math.isfinite(mean_handle_s) or mean_handle_s < 0:
        raise ValueError(f"mean_handle_s must be a finite number >= 0, got {mean_handle_s!r}")
    if serving_agents == 0:
        return None
    # Each busy agent's remaining time is exponential with mean h, whatever
    # the call's age, so the next agent to free up, the first among N, does
    # so after h/N on average. The agent who frees up takes the next caller
    # ahead and is busy again, so N agents stay busy and each of the
    # `position` departures takes another h/N: position·h/N in all.
    return position * mean_handle_s / serving_agents


def announce_rounding(seconds: float) -> int:
    """The whole minutes to announce for a wait: rounded up, at least 1.

    Callers take being told a little more than they wait better than being
    told less.
    """
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"seconds must be a finite number >= 0, got {seconds!r}")
    return max(1, math.ceil(seconds / 60.0))
