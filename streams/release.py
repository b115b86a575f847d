"""Electronic cargo release at destination (电子放货).

The hub issues one release order, to the party named for delivery, once all of these hold on the record:

- the transport document: every negotiable one (the through document, a leg's bill of lading) surrendered by its
  holder (streams.documents refuses a surrender by anyone else), the release going to that holder; or, with none, a
  sea waybill, the release going to the consignee;
- customs: every import declaration released, and at least one (a hold or an inspection keeps it unreleased, and a
  released declaration takes no later status: streams.customs);
- freight: the shipper's invoice paid, or the shipper on credit terms with the MTO (the registry);
- with the MTO's `require_verified` option: the shipper, the consignee and the release's addressee verified.

Every condition is read from the winning copies. Issuing is one-shot: the merge step keeps the release it first
issues in the shipment's state as the hub's own fact (`issue`), and from then on the record carries that release as
issued, whatever is retracted or arrives later; a condition that no longer holds is noted in `since_issued`. Its id
is fixed per shipment, and `newly_issued` says when a version first carries it: the worker sends it on `hub.release`
then, and at no other version.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Mapping

from schemas.record import ConditionName, ReleaseCondition, ReleaseRecord, ShipmentRecord
from streams.authority import Operator
from streams.identity import verified

if TYPE_CHECKING:  # streams.merge imports this module (through streams.trade) to project the release
    from streams.merge import ShipmentState


def release(
    record: ShipmentRecord, operator: Operator | None, occurred: Mapping[str, datetime], standing: ReleaseRecord | None = None
) -> ReleaseRecord | None:
    """The release part of a shipment; `occurred` gives each live event key's event time, `standing` is the release
    the hub has issued already (the state's fact): it stays issued, with the conditions that no longer hold noted."""
    if record.booking is None or not record.legs:
        if standing is None:
            return None
        return standing.model_copy(update={"since_issued": ["the booking is no longer live"]})
    document, to = _transport_document(record)
    conditions = [document, _customs(record), _freight(record, operator)]
    if operator is not None and operator.require_verified:
        conditions.append(_verified_parties(record, to))
    if standing is not None:
        lapsed = [f"{c.name} no longer holds: {c.reason}" for c in conditions if not c.met]
        return standing.model_copy(update={"since_issued": lapsed})
    issued = all(c.met for c in conditions)
    times = [occurred[key] for c in conditions for key in c.set_by if key in occurred]
    return ReleaseRecord.built(
        status="issued" if issued else "blocked",
        release_id=f"{record.shipment_id}/release" if issued else None,
        to=to if issued else None,
        location=record.legs[-1].destination,
        issued_at=max(times) if issued and times else None,
        conditions=conditions,
    )


def issue(state: ShipmentState, record: ShipmentRecord) -> ShipmentState:
    """`state` with the release `record` (its projection) issues kept as the hub's fact, the first time it does."""
    if state.release is not None or record.release is None or record.release.status != "issued":
        return state
    return replace(state, release=record.release)


def newly_issued(before: ShipmentRecord | None, after: ShipmentRecord) -> bool:
    """Whether `after` is the first version to carry the issued release."""
    was = before is not None and before.release is not None and before.release.status == "issued"
    return not was and after.release is not None and after.release.status == "issued"


def completed_by(record: ShipmentRecord) -> frozenset[str]:
    """The events the issued release rests on (none while it is blocked): a replay of one of them may follow a crash
    between the version that issued the release and its message, so the worker sends the release again (same id)."""
    if record.release is None or record.release.status != "issued":
        return frozenset()
    return frozenset(key for condition in record.release.conditions for key in condition.set_by)


def _transport_document(record: ShipmentRecord) -> tuple[ReleaseCondition, str | None]:
    # a voided document (not issued again) is no document: a voided sea waybill released the cargo to the consignee
    # (for good: a release is issued once), though its issuer had withdrawn it, perhaps for a bill of lading a bank
    # finances; and a voided bill of lading, which nobody can surrender, blocked the release for ever
    negotiable = [record.through_document] if record.through_document and record.through_document.status != "voided" else []
    negotiable += [d for leg in record.legs for d in leg.documents if d.kind == "bill_of_lading" and d.status != "voided"]
    name: ConditionName = "transport_document"
    if negotiable:
        waiting = [d.number for d in negotiable if d.status != "surrendered"]
        if waiting:
            return ReleaseCondition.built(name=name, met=False, reason=f"not yet surrendered by its holder: {', '.join(waiting)}"), None
        holder = negotiable[0].holder
        keys = [d.surrendered_by for d in negotiable if d.surrendered_by]
        return ReleaseCondition.built(name=name, met=True, reason=f"surrendered by its holder {holder}", set_by=keys), holder
    waybills = [d for leg in record.legs for d in leg.documents if d.kind == "sea_waybill" and d.status != "voided"]
    consignee = record.consignee.party_id if record.consignee else None
    if waybills and consignee:
        reason = f"sea waybill {waybills[0].number} names the consignee {consignee}"
        return ReleaseCondition.built(name=name, met=True, reason=reason, set_by=[waybills[0].set_by]), consignee
    return ReleaseCondition.built(name=name, met=False, reason="no bill of lading surrendered and no sea waybill"), None


def _customs(record: ShipmentRecord) -> ReleaseCondition:
    imports = [d for d in record.customs if d.direction == "import"]
    if not imports:
        return ReleaseCondition.built(name="customs", met=False, reason="no import declaration yet")
    # named by where they were lodged, not by number: who sees the release may not see declaration details (grade
    # `customs`, streams/sharing_policy.json)
    waiting = [f"the import declaration at {d.location} is {d.status}" for d in imports if d.status != "released"]
    if waiting:
        return ReleaseCondition.built(name="customs", met=False, reason="; ".join(waiting))
    places = ", ".join(sorted({d.location for d in imports}))
    reason = f"every import declaration released ({places})"
    return ReleaseCondition.built(name="customs", met=True, reason=reason, set_by=[d.status_set_by for d in imports])


# The release is `operational`: every carrier and insurer of the shipment reads it (streams.sharing_policy.json), and
# the consignee too. What the freight condition says is only whether the freight holds the cargo: how much of the
# invoice is paid, and whether the shipper has credit terms with the MTO, are the MTO's and the shipper's business
# (`billing`, the registry), which the settlement shows those who may see it.
FREIGHT_CLEARED = "the freight does not hold the cargo: paid, or on the MTO's credit terms"
FREIGHT_OWED = "the freight is not paid yet"


def _freight(record: ShipmentRecord, operator: Operator | None) -> ReleaseCondition:
    settlement = record.settlement
    if settlement is not None and settlement.status in ("paid", "overpaid"):
        keys = [p.set_by for p in settlement.payments if p.status == "applied"]
        return ReleaseCondition.built(name="freight", met=True, reason=FREIGHT_CLEARED, set_by=keys)
    shipper = record.shipper.party_id if record.shipper else None
    if operator is not None and shipper in operator.credit_terms:
        keys = [record.booking_set_by] if record.booking_set_by else []
        return ReleaseCondition.built(name="freight", met=True, reason=FREIGHT_CLEARED, set_by=keys)
    return ReleaseCondition.built(name="freight", met=False, reason=FREIGHT_OWED)


def _verified_parties(record: ShipmentRecord, to: str | None) -> ReleaseCondition:
    named = [record.shipper.party_id if record.shipper else None, record.consignee.party_id if record.consignee else None, to]
    missing = sorted({p for p in named if p is not None and not verified(record.verifications, p)})
    if missing:
        return ReleaseCondition.built(name="verified_parties", met=False, reason=f"not verified: {', '.join(missing)}")
    keys = sorted({v.set_by for v in record.verifications if v.party_id in named and v.set_by})
    return ReleaseCondition.built(name="verified_parties", met=True, reason="every party to the release is verified", set_by=keys)
