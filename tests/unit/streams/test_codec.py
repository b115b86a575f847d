"""The codec: bytes to events never raises (a Rejection says what to fix); state and events round-trip exactly."""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson
import pytest

from schemas.events import HUB_EVENT
from streams.codec import (
    MAX_EVENT_BYTES,
    Rejection,
    decode_event,
    decode_state,
    encode_entry,
    encode_event,
    encode_head,
    encode_record,
    encode_state,
    encode_status,
    entry_key,
    is_whole,
    read_state,
)
from streams.copies import Copy
from streams.merge import ShipmentState, apply, apply_all, project

from ..builders import AUTHORITY, SHIPMENT, Doc, booking_doc, example_journey_lines, hub_event, settlement_doc, tracking_doc


def encoded(doc: Any) -> bytes:
    return orjson.dumps(doc)


def rejection_of(raw: bytes | None) -> Rejection:
    result = decode_event(raw)
    assert isinstance(result, Rejection), f"expected a rejection, got {result!r}"
    return result


def padded_to(doc: Doc, size: int) -> bytes:
    """The document's JSON with trailing whitespace, `size` bytes long: still the same valid event."""
    raw = encoded(doc)
    return raw + b" " * (size - len(raw))


@pytest.fixture(scope="module")
def journey_state() -> ShipmentState:
    events = [decode_event(line) for line in example_journey_lines()]
    return apply_all(ShipmentState("SHP-2026-000042"), events)  # type: ignore[arg-type]


# --- rejections -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("raw", [b"", None])
def test_empty_message_is_rejected_as_empty(raw: bytes | None) -> None:
    assert rejection_of(raw).code == "empty"


@pytest.mark.parametrize("raw", [b"{", b"not json", b"{'single': 'quotes'}", b"\xff\xfe{}", b'{"a": NaN}', b"[" * 5000])
def test_invalid_json_is_rejected_as_invalid_json(raw: bytes) -> None:
    rejection = rejection_of(raw)
    assert rejection.code == "invalid_json"
    assert "JSON" in rejection.reason


@pytest.mark.parametrize(("raw", "kind"), [(b"[]", "list"), (b"[1, 2]", "list"), (b'"booking"', "str"), (b"42", "int"), (b"null", "NoneType")])
def test_json_that_is_not_an_object_is_rejected_naming_what_it_got(raw: bytes, kind: str) -> None:
    rejection = rejection_of(raw)
    assert rejection.code == "invalid_json"
    assert "JSON object" in rejection.reason
    assert kind in rejection.reason


@pytest.mark.parametrize(
    ("field", "value", "where"),
    [
        ("occurred_at", 1772323200, "occurred_at"),
        ("shipment_id", 42, "shipment_id"),
        ("retracted", "yes", "retracted"),
        ("classifier", None, "classifier"),
        ("payload", [], "payload"),
    ],
)
def test_wrong_type_is_rejected_naming_the_field(field: str, value: Any, where: str) -> None:
    rejection = rejection_of(encoded(dict(tracking_doc("departed"), **{field: value})))
    assert rejection.code == "invalid_event"
    assert f"tracking.{where}" in rejection.reason


def test_wrong_type_inside_the_payload_is_rejected_with_its_path() -> None:
    doc = tracking_doc("departed")
    doc["payload"]["leg"] = "one"
    assert "tracking.payload.leg" in rejection_of(encoded(doc)).reason


def test_unknown_event_type_is_rejected_naming_event_type_and_the_known_ones() -> None:
    rejection = rejection_of(encoded(dict(tracking_doc("departed"), event_type="carrier_pigeon")))
    assert rejection.code == "invalid_event"
    assert "event_type" in rejection.reason
    assert "'customs'" in rejection.reason
    assert "'tracking'" in rejection.reason


def test_missing_event_type_is_rejected_naming_event_type() -> None:
    doc = tracking_doc("departed")
    del doc["event_type"]
    assert "event_type" in rejection_of(encoded(doc)).reason


def test_float_amount_is_rejected_naming_the_amount_and_the_fix() -> None:
    rejection = rejection_of(encoded(settlement_doc([("FRT", 99.95, "USD")])))
    assert rejection.code == "invalid_event"
    assert "settlement.payload.charges.0.amount.amount" in rejection.reason
    assert "string" in rejection.reason


def test_payload_over_the_size_limit_is_rejected_before_parsing() -> None:
    rejection = rejection_of(padded_to(tracking_doc("departed"), MAX_EVENT_BYTES + 1))
    assert rejection.code == "too_large"
    assert str(MAX_EVENT_BYTES) in rejection.reason


def test_payload_of_exactly_the_size_limit_is_decoded() -> None:
    event = decode_event(padded_to(tracking_doc("departed"), MAX_EVENT_BYTES))
    assert event == hub_event(tracking_doc("departed"))


def test_many_errors_are_summarised_with_a_count_of_the_rest() -> None:
    doc = booking_doc()
    for leg in doc["payload"]["legs"]:
        leg.update(mode=0, origin="x", destination="y", carrier="Not A Party")
    reason = rejection_of(encoded(doc)).reason
    assert reason.count(";") == 5
    assert reason.endswith("more")


@pytest.mark.parametrize("value", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_timestamp_that_leaves_the_calendar_in_utc_is_rejected_not_raised(value: str) -> None:
    rejection = rejection_of(encoded(dict(tracking_doc("departed"), occurred_at=value)))
    assert rejection.code == "invalid_event"
    assert "occurred_at" in rejection.reason


# --- round trips ----------------------------------------------------------------------------------------------------


def test_every_example_event_round_trips_through_encode_event() -> None:
    for line in example_journey_lines():
        event = decode_event(line)
        assert decode_event(encode_event(event)) == event  # type: ignore[arg-type]
        assert HUB_EVENT.validate_python(orjson.loads(encode_event(event))) == event  # type: ignore[arg-type]


def test_encoded_event_keeps_amounts_as_strings_and_times_in_utc() -> None:
    doc = settlement_doc([("FRT", "1250.10", "USD")], leg=1)
    doc["occurred_at"] = "2026-03-02T09:00:00+08:00"
    document = orjson.loads(encode_event(hub_event(doc)))
    assert document["payload"]["charges"][0]["amount"]["amount"] == "1250.10"
    assert document["occurred_at"] == "2026-03-02T01:00:00Z"


def test_state_round_trips_exactly(journey_state: ShipmentState) -> None:
    restored = decode_state(encode_state(journey_state))
    assert restored == journey_state
    assert restored.version == journey_state.version == len(example_journey_lines())
    assert project(restored, AUTHORITY) == project(journey_state, AUTHORITY)
    assert encode_state(restored) == encode_state(journey_state)


def test_state_encoding_does_not_depend_on_arrival_order(journey_state: ShipmentState) -> None:
    events = [decode_event(line) for line in reversed(example_journey_lines())]
    reversed_state = apply_all(ShipmentState("SHP-2026-000042"), events)  # type: ignore[arg-type]
    assert encode_state(reversed_state) == encode_state(journey_state)


def test_a_state_stored_with_earlier_copies_of_other_events_keeps_only_the_money_ones() -> None:
    """States stored before the merge kept only the money's earlier copies (streams.merge.apply) may hold earlier
    copies of any event: read back, only the money's stay (nothing reads the others, and they would count against
    their source's quota), and every fingerprint stays seen."""
    first = tracking_doc("departed", leg=1, occurred=24)
    later = {**first, "occurred_at": "2026-03-02T05:00:00Z", "revised_at": "2026-03-03T00:00:00Z"}
    charge = settlement_doc([("FRT", "100.00", "USD")], leg=1)
    corrected = {**settlement_doc([("FRT", "120.00", "USD")], leg=1), "revised_at": "2026-03-03T00:00:00Z"}
    state = apply_all(ShipmentState(SHIPMENT), [hub_event(doc) for doc in [booking_doc(), first, later, charge, corrected]])
    tracking_key, charge_key = hub_event(first).key, hub_event(charge).key
    assert set(state.superseded) == {charge_key}
    old = dataclasses.replace(state, superseded={**state.superseded, tracking_key: (Copy.of(hub_event(first)),)})
    restored = decode_state(encode_state(old))
    assert set(restored.superseded) == {charge_key} and restored.seen == old.seen
    assert restored == state and project(restored, AUTHORITY) == project(old, AUTHORITY)


def stored_split(state: ShipmentState) -> dict[bytes, bytes]:
    """The shipments store holding `state` as a head and an entry per event."""
    key = state.shipment_id.encode()
    events = state.copies.keys() | state.superseded.keys()
    return {key: encode_head(state), **{entry_key(key, event): encode_entry(state, event) for event in events}}


def test_a_state_stored_as_a_head_and_its_entries_reads_back_exactly(journey_state: ShipmentState) -> None:
    charge = settlement_doc([("FRT", "100.00", "USD")], leg=1)
    corrected = {**settlement_doc([("FRT", "120.00", "USD")], leg=1), "revised_at": "2026-03-03T00:00:00Z"}
    state = apply_all(journey_state, [hub_event({**doc, "shipment_id": journey_state.shipment_id}) for doc in (charge, corrected)])
    assert state.superseded  # the money's earlier copy is kept in its event's entry
    store = stored_split(state)
    assert read_state(store.get, state.shipment_id) == state
    assert read_state(store.get, "SHP-ELSEWHERE") is None
    head = store[state.shipment_id.encode()]
    assert not is_whole(head) and is_whole(encode_state(state)) and is_whole(encode_state(ShipmentState("SHP-EMPTY")))
    assert len(head) < len(encode_state(state)) / 5  # fingerprints and keys, not the events
    # the layout before 2026-12-05 is still read, under the same key
    assert read_state({state.shipment_id.encode(): encode_state(state)}.get, state.shipment_id) == state


def test_a_head_whose_entry_is_missing_is_a_hub_bug_and_raises(journey_state: ShipmentState) -> None:
    store = stored_split(journey_state)
    key = journey_state.shipment_id.encode()
    del store[entry_key(key, sorted(journey_state.copies)[3])]
    with pytest.raises(LookupError, match="missing"):
        read_state(store.get, journey_state.shipment_id)


def test_empty_state_round_trips() -> None:
    assert decode_state(encode_state(ShipmentState("SHP-EMPTY"))) == ShipmentState("SHP-EMPTY")


def test_restored_state_still_recognises_copies_it_has_seen(journey_state: ShipmentState) -> None:
    restored = decode_state(encode_state(journey_state))
    event = decode_event(example_journey_lines()[5])
    assert apply(restored, event) is restored  # type: ignore[arg-type]


def test_record_encoding_is_its_json(journey_state: ShipmentState) -> None:
    record = project(journey_state, AUTHORITY)
    assert orjson.loads(encode_record(record)) == orjson.loads(record.model_dump_json())


def test_status_message_carries_the_record_and_the_copies_applied(journey_state: ShipmentState) -> None:
    record = project(journey_state, AUTHORITY)
    copies = sorted(journey_state.copies.values(), key=lambda copy: copy.fingerprint)[:2]
    document = orjson.loads(encode_status(record, copies))
    assert document["record"]["version"] == len(example_journey_lines())
    assert [item["fingerprint"] for item in document["applied"]] == [copy.fingerprint for copy in copies]
    assert [HUB_EVENT.validate_python(item["event"]) for item in document["applied"]] == [c.event for c in copies]
