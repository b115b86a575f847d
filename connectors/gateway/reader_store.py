"""The reader routes' Postgres side: the projected record, the `grants` table and the `share_audit` log.

One small pool; a lost or slow database raises Unavailable, which the gateway answers with 503.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Awaitable, Callable, Sequence, TypeVar

import asyncpg

from connectors.gateway.access import DisclosureLine
from connectors.gateway.receipts import open_pool, pooled
from connectors.sharing.chain import append
from hubconf.settings import Settings
from schemas.record import ShipmentRecord
from streams.sharing import Grant, Share

T = TypeVar("T")

GRANT_COLUMNS = "grant_id, shipment_id, grantor, grantee, grades, granted_at, expires_at, revoked_at"

INSERT_GRANT = f"INSERT INTO grants ({GRANT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"

# An earlier revocation stands: revoking twice keeps the first time, so the audit's "which grant allowed it" holds.
REVOKE = f"UPDATE grants SET revoked_at = COALESCE(revoked_at, $2) WHERE grant_id = $1 RETURNING {GRANT_COLUMNS}"

RECORD_OR_STAND_IN = """
(SELECT true AS hit, record FROM shipments WHERE shipment_id = $1)
UNION ALL
(SELECT false AS hit, record FROM shipments WHERE shipment_id = $2)
LIMIT 1
"""

SUMMARY = """
SELECT party, kind, channel, via_grants, count(*) AS count, max(shared_at) AS last_shared_at,
    array_agg(DISTINCT record_version ORDER BY record_version) FILTER (WHERE record_version IS NOT NULL) AS versions
FROM share_audit WHERE shipment_id = $1
GROUP BY party, kind, channel, via_grants
"""


def _grant(row: asyncpg.Record) -> Grant:
    return Grant.model_validate(dict(row))


class PostgresReaderStore:
    """Implements connectors.gateway.access's Shipments, Grants and ShareLog on one pool."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._stand_in: str | None = None  # the last shipment a hit read: what a miss reads instead

    @classmethod
    async def open(cls, settings: Settings, max_size: int = 10) -> PostgresReaderStore:
        return cls(await open_pool(settings, "mmhub-gateway-reader", max_size))

    async def close(self) -> None:
        await self._pool.close()

    async def _run(self, operation: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        return await pooled(self._pool, operation)

    # Shipments

    async def record(self, shipment_id: str) -> ShipmentRecord | None:
        # A miss reads, sends and parses the last record a hit read instead (the second branch runs only when the
        # first found nothing), so a missing shipment costs what one the caller may not read does.
        stand_in = self._stand_in or shipment_id
        row = await self._run(lambda c: c.fetchrow(RECORD_OR_STAND_IN, shipment_id, stand_in))
        record = None if row is None else ShipmentRecord.model_validate_json(row["record"])
        if row is None or not row["hit"]:
            return None
        self._stand_in = shipment_id
        return record

    async def records(self, shipment_ids: Sequence[str]) -> dict[str, ShipmentRecord]:
        query = "SELECT shipment_id, record FROM shipments WHERE shipment_id = ANY($1::text[])"
        rows = await self._run(lambda c: c.fetch(query, list(shipment_ids)))
        return {row["shipment_id"]: ShipmentRecord.model_validate_json(row["record"]) for row in rows}

    async def versions(self, shipment_ids: Sequence[str]) -> dict[str, int]:
        query = "SELECT shipment_id, version FROM shipments WHERE shipment_id = ANY($1::text[])"
        rows = await self._run(lambda c: c.fetch(query, list(shipment_ids)))
        return {row["shipment_id"]: int(row["version"]) for row in rows}

    # Grants

    async def for_shipment(self, shipment_id: str) -> list[Grant]:
        query = f"SELECT {GRANT_COLUMNS} FROM grants WHERE shipment_id = $1 ORDER BY granted_at, grant_id"
        return [_grant(row) for row in await self._run(lambda c: c.fetch(query, shipment_id))]

    async def for_shipments(self, shipment_ids: Sequence[str]) -> dict[str, list[Grant]]:
        query = f"SELECT {GRANT_COLUMNS} FROM grants WHERE shipment_id = ANY($1::text[]) ORDER BY granted_at, grant_id"
        found: dict[str, list[Grant]] = {}
        for row in await self._run(lambda c: c.fetch(query, list(shipment_ids))):
            found.setdefault(row["shipment_id"], []).append(_grant(row))
        return found

    async def get(self, grant_id: str) -> Grant | None:
        query = f"SELECT {GRANT_COLUMNS} FROM grants WHERE grant_id = $1"
        row = await self._run(lambda c: c.fetchrow(query, grant_id))
        return None if row is None else _grant(row)

    async def add(self, grant: Grant) -> None:
        g = grant
        values = (g.grant_id, g.shipment_id, g.grantor, g.grantee, g.grades, g.granted_at, g.expires_at, g.revoked_at)
        await self._run(lambda c: c.execute(INSERT_GRANT, *values))

    async def revoke(self, grant_id: str, at: datetime) -> Grant | None:
        row = await self._run(lambda c: c.fetchrow(REVOKE, grant_id, at))
        return None if row is None else _grant(row)

    # ShareLog

    async def write(self, share: Share, publish: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
        async def append_then_publish(conn: asyncpg.Connection) -> None:
            async with conn.transaction():
                for entry in await append(conn, [share]):
                    await publish(entry)

        await self._run(append_then_publish)

    async def summary(self, shipment_id: str) -> list[DisclosureLine]:
        rows = await self._run(lambda c: c.fetch(SUMMARY, shipment_id))
        return [
            DisclosureLine(
                party=row["party"], kind=row["kind"], channel=row["channel"], count=row["count"],
                last_shared_at=row["last_shared_at"], record_versions=tuple(row["versions"] or ()),
                via_grants=tuple(row["via_grants"] or ()),
            )
            for row in rows
        ]
