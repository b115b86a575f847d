"""The faust wiring: topics, the shipments, deadlines and references tables, the agents and the presumed-loss clock.

Thin on purpose: every decision is made by the stages' handlers (worker.stages, over the pure core in streams/);
this module only adapts faust's events to their records (`as_record`), its tables to their stores (`TableStore`),
and sends what they return. Delivery is at-least-once; the fold is idempotent, so a replayed event changes nothing,
and a replay re-sends the current version so that no output is lost either.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
import weakref
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import AsyncIterator, Callable, Iterator, Mapping, Sequence

import faust
import faust.streams as faust_streams
from faust.types import EventT, StreamT, TableT

from connectors.carriers import load_registry
from connectors.parties import load_parties
from hubconf import topics as topic_names
from hubconf.settings import PRODUCER_BATCH_BYTES, Settings
from runtime.api import Handler, Out, Record, Store
from schemas.rejection import Rejection
from streams.clock import presumed_loss
from streams.codec import decode_state, encode_event
from streams.horizon import Horizon
from streams.merge import project
from streams.references import decode_book
from worker import fetching
from worker.consumer_guard import GatedTableManager
from worker.stages import (
    DEADLINES,
    REFERENCES,
    SHIPMENTS,
    ConnectHandler,
    Counters,
    DeadLetters,
    MergeHandler,
    ResolveHandler,
    WarmStates,
)

log = logging.getLogger("mmhub.worker")

GC_THRESHOLDS = (50_000, 20, 100)  # gen0 allocations, gen0 runs per gen1, gen1 runs per gen2; see run_worker
# A batch lets the event loop run after a shipment once this much time has passed since it last did: the producer
# then ships the versions already merged, and faust's fetcher hands over input, while the batch goes on. Without it
# a batch of N shipments sent nothing until its end. bench.latency, same hour, about 280 events/s steady: p99 to
# the status topic 122-132 ms (2 runs) against 142-248 ms (3 runs); its max rate 563-726 events/s (9 runs) against
# 489-575 (8 runs), since the sink, Postgres and the broker work alongside instead of after each batch. Only while
# faust's flow is active: a rebalance or a stop suspends it first, and from then on the batch runs to its end
# without letting them in, as before, so they never close or move a table under a batch half merged.
MERGE_YIELD_EVERY_S = 0.01
CLOCK_YIELD_EVERY = 50  # presumed-loss reports between two chances for the agents to run


@contextmanager
def events_partition(event: EventT[bytes]) -> Iterator[None]:
    """Make `event` faust's current event while a table read or write runs.

    faust picks the store and changelog partition of a table key from the task's current event. In a batch that
    mixes partitions that is whatever event was taken last, not the shipment's own. Setting the context variable
    (and only it: the stream's `current_event` attribute is read by the batching buffer) puts each access where
    it belongs.
    """
    token = faust_streams._current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        faust_streams._current_event.reset(token)


def as_record(event: EventT[bytes]) -> Record:
    """A faust event as the handlers see a consumed record (a header without a value is left out)."""
    message = event.message
    headers = getattr(message, "headers", None) or []
    pairs = headers.items() if isinstance(headers, dict) else headers
    return Record(
        message.topic,
        message.partition,
        message.offset,
        message.key,
        message.value,
        tuple((str(name), value) for name, value in pairs if value is not None),
        round(message.timestamp * 1000) if message.timestamp else 0,  # faust gives seconds, the record has ms
    )


@dataclass
class TableStore:
    """A Store over a faust Table: each read and write in the partition of `event` (see events_partition)."""

    table: TableT[bytes, bytes]
    event: EventT[bytes]

    def get(self, key: bytes) -> bytes | None:
        with events_partition(self.event):
            return self.table.get(key)

    def put(self, key: bytes, value: bytes) -> None:
        with events_partition(self.event):
            self.table[key] = value

    def delete(self, key: bytes) -> None:
        with events_partition(self.event):
            if key in self.table:
                del self.table[key]

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        """Every local entry: faust's Table offers no view of one partition (no handler reads this)."""
        return iter(list(self.table.items()))


class Gathering:
    """The batches natural_batches is still gathering, so that a rebalance or a stop can drop them.

    Why: when a rebalance or a stop begins, faust empties its agents' queues (`flow_control.clear()`) and then waits
    until every event an agent has taken is acknowledged. A batch still being gathered holds events taken and not
    acknowledged, and its stream now waits on the queue just emptied: the revoke waited for it until faust gave up
    (a 58.6 s stall in bench.scaleout's join). `drop` treats those events as faust treats the queued ones: the
    consumer forgets them, unacknowledged, so their offsets are not committed and the partition's next owner reads
    them again.
    """

    def __init__(self, forget: Callable[[EventT[bytes]], None]) -> None:
        self._forget = forget
        self._batches: list[list[EventT[bytes]]] = []

    def track(self, batch: list[EventT[bytes]]) -> None:
        self._batches.append(batch)

    def drop(self) -> int:
        dropped = 0
        for batch in self._batches:
            for event in batch:
                self._forget(event)
            dropped += len(batch)
            batch.clear()
        return dropped


def drop_gathered_on_clear(app: faust.App, gathering: Gathering) -> None:
    """Make faust's `flow_control.clear()` (a rebalance or a stop begins) drop the batches being gathered too."""
    flow = app.flow_control
    clear_queues = flow.clear

    def clear() -> None:
        clear_queues()
        dropped = gathering.drop()
        if dropped:
            log.info("flow suspended: %d events of a batch being gathered are left for the next owner", dropped)

    flow.clear = clear  # type: ignore[method-assign]


async def natural_batches(
    stream: StreamT[bytes], max_events: int, gathering: Gathering | None = None
) -> AsyncIterator[list[EventT[bytes]]]:
    """Batches of whatever is waiting: a batch closes when the agent's queue is empty or it holds max_events.

    At a trickle every event is merged as soon as it arrives (no `within` wait, as take_events would add); under
    a backlog batches grow, so several events of a shipment share one table write and one version. Events are
    acknowledged only after their batch was merged: an exception or a cancellation in between leaves them
    unacknowledged, so their offsets are not committed and they are read again. The batch being gathered is
    registered with `gathering`, which may empty it (see Gathering); the batch handed out is a copy.
    """
    stream.enable_acks = False
    queue = stream.channel.queue  # type: ignore[attr-defined]
    gathered: list[EventT[bytes]] = []
    if gathering is not None:
        gathering.track(gathered)
    async for event in stream.events():
        gathered.append(event)
        if len(gathered) < max_events and not queue.empty():
            continue
        batch = list(gathered)
        gathered.clear()
        yield batch
        for done in batch:
            await stream.ack(done)


def broker_credentials(settings: Settings) -> faust.SASLCredentials | None:
    """faust's form of Settings.kafka_client's credentials (its consumer, producer and admin all use them)."""
    client = settings.kafka_client()
    if "sasl_mechanism" not in client:
        return None
    return faust.SASLCredentials(
        username=client["sasl_plain_username"], password=client["sasl_plain_password"], mechanism=client["sasl_mechanism"]
    )


def create_app(settings: Settings) -> faust.App:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        settings.app_id,
        broker=f"kafka://{settings.kafka}",
        broker_credentials=broker_credentials(settings),
        store=settings.store,
        datadir=str(settings.data_dir / settings.app_id),
        topic_partitions=settings.partitions,
        topic_replication_factor=1,
        key_serializer="raw",
        value_serializer="raw",
        web_enabled=False,
        producer_acks=-1,
        # a dead letter carries a whole raw payload and its headers
        producer_max_request_size=topic_names.DLQ_MAX_MESSAGE_BYTES,
        table_cleanup_interval=60.0,
        # the agent's queue must be able to hold a whole batch (see natural_batches)
        stream_buffer_maxsize=max(4096, 2 * settings.batch_max),
        # A merged batch sends a version, a changelog entry and documents per shipment, several KiB each: with
        # the default 16 KiB a produce request carries two of them. No linger: while the agent merges, the
        # sender cannot run anyway, so batches fill by themselves and an idle hub sends at once.
        producer_max_batch_size=PRODUCER_BATCH_BYTES,
        # input partitions stay paused in the client until faust's post-recovery seek (see worker.consumer_guard)
        TableManager=GatedTableManager,
        # A crashed worker's partitions wait this long for its replacement; faust's default is 60 s.
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=settings.session_timeout_s / 3,
    )
    fetching.install(app, settings.fetch_max_wait_ms)
    gathering = Gathering(lambda event: app.consumer.unacked.discard(event.message))
    drop_gathered_on_clear(app, gathering)
    names = settings.topics
    events_topic = app.topic(names.events, key_type=bytes, value_type=bytes, partitions=settings.partitions)
    dlq_topic = app.topic(names.dlq, key_type=bytes, value_type=bytes, partitions=settings.partitions)
    status_topic = app.topic(names.status, key_type=bytes, value_type=bytes, partitions=settings.partitions)
    settlement_topic = app.topic(names.settlement, key_type=bytes, value_type=bytes, partitions=settings.partitions)
    claims_topic = app.topic(names.claims, key_type=bytes, value_type=bytes, partitions=settings.partitions)
    references_topic = app.topic(names.references, key_type=bytes, value_type=bytes, partitions=settings.partitions)
    parked_topic = app.topic(names.parked, key_type=bytes, value_type=bytes, partitions=settings.partitions)
    raw_topics = {
        name: app.topic(names.raw(name), key_type=bytes, value_type=bytes, partitions=settings.partitions)
        for name in topic_names.RAW_FORMATS
    }
    registry = load_registry(settings.carriers_path)
    authority = load_parties(settings.parties_path).authority()  # who owns which shipment ids: the fold's only source of the MTO
    horizon = Horizon.of(settings)
    # Both tables are co-partitioned with hub.events: each read and write runs with the shipment's own event as
    # faust's current event (events_partition), so store and changelog partition are the event's partition.
    shipments = app.Table(
        "shipments",
        default=None,
        key_type=bytes,
        value_type=bytes,
        partitions=settings.partitions,
    )
    # Shipment id -> the instant it would be presumed lost (ISO 8601); absent once delivered or reported.
    deadlines = app.Table(
        "deadlines",
        default=None,
        key_type=bytes,
        value_type=bytes,
        partitions=settings.partitions,
    )
    # Carrier reference -> its Book (registrations and parked events); co-partitioned with hub.references.
    references = app.Table(
        "references",
        default=None,
        key_type=bytes,
        value_type=bytes,
        partitions=settings.partitions,
    )
    assert sorted(app.tables) == sorted(topic_names.TABLES), "ensure_topics pre-creates every table's changelog"
    counters = Counters()
    app.mmhub_counters = counters  # type: ignore[attr-defined]
    dead_letters = DeadLetters(names.dlq, counters)
    # The stages' handlers (worker.stages); these agents only adapt faust's events to them and send what they return.
    # faust delivers at least once: a merge that takes in nothing new sends the current version again.
    connect_handler = ConnectHandler(
        {names.raw(name): name for name in topic_names.RAW_FORMATS}, registry, horizon, names, dead_letters, counters
    )
    resolve_handler = ResolveHandler(names, dead_letters, counters)
    merge_handler = MergeHandler(
        names, authority, horizon, dead_letters, counters, resend_on_replay=True, warm=WarmStates(settings.warm_states)
    )
    outputs = {
        topic.get_topic_name(): topic
        for topic in (events_topic, dlq_topic, status_topic, settlement_topic, claims_topic, references_topic, parked_topic)
    }

    async def send(outs: list[Out]) -> None:
        for out in outs:
            await outputs[out.topic].send(key=out.key, value=out.value, headers=list(out.headers) or None)

    async def merge_batch(batch: Sequence[EventT[bytes]]) -> bool:
        """Merge the batch, one call of the merge handler per input partition (its contract); True if the agent was
        cancelled while it ran (the batch was finished first)."""
        by_partition: dict[int, list[EventT[bytes]]] = defaultdict(list)
        for event in batch:
            by_partition[event.message.partition].append(event)
        yielded_at = time.perf_counter()
        stopping = False
        flow = app.flow_control
        for events in by_partition.values():
            own = events[-1]  # every event here is on this partition: the stores' reads and writes go there
            stores = {SHIPMENTS: TableStore(shipments, own), DEADLINES: TableStore(deadlines, own)}
            await send(handle(merge_handler, events, stores, "merge"))
            if not stopping and flow.is_active() and time.perf_counter() - yielded_at > MERGE_YIELD_EVERY_S:
                try:
                    await asyncio.sleep(0)
                except asyncio.CancelledError:
                    # Cancelled while the flow was active (faust's own stop suspends the flow first, so this is
                    # another path, such as a crashing service). Stopping here would leave the versions already
                    # sent unacknowledged, and the next owner would send them again: finish the batch, then stop.
                    stopping = True
                yielded_at = time.perf_counter()
        return stopping

    def handle(handler: Handler, events: list[EventT[bytes]], stores: Mapping[str, Store], what: str) -> list[Out]:
        """The handler's messages for `events` (one partition's); should the handler itself fail (a hub bug), every
        event goes to the DLQ with its original bytes."""
        records = [as_record(event) for event in events]
        try:
            return handler(records, stores)
        except Exception as error:  # noqa: BLE001 - a hub bug must not stop the agent
            log.exception("the %s handler failed on %d records from %s", what, len(records), records[0].where)
            rejection = Rejection("hub_error", f"the hub failed to {what} this: {error!r}")
            return [dead_letters(record, rejection) for record in records]

    # --- the connector stage: raw carrier payloads -> canonical events -------------------------------------------

    def connector(format_name: str) -> None:
        async def read_raw(stream: StreamT[bytes]) -> None:
            async for event in stream.events():
                await send(handle(connect_handler, [event], {}, "connect"))

        app.agent(raw_topics[format_name], name=f"connect-{format_name}")(read_raw)

    for format_name in topic_names.RAW_FORMATS:
        connector(format_name)

    # --- reference resolution: reference-only events -> their shipment -----------------------------------------

    @app.agent(references_topic, name="resolve")
    async def resolve(stream: StreamT[bytes]) -> None:
        async for event in stream.events():
            await send(handle(resolve_handler, [event], {REFERENCES: TableStore(references, event)}, "resolve"))

    @app.agent(events_topic, name="merge")
    async def merge(stream: StreamT[bytes]) -> None:
        async for batch in natural_batches(stream, settings.batch_max, gathering):
            if await merge_batch(batch):
                for event in batch:
                    await stream.ack(event)  # merged: natural_batches would have acknowledged it next
                raise asyncio.CancelledError("the worker is stopping; the batch in progress was finished first")

    @app.timer(interval=settings.clock_interval_s)
    async def presume_losses() -> None:
        """Publish the presumed-loss report of every local shipment past its deadline (see streams.clock)."""
        now = datetime.now(timezone.utc)
        overdue = 0
        for key, raw_due in list(deadlines.items()):
            if raw_due is None or datetime.fromisoformat(raw_due.decode()) > now:
                continue
            stored = shipments.get(key)
            if stored is None:
                continue
            report = presumed_loss(project(decode_state(stored), authority), now)
            if report is not None:
                log.warning("shipment %s is past its delivery deadline: publishing a presumed-loss report", key.decode())
                await events_topic.send(key=key, value=encode_event(report))
                overdue += 1
                if overdue % CLOCK_YIELD_EVERY == 0:
                    # A tick can find tens of thousands overdue (bench.state's past deadlines found 70,628): let the
                    # merge run between them instead of holding the event loop for the whole tick.
                    await asyncio.sleep(0)

    @app.timer(interval=settings.report_interval_s)
    async def report() -> None:
        now = datetime.now(timezone.utc)
        # Only the books this worker parked events in: a scan of the whole table would decode every reference
        # of every shipment (hundreds of thousands) on the event loop. The full picture is `mmhub parked`.
        waiting = [decode_book(raw).parked for raw in (references.get(k) for k in list(resolve_handler.parked)) if raw is not None]
        oldest = min((p.since for parked in waiting for p in parked), default=None)
        log.info(
            "applied=%d duplicates=%d dead_lettered=%d %s refused=%d connected=%d forwarded=%d resolved=%d "
            "parked_now=%d oldest_parked_s=%s versions_emitted=%d batches=%d largest_batch=%d oldest_input_s=%.3f "
            "warm_hits=%d warm_misses=%d",
            counters.applied,
            counters.duplicates,
            counters.dead_lettered,
            dict(counters.by_reason),
            counters.refused,
            counters.connected,
            counters.forwarded,
            counters.resolved,
            sum(len(parked) for parked in waiting),
            f"{(now - oldest).total_seconds():.0f}" if oldest else "-",
            counters.versions_emitted,
            counters.batches,
            counters.largest_batch,
            counters.oldest_input_s,
            counters.warm_hits,
            counters.warm_misses,
        )
        counters.oldest_input_s = 0.0

    return app


def run_worker(settings: Settings, loglevel: str = "info") -> None:
    """Run the stream worker in the foreground until SIGTERM/SIGINT."""
    from faust.worker import Worker

    app = create_app(settings)
    # The worker's heap is mostly long-lived (the warm states and records): with CPython's default thresholds the
    # collector walks all of it every few seconds. Measured with bench.latency at 300 events/s: p99 431 -> 280 ms,
    # and GC time in bench.pipeline 1.4 s -> 0.35 s per 15,000 events.
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    Worker(app, loglevel=loglevel).execute_from_commandline()
