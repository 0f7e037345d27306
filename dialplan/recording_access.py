"""Who may play a call's recording. Pure: the role, its scope and the client's setting in, a refusal out.

In-scope supervisors and tenant admins may; a client's own admins only if
the client allows it; agents never, their own calls included (a recording
is a supervision and dispute tool, and agents see their calls' figures).
"""

from __future__ import annotations

from dialplan.tenant import Client


def refusal(role: str, scope: frozenset[str] | None, client: Client | None) -> str | None:
    """None when the recording may be played, otherwise why not, in words for the person refused.

    `scope`: the clients the person's role covers, None for all of them."""
    if role == "agent":
        return "Agents do not play recordings."
    if role not in ("admin", "supervisor", "client_admin"):
        return f"The role {role!r} does not play recordings."
    if client is None:
        return "Only the tenant's admins may play a recording that belongs to no client." if role != "admin" else None
    if scope is not None and client.id not in scope:
        return "That call belongs to a client outside your scope."
    if role == "client_admin" and not client.recordings_for_client_admin:
        return f"{client.name} does not let its own admins play recordings."
    return None
