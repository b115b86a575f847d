"""The gateway's per-client token buckets and the live views' caps, with a clock the test moves."""

from __future__ import annotations

import pytest

from connectors.gateway.feed import ChangeFeed, StreamCaps
from connectors.gateway.guards import Rate, RateLimiter

from .readers import RECORD


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_client_gets_its_burst_then_waits_for_the_refill() -> None:
    clock = Clock()
    limiter = RateLimiter(Rate(per_s=2.0, burst=3), clock)
    assert [limiter.take("a") for _ in range(3)] == [None, None, None]
    assert limiter.take("a") == pytest.approx(0.5)  # one token comes back every 0.5 s
    assert limiter.take("b") is None  # another client has its own bucket
    clock.now += 0.5
    assert limiter.take("a") is None
    assert limiter.take("a") == pytest.approx(0.5)


def test_a_refused_request_is_not_counted_and_an_idle_bucket_refills_only_to_the_burst() -> None:
    clock = Clock()
    limiter = RateLimiter(Rate(per_s=1.0, burst=2), clock)
    limiter.take("a"), limiter.take("a")
    assert limiter.take("a") == pytest.approx(1.0)
    assert limiter.take("a") == pytest.approx(1.0)  # asking again does not push the wait further
    clock.now += 3600
    assert [limiter.take("a") for _ in range(3)] == [None, None, pytest.approx(1.0)]


def test_the_limiter_keeps_at_most_max_clients_buckets() -> None:
    limiter = RateLimiter(Rate(per_s=1.0, burst=1), Clock(), max_clients=3)
    for client in "abcde":
        limiter.take(client)
    assert limiter.take("a") is None  # the oldest went first: a starts afresh
    assert limiter.take("e") == pytest.approx(1.0)  # the newest is still counted


class NoStore:
    async def versions(self, shipment_ids: object) -> dict[str, int]:
        return {}

    async def for_shipments(self, shipment_ids: object) -> dict[str, object]:
        return {}


async def test_the_feed_caps_streams_per_party_and_in_all() -> None:
    store = NoStore()
    feed = ChangeFeed(store, store, poll_s=60.0, caps=StreamCaps(per_party=2, total=3))  # type: ignore[arg-type]
    assert feed.refuse("p") is None
    async with feed.follow("p", RECORD, []), feed.follow("p", RECORD, []):
        refused = feed.refuse("p")
        assert refused is not None and (refused.status, refused.code) == (429, "too_many_streams")
        assert feed.refuse("q") is None
        async with feed.follow("q", RECORD, []):
            refused = feed.refuse("r")
            assert refused is not None and "as many live views as it can" in refused.reason
        assert feed.refuse("r") is None
    assert feed.refuse("p") is None
