"""Cross-site request forgery: a state-changing request must come from the bridge's own pages.

The session cookie is SameSite=Strict already; this is the second lock, for
browsers or set-ups where SameSite does not hold (an older browser, a
sibling subdomain counting as "same site"). A POST, PUT, PATCH or DELETE:

- with an Origin header must name the bridge's own origin (Chromium and
  Firefox send Origin on every such request, same-origin fetch() included);
- without Origin but with a Referer must come from a page of that origin;
- with neither is refused if it carries the session cookie: a browser's
  request says where it comes from, and one that doesn't is not trusted
  with the cookie's authority.

A script using HTTP Basic sends no cookie and no Origin, and passes: a
browser page of another site cannot make a request carry an Authorization
header of its choosing without a CORS preflight, which the bridge never
grants. A browser that has cached Basic credentials (someone typed them in
its prompt) does attach them to a forged request, but that request carries
another site's Origin and is refused by the first rule.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import structlog
from aiohttp import web

from agent_client.web_edge import edge_of, is_own_origin, own_origin
from agent_client.web_sessions import COOKIE

log = structlog.get_logger("agent_client.csrf")

STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def refusal(request: web.Request) -> str | None:
    """Why this request may not change anything, or None if it may."""
    if request.method not in STATE_CHANGING:
        return None
    origin = request.headers.get("Origin")
    if origin is not None:
        if is_own_origin(request, origin):
            return None
        return f"cross-origin request refused: Origin {origin!r} is not {own_origin(request)!r}"
    referer = request.headers.get("Referer")
    if referer is not None:
        return None if is_own_origin(request, referer) else "cross-origin request refused: Referer of another site"
    if COOKIE in request.cookies:
        return "a signed-in browser's request must carry Origin or Referer"
    return None


@web.middleware
async def csrf(request: web.Request, handler: Handler) -> web.StreamResponse:
    why = refusal(request)
    if why is None:
        return await handler(request)
    log.warning(
        "csrf_refused",
        method=request.method,
        path=request.path,
        why=why,
        expected=own_origin(request),
        # The usual cause in a deployment: a TLS proxy in front, and the bridge not told.
        behind_tls_proxy=edge_of(request.app).behind_tls_proxy,
    )
    return web.json_response({"error": why}, status=403)
