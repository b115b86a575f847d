"""The next record of a shipment from its previous one, with work in proportion to what the new copies change.

`advance` returns exactly `project(after, authority)`: it decides which parts of the previous record the new
copies cannot have touched and hands them to `project` to take as they are. A tracking report recomputes its own
leg; a leg's waybill its leg; a charge its leg and the money; a carrier's answer its leg; a handover the leg it
leaves, the custody and the claims; cover every leg and the claims; a rate the money and the claims; an emissions
report the emissions statement; each trade part (customs, the credit, the verifications, the release) only when one
of its inputs changes (streams.trade). How each copy of the earlier state was classified (event order, refusals, leg),
its through documents and its reports' milestones are kept beside that state (`ShipmentState.memo`): only the new
copies are classified again. Within a leg recomputed, each part keeps the earlier leg's while its own events are
the same (the milestones, times and status: the reports and handovers; the documents; the charges); the custody and
the current location keep what rests on legs whose milestones are kept; a payment or a rate settles against the
earlier invoice (`Memo.invoicing`) unless a charge or the margin changes. What is read from the events every time is
cheap (counts, the booking's status). Only a booking projects the record from scratch.

Pure, like the merge: the hypothesis property in tests/unit/streams/test_projection.py holds it equal to a full
`project` for every generated journey, order, split into batches and duplication.
"""

from __future__ import annotations

from typing import Sequence

from schemas.events import BookingEvent, BookingStatusEvent, EmissionsEvent, HandoverEvent, HubEvent, InsuranceEvent, PolicyBound
from schemas.events import CarrierInvoiceEvent, IdentityEvent, InvoiceVerificationEvent, RateEvent, SettlementEvent, TrackingEvent, WaybillEvent
from schemas.record import ShipmentRecord
from schemas.status import INCIDENTS
from streams.authority import Authority
from streams.copies import Copy
from streams.merge import MONEY_EVENTS, Reusable, ShipmentState, leg_of, project

def advance(
    previous: ShipmentRecord | None,
    before: ShipmentState,
    after: ShipmentState,
    new_copies: Sequence[Copy],
    authority: Authority,
) -> ShipmentRecord:
    """`project(after, authority)`, reusing what `previous` (= `project(before, authority)`, the same authority)
    holds that `new_copies` (what `after` took in since `before`) cannot have changed."""
    operator = authority.operator(after.shipment_id)
    reuse = _reusable(previous, before, after, new_copies, operator is not None and operator.require_verified)
    return project(after, authority, reuse)


def _reusable(
    previous: ShipmentRecord | None, before: ShipmentState, after: ShipmentState, new_copies: Sequence[Copy], strict: bool
) -> Reusable | None:
    """`strict`: the MTO requires verified parties, so a verification may refuse or admit the booking (from scratch)
    and every later event time may let one lapse, holding a payout (the money again)."""
    if previous is None or previous.booking is None or not new_copies:
        return None
    if strict and any(isinstance(copy.event, IdentityEvent) for copy in new_copies):
        return None
    plan = previous.booking
    # every version of an event the new copies touch: the winner before (its effects go) and the winner now
    touched: list[HubEvent] = []
    keys = frozenset(copy.event.key for copy in new_copies)
    for key in keys:
        for held in (before.copies.get(key), after.copies.get(key)):
            if held is not None:
                touched.append(held.event)
    legs: set[int | None] = set()
    money = claims = custody = emissions = True
    for event in touched:
        emissions &= not isinstance(event, EmissionsEvent)
        if isinstance(event, BookingEvent):
            return None  # a new plan: from scratch
        if isinstance(event, BookingStatusEvent) or isinstance(event, WaybillEvent) and event.payload.leg is None:
            legs.add(event.payload.leg)  # a carrier's answer for its leg; the MTO's decision and the through document
            continue  # are read from the events every time
        if isinstance(event, (TrackingEvent, SettlementEvent, WaybillEvent)):
            legs.add(leg_of(event, plan))
        money &= not isinstance(event, _MONEY_INPUTS)
        claims &= not (
            isinstance(event, _CLAIM_INPUTS)
            or isinstance(event, TrackingEvent) and event.payload.status in INCIDENTS
        )
        if isinstance(event, HandoverEvent):
            legs.add(event.payload.from_leg)  # a handover out of a leg is an actual milestone of it
            custody = False
        elif isinstance(event, InsuranceEvent) and isinstance(event.payload, PolicyBound):
            legs.update(leg.sequence for leg in plan.legs)  # every leg inherits the cover
    last = len(plan.legs)
    if last in legs:
        claims = False  # the last leg's delivery opens delay claims and counts packages
    return Reusable(
        previous, frozenset(range(1, last + 1)) - legs, money and not strict, claims, custody, emissions,
        frozenset(type(event) for event in touched), keys, before.memo.classified, before.memo.invoicing,
    )


# an invoice or its verification may hold or free a payout (streams.invoices); a handover, cover or a rate changes
# the claims
_MONEY_INPUTS = (*MONEY_EVENTS, CarrierInvoiceEvent, InvoiceVerificationEvent)
_CLAIM_INPUTS = (HandoverEvent, InsuranceEvent, RateEvent)
