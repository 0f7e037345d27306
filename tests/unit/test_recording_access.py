"""Who may play a recording: every role against in-scope and out-of-scope clients, and the client's setting."""

from __future__ import annotations

from dataclasses import replace
from zoneinfo import ZoneInfo

import pytest

from dialplan.recording_access import refusal
from dialplan.tenant import Client, Greeting

ACME = Client("acme", "Acme Furniture", ZoneInfo("Europe/Paris"), Greeting(text="Hello."))
OPEN_ACME = replace(ACME, recordings_for_client_admin=True)
MINE, OTHERS = frozenset({"acme"}), frozenset({"globex"})


@pytest.mark.parametrize(
    ("role", "scope", "client", "granted"),
    [
        ("admin", None, ACME, True),
        ("admin", None, None, True),
        ("supervisor", MINE, ACME, True),
        ("supervisor", OTHERS, ACME, False),
        ("supervisor", MINE, None, False),
        ("client_admin", MINE, ACME, False),
        ("client_admin", MINE, OPEN_ACME, True),
        ("client_admin", OTHERS, OPEN_ACME, False),
        ("agent", frozenset(), ACME, False),
        ("agent", MINE, OPEN_ACME, False),
        ("auditor", None, ACME, False),
    ],
)
def test_who_may_play(role: str, scope: frozenset[str] | None, client: Client | None, granted: bool) -> None:
    why = refusal(role, scope, client)
    assert (why is None) == granted, why
    if why is not None:
        assert why.endswith("."), "said in words to the person refused"


def test_refusals_say_why() -> None:
    assert refusal("supervisor", OTHERS, ACME) == "That call belongs to a client outside your scope."
    assert refusal("client_admin", MINE, ACME) == "Acme Furniture does not let its own admins play recordings."
    assert refusal("agent", MINE, ACME) == "Agents do not play recordings."
