"""The faust wiring: topics, the shipments and deadlines tables, the merge agent and the presumed-loss clock.

Thin on purpose: every decision is made by the pure core (streams.codec, streams.merge, streams.outbound,
streams.clock); this module only moves bytes between Kafka, the tables and those functions. Delivery is
at-least-once; the fold is idempotent, so a replayed event changes nothing, and a replay re-sends the current
version so that no output is lost either.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
import weakref
from collections import OrderedDict, defaultdict
from contextlib import contextmanager
from datetime import datetime, timezone
from dataclasses import dataclass, field
from typing import AsyncIterator, Callable, Iterator, Sequence

import faust
from pydantic import ValidationError
import faust.streams as faust_streams
from faust.types import EventT, StreamT

from connectors.carriers import load_registry, verify_kafka_headers
from connectors.formats import parser
from connectors.parties import load_parties
from hubconf.settings import DEFAULT_WARM_STATES, PRODUCER_BATCH_BYTES, Settings
from schemas.events import HUB_EVENT, HubEvent
from schemas.rejection import combine, for_event
from schemas.record import ShipmentRecord
from worker import fetching
from hubconf import topics as topic_names
from streams.clock import deadline, presumed_loss
from streams.codec import Rejection, decode_event, describe, decode_state, encode_event, encode_state, encode_status
from worker.consumer_guard import GatedTableManager
from streams.copies import Copy
from streams.horizon import Horizon
from streams.merge import ShipmentState, absorb_copies, project
from streams.outbound import claim_messages, release_messages, settlement_messages
from streams.release import completed_by
from streams.references import (
    REFERENCE_MESSAGE,
    Keyed,
    RegisterMessage,
    ResolveRequest,
    changed_registrations,
    decode_book,
    encode_book,
    parked_summary,
    register,
    register_messages,
    registrations,
    request,
    request_messages,
    settle,
    settled_messages,
)
from streams.routing import route

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


@dataclass
class Counters:
    """What the worker did with its input, so `input = applied + duplicates + dead-lettered` can be checked."""

    applied: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    refused: int = 0
    forwarded: int = 0
    connected: int = 0
    resolved: int = 0
    parked: int = 0
    versions_emitted: int = 0
    batches: int = 0
    largest_batch: int = 0
    # the oldest input (by its Kafka timestamp) a batch merged since the last report: how far behind the worker is
    oldest_input_s: float = 0.0
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

    def __init__(self, capacity: int = DEFAULT_WARM_STATES) -> None:
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
    release_topic = app.topic(names.release, key_type=bytes, value_type=bytes, partitions=settings.partitions)
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
    warm_states = WarmStates(settings.warm_states)
    parked_books: set[bytes] = set()  # reference keys whose book, as this worker last wrote it, holds parked events
    app.mmhub_counters = counters  # type: ignore[attr-defined]

    async def dead_letter(event: EventT[bytes], rejection: Rejection, value: bytes | None = None) -> None:
        """The message's original bytes (or `value`, for an event refused after it was taken in) with why."""
        message = event.message
        counters.dead_lettered += 1
        counters.by_reason[rejection.code] += 1
        where = f"{message.topic}[{message.partition}]@{message.offset}"
        if value is None:
            headers = [
                (topic_names.DLQ_REASON, rejection.reason_header()),
                (topic_names.DLQ_CODE, rejection.code.encode()),
                (topic_names.DLQ_SOURCE_TOPIC, message.topic.encode()),
                (topic_names.DLQ_SOURCE_PARTITION, str(message.partition).encode()),
                (topic_names.DLQ_SOURCE_OFFSET, str(message.offset).encode()),
            ]
        else:
            # Not the bytes of `message`: an event held in the shipment's state, refused when `message` arrived.
            headers = [
                (topic_names.DLQ_REASON, rejection.reason_header()),
                (topic_names.DLQ_CODE, rejection.code.encode()),
                (topic_names.DLQ_SOURCE_TOPIC, b"mmhub.state"),
                (topic_names.DLQ_TRIGGERED_BY, where.encode()),
            ]
        log.warning("dead-lettered %s: %s", where if value is None else "an event held in state", rejection.reason)
        origin = _header(message, topic_names.ORIGIN)
        if origin is not None and value is None:
            headers.append((topic_names.ORIGIN, origin))
        await dlq_topic.send(key=message.key, value=message.value if value is None else value, headers=headers)

    async def merge_batch(batch: Sequence[EventT[bytes]]) -> bool:
        """Merge the batch; True if the agent was cancelled while it ran (the batch was finished first)."""
        counters.batches += 1
        counters.largest_batch = max(counters.largest_batch, len(batch))
        stamped = [event.message.timestamp for event in batch if event.message.timestamp]
        if stamped:
            counters.oldest_input_s = max(counters.oldest_input_s, time.time() - min(stamped))
        accepted: dict[str, list[tuple[EventT[bytes], HubEvent]]] = defaultdict(list)
        for event in batch:
            try:
                await take_in(event, accepted)
            except Exception as error:  # noqa: BLE001 - one input must not stop the agent
                log.exception("could not take in %s; it goes to the DLQ", _where(event.message))
                await dead_letter(event, Rejection("hub_error", f"the hub failed to read this event: {error!r}"))

        yielded_at = time.perf_counter()
        stopping = False
        flow = app.flow_control
        for shipment_id, items in accepted.items():
            try:
                await merge_shipment(shipment_id, items)
            except Exception as error:  # noqa: BLE001 - one shipment's failure must not stop every other one
                # Loud, and nothing lost: the traceback goes to the log, the original bytes to the DLQ for replay.
                log.exception("merge failed for shipment %s; its %d events go to the DLQ", shipment_id, len(items))
                for event, _ in items:
                    await dead_letter(event, Rejection("hub_error", f"the hub failed to merge this event: {error!r}"))
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

    async def take_in(event: EventT[bytes], accepted: dict[str, list[tuple[EventT[bytes], HubEvent]]]) -> None:
        """Decode one input: dead-letter it, forward it to reference resolution, or add it to its shipment's items."""
        decoded = decode_event(event.message.value)
        if not isinstance(decoded, Rejection):
            decoded = horizon.refusal(decoded, received_at(event.message)) or decoded
        if isinstance(decoded, Rejection):
            await dead_letter(event, decoded)
        elif decoded.shipment_id is None:
            # Names only carrier references: resolution finds its shipment and sends it back here.
            origin = _header(event.message, topic_names.ORIGIN) or _where(event.message).encode()
            await send_references(request_messages(decoded, origin.decode("utf-8", "backslashreplace")), origin)
            counters.forwarded += 1
        elif event.message.key != decoded.shipment_id.encode():
            # A wrong key puts the event on another shipment's partition, where another worker may own it.
            await dead_letter(
                event,
                Rejection("wrong_key", f"message key must be the shipment_id {decoded.shipment_id!r}"),
            )
        else:
            accepted[decoded.shipment_id].append((event, decoded))

    async def merge_shipment(shipment_id: str, items: list[tuple[EventT[bytes], HubEvent]]) -> None:
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
        arrived = [Copy.of(hub_event) for _, hub_event in items]
        state, new_copies = absorb_copies(before, arrived)
        # A copy the state already holds may be a replay after a crash: the state was written, the worker died
        # before the status message that carried the copy reached Kafka. It goes out again with this version
        # (the sink keeps the first row it has of a copy), so Postgres never misses an event the record counts.
        taken = {copy.fingerprint for copy in new_copies}
        resent = list({copy.fingerprint: copy for copy in arrived if copy.fingerprint not in taken}.values())
        if state is before:
            # Nothing new, but this may be a replay after a crash: the stored state can be ahead of what reached
            # Kafka (the state was written, the worker died before its outputs were). Sending the current version
            # and documents again is harmless (the sink skips versions it has, documents have stable ids) and is
            # what turns at-least-once input into no lost output.
            counters.duplicates += len(items)
            record = warm.record if warm is not None else project(before, authority)
            # the release again only if a copy it rests on came back (a replay), never for any duplicate
            again = completed_by(record) & {copy.event.key for copy in resent}
            released = release_messages(None, record) if again else []
            await emit(key, record, resent, settlement_messages(None, record), claim_messages(None, record), released)
            await send_references(register_messages(registrations(before, record)))
            return
        record = project(state, authority)
        documents: list[bytes] = []
        claims: list[bytes] = []
        releases: list[bytes] = []
        previous: ShipmentRecord | None = None
        if record.settlement is not None or record.claims or record.rejected or record.booking is not None:
            previous = warm.record if warm is not None else (project(before, authority) if stored is not None else None)
            documents = settlement_messages(previous, record)
            claims = claim_messages(previous, record)
            releases = release_messages(previous, record)
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
        await emit(key, record, new_copies + resent, documents, claims, releases)
        if record.booking is not None:
            said = registrations(before, previous) if previous is not None else []
            await send_references(register_messages(changed_registrations(said, registrations(state, record))))
        await dead_letter_refusals(state, previous, record, items)

    async def dead_letter_refusals(
        state: ShipmentState, previous: ShipmentRecord | None, record: ShipmentRecord, items: list[tuple[EventT[bytes], HubEvent]]
    ) -> None:
        """An event the record newly refuses because its source may not say it (a carrier reporting on another
        carrier's leg) is kept in the state, so the record can say why, and dead-lettered once: with its original
        bytes when it came in this batch, else (the booking that shows the refusal came later) as the canonical
        event the hub holds. A conflict (a document transferred before it was issued) is only listed in the
        record: with events in any order it may be the next event that resolves it."""
        known = {r.event for r in previous.rejected if r.kind == "not_entitled"} if previous is not None else set()
        arrived = {hub_event.key: event for event, hub_event in items}
        for refusal in record.rejected:
            if refusal.kind != "not_entitled" or refusal.event in known:
                continue
            counters.refused += 1
            rejection = Rejection(refusal.kind, f"{refusal.event}: {refusal.reason}")
            if refusal.event in arrived:
                await dead_letter(arrived[refusal.event], rejection)
            else:
                copy = state.copies[refusal.event]
                await dead_letter(items[-1][0], rejection, value=encode_event(copy.event))

    async def send_references(messages: list[Keyed], origin: bytes | None = None) -> None:
        headers = [(topic_names.ORIGIN, origin)] if origin is not None else None
        for message in messages:
            await references_topic.send(key=message.key, value=message.value, headers=headers)

    async def emit(
        key: bytes,
        record: ShipmentRecord,
        new_copies: list[Copy],
        documents: list[bytes],
        claims: list[bytes],
        releases: list[bytes],
    ) -> None:
        await status_topic.send(key=key, value=encode_status(record, new_copies))
        for message in documents:
            await settlement_topic.send(key=key, value=message)
        for message in claims:
            await claims_topic.send(key=key, value=message)
        for message in releases:  # after the status: a release is sent once its record version is
            await release_topic.send(key=key, value=message)
        counters.versions_emitted += 1

    # --- the connector stage: raw carrier payloads -> canonical events -------------------------------------------

    async def connect(format_name: str, event: EventT[bytes]) -> None:
        """Verify the signature over the exact bytes, parse, route. Anything refused goes to the DLQ with the
        original payload; a payload's good events go on even when another event in it is refused."""
        message = event.message
        body = message.value or b""
        received = received_at(message)
        sender, refusal = verify_kafka_headers(
            registry, _headers(message), body, datetime.now(timezone.utc), format_name, received
        )
        if refusal is not None or sender is None:
            await dead_letter(event, refusal or Rejection("unsigned", "no carrier"))
            return
        origin = _where(message)
        refused: list[Rejection] = []
        for index, result in enumerate(parser(format_name)(body, sender)):
            routed = result if isinstance(result, Rejection) else route(result, sender, received, horizon, origin)
            if isinstance(routed, Rejection):
                refused.append(for_event(index, routed))
                continue
            for outbound in routed:
                target = events_topic if outbound.stream == "events" else references_topic
                await target.send(key=outbound.key, value=outbound.value, headers=[(topic_names.ORIGIN, origin.encode())])
            counters.connected += 1
        if refused:
            await dead_letter(event, combine(refused))  # the payload once, with every refused event's reason

    def connector(format_name: str) -> None:
        async def read_raw(stream: StreamT[bytes]) -> None:
            async for event in stream.events():
                try:
                    await connect(format_name, event)
                except Exception as error:  # noqa: BLE001 - a hub bug on one payload must not stop the stage
                    log.exception("connector %s failed on %s", format_name, _where(event.message))
                    await dead_letter(event, Rejection("hub_error", f"the hub failed to read this payload: {error!r}"))

        app.agent(raw_topics[format_name], name=f"connect-{format_name}")(read_raw)

    for format_name in topic_names.RAW_FORMATS:
        connector(format_name)

    # --- reference resolution: reference-only events -> their shipment -----------------------------------------

    async def resolve_one(event: EventT[bytes]) -> None:
        message = event.message
        key = message.key or b""
        try:
            incoming = REFERENCE_MESSAGE.validate_json(message.value or b"")
            carried = None if isinstance(incoming, RegisterMessage) else HUB_EVENT.validate_python(incoming.event)
        except ValidationError as error:
            await dead_letter(event, Rejection("invalid_reference_message", f"not a reference message: {describe(error)}"))
            return
        now = datetime.now(timezone.utc)
        with events_partition(event):
            book = decode_book(references.get(key))
        released: list[tuple[HubEvent, str | None]] = []
        if isinstance(incoming, ResolveRequest):
            assert carried is not None
            after, resolved = request(book, carried, now, incoming.origin)
            if resolved is not None:
                released.append((resolved, incoming.origin))
            elif after is not book:
                counters.parked += 1
        elif isinstance(incoming, RegisterMessage):
            after, freed = register(book, incoming.registration)
            released += [(resolved, parked.origin) for resolved, parked in freed]
        else:
            assert carried is not None
            after = settle(book, carried)
        for resolved, origin in released:
            headers = [(topic_names.ORIGIN, origin.encode())] if origin else None
            assert resolved.shipment_id is not None
            await events_topic.send(key=resolved.shipment_id.encode(), value=encode_event(resolved), headers=headers)
            await send_references(settled_messages(resolved, key.decode()))
            counters.resolved += 1
        if after is not book:
            with events_partition(event):
                references[key] = encode_book(after)
            if after.parked:
                parked_books.add(key)
            else:
                parked_books.discard(key)
            if after.parked != book.parked:
                await parked_topic.send(key=key, value=parked_summary(key.decode(), after, now))

    @app.agent(references_topic, name="resolve")
    async def resolve(stream: StreamT[bytes]) -> None:
        async for event in stream.events():
            try:
                await resolve_one(event)
            except Exception as error:  # noqa: BLE001 - loud, and the message is kept for replay
                log.exception("resolution failed on %s", _where(event.message))
                await dead_letter(event, Rejection("hub_error", f"the hub failed to resolve this: {error!r}"))

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
        waiting = [decode_book(raw).parked for raw in (references.get(k) for k in list(parked_books)) if raw is not None]
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


def _headers(message: object) -> list[tuple[str, bytes | None]]:
    headers = getattr(message, "headers", None) or []
    items = headers.items() if isinstance(headers, dict) else headers
    return [(str(name), value) for name, value in items]


def _header(message: object, name: str) -> bytes | None:
    return next((value for header, value in _headers(message) if header == name), None)


def received_at(message: object) -> datetime:
    """When the hub received a Kafka record: its timestamp, which the broker sets on the topics an event comes in by
    (LogAppendTime, hubconf.topics), so a replay of the record finds the same time."""
    return datetime.fromtimestamp(getattr(message, "timestamp"), timezone.utc)


def _where(message: object) -> str:
    return f"{getattr(message, 'topic', '?')}[{getattr(message, 'partition', '?')}]@{getattr(message, 'offset', '?')}"


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
