"""The worker's high-volume stages as handlers over runtime.api: records of one input partition and that partition's
stores in, messages to produce out. No Kafka here: the stage runtime that feeds them (runtime.loop, started by
worker.app) consumes, stores and produces.

- ConnectHandler: raw carrier payloads -> verify the signature over the exact bytes -> parse -> route.
- ResolveHandler: hub.references (resolve requests, registrations, settled notices) -> the reference books
  (store "references") -> released events to hub.events.
- MergeHandler: hub.events -> the shipment states (store "shipments") and deadlines (store "deadlines") through
  streams.step.merge_step -> status versions, settlement documents, claims, registrations, refusals.

A handler never raises for one bad record: what it refuses goes to the DLQ (`DeadLetters`) with the original bytes
and a reason, and a hub bug on one record (or one shipment) dead-letters that record (or that shipment's records)
and the rest go on.
"""

from __future__ import annotations

import logging
from collections import OrderedDict, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Callable, Generic, Iterable, Iterator, Mapping, Sequence, TypeVar

import orjson
from pydantic import ValidationError

from connectors.carriers import CarrierRegistry, verify_kafka_headers
from connectors.formats import parser
from hubconf import topics as topic_names
from hubconf.settings import DEFAULT_PARKED_TTL_S, DEFAULT_WARM_STATES
from hubconf.topics import Topics
from runtime.api import Out, Record, Staged, Store, take_and_flush
from schemas.events import HUB_EVENT, HubEvent
from schemas.record import ShipmentRecord
from schemas.rejection import Rejection, combine, describe, for_event
from streams.authority import Authority
from streams.codec import decode_event, encode_event, entry_key
from streams.horizon import Horizon
from streams.merge import ShipmentState
from streams.references import (
    EMPTY_BOOK_BYTES,
    PARKED_PER_SOURCE,
    REFERENCE_MESSAGE,
    Book,
    ExpireMessage,
    Keyed,
    RegisterMessage,
    Registered,
    ResolveRequest,
    book_refusal,
    decode_book,
    encode_book,
    entry_bytes,
    expire,
    parked_bytes,
    holds_parked,
    parked_summary,
    register,
    request,
    request_messages,
    settle,
    settled_messages,
)
from streams.routing import route
from streams.step import StepResult, Stored, merge_step

log = logging.getLogger("mmhub.worker")

SHIPMENTS, DEADLINES, REFERENCES = topic_names.TABLES  # the stores, by name


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


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


def received_at(record: Record) -> datetime:
    """When the hub received a Kafka record: its timestamp, which the broker sets on the topics an event comes in by
    (LogAppendTime, hubconf.topics), so a replay of the record finds the same time."""
    return datetime.fromtimestamp(record.timestamp_ms / 1000, timezone.utc)


@dataclass
class DeadLetters:
    """The one dead-letter builder of every stage: a record's original bytes (or `held`, an event the shipment's
    state holds, refused when `record` arrived) with why, to the DLQ topic `topic`."""

    topic: str
    counters: Counters

    def __call__(self, record: Record, rejection: Rejection, held: bytes | None = None, origin: str | None = None) -> Out:
        self.counters.dead_lettered += 1
        self.counters.by_reason[rejection.code] += 1
        headers = [(topic_names.DLQ_REASON, rejection.reason_header()), (topic_names.DLQ_CODE, rejection.code.encode())]
        if held is None:
            headers += record.source_headers()
        else:
            headers += [(topic_names.DLQ_SOURCE_TOPIC, b"mmhub.state"), (topic_names.DLQ_TRIGGERED_BY, record.where.encode())]
        if origin is not None:  # the carrier's raw record the held event came from
            headers.append((topic_names.ORIGIN, origin.encode()))
        log.warning("dead-lettered %s: %s", record.where if held is None else "an event the hub held", rejection.reason)
        key, value, cut = topic_names.dead_letter_bytes(record.key, record.value if held is None else held)
        return Out(self.topic, key, value, tuple(headers + cut))


def _references(topics: Topics, messages: list[Keyed], origin: bytes | None = None) -> list[Out]:
    headers = ((topic_names.ORIGIN, origin),) if origin is not None else ()
    return [Out(topics.references, message.key, message.value, headers) for message in messages]


# --- the connector stage: raw carrier payloads -> canonical events ------------------------------------------------


@dataclass
class ConnectHandler:
    """Verify the signature over the exact bytes, parse, route. Anything refused goes to the DLQ with the original
    payload, once, with every refused event's reason; a payload's good events go on even when another is refused.
    `formats` maps each raw topic (full name) to its format."""

    formats: Mapping[str, str]
    registry: CarrierRegistry
    horizon: Horizon
    topics: Topics
    dead_letters: DeadLetters
    counters: Counters

    def __call__(self, records: Sequence[Record], stores: Mapping[str, Store]) -> list[Out]:
        out: list[Out] = []
        for record in records:
            try:
                out += self.connect(record)
            except Exception as error:  # noqa: BLE001 - a hub bug on one payload must not stop the stage
                log.exception("connector failed on %s", record.where)
                out.append(self.dead_letters(record, Rejection("hub_error", f"the hub failed to read this payload: {error!r}")))
        return out

    def connect(self, record: Record) -> list[Out]:
        format_name = self.formats[record.topic]
        body = record.value or b""
        received = received_at(record)
        # the key is checked at the record's time of receipt (the broker's LogAppendTime), as the replay window is: a
        # key rotated out (or revoked from a time) since then takes nothing back that was received while it held, a
        # record received after its end never counts, and reading the record again (a restart, a replay) gives the
        # same answer. At the wall clock a worker behind by a day refused what it would have taken on time.
        sender, refusal = verify_kafka_headers(self.registry, record.headers, body, received, format_name, received)
        if refusal is not None or sender is None:
            return [self.dead_letters(record, refusal or Rejection("unsigned", "no carrier"))]
        origin = record.where
        headers = ((topic_names.ORIGIN, origin.encode()),)
        out: list[Out] = []
        refused: list[Rejection] = []
        connected = 0
        for index, result in enumerate(parser(format_name)(body, sender)):
            routed = result if isinstance(result, Rejection) else route(result, sender, received, self.horizon, origin)
            if isinstance(routed, Rejection):
                refused.append(for_event(index, routed))
                continue
            for outbound in routed:
                topic = self.topics.events if outbound.stream == "events" else self.topics.references
                out.append(Out(topic, outbound.key, outbound.value, headers))
            connected += 1
        if refused:
            out.append(self.dead_letters(record, combine(refused)))  # the payload once, with every refused event's reason
        self.counters.connected += connected
        return out


# --- reference resolution: reference-only events -> their shipment -------------------------------------------------


class Books:
    """The reference books one batch of the resolve stage works on: each read (and decoded, unless the warm cache
    holds it) once, changed in memory, and written once at the batch's end."""

    def __init__(self, store: Store, warm: WarmCache[Book]) -> None:
        self.store, self.warm = store, warm
        self.first: dict[bytes, Book] = {}  # each key's book as the batch found it
        self.now: dict[bytes, Book] = {}  # and as the batch has made it so far
        # Each book's encoded size at most: as stored (exact), plus what the batch added, estimated from above. What
        # a release or a settlement drops is not taken off, so the bound may be high: `exact` says whether it is the
        # book's very size (measured), and a change is refused only against a measured size. And, once asked, the
        # bytes of its parked events per source: exact (each entry's event JSON) until something leaves the book.
        self.at_most: dict[bytes, int] = {}
        self.exact: dict[bytes, bool] = {}
        self.held: dict[bytes, dict[str, int]] = {}

    def get(self, key: bytes) -> Book:
        book = self.now.get(key)
        if book is None:
            raw = self.store.get(key)
            book = self.warm.get(key, raw)
            if book is None:
                book = decode_book(raw)
            self.first[key] = self.now[key] = book
            self.at_most[key] = len(raw) if raw is not None else EMPTY_BOOK_BYTES
            self.exact[key] = True
        return book

    def size_after(self, key: bytes, added: int, bound: int) -> int:
        """At most the encoded size of key's book after a change that adds at most `added` bytes to it: from the
        bound kept while that is within `bound`, else from the book measured now."""
        size = self.at_most[key] + added
        if size > bound and not self.exact[key]:
            self.at_most[key], self.exact[key] = len(encode_book(self.now[key])), True
            size = self.at_most[key] + added
        return size

    def changed_to(self, key: bytes, after: Book, size: int | None, exact: bool) -> None:
        """Key's book is `after` now, `size` bytes at most (None: no larger than before)."""
        if size is not None:
            self.at_most[key], self.exact[key] = size, exact
        elif after is not self.now[key]:
            self.exact[key] = False  # something left it: the bound stays, no longer the very size
            self.held.pop(key, None)
        self.now[key] = after

    def parked_by(self, key: bytes, source: str) -> int:
        """How many bytes of events `source` has waiting in key's book now."""
        held = self.held.get(key)
        if held is None:
            held = self.held[key] = parked_bytes(self.now[key])
        return held.get(source, 0)

    def changed(self) -> list[tuple[bytes, Book, Book]]:
        """(key, the book the batch found, the book it leaves) for every book the batch changed."""
        return [(key, self.first[key], book) for key, book in self.now.items() if book is not self.first[key]]


@dataclass
class ResolveHandler:
    """Each hub.references message against its reference's book (store "references"): a resolve request is released
    to its shipment or parked, a registration releases what waited on it, a settled notice drops a parked copy.
    A batch writes each book it changed once, and its `hub.references.parked` summary once if what waits on it
    changed. `parked` holds the keys whose book, as this handler last wrote it, holds parked events, with the input
    partition the book is of (for the report; `forget` drops a lost partition's, which another member reports now);
    `warm` the books it last wrote, so that a book is not decoded again while the store holds them."""

    topics: Topics
    dead_letters: DeadLetters
    counters: Counters
    clock: Callable[[], datetime] = utc_now
    parked_ttl: timedelta = timedelta(seconds=DEFAULT_PARKED_TTL_S)
    parked: dict[bytes, int] = field(default_factory=dict)
    indexed: set[int] = field(default_factory=set)  # the partitions whose stored books `index` has looked through
    warm: WarmCache[Book] = field(default_factory=lambda: WarmCache[Book]())

    def __call__(self, records: Sequence[Record], stores: Mapping[str, Store]) -> list[Out]:
        store = stores[REFERENCES]
        books = Books(store, self.warm)
        out: list[Out] = []
        for record in records:
            try:
                out += self.resolve(record, books)
            except Exception as error:  # noqa: BLE001 - loud, and the message is kept for replay
                log.exception("resolution failed on %s", record.where)
                out.append(self.dead_letters(record, Rejection("hub_error", f"the hub failed to resolve this: {error!r}")))
        now = self.clock()
        for key, first, book in books.changed():
            encoded = encode_book(book)
            store.put(key, encoded)
            self.warm.put(key, encoded, book)
            if book.parked:
                self.parked[key] = records[0].partition  # a handler call is one input partition's records
            else:
                self.parked.pop(key, None)
            if book.parked != first.parked:
                out.append(Out(self.topics.parked, key, parked_summary(key.decode(), book, now)))
        return out

    def forget(self, partitions: set[int]) -> None:
        """The input partitions this worker lost: their books are another member's to report (the keys stayed here,
        and the report looked each one up in every store on every tick, for as long as the worker ran)."""
        self.parked = {key: number for key, number in self.parked.items() if number not in partitions}
        self.indexed -= partitions

    def index(self, number: int, books: Iterable[tuple[bytes, bytes]]) -> None:
        """Note which of input partition `number`'s stored books hold parked events. `parked` knows only the books
        this handler wrote: after a restart, or a partition given to this worker, the events parked before would
        be in no report and never expire. Looked through once per partition held (encoded books, not decoded)."""
        for key, raw in books:
            if holds_parked(raw):
                self.parked.setdefault(key, number)
        self.indexed.add(number)

    def resolve(self, record: Record, books: Books) -> list[Out]:
        key = record.key or b""
        try:
            key.decode()  # a book's key is text wherever it is shown (its parked summary, settled notices)
        except UnicodeDecodeError:
            return [self.dead_letters(record, Rejection("wrong_key", "a reference message's key must be UTF-8"))]
        try:
            incoming = REFERENCE_MESSAGE.validate_json(record.value or b"")
            carried = None if isinstance(incoming, (RegisterMessage, ExpireMessage)) else HUB_EVENT.validate_python(incoming.event)
        except ValidationError as error:
            rejection = Rejection("invalid_reference_message", f"not a reference message: {describe(error)}")
            return [self.dead_letters(record, rejection)]
        book = books.get(key)
        released: list[tuple[HubEvent, str | None]] = []
        if isinstance(incoming, ResolveRequest):
            assert carried is not None
            after, resolved = request(book, carried, self.clock(), incoming.origin)
            if resolved is not None:
                released.append((resolved, incoming.origin))
            elif after is not book:
                refusal = self.park(key, after, books)
                if refusal is not None:  # the book stays as it was: its changelog record must stay one the broker takes
                    return [self.dead_letters(record, refusal)]
                self.counters.parked += 1
        elif isinstance(incoming, RegisterMessage):
            after, freed = register(book, incoming.registration)
            if after is not book:
                # a registration comes from the merge, once per booking and reference: measured, not estimated, and
                # refused only when it makes a book too large larger still (never one that does not grow it)
                size = len(encode_book(after))
                before = books.at_most[key] if books.exact[key] else len(encode_book(book))
                refusal = book_refusal(size, None, 0, key.decode("utf-8", "backslashreplace")) if size > before else None
                if refusal is not None:
                    return [self.dead_letters(record, refusal)]
                books.changed_to(key, after, size, True)
                if freed:
                    books.held.pop(key, None)
            released += [(resolved, parked.origin) for resolved, parked in freed]
        elif isinstance(incoming, ExpireMessage):
            after, gone = expire(book, self.clock(), self.parked_ttl)
            if gone:
                books.held.pop(key, None)
            days = self.parked_ttl.total_seconds() / 86400
            reason = f"no booking or document registered {key.decode()} within {days:g} days of this event's arrival"
            expired = [
                self.dead_letters(record, Rejection("parked_expired", reason), orjson.dumps(p.event), p.origin) for p in gone
            ]
            books.changed_to(key, after, None, False)
            return expired
        else:
            assert carried is not None
            after = settle(book, carried)
        books.changed_to(key, after, None, False)
        out: list[Out] = []
        for resolved, origin in released:
            assert resolved.shipment_id is not None
            headers = ((topic_names.ORIGIN, origin.encode()),) if origin else ()
            out.append(Out(self.topics.events, resolved.shipment_id.encode(), encode_event(resolved), headers))
            out += _references(self.topics, settled_messages(resolved, key.decode()))
        self.counters.resolved += len(released)
        return out

    def park(self, key: bytes, after: Book, books: Books) -> Rejection | None:
        """Whether `after` (key's book with one more event waiting) may be written: why not, if not; if so, it is the
        book now. Measured without encoding the book while it is surely within the bounds: a parked entry is its
        event's JSON, its origin's and its time of parking (streams.references.entry_bytes)."""
        event_bytes, added = entry_bytes(after.parked[-1])
        source = str(after.parked[-1].event.get("source"))
        size = books.size_after(key, added, topic_names.MAX_OUTPUT_BYTES)
        held = books.parked_by(key, source) + event_bytes if size > PARKED_PER_SOURCE else 0
        refusal = book_refusal(size, source, held, key.decode("utf-8", "backslashreplace"))
        if refusal is not None:
            return refusal
        books.changed_to(key, after, size, False)
        if key in books.held:
            books.held[key][source] = books.held[key].get(source, 0) + event_bytes
        return None


# --- the merge: events -> shipment state -> versions and their outputs ---------------------------------------------


V = TypeVar("V")
# Shipments merged per chunk of a flush: at ~0.3-0.9 ms of CPU a version, well under a heartbeat on a starved machine.
FLUSH_SHIPMENTS = 100


class WarmCache(Generic[V]):
    """What a handler made of the values it last wrote (a shipment's state and record, a reference book), so that
    a batch need not decode them again. An entry is used only while the store still holds the very bytes it was
    made from: after a rebalance another worker may have written the key, and then the store wins."""

    def __init__(self, capacity: int = DEFAULT_WARM_STATES) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[bytes, tuple[bytes, V]] = OrderedDict()

    def get(self, key: bytes, stored: bytes | None) -> V | None:
        entry = self._entries.get(key)
        if entry is None or stored is None or entry[0] != stored:
            return None
        self._entries.move_to_end(key)
        return entry[1]

    def put(self, key: bytes, stored: bytes, value: V) -> None:
        self._entries[key] = (stored, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)


@dataclass(frozen=True, slots=True)
class Warm:
    """A shipment as this worker last wrote it: the state, its record and the references it registers."""

    state: ShipmentState
    record: ShipmentRecord
    registrations: Registered
    whole: bool  # stored whole, not as a head and entries (streams.step.Write)


WarmStates = WarmCache[Warm]

Items = list[tuple[Record, HubEvent]]


def _largest_output(result: StepResult[Record]) -> int:
    """The size of the largest message a merge step would write: its status, documents, claims, releases and the
    shipment's stored head and entries (a changelog record each)."""
    sizes = [len(message) for message in (result.status, *result.documents, *result.claims, *result.releases) if message]
    if result.write is not None:
        sizes.append(len(result.write.encoded))
        sizes += [len(entry) for _, entry in result.write.entries]
    return max(sizes, default=0)


@dataclass
class MergeHandler:
    """Decode each hub.events record (refusing what is invalid, dated too far ahead or wrongly keyed, and forwarding
    what names only carrier references to resolution), group what is accepted by shipment, and take each shipment's
    items in with one `merge_step`: one version per shipment per batch. `resend_on_replay`: see streams.step; on for
    at-least-once delivery, off for exactly-once.

    On the runtime the batch is a checkpoint's: `take` takes records in (its dead letters and forwards go out at once)
    and defers the accepted items per input partition; `flush`, run before the partition's checkpoint, merges them,
    `FLUSH_SHIPMENTS` shipments a chunk; `discard` forgets them when the runtime drops the partition's work. Under a
    backlog a version then coalesces every event of its shipment since the last checkpoint, not only those of one
    handler call (bench/README: 3.3 -> ~12 events per version in bench.pipeline). Called as a plain handler
    (`__call__`), it takes in and merges the one batch."""

    topics: Topics
    authority: Authority
    horizon: Horizon
    dead_letters: DeadLetters
    counters: Counters
    resend_on_replay: bool
    warm: WarmStates = field(default_factory=WarmStates)
    clock: Callable[[], datetime] = utc_now
    # per input partition, the items taken in and not merged yet, per shipment (in offset order)
    deferred: dict[int, dict[str, Items]] = field(default_factory=dict)

    def __call__(self, records: Sequence[Record], stores: Mapping[str, Store]) -> list[Out]:
        return take_and_flush(self.take, self.flush, records, stores)

    def take(self, records: Sequence[Record], stores: Mapping[str, Store]) -> list[Out]:
        """Take the records of one input partition in: their dead letters and forwards now, the rest deferred."""
        counters = self.counters
        counters.batches += 1
        counters.largest_batch = max(counters.largest_batch, len(records))
        stamped = [record.timestamp_ms for record in records if record.timestamp_ms]
        if stamped:
            counters.oldest_input_s = max(counters.oldest_input_s, self.clock().timestamp() - min(stamped) / 1000)
        out: list[Out] = []
        accepted: dict[str, Items] = defaultdict(list)
        for record in records:
            try:
                out += self.take_in(record, accepted)
            except Exception as error:  # noqa: BLE001 - one input must not stop the stage
                log.exception("could not take in %s; it goes to the DLQ", record.where)
                out.append(self.dead_letters(record, Rejection("hub_error", f"the hub failed to read this event: {error!r}")))
        if accepted:  # only now, so that nothing is deferred from a call the runtime may yet dead-letter
            deferred = self.deferred.setdefault(records[0].partition, {})
            for shipment_id, items in accepted.items():
                deferred.setdefault(shipment_id, []).extend(items)
        return out

    def flush(self, partition: int, stores: Mapping[str, Store]) -> Iterator[list[Out]]:
        """Merge what `take` deferred for the partition, `FLUSH_SHIPMENTS` shipments a chunk."""
        deferred = self.deferred.pop(partition, {})
        shipments = list(deferred.items())
        for start in range(0, len(shipments), FLUSH_SHIPMENTS):
            out: list[Out] = []
            for shipment_id, items in shipments[start : start + FLUSH_SHIPMENTS]:
                # the shipment's writes are made only once it merged: one that fails stores nothing of its events,
                # every one of which is dead-lettered (a failure may come after part of them was written: see merge)
                staged = Staged(stores[SHIPMENTS]), Staged(stores[DEADLINES])
                try:
                    out += self.merge(shipment_id, items, *staged)
                    for store in staged:
                        store.apply()
                except Exception as error:  # noqa: BLE001 - one shipment's failure must not stop every other one
                    # Loud, and nothing lost: the traceback goes to the log, the original bytes to the DLQ for replay.
                    log.exception("merge failed for shipment %s; its %d events go to the DLQ", shipment_id, len(items))
                    rejection = Rejection("hub_error", f"the hub failed to merge this event: {error!r}")
                    out += [self.dead_letters(record, rejection) for record, _ in items]
            yield out

    def discard(self, partition: int) -> None:
        """Forget the partition's deferred items: the runtime reads them again from its committed position."""
        self.deferred.pop(partition, None)

    def take_in(self, record: Record, accepted: dict[str, Items]) -> list[Out]:
        """Decode one input: dead-letter it, forward it to reference resolution, or add it to its shipment's items."""
        decoded = decode_event(record.value)
        if not isinstance(decoded, Rejection):
            decoded = self.horizon.refusal(decoded, received_at(record)) or decoded
        if isinstance(decoded, Rejection):
            return [self.dead_letters(record, decoded)]
        if decoded.shipment_id is None:
            # Names only carrier references: resolution finds its shipment and sends it back here.
            origin = record.header(topic_names.ORIGIN) or record.where.encode()
            self.counters.forwarded += 1
            return _references(self.topics, request_messages(decoded, origin.decode("utf-8", "backslashreplace")), origin)
        if record.key != decoded.shipment_id.encode():
            # A wrong key puts the event on another shipment's partition, where another worker may own it.
            rejection = Rejection("wrong_key", f"message key must be the shipment_id {decoded.shipment_id!r}")
            return [self.dead_letters(record, rejection)]
        accepted[decoded.shipment_id].append((record, decoded))
        return []

    def merge(self, shipment_id: str, items: Items, shipments: Store, deadlines: Store) -> list[Out]:
        counters = self.counters
        key = shipment_id.encode()
        raw = shipments.get(key)
        warm = self.warm.get(key, raw)
        if warm is not None:
            counters.warm_hits += 1
            stored: Stored | None = Stored(warm.state, warm.record, warm.registrations, warm.whole)
        else:
            counters.warm_misses += int(raw is not None)
            stored = Stored.decode(raw, lambda event_key: shipments.get(entry_key(key, event_key))) if raw is not None else None
        result = merge_step(shipment_id, stored, items, self.authority, resend_on_replay=self.resend_on_replay)
        largest = _largest_output(result)
        if largest > topic_names.MAX_OUTPUT_BYTES:
            if len(items) > 1:  # one at a time: only the events that cannot fit are set aside
                return [out for item in items for out in self.merge(shipment_id, [item], shipments, deadlines)]
            reason = (
                f"with this event shipment {shipment_id}'s status message or what it stores would be {largest} bytes; "
                f"a message is limited to {topic_names.MAX_OUTPUT_BYTES}: the shipment goes on without it"
            )
            return [self.dead_letters(items[0][0], Rejection("too_large", reason))]
        write = result.write
        if write is not None:
            for stored_key, value in write.puts(key):
                shipments.put(stored_key, value)
            if write.deadline is None:
                if deadlines.get(key) is not None:
                    deadlines.delete(key)
            elif deadlines.get(key) != write.deadline:
                deadlines.put(key, write.deadline)
            self.warm.put(key, write.encoded, Warm(write.state, write.record, write.registrations, write.whole))
        counters.applied += result.applied
        counters.duplicates += result.duplicates
        out: list[Out] = []
        if result.status is not None:
            out.append(Out(self.topics.status, key, result.status))
            counters.versions_emitted += 1
        out += [Out(self.topics.settlement, key, document) for document in result.documents]
        out += [Out(self.topics.claims, key, claim) for claim in result.claims]
        out += [Out(self.topics.release, key, release) for release in result.releases]  # after its version
        out += _references(self.topics, result.references)
        for refusal in result.refusals:
            counters.refused += 1
            out.append(self.dead_letters(refusal.source, refusal.rejection, refusal.held))
        out += [self.dead_letters(aside.source, aside.rejection) for aside in result.set_aside]  # not taken in
        return out
