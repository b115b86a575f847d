"""Hostile review of the trade parts of the fold (customs, the release, verified identities, emissions, custody):
each test is an attack by a registered party, or a stranger, on what it has no authority over. Each holds on the
fixed code; each failed on the code before its fix."""

from __future__ import annotations

import copy
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.unit.builders import booking_doc, carrier_of, envelope, record_of, waybill_doc
from tests.unit.streams.test_projection import arrivals, fold_in_batches, trade_variants
from tests.unit.streams.test_trade import AUTHORITY as TRADE_AUTHORITY
from tests.unit.streams.test_trade import (
    SHIPMENT,
    STRICT,
    by_id,
    carriers_verified,
    parsed,
    paid_in_full,
    record,
    trade_docs,
    verification,
    without,
)

_JOURNEY_SIZED = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example]

BROKER, OTHER_BROKER = "broker.customs-jb", "broker.qinzhou-trade"


def _lodging(event_id: str, source: str, at: str, **payload: object) -> dict:
    doc = copy.deepcopy(by_id(trade_docs(), "cus-im-lodged"))
    doc.update(event_id=event_id, source=source, occurred_at=at, recorded_at="2026-04-12T09:00:00Z")
    doc["payload"].update({"declarant": source, **payload})
    return doc


def test_a_broker_cannot_relabel_declarations_to_slip_past_an_import_inspection() -> None:
    # Malaysian customs holds the import for inspection (no release yet). A registered broker, "lodging" with a
    # backdated time and naming itself declarant, turns the held import into an export and the released export
    # into an import: every "import" declaration is then released, and the cargo would go out uninspected.
    docs = without(trade_docs(), "cus-im-released")
    forged = [
        _lodging("relabel-held", OTHER_BROKER, "2026-04-01T00:00:00Z", declaration_number="B10-2604-004611",
                 direction="export"),
        _lodging("relabel-released", OTHER_BROKER, "2026-04-01T00:00:00Z", declaration_number="531620260000460461",
                 direction="import", location="MYPKG", office="B10"),
    ]
    folded = record(docs + forged)
    assert folded.release is not None and folded.release.status == "blocked"
    directions = {c.declaration_number: (c.direction, c.declarant) for c in folded.customs}
    assert directions == {
        "531620260000460461": ("export", "broker.qinzhou-trade"),
        "B10-2604-004611": ("import", BROKER),
    }
    refused = {r.event: r.kind for r in folded.rejected}
    assert refused[f"{OTHER_BROKER}/relabel-held"] == refused[f"{OTHER_BROKER}/relabel-released"] == "conflict"
    # the declarant itself cannot do it either
    own = _lodging("relabel-own", BROKER, "2026-04-01T00:00:00Z", direction="export")
    folded = record(docs + [own])
    assert [c.direction for c in folded.customs] == ["export", "import"]
    assert {r.event: r.kind for r in folded.rejected}[f"{BROKER}/relabel-own"] == "conflict"


def test_a_declarant_lodging_again_does_not_clear_a_customs_hold() -> None:
    # customs ordered an inspection; the declarant "lodges" its declaration again after it, which the record took as
    # the status that clears the hold: the inspection shown as cleared by the broker, the declaration back to lodged
    docs = without(trade_docs(), "cus-im-released")
    again = _lodging("lodge-again", BROKER, "2026-04-12T09:00:00Z")
    folded = record(docs + [again])
    import_ = folded.customs[1]
    assert import_.status == "under_inspection" and import_.status_set_by == "customs.my-rmcd/cus-im-inspect"
    assert import_.holds[0].cleared_by is None
    assert {r.event: r.kind for r in folded.rejected}[f"{BROKER}/lodge-again"] == "conflict"
    # lodged before customs first speaks of it, the same lodging is the declaration's history, as the example's is
    early = _lodging("lodge-early", BROKER, "2026-04-10T10:00:00Z")
    folded = record(docs + [early])
    assert [s.set_by for s in folded.customs[1].history][:2] == [f"{BROKER}/cus-im-lodged", f"{BROKER}/lodge-early"]


def test_a_carriers_absurd_but_valid_fuel_report_does_not_crash_the_shipments_fold() -> None:
    # the sea carrier reports the most fuel a report may carry over the shortest distance one may name: its
    # intensity (fuel / tonne-km) is ~1E52 g per tonne-km, past the fold's decimal precision. The fold raised, and
    # the whole batch of the shipment (every party's events with it) was dead-lettered.
    fuel = {"leg": 3, "distance_km": "1E-40", "fuel": {"fuel": "diesel", "quantity": "10000000"}}
    report = envelope("emissions", fuel, event_id="ems-absurd", source=carrier_of(3), occurred=80)
    folded = record_of(booking_doc(), report)
    [leg] = [leg for leg in folded.emissions.legs if leg.leg == 3]
    assert leg.wtw_kg_co2e == Decimal("32400000.000") and leg.data_quality == "primary"
    assert leg.intensity_wtw_g_per_tkm is None and leg.intensity_ttw_g_per_tkm is None


def test_a_strangers_far_dated_estimate_does_not_expire_every_verification() -> None:
    # Every party is verified until 2027-03-30 and the invoice is paid: the payouts are due and the cargo released.
    # A party with no part in the shipment sends an event the record refuses, classed as an estimate, which may be
    # dated a year past its receipt (MMHUB_MAX_PLAN_AHEAD_S). Taken as "the record's time", it expired every
    # verification: every carrier's payout held and the release blocked, at a stranger's word.
    docs = paid_in_full(carriers_verified(trade_docs()))
    assert {p.status for p in record(docs, STRICT).settlement.payouts} == {"released"}  # type: ignore[union-attr]
    forged = _lodging("far-estimate", OTHER_BROKER, "2027-04-20T00:00:00Z", declarant=BROKER)
    forged.update(classifier="EST")
    folded = record(docs + [forged], STRICT)
    assert {r.event: r.kind for r in folded.rejected}[f"{OTHER_BROKER}/far-estimate"] == "not_entitled"
    assert {v.state for v in folded.verifications if v.finding is not None} == {"verified"}
    assert folded.settlement is not None and {p.status for p in folded.settlement.payouts} == {"released"}
    assert folded.release is not None and folded.release.status == "issued"


@settings(max_examples=60, deadline=None, suppress_health_check=_JOURNEY_SIZED)
@given(data=st.data())
def test_advancing_through_estimates_equals_a_full_project(data: st.DataObject) -> None:
    # with the record's time the latest *actual* event time, a finding (or any event) classed as an estimate may be
    # dated past it: the incremental projection must still equal a full one, whatever the order and batches
    authority = data.draw(st.sampled_from([TRADE_AUTHORITY, STRICT]), label="registry")
    extra = data.draw(st.lists(trade_variants(), max_size=6), label="trade events")
    for doc in extra:
        if data.draw(st.booleans(), label="estimate"):
            doc["classifier"] = "EST"
    docs = paid_in_full(carriers_verified(trade_docs())) + extra + [
        verification("carrier.oceanline", "idv-est", at="2026-05-01T00:00:00Z", valid_until="2026-05-02T00:00:00Z"),
    ]
    by_id(docs, "idv-est")["classifier"] = "EST"
    events = parsed(docs)
    issuing = data.draw(st.booleans(), label="the state keeps the release")
    assert fold_in_batches(events[0].shipment_id or "", arrivals(data, events), authority, issuing=issuing) >= 1


def test_a_finding_dated_past_the_record_time_counts_once_the_record_time_reaches_it() -> None:
    # an estimate-classed finding dated after every actual event does not count yet; an actual event after it (an
    # invoice verification here, no finding) brings it in, in an incremental projection as in a full one
    docs = carriers_verified(trade_docs())
    ahead = verification("carrier.oceanline", "idv-ahead", at="2026-05-01T00:00:00Z", valid_until="2026-05-03T00:00:00Z")
    ahead["classifier"] = "EST"
    later = copy.deepcopy(by_id(docs, "cus-im-lodged"))
    later.update(event_id="lodge-later", occurred_at="2026-05-02T00:00:00Z", recorded_at="2026-05-02T00:00:00Z")
    later["payload"].update(declaration_number="B10-2605-000001")
    for authority in (TRADE_AUTHORITY, STRICT):
        assert fold_in_batches(SHIPMENT, [parsed(docs + [ahead]), parsed([later])], authority) == 2
        states = {v.party_id: v.set_by for v in record(docs + [ahead], authority).verifications}
        assert states["carrier.oceanline"] == "verifier.trade-id/idv-carrier.oceanline"
        states = {v.party_id: v.set_by for v in record(docs + [ahead, later], authority).verifications}
        assert states["carrier.oceanline"] == "verifier.trade-id/idv-ahead"


def _document(kind: str, number: str, action: str, occurred: float) -> dict:
    doc = waybill_doc(kind, number, leg=3, occurred=occurred, event_id=f"{number}-{action}".lower())
    doc["payload"]["action"] = action
    return doc


def test_a_voided_sea_waybill_releases_nothing_and_a_voided_bill_of_lading_blocks_nothing() -> None:
    # The sea carrier issues a sea waybill, then voids it (the shipper wants a bill of lading its bank finances). The
    # voided waybill still met the release's document condition: the cargo would be released to the consignee, for
    # good, on a document its issuer withdrew.
    swb = [_document("sea_waybill", "SWB-1", "issued", 30), _document("sea_waybill", "SWB-1", "voided", 31)]
    folded = record_of(booking_doc(), *swb)
    assert folded.release is not None
    [condition] = [c for c in folded.release.conditions if c.name == "transport_document"]
    assert not condition.met, condition
    # and the other way round: a bill of lading voided, a sea waybill in its place; the voided bill, which nobody can
    # surrender, no longer waits for its surrender
    switched = [_document("bill_of_lading", "BL-1", "issued", 30), _document("bill_of_lading", "BL-1", "voided", 31),
                _document("sea_waybill", "SWB-2", "issued", 32)]
    folded = record_of(booking_doc(), *switched)
    assert folded.release is not None
    [condition] = [c for c in folded.release.conditions if c.name == "transport_document"]
    assert condition.met and "SWB-2" in condition.reason, condition
