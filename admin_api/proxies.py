"""Who the client is: the peer, or the address a trusted reverse proxy says it forwarded for.

Behind a reverse proxy every request comes from the proxy's address, so the limits that count
per client would count every guardian as one. ``[http] trusted_proxies`` names the proxies
(addresses or networks). Only when the direct peer is one of them are ``Forwarded``
(RFC 7239, its ``for=`` parameters) or, without it, ``X-Forwarded-For`` read: walking from the
right (the hop nearest to us), trusted proxies are skipped and the first address that is not
one is the client. Everything to its left was written by whoever sent the request and is
never believed. From any other peer the headers are ignored: anyone can send them.

    app.state.trusted_proxies = trusted_networks(settings)   # create_app does this
    client_address(request)                                  # "203.0.113.7"
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from starlette.requests import Request

from engine.platform.config import IPNetwork, Settings, parse_networks

__all__ = ["client_address", "forwarded_client", "trusted_networks"]


def trusted_networks(settings: Settings) -> tuple[IPNetwork, ...]:
    return parse_networks("http.trusted_proxies", settings.http.trusted_proxies)


def client_address(request: Request) -> str:
    """The client's address for limits and the audit log ("" when unknown)."""
    peer = request.client.host if request.client is not None else ""
    trusted: Sequence[IPNetwork] = getattr(request.app.state, "trusted_proxies", ())
    if not trusted or not _is_trusted(peer, trusted):
        return peer
    return forwarded_client(
        peer, request.headers.getlist("forwarded"),
        request.headers.getlist("x-forwarded-for"), trusted,
    )


def forwarded_client(
    peer: str, forwarded: Sequence[str], x_forwarded_for: Sequence[str],
    trusted: Sequence[IPNetwork],
) -> str:
    """The right-most hop that is not a trusted proxy; ``peer`` is already known trusted.
    When every hop is trusted, the left-most is the client."""
    hops = _forwarded_hops(forwarded) if forwarded else _xff_hops(x_forwarded_for)
    for hop in reversed(hops):
        if not _is_trusted(hop, trusted):
            return hop
    return hops[0] if hops else peer


def _xff_hops(values: Sequence[str]) -> list[str]:
    return [_bare(h) for v in values for h in v.split(",") if h.strip()]


def _forwarded_hops(values: Sequence[str]) -> list[str]:
    hops: list[str] = []
    for value in values:
        for element in value.split(","):
            for pair in element.split(";"):
                name, _, text = pair.partition("=")
                if name.strip().lower() == "for" and text.strip():
                    hops.append(_bare(text))
    return hops


def _bare(text: str) -> str:
    """An address without quotes, brackets or port: '"[2001:db8::1]:4711"' -> '2001:db8::1'."""
    t = text.strip().strip('"').strip()
    if t.startswith("["):
        return t[1:].partition("]")[0]
    if t.count(":") == 1:  # IPv4 with a port
        return t.partition(":")[0]
    return t[:64]


def _is_trusted(address: str, trusted: Sequence[IPNetwork]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False  # "unknown", an obfuscated name: not a proxy of ours
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in net for net in trusted)
