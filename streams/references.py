"""Reference resolution: carriers name a shipment by their own references; the hub finds its shipment id.

A shipment's booking and documents *register* references (container numbers, waybill and bill of lading
numbers, carrier booking references), each valid for a time window. An event that names only references is sent
to every reference it names (keyed by the reference, on `hub.references`). There each reference's *book* holds
the registrations and the events still waiting for one: a resolvable event goes on to `hub.events` with the
shipment id set, the others are parked in arrival order and released when a registration covers them. When one
reference resolves an event, the event's other references are told (`settled`), so its copies parked there do
not wait forever. A copy resolved twice is the same event twice, which the merge recognises as a duplicate.

Validity: containers are reused. A registration is valid from the booking or document that made it until the
shipment completes (delivery, cancellation or rejection) plus a grace period for late reports. An event goes to
the live registration that began most recently at or before it happened; failing that (it happened before any
live registration began, such as an empty container picked up for the booking), to the one that begins first.
Among the live registrations, those of shipments the event's source takes part in (each registration names the
shipment's MTO, its legs' carriers, its shipper and consignee) come first: a party of one shipment that names
another shipment's container or document in its own documents, dated later, does not draw that shipment's
reports to its own. Not closed by this: a source that takes part in both shipments (an MTO may name any carrier
in its booking), and an event that arrives while only the other shipment's registration is live.

Resolution uses the registrations known when the event (or the registration) arrives, and is not revisited: an
event for a container's next shipment that arrives while its previous shipment is still live in the hub goes
to the previous one (a container is not on two live shipments at once, so that shipment's own late reports are
what such an event most likely is).

Pure: no I/O. The faust wiring lives in worker.app.
"""

from __future__ import annotations

from bisect import insort
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from operator import attrgetter
from typing import Annotated, Iterable, Literal, Union

import orjson
from pydantic import Field, TypeAdapter

from hubconf.topics import MAX_OUTPUT_BYTES
from schemas.base import Frozen, UtcDatetime
from schemas.events import HUB_EVENT, CarrierReference, HubEvent, ReferenceKind, identity_reference
from schemas.identifiers import ShipmentId
from schemas.record import ShipmentRecord
from schemas.rejection import Rejection
from streams.authority import Authority
from streams.codec import MAX_EVENT_BYTES
from streams.quota import OVER_QUOTA
from streams.copies import Copy
from streams.merge import ShipmentState, apply, project

# Late reports (a damage notice, a final charge) still name the container for a while after delivery.
GRACE = timedelta(days=14)

# Which carrier reference a transport document's number is. The through document is the MTO's, not a carrier's: it
# registers as a `transport_document`. An inland waterway waybill has no reference kind of its own and does not.
DOCUMENT_REFERENCE: dict[str, ReferenceKind] = {
    "cmr": "cmr",
    "road_consignment_note": "cmr",
    "cim": "rail_waybill",
    "smgs": "rail_waybill",
    "rail_waybill": "rail_waybill",
    "sea_waybill": "sea_waybill",
    "bill_of_lading": "bill_of_lading",
    "air_waybill": "air_waybill",
}


def reference_key(reference: CarrierReference) -> str:
    return f"{reference.kind}:{reference.value}"


class Registration(Frozen):
    """`reference` names `shipment_id` (on `leg`, when one leg's document registered it) between the two times.

    `version` is the record version that stated it: per (reference, shipment) the highest version wins, so a
    replayed older registration never reopens a window the newer one closed.
    """

    reference: CarrierReference
    shipment_id: ShipmentId
    leg: int | None
    valid_from: UtcDatetime
    valid_until: UtcDatetime | None
    version: int
    # who reports on the shipment (its MTO and its legs' carriers): an event from one of them resolves to this
    # shipment before any other registration of the reference (empty: a book stored before this field)
    parties: list[str] = []

    def covers(self, at: datetime) -> bool:
        return self.valid_until is None or at <= self.valid_until


class Parked(Frozen):
    """An event waiting for its reference, since when, and where it came from (for the dead letter, if any)."""

    event: dict[str, object]
    since: UtcDatetime
    origin: str | None = None


class Book(Frozen):
    """One reference's table entry: who registered it (in the order of their start, then shipment id), and who is
    waiting for it (in arrival order). The hub builds it from validated messages without validating it again."""

    registrations: list[Registration] = []
    parked: list[Parked] = []


_BOOK = TypeAdapter(Book)


def decode_book(raw: bytes | None) -> Book:
    return Book() if raw is None else _BOOK.validate_json(raw)


def encode_book(book: Book) -> bytes:
    return _BOOK.dump_json(book)


EMPTY_BOOK_BYTES = len(encode_book(Book()))  # a book not stored yet
_NOTHING_PARKED = b'"parked":[]}'  # how an encoded book ends when no event waits in it (`parked` is its last field)


def holds_parked(raw: bytes) -> bool:
    """Whether an encoded book holds parked events, without decoding it."""
    return not raw.endswith(_NOTHING_PARKED)


# --- what a shipment registers ------------------------------------------------------------------------------------


def registrations(state: ShipmentState, record: ShipmentRecord) -> list[Registration]:
    """The references this version of the shipment registers, one per reference, sorted."""
    return registered(state, record).all()


@dataclass(frozen=True, slots=True)
class Registered:
    """What one version of a shipment registers (`all()`: `registrations(state, record)`), kept in the two parts a
    version works out differently: `places`, the references of the booking and its documents (a few, sorted),
    worked out again for each version; and `identities`, per event key, the identity reference (and the time the
    event happened) of each event the carrier addressed by its references, which only the copies a version takes
    in change. Nothing while `booked` is false (before the booking)."""

    shipment_id: str
    version: int
    booked: bool
    places: list[Registration]
    identities: dict[str, tuple[CarrierReference, datetime]]
    parties: tuple[str, ...] = ()
    # what `places` were worked out of (`_basis`): a later version with the same parts states them again
    basis: tuple[object, ...] = field(default=(), compare=False, repr=False)

    def all(self) -> list[Registration]:
        if not self.booked:
            return []
        return sorted(self.places + [self.identity(*found) for found in self.identities.values()], key=_by_reference)

    def identity(self, reference: CarrierReference, since: datetime) -> Registration:
        """Each event the carrier addressed by its references registers its identity, without end (an identity is
        never reused), so that a retraction naming only that identity finds the shipment."""
        return Registration.built(
            reference=reference, shipment_id=self.shipment_id, leg=None, valid_from=since, valid_until=None, version=self.version,
            parties=list(self.parties),
        )


def registered(
    state: ShipmentState, record: ShipmentRecord, before: Registered | None = None, taken: Iterable[str] = ()
) -> Registered:
    """What `record`, the projection of `state`, registers. `before`: what the shipment registered before it took in
    the copies of the events `taken` (their keys), when the caller has it; then only those events' identities are
    worked out again (an event's winning copy changes only when one of its copies is taken in)."""
    if record.booking is None or record.booking_set_by is None:  # nothing to register before the booking: its legs
        return Registered(record.shipment_id, record.version, False, [], {}, _parties(record))  # say who may report on what
    if before is None or not before.booked:
        identities = {key: found for key, copy in state.copies.items() if (found := _identified(copy)) is not None}
    else:
        identities = dict(before.identities)
        for key in taken:
            copy = state.copies.get(key)
            found = _identified(copy) if copy is not None else None
            if found is None:
                identities.pop(key, None)
            else:
                identities[key] = found
    until = _completed(state, record)
    basis = _basis(record, until)
    if before is not None and _same_basis(before.basis, basis):
        places = [
            Registration.built(
                reference=r.reference, shipment_id=r.shipment_id, leg=r.leg, valid_from=r.valid_from, valid_until=r.valid_until,
                version=record.version, parties=r.parties,
            )
            for r in before.places
        ]
    else:
        places = _places(state, record, until)
    return Registered(record.shipment_id, record.version, True, places, identities, _parties(record), basis)


def _parties(record: ShipmentRecord) -> tuple[str, ...]:
    """Who reports on the shipment: its MTO, the carriers of its legs, its shipper and consignee (a handover)."""
    found = {leg.carrier for leg in record.legs}
    found.update(party.party_id for party in (record.shipper, record.consignee) if party is not None)
    if record.responsible_operator is not None:
        found.add(record.responsible_operator)
    return tuple(sorted(found))


def _basis(record: ShipmentRecord, until: datetime | None) -> tuple[object, ...]:
    """What a booked record's places are made of: when its references stop naming it, and the booking, the through
    document and each leg's documents, as objects. The same objects are the same events' (the merge keeps a part
    as it was only while its events are the same), so their registrations are those worked out before."""
    return (until, record.booking, record.through_document, *(leg.documents for leg in record.legs))


def _same_basis(before: tuple[object, ...], now: tuple[object, ...]) -> bool:
    return (
        len(before) == len(now) and bool(now) and before[0] == now[0]
        and all(old is new for old, new in zip(before[1:], now[1:]))
    )


def _identified(copy: Copy) -> tuple[CarrierReference, datetime] | None:
    """The identity an event's winning copy registers: only when the carrier addressed it by its references."""
    if not copy.event.references:
        return None
    return _identity(copy.event.source, copy.event.event_id), copy.event.occurred_at


def _places(state: ShipmentState, record: ShipmentRecord, until: datetime | None) -> list[Registration]:
    """The references the booking and the documents of a booked record register, one per reference, sorted, each
    valid `until` (`_completed`)."""
    assert record.booking is not None and record.booking_set_by is not None
    booked_at = _occurred(state, record.booking_set_by)
    found: dict[str, tuple[CarrierReference, set[int | None], datetime]] = {}

    def add(kind: ReferenceKind, value: str, leg: int | None, since: datetime) -> None:
        key = f"{kind}:{value}"  # reference_key
        if key in found:
            reference, legs, earliest = found[key]
            found[key] = (reference, legs | {leg}, min(earliest, since))
        else:  # the values come from the validated record and events: taken as they are
            found[key] = (CarrierReference.built(kind=kind, value=value), {leg}, since)

    for container in record.booking.cargo.containers:
        add("container", container, None, booked_at)
    for planned in record.booking.legs:
        if planned.carrier_booking is not None:
            add("carrier_booking", planned.carrier_booking, planned.sequence, booked_at)
        for known in planned.references:  # what the booking already knows for the leg: its documents, packages, sites
            add(known.kind, known.value, planned.sequence, booked_at)
    through = record.through_document
    if through is not None:  # the MTO's DCSA eBL notifications may name it by its number alone
        add("transport_document", through.number, None, _occurred(state, through.set_by))
    for leg in record.legs:
        for document in leg.documents:
            issued_at = _occurred(state, document.set_by)
            kind = DOCUMENT_REFERENCE.get(document.kind)
            if kind is not None:
                add(kind, document.number, leg.sequence, issued_at)
            for container in document.containers:
                add("container", container, leg.sequence, issued_at)
    out = []
    for key in sorted(found):
        reference, legs, since = found[key]
        only_leg = next(iter(legs)) if len(legs) == 1 else None
        out.append(
            Registration.built(
                reference=reference,
                shipment_id=record.shipment_id,
                leg=only_leg,
                valid_from=since,
                valid_until=until,
                version=record.version,
                parties=list(_parties(record)),
            )
        )
    return out


def _by_reference(registration: Registration) -> str:
    return reference_key(registration.reference)


# An event's identity reference is a digest of it: worked out once per event a worker holds, not once per version.
_identity = lru_cache(maxsize=1 << 16)(identity_reference)


def changed(before: Registered | None, after: Registered) -> list[Registration]:
    """The registrations of `after` that say something `before` did not (the version alone does not count), in the
    order of `after.all()`: what a version sends. Only the identities whose entry changed are looked at (distinct
    event keys have distinct identity references: a digest of the key), unless the shipment's parties changed (a
    booking amended to another carrier): each registration names them, so then every one says something new."""
    if not after.booked:
        return []
    if before is None or not before.booked:
        return after.all()
    said = {_said(r) for r in before.places}
    if any(r.reference.kind == "event" for r in after.places):  # a booking may name an event identity as a place
        said |= {(reference_key(reference), None, since, None, before.parties) for reference, since in before.identities.values()}
    places = [r for r in after.places if _said(r) not in said]
    identities = []
    parties_changed = before.parties != after.parties
    for key, found in after.identities.items():
        if parties_changed or before.identities.get(key) != found:
            reference, since = found
            if (reference_key(reference), None, since, None, after.parties) not in said:
                identities.append(after.identity(reference, since))
    return sorted(places + identities, key=_by_reference) if identities else places


def _said(r: Registration) -> tuple[object, ...]:
    """What a registration says, its version left out."""
    return reference_key(r.reference), r.leg, r.valid_from, r.valid_until, tuple(r.parties)


def _occurred(state: ShipmentState, event_key: str) -> datetime:
    copy = state.copies.get(event_key)
    if copy is None:
        raise ValueError(f"the record names event {event_key}, which is not in the state")  # a hub bug
    return copy.event.occurred_at


def _completed(state: ShipmentState, record: ShipmentRecord) -> datetime | None:
    """When the shipment's references stop naming it: completion plus GRACE; None while it is live."""
    if record.status in ("cancelled", "rejected") and record.booking_status_set_by is not None:
        return _occurred(state, record.booking_status_set_by) + GRACE
    if record.status != "delivered":
        return None
    delivered = [h.at for h in record.handovers if h.to_leg is None]
    delivered += [m.at for m in record.legs[-1].milestones if m.classifier == "ACT" and m.status == "delivered"]
    if record.legs[-1].arrival.actual is not None:
        delivered.append(record.legs[-1].arrival.actual)
    if not delivered:
        raise ValueError(f"shipment {record.shipment_id} is delivered but names no delivery time")  # a hub bug
    return min(delivered) + GRACE


# --- the book of one reference --------------------------------------------------------------------------------------


def resolve(book: Book, at: datetime, source: str | None = None) -> Registration | None:
    """The registration an event that happened `at` belongs to, if any (see the module docstring). An event from
    `source` goes to a shipment `source` reports on, when one of the live registrations is such a shipment's: a
    party of one shipment naming another shipment's container or document in its own documents (or booking) does
    not draw that shipment's reports to its own."""
    live = [r for r in book.registrations if r.covers(at)]
    if source is not None:
        live = [r for r in live if source in r.parties] or live
    begun = [r for r in live if r.valid_from <= at]
    if begun:
        return max(begun, key=lambda r: (r.valid_from, r.shipment_id))
    return min(live, key=lambda r: (r.valid_from, r.shipment_id), default=None)


def register(book: Book, registration: Registration) -> tuple[Book, list[tuple[HubEvent, Parked]]]:
    """Take in a registration (the highest version per shipment wins); release the parked events it resolves,
    in the order they were parked, each with its shipment id set."""
    shipment = registration.shipment_id
    holders = list(map(_SHIPMENT, book.registrations))  # a book may hold a registration of many shipments
    if shipment in holders:
        if book.registrations[holders.index(shipment)].version >= registration.version:
            return book, []
        kept = [r for r in book.registrations if r.shipment_id != shipment]
    else:
        kept = list(book.registrations)
    insort(kept, registration, key=_in_book_order)  # the book is kept in this order
    return _release(Book.built(registrations=kept, parked=book.parked))


_SHIPMENT = attrgetter("shipment_id")


def _in_book_order(registration: Registration) -> tuple[datetime, str]:
    return registration.valid_from, registration.shipment_id


def request(book: Book, event: HubEvent, now: datetime, origin: str | None) -> tuple[Book, HubEvent | None]:
    """Resolve `event` now, or park it. The same copy is parked once however often it arrives."""
    found = resolve(book, event.occurred_at, event.source)
    if found is not None:
        return book, addressed(event, found.shipment_id)
    document = HUB_EVENT.dump_python(event, mode="json")
    if any(p.event == document for p in book.parked):
        return book, None
    parked = Parked.built(event=document, since=now.astimezone(timezone.utc), origin=origin)
    return Book.built(registrations=book.registrations, parked=[*book.parked, parked]), None


# What one reference's book may hold. The book is one record of the references table's changelog, on a topic of the
# broker's default max.message.bytes: a book over it makes the checkpoint that writes it fail at every retry, and
# the references partition stops. A change that would make it larger is refused (hubconf.topics.MAX_OUTPUT_BYTES).
# Within that, one source's parked events on a reference are bounded, so that one carrier cannot fill the book and
# leave no room for the events of every other one; the bound admits one event of the largest size.
PARKED_PER_SOURCE = MAX_EVENT_BYTES


def parked_bytes(book: Book) -> dict[str, int]:
    """The bytes of the events waiting in `book`, per source (each event's JSON)."""
    held: dict[str, int] = {}
    for parked in book.parked:
        source = str(parked.event.get("source"))
        held[source] = held.get(source, 0) + len(orjson.dumps(parked.event))
    return held


PARKED_OVERHEAD = 96


def entry_bytes(parked: Parked) -> tuple[int, int]:
    """The bytes of a parked entry's event JSON, and at most those of the entry in its book: the event's, its
    origin's and PARKED_OVERHEAD for its time of parking and the field names."""
    event = len(orjson.dumps(parked.event))
    return event, event + len(orjson.dumps(parked.origin)) + PARKED_OVERHEAD



def book_refusal(size: int, parked_by: str | None, held: int, reference: str) -> Rejection | None:
    """Why a change that leaves the book of `reference` at most `size` bytes encoded is refused, if it is: the book
    past what one message may hold, or (`parked_by`: the source of the event the change parks, which then has at
    most `held` bytes of events waiting in the book) that source past `PARKED_PER_SOURCE`. The caller dead-letters
    what made the change and keeps the book as it was."""
    if size > MAX_OUTPUT_BYTES:
        return Rejection(
            "too_large",
            f"reference {reference}'s book would be {size} bytes; a message is limited to {MAX_OUTPUT_BYTES}: "
            "it goes on without this",
        )
    if parked_by is not None and held > PARKED_PER_SOURCE:
        return Rejection(
            OVER_QUOTA,
            f"{parked_by} would have {held} bytes of events waiting on reference {reference}; a source may have "
            f"{PARKED_PER_SOURCE} waiting on one reference until a booking registers it",
        )
    return None


def expire(book: Book, now: datetime, ttl: timedelta) -> tuple[Book, list[Parked]]:
    """Take out of `book` the events that have waited `ttl` or longer by `now`: the caller dead-letters them."""
    gone = [p for p in book.parked if now - p.since >= ttl]
    if not gone:
        return book, []
    waiting = [p for p in book.parked if now - p.since < ttl]
    return Book.built(registrations=book.registrations, parked=waiting), gone


def overdue(book: Book, now: datetime, ttl: timedelta) -> bool:
    """Whether an event in `book` has waited `ttl` or longer by `now` (the worker then asks for its expiry)."""
    return any(now - p.since >= ttl for p in book.parked)


def settle(book: Book, event: HubEvent) -> Book:
    """Drop the parked copies of an event another of its references resolved."""
    document = HUB_EVENT.dump_python(_unaddressed(event), mode="json")
    parked = [p for p in book.parked if p.event != document]
    return book if len(parked) == len(book.parked) else Book.built(registrations=book.registrations, parked=parked)


def _release(book: Book) -> tuple[Book, list[tuple[HubEvent, Parked]]]:
    if not book.parked:
        return book, []
    released: list[tuple[HubEvent, Parked]] = []
    waiting: list[Parked] = []
    for parked in book.parked:
        # the time the hub itself wrote (HUB_EVENT's JSON: ISO 8601 in UTC); the event is validated once released
        found = resolve(book, datetime.fromisoformat(str(parked.event["occurred_at"])), str(parked.event.get("source")))
        if found is None:
            waiting.append(parked)
        else:
            event = HUB_EVENT.validate_python(parked.event)  # written by the hub: a failure here is a hub bug
            released.append((addressed(event, found.shipment_id), parked))
    return Book.built(registrations=book.registrations, parked=waiting), released


def addressed(event: HubEvent, shipment_id: str) -> HubEvent:
    """The event as the carrier sent it, now naming the hub shipment it belongs to."""
    return event.model_copy(update={"shipment_id": shipment_id})


def _unaddressed(event: HubEvent) -> HubEvent:
    return event.model_copy(update={"shipment_id": None})


# --- messages on hub.references --------------------------------------------------------------------------------------


class ResolveRequest(Frozen):
    type: Literal["request"]
    event: dict[str, object]
    origin: str | None = None


class RegisterMessage(Frozen):
    type: Literal["register"]
    registration: Registration


class SettledMessage(Frozen):
    """`event` (as sent, without shipment id) was resolved through another of its references."""

    type: Literal["settled"]
    event: dict[str, object]


class ExpireMessage(Frozen):
    """Look at this book's parked events now (the worker's timer sends it for a book it finds overdue): those that
    have waited the time to live are dead-lettered. The stage decides by its own clock, so the message only says
    when to look: sent early or by anyone, it expires nothing before its time."""

    type: Literal["expire"]


ReferenceMessage = Annotated[
    Union[ResolveRequest, RegisterMessage, SettledMessage, ExpireMessage], Field(discriminator="type")
]
REFERENCE_MESSAGE: TypeAdapter[ReferenceMessage] = TypeAdapter(ReferenceMessage)


@dataclass(frozen=True)
class Keyed:
    """A message for hub.references: its key (the reference) and its bytes."""

    key: bytes
    value: bytes


def _keyed(reference: CarrierReference, message: dict[str, object]) -> Keyed:
    """`message` is a reference message's JSON form as the hub builds it (REFERENCE_MESSAGE validates it when read)."""
    return Keyed(reference_key(reference).encode(), orjson.dumps(message))


def request_messages(event: HubEvent, origin: str | None = None) -> list[Keyed]:
    """One resolve request per distinct reference of a reference-only event (the event's JSON written once, by
    pydantic straight to bytes)."""
    value = _REQUEST_HEAD + HUB_EVENT.dump_json(event) + _REQUEST_ORIGIN + orjson.dumps(origin) + b"}"
    return [Keyed(key.encode(), value) for key in dict.fromkeys(reference_key(r) for r in event.references)]


_REQUEST_HEAD, _REQUEST_ORIGIN = b'{"type":"request","event":', b',"origin":'


def requested_event_bytes(request: Keyed, origin: str | None) -> int:
    """The bytes of the event's JSON in a request `request_messages` made with `origin`."""
    return len(request.value) - len(_REQUEST_HEAD) - len(_REQUEST_ORIGIN) - len(orjson.dumps(origin)) - 1


def register_messages(changed: list[Registration]) -> list[Keyed]:
    """One registration message per registration (its JSON written by pydantic straight to bytes)."""
    return [Keyed(reference_key(r.reference).encode(), _REGISTER + _REGISTRATION.dump_json(r) + b"}") for r in changed]


_REGISTER = b'{"type":"register","registration":'
_REGISTRATION = TypeAdapter(Registration)


def settled_messages(event: HubEvent, resolved_through: str) -> list[Keyed]:
    """Tell the event's other references that it no longer waits on them."""
    others = {reference_key(reference): reference for reference in event.references}
    others.pop(resolved_through, None)
    if not others:
        return []  # the event named one reference (most do): nobody else waits for it
    document = HUB_EVENT.dump_python(_unaddressed(event), mode="json")
    return [_keyed(reference, {"type": "settled", "event": document}) for reference in others.values()]



EXPIRE_MESSAGE = orjson.dumps({"type": "expire"})


def parked_summary(key: str, book: Book, now: datetime) -> bytes:
    """What waits on one reference, for the compacted `hub.references.parked` topic: empty once nothing does."""
    if not book.parked:
        return b""
    oldest = min(p.since for p in book.parked)
    return orjson.dumps(
        {
            "reference": key,
            "parked": len(book.parked),
            "oldest_since": oldest.isoformat(),
            "oldest_age_s": round((now - oldest).total_seconds(), 3),
            "events": [f"{p.event.get('source')}/{p.event.get('event_id')}" for p in book.parked],
            "registered_shipments": sorted({r.shipment_id for r in book.registrations}),
        }
    )


def resolve_offline(events: list[HubEvent], authority: Authority) -> tuple[list[HubEvent], list[HubEvent]]:
    """(every event addressed to its shipment, the reference-only events no registration covers): what the stream
    makes of a complete log, for `mmhub fold` and tests. Repeats until nothing changes, since a resolved carrier
    waybill registers its own number, which may resolve more events. Like the stream, an event goes to every
    shipment one of its references resolves to; unlike it, every registration is known before any event is
    resolved, so the ambiguous case in the module docstring resolves by event time alone."""
    placed = [e for e in events if e.shipment_id is not None]
    waiting = [e for e in events if e.shipment_id is None]
    while True:
        states: dict[str, ShipmentState] = {}
        for event in placed:
            assert event.shipment_id is not None
            states[event.shipment_id] = apply(states.get(event.shipment_id) or ShipmentState(event.shipment_id), event)
        books: dict[str, Book] = {}
        for state in states.values():
            for found in registrations(state, project(state, authority)):
                key = reference_key(found.reference)
                books[key] = register(books.get(key, Book()), found)[0]
        still: list[HubEvent] = []
        for event in waiting:
            targets = {
                match.shipment_id
                for match in (
                    resolve(books.get(reference_key(r), Book()), event.occurred_at, event.source) for r in event.references
                )
                if match is not None
            }
            if targets:
                placed += [addressed(event, target) for target in sorted(targets)]
            else:
                still.append(event)
        if len(still) == len(waiting):
            return placed, still
        waiting = still

