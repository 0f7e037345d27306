"""Pay: tier boundaries, premiums, the quality share and rounding, table-driven."""

from __future__ import annotations

from datetime import UTC, datetime, time
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from dialplan.pay import PaidCall, PayRules, money, price_call, statements
from dialplan.pay_rules import Premiums, QualityRule
from dialplan.tenant import PayTier, RateCard

PARIS = ZoneInfo("Europe/Paris")
NOON = datetime(2026, 11, 24, 11, tzinfo=UTC)  # 12:00 in Paris
CARD = RateCard(
    "acme",
    "EUR",
    (
        PayTier(0, 60, Decimal("0.40")),
        PayTier(60, 300, Decimal("1.10")),
        PayTier(300, None, Decimal("2.00")),
    ),
)


def call(talk_s: float, *, n: int = 0, at: datetime = NOON, **kw: object) -> PaidCall:
    return PaidCall(f"c{n}", "acme", "alice", at, talk_s, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("talk_s", "rate"),
    [
        (0.0, "0.40"),
        (59.0, "0.40"),  # a second below the boundary
        (59.999, "0.40"),
        (60.0, "1.10"),  # the boundary belongs to the tier that starts there
        (61.0, "1.10"),  # a second above
        (299.0, "1.10"),
        (300.0, "2.00"),
        (301.0, "2.00"),
        (36_000.0, "2.00"),  # the last tier is open-ended
    ],
)
def test_a_call_is_paid_the_rate_of_the_tier_its_talk_time_falls_in(talk_s: float, rate: str) -> None:
    priced = price_call(call(talk_s), PayRules(CARD), PARIS)
    assert priced.amount == Decimal(rate)
    assert priced.tier is not None
    assert priced.tier.min_s <= talk_s


@pytest.mark.parametrize(
    ("during_overflow", "local_hour", "amount", "reasons"),
    [
        (False, 12, "1.10", ()),
        (True, 12, "1.38", ("overflow x1.25",)),  # 1.375 rounds half up
        (False, 23, "1.65", ("night x1.5",)),
        (False, 5, "1.65", ("night x1.5",)),  # before 06:00, still night
        (False, 6, "1.10", ()),
        (True, 23, "2.06", ("overflow x1.25", "night x1.5")),  # 2.0625
    ],
)
def test_premiums_multiply_the_rate_and_say_why(
    during_overflow: bool, local_hour: int, amount: str, reasons: tuple[str, ...]
) -> None:
    rules = PayRules(CARD, Premiums(overflow=Decimal("1.25"), night=Decimal("1.5")))
    at = datetime(2026, 11, 24, local_hour, tzinfo=PARIS)
    priced = price_call(call(90, at=at, during_overflow=during_overflow), rules, PARIS)
    assert (priced.amount, priced.reasons) == (Decimal(amount), reasons)


def test_night_is_read_in_the_client_s_zone_across_dst() -> None:
    rules = PayRules(CARD, Premiums(night=Decimal(2), night_from=time(22), night_to=time(6)))
    # 21:30 UTC is 22:30 in Paris in winter (night), 23:30 in summer (night); 20:30 UTC in summer is 22:30.
    assert price_call(call(90, at=datetime(2026, 1, 10, 21, 30, tzinfo=UTC)), rules, PARIS).amount == Decimal("2.20")
    assert price_call(call(90, at=datetime(2026, 7, 10, 20, 30, tzinfo=UTC)), rules, PARIS).amount == Decimal("2.20")
    assert price_call(call(90, at=datetime(2026, 7, 10, 19, 30, tzinfo=UTC)), rules, PARIS).amount == Decimal("1.10")


@pytest.mark.parametrize(
    ("scores", "share"),
    [
        ((), "0.00"),  # no score: no quality share
        ((3, 3), "0.00"),  # at the floor
        ((4, 4), "0.18"),  # half way: 10 % x 0.5 of the 3.50 base is 0.175, rounded half up
        ((5, 5), "0.35"),  # all of it
        ((5, 4), "0.26"),  # 4.5: three quarters, 0.2625
        ((1, 5), "0.00"),  # 3: the floor
    ],
)
def test_the_quality_share_follows_the_average_score(scores: tuple[int, ...], share: str) -> None:
    rules = {"acme": PayRules(CARD, quality=QualityRule(share=Decimal("0.10"), floor_score=Decimal(3)))}
    calls = [call(400, n=1, score=scores[0] if scores else None), call(90, n=2, score=scores[1] if scores else None)]
    calls.append(call(30, n=3))  # unscored: counts for pay, not for the average
    (statement,) = statements("alice", calls, rules, {"acme": PARIS})
    assert statement.base == Decimal("3.50")
    assert statement.quality_share == Decimal(share)
    assert statement.total == statement.base + statement.premiums + statement.quality_share


def test_a_statement_adds_up_and_traces_every_tier_to_its_calls() -> None:
    rules = {"acme": PayRules(CARD, Premiums(overflow=Decimal("1.5")))}
    calls = [call(59, n=1), call(60, n=2), call(61, n=3, during_overflow=True), call(300, n=4)]
    calls.append(PaidCall("other", "acme", "bob", NOON, 120))  # bob's, not on alice's statement
    (statement,) = statements("alice", calls, rules, {"acme": PARIS})
    assert [(t.tier.min_s, t.calls, t.amount) for t in statement.by_tier] == [
        (0, 1, Decimal("0.40")),
        (60, 2, Decimal("2.75")),  # 1.10 + 1.65
        (300, 1, Decimal("2.00")),
    ]
    assert (statement.base, statement.premiums, statement.total) == (Decimal("4.60"), Decimal("0.55"), Decimal("5.15"))
    assert [line.call.call_id for line in statement.lines] == ["c1", "c2", "c3", "c4"]
    assert statement.talk_s == 480


def test_no_calls_no_statement_and_currencies_round_to_their_minor_unit() -> None:
    assert statements("alice", [], {"acme": PayRules(CARD)}, {"acme": PARIS}) == []
    yen = RateCard("acme", "JPY", (PayTier(0, None, Decimal("55.5")),))
    assert price_call(call(10), PayRules(yen), PARIS).amount == Decimal("56")
    dinar = RateCard("acme", "KWD", (PayTier(0, None, Decimal("0.1235")),))
    assert price_call(call(10), PayRules(dinar), PARIS).amount == Decimal("0.124")
    assert money(Decimal("0.005"), "EUR") == Decimal("0.01")
    assert money(Decimal("0.0049"), "EUR") == Decimal("0.00")


@pytest.mark.parametrize(
    ("talk_s", "trailing_s", "amount", "padded"),
    [
        (62.0, 5.0, "0.40", True),  # the 2 s past 60 were silence: paid below the boundary, flagged
        (62.0, 1.0, "1.10", False),  # 61 s of talk: the tier is earned
        (70.0, 5.0, "1.10", False),  # still past 60 without the silence
        (62.0, None, "1.10", False),  # no recording: nothing to say
        (302.0, 3.0, "1.10", True),  # the same at the next boundary
    ],
)
def test_silence_padding_past_a_tier_boundary_is_flagged_not_paid(
    talk_s: float, trailing_s: float | None, amount: str, padded: bool
) -> None:
    priced = price_call(call(talk_s, trailing_silence_s=trailing_s), PayRules(CARD), PARIS)
    assert (priced.amount, priced.padded) == (Decimal(amount), padded)
    assert any("padded" in reason for reason in priced.reasons) == padded
