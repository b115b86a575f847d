"""Finding 5: an unauthenticated body is not stored whole, and a client that sends too much is slowed down.

Five unsigned 4 MiB POSTs added 21 MB to the dead-letter topic (90 days of retention). Now a refused signature
leaves its body's first KiB, SHA-256 and size; and each source address, bearer token and carrier has a rate limit
answered with 429 and Retry-After.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Awaitable, Callable

import pytest

from hubconf.settings import Settings
from hubconf.topics import DLQ_CODE
from tests.integration.hub import read_topic
from tests.security.gateway_app import Served, served

pytestmark = pytest.mark.integration

NewSettings = Callable[..., Awaitable[Settings]]
FOUR_MIB = 4 * 1024 * 1024


async def test_an_unsigned_4_mib_post_leaves_only_its_first_kib_digest_and_size(hub_settings: NewSettings) -> None:
    settings = await hub_settings()
    body = bytes(range(256)) * (FOUR_MIB // 256)
    async with served(settings) as app:
        async with app.client.post("/v1/events/canonical", data=body) as response:
            assert response.status == 401
            assert (await response.json())["error"] == "unsigned"
    (letter,) = await read_topic(settings, settings.topics.dlq, 1)
    headers = dict(letter.headers)
    stored = len(letter.value) + sum(len(name) + len(value) for name, value in letter.headers)
    print(f"dead letter of a {len(body)}-byte unsigned POST: {len(letter.value)} bytes of value, {stored} in all")
    assert letter.value == body[:1024]
    assert headers["mmhub.body.sha256"] == hashlib.sha256(body).hexdigest().encode()
    assert headers["mmhub.body.size"] == str(FOUR_MIB).encode()
    assert headers[DLQ_CODE] == b"unsigned"
    assert stored < 2048


async def test_an_address_that_floods_the_gateway_gets_429_with_retry_after(hub_settings: NewSettings) -> None:
    settings = await hub_settings()
    retry_after: set[str] = set()

    async def post(app: Served) -> int:
        async with app.client.post("/v1/events/canonical", data=b"[]") as response:
            if response.status == 429:
                retry_after.add(response.headers["Retry-After"])
                assert (await response.json())["error"] == "rate_limited"
            return response.status

    async with served(settings) as app:
        statuses = await asyncio.gather(*(post(app) for _ in range(60)))  # 60 at once: the burst allows 40
    print(f"60 unsigned POSTs at once from one address: {statuses.count(401)} x 401, {statuses.count(429)} x 429")
    assert statuses.count(401) >= 40 and statuses.count(429) >= 15
    assert retry_after and all(int(value) >= 1 for value in retry_after)
    letters = await read_topic(settings, settings.topics.dlq, statuses.count(401))
    assert len(letters) == statuses.count(401)  # a 429 is refused before anything is written


async def test_a_token_that_floods_the_reader_routes_gets_429(hub_settings: NewSettings) -> None:
    settings = await hub_settings()
    statuses: list[int] = []
    async with served(settings) as app:
        for _ in range(30):  # under the address limit's burst, over the token's
            headers = {"Authorization": "Bearer not-a-registered-token"}
            async with app.client.get("/v1/shipments/SHP-2026-000042", headers=headers) as response:
                statuses.append(response.status)
    print(f"30 GETs with one token: {statuses.count(401)} x 401, {statuses.count(429)} x 429")
    assert statuses[:20] == [401] * 20 and statuses.count(429) >= 8
