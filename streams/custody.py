"""Custody along the journey: handovers between legs, who held the cargo when, and counts that do not match.

The MTO is responsible for the whole journey; custody says which carrier held the cargo at each moment, which
is what localises a loss to a leg (and so to a liability regime and a carrier for recourse).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Iterable, Literal

from schemas.events import BookingPayload, HandoverEvent, TrackingEvent
from schemas.record import CustodyRecord, Discrepancy, HandoverRecord, LegRecord

# Scales at two terminals rarely agree to the kilogram: within 0.5% of the expected weight it is the same cargo.
WEIGHT_TOLERANCE = Decimal("0.005")

_STARTS = ("received", "loaded", "departed")
_ENDS = ("handed_over", "delivered")


def handovers(events: Iterable[HandoverEvent], plan: BookingPayload) -> tuple[list[HandoverRecord], list[str]]:
    """The handovers that fit the booking's legs, in time order, and the keys of those that do not."""
    legs = len(plan.legs)
    placed: list[HandoverRecord] = []
    unplaced: list[str] = []
    for event in sorted(events, key=lambda e: (e.occurred_at, e.key)):
        payload = event.payload
        between_legs = payload.from_leg is not None and payload.to_leg is not None and payload.to_leg <= legs
        pickup = payload.from_leg is None and payload.to_leg == 1
        delivery = payload.to_leg is None and payload.from_leg == legs
        if not (between_legs or pickup or delivery):
            unplaced.append(event.key)  # a leg the booking lacks, or a pickup/delivery by a middle leg
            continue
        placed.append(
            HandoverRecord.built(
                from_leg=payload.from_leg,
                to_leg=payload.to_leg,
                from_party=plan.legs[payload.from_leg - 1].carrier if payload.from_leg else plan.shipper.party_id,
                to_party=plan.legs[payload.to_leg - 1].carrier if payload.to_leg else plan.consignee.party_id,
                location=payload.location,
                at=event.occurred_at,
                packages=payload.packages,
                gross_weight_kg=payload.gross_weight_kg,
                set_by=event.key,
                ssccs=payload.ssccs,
            )
        )
    return placed, unplaced


def discrepancies(placed: list[HandoverRecord], plan: BookingPayload) -> list[Discrepancy]:
    """Each handover compared with the count when the handing-over leg took the cargo (else the booking)."""
    found: list[Discrepancy] = []
    for handover in placed:
        compared_with, packages, weight = _taken_over(placed, handover.from_leg, (handover.at, handover.set_by), plan)
        differences: list[tuple[Literal["packages", "weight"], Decimal, Decimal]] = []
        if Decimal(handover.packages) != packages:
            differences.append(("packages", packages, Decimal(handover.packages)))
        if abs(handover.gross_weight_kg - weight) > weight * WEIGHT_TOLERANCE:
            differences.append(("weight", weight, handover.gross_weight_kg))
        for kind, expected, counted in differences:
            found.append(
                Discrepancy.built(
                    kind=kind,
                    compared_with=compared_with,
                    expected=expected,
                    found=counted,
                    leg=handover.from_leg,
                    location=handover.location,
                    at=handover.at,
                    set_by=handover.set_by,
                )
            )
    return found


def counted_deliveries(
    deliveries: Iterable[TrackingEvent], placed: list[HandoverRecord], plan: BookingPayload
) -> list[Discrepancy]:
    """The actual delivery reports of the last leg that count their packages (EPCIS: SSCCs), compared with what the
    last leg took over (the last handover into it before, else the booking), as a handover to the consignee would be.
    Only the packages: such a report weighs nothing.

    Reports that list their SSCCs are one delivery, however many parts it came in (several `receiving` events, each
    with some of the pallets): the distinct SSCCs of all of them are compared with the whole once, at the latest part.
    While parts are still to come the record shows the shortfall so far, and it goes when they arrive; a part that
    repeats SSCCs already delivered adds nothing. The result depends on the set of reports only, not on their order.
    A report that gives only a count is a whole delivery of its own and is compared alone."""
    reports = sorted((r for r in deliveries if r.payload.packages is not None), key=lambda e: (e.occurred_at, e.key))
    parts = [r for r in reports if r.payload.ssccs]
    wholes: list[tuple[TrackingEvent, int]] = [(r, r.payload.packages or 0) for r in reports if not r.payload.ssccs]
    if parts:
        wholes.append((parts[-1], len({sscc for part in parts for sscc in part.payload.ssccs})))
    last = plan.legs[-1]
    found: list[Discrepancy] = []
    for report, counted in sorted(wholes, key=lambda pair: (pair[0].occurred_at, pair[0].key)):
        compared_with, packages, _ = _taken_over(placed, last.sequence, (report.occurred_at, report.key), plan)
        if Decimal(counted) != packages:
            found.append(
                Discrepancy.built(
                    kind="packages",
                    compared_with=compared_with,
                    expected=packages,
                    found=Decimal(counted),
                    leg=last.sequence,
                    location=report.payload.location or last.destination,
                    at=report.occurred_at,
                    set_by=report.key,
                )
            )
    return found


def _taken_over(
    placed: list[HandoverRecord], leg: int | None, before: tuple[datetime, str], plan: BookingPayload
) -> tuple[Literal["booking", "previous_handover"], Decimal, Decimal]:
    """What `leg` took over: the packages and weight of the last handover into it before `before`, else the
    booking's."""
    previous = [h for h in placed if h.to_leg is not None and h.to_leg == leg and (h.at, h.set_by) < before]
    if previous:
        return "previous_handover", Decimal(previous[-1].packages), previous[-1].gross_weight_kg
    return "booking", Decimal(plan.cargo.packages), plan.cargo.gross_weight_kg


def custody(
    plan: BookingPayload,
    placed: list[HandoverRecord],
    legs: list[LegRecord],
    earlier: list[CustodyRecord] | None = None,
    kept: frozenset[int] = frozenset(),
) -> list[CustodyRecord]:
    """Who had the cargo from when to when: handovers first, the carriers' own actual milestones otherwise.

    `earlier` is the custody of a record with the same plan and handovers whose legs in `kept` are the same as
    `legs`: the entries that depend on those legs alone are taken from it."""

    def handover_into(sequence: int | None) -> HandoverRecord | None:
        return next((h for h in placed if h.to_leg == sequence), None)

    def handover_out_of(sequence: int | None) -> HandoverRecord | None:
        return next((h for h in placed if h.from_leg == sequence), None)

    def milestone(leg: LegRecord, statuses: tuple[str, ...]) -> tuple[datetime, str] | None:
        times = [(m.at, m.set_by) for m in leg.milestones if m.classifier == "ACT" and m.status in statuses]
        return min(times) if times else None

    timeline = []
    if earlier is not None and 1 in kept:
        timeline.append(earlier[0])  # the shipper's: until the first leg took the cargo
    else:
        first_in = handover_into(1)
        first_start = milestone(legs[0], _STARTS) if legs else None
        timeline.append(
            CustodyRecord.built(
                party=plan.shipper.party_id,
                role="shipper",
                leg=None,
                since=None,
                until=first_in.at if first_in else (first_start[0] if first_start else None),
                set_by=first_in.set_by if first_in else (first_start[1] if first_start else None),
            )
        )
    for leg in legs:
        if earlier is not None and leg.sequence in kept:
            timeline.append(earlier[leg.sequence])
            continue
        into, out = handover_into(leg.sequence), handover_out_of(leg.sequence)
        start, end = milestone(leg, _STARTS), milestone(leg, _ENDS)
        since = (into.at, into.set_by) if into else start
        until = out.at if out else (end[0] if end else None)
        timeline.append(
            CustodyRecord.built(
                party=leg.carrier,
                role="carrier",
                leg=leg.sequence,
                since=since[0] if since else None,
                until=until,
                set_by=since[1] if since else None,
            )
        )
    if earlier is not None and len(legs) in kept:
        return timeline + earlier[len(legs) + 1 :]  # the consignee's: from the last leg's end, unchanged
    delivered = handover_out_of(len(legs)) if legs else None
    last_end = milestone(legs[-1], ("delivered",)) if legs else None
    if delivered or last_end:
        since_at, by = (delivered.at, delivered.set_by) if delivered else last_end  # type: ignore[misc]
        timeline.append(
            CustodyRecord.built(party=plan.consignee.party_id, role="consignee", leg=None, since=since_at, until=None, set_by=by)
        )
    return timeline
