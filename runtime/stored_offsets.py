"""The one consume loop of the stages that write Postgres (the sink, the sharing stage, the webhook filler).

Postgres, not Kafka, decides where such a stage resumes. Per `getmany` batch the loop hands the stage's `write` the
batch's records, and in the SAME Postgres transaction stores the next offset of every partition in it
(`sink_offsets`) and sets aside in `quarantine` the records the stage could not decode. On assignment the consumer
seeks to the stored offsets (`Positions` keeps records fetched before that seek out of the writes). So a batch is
either wholly written with its offsets, or not at all and read again: after a crash, a rebalance or a COMMIT whose
acknowledgement was lost, the stage's idempotent writes see it a second time and change nothing.

A record whose rows Postgres refuses (NUL in a JSON string, a constraint) does not stop the stage: the batch is
written again record by record, each in a savepoint, and each refused one is set aside with Postgres' reason. A
lost database is an outage, not a bad record: the same batch is retried with capped backoff until it is back (or
the stage is stopped). The stored offsets are mirrored to the Kafka group, for lag tools only: at most every
MIRROR_EVERY_S, when a poll finds nothing more and at a clean stop (a commit per batch was a Kafka round trip each
time, at a trickle one per status message).

The loop owns both tables it writes in the stage's transaction, `sink_offsets` and `quarantine`, so their SQL is
here: a stage never touches either. The tables themselves are created by the hub's migrations
(connectors/postgres/migrations 0001 and 0007), which every stage runs in `setup` before its first poll.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Awaitable, Callable, Mapping, Protocol, Sequence, TypeVar

import asyncpg
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.structs import ConsumerRecord

from hubconf.settings import Settings
from runtime.api import Record
from runtime.logs import where
from runtime.metrics import forget_lag, observe_checkpoint, observe_lag, quarantined

log = logging.getLogger(__name__)

T = TypeVar("T")
Partition = tuple[str, int]  # (topic, partition); aiokafka's TopicPartition is such a tuple

POLL_TIMEOUT_MS = 500
CLOSE_TIMEOUT_S = 5.0
FIRST_BACKOFF_S = 0.1
MAX_BACKOFF_S = 5.0
MIRROR_EVERY_S = 1.0

# --- a lost database: retried, never a crash ----------------------------------------------------------------------

# What a lost or restarting database looks like to asyncpg: worth a reconnect and a retry, never a crash.
# Class 40 (serialization failure, deadlock) is the database asking for exactly that retry.
TRANSIENT: tuple[type[BaseException], ...] = (
    OSError,  # refused, reset, timed out (TimeoutError is an OSError)
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,  # admin shutdown, pg_terminate_backend, starting up
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.TransactionRollbackError,
)


def transient(error: BaseException) -> bool:
    """Is this a lost or restarting database, worth a fresh connection and a retry?"""
    if isinstance(error, TRANSIENT):
        return True
    # A connection killed under asyncpg can surface as a client-state error instead ("cannot call
    # Transaction.__aexit__(): the underlying connection is closed", "cannot switch to state ..."). Only these
    # exact types: their subclasses (bad argument encoding, configuration) are bugs a retry would not fix.
    return type(error) in (asyncpg.InterfaceError, asyncpg.exceptions.InternalClientError)


class Stopped(Exception):
    """Raised out of a database retry when the stage is asked to stop while Postgres is still unreachable."""


async def patiently(
    attempt: Callable[[], Awaitable[T]], stop: asyncio.Event, on_lost: Callable[[], None] | None = None
) -> T:
    """`attempt()`, tried again with capped exponential backoff (FIRST_BACKOFF_S doubling up to MAX_BACKOFF_S) while
    it fails with a `transient` error (`on_lost` is called after each such failure); Stopped if `stop` is set
    meanwhile. An attempt is one transaction, so a retry starts it over from nothing."""
    delay = FIRST_BACKOFF_S
    while True:
        try:
            return await attempt()
        except Exception as error:
            if not transient(error):
                raise
            # a connect timeout's TimeoutError has no text of its own: say what it was
            said = str(error) or "no answer within MMHUB_PG_CONNECT_TIMEOUT_S"
            log.warning("Postgres unavailable (%s: %s); retrying in %.1fs", type(error).__name__, said, delay)
            if on_lost is not None:
                on_lost()
        try:
            await asyncio.wait_for(stop.wait(), delay)
        except TimeoutError:
            delay = min(delay * 2, MAX_BACKOFF_S)
            continue
        raise Stopped


class Database:
    """One connection (made by `connect`), replaced whenever it is lost; every operation retried `patiently`.

    The loop's batches and its rebalance listener take turns (one lock), so one connection is enough. If the lost
    reply was a successful COMMIT, the retry repeats an idempotent write.
    """

    def __init__(self, connect: Callable[[], Awaitable[asyncpg.Connection]], stop: asyncio.Event) -> None:
        self._connect = connect
        self._stop = stop
        self._conn: asyncpg.Connection | None = None

    async def run(self, operation: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        async def attempt() -> T:
            if self._conn is None or self._conn.is_closed():
                self._conn = await self._connect()
            return await operation(self._conn)

        return await patiently(attempt, self._stop, self._discard)

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


# --- the quarantine: a record Postgres refuses is set aside, the stage goes on ----------------------------------

# What Postgres says about a record's own data: a value it cannot store (class 22: NUL in text or jsonb, an
# untranslatable character, a number out of range), a constraint the row breaks (23), a value too large (54), or
# asyncpg refusing to encode an argument (a lone surrogate). Anything else that is not `transient` (a hub bug, a
# broken schema) stops the stage: quarantining every record would hide it.
BAD_RECORD: tuple[type[BaseException], ...] = (
    asyncpg.exceptions.DataError,
    asyncpg.exceptions.IntegrityConstraintViolationError,
    asyncpg.exceptions.ProgramLimitExceededError,
    asyncpg.exceptions._base.DataError,
    UnicodeError,
)


def bad_record(error: BaseException) -> bool:
    """Did Postgres (or asyncpg) refuse this because of the record's own data?"""
    return isinstance(error, BAD_RECORD)


def refused_by_postgres(error: BaseException) -> str:
    return f"Postgres refused it: {type(error).__name__}: {error}"


@dataclass(frozen=True)
class SetAside:
    """One consumed record, as it came, and why it could not be applied."""

    record: Record
    reason: str


def storable(reason: str) -> str:
    """`reason` as text Postgres takes: a reason may quote the very character that made the record bad."""
    return reason.replace("\x00", "\\x00").encode("utf-8", "backslashreplace").decode("utf-8")


SET_ASIDE = """
INSERT INTO quarantine (stage, consumer, topic, partition, kafka_offset, kafka_timestamp, key, value, reason)
SELECT $1, $2, q.topic, q.partition, q.kafka_offset, q.kafka_timestamp, q.key, q.value, q.reason
FROM unnest($3::text[], $4::integer[], $5::bigint[], $6::bigint[], $7::bytea[], $8::bytea[], $9::text[])
    AS q(topic, partition, kafka_offset, kafka_timestamp, key, value, reason)
ON CONFLICT (consumer, topic, partition, kafka_offset) DO NOTHING
"""


async def set_aside(conn: asyncpg.Connection, stage: str, consumer: str, records: Sequence[SetAside]) -> None:
    """Quarantine `records` (inside the caller's transaction, with its offsets); one already there stays as is."""
    if not records:
        return
    kept = [r.record for r in records]
    await conn.execute(
        SET_ASIDE,
        stage,
        consumer,
        [r.topic for r in kept],
        [r.partition for r in kept],
        [r.offset for r in kept],
        [r.timestamp_ms for r in kept],
        [r.key for r in kept],
        [r.value for r in kept],
        [storable(r.reason) for r in records],
    )


class Write(Protocol):
    """A stage's write of consumed records, inside the loop's transaction (which also stores the offsets past
    them). Returns the records it could not decode, to be set aside in that transaction; raises what Postgres
    raises for a record it refuses (the loop then writes the records one by one)."""

    def __call__(self, conn: asyncpg.Connection, records: Sequence[Record]) -> Awaitable[Sequence[SetAside]]: ...


async def write_one(conn: asyncpg.Connection, write: Write, record: Record) -> str | None:
    """`record` written by `write` in a savepoint of the caller's transaction: None once written, else why it is
    set aside (the stage could not decode it, or Postgres refused its rows, which are then rolled back). The
    loop's way past a refused record, and `mmhub quarantine replay`'s."""
    try:
        async with conn.transaction():  # a savepoint
            refused = await write(conn, [record])
    except Exception as error:
        if not bad_record(error):
            raise
        log.warning("set aside %s: %s", record.where, error, extra=where(record.topic, record.partition, record.offset))
        return refused_by_postgres(error)
    return refused[0].reason if refused else None


# --- where each partition resumes: the offsets stored in Postgres -------------------------------------------------

SAVE_OFFSETS = """
INSERT INTO sink_offsets (consumer, topic, partition, next_offset)
SELECT $1, o.topic, o.partition, o.next_offset FROM unnest($2::text[], $3::integer[], $4::bigint[])
    AS o(topic, partition, next_offset)
ON CONFLICT (consumer, topic, partition) DO UPDATE SET next_offset = EXCLUDED.next_offset
WHERE sink_offsets.next_offset < EXCLUDED.next_offset
"""
LOAD_OFFSETS = """
SELECT topic, partition, next_offset FROM sink_offsets WHERE consumer = $1 AND topic = ANY($2::text[])
"""


async def save_offsets(conn: asyncpg.Connection, consumer: str, next_offsets: dict[Partition, int]) -> None:
    """Store `next_offsets` (only ever forward), in the caller's transaction."""
    ordered = sorted(next_offsets.items())
    await conn.execute(
        SAVE_OFFSETS, consumer, [t for (t, _), _ in ordered], [p for (_, p), _ in ordered], [o for _, o in ordered]
    )


@dataclass(frozen=True)
class Admitted:
    records: list[Record]
    reseek: dict[Partition, int]  # partition -> offset to fetch again from


@dataclass
class Positions:
    """Which consumed records the stage may write: only those read from the positions Postgres chose, in order.

    aiokafka starts fetching a newly assigned partition (from Kafka's committed offset) before the rebalance
    listener has seeked it to the offset stored in Postgres (aio-libs/aiokafka#738). A batch polled across that
    moment can hold records from the wrong position: written, they could move the stored offset past a gap. So a
    partition's records count only once the listener has settled it, and only from a poll that began after that.
    Pure bookkeeping, per settled partition: the next offset to write and when (in settle ticks) it was settled.
    The loop calls it under the lock it shares with the listener.
    """

    _next: dict[Partition, int] = field(default_factory=dict)
    _settled_at: dict[Partition, int] = field(default_factory=dict)
    _clock: int = 0

    @property
    def clock(self) -> int:
        """Read before each poll and hand to `admit`, so it can tell what was fetched before a settle."""
        return self._clock

    def settle(self, partition: Partition, next_offset: int) -> None:
        """The listener has seeked `partition` to `next_offset`: records from there on may be written."""
        self._clock += 1
        self._next[partition] = next_offset
        self._settled_at[partition] = self._clock

    def forget(self, partitions: Sequence[Partition]) -> None:
        """Revoked partitions: nothing more of theirs is written until they are assigned and settled again."""
        for partition in partitions:
            self._next.pop(partition, None)
            self._settled_at.pop(partition, None)

    def admit(self, polled_at: int, records: Sequence[Record]) -> Admitted:
        """The records to write, and the partitions to seek back because this poll straddled their settle.

        Dropped: unsettled partitions (their settle will position them), partitions settled during the poll
        (fetched maybe before the seek; fetched again from the settled offset), and anything before the next
        offset to write (already written).
        """
        keep: list[Record] = []
        reseek: dict[Partition, int] = {}
        for record in records:
            partition = (record.topic, record.partition)
            if partition not in self._next:
                continue
            if self._settled_at[partition] > polled_at:
                reseek[partition] = self._next[partition]
            elif record.offset >= self._next[partition]:
                keep.append(record)
        return Admitted(keep, reseek)

    def lags(self, highwater: Callable[[Partition], int | None], fetched: Mapping[Partition, int]) -> dict[Partition, int]:
        """Per settled partition whose high watermark is known, the offsets past the next one to write. A
        transaction's commit marker takes an offset no record has: once everything fetched is written, the fetch
        position (past the marker) is where the stage stands, so a partition that ends in a marker shows no lag."""
        found = {partition: highwater(partition) for partition in self._next}
        return {
            partition: max(0, end - max(self._next[partition], fetched.get(partition, 0)))
            for partition, end in found.items()
            if end is not None
        }

    def advance(self, next_offsets: dict[Partition, int]) -> None:
        """After a batch is committed: its partitions continue from where it ended."""
        for partition, offset in next_offsets.items():
            if partition in self._next:
                self._next[partition] = max(self._next[partition], offset)


def next_offsets(records: Sequence[Record]) -> dict[Partition, int]:
    """Per partition of `records`, the offset after the last of them."""
    found: dict[Partition, int] = {}
    for record in records:
        partition = (record.topic, record.partition)
        found[partition] = max(found.get(partition, 0), record.offset + 1)
    return found


class SeekToStoredOffsets(ConsumerRebalanceListener):
    """On assignment, position each partition at the offset Postgres holds for it, or at the beginning.

    `lock` is shared with the poll loop, so a partition is never seeked while a batch of it is being written.
    """

    def __init__(self, consumer: AIOKafkaConsumer, db: Database, group: str) -> None:
        self._consumer = consumer
        self._db = db
        self._group = group
        self.lock = asyncio.Lock()
        self.positions = Positions()
        # aiokafka logs and swallows listener errors; the poll loop re-raises this instead.
        self.error: Exception | None = None

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        # Under the lock: a batch being written finishes first, so the next owner starts after it.
        async with self.lock:
            self.positions.forget([(tp.topic, tp.partition) for tp in revoked])
        forget_lag(self._group, [(tp.topic, tp.partition) for tp in revoked])

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        partitions = sorted((tp.topic, tp.partition) for tp in assigned)
        topics = sorted({topic for topic, _ in partitions})
        async with self.lock:
            try:
                rows = await self._db.run(lambda conn: conn.fetch(LOAD_OFFSETS, self._group, topics))
            except Stopped:
                return  # left unsettled: the poll loop writes nothing of these partitions
            except Exception as error:
                self.error = error
                raise
            held = {(row["topic"], row["partition"]): row["next_offset"] for row in rows}
            stored = {partition: held[partition] for partition in partitions if partition in held}
            for (topic, partition), offset in stored.items():
                self._consumer.seek(TopicPartition(topic, partition), offset)
            fresh = [TopicPartition(*partition) for partition in partitions if partition not in stored]
            if fresh:
                await self._consumer.seek_to_beginning(*fresh)
            for partition in partitions:
                self.positions.settle(partition, stored.get(partition, 0))
        log.info("%s: resuming at stored offsets %s, from the beginning on %s", self._group, stored, fresh)


# --- the loop -------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PostgresStage:
    """A stage that writes Postgres: what it consumes and how it writes a batch of it."""

    name: str  # its rows in `quarantine` (column `stage`): "sink", "share", "webhooks"
    group: str  # its consumer group, and the key of its rows in `sink_offsets` and `quarantine`
    write: Write
    connect: Callable[[], Awaitable[asyncpg.Connection]]  # a session in the stage's schema, named for pg_stat_activity
    topics: tuple[str, ...] = ()
    pattern: str | None = None  # instead of `topics`: every topic matching this regex, as they appear
    metadata_max_age_ms: int | None = None  # how soon a new topic matching `pattern` is consumed
    setup: Callable[[Database], Awaitable[object]] | None = None  # before the first poll (migrations)
    # called before the first poll, after every poll and once more at a clean stop (the share stage's outbox)
    between: Callable[[Database], Awaitable[None]] | None = None


async def run_stored_offsets(
    settings: Settings,
    stage: PostgresStage,
    stop: asyncio.Event,
    on_batch: Callable[[int], object] | None = None,
    max_records: int | None = 500,
) -> None:
    """Consume `stage`'s topics from the offsets stored in Postgres and write each batch with them, until `stop`.

    `on_batch` is called with the number of records in each batch as soon as Postgres has it (a reader polling
    Postgres may already see it), before the mirror to Kafka. Returns once stopped, also when stopped while
    Postgres is unreachable (the unwritten batch is read again on restart); raises a non-transient database error
    and a Kafka error.
    """
    db = Database(stage.connect, stop)  # connects on first use: a database down at start is just another outage
    options = {} if stage.metadata_max_age_ms is None else {"metadata_max_age_ms": stage.metadata_max_age_ms}
    consumer = AIOKafkaConsumer(
        **settings.kafka_client(),
        group_id=stage.group,
        client_id=stage.group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",  # what a transactional producer aborted is never written
        # a fetch naming only quiet partitions must not hold the busy ones back (see worker.fetching)
        fetch_max_wait_ms=settings.fetch_max_wait_ms,
        **options,
    )
    listener = SeekToStoredOffsets(consumer, db, stage.group)
    unmirrored: dict[Partition, int] = {}
    mirrored_at = time.monotonic()
    try:
        if stage.setup is not None:
            await stage.setup(db)
        if stage.between is not None:
            await stage.between(db)
        if stage.pattern is not None:
            consumer.subscribe(pattern=stage.pattern, listener=listener)
        else:
            consumer.subscribe(list(stage.topics), listener=listener)
        await consumer.start()
        while not stop.is_set():
            polled_at = listener.positions.clock
            fetched = await consumer.getmany(timeout_ms=POLL_TIMEOUT_MS, max_records=max_records)
            if listener.error is not None:
                raise listener.error
            if stop.is_set():
                break  # not written, so not lost: a restart reads it again from the stored offsets
            async with listener.lock:
                consumed = [_record(m) for _, messages in sorted(fetched.items()) for m in messages]
                admitted = listener.positions.admit(polled_at, consumed)
                for partition, offset in admitted.reseek.items():
                    consumer.seek(TopicPartition(*partition), offset)
                written = next_offsets(admitted.records)
                if admitted.records:
                    started = time.monotonic()
                    refused = await _commit(db, stage, admitted.records, written)
                    _observe(stage, time.monotonic() - started, admitted.records, refused)
                    listener.positions.advance(written)
                # only partitions held now: a rebalance may have taken one since the batch (highwater asserts)
                fetched = {}
                for tp in list(consumer.assignment()):
                    if tp in consumer.assignment():
                        fetched[(tp.topic, tp.partition)] = await consumer.position(tp)
                held_now = {(tp.topic, tp.partition) for tp in consumer.assignment()}
                observe_lag(
                    stage.group,
                    listener.positions.lags(
                        lambda p: consumer.highwater(TopicPartition(*p)) if p in held_now else None, fetched
                    ),
                )
            if admitted.records and on_batch is not None:
                on_batch(len(admitted.records))
            if stage.between is not None:
                await stage.between(db)
            unmirrored.update(written)
            if mirror_due(bool(unmirrored), not consumed, time.monotonic() - mirrored_at):
                await _mirror(consumer, unmirrored)
                unmirrored, mirrored_at = {}, time.monotonic()
        if stage.between is not None:
            await stage.between(db)
        await _mirror(consumer, unmirrored)
    except Stopped:
        log.info("%s: stopped while Postgres was unreachable; the unwritten batch is read again on restart", stage.group)
    finally:
        await consumer.stop()
        await db.close()


def mirror_due(pending: bool, idle: bool, since_s: float) -> bool:
    """Mirror the stored offsets to Kafka now? When some are not mirrored yet, and the poll found nothing or
    MIRROR_EVERY_S have passed since the last mirror."""
    return pending and (idle or since_s >= MIRROR_EVERY_S)


def _record(message: ConsumerRecord) -> Record:
    """aiokafka's consumed record as the stage sees it."""
    return Record(
        message.topic,
        message.partition,
        message.offset,
        message.key,
        message.value,
        tuple(message.headers),
        message.timestamp,
    )


async def _commit(
    db: Database, stage: PostgresStage, records: list[Record], offsets: dict[Partition, int]
) -> Sequence[SetAside]:
    """The batch, its set-aside records and its offsets in one transaction; if Postgres refuses a record of it,
    the same again record by record, each in a savepoint, setting aside each one refused, so the others land.
    Returns the records set aside."""

    async def together(conn: asyncpg.Connection) -> Sequence[SetAside]:
        async with conn.transaction():
            refused = await stage.write(conn, records)
            await set_aside(conn, stage.name, stage.group, refused)
            await save_offsets(conn, stage.group, offsets)
        return refused

    async def one_by_one(conn: asyncpg.Connection) -> Sequence[SetAside]:
        async with conn.transaction():
            refused: list[SetAside] = []
            for record in records:
                reason = await write_one(conn, stage.write, record)
                if reason is not None:
                    refused.append(SetAside(record, reason))
            await set_aside(conn, stage.name, stage.group, refused)
            await save_offsets(conn, stage.group, offsets)
        return refused

    try:
        return await db.run(together)
    except Exception as error:
        if not bad_record(error):
            raise
        log.warning("Postgres refused a record of a batch of %d (%s); writing them one by one", len(records), error)
    return await db.run(one_by_one)


def _observe(stage: PostgresStage, seconds: float, records: list[Record], refused: Sequence[SetAside]) -> None:
    """A committed batch, to runtime.metrics: its records per topic, those written, those set aside."""
    observe_checkpoint(
        stage.name, seconds, Counter(r.topic for r in records), {"postgres": len(records) - len(refused)}
    )
    quarantined(stage.name, [r.record.topic for r in refused])


async def _mirror(consumer: AIOKafkaConsumer, offsets: dict[Partition, int]) -> None:
    """Mirror the stored offsets into the Kafka group, so lag tools see progress.

    Postgres stays the record of where to resume, so a failed commit (say, the partition moved in a rebalance)
    is only worth a warning.
    """
    assigned = consumer.assignment()
    wanted = {TopicPartition(*partition): offset for partition, offset in offsets.items()}
    wanted = {tp: offset for tp, offset in wanted.items() if tp in assigned}
    if not wanted:
        return
    try:
        await consumer.commit(wanted)
    except KafkaError as error:
        log.warning("could not mirror offsets %s to Kafka: %s", offsets, error)
