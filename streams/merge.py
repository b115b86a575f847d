"""The merge: a shipment's record is a pure fold of its events.

The state keeps, per event identity (source, event_id), the one copy that wins: the latest `revised_at`, a
retraction over a plain copy at the same revision, and the canonical-bytes fingerprint as the last word. It
also keeps the fingerprint of every distinct copy ever taken in. The record is then projected from the
winning copies alone, with every choice made by event data (precedence, event time, event key) and none by
arrival order. Hence: the same events, in any order, with any duplicates, give the same record.

Nothing here does I/O or imports a stream framework.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from typing import Iterable, Mapping

import orjson

from schemas.base import Money, MoneyTotal
from schemas.events import (
    HUB_EVENT,
    BookingEvent,
    BookingPayload,
    ClaimUpdate,
    HubEvent,
    InsuranceEvent,
    PolicyBound,
    SettlementEvent,
    TrackingEvent,
    WaybillEvent,
)
from schemas.record import (
    ChargeRecord,
    ClaimRecord,
    DocumentRecord,
    InsuranceRecord,
    LegRecord,
    Milestone,
    PolicyRecord,
    ShipmentRecord,
    Times,
)
from schemas.status import AT_ORIGIN, INCIDENTS, PRECEDENCE, LegStatus, ShipmentStatus

_NEVER = datetime.min.replace(tzinfo=timezone.utc)


def fingerprint(event: HubEvent) -> str:
    """Identity of one exact copy of an event: a hash of its canonical JSON (sorted keys)."""
    canonical = orjson.dumps(HUB_EVENT.dump_python(event, mode="json"), option=orjson.OPT_SORT_KEYS)
    return hashlib.blake2b(canonical, digest_size=16).hexdigest()


@dataclass(frozen=True)
class Copy:
    fingerprint: str
    event: HubEvent

    @property
    def rank(self) -> tuple[datetime, bool, str]:
        return (self.event.revised_at or _NEVER, self.event.retracted, self.fingerprint)


@dataclass(frozen=True)
class ShipmentState:
    """Everything the hub needs to rebuild a shipment's record.

    `copies` holds the winning copy per event identity, `superseded` the copies that lost to it (an invoice
    must be able to say what a corrected charge used to be), `seen` the fingerprints of all of them.
    """

    shipment_id: str
    copies: Mapping[str, Copy] = field(default_factory=dict)
    seen: frozenset[str] = frozenset()
    superseded: Mapping[str, tuple[Copy, ...]] = field(default_factory=dict)

    @property
    def version(self) -> int:
        return len(self.seen)

    def history(self, key: str) -> tuple[Copy, ...]:
        """Every copy of one event, lowest rank first, the winner last."""
        winner = self.copies.get(key)
        return self.superseded.get(key, ()) + ((winner,) if winner else ())


class MisroutedEvent(ValueError):
    """An event reached the state of another shipment: a routing bug in the hub, never the carrier's fault."""


def apply(state: ShipmentState, event: HubEvent, event_fingerprint: str | None = None) -> ShipmentState:
    """Return the state with `event` taken into account; the same object if this exact copy was seen before."""
    if event.shipment_id != state.shipment_id:
        raise MisroutedEvent(f"event {event.key} for {event.shipment_id!r} applied to shipment {state.shipment_id!r}")
    digest = event_fingerprint or fingerprint(event)
    if digest in state.seen:
        return state
    incoming = Copy(digest, event)
    current = state.copies.get(event.key)
    copies, superseded = state.copies, state.superseded
    if current is None or incoming.rank > current.rank:
        copies = {**state.copies, event.key: incoming}
        loser = current
    else:
        loser = incoming
    if loser is not None:
        # kept sorted by rank, so the state is the same whatever order the copies came in
        losers = tuple(sorted(state.superseded.get(event.key, ()) + (loser,), key=lambda c: c.rank))
        superseded = {**state.superseded, event.key: losers}
    return ShipmentState(state.shipment_id, copies, state.seen | {digest}, superseded)


def apply_all(state: ShipmentState, events: Iterable[HubEvent]) -> ShipmentState:
    for event in events:
        state = apply(state, event)
    return state


def absorb(state: ShipmentState, events: Iterable[HubEvent]) -> tuple[ShipmentState, list[Copy]]:
    """Apply a batch; also return the copies that were new to the state (what the next version adds)."""
    added: list[Copy] = []
    for event in events:
        digest = fingerprint(event)
        after = apply(state, event, digest)
        if after is not state:
            added.append(Copy(digest, event))
        state = after
    return state, added


def fold(events: Iterable[HubEvent]) -> dict[str, ShipmentRecord]:
    """Offline replay: every shipment's record from a log of events, exactly as the stream computes it."""
    states: dict[str, ShipmentState] = {}
    for event in events:
        if event.shipment_id is None:
            raise ValueError(f"event {event.key} names no shipment_id; resolve its carrier references first")
        state = states.get(event.shipment_id) or ShipmentState(event.shipment_id)
        states[event.shipment_id] = apply(state, event)
    return {shipment_id: project(state) for shipment_id, state in sorted(states.items())}


# --- projection -----------------------------------------------------------------------------------------------


def project(state: ShipmentState) -> ShipmentRecord:
    """The record the winning copies add up to. Deterministic: no choice depends on arrival order."""
    live = sorted(
        (copy.event for copy in state.copies.values() if not copy.event.retracted),
        key=lambda e: (e.occurred_at, e.key),
    )
    retracted = sum(1 for copy in state.copies.values() if copy.event.retracted)
    updated_at = max((e.recorded_at for e in live), default=None)
    bookings = [e for e in live if isinstance(e, BookingEvent)]
    booking = max(bookings, key=lambda e: (e.occurred_at, e.revised_at or _NEVER, e.key), default=None)

    insurance = _insurance(live)
    through = _documents(e for e in live if isinstance(e, WaybillEvent) and e.payload.leg is None)
    if booking is None:
        waiting = [e.key for e in live if not _shipment_level(e)]
        return ShipmentRecord(
            shipment_id=state.shipment_id,
            version=state.version,
            status="awaiting_booking",
            responsible_operator=None,
            shipper=None,
            consignee=None,
            booking=None,
            booking_set_by=None,
            through_document=through[0] if through else None,
            legs=[],
            current_location=None,
            location_set_by=None,
            journey_charges=[],
            charges_total=[],
            insurance=insurance,
            events_applied=len(live),
            retracted_events=retracted,
            awaiting_placement=sorted(waiting),
            updated_at=updated_at,
        )

    plan = booking.payload
    per_leg: dict[int, list[HubEvent]] = defaultdict(list)
    unplaced: list[str] = []
    journey_settlements: list[SettlementEvent] = []
    for event in live:
        if isinstance(event, (BookingEvent, InsuranceEvent)) or _shipment_level(event):
            continue
        if isinstance(event, SettlementEvent) and event.payload.leg is None and event.source == plan.mto:
            journey_settlements.append(event)  # the MTO's own charges for the whole journey
            continue
        leg = _leg_of(event, plan)
        if leg is None:
            unplaced.append(event.key)
        else:
            per_leg[leg].append(event)

    legs = [_leg(planned.sequence, plan, per_leg[planned.sequence]) for planned in plan.legs]
    location = _current_location(legs)
    journey_charges = _charges(journey_settlements)
    charges = journey_charges + [charge for leg in legs for charge in leg.charges]
    return ShipmentRecord(
        shipment_id=state.shipment_id,
        version=state.version,
        status=_shipment_status(legs),
        responsible_operator=plan.mto,
        shipper=plan.shipper,
        consignee=plan.consignee,
        booking=plan,
        booking_set_by=booking.key,
        through_document=through[0] if through else None,
        legs=legs,
        current_location=location.location if location else None,
        location_set_by=location.set_by if location else None,
        journey_charges=journey_charges,
        charges_total=_totals(charge.amount for charge in charges),
        insurance=insurance,
        events_applied=len(live),
        retracted_events=retracted,
        awaiting_placement=sorted(unplaced),
        updated_at=updated_at,
    )


def _shipment_level(event: HubEvent) -> bool:
    """Events that belong to the whole journey rather than to one leg."""
    if isinstance(event, InsuranceEvent):
        return True
    return isinstance(event, WaybillEvent) and event.payload.leg is None


def _leg_of(event: HubEvent, plan: BookingPayload) -> int | None:
    """The leg an event reports on: the one it names, else the only leg its source carries; None if unknown."""
    named = getattr(event.payload, "leg", None)
    if named is not None:
        return named if named <= len(plan.legs) else None
    carried = [leg.sequence for leg in plan.legs if leg.carrier == event.source]
    return carried[0] if len(carried) == 1 else None


def _milestone(event: TrackingEvent, planned_leg_origin: str, planned_leg_destination: str) -> Milestone:
    status = event.payload.status
    location = event.payload.location
    if location is None and status in PRECEDENCE:
        location = planned_leg_origin if status in AT_ORIGIN else planned_leg_destination
    return Milestone(
        status=status,
        classifier=event.classifier,
        at=event.occurred_at,
        location=location,
        raw_code=event.payload.raw_code,
        code_list=event.payload.code_list,
        set_by=event.key,
    )


def _leg(sequence: int, plan: BookingPayload, events: list[HubEvent]) -> LegRecord:
    planned = plan.legs[sequence - 1]
    tracking = [e for e in events if isinstance(e, TrackingEvent)]

    # Per (status, classifier): the first actual report is when it happened; the newest plan or estimate is
    # the best-informed one. An estimate never fills an actual slot: the classifier is part of the key.
    chosen: dict[tuple[str, str], TrackingEvent] = {}
    for event in tracking:
        if event.payload.status in INCIDENTS or event.payload.status == "unknown":
            continue
        slot = (event.payload.status, event.classifier)
        held = chosen.get(slot)
        if held is None or _better(event, held):
            chosen[slot] = event
    milestones = sorted(
        (_milestone(e, planned.origin, planned.destination) for e in chosen.values()),
        key=lambda m: (PRECEDENCE[m.status], m.classifier, m.at, m.set_by),
    )
    actual = [m for m in milestones if m.classifier == "ACT"]
    furthest = max(actual, key=lambda m: PRECEDENCE[m.status], default=None)
    status: LegStatus = furthest.status if furthest else "planned"  # type: ignore[assignment]

    def times(statuses: tuple[str, ...], planned_at: datetime | None) -> Times:
        # The first status in `statuses` that has a report of a classifier gives that classifier's time.
        found: dict[str, datetime] = {}
        for wanted in reversed(statuses):
            found.update({m.classifier: m.at for m in milestones if m.status == wanted})
        return Times(planned=found.get("PLN", planned_at), estimated=found.get("EST"), actual=found.get("ACT"))

    reports = sorted(
        (_milestone(e, planned.origin, planned.destination) for e in tracking),
        key=lambda m: (m.at, m.set_by),
    )
    return LegRecord(
        sequence=sequence,
        mode=planned.mode,
        carrier=planned.carrier,
        origin=planned.origin,
        destination=planned.destination,
        status=status,
        status_set_by=furthest.set_by if furthest else None,
        departure=times(("departed",), planned.planned_departure),
        arrival=times(("arrived", "delivered"), planned.planned_arrival),  # a last mile may report only delivery
        milestones=milestones,
        exceptions=[m for m in reports if m.status in INCIDENTS],
        unmapped=[m for m in reports if m.status == "unknown"],
        documents=_documents(e for e in events if isinstance(e, WaybillEvent)),
        charges=_charges(e for e in events if isinstance(e, SettlementEvent)),
    )


def _better(candidate: TrackingEvent, held: TrackingEvent) -> bool:
    if candidate.classifier == "ACT":
        return (candidate.occurred_at, candidate.key) < (held.occurred_at, held.key)
    return (candidate.recorded_at, candidate.occurred_at, candidate.key) > (held.recorded_at, held.occurred_at, held.key)


def _documents(events: Iterable[WaybillEvent]) -> list[DocumentRecord]:
    """One entry per (kind, number): the earliest event that issued it names it."""
    first: dict[tuple[str, str], WaybillEvent] = {}
    for event in sorted(events, key=lambda e: (e.occurred_at, e.key)):
        first.setdefault((event.payload.document_kind, event.payload.document_number), event)
    return [
        DocumentRecord(
            kind=e.payload.document_kind,
            number=e.payload.document_number,
            issuer=e.payload.issuer,
            containers=e.payload.containers,
            set_by=e.key,
        )
        for _, e in sorted(first.items())
    ]


def _charges(events: Iterable[SettlementEvent]) -> list[ChargeRecord]:
    return [
        ChargeRecord(
            carrier=e.payload.carrier,
            code=line.code,
            description=line.description,
            amount=line.amount,
            set_by=e.key,
        )
        for e in sorted(events, key=lambda e: (e.occurred_at, e.key))
        for line in e.payload.charges
    ]


def _totals(amounts: Iterable[Money]) -> list[MoneyTotal]:
    sums: dict[str, Decimal] = defaultdict(Decimal)
    for money in amounts:
        sums[money.currency] += money.amount
    return [MoneyTotal(amount=total, currency=currency) for currency, total in sorted(sums.items())]


def _insurance(live: list[HubEvent]) -> InsuranceRecord:
    cover = [e for e in live if isinstance(e, InsuranceEvent)]
    policies = [e for e in cover if isinstance(e.payload, PolicyBound)]
    policy_event = max(policies, key=lambda e: (e.occurred_at, e.key), default=None)
    policy = None
    if policy_event is not None and isinstance(policy_event.payload, PolicyBound):
        bound = policy_event.payload
        policy = PolicyRecord(
            policy_number=bound.policy_number,
            insurer=bound.insurer,
            insured_value=bound.insured_value,
            conditions=bound.conditions,
            set_by=policy_event.key,
        )
    latest: dict[str, InsuranceEvent] = {}
    for event in sorted(cover, key=lambda e: (e.occurred_at, e.key)):
        if isinstance(event.payload, ClaimUpdate):
            latest[event.payload.claim_id] = event
    claims = []
    for claim_id, event in sorted(latest.items()):
        assert isinstance(event.payload, ClaimUpdate)
        claims.append(
            ClaimRecord(claim_id=claim_id, status=event.payload.status, amount=event.payload.amount, set_by=event.key)
        )
    return InsuranceRecord(policy=policy, claims=claims)


def _current_location(legs: list[LegRecord]) -> Milestone | None:
    """Where the cargo was last actually seen: the furthest actual milestone along the journey."""
    actual = [(leg.sequence, m) for leg in legs for m in leg.milestones if m.classifier == "ACT" and m.location]
    if not actual:
        return None
    return max(actual, key=lambda pair: (pair[0], PRECEDENCE[pair[1].status], pair[1].at, pair[1].set_by))[1]


def _shipment_status(legs: list[LegRecord]) -> ShipmentStatus:
    if legs and legs[-1].status == "delivered":
        return "delivered"
    if any(leg.status != "planned" for leg in legs):
        return "in_transit"
    return "booked"
