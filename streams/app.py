"""The faust wiring: topics, the shipments and deadlines tables, the merge agent and the presumed-loss clock.

Thin on purpose: every decision is made by the pure core (streams.codec, streams.merge, streams.outbound,
streams.clock); this module only moves bytes between Kafka, the tables and those functions. Delivery is
at-least-once; the fold is idempotent, so a replayed event changes nothing, and a replay re-sends the current
version so that no output is lost either.
"""

from __future__ import annotations

import logging
import weakref
from collections import OrderedDict, defaultdict
from contextlib import contextmanager
from datetime import datetime, timezone
from dataclasses import dataclass, field
from typing import Iterator, Sequence

import faust
import faust.streams as faust_streams
from faust.types import EventT, StreamT

from mmhub.config import Settings
from schemas.events import HubEvent
from schemas.record import ShipmentRecord
from streams import topics as topic_names
from streams.clock import deadline, presumed_loss
from streams.codec import Rejection, decode_event, decode_state, encode_event, encode_state, encode_status
from streams.copies import Copy
from streams.merge import ShipmentState, absorb, project
from streams.outbound import claim_messages, settlement_messages

log = logging.getLogger("mmhub.worker")

BATCH_MAX = 500
BATCH_WITHIN_S = 0.05


@dataclass
class Counters:
    """What the worker did with its input, so `input = applied + duplicates + dead-lettered` can be checked."""

    applied: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    versions_emitted: int = 0
    warm_hits: int = 0
    warm_misses: int = 0
    by_reason: dict[str, int] = field(default_factory=lambda: defaultdict(int))


@dataclass
class Warm:
    """A shipment as this worker last wrote it: the stored bytes, the state they encode and its record."""

    stored: bytes
    state: ShipmentState
    record: ShipmentRecord


class WarmStates:
    """The most recently written shipments, so a batch need not re-validate and re-project what this worker
    already holds. An entry is used only while the table still holds the very bytes it was made from: after a
    rebalance another worker may have written the shipment, and then the table wins."""

    def __init__(self, capacity: int = 20_000) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[bytes, Warm] = OrderedDict()

    def get(self, key: bytes, stored: bytes | None) -> Warm | None:
        warm = self._entries.get(key)
        if warm is None or stored is None or warm.stored != stored:
            return None
        self._entries.move_to_end(key)
        return warm

    def put(self, key: bytes, warm: Warm) -> None:
        self._entries[key] = warm
        self._entries.move_to_end(key)
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)


@contextmanager
def events_partition(event: EventT) -> Iterator[None]:
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


def create_app(settings: Settings) -> faust.App:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        settings.app_id,
        broker=f"kafka://{settings.kafka}",
        store=settings.store,
        datadir=str(settings.data_dir / settings.app_id),
        topic_partitions=settings.partitions,
        topic_replication_factor=1,
        key_serializer="raw",
        value_serializer="raw",
        web_enabled=False,
        producer_acks=-1,
        table_cleanup_interval=60.0,
    )
    names = settings.topics
    events_topic = app.topic(names.events, key_type=bytes, value_type=bytes, partitions=settings.partitions)
    dlq_topic = app.topic(names.dlq, key_type=bytes, value_type=bytes, partitions=settings.partitions)
    status_topic = app.topic(names.status, key_type=bytes, value_type=bytes, partitions=settings.partitions)
    settlement_topic = app.topic(names.settlement, key_type=bytes, value_type=bytes, partitions=settings.partitions)
    claims_topic = app.topic(names.claims, key_type=bytes, value_type=bytes, partitions=settings.partitions)
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
    counters = Counters()
    warm_states = WarmStates()
    app.mmhub_counters = counters  # type: ignore[attr-defined]

    async def dead_letter(event: EventT, rejection: Rejection) -> None:
        message = event.message
        counters.dead_lettered += 1
        counters.by_reason[rejection.code] += 1
        log.warning(
            "dead-lettered %s[%d]@%d: %s", message.topic, message.partition, message.offset, rejection.reason
        )
        await dlq_topic.send(
            key=message.key,
            value=message.value,
            headers=[
                (topic_names.DLQ_REASON, rejection.reason.encode()),
                (topic_names.DLQ_CODE, rejection.code.encode()),
                (topic_names.DLQ_SOURCE_TOPIC, message.topic.encode()),
                (topic_names.DLQ_SOURCE_PARTITION, str(message.partition).encode()),
                (topic_names.DLQ_SOURCE_OFFSET, str(message.offset).encode()),
            ],
        )

    async def merge_batch(batch: Sequence[EventT]) -> None:
        accepted: dict[str, list[tuple[EventT, HubEvent]]] = defaultdict(list)
        for event in batch:
            decoded = decode_event(event.message.value)
            if isinstance(decoded, Rejection):
                await dead_letter(event, decoded)
            elif decoded.shipment_id is None:
                await dead_letter(
                    event,
                    Rejection("unresolved", "event names only carrier references; send it with its hub shipment_id"),
                )
            elif event.message.key != decoded.shipment_id.encode():
                # A wrong key puts the event on another shipment's partition, where another worker may own it.
                await dead_letter(
                    event,
                    Rejection("wrong_key", f"message key must be the shipment_id {decoded.shipment_id!r}"),
                )
            else:
                accepted[decoded.shipment_id].append((event, decoded))

        for shipment_id, items in accepted.items():
            try:
                await merge_shipment(shipment_id, items)
            except Exception as error:  # noqa: BLE001 - one shipment's failure must not stop every other one
                # Loud, and nothing lost: the traceback goes to the log, the original bytes to the DLQ for replay.
                log.exception("merge failed for shipment %s; its %d events go to the DLQ", shipment_id, len(items))
                for event, _ in items:
                    await dead_letter(event, Rejection("hub_error", f"the hub failed to merge this event: {error!r}"))

    async def merge_shipment(shipment_id: str, items: list[tuple[EventT, HubEvent]]) -> None:
        key = shipment_id.encode()
        own_event = items[-1][0]  # every item is on this shipment's partition; reads and writes go there
        with events_partition(own_event):
            stored = shipments.get(key)
        warm = warm_states.get(key, stored)
        if warm is not None:
            counters.warm_hits += 1
            before = warm.state
        else:
            counters.warm_misses += int(stored is not None)
            before = decode_state(stored) if stored is not None else ShipmentState(shipment_id)
        state, new_copies = absorb(before, [hub_event for _, hub_event in items])
        if state is before:
            # Nothing new, but this may be a replay after a crash: the stored state can be ahead of what reached
            # Kafka (the state was written, the worker died before its outputs were). Sending the current version
            # and documents again is harmless (the sink skips versions it has, documents have stable ids) and is
            # what turns at-least-once input into no lost output.
            counters.duplicates += len(items)
            record = warm.record if warm is not None else project(before)
            await emit(key, record, [], settlement_messages(None, record), claim_messages(None, record))
            return
        record = project(state)
        documents: list[bytes] = []
        claims: list[bytes] = []
        if record.settlement is not None or record.claims:
            previous = warm.record if warm is not None else (project(before) if stored is not None else None)
            documents = settlement_messages(previous, record)
            claims = claim_messages(previous, record)
        due = deadline(record)
        encoded = encode_state(state)
        with events_partition(own_event):
            shipments[key] = encoded
            if due is not None:
                if deadlines.get(key) != (stamp := due.isoformat().encode()):
                    deadlines[key] = stamp
            elif key in deadlines:
                del deadlines[key]
        warm_states.put(key, Warm(encoded, state, record))
        counters.applied += len(new_copies)
        counters.duplicates += len(items) - len(new_copies)
        await emit(key, record, new_copies, documents, claims)

    async def emit(
        key: bytes, record: ShipmentRecord, new_copies: list[Copy], documents: list[bytes], claims: list[bytes]
    ) -> None:
        await status_topic.send(key=key, value=encode_status(record, new_copies))
        for message in documents:
            await settlement_topic.send(key=key, value=message)
        for message in claims:
            await claims_topic.send(key=key, value=message)
        counters.versions_emitted += 1

    @app.agent(events_topic, name="merge")
    async def merge(stream: StreamT) -> None:
        async for batch in stream.take_events(BATCH_MAX, within=BATCH_WITHIN_S):
            await merge_batch(batch)

    @app.timer(interval=settings.clock_interval_s)
    async def presume_losses() -> None:
        """Publish the presumed-loss report of every local shipment past its deadline (see streams.clock)."""
        now = datetime.now(timezone.utc)
        for key, raw_due in list(deadlines.items()):
            if raw_due is None or datetime.fromisoformat(raw_due.decode()) > now:
                continue
            stored = shipments.get(key)
            if stored is None:
                continue
            report = presumed_loss(project(decode_state(stored)), now)
            if report is not None:
                log.warning("shipment %s is past its delivery deadline: publishing a presumed-loss report", key.decode())
                await events_topic.send(key=key, value=encode_event(report))

    @app.timer(interval=settings.report_interval_s)
    async def report() -> None:
        log.info(
            "applied=%d duplicates=%d dead_lettered=%d %s versions_emitted=%d warm_hits=%d warm_misses=%d",
            counters.applied,
            counters.duplicates,
            counters.dead_lettered,
            dict(counters.by_reason),
            counters.versions_emitted,
            counters.warm_hits,
            counters.warm_misses,
        )

    return app


def run_worker(settings: Settings, loglevel: str = "info") -> None:
    """Run the stream worker in the foreground until SIGTERM/SIGINT."""
    from faust.worker import Worker

    app = create_app(settings)
    Worker(app, loglevel=loglevel).execute_from_commandline()
