"""The hub's clock: cargo not delivered 90 days after the agreed date is presumed lost, through an ordinary event."""

from __future__ import annotations

from datetime import timedelta

from schemas.events import HUB_EVENT, TrackingEvent
from streams.claims import PRESUMED_LOSS_CODE_LIST
from streams.clock import CLOCK_SOURCE, PRESUMED_LOSS_AFTER, deadline, presumed_loss
from streams.codec import decode_event, encode_event
from streams.copies import fingerprint
from streams.merge import ShipmentState, apply, apply_all, project

from ..builders import AUTHORITY, SHIPMENT, Doc, booking_doc, record_of, state_of, tracking_doc, when
from .test_booking_lifecycle import decision
from .test_custody import handover_doc

AGREED = 200  # hours after T0: the requested delivery
DUE = when(AGREED) + timedelta(days=90)
MOMENT = timedelta(microseconds=1)


def booking_with_delivery_date(hours: float | None = AGREED) -> Doc:
    doc = booking_doc()
    if hours is not None:
        doc["payload"]["requested_delivery"] = when(hours).isoformat()
    return doc


def in_transit(*more: Doc) -> ShipmentState:
    return state_of(booking_with_delivery_date(), tracking_doc("departed", leg=1, occurred=30), *more)


def report_for(state: ShipmentState) -> TrackingEvent:
    report = presumed_loss(project(state, AUTHORITY), DUE)
    assert report is not None
    return report


# --- the deadline -----------------------------------------------------------------------------------------------------


def test_deadline_is_ninety_days_after_the_requested_delivery() -> None:
    assert PRESUMED_LOSS_AFTER == timedelta(days=90)
    assert deadline(project(in_transit(), AUTHORITY)) == DUE
    assert deadline(record_of(booking_with_delivery_date())) == DUE  # booked but never moved is not delivered either


def test_no_deadline_without_a_booking_or_a_requested_delivery() -> None:
    assert deadline(record_of(tracking_doc("departed", leg=1, occurred=30))) is None
    record = record_of(booking_with_delivery_date(None), tracking_doc("departed", leg=1, occurred=30))
    assert deadline(record) is None
    assert presumed_loss(record, DUE + timedelta(days=3650)) is None


def test_no_deadline_once_delivered() -> None:
    record = project(in_transit(tracking_doc("delivered", leg=3, occurred=AGREED + 500)), AUTHORITY)
    assert record.status == "delivered"
    assert deadline(record) is None
    assert presumed_loss(record, DUE + timedelta(days=1)) is None


def test_no_deadline_after_cancellation_or_rejection() -> None:
    for action in ("cancelled", "rejected"):
        record = project(in_transit(decision(action, event_id="decision", occurred=5)), AUTHORITY)
        assert record.status == action
        assert deadline(record) is None
        assert presumed_loss(record, DUE + timedelta(days=1)) is None


def test_no_deadline_once_the_consignee_has_taken_the_cargo_over() -> None:
    # The final carrier's signed handover to the consignee (packages counted, weight taken) is proof of delivery even
    # when the carrier never sends a `delivered` status; presuming that cargo lost 90 days later opens a false claim.
    record = project(in_transit(handover_doc(3, None, occurred=AGREED - 10)), AUTHORITY)
    assert record.custody[-1].role == "consignee"
    assert deadline(record) is None
    assert presumed_loss(record, DUE + timedelta(days=1)) is None


# --- the report -------------------------------------------------------------------------------------------------------


def test_no_report_before_the_deadline() -> None:
    assert presumed_loss(project(in_transit(), AUTHORITY), DUE - MOMENT) is None


def test_report_at_and_after_the_deadline_is_byte_identical() -> None:
    record = project(in_transit(), AUTHORITY)
    reports = [presumed_loss(record, now) for now in (DUE, DUE + MOMENT, DUE + timedelta(days=400))]
    assert all(report is not None for report in reports)
    assert len({encode_event(report) for report in reports if report is not None}) == 1
    assert len({fingerprint(report) for report in reports if report is not None}) == 1


def test_report_is_an_actual_loss_on_the_clocks_code_list_dated_at_the_deadline() -> None:
    report = report_for(in_transit())
    assert (report.source, report.shipment_id, report.event_id) == (CLOCK_SOURCE, SHIPMENT, f"presumed-loss-{SHIPMENT}")
    assert (report.occurred_at, report.recorded_at, report.classifier) == (DUE, DUE, "ACT")
    assert (report.payload.status, report.payload.code_list, report.payload.leg) == ("lost", PRESUMED_LOSS_CODE_LIST, None)


def test_report_passes_the_hubs_parsing_path_like_any_carriers_event() -> None:
    report = report_for(in_transit())
    assert decode_event(encode_event(report)) == report
    assert HUB_EVENT.validate_python(HUB_EVENT.dump_python(report, mode="json")) == report


def test_applying_the_report_twice_changes_nothing() -> None:
    state = in_transit()
    once = apply(state, report_for(state))
    assert once is not state
    assert apply(once, report_for(state)) is once
    later = presumed_loss(project(state, AUTHORITY), DUE + timedelta(days=30))
    assert later is not None and apply(once, later) is once
    assert project(once, AUTHORITY).version == state.version + 1


def test_folding_the_report_in_opens_a_presumed_loss_claim_that_is_not_localised() -> None:
    state = in_transit()
    record = project(apply(state, report_for(state)), AUTHORITY)
    [claim] = record.claims
    assert claim.claim_id == f"CLM-{SHIPMENT}-presumed_loss-NL"
    assert (claim.kind, claim.leg, claim.localised, claim.custody_carrier, claim.liable_carrier) == (
        "presumed_loss",
        None,
        False,
        None,
        None,
    )
    assert (claim.evidence, claim.occurred_at, claim.status) == ([f"{CLOCK_SOURCE}/presumed-loss-{SHIPMENT}"], DUE, "opened")
    assert record.awaiting_placement == []
    assert all(leg.exceptions == [] for leg in record.legs)  # the clock knows no custody: no leg carries it


def test_no_deadline_and_no_second_report_once_a_presumed_loss_claim_exists() -> None:
    state = in_transit()
    record = project(apply(state, report_for(state)), AUTHORITY)
    assert deadline(record) is None
    assert presumed_loss(record, DUE + timedelta(days=365)) is None


def test_presumed_loss_claim_stands_beside_a_carriers_own_loss_report() -> None:
    state = in_transit(tracking_doc("lost", leg=2, occurred=60, event_id="lost-2"))
    record = project(state, AUTHORITY)
    assert [c.kind for c in record.claims] == ["loss"]
    assert deadline(record) == DUE  # a carrier's loss report is not the clock's presumption
    after = project(apply(state, report_for(state)), AUTHORITY)
    assert sorted((c.kind, c.leg) for c in after.claims) == [("loss", 2), ("presumed_loss", None)]


def test_report_folds_to_the_same_record_whatever_the_arrival_order() -> None:
    state = in_transit()
    report = report_for(state)
    report_first = apply_all(apply(ShipmentState(SHIPMENT), report), [copy.event for copy in state.copies.values()])
    assert project(report_first, AUTHORITY) == project(apply(state, report), AUTHORITY)
