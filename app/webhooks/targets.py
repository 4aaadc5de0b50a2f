"""Where webhooks may post: http(s) URLs whose host resolves only to public (global) addresses,
so a subscription cannot be used to reach the service's own network (SSRF). Checked when a
webhook is saved and again on every connection the sender opens, which then goes to the very
address that was checked: a name re-pointed between the check and the connection (DNS
rebinding) cannot lead it elsewhere."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

RESOLVE_TIMEOUT_SECONDS = 5.0


class UnsafeTarget(Exception):
    """The URL may not be called; the message says why."""


class Unresolvable(UnsafeTarget):
    """The host name does not resolve (now): nothing can be said about its addresses."""


@dataclass(frozen=True)
class TargetPolicy:
    allow_private: bool = False
    allowed_hosts: frozenset[str] = frozenset()
    allowed_networks: tuple[IpNetwork, ...] = ()

    @classmethod
    def from_list(cls, allow_private: bool, allowed: list[str]) -> TargetPolicy:
        """``allowed``: host names and addresses or networks (CIDR) reachable even when not
        public."""
        hosts: set[str] = set()
        networks: list[IpNetwork] = []
        for entry in allowed:
            try:
                networks.append(ipaddress.ip_network(entry.strip(), strict=False))
            except ValueError:
                hosts.add(entry.strip().lower().rstrip("."))
        return cls(allow_private, frozenset(hosts), tuple(networks))

    def address_allowed(self, address: IpAddress) -> bool:
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if any(address in network for network in self.allowed_networks):
            return True
        return address.is_global and not address.is_multicast


def parse_target(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise UnsafeTarget("The URL must start with http:// or https://.")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise UnsafeTarget("The URL's port is not a number from 1 to 65535.") from exc
    if not parts.hostname:
        raise UnsafeTarget("The URL has no host.")
    if parts.username is not None or parts.password is not None:
        raise UnsafeTarget("The URL may not carry a user name or password.")
    return parts.hostname.lower().rstrip("."), port


async def _resolve(host: str, port: int) -> list[IpAddress]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(
            loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), RESOLVE_TIMEOUT_SECONDS
        )
    except (OSError, TimeoutError) as exc:
        raise Unresolvable(f"The host {host} does not resolve.") from exc
    # A scoped IPv6 address carries its zone after a '%'.
    return [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]


async def connect_address(host: str, port: int, policy: TargetPolicy) -> str:
    """The address to connect to for ``host``: one it resolves to now, all of which
    ``policy`` allows (the host itself when the policy allows it whatever it resolves to);
    ``UnsafeTarget`` otherwise."""
    host = host.lower().rstrip(".")
    if policy.allow_private or host in policy.allowed_hosts:
        return host
    addresses = await _resolve(host, port)
    for address in addresses:
        if not policy.address_allowed(address):
            raise UnsafeTarget(
                f"The host {host} resolves to {address}, which is not a public address "
                "(private, loopback, link-local or reserved); webhooks may not call it."
            )
    return str(addresses[0])


async def check_target(url: str, policy: TargetPolicy) -> None:
    """Raise ``UnsafeTarget`` unless ``url`` may be called now under ``policy``."""
    await connect_address(*parse_target(url), policy)
