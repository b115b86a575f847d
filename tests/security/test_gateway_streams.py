"""Finding 9: live views (SSE) were unlimited per token (100 were opened for one) and each polled Postgres on its
own. Now a party may hold five at once and the gateway 500 (429 beyond), and one change feed per gateway process
reads for all of them: at most three queries a round however many streams are open.
"""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable

import pytest

from hubconf.settings import Settings
from tests.security.gateway_app import RECORD, auth, project, served
from tests.unit.connectors.sse_client import next_event

pytestmark = pytest.mark.integration

NewSettings = Callable[..., Awaitable[Settings]]
LIVE = f"/v1/shipments/{RECORD.shipment_id}/live"
SHIPPER = "shipper.chengdu-elec"
ENTITLED = [
    "mto.westcorridor", "shipper.chengdu-elec", "consignee.johor-assembly", "insurer.picc",
    "carrier.sc-road", "carrier.cr-rail", "carrier.oceanline", "carrier.my-haulage",
]
POLL_S = 0.5  # the reader's default round
WINDOW_S = 3.0


async def test_a_sixth_live_view_for_one_party_is_refused_with_429(hub_settings: NewSettings) -> None:
    settings = await hub_settings()
    async with served(settings) as app:
        opened = [await app.client.get(LIVE, headers=auth(SHIPPER)) for _ in range(5)]
        try:
            assert [r.status for r in opened] == [200] * 5
            async with app.client.get(LIVE, headers=auth(SHIPPER)) as sixth:
                body = await sixth.json() if sixth.status != 200 else {}
                print(f"the sixth live view of one party: {sixth.status} {body} Retry-After={sixth.headers.get('Retry-After')}")
                assert (sixth.status, body.get("error")) == (429, "too_many_streams")
                assert int(sixth.headers["Retry-After"]) >= 1
            opened.pop().close()  # one closed: the party may open another
            await asyncio.sleep(0.2)
            again = await app.client.get(LIVE, headers=auth(SHIPPER))
            opened.append(again)
            assert again.status == 200
        finally:
            for response in opened:
                response.close()


async def test_two_dozen_live_views_share_one_change_feed(hub_settings: NewSettings) -> None:
    settings = await hub_settings()
    async with served(settings) as app:
        streams: list[Any] = []
        try:
            for party in ENTITLED:
                for _ in range(3):
                    response = await app.client.get(LIVE, headers=auth(party))
                    assert response.status == 200
                    first = await next_event(response.content)
                    assert first is not None and first.id == str(RECORD.version)
                    streams.append(response)
            before = sum(app.store.calls.values())
            await asyncio.sleep(WINDOW_S)
            queries = sum(app.store.calls.values()) - before
            rounds = WINDOW_S / POLL_S
            print(f"{len(streams)} live views over {WINDOW_S:g} s: {queries} reader-store queries ({dict(app.store.calls)})")
            assert queries <= 3 * (rounds + 1)

            # The positive marker: a new version reaches every one of them.
            await project(settings, RECORD.model_copy(update={"version": RECORD.version + 1}))
            news = await asyncio.gather(*(next_event(r.content, timeout=10) for r in streams))
            assert [frame.id if frame else None for frame in news] == [str(RECORD.version + 1)] * len(streams)
        finally:
            for response in streams:
                response.close()
