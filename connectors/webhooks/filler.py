"""The filler: consume every `hub.share.<audience>` topic and queue each message for its party's matching
subscriptions in `webhook_outbox`.

As in the Postgres sink, Postgres decides where to resume: each batch's outbox rows and the next offset of every
partition in it are written in one transaction (offsets in `sink_offsets`, under the consumer group
`<app_id>.webhooks`), and on assignment the consumer seeks to the stored offsets. A row is unique per
(subscription, message key), so replaying a batch queues nothing twice. A message the filler cannot read, or
whose rows Postgres refuses, is set aside in the quarantine table in that same transaction, and the others go on.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable, Sequence

import asyncpg
import orjson
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError

from connectors.postgres.positions import Positions
from connectors.postgres.quarantine import SetAside, bad_record, refused_by_postgres, set_aside
from connectors.postgres.rows import Message, aside
from connectors.postgres.sink import LOAD_OFFSETS, SAVE_OFFSETS, Stopped
from connectors.webhooks.notifications import MalformedShare, Shared, Subscription, shared
from connectors.webhooks.sealing import Keyring
from connectors.webhooks.store import WebhookStore, subscription_of
from hubconf.settings import Settings

log = logging.getLogger(__name__)

POLL_TIMEOUT_MS = 500

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
    """A share message as read: what it shares and when it was shared (the Kafka record's timestamp), and the
    record it came from (set aside if Postgres refuses its rows)."""

    share: Shared
    shared_at: datetime
    record: Message


def read(record: Message) -> Read | SetAside | None:
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
        log.error("%s[%d]@%d: not a share message, set aside: %s", record.topic, record.partition, record.offset, error)
        return aside(record, f"not a share message: {error}")
    if found is None:
        return None
    return Read(found, datetime.fromtimestamp(record.timestamp / 1000, timezone.utc), record)


async def queue(
    conn: asyncpg.Connection,
    reads: Sequence[Read],
    consumer: str,
    offsets: dict[str, dict[int, int]],
    now: datetime,
    keys: Keyring,
    malformed: Sequence[SetAside] = (),
) -> None:
    """One transaction: the outbox rows of `reads`, the `malformed` messages set aside, and the offsets they were
    read up to. If Postgres refuses a row, each read is queued again in a savepoint of its own, and the ones
    refused are set aside."""
    async with conn.transaction():
        await conn.execute(LOCK)
        parties = sorted({r.share.party for r in reads})
        subscriptions = [subscription_of(row, keys) for row in await conn.fetch(SUBSCRIPTIONS, parties)] if parties else []
        refused = list(malformed)
        try:
            async with conn.transaction():  # a savepoint
                await _queue_rows(conn, reads, subscriptions, now)
        except Exception as error:
            if not bad_record(error):
                raise
            log.warning("Postgres refused a share message of a batch (%s); queueing them one by one", error)
            for one in reads:
                try:
                    async with conn.transaction():
                        await _queue_rows(conn, [one], subscriptions, now)
                except Exception as single_error:
                    if not bad_record(single_error):
                        raise
                    refused.append(aside(one.record, refused_by_postgres(single_error)))
        await set_aside(conn, "webhooks", consumer, refused)
        for topic, next_offsets in offsets.items():
            await conn.execute(SAVE_OFFSETS, consumer, topic, list(next_offsets), list(next_offsets.values()))


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


async def replay(conn: asyncpg.Connection, record: Message, keys: Keyring) -> str | None:
    """Queue one quarantined share message (in the caller's transaction; stored offsets untouched). None once
    queued, else why it is still refused."""
    found = read(record)
    if isinstance(found, SetAside):
        return found.reason
    if found is None:
        return None
    await conn.execute(LOCK)
    parties = [found.share.party]
    subscriptions = [subscription_of(row, keys) for row in await conn.fetch(SUBSCRIPTIONS, parties)]
    try:
        async with conn.transaction():  # a savepoint: a refusal leaves the caller's transaction usable
            await _queue_rows(conn, [found], subscriptions, datetime.now(timezone.utc))
    except Exception as error:
        if not bad_record(error):
            raise
        return refused_by_postgres(error)
    return None


class SeekToStoredOffsets(ConsumerRebalanceListener):
    """On assignment, position each share partition at the offset Postgres holds for it, or at the beginning.

    The share topics' counterpart of connectors.postgres.sink.SeekToStoredOffsets (one Positions per topic).
    """

    def __init__(self, consumer: AIOKafkaConsumer, store: WebhookStore, group: str, stop: asyncio.Event) -> None:
        self._consumer = consumer
        self._store = store
        self._group = group
        self._stop = stop
        self.lock = asyncio.Lock()
        # A topic's Positions from its first sight. A poll that began before then reads it as clock 0, so it sees
        # that the topic's assignment came during it (and seeks back), rather than drop what it fetched.
        self.positions: defaultdict[str, Positions] = defaultdict(Positions)
        self.error: Exception | None = None

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        async with self.lock:
            for tp in revoked:
                self.positions[tp.topic].forget([tp.partition])

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        by_topic: dict[str, list[int]] = {}
        for tp in assigned:
            by_topic.setdefault(tp.topic, []).append(tp.partition)
        async with self.lock:
            for topic, partitions in sorted(by_topic.items()):
                try:
                    rows = await self._store.patiently(
                        lambda conn: conn.fetch(LOAD_OFFSETS, self._group, topic, sorted(partitions)), self._stop
                    )
                except Stopped:
                    return  # left unsettled: the poll loop queues nothing of these partitions
                except Exception as error:
                    self.error = error
                    raise
                stored = {row["partition"]: row["next_offset"] for row in rows}
                for partition, offset in stored.items():
                    self._consumer.seek(TopicPartition(topic, partition), offset)
                fresh = [TopicPartition(topic, p) for p in partitions if p not in stored]
                if fresh:
                    await self._consumer.seek_to_beginning(*fresh)
                positions = self.positions[topic]
                for partition in partitions:
                    positions.settle(partition, stored.get(partition, 0))


async def run_filler(
    settings: Settings,
    store: WebhookStore,
    stop: asyncio.Event,
    on_batch: Callable[[int], object] | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
    max_records: int = 500,
) -> None:
    """Queue share messages for their subscriptions until `stop` is set. `on_batch` gets the number of messages in
    each batch, once it is committed to Postgres."""
    consumer_group = group(settings)
    consumer = AIOKafkaConsumer(
        **settings.kafka_client(),
        group_id=consumer_group,
        client_id=consumer_group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        # a fetch naming only quiet partitions must not hold the busy ones back (see worker.fetching)
        fetch_max_wait_ms=settings.fetch_max_wait_ms,
        metadata_max_age_ms=NEW_TOPICS_MS,
    )
    listener = SeekToStoredOffsets(consumer, store, consumer_group, stop)
    consumer.subscribe(pattern=topics(settings), listener=listener)
    await consumer.start()
    try:
        while not stop.is_set():
            polled_at = {topic: positions.clock for topic, positions in listener.positions.items()}
            fetched = await consumer.getmany(timeout_ms=POLL_TIMEOUT_MS, max_records=max_records)
            if listener.error is not None:
                raise listener.error
            if stop.is_set():
                break  # not queued, so not lost: a restart reads it again from the stored offsets
            async with listener.lock:
                reads: list[Read] = []
                malformed: list[SetAside] = []
                offsets: dict[str, dict[int, int]] = {}
                count = 0
                for tp, records in sorted(fetched.items()):
                    admitted = listener.positions[tp.topic].admit(polled_at.get(tp.topic, 0), records)
                    for partition, offset in admitted.reseek.items():
                        consumer.seek(TopicPartition(tp.topic, partition), offset)
                    count += len(admitted.messages)
                    for record in admitted.messages:
                        found = read(record)
                        if isinstance(found, Read):
                            reads.append(found)
                        elif found is not None:
                            malformed.append(found)
                        offsets.setdefault(tp.topic, {})[record.partition] = record.offset + 1
                if not offsets:
                    continue
                await store.patiently(
                    lambda conn: queue(conn, reads, consumer_group, offsets, clock(), store.keys, malformed), stop
                )
                for topic, next_offsets in offsets.items():
                    listener.positions[topic].advance(next_offsets)
            if on_batch is not None:
                on_batch(count)
            await _mirror(consumer, offsets)
    except Stopped:
        log.info("stopped while Postgres was unreachable; the unqueued batch will be read again on restart")
    finally:
        await consumer.stop()


async def _mirror(consumer: AIOKafkaConsumer, offsets: dict[str, dict[int, int]]) -> None:
    """Mirror the stored offsets into Kafka for lag tools; Postgres stays the record of where to resume."""
    assigned = consumer.assignment()
    wanted = {
        TopicPartition(topic, partition): offset
        for topic, next_offsets in offsets.items()
        for partition, offset in next_offsets.items()
    }
    wanted = {tp: offset for tp, offset in wanted.items() if tp in assigned}
    if not wanted:
        return
    try:
        await consumer.commit(wanted)
    except KafkaError as error:
        log.warning("could not mirror offsets to Kafka: %s", error)
