"""A carrier fills a reference's book until the references partition stops.

An event that names only carrier references waits in each reference's book until a booking registers it. The book
is one record of the references table's changelog, on a topic of the broker's default max.message.bytes
(1,048,588). Five valid reports of 220 KB naming one container, from any carrier, made a book of 1,105,476 bytes:
the broker refuses that changelog record, the checkpoint holding it fails at every retry, and resolution stops for
every reference of the partition. Now a change that would make a book larger than hubconf.topics.MAX_OUTPUT_BYTES
is refused, and one source may have at most streams.references.PARKED_PER_SOURCE bytes waiting on a reference;
what is refused is dead-lettered with the bytes it came in and the reason, and the book stays as it was."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hubconf import topics as topic_names
from runtime.api import Out
from schemas.events import CarrierReference
from streams import references
from streams.references import (
    PARKED_PER_SOURCE,
    Book,
    Registration,
    decode_book,
    encode_book,
    register_messages,
    request_messages,
    settled_messages,
)
from worker.stages import Books, WarmCache

from tests.security.merging import sscc
from tests.unit.builders import RECEIVED_AT, hub_event, when
from tests.unit.worker.test_stages import CONTAINER, TOPICS, Hub, booking_with_container, on, reference_only_report

BOOK = f"container:{CONTAINER}".encode()
BROKER_MAX_MESSAGE_BYTES = 1_048_588


def bloated(number: int, source: str, packages: int = 10_500) -> dict[str, Any]:
    """A valid reference-only report of the container listing `packages` packages: 10,500 make about 220 KB."""
    doc = reference_only_report()
    doc["event_id"], doc["source"] = f"fill-{number}", source
    doc["payload"]["ssccs"] = [sscc(number * 100_000 + serial) for serial in range(packages)]
    return doc


def send(hub: Hub, doc: dict[str, Any]) -> list[Out]:
    """The event through the merge (which forwards it to its references) and resolution, as the worker chains them."""
    forwarded = on(TOPICS.references, hub.merged(hub.event(doc, key=b"any")))
    assert forwarded, "the event was not forwarded to resolution"
    return hub.resolved(*[hub.as_input(out) for out in forwarded])


def book_size(hub: Hub) -> int:
    return len(hub.books.get(BOOK) or b"")


def codes(outs: list[Out]) -> list[bytes]:
    return [dict(out.headers)[topic_names.DLQ_CODE] for out in on(TOPICS.dlq, outs)]


def test_one_carrier_cannot_fill_a_book() -> None:
    hub = Hub()
    outs: list[Out] = []
    for number in range(6):
        outs += send(hub, bloated(number, "carrier.stranger"))
        assert book_size(hub) <= PARKED_PER_SOURCE + 4096

    assert codes(outs) == [b"over_quota"] * 5
    for out in on(TOPICS.dlq, outs):
        assert orjson.loads(out.value or b"")["event"]["source"] == "carrier.stranger"  # the bytes it came in
        assert str(PARKED_PER_SOURCE).encode() in dict(out.headers)[topic_names.DLQ_REASON]
    # another carrier's events still wait on the reference, and the booking releases them
    assert codes(send(hub, reference_only_report())) == []
    registered = on(TOPICS.references, hub.merged(hub.event(booking_with_container())))
    released = on(TOPICS.events, hub.resolved(*[hub.as_input(out) for out in registered]))
    sources = sorted(orjson.loads(out.value or b"")["source"] for out in released)
    assert sources == ["carrier.road", "carrier.stranger"]
    assert decode_book(hub.books.get(BOOK)).parked == []


def test_many_carriers_cannot_make_a_book_the_broker_refuses() -> None:
    hub = Hub()
    outs: list[Out] = []
    for number in range(6):
        outs += send(hub, bloated(number, f"carrier.stranger{number}"))
        assert book_size(hub) <= topic_names.MAX_OUTPUT_BYTES

    assert codes(outs) == [b"too_large", b"too_large"]
    assert len(decode_book(hub.books.get(BOOK)).parked) == 4
    # the stage goes on: a small event still parks, and the booking releases all that waits
    assert codes(send(hub, reference_only_report())) == []
    registered = on(TOPICS.references, hub.merged(hub.event(booking_with_container())))
    assert len(on(TOPICS.events, hub.resolved(*[hub.as_input(out) for out in registered]))) == 5


def test_without_the_bounds_the_book_outgrows_the_broker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(references, "MAX_OUTPUT_BYTES", 10**9)
    monkeypatch.setattr(references, "PARKED_PER_SOURCE", 10**9)
    hub = Hub()
    for number in range(5):
        send(hub, bloated(number, "carrier.stranger"))
    assert book_size(hub) > BROKER_MAX_MESSAGE_BYTES  # the attack is real: the bounds are what stop it


def test_many_small_events_meet_the_same_bound() -> None:
    """The stage encodes a book to measure it only once its size may be near a bound (an upper estimate as the
    batch adds to it): many small events of one carrier, over several batches, meet the quota all the same."""
    hub = Hub()
    outs: list[Out] = []
    for batch in range(8):
        docs = [bloated(batch * 1_000 + n, "carrier.stranger", packages=10) for n in range(100)]  # ~640 bytes each
        forwarded = on(TOPICS.references, hub.merged(*[hub.event(doc, key=b"any") for doc in docs]))
        outs += hub.resolved(*[hub.as_input(out) for out in forwarded])
        assert waiting(hub) <= PARKED_PER_SOURCE

    parked = len(decode_book(hub.books.get(BOOK)).parked)
    assert 0 < parked < 800 and codes(outs) == [b"over_quota"] * (800 - parked)
    assert waiting(hub) > PARKED_PER_SOURCE - 1_000  # filled to the quota, not short of it


def waiting(hub: Hub) -> int:
    """The bytes of the events waiting in the book (each entry also holds its time of parking and origin)."""
    return sum(len(orjson.dumps(p.event)) for p in decode_book(hub.books.get(BOOK)).parked)


def test_the_booking_releases_a_book_filled_to_the_bound() -> None:
    """Four carriers fill a book to within a few hundred bytes of the bound: the registration that releases what
    waits is measured, not estimated from above, and goes in whenever it does not make the book larger."""
    hub = Hub()
    outs: list[Out] = []
    for number in range(4):
        outs += send(hub, bloated(number, f"carrier.stranger{number}", packages=11_500))  # ~242 KB each
    # then one event sized to leave about 120 bytes: less than the booking's registration adds (about 200)
    room = topic_names.MAX_OUTPUT_BYTES - book_size(hub)
    now = decode_book(hub.books.get(BOOK))

    def growth(packages: int) -> int:
        after, _ = references.request(now, hub_event(bloated(100, "carrier.small", packages=packages)), RECEIVED_AT, None)
        return len(encode_book(after)) - book_size(hub)

    packages = (room - 120 - growth(0)) // 21
    while growth(packages) > room - 100:
        packages -= 1
    outs += send(hub, bloated(100, "carrier.small", packages=packages))
    assert codes(outs) == [] and 0 < topic_names.MAX_OUTPUT_BYTES - book_size(hub) < 190
    waiting = len(decode_book(hub.books.get(BOOK)).parked)

    registered = on(TOPICS.references, hub.merged(hub.event(booking_with_container())))
    released = hub.resolved(*[hub.as_input(out) for out in registered])

    assert codes(released) == []
    assert len(on(TOPICS.events, released)) == waiting
    assert decode_book(hub.books.get(BOOK)).parked == []


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(["park", "settle", "register"]), st.integers(0, 5), st.integers(0, 300)), max_size=14))
def test_a_books_size_is_never_underestimated(steps: list[tuple[str, int, int]]) -> None:
    """Within one batch, whatever parks, settles and registrations come: the size the stage keeps for a book is at
    least its encoded size, and is its very size when it says so."""
    hub = Hub()
    books = Books(hub.books, WarmCache[Book]())
    for action, number, packages in steps:
        doc = bloated(number, f"carrier.s{number % 3}", packages=packages)
        event = hub_event({**doc, "shipment_id": "SHP-TEST-0001"})
        if action == "park":
            [message] = request_messages(hub_event(doc))
        elif action == "settle":
            [message] = settled_messages(event, "container:OTHER0000001")
        else:  # a shipment registers the container, a window that later closes (a replacing registration)
            until = when(100 + packages) if number % 2 else None
            registration = Registration.built(
                reference=CarrierReference(kind="container", value=CONTAINER), shipment_id=f"SHP-TEST-{number:04d}",
                leg=None, valid_from=when(packages), valid_until=until, version=packages,
            )
            [message] = register_messages([registration])
        hub.resolve.resolve(hub.record(TOPICS.references, BOOK, message.value), books)
        now = len(encode_book(books.now[BOOK]))
        assert books.at_most[BOOK] >= now
        assert not books.exact[BOOK] or books.at_most[BOOK] == now
