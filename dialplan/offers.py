"""What an offer to an agent is, besides whom it goes to (`dialplan.router` decides that).

The default ring time, how soon an agent who let a call go may be rung for
it again, and how a caller's number is shown to agents of a client that
masks it.
"""

from __future__ import annotations

RING_TIMEOUT_S = 15.0
# An agent who let a call go (declined, missed) is not rung for that same
# call again this soon: ringing again at once would only nag. After this,
# they are tried again, but only when nobody fresh is eligible, so a caller
# with one agent on the floor is not stranded by a mistaken decline.
REOFFER_AFTER_S = 10.0


def mask_number(number: str) -> str:
    """Hide the middle of a caller number, keeping enough to recognise a repeat caller."""
    digits = [i for i, ch in enumerate(number) if ch.isdigit()]
    if len(digits) <= 4:
        return "•" * len(number)
    hidden = set(digits[2:-2])
    return "".join("•" if i in hidden else ch for i, ch in enumerate(number))
