"""Caps on calls up at once, per line (a trunk) and per client. Pure: the counts in, a refusal out.

Checked once a call is otherwise admitted, so an untrusted caller learns
nothing from a 503 that a 403 would not have told them. The refusal says
Retry-After: the carrier or PBX tries again, or overflows elsewhere.
"""

from __future__ import annotations

from dialplan.routing import Reject
from dialplan.tenant import Client, Line


def cap_refusal(
    line: Line, client: Client | None, line_calls: int, client_calls: int, retry_after_s: int
) -> tuple[Reject, str] | None:
    """The 503 for a call that would go over a cap, and which cap, in words for the log; None if it fits.

    `line_calls`, `client_calls`: calls up now, not counting this one."""
    if line.max_concurrent_calls is not None and line_calls >= line.max_concurrent_calls:
        why = f"line {line.id} has {line_calls} calls up, its cap"
    elif client is not None and client.max_concurrent_calls is not None and client_calls >= client.max_concurrent_calls:
        why = f"client {client.id} has {client_calls} calls up, its cap"
    else:
        return None
    return Reject(503, "Service Unavailable", retry_after_s, line.client_id, line.id), why
