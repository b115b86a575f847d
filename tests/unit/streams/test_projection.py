"""The incremental projection: `advance` from the previous record equals a full `project`, whatever the journey,
order, batches and duplicates; and an event recomputes only the parts it touches."""

from __future__ import annotations

import copy
import dataclasses
import warnings
from datetime import datetime, timedelta, timezone
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.events import HubEvent
from schemas.record import ShipmentRecord
from streams.merge import ShipmentState, absorb, project
from streams.authority import Authority
from streams.projection import advance
from streams.release import issue

from ..builders import (
    AUTHORITY,
    MTO,
    SHIPMENT,
    booking_doc,
    claim_doc,
    envelope,
    example_journey_docs,
    hub_event,
    policy_doc,
    settlement_doc,
    tracking_doc,
    waybill_doc,
)
from ..strategies import journeys
from .test_custody import handover_doc
from .test_ledger import margin, payment
from .test_trade import AUTHORITY as TRADE_AUTHORITY
from .test_trade import SHIPMENT as SHIPMENT_TRADE
from .test_trade import STRICT, by_id, carriers_verified, paid_in_full, parsed, trade_docs, verification

_JOURNEY_SIZED = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example]
PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=_JOURNEY_SIZED)
EXAMPLE = settings(max_examples=25, deadline=None, suppress_health_check=_JOURNEY_SIZED)


def assert_same_record(incremental: ShipmentRecord, full: ShipmentRecord) -> None:
    assert incremental == full
    # the same bytes on the status topic, and values of the types the schema declares (the hub builds records
    # without validating them: a wrong type would serialise with a warning, a wrong value fail to validate)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        written = incremental.model_dump_json()
    assert written == full.model_dump_json()
    assert ShipmentRecord.model_validate_json(written).model_dump_json() == written


def fold_in_batches(
    shipment_id: str, batches: list[list[HubEvent]], authority: Authority = AUTHORITY, *, issuing: bool = False
) -> int:
    """Advance batch by batch, checking every version against a full project; returns the versions made. `issuing`:
    the state keeps the release a version first issues, as the merge step does (streams.release.issue)."""
    state, record, versions = ShipmentState(shipment_id), None, 0
    for batch in batches:
        after, new = absorb(state, batch)
        if after is state:
            continue
        full = project(after, authority)  # first: `advance` then leaves its own memo on `after` for the next version
        written = record.model_dump_json() if record is not None else None
        memo = _tracks_of(state)
        again = advance(record, state, after, new, authority)  # the merge step may advance twice from one state
        assert_same_record(again, full)
        previous, record = record, advance(record, state, after, new, authority)
        assert_same_record(record, full)
        # advancing changes nothing an earlier version holds (the memo's dicts and lists are shared with its record)
        assert (previous.model_dump_json() if previous is not None else None) == written
        assert _tracks_of(state) == memo
        state, versions = issue(after, record) if issuing else after, versions + 1
    return versions


def _tracks_of(state: ShipmentState) -> dict[int, tuple[object, ...]]:
    """What the memo of `state` holds of each leg's reports (streams.merge._Track), by identity: what a later
    version must not change."""
    classified = state.memo.classified
    if classified is None:
        return {}
    return {
        leg: (
            frozenset(track.events), frozenset((slot, id(event)) for slot, event in track.chosen.items()),
            tuple(map(id, track.exceptions)), tuple(map(id, track.unmapped)),
        )
        for leg, track in classified.tracks.items()
    }


def arrivals(data: st.DataObject, events: list[HubEvent]) -> list[list[HubEvent]]:
    """`events` with duplicates, shuffled, cut into batches."""
    extra = data.draw(st.lists(st.sampled_from(events), max_size=len(events)), label="duplicates")
    arrival = data.draw(st.permutations(events + extra), label="arrival order")
    cuts = sorted(set(data.draw(st.lists(st.integers(1, len(arrival)), max_size=len(arrival)), label="batch ends")))
    bounds = [0, *cuts, len(arrival)]
    return [arrival[start:end] for start, end in zip(bounds, bounds[1:]) if end > start]


@EXAMPLE
@given(data=st.data())
def test_advancing_under_the_verified_parties_option_equals_a_full_project(data: st.DataObject) -> None:
    """With require_verified_parties a verification admits or holds the booking and a later event time lets one
    lapse, holding a payout: the trade journey paid in full, one carrier's verification lapsing, one retracted."""
    docs = paid_in_full(carriers_verified(trade_docs(), "carrier.oceanline")) + [
        verification("carrier.oceanline", "idv-oc", valid_until="2026-04-14T00:00:00Z"),  # lapses before the delivery
        verification("carrier.oceanline", "idv-oc-2", at="2026-04-13T00:00:00Z"),
    ]
    retraction = dict(by_id(docs, "idv-oc-2"), retracted=True, revised_at="2026-04-13T01:00:00Z")
    events = parsed(docs + [retraction])
    assert fold_in_batches(events[0].shipment_id or "", arrivals(data, events), STRICT) >= 1


@EXAMPLE
@given(data=st.data())
def test_advancing_through_verifications_without_the_option_equals_a_full_project(data: st.DataObject) -> None:
    """Without require_verified_parties a version keeps the previous verifications only while no finding is live:
    the trade journey with a carrier verified, a finding that lapses, one from an untrusted source, one retracted."""
    docs = trade_docs() + [
        verification("carrier.cr-rail", "idv-cr"),
        verification("carrier.oceanline", "idv-oc", valid_until="2026-04-14T00:00:00Z"),
        verification("carrier.oceanline", "idv-self", source="carrier.oceanline"),  # not a trusted verifier
    ]
    retraction = dict(by_id(docs, "idv-cr"), retracted=True, revised_at="2026-04-13T01:00:00Z")
    events = parsed(docs + [retraction])
    assert fold_in_batches(events[0].shipment_id or "", arrivals(data, events), TRADE_AUTHORITY) >= 1


# Trade events generated from the example trade journey's: each a copy of one of its events (or of a payment of the
# whole invoice) as a new event, a revision or a retraction, at any time of the journey, from its source or another
# party, with its status, finding, expiry or amount changed.
TRADE_TEMPLATES = [
    d for d in paid_in_full(trade_docs())
    if d["event_type"] in ("customs", "identity", "credit_terms", "commercial_invoice", "presentation", "payment", "waybill")
]
TRADE_SOURCES = sorted({str(d["source"]) for d in trade_docs()} | {"customs.my-rmcd", "carrier.oceanline"})
_JOURNEY_START = datetime(2026, 3, 25, tzinfo=timezone.utc)
journey_times = st.integers(0, 24 * 45).map(lambda h: (_JOURNEY_START + timedelta(hours=h)).strftime("%Y-%m-%dT%H:%M:%SZ"))
NO_CREDIT_TERMS = dataclasses.replace(
    TRADE_AUTHORITY, operators=tuple(dataclasses.replace(o, credit_terms=frozenset()) for o in TRADE_AUTHORITY.operators)
)


@st.composite
def trade_variants(draw: st.DrawFn) -> dict[str, Any]:
    doc = copy.deepcopy(draw(st.sampled_from(TRADE_TEMPLATES)))
    how = draw(st.sampled_from(["new", "new", "revision", "retraction"]))
    if how == "new":
        doc["event_id"] = f"{doc['event_id']}-{draw(st.integers(1, 3))}"
    doc["occurred_at"] = doc["recorded_at"] = draw(journey_times)
    if how != "new":
        doc["revised_at"] = f"2026-06-0{draw(st.integers(1, 3))}T00:00:00Z"
        doc["retracted"] = how == "retraction"
    if draw(rare_flag):
        doc["source"] = draw(st.sampled_from(TRADE_SOURCES))
    payload = doc["payload"]
    if doc["event_type"] == "customs":
        payload["status"] = draw(st.sampled_from(["lodged", "accepted", "under_inspection", "held", "released", "rejected"]))
    elif doc["event_type"] == "identity":
        payload["valid_until"] = draw(journey_times)
        payload["outcome"] = draw(st.sampled_from(["verified", "failed"]))
    elif doc["event_type"] == "payment":
        payload["amount"]["amount"] = draw(st.sampled_from(["2350.00", "1000.00"]))
    return doc


rare_flag = st.integers(0, 3).map(lambda n: n == 0)


@settings(EXAMPLE, max_examples=60)
@given(data=st.data())
def test_advancing_through_trade_events_equals_a_full_project(data: st.DataObject) -> None:
    """Each trade part is kept from the previous record unless its inputs change: the trade journey paid in full,
    with generated trade events, in any order, batches and duplication, under the registry as it is, without the
    shipper's credit terms and with the verified-parties option, the state keeping the release it issues."""
    authority = data.draw(st.sampled_from([TRADE_AUTHORITY, NO_CREDIT_TERMS, STRICT]), label="registry")
    docs = paid_in_full(trade_docs()) + data.draw(st.lists(trade_variants(), max_size=8), label="trade events")
    events = parsed(docs)
    issuing = data.draw(st.booleans(), label="the state keeps the release")
    assert fold_in_batches(events[0].shipment_id or "", arrivals(data, events), authority, issuing=issuing) >= 1


def test_a_payment_revised_to_a_later_time_moves_the_release_time() -> None:
    """The release is kept while what its conditions read is the same, but not the event times of what they rest on:
    without credit terms the payment frees the freight, and its revision (same payment, later) issues it later."""
    docs = paid_in_full(trade_docs())
    payment = by_id(docs, "pay-1")
    revised = {**payment, "occurred_at": "2026-04-14T05:00:00Z", "revised_at": "2026-04-14T05:00:00Z"}
    state, record, issued_at = ShipmentState(SHIPMENT_TRADE), None, []
    for batch in (parsed(docs), parsed([revised])):
        after, new = absorb(state, batch)
        full = project(after, NO_CREDIT_TERMS)
        record = advance(record, state, after, new, NO_CREDIT_TERMS)
        assert_same_record(record, full)
        assert record.release is not None and record.release.status == "issued"
        issued_at.append(record.release.issued_at.isoformat() if record.release.issued_at else None)
        state = after
    assert issued_at == ["2026-04-13T20:00:00+00:00", "2026-04-14T05:00:00+00:00"]


def test_a_finding_lapses_and_comes_back_in_force_with_the_record_time() -> None:
    """A verification is kept while no finding changes, but its standing is that at the record's time (the latest
    event time): an event after its `valid_until` lets it lapse, and retracting that event brings it back."""
    docs = trade_docs() + [verification("carrier.oceanline", "idv-oc", valid_until="2026-04-14T00:00:00Z")]
    late = [d for d in docs if str(d["occurred_at"]) >= "2026-04-14"]
    assert len(late) == 2  # an invoice verification and a tracking report
    retracted = [{**d, "retracted": True, "revised_at": "2026-05-01T00:00:00Z"} for d in late]
    batches = [parsed([d for d in docs if d not in late]), parsed(late[:1]), parsed(late[1:]), parsed(retracted)]
    state, record, standings = ShipmentState(SHIPMENT_TRADE), None, []
    for batch in batches:
        after, new = absorb(state, batch)
        full = project(after, TRADE_AUTHORITY)
        record = advance(record, state, after, new, TRADE_AUTHORITY)
        assert_same_record(record, full)
        standings.append(next(v.state for v in record.verifications if v.party_id == "carrier.oceanline"))
        state = after
    assert standings == ["verified", "expired", "expired", "verified"]


@PROPERTY
@given(events=journeys, data=st.data())
def test_advancing_batch_by_batch_equals_a_full_project_of_every_version(events: list[HubEvent], data: st.DataObject) -> None:
    assert fold_in_batches(SHIPMENT.replace("TEST", "PROP"), arrivals(data, events)) >= 1


@EXAMPLE
@given(data=st.data())
def test_advancing_through_the_example_journey_equals_a_full_project(data: st.DataObject) -> None:
    """Every kind of event the hub knows (handovers, answers, payments, rates, documents), in any order."""
    events = [hub_event(doc) for doc in example_journey_docs()]
    assert fold_in_batches(events[0].shipment_id or "", arrivals(data, events)) >= 1


def emissions_reports(shipment_id: str) -> list[dict[str, object]]:
    """Emissions reports on the example journey: primary data from leg 2's carrier (a distance, then a revision
    with an intensity), one from a carrier that may not report leg 1, and one sent and retracted."""
    def report(leg: int, source: str, event_id: str, occurred: float, **payload: object) -> dict[str, object]:
        doc = envelope("emissions", {"leg": leg, **payload}, event_id=event_id, source=source, occurred=occurred)
        return {**doc, "shipment_id": shipment_id}

    revised = report(2, "carrier.cr-rail", "em-2", 70, intensity_wtw_g_per_tkm="20", intensity_ttw_g_per_tkm="10")
    return [
        report(2, "carrier.cr-rail", "em-1", 60, distance_km="1180"),
        {**revised, "revised_at": revised["recorded_at"]},
        report(1, "carrier.cr-rail", "em-3", 65, distance_km="90"),  # leg 1 is carrier.sc-road's
        report(3, "carrier.oceanline", "em-4", 90, vehicle_type="container_ship"),
        {**report(3, "carrier.oceanline", "em-4", 90, vehicle_type="container_ship"), "retracted": True},
    ]


@EXAMPLE
@given(data=st.data())
def test_advancing_through_emissions_reports_equals_a_full_project(data: st.DataObject) -> None:
    """The emissions statement is kept from the previous record unless a report (or its retraction) comes in."""
    docs = example_journey_docs()
    shipment_id = str(docs[0]["shipment_id"])
    events = [hub_event(doc) for doc in docs + emissions_reports(shipment_id)]
    assert fold_in_batches(shipment_id, arrivals(data, events)) >= 1


# --- what an event recomputes ---------------------------------------------------------------------------------------

BASE = [
    booking_doc(),
    tracking_doc("departed", leg=1, occurred=24),
    tracking_doc("departed", leg=2, occurred=48),
    settlement_doc([("FRT", "100.00", "USD")], leg=1),
    waybill_doc("cmr", "CMR-1", leg=1),
]


def step(*docs: dict[str, object], base: list[dict[str, Any]] = BASE) -> tuple[ShipmentRecord, ShipmentRecord]:
    """The record of `base`, and the record advanced from it by `docs`."""
    before, _ = absorb(ShipmentState(SHIPMENT), [hub_event(doc) for doc in base])
    previous = project(before, AUTHORITY)
    after, new = absorb(before, [hub_event(doc) for doc in docs])
    record = advance(previous, before, after, new, AUTHORITY)
    assert_same_record(record, project(after, AUTHORITY))
    return previous, record


def test_a_tracking_report_recomputes_its_leg_only() -> None:
    previous, record = step(tracking_doc("arrived", leg=2, occurred=60))
    assert record.legs[1] != previous.legs[1]
    assert record.legs[0] is previous.legs[0] and record.legs[2] is previous.legs[2]
    assert record.settlement is previous.settlement and record.claims is previous.claims
    assert record.custody is not previous.custody  # a leg changed: who held the cargo may have
    assert (previous.current_location, record.current_location) == ("CNCKG", "CNQZH")  # and where it was last seen


def test_a_charge_recomputes_its_leg_and_the_money() -> None:
    previous, record = step(settlement_doc([("FRT", "80.00", "USD")], leg=2, event_id="inv-2"))
    assert record.legs[0] is previous.legs[0] and record.legs[1] is not previous.legs[1]
    assert record.settlement != previous.settlement and record.charges_total != previous.charges_total


def test_an_incident_recomputes_the_claims() -> None:
    previous, record = step(tracking_doc("damaged", leg=1, occurred=30))
    assert record.claims != previous.claims and record.legs[1] is previous.legs[1]


def test_a_leg_document_keeps_the_refusals_of_the_legs_it_does_not_touch() -> None:
    # the transfer of a document never issued is refused on leg 1; a report on leg 2 keeps that refusal
    transfer = waybill_doc("cmr", "CMR-9", leg=1, event_id="doc-cmr-9-x")
    transfer["payload"].update(action="transferred", holder="consignee.test")
    before, _ = absorb(ShipmentState(SHIPMENT), [hub_event(doc) for doc in [*BASE, transfer]])
    previous = project(before, AUTHORITY)
    assert [r.event for r in previous.rejected] == [hub_event(transfer).key]
    after, new = absorb(before, [hub_event(tracking_doc("arrived", leg=2, occurred=60))])
    assert advance(previous, before, after, new, AUTHORITY).rejected == previous.rejected


def test_a_revision_moves_its_effect_off_the_leg_it_left() -> None:
    # the MTO reports on any leg; its revision names another leg than the first copy
    moved = tracking_doc("arrived", leg=1, occurred=30, event_id="trk-moving", source=MTO)
    revised = {**tracking_doc("arrived", leg=2, occurred=60, event_id="trk-moving", source=MTO), "revised_at": "2026-03-05T00:00:00Z"}
    before, _ = absorb(ShipmentState(SHIPMENT), [hub_event(doc) for doc in [*BASE, moved]])
    previous = project(before, AUTHORITY)
    after, new = absorb(before, [hub_event(revised)])
    record = advance(previous, before, after, new, AUTHORITY)
    assert_same_record(record, project(after, AUTHORITY))
    assert record.legs[0].status == "departed" and record.legs[1].status == "arrived"


def test_a_handover_alone_recomputes_the_milestones_of_the_leg_it_leaves() -> None:
    """A leg keeps its milestones only while no tracking report and no handover changes: a handover out of leg 1,
    with no report of the carrier's, hands the leg over (and moves the custody)."""
    previous, record = step(handover_doc(1, 2, occurred=30))
    assert (previous.legs[0].status, record.legs[0].status) == ("departed", "handed_over")
    assert record.custody[1].until != previous.custody[1].until


def test_a_document_keeps_the_milestones_and_a_charge_the_documents() -> None:
    """A waybill event rebuilds its leg from the earlier leg's milestones and charges; a charge from its documents
    and milestones; neither the custody."""
    previous, record = step(waybill_doc("rail_waybill", "RW-1", leg=2))
    assert record.legs[1].documents != previous.legs[1].documents
    assert record.legs[1].milestones is previous.legs[1].milestones and record.legs[1].charges is previous.legs[1].charges
    assert record.custody == previous.custody and record.current_location == previous.current_location
    previous, record = step(settlement_doc([("FRT", "80.00", "USD")], leg=1, event_id="inv-1b"))
    assert record.legs[0].charges != previous.legs[0].charges
    assert record.legs[0].documents is previous.legs[0].documents and record.legs[0].departure is previous.legs[0].departure


def test_a_claim_update_recomputes_the_insurance() -> None:
    """The insurance record is kept only while no cover event comes in: a claim update no claim matches is listed."""
    previous, record = step(claim_doc("CLM-9", "opened", event_id="clm-9", occurred=40))
    assert (previous.insurance.unmatched_updates, record.insurance.unmatched_updates) == ([], ["insurer.test/clm-9"])
    previous, record = step(tracking_doc("arrived", leg=2, occurred=60))
    assert record.insurance is previous.insurance


# every leg charged: the invoice is issued
INVOICED = [
    *BASE,
    settlement_doc([("FRT", "200.00", "USD")], leg=2, event_id="inv-2"),
    settlement_doc([("FRT", "300.00", "USD")], leg=3, event_id="inv-3"),
]


def test_a_payment_keeps_the_invoice_and_a_charge_or_margin_revises_it() -> None:
    """The invoice (its revisions, notes and postings) is kept while no settlement or margin event comes in."""
    paid = {**payment("300.00", "USD", event_id="pmt-1", occurred=50), "source": "shipper.test"}
    previous, record = step(paid, base=INVOICED)
    assert record.settlement is not None and previous.settlement is not None
    assert record.settlement.payments != previous.settlement.payments
    assert record.settlement.invoices is previous.settlement.invoices
    for revising in (settlement_doc([("FRT", "250.00", "USD")], leg=2, event_id="inv-2", revised=60), margin(occurred=55)):
        previous, record = step(revising, base=[*INVOICED, paid])
        assert record.settlement is not None and previous.settlement is not None
        assert len(record.settlement.invoices) == len(previous.settlement.invoices) + 1


def test_cover_or_a_new_booking_recomputes_every_leg() -> None:
    for doc in (policy_doc(), {**booking_doc(), "revised_at": "2026-03-02T00:00:00Z"}):
        previous, record = step(doc)
        assert all(new is not old for new, old in zip(record.legs, previous.legs))


def test_without_a_previous_record_it_is_a_full_project() -> None:
    after, new = absorb(ShipmentState(SHIPMENT), [hub_event(doc) for doc in BASE])
    assert_same_record(advance(None, ShipmentState(SHIPMENT), after, new, AUTHORITY), project(after, AUTHORITY))


# Many reports on one leg: each status and classifier several times over, incidents, unmapped codes, revisions
# (a later copy that wins, an earlier one that comes after it and loses), a retraction and exact duplicates.
_REPORTS = [
    tracking_doc(status, leg=2, event_id=f"rep-{status}-{classifier}-{n}", classifier=classifier, occurred=50 + 7 * n - i)
    for n in range(3)
    for i, (status, classifier) in enumerate(
        [("departed", "ACT"), ("arrived", "EST"), ("arrived", "ACT"), ("damaged", "ACT"), ("unknown", "ACT"), ("departed", "PLN")]
    )
]
# the first actual arrival, revised to a later time: the slot falls back to the next one
_REVISED = {**_REPORTS[2], "occurred_at": "2026-03-20T00:00:00Z", "revised_at": "2026-03-21T00:00:00Z"}
_EARLIER = {**_REPORTS[2], "occurred_at": "2026-03-19T00:00:00Z", "revised_at": "2026-03-20T00:00:00Z"}  # loses to _REVISED
_RETRACTED = [  # the newest plan (the slot falls back to the one before) and an incident (it leaves the exceptions)
    {**_REPORTS[17], "retracted": True, "revised_at": "2026-03-21T00:00:00Z"},
    {**_REPORTS[3], "retracted": True, "revised_at": "2026-03-21T00:00:00Z"},
]
# a GS1 CBV receiving at the leg's planned destination: read against the booking as the leg's arrival
_RECEIVING = tracking_doc("received", leg=2, event_id="rep-cbv-receiving", location="CNQZH", occurred=49)
_RECEIVING["payload"].update(code_list="GS1-CBV-bizStep", raw_code="receiving")
_LEG_REPORTS = [*_REPORTS, _REVISED, _EARLIER, *_RETRACTED, _RECEIVING]


@EXAMPLE
@given(data=st.data())
def test_a_leg_taking_its_reports_one_at_a_time_equals_a_full_project(data: st.DataObject) -> None:
    """`_tracked` reads only the reports a leg did not have; a report replaced or retracted makes it read them all
    again, and a copy that loses to the one the state holds leaves the leg as it was. Every version, the reports
    coming one at a time or in batches and in any order, equals a full project."""
    events = [hub_event(doc) for doc in _LEG_REPORTS]
    base = [hub_event(doc) for doc in BASE]
    if data.draw(st.booleans(), label="one at a time"):
        extra = data.draw(st.lists(st.sampled_from(events), max_size=4), label="duplicates")
        batches = [[event] for event in data.draw(st.permutations(events + extra), label="arrival order")]
    else:
        batches = arrivals(data, events)
    assert fold_in_batches(SHIPMENT, [base, *batches]) >= 2


def test_a_new_report_reads_only_itself(monkeypatch: Any) -> None:
    """Work in proportion to what changed: with fifty reports on the leg, the fifty-first reads one report."""
    import streams.merge as merge

    docs = [tracking_doc("arrived", leg=2, event_id=f"ping-{n}", classifier="EST", occurred=60, recorded=40 + n) for n in range(50)]
    before, _ = absorb(ShipmentState(SHIPMENT), [hub_event(doc) for doc in [*BASE, *docs]])
    previous = project(before, AUTHORITY)
    read: list[str] = []
    against = merge._against_the_plan
    monkeypatch.setattr(merge, "_against_the_plan", lambda event, plan, sequence: read.append(event.key) or against(event, plan, sequence))
    newest = tracking_doc("arrived", leg=2, event_id="ping-50", classifier="EST", occurred=61, recorded=95)
    after, new = absorb(before, [hub_event(newest)])
    record = advance(previous, before, after, new, AUTHORITY)
    assert read == [hub_event(newest).key]
    assert record.legs[1].arrival.estimated != previous.legs[1].arrival.estimated  # the newest estimate is chosen
    monkeypatch.undo()
    assert_same_record(record, project(after, AUTHORITY))


def test_a_copy_of_a_state_starts_without_its_memo() -> None:
    """The memo knows the state's events by identity: a deep copy or a pickled state holds other objects."""
    import pickle

    state, _ = absorb(ShipmentState(SHIPMENT), [hub_event(doc) for doc in [*BASE, *_LEG_REPORTS[:6]]])
    project(state, AUTHORITY)
    assert state.memo.classified is not None and state.memo.classified.tracks
    for copied in (copy.deepcopy(state), pickle.loads(pickle.dumps(state))):
        assert copied == state and copied.memo.classified is None
