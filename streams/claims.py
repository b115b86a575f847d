"""Claims derived from a shipment's exceptions, for the insurer (stream `hub.claims`) and for recourse.

One claim per exception, i.e. per (kind, leg), however often and by whomever it is reported; its id is
deterministic (`CLM-{shipment}-{kind}-L{leg}`, or `-NL` when not localised), so re-deriving never opens a second
claim. Choices made here:

- Liability limits come from `streams.liability`, which covers loss and damage only. Delay is limited on other
  terms (typically the freight of the delayed cargo) that the table does not hold, so a `delay` claim carries no
  limit (`liability` None). Damage, loss, shortage, temperature excursion, handover discrepancy and presumed loss
  are limited by the table.
- A `delayed` report opens a delay claim on the leg it was placed on. Final delivery after the booking's
  `requested_delivery` opens a not-localised delay claim only when no `delayed` report exists: when carriers did
  report delays, those claims already localise it. Its time and place are the delivery's (the final leg's
  destination), and it has no evidence key, since only the delivery time is passed in.
- A `lost` report on the hub's own clock (code list `PRESUMED_LOSS_CODE_LIST`, 90 days past the agreed date)
  opens a presumed-loss claim, never localised whatever leg it names: the clock knows no custody.
- A discrepancy found at a handover is a handover_discrepancy of the leg that handed over; one at pickup from the
  shipper (no leg) is not a claim, the MTO never had the missing cargo. Its affected cargo is the shortfall
  (expected − found, none when more was found than expected).
- Affected cargo is the largest figure among the reports. A report giving only packages has its weight pro rata of
  the booking; one giving only weight has the packages that weight amounts to pro rata, rounded up (an affected
  part of a package affects that package); neither gives the whole cargo.
- A leg the booking no longer has (an amendment dropped it) makes the exception not localised.
- A report of an exception naming no leg, when the other reports of that kind place it on exactly one leg, is
  evidence of that leg's claim, not a second claim (with several legs it stays not localised).
- The limit is given in the policy's insured-value currency (the declared value's without a policy), converted
  with the latest rate event between XDR and that currency as of the exception (base XDR, or the inverse).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_CEILING, ROUND_HALF_UP, Context, Decimal, localcontext
from typing import Sequence

from schemas.events import BookingPayload, ClaimUpdate, InsuranceEvent, RateEvent, TrackingEvent
from schemas.record import ClaimRecord, Discrepancy, ExceptionKind, LiabilityLimit, PolicyRecord
from streams.liability import SDR, liability_limit

PRESUMED_LOSS_CODE_LIST = "mmhub-clock"  # code list of the hub's own 90-day presumed-loss report

KIND_OF_STATUS: dict[str, ExceptionKind] = {
    "damaged": "damage",
    "lost": "loss",
    "shortage": "shortage",
    "temperature_excursion": "temperature_excursion",
    "delayed": "delay",
}

_GRAM = Decimal("0.001")
_ARITHMETIC = Context(prec=34, rounding=ROUND_HALF_UP)
_INVERSE = Context(prec=12, rounding=ROUND_HALF_UP)  # an inverted rate keeps 12 significant digits


@dataclass(frozen=True)
class _Sighting:
    """One piece of evidence of an exception: a report, a discrepancy, or the late delivery itself (no key)."""

    key: str | None
    at: datetime
    location: str | None
    packages: int | None
    weight_kg: Decimal | None

    def order(self) -> tuple[datetime, str]:
        return self.at, self.key or ""


def derive_claims(
    shipment_id: str,
    booking: BookingPayload,
    incidents: Sequence[tuple[int | None, TrackingEvent]],
    discrepancies: Sequence[Discrepancy],
    delivered: tuple[datetime, str] | None,
    policy: PolicyRecord | None,
    insurer_updates: Sequence[InsuranceEvent],
    rates: Sequence[RateEvent],
) -> tuple[list[ClaimRecord], list[str]]:
    """The shipment's claims (sorted by claim_id), and the keys of insurer updates that match none of them.

    `incidents` are the live actual incident reports with the leg each was placed on (None: not localised);
    `insurer_updates` the live claim updates (only the policy's insurer's count; the others are unmatched); `rates` the live rate events. Order of the inputs does not matter.
    """
    sightings = _sightings(booking, incidents, discrepancies, delivered)
    currency = policy.insured_value.currency if policy else booking.declared_value.currency
    # the policy's insurer decides its claims: another insurer the MTO places cover with has no part in this policy
    deciding = [e for e in insurer_updates if policy is None or e.source == policy.insurer]
    updates = _latest_updates(deciding)
    claims = [
        _claim(shipment_id, booking, kind, leg, seen, policy, updates.get(_claim_id(shipment_id, kind, leg)), rates, currency)
        for (kind, leg), seen in sightings.items()
    ]
    ids = {claim.claim_id for claim in claims}
    unmatched = sorted(
        {e.key for e in insurer_updates if isinstance(e.payload, ClaimUpdate) and (e.payload.claim_id not in ids or e not in deciding)}
    )
    return sorted(claims, key=lambda claim: claim.claim_id), unmatched


def _sightings(
    booking: BookingPayload,
    incidents: Sequence[tuple[int | None, TrackingEvent]],
    discrepancies: Sequence[Discrepancy],
    delivered: tuple[datetime, str] | None,
) -> dict[tuple[ExceptionKind, int | None], list[_Sighting]]:
    legs = {planned.sequence for planned in booking.legs}
    found: dict[tuple[ExceptionKind, int | None], list[_Sighting]] = defaultdict(list)
    for leg, event in incidents:
        report = event.payload
        kind = KIND_OF_STATUS.get(report.status)
        if kind is None:
            continue  # `held` and the like are not losses
        if kind == "loss" and report.code_list == PRESUMED_LOSS_CODE_LIST:
            kind, leg = "presumed_loss", None
        found[(kind, leg if leg in legs else None)].append(
            _Sighting(event.key, event.occurred_at, report.location, report.affected_packages, report.affected_weight_kg)
        )
    with localcontext(_ARITHMETIC):
        for discrepancy in discrepancies:
            if discrepancy.leg is None:
                continue
            shortfall = max(discrepancy.expected - discrepancy.found, Decimal(0))
            packages = int(shortfall) if discrepancy.kind == "packages" else None
            weight = shortfall if discrepancy.kind == "weight" else None
            leg = discrepancy.leg if discrepancy.leg in legs else None
            found[("handover_discrepancy", leg)].append(
                _Sighting(discrepancy.set_by, discrepancy.at, discrepancy.location, packages, weight)
            )
    # a report naming no leg of an exception that reports place on exactly one leg is evidence of that one: the same
    # damage relayed without its leg (by the MTO, or a carrier of two legs) never opens a second claim beside it
    for kind in {k for k, leg in found if leg is None and k != "presumed_loss"}:
        localised = [leg for k, leg in found if k == kind and leg is not None]
        if len(localised) == 1:
            found[(kind, localised[0])] += found.pop((kind, None))
    agreed = booking.requested_delivery
    if delivered is not None and agreed is not None and delivered[0] > agreed and not any(k == "delay" for k, _ in found):
        at, proof = delivered  # the delivery report itself is the evidence of lateness
        found[("delay", None)].append(_Sighting(proof, at, booking.legs[-1].destination, None, None))
    return found


def _claim(
    shipment_id: str,
    booking: BookingPayload,
    kind: ExceptionKind,
    leg: int | None,
    seen: list[_Sighting],
    policy: PolicyRecord | None,
    update: InsuranceEvent | None,
    rates: Sequence[RateEvent],
    currency: str,
) -> ClaimRecord:
    first = min(seen, key=_Sighting.order)
    packages, weight = _affected(booking, seen)
    carrier = booking.legs[leg - 1].carrier if leg is not None else None
    liability: LiabilityLimit | None = None
    if kind != "delay":
        rate = _sdr_rate(rates, currency, first.at)
        liability = liability_limit(booking, leg, packages, weight, first.at, rate, currency)
    decision = update.payload if update is not None and isinstance(update.payload, ClaimUpdate) else None
    return ClaimRecord.built(
        claim_id=_claim_id(shipment_id, kind, leg),
        kind=kind,
        policy_number=policy.policy_number if policy else None,
        insurer=policy.insurer if policy else None,
        evidence=sorted({s.key for s in seen if s.key is not None}),
        occurred_at=first.at,
        location=first.location,
        leg=leg,
        custody_carrier=carrier,
        localised=leg is not None,
        liable_carrier=carrier,
        affected_packages=packages,
        affected_weight_kg=weight,
        liability=liability,
        status=decision.status if decision else "opened",
        settled_amount=decision.amount if decision else None,
        status_set_by=update.key if update is not None else None,
    )


def _claim_id(shipment_id: str, kind: ExceptionKind, leg: int | None) -> str:
    return f"CLM-{shipment_id}-{kind}-{'NL' if leg is None else f'L{leg}'}"


def _affected(booking: BookingPayload, seen: list[_Sighting]) -> tuple[int, Decimal]:
    """Packages and kg affected: the largest reported, the missing one pro rata, else the whole cargo."""
    cargo = booking.cargo
    packages = max((s.packages for s in seen if s.packages is not None), default=None)
    weight = max((s.weight_kg for s in seen if s.weight_kg is not None), default=None)
    with localcontext(_ARITHMETIC):
        if weight is None:
            if packages is None:
                return cargo.packages, cargo.gross_weight_kg
            share = cargo.gross_weight_kg * packages / cargo.packages
            return packages, share.quantize(_GRAM, rounding=ROUND_HALF_UP)
        if packages is None:
            if cargo.gross_weight_kg == 0:
                return cargo.packages, weight
            share = (cargo.packages * weight / cargo.gross_weight_kg).to_integral_value(rounding=ROUND_CEILING)
            return min(int(share), cargo.packages), weight
    return packages, weight


def _sdr_rate(rates: Sequence[RateEvent], currency: str, at: datetime) -> tuple[Decimal, str] | None:
    """Units of `currency` per SDR from the latest rate as of `at` (ties broken by event key), if any."""
    candidates: list[tuple[datetime, str, Decimal]] = []
    for event in rates:
        rate = event.payload
        if rate.as_of > at:
            continue
        if rate.base == SDR and rate.quote == currency:
            candidates.append((rate.as_of, event.key, rate.rate))
        elif rate.base == currency and rate.quote == SDR:
            candidates.append((rate.as_of, event.key, _INVERSE.divide(Decimal(1), rate.rate)))
    if not candidates:
        return None
    _, key, value = max(candidates)
    return value, key


def _latest_updates(updates: Sequence[InsuranceEvent]) -> dict[str, InsuranceEvent]:
    """The latest update (by occurred_at, then key) for each claim id."""
    latest: dict[str, InsuranceEvent] = {}
    for event in sorted(updates, key=lambda e: (e.occurred_at, e.key)):
        if isinstance(event.payload, ClaimUpdate):
            latest[event.payload.claim_id] = event
    return latest
