"""The worker's stage handlers (worker.stages) without Kafka: records in, messages out, stores in memory.

The chain a carrier's reference-only report takes (signed raw payload -> connect -> resolve, parked -> the booking's
merge registers the reference -> resolve releases it -> merge), the dead letters of every stage with their headers,
and that one bad record or one failing shipment never costs the others."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import orjson
import pytest

from connectors.carriers import Carrier, CarrierRegistry, kafka_signature_headers, new_key
from hubconf import topics as topic_names
from hubconf.topics import Topics
from runtime.api import MemoryStore, Out, Record
from streams import step as step_module
from streams.codec import encode_entry, encode_event, encode_head, encode_state, entry_key, is_whole, read_state
from streams.step import SPLIT_STATE_BYTES
from streams.horizon import Horizon
from streams.merge import ShipmentState, apply_all, project
from streams.references import EXPIRE_MESSAGE, Book, decode_book, encode_book, holds_parked
from worker import stages
from worker.stages import ConnectHandler, Counters, DeadLetters, MergeHandler, ResolveHandler, WarmStates

from ..builders import AUTHORITY, RECEIVED_AT, SHIPMENT, T0, booking_doc, hub_event, tracking_doc

TOPICS = Topics("unit")
CARRIER = "carrier.road"
CONTAINER = "CSQU3054383"
RECEIVED_MS = int(RECEIVED_AT.timestamp() * 1000)


def clock() -> datetime:
    return RECEIVED_AT


class Hub:
    """The three handlers as the worker wires them, over memory stores, and what they have sent."""

    def __init__(self, resend_on_replay: bool = False, registry: CarrierRegistry | None = None) -> None:
        self.counters = Counters()
        dead_letters = DeadLetters(TOPICS.dlq, self.counters)
        formats = {TOPICS.raw(name): name for name in topic_names.RAW_FORMATS}
        registry = registry or CarrierRegistry(carriers=[])
        self.connect = ConnectHandler(formats, registry, Horizon(), TOPICS, dead_letters, self.counters)
        self.resolve = ResolveHandler(TOPICS, dead_letters, self.counters, clock)
        self.merge = MergeHandler(
            TOPICS, AUTHORITY, Horizon(), dead_letters, self.counters, resend_on_replay, WarmStates(), clock
        )
        self.shipments, self.deadlines, self.books = MemoryStore(), MemoryStore(), MemoryStore()
        self.offsets: dict[str, int] = {}

    def record(self, topic: str, key: bytes | None, value: bytes | None, headers: tuple[tuple[str, bytes], ...] = ()) -> Record:
        offset = self.offsets[topic] = self.offsets.get(topic, -1) + 1
        return Record(topic, 0, offset, key, value, headers, RECEIVED_MS)

    def merged(self, *records: Record) -> list[Out]:
        return self.merge(records, {"shipments": self.shipments, "deadlines": self.deadlines})

    def resolved(self, *records: Record) -> list[Out]:
        return self.resolve(records, {"references": self.books})

    def as_input(self, out: Out) -> Record:
        """A produced message as the stage that reads its topic consumes it."""
        return self.record(out.topic, out.key, out.value, out.headers)

    def event(self, doc: dict[str, Any], key: bytes | None = None) -> Record:
        raw = orjson.dumps(doc)
        return self.record(TOPICS.events, key if key is not None else (doc.get("shipment_id") or "").encode(), raw)


def on(topic: str, outs: list[Out]) -> list[Out]:
    return [out for out in outs if out.topic == topic]


def headers(out: Out) -> dict[str, bytes]:
    names = [name for name, _ in out.headers]
    assert len(names) == len(set(names)), out.headers
    return dict(out.headers)


def stored_state(hub: Hub) -> ShipmentState:
    state = read_state(hub.shipments.get, SHIPMENT)
    assert state is not None
    return state


def reference_only_report() -> dict[str, Any]:
    doc = tracking_doc("departed", leg=1, occurred=30, shipment_id=None)
    doc["references"] = [{"kind": "container", "value": CONTAINER}]
    return doc


def booking_with_container() -> dict[str, Any]:
    doc = booking_doc()
    doc["payload"]["cargo"]["containers"] = [CONTAINER]
    doc["payload"]["requested_delivery"] = "2026-03-20T00:00:00Z"
    return doc


# --- merge ----------------------------------------------------------------------------------------------------------


def test_a_batch_split_across_calls_stores_the_fold_and_sends_one_version_per_shipment_per_call() -> None:
    hub = Hub()
    docs = [booking_with_container(), tracking_doc("departed", leg=1, occurred=25), tracking_doc("arrived", leg=1, occurred=30)]
    first = hub.merged(hub.event(docs[0]), hub.event(docs[1]))
    second = hub.merged(hub.event(docs[2]))
    expected = apply_all(ShipmentState(SHIPMENT), [hub_event(doc) for doc in docs])
    assert stored_state(hub) == expected
    statuses = on(TOPICS.status, first + second)
    assert [orjson.loads(out.value or b"")["record"]["version"] for out in statuses] == [2, 3]
    assert all(out.key == SHIPMENT.encode() for out in statuses)
    assert [out.key for out in on(TOPICS.references, first)] == [f"container:{CONTAINER}".encode()]  # the booking registers
    assert on(TOPICS.references, second) == []  # nothing new to register
    assert hub.deadlines.get(SHIPMENT.encode()) is not None
    assert (hub.counters.applied, hub.counters.duplicates, hub.counters.versions_emitted) == (3, 0, 2)
    assert (hub.counters.warm_hits, hub.counters.warm_misses, hub.counters.batches) == (1, 0, 2)


def test_what_take_defers_over_several_calls_flushes_as_one_version_per_shipment_equal_to_one_call() -> None:
    """The runtime's merge: `take` per handler call, `flush` before the checkpoint. Three calls' items of two
    shipments come out as one version each, and everything sent and stored equals one plain call over the records."""
    other = "SHP-OTHER-0001"
    docs = [booking_with_container(), tracking_doc("departed", leg=1, occurred=25), tracking_doc("arrived", leg=1, occurred=30)]
    second = booking_doc()
    second["shipment_id"] = other
    deferring, plain = Hub(), Hub()
    records = [deferring.event(doc) for doc in docs[:2]] + [deferring.event(second), deferring.event(docs[2])]
    records.append(deferring.event(tracking_doc("departed", leg=1, occurred=25), key=b"not-the-shipment"))  # refused
    stores = {"shipments": deferring.shipments, "deadlines": deferring.deadlines}
    at_once = deferring.merge.take(records[:2], stores) + deferring.merge.take(records[2:4], stores)
    at_once += deferring.merge.take(records[4:], stores)
    assert [out.topic for out in at_once] == [TOPICS.dlq]  # the wrong key at once; nothing merged yet
    assert deferring.shipments.data == {} and deferring.counters.versions_emitted == 0
    chunks = list(deferring.merge.flush(0, stores))
    flushed = [out for chunk in chunks for out in chunk]
    assert [out.key for out in on(TOPICS.status, flushed)] == [SHIPMENT.encode(), other.encode()]
    assert list(deferring.merge.flush(0, stores)) == []  # nothing deferred is left
    sent = plain.merged(*[plain.as_input(Out(r.topic, r.key, r.value, r.headers)) for r in records])
    assert sorted(at_once + flushed, key=repr) == sorted(sent, key=repr)
    assert (deferring.shipments.data, deferring.deadlines.data) == (plain.shipments.data, plain.deadlines.data)
    assert deferring.counters.batches == 3 and deferring.counters.versions_emitted == 2


def test_flush_merges_in_chunks_and_discard_forgets_a_partition(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stages, "FLUSH_SHIPMENTS", 2)
    hub = Hub()
    stores = {"shipments": hub.shipments, "deadlines": hub.deadlines}
    ids = [f"SHP-CHUNK-{n:04d}" for n in range(5)]
    bookings = []
    for shipment_id in ids:
        doc = booking_doc()
        doc["shipment_id"] = shipment_id
        bookings.append(hub.event(doc))
    hub.merge.take(bookings, stores)
    moved = Record(TOPICS.events, 3, 0, bookings[0].key, bookings[0].value, (), RECEIVED_MS)
    hub.merge.take([moved], stores)  # partition 3's work, then the runtime drops it
    hub.merge.discard(3)
    chunks = list(hub.merge.flush(0, stores))
    assert [[out.key for out in on(TOPICS.status, chunk)] for chunk in chunks] == [
        [ids[0].encode(), ids[1].encode()], [ids[2].encode(), ids[3].encode()], [ids[4].encode()]
    ]
    assert list(hub.merge.flush(3, stores)) == [] and hub.counters.versions_emitted == 5


def test_a_replay_sends_nothing_under_exactly_once_and_the_current_version_under_at_least_once() -> None:
    for resend, expected_topics in ((False, []), (True, [TOPICS.status, TOPICS.references])):
        hub = Hub(resend_on_replay=resend)
        booking = hub.event(booking_with_container())
        hub.merged(booking)
        stored = hub.shipments.get(SHIPMENT.encode())
        replay = hub.merged(booking, booking)
        assert [out.topic for out in replay] == expected_topics
        assert hub.shipments.get(SHIPMENT.encode()) == stored
        assert (hub.counters.applied, hub.counters.duplicates) == (1, 2)
        if resend:
            assert orjson.loads(replay[0].value or b"")["record"]["version"] == 1


def test_the_store_wins_over_the_warm_cache_when_another_worker_wrote_the_shipment() -> None:
    hub = Hub()
    hub.merged(hub.event(booking_doc()))
    elsewhere = apply_all(ShipmentState(SHIPMENT), [hub_event(booking_doc()), hub_event(tracking_doc("departed", occurred=25))])
    key = SHIPMENT.encode()
    for event in elsewhere.copies:  # a rebalance: another owner went further
        hub.shipments.put(entry_key(key, event), encode_entry(elsewhere, event))
    hub.shipments.put(key, encode_head(elsewhere))
    hub.merged(hub.event(tracking_doc("arrived", leg=1, occurred=30)))
    assert stored_state(hub).version == 3
    assert (hub.counters.warm_hits, hub.counters.warm_misses) == (0, 1)


@pytest.mark.parametrize("split_at", [SPLIT_STATE_BYTES, 0])
def test_a_state_stored_whole_stays_whole_while_small_and_else_writes_every_entry(split_at: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """A shipment stored whole (under its key alone) is read as it is; its next version stores it whole again while
    it is small, else writes the head and the entry of every event, not only of the one it took in."""
    monkeypatch.setattr(step_module, "SPLIT_STATE_BYTES", split_at)
    hub = Hub()
    earlier = apply_all(ShipmentState(SHIPMENT), [hub_event(booking_doc()), hub_event(tracking_doc("departed", occurred=25))])
    hub.shipments.put(SHIPMENT.encode(), encode_state(earlier))
    hub.merged(hub.event(tracking_doc("arrived", leg=1, occurred=30)))
    later = apply_all(earlier, [hub_event(tracking_doc("arrived", leg=1, occurred=30))])
    assert stored_state(hub) == later
    if split_at:
        assert hub.shipments.data == {SHIPMENT.encode(): encode_state(later)}
    else:
        assert not is_whole(hub.shipments.get(SHIPMENT.encode()) or b"")
        assert len(hub.shipments.data) == 1 + 3  # the head and the three events' entries


def test_a_state_split_once_large_writes_its_head_and_only_the_entries_it_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(step_module, "SPLIT_STATE_BYTES", 12_000)
    hub = Hub()
    hub.merged(hub.event(booking_doc()))
    assert len(hub.shipments.data) == 1  # small: whole
    for hour in range(30):  # a shipment that holds many reports: past the bound on the way, warm throughout
        hub.merged(hub.event(tracking_doc("departed", leg=1, occurred=25 + hour, event_id=f"report-{hour}")))
    assert not is_whole(hub.shipments.get(SHIPMENT.encode()) or b"") and len(hub.shipments.data) == 1 + 31
    writes: list[bytes] = []
    put = hub.shipments.put
    hub.shipments.put = lambda key, value: (writes.append(key), put(key, value))[-1]  # type: ignore[method-assign]
    hub.merged(hub.event(tracking_doc("arrived", leg=1, occurred=80)))
    arrived = hub_event(tracking_doc("arrived", leg=1, occurred=80)).key
    assert writes == [entry_key(SHIPMENT.encode(), arrived), SHIPMENT.encode()]
    assert stored_state(hub).version == 32
    assert (hub.counters.warm_hits, hub.counters.warm_misses) == (31, 0)


def test_delivery_clears_the_deadline() -> None:
    hub = Hub()
    hub.merged(hub.event(booking_with_container()))
    assert hub.deadlines.get(SHIPMENT.encode()) is not None
    delivered = [tracking_doc("delivered", leg=leg, occurred=24 * leg + 12) for leg in (1, 2, 3)]
    hub.merged(*(hub.event(doc) for doc in delivered))
    record = project(stored_state(hub), AUTHORITY)
    assert record.status == "delivered"
    assert hub.deadlines.get(SHIPMENT.encode()) is None


def test_bad_input_is_dead_lettered_with_its_bytes_and_why_and_the_rest_is_merged() -> None:
    hub = Hub()
    garbage = hub.record(TOPICS.events, SHIPMENT.encode(), b"{not json", ((topic_names.ORIGIN, b"unit.hub.raw.canonical[0]@7"),))
    wrong_key = hub.event(tracking_doc("departed", occurred=25), key=b"SHP-TEST-0002")
    future = hub.event(tracking_doc("departed", occurred=24 * 400))  # a year after the hub received it
    good = hub.event(booking_doc())
    outs = hub.merged(garbage, wrong_key, future, good)
    dead = on(TOPICS.dlq, outs)
    assert [(out.key, out.value) for out in dead] == [(r.key, r.value) for r in (garbage, wrong_key, future)]
    assert [headers(out)[topic_names.DLQ_CODE] for out in dead] == [b"invalid_json", b"wrong_key", b"future_dated"]
    assert headers(dead[0]) == {
        topic_names.DLQ_REASON: headers(dead[0])[topic_names.DLQ_REASON],
        topic_names.DLQ_CODE: b"invalid_json",
        topic_names.DLQ_SOURCE_TOPIC: TOPICS.events.encode(),
        topic_names.DLQ_SOURCE_PARTITION: b"0",
        topic_names.DLQ_SOURCE_OFFSET: b"0",
        topic_names.ORIGIN: b"unit.hub.raw.canonical[0]@7",  # where the payload first came in
    }
    assert topic_names.ORIGIN not in headers(dead[1])
    assert stored_state(hub).version == 1
    assert hub.counters.dead_lettered == 3 and dict(hub.counters.by_reason) == {"invalid_json": 1, "wrong_key": 1, "future_dated": 1}


def test_a_refusal_is_dead_lettered_once_with_its_bytes_or_as_the_event_the_state_holds() -> None:
    hub = Hub()
    forged = tracking_doc("arrived", leg=1, source="carrier.sea", event_id="sea-says-road-arrived")
    early = hub.event(forged)
    assert on(TOPICS.dlq, hub.merged(early)) == []  # no booking yet: nobody knows who carries leg 1
    booking = hub.event(booking_doc())
    dead = on(TOPICS.dlq, hub.merged(booking))
    assert [out.value for out in dead] == [encode_event(hub_event(forged))]
    assert headers(dead[0])[topic_names.DLQ_SOURCE_TOPIC] == b"mmhub.state"
    assert headers(dead[0])[topic_names.DLQ_TRIGGERED_BY] == booking.where.encode()
    assert headers(dead[0])[topic_names.DLQ_CODE] == b"not_entitled"
    # a later forgery arrives after the booking: its own bytes; the earlier one is not dead-lettered again
    later = hub.event(tracking_doc("departed", leg=1, source="carrier.sea", event_id="sea-says-road-departed", occurred=25))
    assert [out.value for out in on(TOPICS.dlq, hub.merged(later, early))] == [later.value]
    assert hub.counters.refused == 2


def test_one_failing_shipment_dead_letters_its_own_records_and_the_others_merge(monkeypatch: pytest.MonkeyPatch) -> None:
    real = stages.merge_step

    def failing(shipment_id: str, *args: Any, **kwargs: Any) -> Any:
        if shipment_id == "SHP-TEST-0002":
            raise RuntimeError("a hub bug")
        return real(shipment_id, *args, **kwargs)

    monkeypatch.setattr(stages, "merge_step", failing)
    hub = Hub()
    other = hub.event(booking_doc(shipment_id="SHP-TEST-0002"))
    outs = hub.merged(other, hub.event(booking_doc()))
    dead = on(TOPICS.dlq, outs)
    assert [(out.value, headers(out)[topic_names.DLQ_CODE]) for out in dead] == [(other.value, b"hub_error")]
    assert stored_state(hub).version == 1 and len(on(TOPICS.status, outs)) == 1


# --- the chain: connect -> resolve -> merge -------------------------------------------------------------------------


def test_a_signed_reference_only_report_reaches_its_shipment_once_the_booking_registers_the_reference() -> None:
    signing, key = new_key(CARRIER, "k1", "ed25519", T0)
    hub = Hub(registry=CarrierRegistry(carriers=[Carrier(party_id=CARRIER, name=CARRIER, keys=[key])]))
    body = orjson.dumps(reference_only_report())
    raw = hub.record(TOPICS.raw("canonical"), None, body, tuple(kafka_signature_headers(body, signing, "canonical", RECEIVED_AT)))
    [request] = hub.connect([raw], {})
    assert (request.topic, request.key) == (TOPICS.references, f"container:{CONTAINER}".encode())
    assert headers(request)[topic_names.ORIGIN] == raw.where.encode()
    assert hub.counters.connected == 1

    [parked] = hub.resolved(hub.as_input(request))  # nothing registered the container yet: it waits
    assert parked.topic == TOPICS.parked and orjson.loads(parked.value or b"")
    assert hub.resolve.parked == {request.key: 0} and hub.counters.parked == 1

    registered = on(TOPICS.references, hub.merged(hub.event(booking_with_container())))
    assert [out.key for out in registered] == [request.key]
    released = hub.resolved(*(hub.as_input(out) for out in registered))
    [event] = on(TOPICS.events, released)
    assert event.key == SHIPMENT.encode() and headers(event)[topic_names.ORIGIN] == raw.where.encode()
    assert [out.value for out in on(TOPICS.parked, released)] == [b""]  # nothing waits on the container any more
    assert hub.resolve.parked == {} and hub.counters.resolved == 1

    hub.merged(hub.as_input(event))
    record = project(stored_state(hub), AUTHORITY)
    assert record.legs[0].status == "departed"
    assert hub.counters.dead_lettered == 0


def test_an_unsigned_or_partly_refused_payload_is_dead_lettered_once_with_its_original_bytes() -> None:
    signing, key = new_key(CARRIER, "k1", "ed25519", T0)
    hub = Hub(registry=CarrierRegistry(carriers=[Carrier(party_id=CARRIER, name=CARRIER, keys=[key])]))
    good = tracking_doc("departed", leg=1, occurred=25)
    foreign = tracking_doc("departed", leg=2, occurred=50)  # carrier.rail's report, signed by carrier.road
    body = orjson.dumps([good, foreign])
    unsigned = hub.record(TOPICS.raw("canonical"), None, body)
    signed = hub.record(TOPICS.raw("canonical"), None, body, tuple(kafka_signature_headers(body, signing, "canonical", RECEIVED_AT)))
    outs = hub.connect([unsigned, signed], {})
    assert [(out.topic, out.value) for out in outs] == [
        (TOPICS.dlq, body),
        (TOPICS.events, encode_event(hub_event(good))),
        (TOPICS.dlq, body),
    ]
    assert headers(outs[2])[topic_names.DLQ_CODE] == b"wrong_source"
    assert headers(outs[2])[topic_names.DLQ_REASON].startswith(b"event 1")
    assert hub.counters.connected == 1 and hub.counters.dead_lettered == 2


def test_a_message_on_the_references_topic_that_is_not_a_reference_message_is_dead_lettered() -> None:
    hub = Hub()
    junk = hub.record(TOPICS.references, b"container:X", b'{"type": "nonsense"}')
    [dead] = hub.resolved(junk)
    assert (dead.topic, dead.value, headers(dead)[topic_names.DLQ_CODE]) == (TOPICS.dlq, junk.value, b"invalid_reference_message")
    assert hub.books.data == {}


def test_the_event_a_report_forwards_names_where_it_came_in() -> None:
    hub = Hub()
    report = hub.event(reference_only_report(), key=b"anything")
    [request] = hub.merged(report)
    assert request.topic == TOPICS.references and headers(request)[topic_names.ORIGIN] == report.where.encode()
    assert hub.counters.forwarded == 1 and hub.shipments.data == {}



@pytest.mark.parametrize("resend_on_replay", [False, True])
def test_under_at_least_once_a_state_stays_whole(resend_on_replay: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """At least once, a failed checkpoint may leave part of its store writes in the changelog, and a head without
    the entries it names could not be read after a restore: the state is stored whole (up to what one message may
    hold, as before 2026-12-05). Exactly once (the default), the same bound splits it."""
    monkeypatch.setattr(step_module, "SPLIT_STATE_BYTES", 0)
    hub = Hub(resend_on_replay=resend_on_replay)
    hub.merged(hub.event(booking_doc()))
    hub.merged(hub.event(tracking_doc("departed", leg=1, occurred=25)))
    stored = hub.shipments.get(SHIPMENT.encode()) or b""
    if resend_on_replay:
        assert list(hub.shipments.data) == [SHIPMENT.encode()] and is_whole(stored)
    else:
        assert not is_whole(stored) and len(hub.shipments.data) == 1 + 2
    assert stored_state(hub).version == 2


def test_a_shipment_that_fails_after_part_of_it_was_stored_leaves_no_stored_event_dead_lettered(monkeypatch: pytest.MonkeyPatch) -> None:
    """A version too large is merged again one event at a time (MergeHandler.merge); if a later event then hits a hub
    bug, flush dead-letters EVERY event of the shipment, but the first one's state and warm cache writes were made
    already and stay (the runtime keeps a flush chunk's writes): the event is both in the state and in the DLQ as
    'failed to merge', and the version that took it in is never sent."""
    real_step, real_largest = stages.merge_step, stages._largest_output
    docs = [booking_doc(), tracking_doc("departed", leg=1, occurred=25)]

    def step(shipment_id: str, stored: Any, items: Any, *args: Any, **kwargs: Any) -> Any:
        if len(items) == 1 and items[0][1].key == hub_event(docs[1]).key:
            raise RuntimeError("a hub bug on the second event")
        return real_step(shipment_id, stored, items, *args, **kwargs)

    monkeypatch.setattr(stages, "merge_step", step)
    monkeypatch.setattr(stages, "_largest_output", lambda result: topic_names.MAX_OUTPUT_BYTES + 1 if result.applied > 1 else real_largest(result))
    hub = Hub()
    outs = hub.merged(*(hub.event(doc) for doc in docs))
    dead = on(TOPICS.dlq, outs)
    assert len(dead) == 2  # both events dead-lettered as hub_error
    assert read_state(hub.shipments.get, SHIPMENT) is None, "a dead-lettered event was taken into the stored state"


def test_a_reference_message_with_a_key_not_utf8_costs_only_itself() -> None:
    """A resolve request is parked under its record's key, which nothing checks is UTF-8; the batch's end then
    writes the book's `hub.references.parked` summary with `key.decode()` outside the per-record handling: the
    handler raises, and the runtime dead-letters the WHOLE batch (every other request and registration in it)."""
    hub = Hub()
    [request] = on(TOPICS.references, hub.merged(hub.event(reference_only_report())))  # forwarded for resolution
    bad = hub.record(TOPICS.references, b"container:\xff", request.value, request.headers)
    good = hub.as_input(request)
    outs = hub.resolved(bad, good)
    assert [out.key for out in on(TOPICS.parked, outs)] == [request.key]
    assert len(on(TOPICS.dlq, outs)) == 1


def test_the_parked_books_of_a_lost_partition_are_forgotten() -> None:
    """The report looks up each book `parked` names in every store this worker holds, on every tick: the keys of a
    partition lost to a rebalance stayed for as long as the worker ran, found in no store."""
    hub = Hub()
    [request] = on(TOPICS.references, hub.merged(hub.event(reference_only_report())))
    elsewhere = Record(TOPICS.references, 3, 0, b"container:MSCU1234566", request.value, request.headers, RECEIVED_MS)
    hub.resolve([hub.as_input(request)], {"references": hub.books})
    hub.resolve([elsewhere], {"references": MemoryStore()})
    assert hub.resolve.parked == {request.key: 0, elsewhere.key: 3}
    hub.resolve.forget({3})
    assert hub.resolve.parked == {request.key: 0}


def test_a_parked_event_is_dead_lettered_with_its_bytes_once_it_has_waited_the_time_to_live() -> None:
    """A reference-only event whose reference no booking or document ever registers waited in its book for ever.
    The worker's timer sends an expire message for a book it finds overdue; the stage decides by its own clock, so
    one sent early (or by anyone) expires nothing."""
    hub = Hub()
    now = [RECEIVED_AT]
    ttl = timedelta(days=30)
    hub.resolve = ResolveHandler(TOPICS, DeadLetters(TOPICS.dlq, hub.counters), hub.counters, lambda: now[0], ttl)
    [request] = on(TOPICS.references, hub.merged(hub.event(reference_only_report())))
    origin = orjson.loads(request.value or b"")["origin"].encode()  # the record the event came in by
    [parked] = hub.resolved(hub.as_input(request))
    assert parked.topic == TOPICS.parked
    expire = hub.record(TOPICS.references, request.key, EXPIRE_MESSAGE)

    now[0] = RECEIVED_AT + ttl - timedelta(seconds=1)
    assert hub.resolved(expire) == []  # early: nothing expires
    assert len(decode_book(hub.books.get(request.key or b"")).parked) == 1

    now[0] = RECEIVED_AT + ttl
    outs = hub.resolved(hub.record(TOPICS.references, request.key, EXPIRE_MESSAGE))
    [dead] = on(TOPICS.dlq, outs)
    event = orjson.loads(request.value or b"")["event"]
    assert orjson.loads(dead.value or b"") == event
    assert headers(dead)[topic_names.DLQ_CODE] == b"parked_expired"
    assert headers(dead)[topic_names.ORIGIN] == origin
    assert b"within 30 days" in headers(dead)[topic_names.DLQ_REASON]
    assert [out.value for out in on(TOPICS.parked, outs)] == [b""]  # nothing waits on the reference any more
    assert decode_book(hub.books.get(request.key or b"")).parked == [] and hub.resolve.parked == {}
    assert hub.resolved(hub.record(TOPICS.references, request.key, EXPIRE_MESSAGE)) == []  # once


def test_the_books_of_a_partition_taken_over_are_looked_through_once_for_parked_events() -> None:
    """After a restart (or a partition given to this worker), `parked` knew only the books this handler wrote: what
    was parked before was in no report, and the report timer never asked for its expiry."""
    hub = Hub()
    [request] = on(TOPICS.references, hub.merged(hub.event(reference_only_report())))
    hub.resolved(hub.as_input(request))
    assert holds_parked(hub.books.get(request.key or b"") or b"") and not holds_parked(encode_book(Book()))
    books = MemoryStore({**hub.books.data, b"container:MSCU1234566": encode_book(Book())})
    restarted = ResolveHandler(TOPICS, DeadLetters(TOPICS.dlq, hub.counters), hub.counters, clock)
    restarted.index(5, books.items())
    assert restarted.parked == {request.key: 5} and restarted.indexed == {5}
    restarted.forget({5})
    assert restarted.parked == {} and restarted.indexed == set()  # given back later: looked through again
