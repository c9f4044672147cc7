"""Who is asking and over what, pure: the client address and scheme of a request, believing
the forwarding headers (X-Forwarded-For, X-Forwarded-Proto) only when the connection comes from
a configured proxy. From anyone else they are ignored: a client cannot pick its own address to
dodge the rate limit, nor claim HTTPS."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def networks(trusted: Sequence[str]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(value, strict=False) for value in trusted)


def is_trusted(addr: str, trusted: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in net for net in trusted)


def client_addr(peer: str, forwarded_for: str | None, trusted: Sequence[Network]) -> str:
    """The peer, or, when the peer is a trusted proxy, the nearest address in its header chain that
    is not a trusted proxy itself (the rightmost ones were added by our proxies, the left by anyone)."""
    if not forwarded_for or not is_trusted(peer, trusted):
        return peer
    chain = [part.strip() for part in forwarded_for.split(",") if part.strip()]
    for addr in reversed(chain):
        if not is_trusted(addr, trusted):
            return addr if _is_ip(addr) else peer
    return chain[0] if chain and _is_ip(chain[0]) else peer


def scheme(peer: str, own_scheme: str, forwarded_proto: str | None, trusted: Sequence[Network]) -> str:
    """"https" or "http": the connection's own, or what a trusted proxy says the client used."""
    if forwarded_proto and is_trusted(peer, trusted):
        said = forwarded_proto.split(",")[0].strip().lower()
        if said in ("http", "https"):
            return said
    return own_scheme


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
