"""The SSRF guard: which URLs and addresses a browse subtask may reach, and why not."""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from core.errors import MissionError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], list[IPAddress]]

WEB_SCHEMES = ("http", "https")
SOCKET_SCHEMES = ("ws", "wss")
DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}
_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)[a-z0-9_]([a-z0-9_-]{0,62})(\.[a-z0-9_]([a-z0-9_-]{0,62}))*$"
)


def _networks(*pairs: tuple[str, str]) -> tuple[tuple[IPNetwork, str], ...]:
    return tuple((ipaddress.ip_network(cidr), label) for cidr, label in pairs)


# Checked in order, so the most telling name wins (loopback before "reserved").
_BLOCKED_V4 = _networks(
    ("0.0.0.0/8", "an unspecified ('this network') address"),
    ("127.0.0.0/8", "a loopback address"),
    ("169.254.169.254/32", "the cloud metadata address (link-local)"),
    ("169.254.0.0/16", "a link-local address"),
    ("10.0.0.0/8", "a private address"),
    ("172.16.0.0/12", "a private address"),
    ("192.168.0.0/16", "a private address"),
    ("100.64.0.0/10", "a shared (carrier-grade NAT) address"),
    ("224.0.0.0/4", "a multicast address"),
    ("255.255.255.255/32", "the broadcast address"),
    ("192.0.0.0/24", "a reserved (IETF protocol) address"),
    ("192.0.2.0/24", "a reserved (documentation) address"),
    ("198.51.100.0/24", "a reserved (documentation) address"),
    ("203.0.113.0/24", "a reserved (documentation) address"),
    ("198.18.0.0/15", "a reserved (benchmarking) address"),
    ("192.88.99.0/24", "a reserved (6to4 relay) address"),
    ("240.0.0.0/4", "a reserved address"),
)
_BLOCKED_V6 = _networks(
    ("::/128", "an unspecified address"),
    ("::1/128", "a loopback address"),
    ("fe80::/10", "a link-local address"),
    ("fec0::/10", "a private (site-local) address"),
    ("fc00::/7", "a private (unique local) address"),
    ("ff00::/8", "a multicast address"),
    ("64:ff9b:1::/48", "a private (local NAT64) address"),
    ("100::/64", "a reserved (discard) address"),
    ("2001:db8::/32", "a reserved (documentation) address"),
    ("2001::/23", "a reserved (IETF protocol or Teredo) address"),
    ("::/8", "a reserved address"),
)
# IPv6 forms that carry an IPv4 address inside: judged by the IPv4 address they reach.
_MAPPED = ipaddress.ip_network("::ffff:0:0/96")
_COMPATIBLE = ipaddress.ip_network("::/96")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class Blocked(MissionError):
    """A destination the guard refuses; the message says which address and why."""


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (mapped, compatible, NAT64, 6to4)."""
    if address in _MAPPED or address in _COMPATIBLE or address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address.sixtofour


def address_refusal(address: IPAddress) -> str | None:
    """Why `address` is not a public unicast address, or None when it is."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.is_loopback or address.is_unspecified:  # before `::/96` reads them as IPv4
            return "a loopback address" if address.is_loopback else "an unspecified address"
        inner = embedded_ipv4(address)
        if inner is not None:
            why = address_refusal(inner)
            if why is not None:
                return f"{why}, as IPv4 {inner} inside IPv6"
            if address in _MAPPED or address in _NAT64:  # only a way to spell a public IPv4
                return None
        table = _BLOCKED_V6
    else:
        table = _BLOCKED_V4
    for network, label in table:
        if address in network:
            return label
    if not address.is_global:
        return "not a public address"
    return None


@dataclass(frozen=True)
class Allowlist:
    """Destinations reachable despite the guard (`MISSION_BROWSE_ALLOW`).

    Entries are comma-separated: an address or CIDR (`10.1.0.0/16`, `fd00::/8`) covers the
    addresses in it; a host name (`intranet.example`) covers whatever it resolves to. Either
    may name one port (`127.0.0.1:8123`, `[::1]:8123`, `wiki.internal:8080`), and then covers
    only that port, so a test can open its fixture server and nothing else on loopback.
    """

    networks: tuple[tuple[IPNetwork, int | None], ...] = ()
    hosts: tuple[tuple[str, int | None], ...] = ()

    @classmethod
    def parse(cls, text: str) -> Allowlist:
        networks: list[tuple[IPNetwork, int | None]] = []
        hosts: list[tuple[str, int | None]] = []
        for entry in filter(None, (e.strip() for e in text.split(","))):
            target, port = _split_port(entry)
            try:
                networks.append((ipaddress.ip_network(target, strict=False), port))
                continue
            except ValueError:
                pass
            host = target.lower().rstrip(".")
            if not _HOSTNAME.match(host):
                raise ValueError(f"browse allowlist: {entry!r} is not a host, address or CIDR")
            hosts.append((host, port))
        return cls(tuple(networks), tuple(hosts))

    def covers(self, host: str, port: int, address: IPAddress) -> bool:
        name = host.lower().rstrip(".")
        if any(h == name and p in (None, port) for h, p in self.hosts):
            return True
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped  # `::ffff:10.0.0.1` is what `10.0.0.0/8` means
        return any(address in n and p in (None, port) for n, p in self.networks)


def _split_port(entry: str) -> tuple[str, int | None]:
    """`host:port`, `[v6]:port` or a bare host / address / CIDR."""
    if entry.startswith("["):
        inside, _, rest = entry[1:].partition("]")
        if rest and not rest.startswith(":"):
            raise ValueError(f"browse allowlist: cannot read {entry!r}")
        return inside, _port(rest[1:], entry) if rest else None
    if entry.count(":") == 1:
        target, _, port = entry.partition(":")
        return target, _port(port, entry)
    return entry, None


def _port(text: str, entry: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(f"browse allowlist: bad port in {entry!r}")
    return int(text)


@dataclass(frozen=True)
class Destination:
    """A checked destination: connect to one of `addresses`, never resolve `host` again."""

    host: str
    port: int
    addresses: tuple[IPAddress, ...]


def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address `host` resolves to, normalised: `2130706433`, `0x7f.1`, `017700000001` and
    `127.1` all come back as 127.0.0.1 (the C resolver reads them as inet_aton does)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise Blocked(f"cannot resolve {host}: {exc}") from None
    addresses: list[IPAddress] = []
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).partition("%")[0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise Blocked(f"{host} resolves to no address")
    return addresses


def check_destination(
    host: str, port: int, allow: Allowlist, resolver: Resolver = resolve
) -> Destination:
    """Resolve `host` and refuse (Blocked) unless every address is public or allowlisted."""
    name = host.strip("[]").rstrip(".")
    if not name:
        raise Blocked("no host")
    addresses = resolver(name, port)
    for address in addresses:
        why = address_refusal(address)
        if why is not None and not allow.covers(name, port, address):
            literal = _literal(name)
            if literal is not None and literal == address:
                raise Blocked(f"{name} is {why}")
            raise Blocked(f"{name} resolves to {address}, {why}")
    return Destination(host=name, port=port, addresses=tuple(addresses))


def check_url(
    url: str,
    allow: Allowlist,
    schemes: Sequence[str] = WEB_SCHEMES,
    resolver: Resolver = resolve,
) -> Destination:
    """The checked destination of `url`; Blocked with the reason when the guard refuses it."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise Blocked(f"not a valid URL ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme not in schemes:
        allowed = " and ".join(f"{s}:" for s in schemes)
        raise Blocked(f"only {allowed} URLs may be opened, not {scheme or 'scheme-less'} ones")
    if not parts.hostname:
        raise Blocked("the URL names no host")
    return check_destination(parts.hostname, port or DEFAULT_PORTS[scheme], allow, resolver)


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None
