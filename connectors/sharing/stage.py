"""The Kafka share stage: read `hub.shipment.status`, send each party what the sharing policy lets it see on
`hub.share.<audience>` (keyed by party), and audit every share in Postgres (`share_audit`) and on `hub.audit`.

It is a stage of runtime.stored_offsets. Per consumed batch, in the loop's transaction: plan
(connectors.sharing.plan), produce and wait for Kafka's acknowledgements, then write the audit rows, what was shared
(`share_versions`, `share_claims`) and an outbox row per new audit row; the loop stores the consumed offsets in that
same transaction. Then the outbox is published to `hub.audit`. As in connectors.postgres.sink, Postgres decides
where to resume. A crash after the produce and before the commit sends that batch's messages again on restart
(each carries its `share_id`, so a consumer can tell) but audits them once: share ids are deterministic. A status
message the stage cannot decode, or whose audit Postgres refuses, is set aside in the quarantine table in the
batch's transaction, and the batch's other records are shared.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable, Sequence

import asyncpg
import orjson
from aiokafka import AIOKafkaProducer
from pydantic import ValidationError

from connectors.kafka import ensure_share_topics
from connectors.postgres.db import connect
from connectors.postgres.migrate import migrate
from connectors.postgres.rows import MalformedStatus
from connectors.sharing.chain import append_with_outbox
from connectors.sharing.plan import ClaimSlot, Outgoing, Planned, plan_batch
from hubconf.settings import Settings
from runtime.api import Record
from runtime.stored_offsets import Database, PostgresStage, SetAside, run_stored_offsets, write_one
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


def decode(message: Record) -> ShipmentRecord | SetAside:
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
        log.error("%s set aside: %s", message.where, error)
        return SetAside(message, f"malformed status message: {error}")


@dataclass
class Sharing:
    """The stage's write: shares a batch of status messages and audits them, through `producer`."""

    settings: Settings
    producer: AIOKafkaProducer
    made: set[str] = field(default_factory=set)  # share topics known to exist
    # The shares Kafka has acknowledged for the batch in hand, whose transaction has not committed yet: when the
    # loop writes the batch again (a lost database, a record Postgres refused), they are audited, not sent again.
    sent: set[str] = field(default_factory=set)

    async def write(self, conn: asyncpg.Connection, records: Sequence[Record]) -> list[SetAside]:
        """In the caller's transaction: plan the records' shares from what was shared before, deliver them, and
        write their audit and what was shared. Returns the messages it could not decode."""
        decoded = [decode(record) for record in records]
        found = [r for r in decoded if isinstance(r, ShipmentRecord)]
        shared = await _load(conn, sorted({record.shipment_id for record in found}))
        planned = plan_batch(found, shared.grants, shared.versions, shared.claims, datetime.now(timezone.utc))
        unsent = [m for m in planned.messages if m.share.share_id not in self.sent]
        await _deliver(self.producer, self.settings, unsent, self.made)
        self.sent.update(m.share.share_id for m in unsent)
        await _write(conn, planned)
        return [r for r in decoded if isinstance(r, SetAside)]


def stage(settings: Settings, sharing: Sharing) -> PostgresStage:
    async def setup(db: Database) -> None:
        await db.run(lambda conn: migrate(conn, settings.pg_schema))

    async def between(db: Database) -> None:
        sharing.sent.clear()  # the batch, if any, is committed: its shares are audited
        # also when idle: the webhook dispatcher fills the audit outbox too; first, what a crash left behind
        await _publish_audit(db, sharing.producer, settings)

    return PostgresStage(
        name="share",
        group=share_group(settings),
        write=sharing.write,
        connect=lambda: connect(settings, application_name(settings)),
        topics=(settings.topics.status,),
        setup=setup,
        between=between,
    )


async def run_share(
    settings: Settings,
    stop: asyncio.Event | None = None,
    on_batch: Callable[[int], object] | None = None,
    max_records: int | None = 200,
) -> None:
    """Share `settings.topics.status` with the parties until `stop` is set.

    Migrates the schema first. `on_batch` is called with the number of status messages in each batch once its
    shares are delivered and audited. Sets aside a message it cannot decode; raises KafkaError when a share cannot
    be delivered (nothing of that batch is audited; a restart sends it again); rides out Postgres outages by
    retrying.
    """
    producer = AIOKafkaProducer(
        **settings.kafka_client(), client_id=share_group(settings), acks="all", enable_idempotence=True, linger_ms=5
    )
    try:
        await producer.start()  # inside the try: a broker that cannot be reached still closes the producer
        sharing = Sharing(settings, producer)
        await run_stored_offsets(settings, stage(settings, sharing), stop or asyncio.Event(), on_batch, max_records)
    finally:
        await producer.stop()


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


async def _write(conn: asyncpg.Connection, planned: Planned) -> None:
    """In the caller's transaction: the audit rows, chained (and their outbox rows), and what was shared."""
    shares = [m.share for m in planned.messages]
    claims = sorted(planned.claims.items())
    versions = sorted(planned.versions.items())
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


async def replay(conn: asyncpg.Connection, settings: Settings, record: Record) -> str | None:
    """Share one quarantined status message (in the caller's transaction; stored offsets untouched): plan, deliver,
    audit. None once shared (its audit rows reach hub.audit with the stage's next flush), else why it is refused."""
    producer = AIOKafkaProducer(**settings.kafka_client(acks="all", enable_idempotence=True))
    try:
        await producer.start()
        return await write_one(conn, Sharing(settings, producer).write, record)
    finally:
        await producer.stop()
