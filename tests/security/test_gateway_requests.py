"""Finding 9, the request-level defects, on the production gateway with the real database:

- a NUL in a path gave 500 on authenticated routes (Postgres refuses NUL in text);
- chunked bodies bypassed the 16 KiB limits of the subscription and grant routes (3 MiB was accepted);
- a body that stops arriving held its request open;
- two `Authorization` headers gave 401 on reader routes but 200 on /v1/subscriptions.
"""

from __future__ import annotations

import asyncio
from typing import AsyncIterator, Awaitable, Callable

import pytest

from connectors.gateway import guards
from hubconf.settings import Settings
from tests.security.gateway_app import RECORD, TOKENS, auth, served

pytestmark = pytest.mark.integration

NewSettings = Callable[..., Awaitable[Settings]]
SHIPPER, BROKER = "shipper.chengdu-elec", "broker.customs-jb"
THREE_MIB = 3 * 1024 * 1024


async def chunked(total: int) -> AsyncIterator[bytes]:
    """A body with no Content-Length: aiohttp sends it with Transfer-Encoding: chunked."""
    piece = b" " * 65536
    for _ in range(total // len(piece)):
        yield piece


@pytest.mark.parametrize(
    "path", ["/v1/shipments/SHP%00X", "/v1/shipments/%00/disclosures", "/v1/shipments/SHP%00/grants"]
)
async def test_a_nul_in_a_path_is_a_clear_400_not_a_500(hub_settings: NewSettings, path: str) -> None:
    settings = await hub_settings()
    async with served(settings) as app:
        async with app.client.get(path, headers=auth(SHIPPER)) as response:
            body = await response.json()
    print(f"GET {path}: {response.status} {body}")
    assert (response.status, body["error"]) == (400, "invalid_path")


@pytest.mark.parametrize("route", ["subscriptions", "grants"])
async def test_a_chunked_3_mib_body_is_refused_at_the_16_kib_limit(hub_settings: NewSettings, route: str) -> None:
    settings = await hub_settings()
    path = "/v1/subscriptions" if route == "subscriptions" else f"/v1/shipments/{RECORD.shipment_id}/grants"
    async with served(settings) as app:
        async with app.client.post(path, data=chunked(THREE_MIB), headers=auth(SHIPPER)) as response:
            assert "Content-Length" not in response.request_info.headers
            body = await response.json()
    print(f"POST {path} with a chunked 3 MiB body: {response.status} {body}")
    assert (response.status, body["error"]) == (413, "too_large")


async def test_a_body_that_stops_arriving_is_answered_408(
    hub_settings: NewSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = await hub_settings()
    monkeypatch.setattr(guards, "BODY_TIMEOUT_S", 1.0)
    stalled = asyncio.Event()

    async def stalls() -> AsyncIterator[bytes]:
        yield b'{"url": "https://'
        await stalled.wait()  # and nothing more, until the test ends

    async with served(settings) as app:
        try:
            request = app.client.post("/v1/subscriptions", data=stalls(), headers=auth(SHIPPER))
            async with await asyncio.wait_for(request, 10) as response:
                body = await response.json()
        finally:
            stalled.set()
    print(f"a body that stalls: {response.status} {body}")
    assert (response.status, body["error"]) == (408, "body_timeout")


@pytest.mark.parametrize(
    "path", ["/v1/subscriptions", f"/v1/shipments/{RECORD.shipment_id}", f"/v1/shipments/{RECORD.shipment_id}/grants"]
)
async def test_two_authorization_headers_are_401_on_every_route(hub_settings: NewSettings, path: str) -> None:
    settings = await hub_settings()
    twice = [("Authorization", f"Bearer {TOKENS[SHIPPER]}"), ("Authorization", f"Bearer {TOKENS[BROKER]}")]
    async with served(settings) as app:
        async with app.client.get(path, headers=auth(SHIPPER)) as response:
            assert response.status == 200  # the positive marker: one header is enough
        async with app.client.get(path, headers=twice) as response:
            body = await response.json()
    print(f"GET {path} with two Authorization headers: {response.status} {body}")
    assert response.status == 401
