"""The stage loop: an aiokafka consumer group, batches handed to a stage's handler, a checkpoint every few ms.

One `StageRunner` runs one `Stage`. Its consumer (group `stage.group`, every input, read_committed, RangeAssignor so
partition p of every input comes to the same member) fetches batches bounded by `batch_max` records and
`fetch_max_bytes`; the records of each input partition go to the handler with that partition's stores
(runtime.state). A stage may defer work to the checkpoint (`Stage.flush`: the merge makes one version per shipment
per checkpoint); its flush runs first, in chunks. Every `checkpoint_ms` (or `checkpoint_records` records taken in) a
checkpoint makes the work durable:

- exactly_once (the default): per input partition with work, ONE Kafka transaction of its own transactional producer
  (id `<group>.<partition>`: a stable id per partition, as faust does, because aiokafka has no KIP-447) holding the
  handler's outputs, one changelog record per changed store key and the input offsets; then, and only then, the
  store writes go to RocksDB in one WriteBatch with the new changelog positions. A crash before the commit loses
  nothing and sends nothing; a crash after it is repaired by the restore, which reads the changelog past the position.
- at_least_once: one idempotent producer; outputs and changelogs flushed, then the offsets committed, then RocksDB.

On assignment a partition stays paused while its producer starts (init_transactions fences the previous owner's
producer of that id and ends its open transaction) and its stores are restored from their changelogs (read_committed,
from the local position to the end); then it resumes at the group's committed offset. A revocation drops the work
not checkpointed. A checkpoint that fails (a broker restart mid-transaction: aiokafka#905, a timeout) is aborted,
the producer rebuilt and the partition started again from its committed position; a fenced producer means another
member owns the partition now: it is dropped here. A handler that raises is a hub bug: the batch's records are
dead-lettered (reason `hub_error`, original bytes) to the hub's DLQ topic, and the loop goes on.

A checkpoint the broker refuses for good (a record over max.message.bytes: `REFUSED_FOR_GOOD`) would fail at every
retry, and the partition would stop there. Instead the partition is started again from its committed position and
takes the records of the refused checkpoint one per checkpoint; the one whose checkpoint is refused alone is set
aside: dead-lettered with its original bytes and the reason (code `unwritable`), nothing else of it written, and the
partition goes on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter as CounterOf
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Mapping, Sequence

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.errors import (
    InvalidProducerEpoch,
    MessageSizeTooLargeError,
    ProducerFenced,
    RecordListTooLargeError,
    RecordTooLargeError,
    TopicAlreadyExistsError,
)
from aiokafka.structs import ConsumerRecord, RecordMetadata

from hubconf import topics as topic_names
from hubconf.settings import EXACTLY_ONCE, PRODUCER_BATCH_BYTES, Settings
from runtime import metrics
from runtime.api import Out, Record, Stage, Store
from runtime.state import PartitionState, StoreLocked, partition_path

log = logging.getLogger("mmhub.runtime")

# A request carries a whole dead letter (a raw payload up to the DLQ's limit) plus its record batch.
MAX_REQUEST_BYTES = topic_names.DLQ_MAX_MESSAGE_BYTES + 64 * 1024
IDLE_WAIT_MS = 500  # how long a fetch waits when nothing is pending (also how soon `stop` is noticed)
RESTORE_RECORDS = 10_000  # records per fetch while restoring a changelog
# A checkpoint's transaction runs AddPartitionsToTxn, Produce, AddOffsetsToTxn, TxnOffsetCommit and EndTxn in turn.
# Right after the partition's previous transaction, while its markers are still being written, the broker (4.1 here,
# verifying transactions as KIP-890 has it) answers with retriable errors: Produce with NOT_ENOUGH_REPLICAS (110 in
# one worker's log at 100 events/s on a single-replica broker), TxnOffsetCommit with COORDINATOR_NOT_AVAILABLE,
# AddPartitionsToTxn with CONCURRENT_TRANSACTIONS. aiokafka retries after retry_backoff_ms (default 100; only
# AddPartitionsToTxn has its own 20 ms, as the Java client since KAFKA-5477), and a checkpoint waits for its slowest
# partition. At 20 ms, bench.latency at 100 events/s (five alternated pairs, bench/README): p99 publish -> status
# 198-259 -> 57-78 ms.
PRODUCER_RETRY_BACKOFF_MS = 20
RETRY_BACKOFF_S = 1.0  # between a failed checkpoint or activation and the next attempt
FENCED = (ProducerFenced, InvalidProducerEpoch)
INPUT_WAIT_ATTEMPTS = 30  # seconds a runner waits for its input topics to appear
# Records per handler call at most. bench.scaleout on a starved 2-core VM saw one 2,000-record batch hold the event
# loop for 8.9 s, past the 10 s session's heartbeats, and a SIGTERM wait for the fetch buffer to drain.
HANDLER_RECORDS = 500
# What the broker (or the client, before sending) refuses of one record whatever the retry: the same input makes it
# again, so only setting that input aside lets its partition go on.
REFUSED_FOR_GOOD = (MessageSizeTooLargeError, RecordTooLargeError, RecordListTooLargeError)
DELETE_RETENTION = "delete.retention.ms"  # how long a compacted changelog keeps a tombstone, at least
DEFAULT_DELETE_RETENTION_MS = 24 * 3600 * 1000  # Kafka's default, when a changelog's setting cannot be read


@dataclass
class Counters:
    """What the loop did, for metrics."""

    batches: int = 0  # handler calls
    largest_batch: int = 0  # the most records one handler call took
    records_in: int = 0
    records_out: int = 0  # outputs produced by committed checkpoints (dead letters included)
    dead_lettered: int = 0  # records the runtime dead-lettered because the handler raised
    set_aside: int = 0  # records the runtime dead-lettered because what the stage made of them was refused for good
    checkpoints: int = 0  # partition checkpoints committed
    checkpoint_s_total: float = 0.0  # the checkpoints' Kafka transactions (or flushes and commits) and RocksDB
    checkpoint_s_max: float = 0.0
    handler_s_total: float = 0.0  # wall time in handler calls
    flush_s_total: float = 0.0  # wall time in the stage's flushes (their chunks and the turns given between them)
    fetch_s_total: float = 0.0  # wall time in getmany: waiting for records, or idle
    changelog_records: int = 0
    restored_records: int = 0
    retried: int = 0  # checkpoints aborted and the partition restarted from its committed position
    fenced: int = 0  # partitions lost to a fence


@dataclass
class _Partition:
    """One input partition number this member holds: its inputs, stores, producer and the work not checkpointed."""

    number: int
    inputs: list[TopicPartition]
    state: PartitionState | None = None
    producer: AIOKafkaProducer | None = None  # exactly_once: this partition's transactional producer
    active: bool = False  # restored and positioned: its records are taken in
    outs: list[Out] = field(default_factory=list)
    next_offsets: dict[TopicPartition, int] = field(default_factory=dict)
    records: int = 0
    taken: CounterOf[str] = field(default_factory=CounterOf)  # records not checkpointed, per input topic

    def drop(self) -> None:
        """Forget the work not checkpointed."""
        self.outs.clear()
        self.next_offsets.clear()
        self.records = 0
        self.taken.clear()
        if self.state is not None:
            self.state.drop()


@dataclass(frozen=True)
class _Held:
    """A store as `StageRunner.stores` hands it out: each call reads the partition's store as it is now. A caller
    may keep it across awaits (the presumed-loss timer does, for a whole tick): it neither keeps the RocksDB of a
    partition closed since open (a column family handle would, and reopening it would then fail with a lock held by
    this very process) nor reads a partition no longer held (it reads as empty)."""

    partition: _Partition
    name: str

    def _store(self) -> Store | None:
        state = self.partition.state
        return state.stores.get(self.name) if self.partition.active and state is not None else None

    def get(self, key: bytes) -> bytes | None:
        store = self._store()
        return store.get(key) if store is not None else None

    def put(self, key: bytes, value: bytes) -> None:
        store = self._store()
        if store is None:
            raise RuntimeError(f"partition {self.partition.number} is no longer held")
        store.put(key, value)

    def delete(self, key: bytes) -> None:
        store = self._store()
        if store is None:
            raise RuntimeError(f"partition {self.partition.number} is no longer held")
        store.delete(key)

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        store = self._store()
        return store.items() if store is not None else iter(())


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, runner: StageRunner) -> None:
        self._runner = runner

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._runner._revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self._runner._assigned(assigned)


class StageRunner:
    """Runs one stage until `stop()`: `await runner.run()`."""

    def __init__(self, stage: Stage, settings: Settings) -> None:
        self.stage = stage
        self.settings = settings
        self.counters = Counters()
        self._committed_in: CounterOf[str] = CounterOf()  # per input topic, records the checkpoint in hand committed
        self._committed_out: CounterOf[str] = CounterOf()  # per output topic, messages it committed
        self.exactly_once = settings.guarantee == EXACTLY_ONCE
        self.dlq = settings.topics.dlq
        self._partitions: dict[int, _Partition] = {}
        self._lock = asyncio.Lock()  # a checkpoint and a rebalance's revocation never overlap
        self._activations: set[asyncio.Task[None]] = set()
        self._stopping = asyncio.Event()
        self._fatal: BaseException | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None  # at_least_once: the one idempotent producer
        self.active = asyncio.Event()  # set whenever every held partition is restored and taking records in
        self._tombstones_kept_ms: dict[str, int] = {}  # per changelog, its delete.retention.ms
        # per partition number, after a checkpoint refused for good: up to which offset (exclusive) of each input its
        # records are taken one per checkpoint, and the record to set aside when it comes again (input, offset, why)
        self._isolating: dict[int, dict[TopicPartition, int]] = {}
        self._set_aside: dict[int, tuple[TopicPartition, int, str]] = {}

    # --- the loop ---------------------------------------------------------------------------------------------

    async def run(self) -> None:
        await self._ensure_changelogs()
        consumer = self._consumer = AIOKafkaConsumer(
            **self.settings.kafka_client(
                client_id=f"{self.stage.group}.consumer",
                group_id=self.stage.group,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                isolation_level="read_committed",
                partition_assignment_strategy=(RangePartitionAssignor,),
                fetch_max_bytes=self.settings.fetch_max_bytes,
                max_partition_fetch_bytes=MAX_REQUEST_BYTES,
                fetch_max_wait_ms=self.settings.fetch_max_wait_ms,
                session_timeout_ms=int(self.settings.session_timeout_s * 1000),
                heartbeat_interval_ms=int(self.settings.session_timeout_s * 1000 / 4),
            )
        )
        if not self.exactly_once:
            self._producer = AIOKafkaProducer(**self._producer_options("alo"))
            await self._producer.start()
        consumer.subscribe(list(self.stage.inputs), listener=_Listener(self))
        await consumer.start()
        try:
            await self._loop(consumer)
        finally:
            await self._close(consumer)
        if self._fatal is not None:
            raise self._fatal

    def stop(self) -> None:
        self._stopping.set()

    def stores(self) -> dict[int, Mapping[str, Store]]:
        """The stores of each input partition this member holds and has restored (their writes not yet
        checkpointed included): for low-volume duties beside the stage, such as a timer."""
        return {
            number: {name: _Held(partition, name) for name in partition.state.stores}
            for number, partition in self._partitions.items()
            if partition.active and partition.state is not None
        }

    async def _loop(self, consumer: AIOKafkaConsumer) -> None:
        """Take in what is waiting; checkpoint once nothing more is fetched already (at a trickle: every record at
        once), or after checkpoint_ms or checkpoint_records under a backlog."""
        interval = self.settings.checkpoint_ms / 1000
        pending_since: float | None = None
        while not self._stopping.is_set():
            # with work pending, only what the fetcher already holds: an empty answer means nothing is waiting
            wait_ms = IDLE_WAIT_MS if pending_since is None else 0
            fetching = time.monotonic()
            batch = await consumer.getmany(timeout_ms=wait_ms, max_records=self.settings.batch_max)
            self.counters.fetch_s_total += time.monotonic() - fetching
            async with self._lock:
                for tp, messages in batch.items():
                    messages = self._one_at_a_time(tp, messages)
                    for start in range(0, len(messages), HANDLER_RECORDS):
                        self._take(tp, messages[start : start + HANDLER_RECORDS])
                        # the handler is CPU only: between two calls the heartbeat, a stop signal and the fetcher
                        # get their turn (a getmany served from the fetch buffer does not yield)
                        await asyncio.sleep(0)
                pending = sum(p.records for p in self._partitions.values())
                if pending and pending_since is None:
                    pending_since = time.monotonic()
                if pending_since is not None and (
                    not batch
                    or pending >= self.settings.checkpoint_records
                    or any(p.records for n, p in self._partitions.items() if n in self._isolating)
                    or time.monotonic() >= pending_since + interval
                ):
                    await self._checkpoint()
                    pending_since = None
                    await self._observe_lag(consumer)

    async def _observe_lag(self, consumer: AIOKafkaConsumer) -> None:
        """Per input partition held: the offsets past what this stage has taken in and committed (its fetch
        position, which steps over transaction markers, against the high watermark)."""
        # the high watermarks in one go (no await in between, so no rebalance); a partition taken away while its
        # position is read is left out
        ends = {tp: end for tp in consumer.assignment() if (end := consumer.highwater(tp)) is not None}
        lags = {}
        for tp, end in ends.items():
            if tp in consumer.assignment():
                lags[(tp.topic, tp.partition)] = max(0, end - await consumer.position(tp))
        metrics.observe_lag(self.stage.group, lags)

    def _one_at_a_time(
        self, tp: TopicPartition, messages: list[ConsumerRecord[bytes, bytes]]
    ) -> list[ConsumerRecord[bytes, bytes]]:
        """The records to take now: all of them, unless the partition is isolating a refused checkpoint; then at most
        one per checkpoint, and the input is sought back to the first record left for later."""
        bounds = self._isolating.get(tp.partition)
        partition = self._partitions.get(tp.partition)
        if bounds is None or partition is None or not messages:
            return messages
        if not partition.active:
            return messages  # dropped by _take: read again from the committed position
        kept = [] if partition.records else messages[:1]
        if len(kept) < len(messages):
            consumer = self._consumer
            assert consumer is not None  # noqa: S101 - started by run
            consumer.seek(tp, messages[len(kept)].offset)
        return kept

    def _take(self, tp: TopicPartition, messages: list[ConsumerRecord[bytes, bytes]]) -> None:
        """Hand one input partition's records to the handler; keep its outputs and offsets for the checkpoint."""
        partition = self._partitions.get(tp.partition)
        if partition is None or not partition.active or partition.state is None or not messages:
            return  # fetched before a revocation or a restart: it is read again from the committed position
        records = [
            Record(m.topic, m.partition, m.offset, m.key, m.value, tuple(m.headers), m.timestamp) for m in messages
        ]
        stores = partition.state.stores
        aside = self._set_aside.get(tp.partition)
        if aside is not None and aside[:2] == (tp, records[0].offset) and len(records) == 1:
            # refused for good when taken alone: nothing of it is written but its dead letter
            del self._set_aside[tp.partition]
            log.warning("%s: setting %s aside: %s", self.stage.name, records[0].where, aside[2])
            partition.outs.append(self._dead_letter(records[0], aside[2], "unwritable"))
            self.counters.set_aside += 1
            partition.next_offsets[tp] = records[0].offset + 1
            partition.records += 1
            partition.taken[tp.topic] += 1
            return
        started = time.monotonic()
        try:
            outs = self.stage.handler(records, stores)
        except Exception as error:  # noqa: BLE001 - a hub bug must not stop the stage: the batch is dead-lettered
            log.exception("%s: the handler failed on %s..%d", self.stage.name, records[0].where, records[-1].offset)
            for store in stores.values():
                store.drop_call()
            reason = f"hub_error: the {self.stage.name} stage failed on the batch holding this record: {error!r}"
            outs = [self._dead_letter(record, reason, "hub_error") for record in records]
            self.counters.dead_lettered += len(records)
        else:
            for store in stores.values():
                store.keep_call()
        self.counters.handler_s_total += time.monotonic() - started
        partition.outs += outs
        partition.next_offsets[tp] = messages[-1].offset + 1
        partition.records += len(records)
        partition.taken[tp.topic] += len(records)
        self.counters.batches += 1
        self.counters.largest_batch = max(self.counters.largest_batch, len(records))
        self.counters.records_in += len(records)

    def _dead_letter(self, record: Record, reason: str, code: str) -> Out:
        key, value, cut = topic_names.dead_letter_bytes(record.key, record.value)
        headers = (
            (topic_names.DLQ_REASON, topic_names.reason_header(reason)),
            (topic_names.DLQ_CODE, code.encode()),
            *record.source_headers(),
            *cut,
        )
        return Out(self.dlq, key, value, headers)

    def _drop(self, partition: _Partition) -> None:
        """Forget the partition's work not checkpointed, the stage's deferred work of it included."""
        partition.drop()
        if self.stage.discard is not None:
            self.stage.discard(partition.number)

    # --- checkpoints ------------------------------------------------------------------------------------------

    async def _flush(self, partition: _Partition) -> None:
        """The stage's deferred work of the partition, into the checkpoint: chunk by chunk, each chunk's store writes
        kept like a handler call's, the event loop given its turn between chunks. A flush that raises is a hub bug
        (the merge dead-letters a shipment it fails on and goes on): the partition's work is dropped and started
        again from its committed position, loudly."""
        flush = self.stage.flush
        if flush is None or partition.state is None:
            return
        stores = partition.state.stores
        try:
            for chunk in flush(partition.number, stores):
                for store in stores.values():
                    store.keep_call()
                partition.outs += chunk
                await asyncio.sleep(0)
        except Exception:  # noqa: BLE001 - logged; the partition is redone from its committed position
            log.exception("%s: flushing partition %d failed: restarting it", self.stage.name, partition.number)
            for store in stores.values():
                store.drop_call()
            self.counters.retried += 1
            self._restart(partition)

    async def _checkpoint(self) -> None:
        due = [p for p in self._partitions.values() if p.active and p.next_offsets]
        if not due:
            return
        if self.stage.flush is not None:
            flushing = time.monotonic()
            for partition in due:
                await self._flush(partition)
            self.counters.flush_s_total += time.monotonic() - flushing
            due = [p for p in due if p.active]  # a failed flush restarted its partition
            if not due:
                return
        started = time.monotonic()
        self._committed_in.clear()
        self._committed_out.clear()
        if self.exactly_once:
            await asyncio.gather(*(self._checkpoint_one(partition) for partition in due))
        elif any(p.number in self._isolating for p in due):
            for partition in due:  # one at a time, so that a refusal names its partition
                await self._checkpoint_at_least_once([partition])
        else:
            await self._checkpoint_at_least_once(due)
        took = time.monotonic() - started
        self.counters.checkpoint_s_total += took
        self.counters.checkpoint_s_max = max(self.counters.checkpoint_s_max, took)
        if self._committed_in:
            metrics.observe_checkpoint(self.stage.name, took, dict(self._committed_in), dict(self._committed_out))

    async def _checkpoint_one(self, partition: _Partition) -> None:
        try:
            positions = await asyncio.wait_for(self._transaction(partition), self.settings.checkpoint_timeout_s)
        except FENCED as error:
            log.warning(
                "%s: partition %d fenced (%r): another member owns it", self.stage.name, partition.number, error
            )
            self.counters.fenced += 1
            await self._lose(partition)
            return
        except Exception as error:  # noqa: BLE001 - a broker restart, a timeout: redo it from the committed position
            log.warning(
                "%s: checkpoint of partition %d failed (%r): restarting it", self.stage.name, partition.number, error
            )
            self.counters.retried += 1
            if isinstance(error, REFUSED_FOR_GOOD):
                self._isolate(partition, error)
            self._restart(partition)
            return
        self._checkpointed(partition, positions)

    async def _transaction(self, partition: _Partition) -> dict[str, int]:
        producer = partition.producer
        assert producer is not None and partition.state is not None  # noqa: S101 - set up by _activate
        await producer.begin_transaction()
        sent, logs = await self._send(producer, partition)
        await producer.send_offsets_to_transaction(dict(partition.next_offsets), self.stage.group)
        # Every record in the log before the commit: aiokafka fails the future of a record the broker refuses for
        # good (MESSAGE_TOO_LARGE, an ACL) without failing the transaction, which would then commit the offsets and
        # the rest without it. Raising here leaves the transaction open; the partition's next producer aborts it.
        await asyncio.gather(*sent)
        await producer.commit_transaction()
        return {store: (await futures[-1]).offset + 1 for store, futures in logs.items()}

    async def _send(
        self, producer: AIOKafkaProducer, partition: _Partition
    ) -> tuple[list[asyncio.Future[RecordMetadata]], dict[str, list[asyncio.Future[RecordMetadata]]]]:
        """Send a partition's outputs and changelog records (one per changed key); their futures."""
        assert partition.state is not None  # noqa: S101 - set up by _activate
        sent = [
            await producer.send(out.topic, out.value, key=out.key, headers=list(out.headers)) for out in partition.outs
        ]
        logs: dict[str, list[asyncio.Future[RecordMetadata]]] = {}
        for name, store in partition.state.stores.items():
            changes = store.changes()
            if changes:
                topic = self.stage.changelogs[name]
                logs[name] = [
                    await producer.send(topic, value, key=key, partition=partition.number) for key, value in changes
                ]
        return sent + [future for futures in logs.values() for future in futures], logs

    async def _checkpoint_at_least_once(self, due: list[_Partition]) -> None:
        producer, consumer = self._producer, self._consumer
        assert producer is not None and consumer is not None  # noqa: S101 - started by run

        async def flush_and_commit() -> dict[int, dict[str, int]]:
            sent = [await self._send(producer, partition) for partition in due]
            await asyncio.gather(*(future for futures, _ in sent for future in futures))
            await consumer.commit({tp: offset for p in due for tp, offset in p.next_offsets.items()})
            return {
                p.number: {store: futures[-1].result().offset + 1 for store, futures in logs.items()}
                for p, (_, logs) in zip(due, sent)
            }

        try:
            positions = await asyncio.wait_for(flush_and_commit(), self.settings.checkpoint_timeout_s)
        except Exception as error:  # noqa: BLE001 - a broker restart, a rebalance: redo from the committed position
            log.warning("%s: checkpoint failed (%r): restarting %d partition(s)", self.stage.name, error, len(due))
            self.counters.retried += len(due)
            # a new producer: a record the broker refused leaves the idempotent producer's sequence numbers behind
            # the broker's (every later checkpoint then failed with OutOfOrderSequenceNumber, in the test that found it)
            await _discard(producer)
            self._producer = AIOKafkaProducer(**self._producer_options("alo"))
            await self._producer.start()
            for partition in due:
                if isinstance(error, REFUSED_FOR_GOOD):
                    self._isolate(partition, error, alone=len(due) == 1)
                self._restart(partition)
            return
        for partition in due:
            self._checkpointed(partition, positions[partition.number])

    def _isolate(self, partition: _Partition, error: Exception, alone: bool = True) -> None:
        """A checkpoint of the partition was refused for good: if it held one record (and nothing else), that record
        is set aside when it comes again. Either way the checkpoint's records are taken again one per checkpoint."""
        bounds = self._isolating.setdefault(partition.number, {})
        for tp, end in partition.next_offsets.items():
            bounds[tp] = max(bounds.get(tp, 0), end)
        if alone and partition.records == 1:
            ((tp, end),) = partition.next_offsets.items()
            reason = (
                f"unwritable: what the {self.stage.name} stage made of this record was refused by Kafka for good"
                f" ({error!r}); it is set aside and nothing else of it is written"
            )
            self._set_aside[partition.number] = (tp, end - 1, reason)
            log.warning("%s: %s:%d is refused for good: it will be set aside", self.stage.name, tp.topic, end - 1)
            return
        log.warning(
            "%s: partition %d's checkpoint of %d records was refused for good: taking them one per checkpoint",
            self.stage.name, partition.number, partition.records,
        )  # fmt: skip

    def _checkpointed(self, partition: _Partition, positions: dict[str, int]) -> None:
        """The checkpoint is in Kafka: its store writes go down to RocksDB with their changelog positions."""
        assert partition.state is not None  # noqa: S101 - set up by _activate
        bounds = self._isolating.get(partition.number)
        if bounds is not None:  # past the refused checkpoint's records: back to whole batches
            for tp, end in partition.next_offsets.items():
                if end >= bounds.get(tp, 0):
                    bounds.pop(tp, None)
            if not bounds:
                del self._isolating[partition.number]
        self.counters.changelog_records += sum(len(s.pending) for s in partition.state.stores.values())
        partition.state.checkpointed(positions)
        self.counters.records_out += len(partition.outs)
        self.counters.checkpoints += 1
        self._committed_in.update(partition.taken)
        self._committed_out.update(out.topic for out in partition.outs)
        partition.taken.clear()
        partition.outs.clear()
        partition.next_offsets.clear()
        partition.records = 0

    # --- assignment, restore, restart, loss -------------------------------------------------------------------

    async def _revoked(self, revoked: set[TopicPartition]) -> None:
        metrics.forget_lag(self.stage.group, [(tp.topic, tp.partition) for tp in revoked])
        await self._cancel_activations()
        async with self._lock:  # after the checkpoint in flight, if any
            # again: a checkpoint that failed while this waited for the lock scheduled a restart of its partition,
            # which must not run beside the activation of the next assignment
            await self._cancel_activations()
            for number in {tp.partition for tp in revoked}:
                partition = self._partitions.get(number)
                if partition is not None:
                    partition.active = False
                    self._drop(partition)
            self.active.clear()

    async def _assigned(self, assigned: set[TopicPartition]) -> None:
        consumer = self._consumer
        assert consumer is not None  # noqa: S101 - started by run
        numbers = {tp.partition for tp in assigned}
        lost = set(self._partitions) - numbers
        for number in sorted(lost):
            await self._close_partition(self._partitions.pop(number))
        if lost and self.stage.on_revoked is not None:
            self.stage.on_revoked(lost)
        consumer.pause(*assigned)
        for number in numbers - set(self._partitions):
            inputs = sorted((tp for tp in assigned if tp.partition == number), key=lambda tp: tp.topic)
            self._partitions[number] = _Partition(number, inputs)
        for number in numbers:
            self._partitions[number].active = False
        self._schedule(numbers)

    def _schedule(self, numbers: Iterable[int], delay: float = 0.0) -> None:
        task = asyncio.create_task(self._activate(set(numbers), delay))
        self._activations.add(task)
        task.add_done_callback(self._activations.discard)

    async def _cancel_activations(self) -> None:
        tasks = list(self._activations)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _activate(self, numbers: set[int], delay: float) -> None:
        """Start producers (fencing the previous owner), restore the stores, seek to the committed offsets, resume."""
        consumer = self._consumer
        assert consumer is not None  # noqa: S101 - started by run
        await asyncio.sleep(delay)
        partitions = [self._partitions[n] for n in sorted(numbers) if n in self._partitions]
        try:
            for partition in partitions:
                if partition.state is None:
                    path = partition_path(self.settings.data_dir, self.stage.group, partition.number)
                    partition.state = PartitionState(path, list(self.stage.changelogs), self.settings.state_memory_mb)
            if self.exactly_once:
                await asyncio.gather(*(self._start_producer(partition) for partition in partitions))
            await self._restore(partitions)
            for partition in partitions:
                for tp in partition.inputs:
                    committed = await consumer.committed(tp)
                    if committed is None:
                        await consumer.seek_to_beginning(tp)
                    else:
                        consumer.seek(tp, committed)
        except StoreLocked as error:
            log.error("%s", error)
            self._fatal = error
            self.stop()
            return
        except asyncio.CancelledError:
            raise
        except Exception as error:  # noqa: BLE001 - the broker is away: try again
            log.warning("%s: could not start partitions %s (%r); retrying", self.stage.name, sorted(numbers), error)
            self._schedule(numbers, RETRY_BACKOFF_S)
            return
        for partition in partitions:
            if self._partitions.get(partition.number) is not partition:
                continue  # lost (a fence, a rebalance) while it was being started
            self._drop(partition)
            partition.active = True
            consumer.resume(*partition.inputs)
        log.info("%s: partitions %s active", self.stage.name, [p.number for p in partitions])
        if all(p.active for p in self._partitions.values()):
            self.active.set()

    async def _start_producer(self, partition: _Partition) -> None:
        """A new transactional producer for the partition, on every activation, even one this member had: its
        init_transactions fences any earlier producer of the id and waits until that one's last transaction is
        complete, markers written. Before that, the changelog's last stable offset and the group's committed offsets
        may still lag a transaction committed just before (a broker restart delays its markers by seconds), and the
        restore and the seek would then start from a stale position (aiokafka has no KIP-447 stable offset fetch)."""
        if partition.producer is not None:
            await _discard(partition.producer)
            partition.producer = None
        producer = AIOKafkaProducer(
            **self._producer_options(str(partition.number), transactional_id=f"{self.stage.group}.{partition.number}")
        )
        try:
            await producer.start()
        except BaseException:
            await _discard(producer)
            raise
        partition.producer = producer

    async def _restore(self, partitions: Sequence[_Partition]) -> None:
        """Read each store's changelog partition from the local position to its end (read_committed)."""
        wanted = {
            TopicPartition(topic, partition.number): (partition, store)
            for partition in partitions
            for store, topic in self.stage.changelogs.items()
        }
        if not wanted:
            return
        consumer = AIOKafkaConsumer(
            **self.settings.kafka_client(
                client_id=f"{self.stage.group}.restore",
                enable_auto_commit=False,
                isolation_level="read_committed",
                max_partition_fetch_bytes=MAX_REQUEST_BYTES,
            )
        )
        await consumer.start()
        try:
            tps = list(wanted)
            consumer.assign(tps)
            asked_at_ms = int(time.time() * 1000)  # every record past `ends` was written after this
            ends = await consumer.end_offsets(tps)
            kept_ms = min(self._tombstones_kept_ms.get(topic, DEFAULT_DELETE_RETENTION_MS) for topic in self.stage.changelogs.values())
            for partition in partitions:
                state = partition.state
                assert state is not None  # noqa: S101 - opened by _activate
                synced = state.synced_at_ms()
                if state.has_positions() and (synced is None or asked_at_ms - synced >= kept_ms // 2):
                    # a delete written since may have been compacted away from the changelog: restore it all
                    log.warning(
                        "%s: the local copy of partition %d is older than its changelogs keep deletes: restoring it "
                        "from the start", self.stage.name, partition.number,
                    )  # fmt: skip
                    state.wipe()
            for tp, (partition, store) in wanted.items():
                assert partition.state is not None  # noqa: S101 - opened by _activate
                if partition.state.position(store) > ends[tp]:
                    log.warning("%s: %s ends below the local copy: restoring it from the start", self.stage.name, tp)
                    partition.state.wipe()
            for tp, (partition, store) in wanted.items():
                assert partition.state is not None  # noqa: S101 - opened by _activate
                consumer.seek(tp, partition.state.position(store))
            remaining = {tp for tp in tps if await consumer.position(tp) < ends[tp]}
            while remaining:
                batch = await consumer.getmany(*remaining, timeout_ms=IDLE_WAIT_MS, max_records=RESTORE_RECORDS)
                for tp in list(remaining):
                    partition, store = wanted[tp]
                    assert partition.state is not None  # noqa: S101 - opened by _activate
                    messages = [m for m in batch.get(tp, []) if m.key is not None]
                    position = await consumer.position(tp)
                    partition.state.write({store: [(m.key, m.value) for m in messages]}, {store: position})
                    self.counters.restored_records += len(messages)
                    if position >= ends[tp]:
                        remaining.discard(tp)
            for partition in partitions:  # every store of it at its changelog's end as of asked_at_ms
                assert partition.state is not None  # noqa: S101 - opened by _activate
                partition.state.write({}, {}, asked_at_ms)
        finally:
            await consumer.stop()

    def _restart(self, partition: _Partition) -> None:
        """Drop the partition's work and start it again from its committed position (with a new producer: see
        _start_producer)."""
        consumer = self._consumer
        assert consumer is not None  # noqa: S101 - started by run
        partition.active = False
        self._drop(partition)
        consumer.pause(*partition.inputs)
        self.active.clear()
        self._schedule({partition.number}, RETRY_BACKOFF_S)

    async def _lose(self, partition: _Partition) -> None:
        """Fenced: another member holds this partition now. Forget it here until a rebalance gives it back."""
        consumer = self._consumer
        assert consumer is not None  # noqa: S101 - started by run
        consumer.pause(*partition.inputs)
        self._partitions.pop(partition.number, None)
        await self._close_partition(partition)
        if self.stage.on_revoked is not None:
            self.stage.on_revoked({partition.number})

    async def _close_partition(self, partition: _Partition) -> None:
        partition.active = False
        self._drop(partition)
        self._isolating.pop(partition.number, None)  # its next owner finds a refused checkpoint for itself
        self._set_aside.pop(partition.number, None)
        if partition.producer is not None:
            await _discard(partition.producer)
            partition.producer = None
        if partition.state is not None:
            partition.state.close()
            partition.state = None

    async def _close(self, consumer: AIOKafkaConsumer) -> None:
        """A graceful stop: checkpoint what is pending, leave the group, stop the producers, close the stores."""
        await self._cancel_activations()
        async with self._lock:
            if self._fatal is None:
                await self._checkpoint()
        await consumer.stop()
        for partition in list(self._partitions.values()):
            await self._close_partition(partition)
        self._partitions.clear()
        if self._producer is not None:
            await self._producer.stop()

    # --- setup ------------------------------------------------------------------------------------------------

    def _producer_options(self, name: str, **options: Any) -> dict[str, Any]:
        return self.settings.kafka_client(
            client_id=f"{self.stage.group}.{name}",
            acks="all",
            enable_idempotence=True,
            max_batch_size=PRODUCER_BATCH_BYTES,
            max_request_size=MAX_REQUEST_BYTES,
            retry_backoff_ms=PRODUCER_RETRY_BACKOFF_MS,
            **options,
        )

    async def _ensure_changelogs(self) -> None:
        """The inputs must agree on their partition count; the changelogs are created with it (compacted) if absent."""
        admin = AIOKafkaAdminClient(**self.settings.kafka_client(client_id=f"{self.stage.group}.admin"))
        await admin.start()
        try:
            partitions = await self._input_partitions(admin)
            wanted = list(self.stage.changelogs.values())
            counts = {
                t["topic"]: len(t["partitions"]) for t in await admin.describe_topics(wanted) if not t["error_code"]
            }
            for topic, count in counts.items():
                if count != partitions:
                    raise RuntimeError(f"{self.stage.name}: {topic} has {count} partitions, the inputs {partitions}")
            missing = [
                NewTopic(topic, partitions, 1, topic_configs=topic_names.CHANGELOG_CONFIG)
                for topic in wanted
                if topic not in counts
            ]
            if missing:
                try:
                    await admin.create_topics(missing)
                except TopicAlreadyExistsError:
                    pass  # another member made it between describe and create
            if wanted:
                for response in await admin.describe_configs(
                    [ConfigResource(ConfigResourceType.TOPIC, topic, configs={DELETE_RETENTION: None}) for topic in wanted]
                ):
                    for error, message, _, topic, entries in response.resources:
                        if error:  # e.g. no DescribeConfigs on the topic: the broker's default is taken
                            log.warning(
                                "%s: cannot read %s of %s (error %d: %s): taking %d ms", self.stage.name,
                                DELETE_RETENTION, topic, error, message, DEFAULT_DELETE_RETENTION_MS,
                            )  # fmt: skip
                        for entry in entries:
                            if entry[0] == DELETE_RETENTION and entry[1] is not None:
                                self._tombstones_kept_ms[topic] = int(entry[1])
        finally:
            await admin.close()

    async def _input_partitions(self, admin: AIOKafkaAdminClient) -> int:
        """The inputs' common partition count, once the broker shows them all (a topic just made takes a moment)."""
        for _ in range(INPUT_WAIT_ATTEMPTS):
            described = await admin.describe_topics(list(self.stage.inputs))
            counts = {t["topic"]: len(t["partitions"]) for t in described if not t["error_code"] and t["partitions"]}
            if len(counts) == len(self.stage.inputs):
                if len(set(counts.values())) != 1:
                    raise RuntimeError(f"{self.stage.name}: the inputs are not co-partitioned: {counts}")
                return next(iter(counts.values()))
            await asyncio.sleep(RETRY_BACKOFF_S)
        raise RuntimeError(f"{self.stage.name}: inputs missing: {sorted(set(self.stage.inputs) - set(counts))}")


async def _discard(producer: AIOKafkaProducer) -> None:
    """Stop a producer that may be mid-transaction or cut off from the broker (its successor's init_transactions
    aborts whatever it left open)."""
    try:
        await asyncio.wait_for(producer.stop(), 5)
    except Exception as error:  # noqa: BLE001 - it is being thrown away
        log.debug("discarding a producer: %r", error)
