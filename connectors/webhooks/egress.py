"""The dispatcher's way out: one POST to a subscriber, to an address vetted at that moment, and what came back.

The host is resolved when the connection is made, through `VettingResolver`: aiohttp connects to exactly the
addresses it returns, which are the ones `AddressPolicy.vet` just passed, so an answer that changes between a check
and the connection (DNS rebinding) has nothing to slip through. TLS still verifies the certificate for the name.

What the subscription's party sees of a failure is its class (`FAILURES`); the exception itself goes only to the
operator's log, so the hub is no port scanner: an address it will not reach gives `blocked_address` whether a
port is open there or not, since it never connects.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from datetime import datetime
from typing import Awaitable, Callable, Sequence

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from connectors.webhooks.addresses import AddressPolicy, IPAddress
from connectors.webhooks.delivery import Answer, detail, retry_after
from connectors.webhooks.notifications import Refused

# Host name -> its addresses (as text). The system's resolver in production; a local stub in tests.
Resolve = Callable[[str], Awaitable[Sequence[str]]]

BLOCKED, DNS, REFUSED, TIMEOUT, TLS, CONNECTION = "blocked_address", "dns", "refused", "timeout", "tls", "connection"
FAILURES = (BLOCKED, DNS, REFUSED, TIMEOUT, TLS, CONNECTION)  # and http_<status>


class Blocked(OSError):
    """The host resolved to an address the hub does not connect to."""


class Unresolved(OSError):
    """The host has no address (or the resolver failed)."""


async def system_resolve(host: str) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class VettingResolver(AbstractResolver):
    """aiohttp's resolver: the host's addresses through `resolve`, all of them vetted by `policy`, else Blocked."""

    def __init__(self, policy: AddressPolicy, resolve: Resolve) -> None:
        self._policy = policy
        self._resolve = resolve

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        try:
            found = [ipaddress.ip_address(text) for text in await self._resolve(host)]
        except (OSError, ValueError) as error:
            raise Unresolved(f"{host}: {error}") from error
        problem = self._policy.vet(host, found)
        if problem is not None:
            raise Blocked(f"{host}: {problem}")
        return [
            ResolveResult(
                hostname=host, host=address.compressed, port=port, family=_family(address), proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for address in found
            if family in (socket.AF_UNSPEC, _family(address))
        ]

    async def close(self) -> None:
        pass


def _family(address: IPAddress) -> socket.AddressFamily:
    return socket.AF_INET if address.version == 4 else socket.AF_INET6


def session(policy: AddressPolicy, timeout_s: float, user_agent: str, resolve: Resolve = system_resolve) -> aiohttp.ClientSession:
    """The dispatcher's HTTP client: every new connection resolved (no cache) and vetted; no proxy from the
    environment; redirects are the caller's to refuse."""
    connector = aiohttp.TCPConnector(resolver=VettingResolver(policy, resolve), use_dns_cache=False)
    return aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=timeout_s), headers={"User-Agent": user_agent}
    )


def failure(error: BaseException) -> str:
    """The class of a failed POST, which is all the subscriber's party sees of it."""
    causes: list[BaseException] = []
    cause: BaseException | None = error
    while cause is not None and cause not in causes:
        causes.append(cause)
        cause = cause.__cause__ or getattr(cause, "os_error", None)
    if any(isinstance(cause, Blocked) for cause in causes):
        return BLOCKED
    for cause in causes:
        if isinstance(cause, Unresolved | aiohttp.ClientConnectorDNSError):
            return DNS
        if isinstance(cause, ssl.SSLError | aiohttp.ClientSSLError | aiohttp.ServerFingerprintMismatch):
            return TLS
        if isinstance(cause, ConnectionRefusedError):
            return REFUSED
        if isinstance(cause, TimeoutError):
            return TIMEOUT
    return CONNECTION


async def post(
    session: aiohttp.ClientSession, policy: AddressPolicy, url: str, raw: bytes, signed: dict[str, str],
    clock: Callable[[], datetime],
) -> Answer:
    """POST `raw` to `url`, if the rules still let the hub go there (a URL stored before a rule changed is judged
    again). Answer.failure is for the party; Answer.detail, with the raw error, is for the operator's log."""
    try:
        target = policy.target(url)
        problem = None if target.address is None else policy.vet(target.host, [target.address])
    except Refused as error:
        problem = str(error)
    if problem is not None:
        return Answer(None, BLOCKED, f"not connecting: {problem}")
    try:
        # Redirects are not followed: a POST redirected would lose its body, or go where no one subscribed.
        async with session.post(target.url, data=raw, headers=signed, allow_redirects=False) as response:
            status = response.status
            text = (await response.content.read(1024)).decode("utf-8", "replace")
            wait = retry_after(response.headers.get("Retry-After"), clock())
            return Answer(status, f"http_{status}", detail(status, text), wait)
    except (aiohttp.ClientError, TimeoutError) as error:
        cause = f" ({error.__cause__})" if error.__cause__ is not None else ""
        return Answer(None, failure(error), f"{type(error).__name__}: {error}".rstrip(": ") + cause)
