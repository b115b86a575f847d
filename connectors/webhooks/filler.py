"""The filler: consume every `hub.share.<audience>` topic and queue each message for its party's matching
subscriptions in `webhook_outbox`.

The filler is a stage of runtime.stored_offsets: as in the Postgres sink, Postgres decides where to resume, and
each batch's outbox rows are written in one transaction with the next offset of every partition in it (offsets in
`sink_offsets`, under the consumer group `<app_id>.webhooks`). A row is unique per (subscription, message key), so
replaying a batch queues nothing twice. A message the filler cannot read, or whose rows Postgres refuses, is set
aside in the quarantine table in that same transaction, and the others go on.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable, Sequence

import asyncpg
import orjson

from connectors.webhooks.notifications import MalformedShare, Shared, Subscription, shared
from connectors.webhooks.sealing import Keyring
from connectors.webhooks.store import WebhookStore, connect, subscription_of
from hubconf.settings import Settings
from runtime.api import Record
from runtime.stored_offsets import PostgresStage, SetAside, run_stored_offsets, write_one

log = logging.getLogger(__name__)

# Filler transactions take turns (in every filler process): a row's seq is then visible only once every lower seq
# is, so the dispatcher, reading in seq order, never sends a later row before an earlier one has committed.
LOCK = "SELECT pg_advisory_xact_lock(hashtextextended('mmhub.webhooks.outbox:' || current_schema(), 0))"
SUBSCRIPTIONS = "SELECT * FROM webhook_subscriptions WHERE active AND party = ANY($1::text[])"
QUEUE = """
INSERT INTO webhook_outbox (subscription_id, message_key, shipment_id, kind, payload, next_attempt_at, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $6)
ON CONFLICT (subscription_id, message_key) DO NOTHING
"""


def group(settings: Settings) -> str:
    return f"{settings.app_id}.webhooks"


def topics(settings: Settings) -> str:
    """The pattern of every party's share topic (the sharing stage creates them as parties appear)."""
    return f"^{re.escape(settings.topics.share_prefix)}.*$"


# How soon a new party's share topic joins the subscription: the consumer's metadata refresh, which matches the
# pattern again (aiokafka's default is 5 minutes).
NEW_TOPICS_MS = 2000


@dataclass(frozen=True)
class Read:
    """A share message as read: what it shares and when it was shared (the Kafka record's timestamp)."""

    share: Shared
    shared_at: datetime


def read(record: Record) -> Read | SetAside | None:
    """The share message in a consumed record; None for a kind webhooks do not carry; set aside if malformed.

    A malformed message is a bug in the sharing stage, or someone else's message on the topic: it is set aside
    with its position and reason, so that it does not stop every other party's notifications. A message keyed by
    another party than the one it shares with is malformed: webhooks never hand a party anything but its own.
    """
    try:
        message = orjson.loads(record.value) if record.value is not None else None
        if not isinstance(message, dict):
            raise MalformedShare("not a JSON object")
        found = shared(message)
        if found is not None and (record.key is None or record.key.decode("utf-8", "replace") != found.party):
            raise MalformedShare(f"keyed {record.key!r} but shared with {found.party!r}")
    except (orjson.JSONDecodeError, MalformedShare) as error:
        log.error("%s: not a share message, set aside: %s", record.where, error)
        return SetAside(record, f"not a share message: {error}")
    if found is None:
        return None
    return Read(found, datetime.fromtimestamp(record.timestamp_ms / 1000, timezone.utc))


@dataclass(frozen=True)
class Filling:
    """The stage's write: queues share messages for the subscriptions (their secrets opened with `keys`), dated
    `clock()`."""

    keys: Keyring
    clock: Callable[[], datetime]

    async def write(self, conn: asyncpg.Connection, records: Sequence[Record]) -> list[SetAside]:
        """In the caller's transaction: the outbox rows of the share messages in `records`; returns those that are
        not share messages."""
        found = [read(record) for record in records]
        reads = [r for r in found if isinstance(r, Read)]
        await conn.execute(LOCK)
        parties = sorted({r.share.party for r in reads})
        if parties:
            subscriptions = [subscription_of(row, self.keys) for row in await conn.fetch(SUBSCRIPTIONS, parties)]
            await _queue_rows(conn, reads, subscriptions, self.clock())
        return [r for r in found if isinstance(r, SetAside)]


async def _queue_rows(
    conn: asyncpg.Connection, reads: Sequence[Read], subscriptions: list[Subscription], now: datetime
) -> None:
    rows = [
        (sub.subscription_id, r.share.key, r.share.shipment_id, r.share.kind, r.share.message, now)
        for r in reads
        for sub in subscriptions
        if sub.matches(r.share, r.shared_at)
    ]
    if rows:
        # one statement per row, in order: seq follows the order of the topic partitions
        await conn.executemany(QUEUE, rows)


async def replay(conn: asyncpg.Connection, record: Record, keys: Keyring) -> str | None:
    """Queue one quarantined share message (in the caller's transaction; stored offsets untouched). None once
    queued, else why it is still refused."""
    return await write_one(conn, Filling(keys, lambda: datetime.now(timezone.utc)).write, record)


def stage(settings: Settings, store: WebhookStore, clock: Callable[[], datetime]) -> PostgresStage:
    return PostgresStage(
        name="webhooks",
        group=group(settings),
        write=Filling(store.keys, clock).write,
        connect=lambda: connect(settings, "mmhub-webhooks-filler"),
        pattern=topics(settings),
        metadata_max_age_ms=NEW_TOPICS_MS,
    )


async def run_filler(
    settings: Settings,
    store: WebhookStore,
    stop: asyncio.Event,
    on_batch: Callable[[int], object] | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
    max_records: int = 500,
) -> None:
    """Queue share messages for their subscriptions until `stop` is set (the caller migrates the schema).
    `on_batch` gets the number of messages in each batch, once it is committed to Postgres."""
    await run_stored_offsets(settings, stage(settings, store, clock), stop, on_batch, max_records)
