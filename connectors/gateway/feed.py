"""One change feed per gateway process for every live view: a single poller reads, each round, the projected version
and the grants of every shipment some stream follows, fetches the changed records once, then wakes the streams.

So Postgres sees at most three queries a round however many streams are open, and the streams per caller and in
all are capped (`StreamCaps`), each refusal a 429 the caller can act on.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import AsyncIterator

from connectors.gateway.access import Grants, Refusal, Shipments
from connectors.gateway.intake import Unavailable
from schemas.record import ShipmentRecord
from streams.sharing import Grant

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StreamCaps:
    per_party: int = 5
    total: int = 500


@dataclass(frozen=True)
class Snapshot:
    """What the last round found for one shipment: its record (None once the projection no longer holds it), every
    grant on it, and the error when the round could not read them."""

    record: ShipmentRecord | None
    grants: list[Grant]
    failed: Unavailable | None = None


class ChangeFeed:
    def __init__(self, shipments: Shipments, grants: Grants, poll_s: float, caps: StreamCaps = StreamCaps()) -> None:
        self.shipments = shipments
        self.grants = grants
        self.poll_s = poll_s
        self.caps = caps
        self.rounds = 0
        self._streams: Counter[str] = Counter()  # open streams per party
        self._followed: Counter[str] = Counter()  # open streams per shipment
        self._latest: dict[str, Snapshot] = {}
        self._round = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def refuse(self, party: str) -> Refusal | None:
        """Why `party` may not open one more stream now, or None."""
        if self._streams[party] >= self.caps.per_party:
            reason = f"you have {self.caps.per_party} live views open, the most a party may; close one first"
            return Refusal(429, "too_many_streams", reason)
        if sum(self._streams.values()) >= self.caps.total:
            return Refusal(429, "too_many_streams", "the gateway serves as many live views as it can; try again later")
        return None

    @asynccontextmanager
    async def follow(self, party: str, record: ShipmentRecord, grants: list[Grant]) -> AsyncIterator[None]:
        """Count one stream of `party` on `record`'s shipment while inside (the caller checked `refuse` first)."""
        shipment_id = record.shipment_id
        self._streams[party] += 1
        self._followed[shipment_id] += 1
        self._latest.setdefault(shipment_id, Snapshot(record, grants))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run())
        try:
            yield
        finally:
            self._streams[party] -= 1
            self._followed[shipment_id] -= 1
            if not self._streams[party]:
                del self._streams[party]
            if not self._followed[shipment_id]:
                del self._followed[shipment_id]
                self._latest.pop(shipment_id, None)
            if not self._followed and self._task is not None:
                self._task.cancel()  # nothing left to poll for; the next stream starts a new poller
                self._task = None

    async def next_round(self) -> None:
        await self._round.wait()

    def latest(self, shipment_id: str) -> Snapshot:
        return self._latest[shipment_id]

    async def _run(self) -> None:
        while self._followed:
            await asyncio.sleep(self.poll_s)
            try:
                await self._poll(list(self._followed))
            except Exception as error:  # noqa: BLE001 - the streams end with the reason; the feed goes on
                log.warning("live views' change feed: %r", error)
                failed = error if isinstance(error, Unavailable) else Unavailable(f"the change feed failed: {error!r}")
                for shipment_id, snapshot in self._latest.items():
                    self._latest[shipment_id] = Snapshot(snapshot.record, snapshot.grants, failed)
            self.rounds += 1
            finished, self._round = self._round, asyncio.Event()
            finished.set()

    async def _poll(self, followed: list[str]) -> None:
        versions = await self.shipments.versions(followed)
        grants = await self.grants.for_shipments(followed)
        held = {sid: self._latest[sid].record for sid in followed if sid in self._latest}
        changed = [
            sid for sid, version in versions.items()
            if (record := held.get(sid)) is None or version > record.version
        ]
        records = await self.shipments.records(changed) if changed else {}
        for sid in followed:
            if sid not in self._latest:
                continue  # its last stream closed while we read
            record = records.get(sid, held.get(sid)) if sid in versions else None
            self._latest[sid] = Snapshot(record, grants.get(sid, []))
