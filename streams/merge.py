"""The merge: a shipment's record is a pure fold of its events.

The state keeps, per event identity (source, event_id), the one copy that wins: a retraction over any other copy,
else the latest `revised_at`, and the canonical-bytes fingerprint as the last word (streams.copies). It
also keeps the fingerprint of every distinct copy ever taken in. The record is then projected from the
winning copies alone, with every choice made by event data (precedence, event time, event key) and none by
arrival order. Hence: the same events, in any order, with any duplicates, give the same record.

Who may say what comes from the registry (`Authority`), never from timestamps: only the MTO that owns a shipment
id may book it, decide on the booking, set the margin and issue the through document.

Nothing here does I/O or imports a stream framework.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections import defaultdict
from dataclasses import dataclass, field
from operator import attrgetter, itemgetter
from datetime import datetime
from decimal import Decimal
from typing import Any, Iterable, Mapping, TypeVar, cast


from schemas.base import Money, MoneyTotal
from schemas.events import (
    BookingEvent,
    BookingPayload,
    BookingStatusEvent,
    CarrierInvoiceEvent,
    ClaimUpdate,
    EmissionsEvent,
    HandoverEvent,
    HubEvent,
    IdentityEvent,
    InsuranceEvent,
    InvoiceVerificationEvent,
    MarginEvent,
    PaymentEvent,
    PolicyBound,
    RateEvent,
    SettlementEvent,
    TrackingEvent,
    TRADE_EVENTS,
    WaybillEvent,
)
from schemas.record import (
    BookingState,
    ChargeRecord,
    DocumentRecord,
    HandoverRecord,
    InsuranceRecord,
    LegRecord,
    Milestone,
    PolicyRecord,
    Rejected,
    ReleaseRecord,
    ShipmentRecord,
    Times,
)
from schemas.status import AT_ORIGIN, INCIDENTS, PRECEDENCE, LegStatus, ShipmentStatus, TrackingStatus
from streams.authority import Authority, Operator
from streams.claims import derive_claims
from streams.clock import CLOCK_SOURCE
from streams.copies import NEVER as _NEVER
from streams.copies import Copy, fingerprint as fingerprint  # re-exported: tests and tools take it from the merge
from streams.custody import counted_deliveries, custody, discrepancies, handovers
from streams.documents import documents
from streams.invoices import carrier_invoices
from streams.emissions import emissions_refused, journey_emissions
from streams.identity import Findings, findings, record_time, unverified
from streams.ledger import Invoicing, invoice, settle
from streams.trade import with_trade_parts

@dataclass(frozen=True)
class ShipmentState:
    """Everything the hub needs to rebuild a shipment's record.

    `copies` holds the winning copy per event identity, `superseded` the copies of money events that lost to it
    (an invoice must be able to say what a corrected charge used to be), `seen` the fingerprints of every copy.
    """

    shipment_id: str
    copies: Mapping[str, Copy] = field(default_factory=dict)
    seen: frozenset[str] = frozenset()
    superseded: Mapping[str, tuple[Copy, ...]] = field(default_factory=dict)
    # the release the hub issued: its own fact, set by the merge step on the version that first issues it
    # (streams.release.issue) and never by an event, so it stands whatever is retracted or arrives later
    release: ReleaseRecord | None = None
    # not state: what `project` worked out of these very copies, for the next version to start from
    # (streams.projection.advance); a new state (a copy taken in, a release issued) starts without it
    memo: Memo = field(default_factory=lambda: Memo(), init=False, repr=False, compare=False)

    @property
    def version(self) -> int:
        return len(self.seen)

    def history(self, key: str) -> tuple[Copy, ...]:
        """Every copy of one event, lowest rank first, the winner last."""
        winner = self.copies.get(key)
        return self.superseded.get(key, ()) + ((winner,) if winner else ())


Entry = tuple[tuple[datetime, str], HubEvent, Rejected | None]  # (event time, key), the event, its owner refusal
Verdict = tuple[Rejected | None, int, int | None]  # its entitlement refusal, its place (_JOURNEY...), its leg


@dataclass(frozen=True)
class Classified:
    """A state's winning copies as `project` reads them: the live and owner-refused ones in event order (`entries`,
    each with the refusal of `_not_the_owner` under `operator`), the keys of the retracted ones, and where each live
    event goes under the booking `plan` (`verdicts`: its `_not_entitled` refusal, its place and its leg), the through
    documents and the milestone of each tracking report of a leg under it."""

    operator: Operator | None
    entries: list[Entry]
    at: dict[str, tuple[datetime, str]]  # each entry's place in the order, by event key
    retracted: frozenset[str]
    plan: BookingPayload | None = None
    verdicts: dict[str, Verdict] = field(default_factory=dict)
    through: tuple[list[DocumentRecord], list[Rejected]] | None = None  # the through documents and their refusals
    milestones: dict[str, Milestone] = field(default_factory=dict)  # each tracking report's, on its leg
    tracks: dict[int, _Track] = field(default_factory=dict)  # what each leg's reports add up to, by leg (_tracked)


@dataclass
class Memo:
    classified: Classified | None = None
    invoicing: Invoicing | None = None  # the invoice of the settlement (streams.ledger.invoice), once made

    # A copy of a state (deep, or through pickle) holds other event objects: what the memo says of the state's own
    # events (by identity: streams.merge._Track) does not hold for them, so such a copy starts without it.
    def __deepcopy__(self, memo: dict[int, object]) -> Memo:
        return Memo()

    def __reduce__(self) -> tuple[type[Memo], tuple[()]]:
        return Memo, ()


class MisroutedEvent(ValueError):
    """An event reached the state of another shipment: a routing bug in the hub, never the carrier's fault."""


def apply(state: ShipmentState, event: HubEvent, incoming: Copy | None = None) -> ShipmentState:
    """Return the state with `event` taken into account; the same object if this exact copy was seen before.
    `incoming` is the event's Copy when the caller already made it."""
    if event.shipment_id != state.shipment_id:
        raise MisroutedEvent(f"event {event.key} for {event.shipment_id!r} applied to shipment {state.shipment_id!r}")
    incoming = incoming or Copy.of(event)
    digest = incoming.fingerprint
    if digest in state.seen:
        return state
    current = state.copies.get(event.key)
    copies, superseded = state.copies, state.superseded
    if current is None or incoming.rank > current.rank:
        copies = {**state.copies, event.key: incoming}
        loser = current
    else:
        loser = incoming
    if loser is not None and isinstance(loser.event, MONEY_EVENTS):
        # Kept sorted by rank, so the state is the same whatever order the copies came in. Only the money's: the
        # ledger reads what a corrected charge used to be, nothing reads an earlier copy of any other event, and a
        # carrier may update one estimate many times (DCSA 3.0). Every copy's fingerprint stays in `seen`.
        losers = tuple(sorted(state.superseded.get(event.key, ()) + (loser,), key=lambda c: c.rank))
        superseded = {**state.superseded, event.key: losers}
    return ShipmentState(state.shipment_id, copies, state.seen | {digest}, superseded, state.release)


def apply_all(state: ShipmentState, events: Iterable[HubEvent]) -> ShipmentState:
    return absorb(state, events)[0]


def absorb(state: ShipmentState, events: Iterable[HubEvent]) -> tuple[ShipmentState, list[Copy]]:
    """Apply a batch; also return the copies that were new to the state (what the next version adds)."""
    return absorb_copies(state, [Copy.of(event) for event in events])


def absorb_copies(state: ShipmentState, copies: Iterable[Copy]) -> tuple[ShipmentState, list[Copy]]:
    """`absorb` for a caller that made the copies already."""
    added: list[Copy] = []
    for incoming in copies:
        after = apply(state, incoming.event, incoming)
        if after is not state:
            added.append(incoming)
        state = after
    return state, added


def fold(events: Iterable[HubEvent], authority: Authority) -> dict[str, ShipmentRecord]:
    """Offline replay: every shipment's record from a log of events, exactly as the stream computes it from the events
    it takes in (a source past its quota of a shipment's state is set aside by the stream: streams.quota)."""
    states: dict[str, ShipmentState] = {}
    for event in events:
        if event.shipment_id is None:
            raise ValueError(f"event {event.key} names no shipment_id; resolve its carrier references first")
        state = states.get(event.shipment_id) or ShipmentState(event.shipment_id)
        states[event.shipment_id] = apply(state, event)
    return {shipment_id: project(state, authority) for shipment_id, state in sorted(states.items())}


# --- projection -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reusable:
    """Parts of `record`, the projection of an earlier state, that the copies taken in since cannot have changed
    (streams.projection decides which): the legs named, each with the refusals of its documents; the money (the
    settlement and every charge) when `money`; the claims, unmatched claim updates and discrepancies when `claims`;
    the custody entries of the legs kept when `custody` (the handovers are the same); the emissions statement when
    `emissions`; the trade parts whose inputs are not among `kinds` and `keys` (streams.trade). The record must come
    from the same booking and authority."""

    record: ShipmentRecord
    legs: frozenset[int]
    money: bool
    claims: bool
    custody: bool
    emissions: bool  # the emissions statement (its refusals are read from the events every time)
    kinds: frozenset[type[HubEvent]]  # the kinds of every version of an event taken in since `record`
    keys: frozenset[str]  # the keys of those events
    classified: Classified | None = None  # how the earlier state's copies were classified, if it was projected
    invoicing: Invoicing | None = None  # the invoice of the earlier record's settlement, if it was projected


def project(state: ShipmentState, authority: Authority, reuse: Reusable | None = None) -> ShipmentRecord:
    """The record the winning copies add up to. Deterministic: no choice depends on arrival order.
    `authority` says which MTO owns the shipment id: only its bookings count, whenever they arrive.
    `reuse` names parts of an earlier record to take as they are instead of computing them again."""
    operator = authority.operator(state.shipment_id)
    prior = reuse.classified if reuse is not None else None
    classified = _classified(state, operator, prior, reuse.keys if reuse is not None else frozenset())
    every = list(map(itemgetter(1), classified.entries))
    retracted = len(classified.retracted)
    not_owners: list[Rejected] = []
    live: list[HubEvent] = []
    keyed: list[tuple[str, HubEvent]] = []  # the live events with their keys
    for (_, key), event, refusal in classified.entries:
        if refusal is None:
            live.append(event)
            keyed.append((key, event))
        else:
            not_owners.append(refusal)
    # with the MTO's require_verified_parties (the trusted verifiers' findings in `identities`), a booking naming an
    # unverified party waits, listed with the reason, and so does a payout to an unverified carrier
    strict = operator is not None and operator.require_verified
    kinds = _kinds(live)  # one pass: the live events of each kind, in their order
    identities = findings(_of(kinds, IdentityEvent), authority)[0] if strict else None
    bookings, held_bookings = _verified_bookings(_of(kinds, BookingEvent), identities)
    booking = max(bookings, key=lambda e: (e.occurred_at, e.revised_at or _NEVER, e.key), default=None)
    updated_at = max(map(attrgetter("recorded_at"), every), default=None)
    if reuse is not None and InsuranceEvent not in reuse.kinds:  # the same cover events: the same policy
        policy, unmatched_updates = reuse.record.insurance.policy, reuse.record.insurance.unmatched_updates
    else:
        insurance = kinds[InsuranceEvent]
        policy, unmatched_updates = _policy(insurance), [e.key for e in insurance if _is_claim_update(e)]
    plan = booking.payload if booking is not None else None
    if (
        reuse is not None and prior is not None and prior.through is not None
        and prior.operator is operator and prior.plan is plan and WaybillEvent not in reuse.kinds
    ):
        through_documents, document_rejections = prior.through  # the same through document events, the same shipper
    else:
        through_documents, document_rejections = documents(
            (e for e in _of(kinds, WaybillEvent) if e.payload.leg is None), plan.shipper.party_id if plan else None
        )
    through_parts = (through_documents, document_rejections)
    document_rejections = document_rejections + not_owners + held_bookings
    if booking is None or plan is None:
        return with_trade_parts(dict(
            shipment_id=state.shipment_id,
            version=state.version,
            status="awaiting_booking",
            responsible_operator=None,
            shipper=None,
            consignee=None,
            booking=None,
            booking_set_by=None,
            booking_status=None,
            booking_status_set_by=None,
            booking_revised_at=None,
            through_document=through_documents[0] if through_documents else None,
            legs=[],
            current_location=None,
            location_set_by=None,
            journey_charges=[],
            charges_total=[],
            insurance=InsuranceRecord.built(policy=policy, unmatched_updates=unmatched_updates),
            claims=[],
            settlement=None,
            custody=[],
            handovers=[],
            discrepancies=[],
            rejected=sorted(document_rejections, key=lambda r: r.event),
            events_applied=len(every),
            retracted_events=retracted,
            awaiting_placement=sorted(e.key for e in live if not _shipment_level(e)),
            updated_at=updated_at,
            customs=[],
            verifications=[],
            letter_of_credit=None,
            release=None,  # the trade parts: streams.trade
            carrier_invoices=[],
            emissions=None,
        ), live, kinds, authority, operator, state.release)

    rejected: list[Rejected] = []
    per_leg: dict[int, list[HubEvent]] = defaultdict(list)
    unplaced: list[str] = []
    incidents: list[tuple[int | None, TrackingEvent]] = []
    journey_settlements: list[SettlementEvent] = []
    refused_keys: set[str] = set()
    known = prior.verdicts if prior is not None and prior.plan is plan else {}
    milestones = dict(prior.milestones) if prior is not None and prior.plan is plan and reuse is not None else {}
    for key in reuse.keys if reuse is not None else ():
        milestones.pop(key, None)  # a new copy of a report: its milestone again
    # what each leg's reports added up to under this plan: `_tracked` takes only new reports in (it checks the rest are
    # the very copies it read before, and reads every report again when they are not)
    tracks = dict(prior.tracks) if prior is not None and prior.plan is plan and reuse is not None else {}
    verdicts: dict[str, Verdict] = {}
    for key, event in keyed:
        verdict = known.get(key) if reuse is not None and key not in reuse.keys else None
        verdicts[key] = refusal, place, leg = verdict or _verdict(event, plan)
        if refusal is not None:
            rejected.append(refusal)
            refused_keys.add(key)
        elif place == _JOURNEY_SETTLEMENT:
            journey_settlements.append(event)  # type: ignore[arg-type]  # the MTO's own charges for the journey
        elif place == _INCIDENT:
            incidents.append((leg, event))  # type: ignore[arg-type]  # no leg found: a not-localised incident
            if leg is not None:
                per_leg[leg].append(event)
        elif place == _ON_A_LEG:
            if leg is None:
                unplaced.append(key)
            else:
                per_leg[leg].append(event)

    cover = policy.policy_number if policy else None
    placed, unplaced_handovers = handovers(
        (e for e in _of(kinds, HandoverEvent) if e.key not in refused_keys), plan
    )
    answers = _carrier_answers(plan, kinds[BookingStatusEvent], rejected)
    legs: list[LegRecord] = []
    # the legs whose custody entries the earlier record's hold: those kept, and those whose milestones are its
    tracked = set(reuse.legs) if reuse is not None else set()
    for planned in plan.legs:
        sequence = planned.sequence
        kept = _Kept()
        if reuse is not None:
            earlier = reuse.record.legs[sequence - 1]
            if sequence in reuse.legs or WaybillEvent not in reuse.kinds:
                # the leg's waybill events are those of the earlier record's leg: its documents, and their refusals
                refusals = reuse.record.rejected and [
                    r for r in reuse.record.rejected if r.event in {e.key for e in per_leg[sequence] if isinstance(e, WaybillEvent)}
                ]
                if sequence in reuse.legs:
                    legs.append(earlier)
                    rejected += refusals
                    continue
                kept.papers = earlier.documents, refusals
            if SettlementEvent not in reuse.kinds:  # the same charge events on every leg
                kept.charges = earlier.charges
            if not reuse.kinds & _MILESTONE_INPUTS:  # the same reports and handovers on every leg (and the same plan)
                kept.tracked = earlier
                tracked.add(sequence)
        handed = [h for h in placed if h.from_leg == sequence]
        leg_record, refused = _leg(sequence, plan, per_leg[sequence], cover, handed, answers.get(sequence), milestones, kept, tracks)
        legs.append(leg_record)
        rejected += refused
    state.memo.classified = Classified(
        classified.operator, classified.entries, classified.at, classified.retracted, plan, verdicts, through_parts, milestones,
        tracks,
    )
    # carrier invoices against their legs' charges (recomputed every version: cheap, and what holds a payout)
    invoices = carrier_invoices(
        plan, legs, _of(kinds, CarrierInvoiceEvent), _of(kinds, InvoiceVerificationEvent), operator, authority.seller_ids,
    )
    rejected += invoices.rejected
    status, status_set_by = _booking_status(kinds[BookingStatusEvent])
    rejected += document_rejections
    through = through_documents[0] if through_documents else None
    for extra in through_documents[1:]:
        reason = f"the journey already has a through document ({through_documents[0].number}); the MTO issues one"
        rejected.append(Rejected.built(event=extra.set_by, reason=reason))
    if reuse is not None and all(leg.milestones is old.milestones for leg, old in zip(legs, reuse.record.legs)):
        location = reuse.record.current_location, reuse.record.location_set_by  # the same milestones on every leg
    else:
        location = _current_location(legs)
    if reuse is not None and reuse.claims:
        found, claims = reuse.record.discrepancies, reuse.record.claims
        unmatched_updates = reuse.record.insurance.unmatched_updates
    else:
        last = len(plan.legs)
        deliveries = [_against_the_plan(e, plan, last) for e in per_leg[last] if isinstance(e, TrackingEvent)]
        found = discrepancies(placed, plan) + counted_deliveries(
            (e for e in deliveries if e.classifier == "ACT" and e.payload.status == "delivered"), placed, plan
        )
        delivery = [m for m in legs[-1].milestones if m.classifier == "ACT" and m.status == "delivered"]
        claims, unmatched_updates = derive_claims(
            state.shipment_id,
            plan,
            incidents,
            found,
            (delivery[0].at, delivery[0].set_by) if delivery else None,
            policy,
            [e for e in _of(kinds, InsuranceEvent) if isinstance(e.payload, ClaimUpdate)],
            _of(kinds, RateEvent),
        )
    if reuse is not None and reuse.money:
        journey_charges, charges_total = reuse.record.journey_charges, reuse.record.charges_total
        settlement, state.memo.invoicing = reuse.record.settlement, reuse.invoicing
    else:
        journey_charges = _charges(journey_settlements)
        charges_total = _totals(charge.amount for charge in journey_charges + [c for leg in legs for c in leg.charges])
        # what the record refused never reaches the ledger (the ledger also checks each charge's carrier itself)
        not_applied = refused_keys | {r.event for r in not_owners}
        money = [key for key, copy in state.copies.items() if isinstance(copy.event, MONEY_EVENTS) and key not in not_applied]
        holds = _payout_holds(plan, invoices.held_legs, identities, record_time(live))
        history = [copy for key in money for copy in state.history(key)]
        if reuse is None or reuse.invoicing is None or reuse.kinds & _INVOICE_INPUTS:
            state.memo.invoicing = invoice(state.shipment_id, plan, history)
        else:  # the same settlement and margin events (refused as they were: by the same plan and registry)
            state.memo.invoicing = reuse.invoicing
        settlement = settle(state.shipment_id, plan, history, holds, state.memo.invoicing)
    reports = kinds[EmissionsEvent]
    if reuse is not None and reuse.emissions and reuse.record.emissions is not None:
        emissions, refused_reports = reuse.record.emissions, emissions_refused(plan, reports)
    else:
        emissions, refused_reports = journey_emissions(plan, reports)
    rejected += refused_reports
    return with_trade_parts(dict(
        shipment_id=state.shipment_id,
        version=state.version,
        status=_shipment_status(legs, status, any(h.to_leg is None for h in placed)),
        responsible_operator=plan.mto,
        shipper=plan.shipper,
        consignee=plan.consignee,
        booking=plan,
        booking_set_by=booking.key,
        booking_status=status,
        booking_status_set_by=status_set_by,
        booking_revised_at=booking.revised_at,
        through_document=through,
        legs=legs,
        current_location=location[0],
        location_set_by=location[1],
        journey_charges=journey_charges,
        charges_total=charges_total,
        insurance=reuse.record.insurance  # no cover event and no claim input: the same policy and updates
        if reuse is not None and reuse.claims
        else InsuranceRecord.built(policy=policy, unmatched_updates=unmatched_updates),
        claims=claims,
        settlement=settlement,
        custody=custody(plan, placed, legs, reuse.record.custody, frozenset(tracked))
        if reuse is not None and reuse.custody
        else custody(plan, placed, legs),
        handovers=placed,
        discrepancies=found,
        rejected=sorted(rejected, key=lambda r: r.event),
        events_applied=len(every),
        retracted_events=retracted,
        awaiting_placement=sorted(unplaced + unplaced_handovers),
        updated_at=updated_at,
        customs=[],
        verifications=[],
        letter_of_credit=None,
        release=None,  # the trade parts: streams.trade
        carrier_invoices=invoices.records,
        emissions=emissions,
    ), live, kinds, authority, operator, state.release, reuse)


def _classified(state: ShipmentState, operator: Operator | None, prior: Classified | None, keys: frozenset[str]) -> Classified:
    """The entries of `state`'s winning copies; from `prior`, those of an earlier state under the same operator, when
    the copies of `keys` are all that differ."""
    if prior is None or prior.operator is not operator:
        at: dict[str, tuple[datetime, str]] = {}
        entries: list[Entry] = []
        retracted: set[str] = set()
        for key, copy in state.copies.items():
            if copy.event.retracted:
                retracted.add(key)
            else:
                at[key] = (copy.event.occurred_at, key)
                entries.append((at[key], copy.event, _owner_refusal(copy.event, state.shipment_id, operator)))
        entries.sort(key=lambda entry: entry[0])
        classified = Classified(operator, entries, at, frozenset(retracted))
    else:
        entries, at, retracted = list(prior.entries), dict(prior.at), set(prior.retracted)
        for key in keys:  # each has a winner (a retraction wins over every other copy: it stays retracted)
            was = at.pop(key, None)
            if was is not None:
                del entries[bisect_left(entries, (was,))]
            copy = state.copies[key]
            if copy.event.retracted:
                retracted.add(key)
            else:
                at[key] = (copy.event.occurred_at, key)
                insort(entries, (at[key], copy.event, _owner_refusal(copy.event, state.shipment_id, operator)))
        classified = Classified(operator, entries, at, frozenset(retracted))
    state.memo.classified = classified
    return classified


def _owner_refusal(event: HubEvent, shipment_id: str, operator: Operator | None) -> Rejected | None:
    refusal = _not_the_owner(event, shipment_id, operator)
    return None if refusal is None else Rejected.built(event=event.key, reason=refusal, kind="not_entitled")


# where a live event goes once the booking is known (streams.merge.project)
_JOURNEY, _JOURNEY_SETTLEMENT, _INCIDENT, _ON_A_LEG = range(4)


def _verdict(event: HubEvent, plan: BookingPayload) -> Verdict:
    """Whether `event`'s source may say it under `plan`, and where it goes: the whole journey, the MTO's own charges
    for it, an actual incident (on its leg, if one is found) or its leg (None: it awaits placement)."""
    refusal = _not_entitled(event, plan)
    if refusal is not None:
        return Rejected.built(event=event.key, reason=refusal, kind="not_entitled"), _JOURNEY, None
    if _shipment_level(event):
        return None, _JOURNEY, None
    if isinstance(event, SettlementEvent) and event.payload.leg is None and event.source == plan.mto:
        return None, _JOURNEY_SETTLEMENT, None
    leg = leg_of(event, plan)
    if isinstance(event, TrackingEvent) and event.payload.status in INCIDENTS and event.classifier == "ACT":
        return None, _INCIDENT, leg
    return None, _ON_A_LEG, leg


_Kind = TypeVar("_Kind", bound=HubEvent)


def _kinds(live: list[HubEvent]) -> defaultdict[type[object], list[HubEvent]]:
    """The live events of each kind, in their order (every event model is a direct subclass of the envelope)."""
    kinds: defaultdict[type[object], list[HubEvent]] = defaultdict(list)
    for event in live:
        kinds[type(event)].append(event)
    return kinds


def _of(kinds: defaultdict[type[object], list[HubEvent]], kind: type[_Kind]) -> list[_Kind]:
    return cast(list[_Kind], kinds[kind])


def _verified_bookings(bookings: list[BookingEvent], found: Findings | None) -> tuple[list[BookingEvent], list[Rejected]]:
    """With `found` (the MTO requires verified parties): the bookings whose shipper, consignee and carriers are all
    verified at the booking's time (its revision's, if revised), and a refusal for each other one, a `conflict` (a
    verification made before it may still arrive). Without: every booking."""
    if found is None:
        return bookings, []
    kept, refused = [], []
    for booking in bookings:
        plan = booking.payload
        at = max(booking.occurred_at, booking.revised_at or booking.occurred_at)
        parties = [plan.shipper.party_id, plan.consignee.party_id, *(leg.carrier for leg in plan.legs)]
        missing = unverified(found, parties, at)
        if missing:
            reason = f"{plan.mto} books only verified parties; not verified at {at.isoformat()}: {', '.join(missing)}"
            refused.append(Rejected.built(event=booking.key, reason=reason, kind="conflict"))
        else:
            kept.append(booking)
    return kept, refused


def _payout_holds(plan: BookingPayload, invoice_held: frozenset[int], found: Findings | None, now: datetime | None) -> dict[int, str]:
    """Why each held leg's payout waits: its carrier's invoice not yet matched and verified (streams.invoices); with
    `found` (the MTO requires verified parties), its carrier not verified at the record's time `now`."""
    holds: dict[int, str] = {}
    for leg in plan.legs:
        reasons = []
        if leg.sequence in invoice_held:
            reasons.append(f"leg {leg.sequence} has no matched and verified invoice from {leg.carrier}")
        missing = unverified(found, [leg.carrier], now) if found is not None else []
        if missing:
            reasons.append(f"{plan.mto} pays only verified parties; not verified: {missing[0]}")
        if reasons:
            holds[leg.sequence] = "; ".join(reasons)
    return holds


MONEY_EVENTS = (SettlementEvent, MarginEvent, PaymentEvent, RateEvent)
_INVOICE_INPUTS = frozenset({SettlementEvent, MarginEvent})  # what the invoice is made of (streams.ledger.invoice)
HANDOVER_CODE_LIST = "mmhub-handover"  # a leg milestone taken from a handover event, not from a status report
# invoices: placed on their leg by streams.invoices
_JOURNEY_EVENTS = (
    BookingEvent, BookingStatusEvent, InsuranceEvent, HandoverEvent, MarginEvent, PaymentEvent, RateEvent,
    CarrierInvoiceEvent, InvoiceVerificationEvent, *TRADE_EVENTS,
)  # fmt: skip


def _shipment_level(event: HubEvent) -> bool:
    """Events that belong to the whole journey rather than to one leg."""
    if isinstance(event, _JOURNEY_EVENTS):
        return True
    return isinstance(event, WaybillEvent) and event.payload.leg is None


def _is_claim_update(event: HubEvent) -> bool:
    return isinstance(event, InsuranceEvent) and isinstance(event.payload, ClaimUpdate)


def _booking_status(live: list[HubEvent]) -> tuple[BookingState, str | None]:
    """Requested until the MTO confirms or rejects it (its latest word counts); a cancellation is final."""
    # only the owner's: _not_the_owner refused the others
    decisions = [e for e in live if isinstance(e, BookingStatusEvent) and e.payload.leg is None]
    cancellations = [e for e in decisions if e.payload.action == "cancelled"]
    if cancellations:
        return "cancelled", min(cancellations, key=lambda e: (e.occurred_at, e.key)).key
    if decisions:
        latest = max(decisions, key=lambda e: (e.occurred_at, e.key))
        return ("confirmed" if latest.payload.action == "confirmed" else "rejected"), latest.key
    return "requested", None


def _carrier_answers(plan: BookingPayload, live: list[HubEvent], rejected: list[Rejected]) -> dict[int, BookingStatusEvent]:
    """Each leg's carrier accepts or declines it; only that carrier's latest answer counts. Answers that may not
    count are added to `rejected`."""
    answers: dict[int, BookingStatusEvent] = {}
    for event in live:
        if not isinstance(event, BookingStatusEvent) or event.payload.leg is None:
            continue
        sequence = event.payload.leg
        if sequence > len(plan.legs):
            rejected.append(Rejected.built(event=event.key, reason=f"the booking has no leg {sequence}"))
        elif event.source != plan.legs[sequence - 1].carrier:
            carrier = plan.legs[sequence - 1].carrier
            reason = f"leg {sequence} is assigned to {carrier}, not {event.source}"
            rejected.append(Rejected.built(event=event.key, reason=reason, kind="not_entitled"))
        elif sequence not in answers or (event.occurred_at, event.key) > (answers[sequence].occurred_at, answers[sequence].key):
            answers[sequence] = event
    return answers


def _not_the_owner(event: HubEvent, shipment_id: str, operator: Operator | None) -> str | None:
    """Why `event` may not be said by its source, if only the MTO that owns the shipment id may say it.

    Whatever the order of arrival and whatever the timestamps: the owner alone books (and amends) the shipment,
    decides on the booking, sets the margin, and issues, takes the surrender of and voids the through document; a
    policy counts only from an insurer the owner places cover with (bound by that insurer or by the owner).
    """
    if isinstance(event, (TrackingEvent, SettlementEvent, HandoverEvent, PaymentEvent)):
        return None  # the bulk of the events: who may say them is the leg's business (_not_entitled)
    source = event.source
    owner = operator.mto if operator is not None else None
    nobody = f"no MTO in the registry owns shipment id {shipment_id}"
    if isinstance(event, BookingEvent):
        if owner is None:
            return nobody
        if source != owner:
            return f"{shipment_id} belongs to the MTO {owner}; {source} may not book it"
        if event.payload.mto != owner:
            return f"{shipment_id} belongs to the MTO {owner}; its booking may not name {event.payload.mto} as MTO"
        return None
    only_owner = {
        "decides on the booking": isinstance(event, BookingStatusEvent) and event.payload.leg is None,
        "sets the margin": isinstance(event, MarginEvent),
        "issues the through document": isinstance(event, WaybillEvent)
        and event.payload.leg is None
        and event.payload.action == "issued",
        # the issuer takes its document back for amendment and voids it; a surrender for delivery is its holder's
        # (or the issuer's record of one), and a transfer the holder's too: streams.documents checks both against
        # the chain of holders
        "takes the surrender for amendment of or voids the through document": isinstance(event, WaybillEvent)
        and event.payload.leg is None
        and event.payload.action in ("surrendered_for_amendment", "voided"),
    }
    for what, applies in only_owner.items():
        if applies and source != owner:
            return f"only the MTO {owner} {what}" if owner else nobody
    if isinstance(event, InsuranceEvent) and isinstance(event.payload, PolicyBound):
        insurer = event.payload.insurer
        if operator is None:
            return nobody
        if insurer not in operator.insurers:
            return f"{insurer} is not an insurer the MTO {owner} places cover with"
        if source not in (insurer, owner):
            return f"{source} may not bind a policy of {insurer}"
    if isinstance(event, RateEvent) and source != owner:
        # a rate converts payments and sets the SDR value of liability limits: the owner's word, or its publishers'
        if operator is None:
            return nobody
        if source not in operator.rate_sources:
            return f"{source} is not a publisher of rates the MTO {owner} takes"
    if _is_claim_update(event):
        if operator is None:
            return nobody
        if source not in operator.insurers:
            return f"only an insurer the MTO {owner} places cover with updates a claim, not {source}"
    return None


def _not_entitled(event: HubEvent, plan: BookingPayload) -> str | None:
    """Why `event`'s source may not say it, if it may not: a carrier speaks only for the legs it carries.

    The MTO answers for the whole journey and may report on any leg. A carrier's tracking, documents and charges
    must be for its own leg; a handover may be reported by either side of it (the shipper for the pickup, the
    consignee for the delivery). Events about the booking, money and cover are checked where they are used.
    """
    source = event.source
    if source in (plan.mto, CLOCK_SOURCE):
        return None  # the MTO, and the hub's own presumed-loss clock, answer for the whole journey
    if isinstance(event, PaymentEvent) and source != plan.shipper.party_id:
        # a payment releases the carriers' payouts: only the payer of the invoice (or the MTO, its payee) reports it
        return f"only the shipper {plan.shipper.party_id} or the MTO {plan.mto} reports a payment, not {source}"
    carried = {leg.sequence for leg in plan.legs if leg.carrier == source}
    if isinstance(event, HandoverEvent):
        payload = event.payload
        if any(leg is not None and leg > len(plan.legs) for leg in (payload.from_leg, payload.to_leg)):
            return None  # names a leg the booking lacks: it awaits placement (an amended booking may add it)
        sides = {payload.from_leg, payload.to_leg} & carried
        if sides:
            return None
        if (payload.from_leg is None and source == plan.shipper.party_id) or (
            payload.to_leg is None and source == plan.consignee.party_id
        ):
            return None
        return f"{source} is on neither side of the handover from leg {payload.from_leg} to leg {payload.to_leg}"
    if not isinstance(event, (TrackingEvent, SettlementEvent, WaybillEvent)):
        return None
    if isinstance(event, WaybillEvent) and event.payload.leg is None:
        return None  # the through document: checked with the documents
    if isinstance(event, SettlementEvent) and event.payload.carrier != source:
        return f"{source} may bill only its own charges, not {event.payload.carrier}'s"
    named = event.payload.leg
    if named is not None and named > len(plan.legs):
        return None  # as for handovers: it awaits placement
    if named is not None and named not in carried:
        return f"leg {named} is carried by {plan.legs[named - 1].carrier}, not {source}"
    if not carried:
        return f"{source} carries no leg of this shipment"
    return None


def leg_of(event: HubEvent, plan: BookingPayload) -> int | None:
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
    return Milestone.built(
        status=status,
        classifier=event.classifier,
        at=event.occurred_at,
        location=location,
        raw_code=event.payload.raw_code,
        code_list=event.payload.code_list,
        set_by=event.key,
        transactions=[reference for reference in event.references if reference.kind == "business_transaction"],
    )


# GS1 CBV's `receiving` as the EPCIS connector reads it: "received", with the CBV name kept as the raw code.
CBV_RECEIVING = ("GS1-CBV-bizStep", "receiving")


def _against_the_plan(event: TrackingEvent, plan: BookingPayload, sequence: int) -> TrackingEvent:
    """A CBV `receiving` read against the booking. CBV has no delivery step: `receiving` is the objects taken into
    the receiver's custody at bizLocation. At a site the booking declares for the consignee, or at the last leg's
    planned destination, it is the last leg's delivery; at another leg's planned destination, that leg's arrival;
    anywhere else (the carrier's own receipt at the origin, a depot) it stays `received`. It depends on the event and
    the winning booking only, so a booking that arrives later re-reads it."""
    payload = event.payload
    if (payload.code_list, payload.raw_code, payload.status) != (*CBV_RECEIVING, "received"):
        return event  # a canonical report may spell the code list too: only a receipt is read so
    last = sequence == len(plan.legs)
    at_destination = payload.location == plan.legs[sequence - 1].destination
    site = payload.site or ""
    at_consignee = any(site == declared or site.startswith(declared + "/") for declared in plan.consignee_sites)
    if last and (at_consignee or at_destination):
        status: TrackingStatus = "delivered"
    elif at_destination:
        status = "arrived"
    else:
        return event
    return event.model_copy(update={"payload": payload.model_copy(update={"status": status})})


@dataclass
class _Kept:
    """Parts of an earlier record's leg that hold for the leg being made (streams.merge._leg)."""

    papers: tuple[list[DocumentRecord], list[Rejected]] | None = None  # its documents and their refusals
    charges: list[ChargeRecord] | None = None
    tracked: LegRecord | None = None  # the leg whose status, times, milestones, exceptions and unmapped reports hold


# what a leg's milestones are made of besides the plan: its tracking reports and the handovers out of it
_MILESTONE_INPUTS = frozenset({TrackingEvent, HandoverEvent})


def _leg(
    sequence: int,
    plan: BookingPayload,
    events: list[HubEvent],
    cover: str | None,
    handed: list[HandoverRecord],
    answer: BookingStatusEvent | None,
    cache: dict[str, Milestone],
    kept: _Kept | None = None,
    tracks: dict[int, _Track] | None = None,
) -> tuple[LegRecord, list[Rejected]]:
    """One leg of the record, and the leg's document events it refuses. `handed` are the handovers out of the leg:
    each is an actual milestone of it, as the carrier's own report would be (to the next leg: handed_over; to the
    consignee: delivered), so the leg, the custody and the shipment status never disagree. `answer` is the leg's
    carrier's latest answer to the booking; `cache` holds each tracking report's milestone on its leg, by event
    key (those it lacks are made and added); `kept`, the parts of an earlier record's leg whose events are the same
    (the documents and their refusals: its waybill events; the charges: its settlement events; the milestones and
    what is read of them: its tracking reports and the handovers out of it); `tracks`, what each leg's reports added
    up to when it was last made (read for this leg, and its entry replaced)."""
    kept = kept or _Kept()
    planned = plan.legs[sequence - 1]
    leg_documents, refused = kept.papers or documents((e for e in events if isinstance(e, WaybillEvent)), planned.carrier)
    if kept.tracked is not None:
        tracked = {name: getattr(kept.tracked, name) for name in _TRACKED}
    else:
        tracks = {} if tracks is None else tracks
        tracked, tracks[sequence] = _tracked(sequence, plan, events, handed, cache, tracks.get(sequence))
    record = LegRecord.built(
        sequence=sequence,
        mode=planned.mode,
        carrier=planned.carrier,
        origin=planned.origin,
        destination=planned.destination,
        **tracked,
        documents=leg_documents,
        charges=kept.charges if kept.charges is not None else _charges(e for e in events if isinstance(e, SettlementEvent)),
        carrier_response="pending" if answer is None else "accepted" if answer.payload.action == "leg_accepted" else "declined",
        carrier_response_set_by=answer.key if answer is not None else None,
        cover=cover,
    )
    return record, refused


# the fields of a leg made of its milestones, in their order in LegRecord
_TRACKED = ("status", "status_set_by", "departure", "arrival", "milestones", "exceptions", "unmapped")


@dataclass(frozen=True, slots=True)
class _Track:
    """What a leg's tracking reports add up to before the handovers out of it (`_tracked`), kept so that the next
    version takes in only its new reports: the reports read (the very events their copies hold, by `id`: the track
    holds them, so no other object has their ids while it lives), the chosen report per (status, classifier), and the
    incidents and unmapped reports in (time, key) order."""

    events: dict[int, TrackingEvent]
    chosen: dict[tuple[str, str], TrackingEvent]
    exceptions: list[Milestone]
    unmapped: list[Milestone]


def _tracked(
    sequence: int,
    plan: BookingPayload,
    events: list[HubEvent],
    handed: list[HandoverRecord],
    cache: dict[str, Milestone],
    track: _Track | None = None,
) -> tuple[dict[str, Any], _Track]:
    """The `_TRACKED` fields of a leg: its status, times, milestones, exceptions and unmapped reports; and what its
    reports add up to, for the next version. `track` is that of an earlier version under the same plan: when every
    report it read is still among `events`, as the same copy, only the others are read (a report replaced or
    retracted since, or one no longer on the leg: every report again). Either way the result is the same: the chosen
    report of a slot is the least of its reports in one total order (`_better`), and the lists are sorted."""
    planned = plan.legs[sequence - 1]
    tracking = [e for e in events if isinstance(e, TrackingEvent)]
    new = tracking
    if track is not None:
        known = track.events
        new = [e for e in tracking if id(e) not in known]
        if len(tracking) - len(new) != len(known):  # a report it read is gone or replaced: read them all again
            new, track = tracking, None
    if track is None:
        track = _Track({}, {}, [], [])
    if new:
        # New dicts and lists: the earlier ones belong to an earlier state's memo and an earlier record.
        events_read, chosen = dict(track.events), dict(track.chosen)
        exceptions: list[Milestone] = []
        unmapped: list[Milestone] = []
        for raw in new:
            event = _against_the_plan(raw, plan, sequence)
            key = event.key
            made = cache.get(key) or cache.setdefault(key, _milestone(event, planned.origin, planned.destination))
            events_read[id(raw)] = raw
            reported_status = event.payload.status
            if reported_status in INCIDENTS or reported_status == "unknown":
                # Not a milestone: a report of its own, in (time, key) order.
                (unmapped if reported_status == "unknown" else exceptions).append(made)
                continue
            # Per (status, classifier): the first actual report is when it happened; the newest plan or estimate is
            # the best-informed one. An estimate never fills an actual slot: the classifier is part of the key.
            slot = (reported_status, event.classifier)
            held = chosen.get(slot)
            if held is None or _better(event, held):
                chosen[slot] = event
        # sorted once a call (the earlier part is in order already), not an insertion per report
        track = _Track(
            events_read,
            chosen,
            sorted([*track.exceptions, *exceptions], key=_report_order) if exceptions else track.exceptions,
            sorted([*track.unmapped, *unmapped], key=_report_order) if unmapped else track.unmapped,
        )
    # (a chosen report's milestone may have left the cache: a copy of it came again and lost to the one it holds)
    reported: dict[tuple[str, str], Milestone] = {
        slot: cache.get(event.key) or cache.setdefault(event.key, _milestone(event, planned.origin, planned.destination))
        for slot, event in track.chosen.items()
    }
    for handover in handed:
        passed: TrackingStatus = "delivered" if handover.to_leg is None else "handed_over"
        earlier = reported.get((passed, "ACT"))
        if earlier is None or handover.at < earlier.at:  # at the same instant the carrier's own report stands
            reported[(passed, "ACT")] = Milestone.built(
                status=passed, classifier="ACT", at=handover.at, location=handover.location,
                raw_code="handover", code_list=HANDOVER_CODE_LIST, set_by=handover.set_by, transactions=[],
            )
    milestones = sorted(reported.values(), key=lambda m: (PRECEDENCE[m.status], m.classifier, m.at, m.set_by))
    actual = [m for m in milestones if m.classifier == "ACT"]
    furthest = max(actual, key=lambda m: PRECEDENCE[m.status], default=None)
    status: LegStatus = furthest.status if furthest else "planned"  # type: ignore[assignment]

    def times(statuses: tuple[str, ...], planned_at: datetime | None) -> Times:
        # The first status in `statuses` that has a report of a classifier gives that classifier's time (one report
        # per status and classifier: `reported`).
        found: dict[str, datetime] = {}
        for wanted in statuses:
            for classifier in ("PLN", "EST", "ACT"):
                report = reported.get((wanted, classifier))
                if report is not None and classifier not in found:
                    found[classifier] = report.at
        return Times.built(planned=found.get("PLN", planned_at), estimated=found.get("EST"), actual=found.get("ACT"))

    return dict(
        status=status,
        status_set_by=furthest.set_by if furthest else None,
        departure=times(("departed",), planned.planned_departure),
        arrival=times(("arrived", "delivered"), planned.planned_arrival),  # a last mile may report only delivery
        milestones=milestones,
        exceptions=track.exceptions,
        unmapped=track.unmapped,
    ), track


def _report_order(report: Milestone) -> tuple[datetime, str]:
    return report.at, report.set_by


def _better(candidate: TrackingEvent, held: TrackingEvent) -> bool:
    if candidate.classifier == "ACT":
        return (candidate.occurred_at, candidate.key) < (held.occurred_at, held.key)
    return (candidate.recorded_at, candidate.occurred_at, candidate.key) > (held.recorded_at, held.occurred_at, held.key)


def _charges(events: Iterable[SettlementEvent]) -> list[ChargeRecord]:
    return [
        ChargeRecord.built(
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
    return [MoneyTotal.built(amount=total, currency=currency) for currency, total in sorted(sums.items())]


def _policy(live: list[HubEvent]) -> PolicyRecord | None:
    """The one cargo policy for the journey: the latest bound (a re-issue replaces it)."""
    bound = [e for e in live if isinstance(e, InsuranceEvent) and isinstance(e.payload, PolicyBound)]
    latest = max(bound, key=lambda e: (e.occurred_at, e.key), default=None)
    if latest is None or not isinstance(latest.payload, PolicyBound):
        return None
    return PolicyRecord.built(
        policy_number=latest.payload.policy_number,
        insurer=latest.payload.insurer,
        insured_value=latest.payload.insured_value,
        conditions=latest.payload.conditions,
        set_by=latest.key,
    )


def _current_location(legs: list[LegRecord]) -> tuple[str | None, str | None]:
    """Where the cargo was last actually seen, the furthest actual milestone along the journey, and what said so."""
    actual = [(leg.sequence, m) for leg in legs for m in leg.milestones if m.classifier == "ACT" and m.location]
    if not actual:
        return None, None
    furthest = max(actual, key=lambda pair: (pair[0], PRECEDENCE[pair[1].status], pair[1].at, pair[1].set_by))[1]
    return furthest.location, furthest.set_by


def _shipment_status(legs: list[LegRecord], booking: BookingState, handed_to_consignee: bool) -> ShipmentStatus:
    if booking in ("cancelled", "rejected"):
        return booking
    if handed_to_consignee or (legs and legs[-1].status == "delivered"):
        return "delivered"
    if any(leg.status != "planned" for leg in legs):
        return "in_transit"
    return "booked"
