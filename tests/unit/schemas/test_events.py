"""The canonical events: strict parsing of money, time, weights, booking legs, documents and the envelope."""

from __future__ import annotations

import copy
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from schemas.base import Money, UtcDatetime, Weight
from schemas.events import HUB_EVENT, BookingEvent, ClaimUpdate, PolicyBound, TrackingEvent, WaybillEvent
from schemas.identifiers import TransportMode

from ..builders import (
    Doc,
    booking_doc,
    claim_doc,
    hub_event,
    policy_doc,
    settlement_doc,
    tracking_doc,
    waybill_doc,
)

TIMESTAMP = TypeAdapter(UtcDatetime)


def rejected(doc: Doc) -> str:
    """The validation message for a document that must be refused."""
    with pytest.raises(ValidationError) as caught:
        HUB_EVENT.validate_python(doc)
    return str(caught.value)


def changed(doc: Doc, path: tuple[Any, ...], value: Any) -> Doc:
    result = copy.deepcopy(doc)
    target = result
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return result


def removed(doc: Doc, path: tuple[Any, ...]) -> Doc:
    result = copy.deepcopy(doc)
    target = result
    for step in path[:-1]:
        target = target[step]
    del target[path[-1]]
    return result


# --- money ----------------------------------------------------------------------------------------------------------


def test_money_sent_as_a_float_is_rejected_with_a_clear_message() -> None:
    reason = rejected(settlement_doc([("FRT", 1250.5, "USD")]))
    assert "payload.charges.0.amount.amount" in reason
    assert "never a float" in reason


@pytest.mark.parametrize("amount", ["1250.00", 1250, "-75.5", "0"])
def test_money_sent_as_a_string_or_an_integer_is_an_exact_decimal(amount: Any) -> None:
    event = hub_event(settlement_doc([("FRT", amount, "USD")]))
    assert event.payload.charges[0].amount.amount == Decimal(str(amount))  # type: ignore[union-attr]


@pytest.mark.parametrize("amount", [True, "NaN", "Infinity", "12,50", "twelve", None])
def test_money_that_is_not_a_finite_decimal_is_rejected(amount: Any) -> None:
    assert "amount" in rejected(settlement_doc([("FRT", amount, "USD")]))


def test_money_with_more_than_four_decimal_places_is_rejected() -> None:
    with pytest.raises(ValidationError, match="decimal places"):
        Money.model_validate({"amount": "1.00001", "currency": "USD"})


def test_money_needs_an_iso_4217_currency() -> None:
    assert "amount.currency" in rejected(settlement_doc([("FRT", "10.00", "usd")]))
    assert "ISO 4217" in rejected(settlement_doc([("FRT", "10.00", "ABC")]))


# --- time -----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["occurred_at", "recorded_at", "revised_at"])
def test_naive_timestamp_is_rejected(field: str) -> None:
    reason = rejected(changed(tracking_doc("departed"), (field,), "2026-03-01T08:00:00"))
    assert field in reason
    assert "timezone offset" in reason


def test_timestamp_with_an_offset_is_normalised_to_utc() -> None:
    event = hub_event(changed(tracking_doc("departed"), ("occurred_at",), "2026-03-02T09:00:00+08:00"))
    assert event.occurred_at == datetime(2026, 3, 2, 1, 0, tzinfo=timezone.utc)
    assert event.occurred_at.utcoffset() == timedelta(0)
    assert event.occurred_at.tzinfo is timezone.utc


def test_the_same_instant_in_two_offsets_gives_equal_events() -> None:
    in_utc = hub_event(changed(tracking_doc("departed"), ("occurred_at",), "2026-03-02T01:00:00Z"))
    in_kolkata = hub_event(changed(tracking_doc("departed"), ("occurred_at",), "2026-03-02T06:30:00+05:30"))
    assert in_utc == in_kolkata


@pytest.mark.parametrize("value", ["yesterday", "2026-13-01T00:00:00Z", 1772323200, 1772323200.0, "", None])
def test_timestamp_that_is_not_iso_8601_text_is_rejected(value: Any) -> None:
    assert "occurred_at" in rejected(changed(tracking_doc("departed"), ("occurred_at",), value))


@pytest.mark.parametrize("value", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_timestamp_outside_the_utc_calendar_is_a_validation_error(value: str) -> None:
    # Converting these to UTC leaves datetime's range (year 0 / year 10000): that must be a validation error,
    # not an OverflowError escaping the parser.
    with pytest.raises(ValidationError, match="occurred_at"):
        HUB_EVENT.validate_python(changed(tracking_doc("departed"), ("occurred_at",), value))


def test_python_datetime_without_timezone_is_rejected() -> None:
    with pytest.raises(ValidationError, match="timezone offset"):
        TIMESTAMP.validate_python(datetime(2026, 3, 1, 8, 0))


# --- weight ---------------------------------------------------------------------------------------------------------


def test_negative_gross_weight_is_rejected() -> None:
    reason = rejected(changed(booking_doc(), ("payload", "cargo", "gross_weight_kg"), "-1.000"))
    assert "gross_weight_kg" in reason


def test_negative_weight_is_rejected() -> None:
    with pytest.raises(ValidationError, match="greater than or equal to 0"):
        Weight.model_validate({"kg": "-0.001"})


def test_zero_weight_is_accepted() -> None:
    assert Weight.model_validate({"kg": "0"}).kg == Decimal(0)


# --- booking legs ---------------------------------------------------------------------------------------------------


def test_valid_booking_parses_with_its_legs_in_order() -> None:
    event = hub_event(booking_doc())
    assert isinstance(event, BookingEvent)
    assert [leg.sequence for leg in event.payload.legs] == [1, 2, 3]
    assert [leg.mode for leg in event.payload.legs] == [TransportMode.ROAD, TransportMode.RAIL, TransportMode.MARITIME]


def test_booking_legs_must_chain_destination_to_origin() -> None:
    reason = rejected(changed(booking_doc(), ("payload", "legs", 1, "origin"), "CNSHA"))
    assert "leg 2 starts at CNSHA but leg 1 ends at CNCKG" in reason


@pytest.mark.parametrize("sequences", [[1, 3, 2], [2, 3, 4], [1, 1, 2], [0, 1, 2]])
def test_booking_legs_must_be_numbered_one_to_n_in_order(sequences: list[int]) -> None:
    doc = booking_doc()
    for leg, sequence in zip(doc["payload"]["legs"], sequences):
        leg["sequence"] = sequence
    assert "legs" in rejected(doc)


def test_booking_leg_cannot_start_and_end_at_the_same_place() -> None:
    reason = rejected(booking_doc([(3, "carrier.road", "CNCTU", "CNCTU")]))
    assert "starts and ends at CNCTU" in reason


def test_booking_needs_at_least_one_leg() -> None:
    assert "legs" in rejected(booking_doc([]))


def with_first_leg_mode(code: Any) -> Doc:
    return changed(booking_doc(), ("payload", "legs", 0, "mode"), code)


@pytest.mark.parametrize("code", [1, 2, 3, 4, 5, 6, 7, 8])
def test_rec19_mode_codes_one_to_eight_are_accepted(code: int) -> None:
    event = hub_event(with_first_leg_mode(code))
    assert event.payload.legs[0].mode is TransportMode(code)  # type: ignore[union-attr]


@pytest.mark.parametrize("code", [0, 9, -1])
def test_mode_code_outside_one_to_eight_is_rejected_naming_rec19(code: int) -> None:
    reason = rejected(with_first_leg_mode(code))
    assert "legs.0.mode" in reason
    assert "Rec 19 mode code (1-8)" in reason


@pytest.mark.parametrize("code", ["3", True, 3.0, "ROAD"])
def test_mode_code_of_another_type_is_rejected(code: Any) -> None:
    assert "legs.0.mode" in rejected(with_first_leg_mode(code))


def test_strict_parsing_refuses_numbers_sent_as_text() -> None:
    assert "pieces" in rejected(changed(booking_doc(), ("payload", "cargo", "pieces"), "4"))
    assert "leg" in rejected(changed(tracking_doc("departed"), ("payload", "leg"), "1"))


# --- closed models --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        ("note",),
        ("payload", "note"),
        ("payload", "cargo", "note"),
        ("payload", "legs", 0, "note"),
        ("payload", "declared_value", "note"),
    ],
)
def test_unknown_field_is_rejected_at_every_level(path: tuple[Any, ...]) -> None:
    reason = rejected(changed(booking_doc(), path, "surprise"))
    assert "note" in reason
    assert "Extra inputs are not permitted" in reason


def test_events_are_immutable() -> None:
    event = hub_event(tracking_doc("departed"))
    with pytest.raises(ValidationError):
        event.classifier = "EST"  # type: ignore[misc]


# --- waybills -------------------------------------------------------------------------------------------------------


def test_through_document_names_no_leg() -> None:
    event = hub_event(waybill_doc("multimodal_transport_document", "MTD-0001", source="mto.test"))
    assert isinstance(event, WaybillEvent)
    assert event.payload.leg is None
    reason = rejected(waybill_doc("multimodal_transport_document", "MTD-0001", leg=1))
    assert "covers the whole journey" in reason


@pytest.mark.parametrize("kind", ["cmr", "sea_waybill", "bill_of_lading", "rail_waybill", "air_waybill"])
def test_carrier_document_must_name_its_leg(kind: str) -> None:
    reason = rejected(waybill_doc(kind, "020-12345675", leg=None, source="carrier.road"))
    assert "set `leg`" in reason


def test_air_waybill_document_number_with_valid_check_digit_is_accepted() -> None:
    event = hub_event(waybill_doc("air_waybill", "020-12345675", leg=1))
    assert event.payload.document_number == "020-12345675"  # type: ignore[union-attr]


def test_air_waybill_document_number_with_wrong_check_digit_is_rejected() -> None:
    reason = rejected(waybill_doc("air_waybill", "020-12345676", leg=1))
    assert "mod-7 check digit" in reason


def test_other_document_numbers_carry_no_check_digit() -> None:
    hub_event(waybill_doc("sea_waybill", "020-12345676", leg=3))


# --- envelope -------------------------------------------------------------------------------------------------------


def test_event_without_shipment_id_or_reference_is_rejected() -> None:
    reason = rejected(tracking_doc("departed", shipment_id=None))
    assert "shipment_id or at least one carrier reference" in reason


def test_event_addressed_by_a_carrier_reference_alone_is_accepted() -> None:
    doc = tracking_doc("departed", shipment_id=None)
    doc["references"] = [{"kind": "container", "value": "CSQU3054383"}]
    event = hub_event(doc)
    assert event.shipment_id is None
    assert event.references[0].value == "CSQU3054383"


def test_event_identity_key_is_source_and_event_id() -> None:
    event = hub_event(tracking_doc("departed", event_id="e/1", source="carrier.road"))
    assert event.key == "carrier.road/e/1"


def test_classifier_defaults_to_actual_and_is_one_of_pln_est_act() -> None:
    doc = removed(tracking_doc("departed"), ("classifier",))
    assert hub_event(doc).classifier == "ACT"
    assert "classifier" in rejected(changed(doc, ("classifier",), "GUESS"))


def test_unknown_event_type_is_rejected() -> None:
    assert "event_type" in rejected(changed(tracking_doc("departed"), ("event_type",), "carrier_pigeon"))


@pytest.mark.parametrize("status", ["departed", "damaged", "unknown"])
def test_tracking_status_is_one_of_the_canonical_vocabulary(status: str) -> None:
    assert isinstance(hub_event(tracking_doc(status)), TrackingEvent)


def test_tracking_status_outside_the_vocabulary_is_rejected() -> None:
    assert "status" in rejected(tracking_doc("teleported"))


def test_insurance_payload_is_chosen_by_its_action() -> None:
    assert isinstance(hub_event(policy_doc()).payload, PolicyBound)
    assert isinstance(hub_event(claim_doc("CLM-1", "opened", event_id="c1")).payload, ClaimUpdate)
    assert "action" in rejected(changed(policy_doc(), ("payload", "action"), "cancel"))


def test_settlement_needs_at_least_one_charge() -> None:
    assert "charges" in rejected(settlement_doc([]))
