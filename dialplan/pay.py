"""What an agent earns for answered calls: tiers, premiums, the quality share, in exact money.

Pure: calls and rate cards in, priced lines and statements out. Money is
`Decimal`, rounded once per priced call to the currency's minor unit (half
up, as on a payslip), so every total is the sum of lines an agent can check.

A call's tier is chosen by its talk time, the interval [min_s, max_s): a
call of exactly 60 s is in the tier that starts at 60. Premiums multiply the
tier's rate: a call taken during a client's overflow window, a call answered
at night in the client's time zone. The quality share is a part of the base
pay, scaled by the period's average supervisor score.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo

from dialplan.pay_rules import ONE, Premiums, QualityRule
from dialplan.tenant import PayTier, RateCard
from dialplan.timeline import EventKind, TimelineEvent, summarize

# ISO 4217 minor units where they are not 2.
_MINOR_UNITS = {"JPY": 0, "KRW": 0, "ISK": 0, "CLP": 0, "BHD": 3, "KWD": 3, "OMR": 3, "TND": 3, "JOD": 3}


def money(amount: Decimal, currency: str) -> Decimal:
    """`amount` rounded half up to the currency's minor unit."""
    places = _MINOR_UNITS.get(currency, 2)
    return amount.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class PayRules:
    card: RateCard
    premiums: Premiums = field(default_factory=Premiums)
    quality: QualityRule = field(default_factory=QualityRule)

    @classmethod
    def of(cls, card: RateCard) -> PayRules:
        """The rules as the tenant file gives them on the card."""
        return cls(card, card.premiums, card.quality)


@dataclass(frozen=True)
class PaidCall:
    call_id: str
    client_id: str
    agent: str
    answered_at: datetime
    talk_s: float
    during_overflow: bool = False
    # The supervisor's score, 1 to 5, when the call was scored.
    score: int | None = None
    # Silence at the end of the call (from its recording's voice figures), when known.
    trailing_silence_s: float | None = None


@dataclass(frozen=True)
class PricedCall:
    call: PaidCall
    currency: str
    tier: PayTier | None
    base: Decimal
    multiplier: Decimal
    amount: Decimal
    reasons: tuple[str, ...]
    # Talk past a tier boundary that was only silence: paid at the lower tier, flagged for review.
    padded: bool = False


def price_call(call: PaidCall, rules: PayRules, zone: ZoneInfo) -> PricedCall:
    card, premiums = rules.card, rules.premiums
    tier = card.tier_for(call.talk_s)
    multiplier, reasons = ONE, []
    padded = False
    if tier is not None and call.trailing_silence_s:
        # The talk that crossed into this tier was silence: the higher tier is not earned by itself.
        spoken = card.tier_for(max(0.0, call.talk_s - call.trailing_silence_s))
        if spoken is not None and spoken != tier:
            tier, padded = spoken, True
            reasons.append("padded: silence past the tier boundary, for review")
    base = tier.rate if tier is not None else Decimal(0)
    if call.during_overflow and premiums.overflow != ONE:
        multiplier *= premiums.overflow
        reasons.append(f"overflow x{premiums.overflow}")
    if premiums.night != ONE and premiums.is_night(call.answered_at.astimezone(zone).time()):
        multiplier *= premiums.night
        reasons.append(f"night x{premiums.night}")
    amount = money(base * multiplier, card.currency)
    return PricedCall(call, card.currency, tier, money(base, card.currency), multiplier, amount, tuple(reasons), padded)


@dataclass(frozen=True)
class TierLine:
    tier: PayTier
    calls: int
    talk_s: float
    amount: Decimal


@dataclass(frozen=True)
class Statement:
    """One agent's pay for a period, in one currency: each part traceable to its calls."""

    agent: str
    currency: str
    lines: tuple[PricedCall, ...]
    by_tier: tuple[TierLine, ...]
    base: Decimal
    premiums: Decimal
    average_score: Decimal | None
    quality_share: Decimal
    total: Decimal

    @property
    def talk_s(self) -> float:
        return sum(line.call.talk_s for line in self.lines)


def statements(
    agent: str, calls: Iterable[PaidCall], rules: Mapping[str, PayRules], zones: Mapping[str, ZoneInfo]
) -> list[Statement]:
    """The agent's statements, one per currency, from their answered calls; clients without a rate card pay nothing."""
    priced: dict[str, list[PricedCall]] = {}
    quality: dict[str, QualityRule] = {}
    for call in sorted(calls, key=lambda c: (c.answered_at, c.call_id)):
        if call.agent != agent or call.client_id not in rules:
            continue
        client_rules = rules[call.client_id]
        line = price_call(call, client_rules, zones[call.client_id])
        priced.setdefault(line.currency, []).append(line)
        quality.setdefault(line.currency, client_rules.quality)
    return [_statement(agent, currency, lines, quality[currency]) for currency, lines in sorted(priced.items())]


def _statement(agent: str, currency: str, lines: Sequence[PricedCall], rule: QualityRule) -> Statement:
    tiers: dict[PayTier, list[PricedCall]] = {}
    for line in lines:
        if line.tier is not None:
            tiers.setdefault(line.tier, []).append(line)
    by_tier = tuple(
        TierLine(tier, len(group), sum(g.call.talk_s for g in group), sum((g.amount for g in group), Decimal(0)))
        for tier, group in sorted(tiers.items(), key=lambda item: item[0].min_s)
    )
    base = sum((line.base for line in lines), Decimal(0))
    total_lines = sum((line.amount for line in lines), Decimal(0))
    scores = [Decimal(line.call.score) for line in lines if line.call.score is not None]
    average = sum(scores, Decimal(0)) / len(scores) if scores else None
    share = money(base * rule.share * rule.fraction(average), currency)
    return Statement(
        agent=agent,
        currency=currency,
        lines=tuple(lines),
        by_tier=by_tier,
        base=base,
        premiums=total_lines - base,
        average_score=average,
        quality_share=share,
        total=total_lines + share,
    )


def paid_calls(
    call_id: str, client_id: str | None, events: Sequence[TimelineEvent], *, during_overflow: bool = False
) -> list[PaidCall]:
    """Each agent's paid share of one call, from its timeline: a call split between agents (an agent
    lost mid-call, the caller re-queued and answered again) pays each for their own talk time."""
    if client_id is None or not events:
        return []
    summary = summarize(events)
    answered_at: dict[str, datetime] = {}
    trailing: float | None = None
    for event in events:
        agent = event.data.get("agent")
        if event.kind == EventKind.ANSWERED and isinstance(agent, str):
            answered_at.setdefault(agent, event.at)
        elif event.kind == EventKind.VOICE_ANALYSED and isinstance(event.data.get("trailing_silence_s"), int | float):
            trailing = float(event.data["trailing_silence_s"])
    return [
        PaidCall(
            call_id,
            client_id,
            agent,
            answered_at[agent],
            share.talk_s,
            during_overflow,
            # The recording's silence is the end of the call: it concerns whoever was on it then.
            trailing_silence_s=trailing if agent == summary.answered_by else None,
        )
        for agent, share in sorted(summary.agents.items())
        if share.answered and agent in answered_at
    ]


STATEMENT_COLUMNS = ("call", "client", "answered_at", "talk_s", "tier", "rate", "notes", "amount")


def statement_rows(statement: Statement) -> list[tuple[str, ...]]:
    """The statement as table rows: one per call, then the totals; the CSV and the page show the same."""
    rows: list[tuple[str, ...]] = []
    for line in statement.lines:
        tier = line.tier
        bounds = "-" if tier is None else _tier_label(tier)
        rows.append(
            (
                line.call.call_id,
                line.call.client_id,
                line.call.answered_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
                f"{line.call.talk_s:.1f}",
                bounds,
                str(line.base),
                " ".join(line.reasons),
                str(line.amount),
            )
        )
    for tier_line in statement.by_tier:
        tier = tier_line.tier
        label = f"tier {_tier_label(tier)}"
        rows.append(
            ("", label, "", f"{tier_line.talk_s:.1f}", f"{tier_line.calls} calls", "", "", str(tier_line.amount))
        )
    average = "-" if statement.average_score is None else f"{statement.average_score:.2f}"
    rows.append(("", "base", "", f"{statement.talk_s:.1f}", "", "", "", str(statement.base)))
    rows.append(("", "premiums", "", "", "", "", "", str(statement.premiums)))
    rows.append(("", f"quality share (average score {average})", "", "", "", "", "", str(statement.quality_share)))
    rows.append(("", f"total {statement.currency}", "", "", "", "", "", str(statement.total)))
    return rows


def _tier_label(tier: PayTier) -> str:
    return f"{tier.min_s}+ s" if tier.max_s is None else f"{tier.min_s}-{tier.max_s} s"
