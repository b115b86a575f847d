"""The Kafka share stage: read `hub.shipment.status`, send each party what the sharing policy lets it see on
`hub.share.<audience>` (keyed by party), and audit every share in Postgres (`share_audit`) and on `hub.audit`.

Per consumed batch: plan (connectors.sharing.plan), produce and wait for Kafka's acknowledgements, then write in
one transaction the audit rows, what was shared (`share_versions`, `share_claims`), the consumed offsets and an
outbox row per new audit row; then publish the outbox to `hub.audit`. As in connectors.postgres.sink, Postgres
decides where to resume. A crash after the produce and before the commit sends that batch's messages again on
restart (each carries its `share_id`, so a consumer can tell) but audits them once: share ids are deterministic.
A status message the stage cannot decode is set aside in the quarantine table in the batch's transaction, and the
batch's other records are shared.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable

import asyncpg
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError
from pydantic import ValidationError

from connectors.kafka import ensure_share_topics
from connectors.postgres.migrate import migrate
from connectors.postgres.quarantine import SetAside, set_aside
from connectors.postgres.rows import MalformedStatus, Message, aside
from connectors.postgres.sink import POLL_TIMEOUT_MS, SAVE_OFFSETS, Database, SeekToStoredOffsets, Stopped
from connectors.sharing.chain import append_with_outbox
from connectors.sharing.plan import ClaimSlot, Outgoing, Planned, plan_batch
from hubconf.settings import Settings
from schemas.record import ShipmentRecord
from streams.codec import describe
from streams.sharing import Grant

log = logging.getLogger(__name__)

OUTBOX_BATCH = 500


def share_group(settings: Settings) -> str:
    """The stage's consumer group, and its key in `sink_offsets`."""
    return f"{settings.app_id}.share"


def application_name(settings: Settings) -> str:
    return f"mmhub-share {share_group(settings)}"[:63]


LOAD_GRANTS = """
SELECT grant_id, shipment_id, grantor, grantee, grades, granted_at, expires_at, revoked_at
FROM grants WHERE shipment_id = ANY($1::text[])
"""
LOAD_VERSIONS = "SELECT shipment_id, version FROM share_versions WHERE shipment_id = ANY($1::text[])"
LOAD_CLAIMS = "SELECT party, claim_id, digest FROM share_claims WHERE shipment_id = ANY($1::text[])"

SAVE_VERSIONS = """
INSERT INTO share_versions (shipment_id, version)
SELECT * FROM unnest($1::text[], $2::bigint[])
ON CONFLICT (shipment_id) DO UPDATE SET version = EXCLUDED.version, shared_at = now()
WHERE share_versions.version < EXCLUDED.version
"""

SAVE_CLAIMS = """
INSERT INTO share_claims (party, claim_id, shipment_id, record_version, digest)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[])
ON CONFLICT (party, claim_id) DO UPDATE SET
    shipment_id = EXCLUDED.shipment_id, record_version = EXCLUDED.record_version, digest = EXCLUDED.digest
WHERE share_claims.record_version <= EXCLUDED.record_version
"""

# SKIP LOCKED: two stages flushing at once each take different rows instead of both sending the same ones.
TAKE_OUTBOX = "SELECT seq, party, document FROM share_audit_outbox ORDER BY seq LIMIT $1 FOR UPDATE SKIP LOCKED"
CLEAR_OUTBOX = "DELETE FROM share_audit_outbox WHERE seq = ANY($1::bigint[])"


@dataclass(frozen=True)
class Shared:
    """What was shared before, for the shipments of one batch."""

    grants: dict[str, list[Grant]]
    versions: dict[str, int]
    claims: dict[ClaimSlot, str]


def decode(message: Message) -> ShipmentRecord | SetAside:
    """The record a status message carries; set aside if it is not one the hub could have written."""
    try:
        if message.value is None:
            raise MalformedStatus("tombstone (no value): the hub never deletes a shipment's status")
        try:
            document = orjson.loads(message.value)
        except orjson.JSONDecodeError as error:
            raise MalformedStatus(f"not JSON: {error}") from None
        if not isinstance(document, dict) or not isinstance(document.get("record"), dict):
            raise MalformedStatus("expected an object holding 'record'")
        try:
            # from JSON, as written: the strict model takes decimals and times only as JSON strings
            record = ShipmentRecord.model_validate_json(orjson.dumps(document["record"]))
        except ValidationError as error:
            raise MalformedStatus(f"record: {describe(error)}") from None
        if message.key != record.shipment_id.encode():
            raise MalformedStatus(f"key {message.key!r} is not the record's shipment_id {record.shipment_id!r}")
        return record
    except MalformedStatus as error:
        log.error("%s[%d]@%d set aside: %s", message.topic, message.partition, message.offset, error)
        return aside(message, f"malformed status message: {error}")


async def run_share(
    settings: Settings,
    stop: asyncio.Event | None = None,
    on_batch: Callable[[int], object] | None = None,
    max_records: int | None = 200,
) -> None:
    """Share `settings.topics.status` with the parties until `stop` is set.

    Migrates the schema first. `on_batch` is called with the number of status messages in each batch once its
    shares are delivered and audited. Sets aside a message it cannot decode; raises KafkaError when a share cannot be delivered (nothing of that batch is audited; a restart sends it again);
    rides out Postgres outages by retrying.
    """
    stop = stop or asyncio.Event()
    topic = settings.topics.status
    group = share_group(settings)
    db = Database(settings, stop, application_name(settings))
    consumer = AIOKafkaConsumer(
        **settings.kafka_client(),
        group_id=group,
        client_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        # a fetch naming only quiet partitions must not hold the busy ones back (see worker.fetching)
        fetch_max_wait_ms=settings.fetch_max_wait_ms,
    )
    producer = AIOKafkaProducer(
        **settings.kafka_client(), client_id=group, acks="all", enable_idempotence=True, linger_ms=5
    )
    listener = SeekToStoredOffsets(consumer, db, group, topic)
    made: set[str] = set()  # share topics known to exist
    try:
        await db.run(lambda conn: migrate(conn, settings.pg_schema))
        await producer.start()
        await _publish_audit(db, producer, settings)  # what a crash left between the commit and hub.audit
        consumer.subscribe([topic], listener=listener)
        await consumer.start()
        while not stop.is_set():
            polled_at = listener.positions.clock
            fetched = await consumer.getmany(timeout_ms=POLL_TIMEOUT_MS, max_records=max_records)
            if listener.error is not None:
                raise listener.error
            if stop.is_set():
                break  # not shared, so not lost: a restart reads it again from the stored offsets
            async with listener.lock:
                admitted = listener.positions.admit(polled_at, [m for records in fetched.values() for m in records])
                for partition, offset in admitted.reseek.items():
                    consumer.seek(TopicPartition(topic, partition), offset)
                if not admitted.messages:
                    # idle: still drain the audit outbox, which the webhook dispatcher fills too
                    await _publish_audit(db, producer, settings)
                    continue
                decoded = [decode(message) for message in admitted.messages]
                records = [r for r in decoded if isinstance(r, ShipmentRecord)]
                malformed = [r for r in decoded if isinstance(r, SetAside)]
                next_offsets: dict[int, int] = {}
                for message in admitted.messages:
                    next_offsets[message.partition] = max(next_offsets.get(message.partition, 0), message.offset + 1)
                shipments = sorted({record.shipment_id for record in records})
                shared = await db.run(lambda conn: _load(conn, shipments))
                planned = plan_batch(records, shared.grants, shared.versions, shared.claims, datetime.now(timezone.utc))
                await _deliver(producer, settings, planned.messages, made)
                await db.run(lambda conn: _write(conn, planned, group, topic, next_offsets, malformed))
                listener.positions.advance(next_offsets)
            if on_batch is not None:
                on_batch(len(decoded))
            await _publish_audit(db, producer, settings)
            await _mirror_offsets(consumer, topic, next_offsets)
        await _publish_audit(db, producer, settings)
    except Stopped:
        log.info("stopped while Postgres was unreachable; the unaudited batch will be read and sent again on restart")
    finally:
        await consumer.stop()
        await producer.stop()
        await db.close()


async def _load(conn: asyncpg.Connection, shipments: list[str]) -> Shared:
    grants: dict[str, list[Grant]] = {}
    for row in await conn.fetch(LOAD_GRANTS, shipments):
        try:
            grant = Grant.model_validate(dict(row))
        except ValidationError as error:
            # Deny by default: a grant the hub cannot read grants nothing, and the operator is told.
            log.error("ignoring grant %s of %s: %s", row["grant_id"], row["shipment_id"], describe(error))
            continue
        grants.setdefault(grant.shipment_id, []).append(grant)
    versions = {row["shipment_id"]: row["version"] for row in await conn.fetch(LOAD_VERSIONS, shipments)}
    claims = {(row["party"], row["claim_id"]): row["digest"] for row in await conn.fetch(LOAD_CLAIMS, shipments)}
    return Shared(grants, versions, claims)


async def _deliver(producer: AIOKafkaProducer, settings: Settings, messages: list[Outgoing], made: set[str]) -> None:
    """Send every message to its party's topic (created first if `made` does not hold it yet) and wait until Kafka
    has acknowledged them all."""
    topics = [settings.topics.share(m.audience, m.party) for m in messages]
    new = set(topics) - made
    if new:
        await ensure_share_topics(settings, sorted(new))
        made.update(new)
    futures = [await producer.send(topic, value=m.value, key=m.key) for topic, m in zip(topics, messages, strict=True)]
    await asyncio.gather(*futures)


async def _write(
    conn: asyncpg.Connection,
    planned: Planned,
    group: str,
    topic: str,
    next_offsets: dict[int, int],
    malformed: list[SetAside],
) -> None:
    """One transaction: the audit rows, chained (and their outbox rows), what was shared, the messages set aside,
    and the offsets read up to."""
    shares = [m.share for m in planned.messages]
    claims = sorted(planned.claims.items())
    versions = sorted(planned.versions.items())
    async with conn.transaction():
        if shares:
            await append_with_outbox(conn, shares)  # first: the chain head is the lock every auditor takes
        if versions:
            await conn.execute(SAVE_VERSIONS, [sid for sid, _ in versions], [v for _, v in versions])
        if claims:
            await conn.execute(
                SAVE_CLAIMS,
                [party for (party, _), _ in claims],
                [claim_id for (_, claim_id), _ in claims],
                [sent.shipment_id for _, sent in claims],
                [sent.version for _, sent in claims],
                [sent.digest for _, sent in claims],
            )
        await set_aside(conn, "share", group, malformed)
        await conn.execute(SAVE_OFFSETS, group, topic, list(next_offsets), list(next_offsets.values()))


async def _publish_audit(db: Database, producer: AIOKafkaProducer, settings: Settings) -> None:
    """Send the outbox to `hub.audit` (keyed by party), oldest first, removing each row once Kafka has it."""

    async def flush(conn: asyncpg.Connection) -> int:
        async with conn.transaction():
            rows = await conn.fetch(TAKE_OUTBOX, OUTBOX_BATCH)
            if rows:
                futures = [
                    await producer.send(settings.topics.audit, value=row["document"].encode(), key=row["party"].encode())
                    for row in rows
                ]
                await asyncio.gather(*futures)
                await conn.execute(CLEAR_OUTBOX, [row["seq"] for row in rows])
        return len(rows)

    while await db.run(flush) == OUTBOX_BATCH:
        pass


async def _mirror_offsets(consumer: AIOKafkaConsumer, topic: str, next_offsets: dict[int, int]) -> None:
    """Mirror the stored offsets into Kafka for lag tools; Postgres stays the record, so a failure only warns."""
    assigned = consumer.assignment()
    offsets = {TopicPartition(topic, p): o for p, o in next_offsets.items() if TopicPartition(topic, p) in assigned}
    if not offsets:
        return
    try:
        await consumer.commit(offsets)
    except KafkaError as error:
        log.warning("could not mirror offsets %s to Kafka: %s", next_offsets, error)


async def replay(conn: asyncpg.Connection, settings: Settings, message: Message) -> str | None:
    """Share one quarantined status message (in the caller's transaction; stored offsets untouched): plan, deliver,
    audit. None once shared (its audit rows reach hub.audit with the stage's next flush), else why it is refused."""
    found = decode(message)
    if isinstance(found, SetAside):
        return found.reason
    shared = await _load(conn, [found.shipment_id])
    planned = plan_batch([found], shared.grants, shared.versions, shared.claims, datetime.now(timezone.utc))
    producer = AIOKafkaProducer(**settings.kafka_client(acks="all", enable_idempotence=True))
    await producer.start()
    try:
        await _deliver(producer, settings, planned.messages, set())
    finally:
        await producer.stop()
    await _write(conn, planned, share_group(settings), settings.topics.status, {}, [])
    return None
