"""A rate card's premiums and quality rule: plain values, read from the tenant file."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import time
from decimal import Decimal

ONE = Decimal(1)


@dataclass(frozen=True)
class Premiums:
    overflow: Decimal = ONE
    night: Decimal = ONE
    # Night, in the client's zone: from `night_from` to `night_to` the next morning.
    night_from: time = time(22)
    night_to: time = time(6)

    def is_night(self, local: time) -> bool:
        if self.night_from <= self.night_to:
            return self.night_from <= local < self.night_to
        return local >= self.night_from or local < self.night_to


@dataclass(frozen=True)
class QualityRule:
    """A share of the base pay, paid in full at an average score of 5 and not at all at `floor_score` or below."""

    share: Decimal = Decimal(0)  # 0.10: up to 10 % of the base pay
    floor_score: Decimal = Decimal(3)

    def fraction(self, average: Decimal | None) -> Decimal:
        if average is None or average <= self.floor_score:
            return Decimal(0)
        return min(ONE, (average - self.floor_score) / (Decimal(5) - self.floor_score))
