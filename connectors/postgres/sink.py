"""The Postgres projection: consume `hub.shipment.status` and keep each shipment's latest record and its events.

Each consumed batch is written in one transaction together with the next offset of every partition in it, and
on assignment the consumer seeks to those stored offsets: Postgres, not Kafka's committed offsets, decides where
to resume (connectors.postgres.positions keeps records fetched before that seek out of the writes). Every write
is idempotent (newer versions only, event copies once, offsets only forward), so replaying a batch — after a
crash, a rebalance or a COMMIT whose acknowledgement was lost — changes nothing.

No message stops the sink: one it cannot decode, or whose rows Postgres refuses (NUL in a JSON string, say), is
set aside in the quarantine table in the same transaction as the offsets past it (connectors.postgres.quarantine),
and the batch's other messages are written. A lost database is an outage, not a bad record: it is retried.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable, TypeVar

import asyncpg
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError

from connectors.postgres.db import columns, connect
from connectors.postgres.migrate import migrate
from connectors.postgres.positions import Positions
from connectors.postgres.quarantine import SetAside, bad_record, refused_by_postgres, set_aside
from connectors.postgres.rows import Batch, Message, aside, collect
from hubconf.settings import Settings

log = logging.getLogger(__name__)

T = TypeVar("T")

# What a lost or restarting database looks like to asyncpg: worth a reconnect and a retry, never a crash.
# Class 40 (serialization failure, deadlock) is the database asking for exactly that retry.
TRANSIENT: tuple[type[BaseException], ...] = (
    OSError,  # refused, reset, timed out (TimeoutError is an OSError)
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,  # admin shutdown, pg_terminate_backend, starting up
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.TransactionRollbackError,
)
FIRST_BACKOFF_S = 0.1
MAX_BACKOFF_S = 5.0
POLL_TIMEOUT_MS = 500
CLOSE_TIMEOUT_S = 5.0

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

SAVE_OFFSETS = """
INSERT INTO sink_offsets (consumer, topic, partition, next_offset)
SELECT $1, $2, o.partition, o.next_offset FROM unnest($3::integer[], $4::bigint[]) AS o(partition, next_offset)
ON CONFLICT (consumer, topic, partition) DO UPDATE SET next_offset = EXCLUDED.next_offset
WHERE sink_offsets.next_offset < EXCLUDED.next_offset
"""

LOAD_OFFSETS = """
SELECT partition, next_offset FROM sink_offsets WHERE consumer = $1 AND topic = $2 AND partition = ANY($3::integer[])
"""


def transient(error: BaseException) -> bool:
    """Is this a lost or restarting database, worth a fresh connection and a retry?"""
    if isinstance(error, TRANSIENT):
        return True
    # A connection killed under asyncpg can surface as a client-state error instead ("cannot call
    # Transaction.__aexit__(): the underlying connection is closed", "cannot switch to state ..."). Only these
    # exact types: their subclasses (bad argument encoding, configuration) are bugs a retry would not fix.
    return type(error) in (asyncpg.InterfaceError, asyncpg.exceptions.InternalClientError)


def application_name(settings: Settings) -> str:
    """How the sink's sessions are named in pg_stat_activity: per consumer group, so they can be told apart."""
    return f"mmhub-pg-sink {settings.sink_group}"[:63]


class Stopped(Exception):
    """Raised out of a database retry when the sink is asked to stop while Postgres is still unreachable."""


class Database:
    """One connection, replaced whenever it is lost; every operation retried with capped exponential backoff.

    Callers take turns (the sink's lock), so one connection is enough. An operation is one transaction, so a
    retry starts it over from nothing (or, if the lost reply was a successful COMMIT, repeats an idempotent write).
    """

    def __init__(self, settings: Settings, stop: asyncio.Event, name: str | None = None) -> None:
        self._settings = settings
        self._stop = stop
        self._name = name or application_name(settings)  # how its sessions show in pg_stat_activity
        self._conn: asyncpg.Connection | None = None

    async def run(self, operation: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        delay = FIRST_BACKOFF_S
        while True:
            try:
                if self._conn is None or self._conn.is_closed():
                    self._conn = await connect(self._settings, self._name)
                return await operation(self._conn)
            except Exception as error:
                if not transient(error):
                    raise
                log.warning("Postgres unavailable (%s: %s); retrying in %.1fs", type(error).__name__, error, delay)
                self._discard()
            try:
                await asyncio.wait_for(self._stop.wait(), delay)
            except TimeoutError:
                delay = min(delay * 2, MAX_BACKOFF_S)
                continue
            raise Stopped

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None or conn.is_closed():
            return
        try:
            await conn.close(timeout=CLOSE_TIMEOUT_S)
        except Exception as error:
            if not transient(error):
                raise
            conn.terminate()  # shutting down anyway: the server drops the session on its own

    def _discard(self) -> None:
        """Drop a lost connection without a goodbye: waiting on a dead socket could hang."""
        if self._conn is not None:
            self._conn.terminate()
            self._conn = None


class SeekToStoredOffsets(ConsumerRebalanceListener):
    """On assignment, position each partition at the offset Postgres holds for it, or at the beginning.

    `lock` is shared with the poll loop, so a partition is never seeked while a batch of it is being written.
    """

    def __init__(self, consumer: AIOKafkaConsumer, db: Database, group: str, topic: str) -> None:
        self._consumer = consumer
        self._db = db
        self._group = group
        self._topic = topic
        self.lock = asyncio.Lock()
        self.positions = Positions()
        # aiokafka logs and swallows listener errors; the poll loop re-raises this instead.
        self.error: Exception | None = None

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        # Under the lock: a batch being written finishes first, so the next owner starts after it.
        async with self.lock:
            self.positions.forget([tp.partition for tp in revoked if tp.topic == self._topic])

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        partitions = sorted(tp.partition for tp in assigned if tp.topic == self._topic)
        async with self.lock:
            try:
                rows = await self._db.run(lambda conn: conn.fetch(LOAD_OFFSETS, self._group, self._topic, partitions))
            except Stopped:
                return  # left unsettled: the poll loop writes nothing of these partitions
            except Exception as error:
                self.error = error
                raise
            stored = {row["partition"]: row["next_offset"] for row in rows}
            for partition, offset in stored.items():
                self._consumer.seek(TopicPartition(self._topic, partition), offset)
            fresh = [TopicPartition(self._topic, p) for p in partitions if p not in stored]
            if fresh:
                await self._consumer.seek_to_beginning(*fresh)
            for partition in partitions:
                self.positions.settle(partition, stored.get(partition, 0))
        log.info("%s: resuming at stored offsets %s, from the beginning on %s", self._topic, stored, fresh)


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
    stop = stop or asyncio.Event()
    topic = settings.topics.status
    group = settings.sink_group
    db = Database(settings, stop)  # connects on first use: a database down at start is just another outage
    consumer = AIOKafkaConsumer(
        **settings.kafka_client(),
        group_id=group,
        client_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        # a fetch naming only quiet partitions must not hold the busy ones back (see worker.fetching)
        fetch_max_wait_ms=settings.fetch_max_wait_ms,
    )
    listener = SeekToStoredOffsets(consumer, db, group, topic)
    try:
        await db.run(lambda conn: migrate(conn, settings.pg_schema))
        consumer.subscribe([topic], listener=listener)
        await consumer.start()
        while not stop.is_set():
            polled_at = listener.positions.clock
            fetched = await consumer.getmany(timeout_ms=POLL_TIMEOUT_MS, max_records=max_records)
            if listener.error is not None:
                raise listener.error
            if stop.is_set():
                break  # not written, so not lost: a restart reads it again from the stored offsets
            async with listener.lock:
                admitted = listener.positions.admit(polled_at, [m for records in fetched.values() for m in records])
                for partition, offset in admitted.reseek.items():
                    consumer.seek(TopicPartition(topic, partition), offset)
                if not admitted.messages:
                    continue
                batch = collect(admitted.messages)
                await _write_or_set_aside(db, admitted.messages, batch, group, topic)
                listener.positions.advance(batch.next_offsets)
            # Told as soon as Postgres has it (a reader polling Postgres may already see it), before the Kafka
            # commit, which is for lag monitoring only.
            if on_batch is not None:
                on_batch(batch.messages)
            await _commit_to_kafka(consumer, topic, batch)
    except Stopped:
        log.info("stopped while Postgres was unreachable; the unwritten batch will be read again on restart")
    finally:
        await consumer.stop()
        await db.close()


async def _write_or_set_aside(
    db: Database, messages: list[Message], batch: Batch, group: str, topic: str
) -> None:
    """Write the batch; if Postgres refuses a record of it, write it again message by message, setting aside
    each message Postgres refuses, so the batch's good records still land."""
    try:
        await db.run(lambda conn: _write(conn, batch, group, topic))
        return
    except Exception as error:
        if not bad_record(error):
            raise
        log.warning("Postgres refused a record of a batch of %d (%s); writing them one by one", len(messages), error)
    await db.run(lambda conn: _write_each(conn, messages, batch.next_offsets, group, topic))


async def _write(conn: asyncpg.Connection, batch: Batch, group: str, topic: str) -> None:
    """One transaction: the records, their events, the set-aside messages and the offsets read up to stand or
    fall together."""
    async with conn.transaction():
        await write_rows(conn, batch)
        await set_aside(conn, "sink", group, batch.set_aside)
        await conn.execute(SAVE_OFFSETS, group, topic, list(batch.next_offsets), list(batch.next_offsets.values()))


async def _write_each(
    conn: asyncpg.Connection, messages: list[Message], next_offsets: dict[int, int], group: str, topic: str
) -> None:
    """One transaction, each message's rows in a savepoint of their own: a refused one is rolled back to it and
    set aside, the others stay."""
    refused: list[SetAside] = []
    async with conn.transaction():
        for message in messages:
            single = collect([message])
            refused += single.set_aside
            try:
                async with conn.transaction():  # a savepoint
                    await write_rows(conn, single)
            except Exception as error:
                if not bad_record(error):
                    raise
                log.warning("set aside %s[%d]@%d: %s", topic, message.partition, message.offset, error)
                refused.append(aside(message, refused_by_postgres(error)))
        await set_aside(conn, "sink", group, refused)
        await conn.execute(SAVE_OFFSETS, group, topic, list(next_offsets), list(next_offsets.values()))


async def write_rows(conn: asyncpg.Connection, batch: Batch) -> None:
    """The batch's shipment and event rows, in the caller's transaction (the offsets are the caller's too)."""
    if batch.shipments:
        shipment_columns = ("shipment_id", "status", "shipper", "mto", "version", "updated_at", "record")
        await conn.execute(UPSERT_SHIPMENTS, *columns(batch.shipments, *shipment_columns))
    if batch.events:
        event_columns = (
            "shipment_id", "event_key", "fingerprint", "event_type", "occurred_at", "recorded_at", "record_version", "event"
        )
        await conn.execute(INSERT_EVENTS, *columns(batch.events, *event_columns))


async def _commit_to_kafka(consumer: AIOKafkaConsumer, topic: str, batch: Batch) -> None:
    """Mirror the stored offsets into Kafka, so lag tools see progress.

    Postgres stays the record of where to resume, so a failed commit (say, the partition moved in a rebalance)
    is only worth a warning.
    """
    assigned = consumer.assignment()
    offsets = {TopicPartition(topic, p): offset for p, offset in batch.next_offsets.items()}
    offsets = {tp: offset for tp, offset in offsets.items() if tp in assigned}
    if not offsets:
        return
    try:
        await consumer.commit(offsets)
    except KafkaError as error:
        log.warning("could not mirror offsets %s to Kafka: %s", batch.next_offsets, error)


async def replay(conn: asyncpg.Connection, message: Message) -> str | None:
    """Write one quarantined status message's rows (in the caller's transaction; stored offsets untouched).
    None once written, else why it is still refused."""
    batch = collect([message])
    if batch.set_aside:
        return batch.set_aside[0].reason
    try:
        async with conn.transaction():  # a savepoint: a refusal leaves the caller's transaction usable
            await write_rows(conn, batch)
    except Exception as error:
        if not bad_record(error):
            raise
        return refused_by_postgres(error)
    return None
