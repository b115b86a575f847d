"""What every gateway route is protected by before and around its handler: per-client rate limits, bodies read with
a cap and a deadline whatever their framing, one `Authorization` header, no NUL in a path, and the server's header
read timeout."""

from __future__ import annotations

import asyncio
import hashlib
import math
import time
from dataclasses import dataclass
from typing import Awaitable, Callable

import orjson
from aiohttp import web
from aiohttp.typedefs import Middleware

from connectors.gateway.intake import error_document

# A connection must deliver a whole request head within this long (also the idle time allowed between requests):
# aiohttp closes a connection whose handler waits for a request past its keep-alive deadline.
HEADER_TIMEOUT_S = 10.0
BODY_TIMEOUT_S = 30.0  # for the whole body, once the head is in
MAX_CLIENTS = 10_000  # buckets kept per limiter; the oldest goes first beyond this


@dataclass(frozen=True)
class Rate:
    per_s: float
    burst: int


@dataclass(frozen=True)
class RateLimits:
    """Requests per source address (every route, before anything else), per presented bearer token, and per
    authenticated carrier (after its signature is checked, so nobody can spend a carrier's allowance for it)."""

    per_address: Rate = Rate(per_s=20.0, burst=40)
    per_token: Rate = Rate(per_s=10.0, burst=20)
    per_carrier: Rate = Rate(per_s=10.0, burst=20)

    @classmethod
    def unlimited(cls) -> RateLimits:
        """No limit worth the name: for tests whose subject is not the rate limits."""
        return cls(*(Rate(per_s=1e6, burst=10**6),) * 3)


class RateLimiter:
    """Token buckets, one per client key. Pure apart from the clock it is given."""

    def __init__(self, rate: Rate, clock: Callable[[], float] = time.monotonic, max_clients: int = MAX_CLIENTS):
        self.rate = rate
        self.clock = clock
        self.max_clients = max_clients
        self._buckets: dict[str, tuple[float, float]] = {}  # client -> (tokens, when counted)

    def take(self, client: str) -> float | None:
        """None if `client` may make a request now (and it is counted), else the seconds until it may."""
        now = self.clock()
        tokens, then = self._buckets.pop(client, (float(self.rate.burst), now))
        tokens = min(float(self.rate.burst), tokens + (now - then) * self.rate.per_s)
        allowed = tokens >= 1.0
        self._buckets[client] = (tokens - 1.0 if allowed else tokens, now)
        if len(self._buckets) > self.max_clients:
            del self._buckets[next(iter(self._buckets))]
        return None if allowed else (1.0 - tokens) / self.rate.per_s


def json_error(status: int, code: str, reason: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=orjson.dumps(error_document(code, reason)), status=status, headers=headers, content_type="application/json"
    )


def too_many(who: str, wait_s: float) -> web.Response:
    retry = max(1, math.ceil(wait_s))
    reason = f"too many requests from this {who}; try again in {retry} s"
    return json_error(429, "rate_limited", reason, {"Retry-After": str(retry)})


def authorization(request: web.BaseRequest) -> str | None:
    """The one `Authorization` header; None when absent or repeated (which copy counts would be anyone's guess)."""
    presented = request.headers.getall("Authorization", [])
    return presented[0] if len(presented) == 1 else None


class BodyRefused(Exception):
    def __init__(self, response: web.Response) -> None:
        super().__init__(response.status)
        self.response = response


async def read_capped(request: web.BaseRequest, limit: int) -> bytes:
    """The body, at most `limit` bytes whatever the framing (a chunked body has no Content-Length to check up
    front), within BODY_TIMEOUT_S; BodyRefused with the 413 or 408 to answer otherwise."""
    timeout_s = BODY_TIMEOUT_S
    too_large = json_error(413, "too_large", f"the body is larger than the limit of {limit} bytes")
    if request.content_length is not None and request.content_length > limit:
        raise BodyRefused(too_large)
    parts: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout_s):
            while chunk := await request.content.read(min(limit + 1 - size, 64 * 1024)):
                parts.append(chunk)
                size += len(chunk)
                if size > limit:
                    raise BodyRefused(too_large)
    except TimeoutError:
        raise BodyRefused(json_error(408, "body_timeout", f"the body did not arrive within {timeout_s:g} s")) from None
    return b"".join(parts)


def guard_middleware(limits: RateLimits, clock: Callable[[], float] = time.monotonic) -> Middleware:
    """Refuse a path with a NUL (no route can hold one, and Postgres refuses it in text), then rate-limit by source
    address and by the bearer token presented (its digest: the limiter keeps no secrets)."""
    by_address = RateLimiter(limits.per_address, clock)
    by_token = RateLimiter(limits.per_token, clock)

    @web.middleware
    async def guard(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if "\x00" in request.path:  # decoded: %00 too
            return json_error(400, "invalid_path", "a path cannot hold a NUL character")
        wait = by_address.take(request.remote or "?")
        if wait is not None:
            return too_many("address", wait)
        presented = request.headers.get("Authorization")
        if presented is not None:
            wait = by_token.take(hashlib.sha256(presented.encode("utf-8", "surrogateescape")).hexdigest())
            if wait is not None:
                return too_many("token", wait)
        return await handler(request)

    return guard


def runner(app: web.Application, header_timeout_s: float = HEADER_TIMEOUT_S) -> web.AppRunner:
    """The application's runner with the gateway's connection deadlines: a request head that has not fully arrived
    within `header_timeout_s` (slowloris) gets its connection closed."""
    return web.AppRunner(app, keepalive_timeout=header_timeout_s)
