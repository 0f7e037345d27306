"""What the web edge knows of a request's way in: TLS, the proxy in front, origins, the source address.

Behind a TLS-terminating reverse proxy (HOTLINE_BEHIND_TLS_PROXY) the bridge
sees plain HTTP from the proxy's address; only then are X-Forwarded-Proto
and the last X-Forwarded-For entry (the address the proxy itself saw)
believed. Anywhere else these headers are whatever a client wrote.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

from aiohttp import web

_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


@dataclass(frozen=True)
class Edge:
    tls: bool = False
    behind_tls_proxy: bool = False

    @property
    def secure(self) -> bool:
        """Whether browsers reach the bridge over HTTPS, so cookies must be Secure."""
        return self.tls or self.behind_tls_proxy


EDGE = web.AppKey("edge", Edge)


def edge_of(app: web.Application) -> Edge:
    return app.get(EDGE) or Edge()


def scheme_of(request: web.Request) -> str:
    """The scheme the browser used: the proxy's word for it only when there is a trusted proxy."""
    if edge_of(request.app).behind_tls_proxy:
        forwarded = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
        if forwarded in ("http", "https"):
            return forwarded
    return request.scheme


def _origin_tuple(scheme: str, netloc: str) -> tuple[str, str, int] | None:
    try:
        parts = urlsplit(f"{scheme}://{netloc}")
        port = parts.port
    except ValueError:
        return None
    if parts.hostname is None or scheme not in _DEFAULT_PORTS:
        return None
    return scheme, parts.hostname.lower(), port if port is not None else _DEFAULT_PORTS[scheme]


def own_origin(request: web.Request) -> str:
    return f"{scheme_of(request)}://{request.host}"


def is_own_origin(request: web.Request, url: str) -> bool:
    """Whether `url` (an Origin, or a Referer) is this bridge's origin as the browser sees it."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    theirs = _origin_tuple(parts.scheme.lower(), parts.netloc)
    ours = _origin_tuple(scheme_of(request), request.host)
    return theirs is not None and theirs == ours


def same_origin(request: web.Request) -> bool:
    """A WebSocket's Origin check. Browsers always send Origin on a WebSocket, so one without
    it is not a page of another site (it is a script, which needs the session anyway)."""
    origin = request.headers.get("Origin")
    return origin is None or is_own_origin(request, origin)


def source_of(request: web.Request) -> str:
    """The client's address for throttling; an IPv6 client counts as its /64, as one host has them all."""
    raw = request.remote or ""
    if edge_of(request.app).behind_tls_proxy:
        forwarded = request.headers.get("X-Forwarded-For", "").split(",")[-1].strip()
        if forwarded:
            raw = forwarded
    try:
        address = ipaddress.ip_address(raw)
    except ValueError:
        return raw[:64] or "unknown"
    if address.version == 6:
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)
