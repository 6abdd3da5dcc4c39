"""Where webhooks may go (SSRF): a target's host is resolved and every address it resolves to must be a
public unicast address, unless an admin setting (FACEGATE_WEBHOOK_ALLOW_NETS) lists a network holding
it. The sender then connects to the very address checked (no second lookup a DNS rebinding could
change), follows no redirect, and reads at most a capped response (central/notify/webhook.py).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from central.errors import InvalidInput

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class TargetRefused(InvalidInput):
    """The webhook target is not allowed (422 `webhook_target_refused` when an admin sets it)."""

    default_code = "webhook_target_refused"


@dataclass(frozen=True, slots=True)
class Target:
    """A checked target: connect to `address` and say `host` (Host header, TLS server name)."""

    scheme: str
    host: str
    port: int
    address: str
    path: str


def parse_nets(nets: Sequence[str]) -> tuple[IpNetwork, ...]:
    """The allowed networks of the setting; ValueError names a bad one."""
    parsed = []
    for net in nets:
        try:
            parsed.append(ipaddress.ip_network(net, strict=False))
        except ValueError as err:
            raise ValueError(f"FACEGATE_WEBHOOK_ALLOW_NETS: {net!r} is not a network (10.0.0.0/8)") from err
    return tuple(parsed)


def public(address: IpAddress) -> bool:
    """A global unicast address: not loopback, private, link-local, multicast, reserved or unspecified."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return public(address.ipv4_mapped)
    return address.is_global and not (address.is_multicast or address.is_reserved)


class TargetPolicy:
    def __init__(self, allow_nets: Sequence[str]) -> None:
        self.allowed = parse_nets(allow_nets)

    def allows(self, address: IpAddress) -> bool:
        return public(address) or any(address in net for net in self.allowed)

    async def resolve(self, url: str) -> Target:
        """The target of `url` with one allowed address; TargetRefused says why not."""
        parts = urlsplit(url)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise TargetRefused(f"webhook URL {_safe(url)!r} must be http:// or https:// with a host")
        if parts.username or parts.password:
            raise TargetRefused("a webhook URL must not carry a user name or password: the body is signed")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError as err:
            raise TargetRefused(f"webhook URL {_safe(url)!r} has a bad port") from err
        host = parts.hostname
        addresses = await _addresses(host, port)
        refused = [a for a in addresses if not self.allows(a)]
        if refused:
            raise TargetRefused(
                f"webhook host {host!r} resolves to {refused[0]}, a private, loopback or link-local "
                "address; an admin may allow its network with FACEGATE_WEBHOOK_ALLOW_NETS"
            )
        path = parts.path or "/"
        if parts.query:
            path = f"{path}?{parts.query}"
        return Target(parts.scheme, host, port, str(addresses[0]), path)

    async def check(self, url: str) -> None:
        """Raises TargetRefused unless `url` may be a webhook target now."""
        await self.resolve(url)


async def _addresses(host: str, port: int) -> list[IpAddress]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as err:
        raise TargetRefused(f"webhook host {host!r} does not resolve: {err}") from err
    found = [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]
    if not found:
        raise TargetRefused(f"webhook host {host!r} has no address")
    return list(dict.fromkeys(found))


def _safe(url: str) -> str:
    """The URL without its query (which may hold a token) for messages and logs."""
    return url.split("?", 1)[0][:200]
