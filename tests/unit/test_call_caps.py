"""Caps on calls up at once: per line (a trunk) and per client, one call either side of each."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest

from dialplan.call_caps import cap_refusal
from dialplan.tenant import Client, Greeting, Line

LINE = Line("acme-main", "acme", ("1001",), max_concurrent_calls=3)
UNCAPPED_LINE = Line("acme-other", "acme", ("1002",))
CLIENT = Client("acme", "Acme", ZoneInfo("Europe/Paris"), Greeting(text="Hi."), max_concurrent_calls=5)
UNCAPPED_CLIENT = Client("acme", "Acme", ZoneInfo("Europe/Paris"), Greeting(text="Hi."))


@pytest.mark.parametrize(
    ("line", "client", "line_calls", "client_calls", "refused_by"),
    [
        (LINE, CLIENT, 0, 0, None),
        (LINE, CLIENT, 2, 4, None),
        (LINE, CLIENT, 3, 3, "line acme-main"),
        (LINE, CLIENT, 2, 5, "client acme"),
        (UNCAPPED_LINE, CLIENT, 100, 4, None),
        (UNCAPPED_LINE, CLIENT, 100, 5, "client acme"),
        (UNCAPPED_LINE, UNCAPPED_CLIENT, 1000, 1000, None),
        (LINE, None, 2, 1000, None),
    ],
)
def test_caps(line: Line, client: Client | None, line_calls: int, client_calls: int, refused_by: str | None) -> None:
    found = cap_refusal(line, client, line_calls, client_calls, retry_after_s=7)
    if refused_by is None:
        assert found is None
        return
    assert found is not None
    reject, why = found
    assert (reject.status, reject.reason, reject.retry_after_s) == (503, "Service Unavailable", 7)
    assert (reject.client_id, reject.line_id) == ("acme", line.id), "the client sees the calls its caps refused"
    assert why.startswith(refused_by)
