"""The gateway's receipts in Postgres (`gateway_receipts`): which exact event copies it has already published.

A copy is identified by (source, event_id, fingerprint), so a revision of an event (same id, new content) is a
new copy and is published, while a re-sent copy is answered as a duplicate without reaching Kafka again.
"""

from __future__ import annotations

import uuid
from typing import Awaitable, Callable, Sequence, TypeVar, cast

import asyncpg

from connectors.gateway.intake import Identity, Receipt, Unavailable
from connectors.postgres.db import connect_options
from hubconf.settings import Settings
from runtime.stored_offsets import transient

T = TypeVar("T")

QUERY_TIMEOUT_S = 5.0
ACQUIRE_TIMEOUT_S = 5.0

SEEN = """
SELECT r.source, r.event_id, r.fingerprint
FROM gateway_receipts r
JOIN unnest($1::text[], $2::text[], $3::text[]) AS wanted(source, event_id, fingerprint)
  USING (source, event_id, fingerprint)
"""

RECORD = """
INSERT INTO gateway_receipts (source, event_id, fingerprint, received_at, request_id, routed_to)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::uuid[], $6::text[])
ON CONFLICT DO NOTHING
RETURNING source, event_id, fingerprint
"""


class PostgresReceipts:
    """Receipts in the settings' schema, through a small connection pool; a lost database raises Unavailable."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @classmethod
    async def open(cls, settings: Settings, max_size: int = 10) -> PostgresReceipts:
        return cls(await open_pool(settings, "mmhub-gateway", max_size))

    async def close(self) -> None:
        await self._pool.close()

    async def seen(self, identities: Sequence[Identity]) -> set[Identity]:
        """One query for a whole request, however many events it holds."""
        if not identities:
            return set()

        async def query(conn: asyncpg.Connection) -> set[Identity]:
            rows = await conn.fetch(SEEN, *(list(column) for column in zip(*identities)))
            return {(row["source"], row["event_id"], row["fingerprint"]) for row in rows}

        return await self._run(query)

    async def record(self, receipts: Sequence[Receipt]) -> list[bool]:
        """Insert the receipts in one statement; for each, whether it is new (False: another request was first)."""
        if not receipts:
            return []

        async def insert(conn: asyncpg.Connection) -> list[bool]:
            rows = await conn.fetch(
                RECORD,
                [r.source for r in receipts],
                [r.event_id for r in receipts],
                [r.fingerprint for r in receipts],
                [r.received_at for r in receipts],
                [uuid.UUID(r.request_id) for r in receipts],
                [r.routed_to for r in receipts],
            )
            inserted = {(row["source"], row["event_id"], row["fingerprint"]) for row in rows}
            return [(r.source, r.event_id, r.fingerprint) in inserted for r in receipts]

        return await self._run(insert)

    async def ready(self) -> bool:
        async def ping(conn: asyncpg.Connection) -> bool:
            return bool(await conn.fetchval("SELECT true"))

        try:
            return await self._run(ping)
        except Unavailable:
            return False

    async def _run(self, operation: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        return await pooled(self._pool, operation)


async def open_pool(settings: Settings, application_name: str, max_size: int = 10) -> asyncpg.Pool:
    """A small pool in the settings' schema, with the gateway's timeouts."""
    return await asyncpg.create_pool(
        settings.pg_dsn,
        min_size=1,
        max_size=max_size,
        command_timeout=QUERY_TIMEOUT_S,
        **connect_options(settings, application_name),
    )


async def pooled(pool: asyncpg.Pool, operation: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
    """Run `operation` on a pooled connection; a lost or slow database raises Unavailable (the caller answers 503)."""
    try:
        async with pool.acquire(timeout=ACQUIRE_TIMEOUT_S) as conn:
            return await operation(cast(asyncpg.Connection, conn))  # a pool's proxy of its connection
    except Exception as error:
        if transient(error):  # TimeoutError (pool or command timeout) is an OSError
            raise Unavailable(f"Postgres did not answer: {error!r}") from error
        raise
