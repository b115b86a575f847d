"""The Postgres projection: consume `hub.shipment.status` and keep each shipment's latest record and its events.

The sink is a stage of runtime.stored_offsets: each consumed batch is written in one transaction together with
the next offset of every partition in it, and Postgres, not Kafka, decides where to resume. Every write here is
idempotent (newer versions only, event copies once), so replaying a batch — after a crash, a rebalance or a
COMMIT whose acknowledgement was lost — changes nothing.

No message stops the sink: one it cannot decode (connectors.postgres.rows), or whose rows Postgres refuses (NUL
in a JSON string, say), is set aside in the quarantine table in the same transaction as the offsets past it, and
the batch's other messages are written. A lost database is an outage, not a bad record: it is retried.
"""

from __future__ import annotations

import asyncio
from typing import Callable, Sequence

import asyncpg

from connectors.postgres.db import columns, connect
from connectors.postgres.migrate import migrate
from connectors.postgres.rows import ShipmentRow, collect
from hubconf.settings import Settings
from runtime.api import Record
from runtime.metrics import PUBLISH_TO_STATUS_SECONDS
from runtime.stored_offsets import Database, PostgresStage, SetAside, run_stored_offsets, write_one

UPSERT_SHIPMENTS = """
INSERT INTO shipments (shipment_id, status, shipper, mto, version, updated_at, record)
SELECT s.shipment_id, s.status, s.shipper, s.mto, s.version, s.updated_at, s.record::jsonb
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::timestamptz[], $7::text[])
    AS s(shipment_id, status, shipper, mto, version, updated_at, record)
ON CONFLICT (shipment_id) DO UPDATE SET
    status = EXCLUDED.status, shipper = EXCLUDED.shipper, mto = EXCLUDED.mto, version = EXCLUDED.version,
    updated_at = EXCLUDED.updated_at, record = EXCLUDED.record, projected_at = now()
WHERE shipments.version < EXCLUDED.version
"""

INSERT_EVENTS = """
INSERT INTO shipment_events
    (shipment_id, event_key, fingerprint, event_type, occurred_at, recorded_at, record_version, event)
SELECT e.shipment_id, e.event_key, e.fingerprint, e.event_type, e.occurred_at, e.recorded_at, e.record_version,
    e.event::jsonb
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::timestamptz[], $7::bigint[],
    $8::text[]) AS e(shipment_id, event_key, fingerprint, event_type, occurred_at, recorded_at, record_version, event)
ON CONFLICT DO NOTHING
"""

def application_name(settings: Settings) -> str:
    """How the sink's sessions are named in pg_stat_activity: per consumer group, so they can be told apart."""
    return f"mmhub-pg-sink {settings.sink_group}"[:63]


async def write(conn: asyncpg.Connection, records: Sequence[Record]) -> list[SetAside]:
    """The records' shipment and event rows, in the loop's transaction; the messages that are no status set aside."""
    batch = collect(records)
    if batch.shipments:
        shipment_columns = ("shipment_id", "status", "shipper", "mto", "version", "updated_at", "record")
        await conn.execute(UPSERT_SHIPMENTS, *columns(batch.shipments, *shipment_columns))
    if batch.events:
        event_columns = (
            "shipment_id", "event_key", "fingerprint", "event_type", "occurred_at", "recorded_at", "record_version", "event"
        )
        await conn.execute(INSERT_EVENTS, *columns(batch.events, *event_columns))
    observe_latency(records, batch.shipments)
    return batch.set_aside


def observe_latency(records: Sequence[Record], shipments: Sequence[ShipmentRow]) -> None:
    """Publish -> status, per shipment row written: from the record's updated_at (the latest recorded_at of its
    events, as their senders stated it) to the Kafka timestamp of the status message that carried it (when the
    worker emitted it). The status message carries no input timestamp, so a sender's clock skew shows here, and a
    batch written again after a lost database is observed again."""
    emitted = {record.key: record.timestamp_ms for record in records}  # the last message of a shipment in the batch
    for row in shipments:
        at = emitted.get(row.shipment_id.encode())
        if row.updated_at is not None and at:
            PUBLISH_TO_STATUS_SECONDS.observe(max(0.0, at / 1000 - row.updated_at.timestamp()))


def stage(settings: Settings) -> PostgresStage:
    async def setup(db: Database) -> None:
        await db.run(lambda conn: migrate(conn, settings.pg_schema))

    return PostgresStage(
        name="sink",
        group=settings.sink_group,
        write=write,
        connect=lambda: connect(settings, application_name(settings)),
        topics=(settings.topics.status,),
        setup=setup,
    )


async def run_sink(
    settings: Settings,
    stop: asyncio.Event | None = None,
    on_batch: Callable[[int], object] | None = None,
    max_records: int = 500,
) -> None:
    """Project `settings.topics.status` into `settings.pg_schema` until `stop` is set.

    Migrates the schema first. `on_batch` is called with the number of status messages in each batch
    once that batch is committed to Postgres. Sets aside a message it cannot decode or write (see the module's
    docstring); rides out Postgres outages by retrying the same batch, so nothing is lost or skipped.
    """
    await run_stored_offsets(settings, stage(settings), stop or asyncio.Event(), on_batch, max_records)


async def replay(conn: asyncpg.Connection, record: Record) -> str | None:
    """Write one quarantined status message's rows (in the caller's transaction; stored offsets untouched).
    None once written, else why it is still refused."""
    return await write_one(conn, write, record)
