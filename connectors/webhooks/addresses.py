"""Where the hub may POST a webhook: the URL's host normalised, and every address the hub would connect to, vetted.

A party chooses the URL and the hub connects, so the URL must not aim the hub at its own network. Two checks:

- `AddressPolicy.target`, when subscribing and again before each delivery: the URL parsed by the parser aiohttp
  uses (yarl, so both read the same host), https only, no credentials, and its host normalised (IDNA UTS #46, which
  folds `①②⑦.0.0.1` to `127.0.0.1` and `ⓛⓞⓒⓐⓛⓗⓞⓢⓣ` to `localhost`; one trailing dot dropped). A host that ends
  in a number must be a dotted-quad IPv4 address (no `2130706433`, `0x7f.1` or `017700000001`). An address or a
  `localhost` name is judged at once.
- `AddressPolicy.vet`, at delivery time, on every address a host name resolves to: one loopback, private,
  link-local, multicast, reserved, unspecified, shared (100.64/10) address, or an IPv4-mapped IPv6 address, or a
  6to4 address embedding such an IPv4 address, and the hub does not connect at all.

An operator may allow-list host names (their addresses are not vetted) and addresses or networks (those addresses
pass), for a closed network or a test's local receiver. Pure: connectors.webhooks.egress resolves and connects.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Iterable, Sequence

import idna
from yarl import URL

from connectors.webhooks.notifications import Refused

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# The last label of a host that an URL parser (WHATWG's, or inet_aton behind getaddrinfo) reads as an IPv4 number.
_NUMERIC = re.compile(r"(0[xX][0-9a-fA-F]*|[0-9]+)")
_SHARED = ipaddress.ip_network("100.64.0.0/10")
# Not reachable from the internet, though Python 3.11 calls them global: the deprecated IPv6 site-local range
# (RFC 3879) and the IETF protocol assignments (RFC 6890: 192.0.0.8 is the IPv4 dummy address, RFC 7600).
_NOT_PUBLIC = (ipaddress.ip_network("fec0::/10"), ipaddress.ip_network("192.0.0.0/24"))


def blocked(address: IPAddress) -> str | None:
    """Why the hub never connects to `address`, or None for a public unicast address."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return f"{address} is an IPv4-mapped IPv6 address"
        embedded = address.sixtofour  # NAT64 and Teredo addresses are reserved or private themselves
        if embedded is not None and blocked(embedded) is not None:
            return f"{address} embeds {embedded}, which is not public"
    for test, what in (
        (address.is_unspecified, "unspecified"),
        (address.is_loopback, "a loopback address"),
        (address.is_link_local, "link-local"),
        (address.is_multicast, "multicast"),
        (isinstance(address, ipaddress.IPv4Address) and address in _SHARED, "shared address space (100.64/10)"),
        (address.is_private, "private"),
        (address.is_reserved, "reserved"),
        (any(address in network for network in _NOT_PUBLIC), "not reachable from the internet"),
        (not address.is_global, "not a public address"),
    ):
        if test:
            return f"{address} is {what}"
    return None


@dataclass(frozen=True)
class Target:
    """A URL the hub may POST to: `url` rebuilt from the normalised host; `address` when the host is an address."""

    url: URL
    host: str
    address: IPAddress | None


def normal_host(host: str) -> str:
    """`host` as the hub compares and resolves it: an IP address in its compressed form, or a name in IDNA UTS #46
    (lower case, NFKC-folded, A-labels) without one trailing dot. Raises ValueError."""
    try:
        return ipaddress.ip_address(host).compressed
    except ValueError:
        pass
    bare = host[:-1] if host.endswith(".") else host
    if not bare:
        raise ValueError("no host")
    try:
        return idna.encode(bare, uts46=True, transitional=False).decode("ascii")
    except idna.IDNAError as error:
        raise ValueError(f"{host!r} is not a valid host name: {error}") from None


def _address(host: str) -> IPAddress | None:
    """The address `host` (normalised) denotes, None for a name; ValueError for an IPv4 address in an odd form."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if _NUMERIC.fullmatch(host.rsplit(".", 1)[-1]):
        raise ValueError(f"{host!r} reads as an IPv4 address; write an address as four decimal numbers, a.b.c.d")
    return None


def _entry(text: str) -> str | IPNetwork:
    """One allow-list entry: an address, a network (CIDR), or a host name."""
    try:
        return ipaddress.ip_network(text.strip("[]"), strict=True)
    except ValueError:
        pass
    host = normal_host(text)
    if _address(host) is not None:
        return ipaddress.ip_network(host)
    return host


@dataclass(frozen=True)
class AddressPolicy:
    """The rules, with the operator's exceptions: `allow_http` (tests, closed networks) and the allow-list."""

    allow_http: bool = False
    hosts: frozenset[str] = frozenset()
    networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def of(cls, allow_hosts: Iterable[str], allow_http: bool = False) -> AddressPolicy:
        """From the operator's allow-list entries (host names, addresses, networks). Raises ValueError on a bad one."""
        hosts: set[str] = set()
        networks: list[IPNetwork] = []
        for text in allow_hosts:
            try:
                entry = _entry(text.strip())
            except ValueError as error:
                raise ValueError(f"allow-list entry {text!r}: {error}") from None
            if isinstance(entry, str):
                hosts.add(entry)
            else:
                networks.append(entry)
        return cls(allow_http, frozenset(hosts), tuple(networks))

    def target(self, url: str) -> Target:
        """The URL the hub POSTs to for `url`; Refused (with the reason) if the hub will not POST there."""
        try:
            parsed = URL(url)
            parsed.explicit_port  # raises on a port that is not a number
            raw_host = parsed.raw_host
        except (ValueError, TypeError) as error:
            raise Refused(f"not a URL: {error}") from None
        if parsed.scheme not in ("http", "https") or not raw_host or not parsed.absolute:
            raise Refused("the URL must be https://host/...")
        if parsed.scheme != "https" and not self.allow_http:
            raise Refused("the URL must use https")
        if parsed.raw_user is not None or parsed.raw_password is not None:
            raise Refused("the URL must not carry credentials; the signature authenticates the hub")
        try:
            host = normal_host(raw_host)
            address = _address(host)
        except ValueError as error:
            raise Refused(f"the URL's host: {error}") from None
        if address is None and (host == "localhost" or host.endswith(".localhost")) and host not in self.hosts:
            raise Refused("the URL must not point at the hub's own host")
        if address is not None:
            problem = self.vet(host, [address])
            if problem is not None:
                raise Refused(f"the URL must not point at a non-public address: {problem}")
        return Target(parsed.with_host(host).with_fragment(None), host, address)

    def vet(self, host: str, addresses: Sequence[IPAddress]) -> str | None:
        """Why the hub must not connect to `host` at these addresses (all of them are vetted), or None."""
        if not addresses:
            return f"{host} has no address"
        if host in self.hosts:
            return None
        for address in addresses:
            if any(address in network for network in self.networks):
                continue
            problem = blocked(address)
            if problem is not None:
                return problem
        return None
