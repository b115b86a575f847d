"""Invariants of the merge, checked on generated journeys: order and duplicates do not matter, re-applying is a
no-op, everything round-trips through JSON, and no input bytes make the decoder raise."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.events import HUB_EVENT, HubEvent
from schemas.record import ShipmentRecord
from schemas.status import PRECEDENCE
from streams.codec import Rejection, decode_event, decode_state, encode_event, encode_state
from streams.merge import ShipmentState, apply, apply_all, fingerprint, project

from ..builders import AUTHORITY
from ..strategies import FAMILIES, SHIPMENT, journeys, json_text, json_values, mutated_events

# A journey is a few dozen events by nature: its smallest example is large and slow to build, and that is fine.
_JOURNEY_SIZED = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example]
PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=_JOURNEY_SIZED)
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=_JOURNEY_SIZED)


def record_of(events: list[HubEvent]) -> ShipmentRecord:
    return project(apply_all(ShipmentState(SHIPMENT), events), AUTHORITY)


def with_duplicates_shuffled(data: st.DataObject, events: list[HubEvent]) -> list[HubEvent]:
    extra = data.draw(st.lists(st.sampled_from(events), max_size=len(events)), label="duplicates")
    return data.draw(st.permutations(events + extra), label="arrival order")


def cited_keys(record: ShipmentRecord) -> set[str]:
    """Every event key the record names as the source of something."""
    keys: set[str] = set(record.awaiting_placement)
    keys |= {k for k in (record.booking_set_by, record.location_set_by) if k}
    if record.through_document:
        keys.add(record.through_document.set_by)
    if record.insurance.policy:
        keys.add(record.insurance.policy.set_by)
    keys |= set(record.insurance.unmatched_updates)
    keys |= {k for k in [record.booking_status_set_by] if k}
    keys |= {k for claim in record.claims for k in [*claim.evidence, claim.status_set_by] if k}
    keys |= {r.event for r in record.rejected} | {h.set_by for h in record.handovers}
    keys |= {c.set_by for c in record.journey_charges}
    for leg in record.legs:
        keys |= {k for k in [leg.status_set_by] if k}
        keys |= {m.set_by for m in leg.milestones + leg.exceptions + leg.unmapped}
        keys |= {d.set_by for d in leg.documents} | {c.set_by for c in leg.charges}
    return keys


# --- (a) order and duplicates ---------------------------------------------------------------------------------------


@PROPERTY
@given(events=journeys, data=st.data())
def test_any_arrival_order_with_any_duplicates_gives_the_same_record(events: list[HubEvent], data: st.DataObject) -> None:
    expected_state = apply_all(ShipmentState(SHIPMENT), events)
    shuffled_state = apply_all(ShipmentState(SHIPMENT), with_duplicates_shuffled(data, events))
    assert shuffled_state == expected_state
    expected, shuffled = project(expected_state, AUTHORITY), project(shuffled_state, AUTHORITY)
    assert shuffled == expected
    assert shuffled.model_dump_json() == expected.model_dump_json()


# --- (b) idempotence ------------------------------------------------------------------------------------------------


@PROPERTY
@given(events=journeys, data=st.data())
def test_reapplying_any_applied_event_changes_nothing(events: list[HubEvent], data: st.DataObject) -> None:
    state = apply_all(ShipmentState(SHIPMENT), events)
    again = data.draw(st.sampled_from(events), label="re-applied")
    assert apply(state, again) is state
    redelivered = decode_event(encode_event(again))  # the same copy as it comes back off the wire
    assert apply(state, redelivered) is state  # type: ignore[arg-type]


# --- counting and provenance ----------------------------------------------------------------------------------------


@PROPERTY
@given(events=journeys)
def test_record_counts_every_copy_and_cites_only_live_winning_copies(events: list[HubEvent]) -> None:
    state = apply_all(ShipmentState(SHIPMENT), events)
    record = project(state, AUTHORITY)
    assert record.version == len({fingerprint(event) for event in events})
    assert record.events_applied + record.retracted_events == len({event.key for event in events})
    live = {key for key, copy in state.copies.items() if not copy.event.retracted}
    assert cited_keys(record) <= live


@PROPERTY
@given(events=journeys)
def test_estimates_and_plans_never_set_an_actual(events: list[HubEvent]) -> None:
    state = apply_all(ShipmentState(SHIPMENT), events)
    record = project(state, AUTHORITY)
    # Keep each identity's winning copy only when it is an actual: the identities left out were plans or estimates.
    actual_only = record_of([copy.event for copy in state.copies.values() if copy.event.classifier == "ACT"])
    assert [leg.status for leg in record.legs] == [leg.status for leg in actual_only.legs]
    assert [(leg.departure.actual, leg.arrival.actual) for leg in record.legs] == [
        (leg.departure.actual, leg.arrival.actual) for leg in actual_only.legs
    ]
    assert (record.status, record.current_location) == (actual_only.status, actual_only.current_location)


@PROPERTY
@given(events=journeys, data=st.data())
def test_a_new_actual_report_never_moves_a_leg_backwards(events: list[HubEvent], data: st.DataObject) -> None:
    before = record_of(events)
    if not before.legs:
        return
    leg = data.draw(st.sampled_from(before.legs), label="leg")
    report = data.draw(st.sampled_from(sorted(PRECEDENCE)), label="status")
    late = HUB_EVENT.validate_python(
        {
            "event_id": "late-report",
            "source": leg.carrier,  # only the leg's own carrier (or the MTO) may report on it
            "event_type": "tracking",
            "shipment_id": SHIPMENT,
            "occurred_at": "2026-05-01T00:00:00Z",
            "recorded_at": "2026-05-01T00:00:00Z",
            "payload": {"status": report, "raw_code": "X", "code_list": "late", "leg": leg.sequence},
        }
    )
    after = record_of(events + [late])
    rank: dict[str, int] = {"planned": 0, **PRECEDENCE}
    for old, new in zip(before.legs, after.legs):
        assert rank[new.status] >= rank[old.status]
    assert rank[after.legs[leg.sequence - 1].status] >= PRECEDENCE[report]


# --- (c) JSON round trips -------------------------------------------------------------------------------------------


@PROPERTY
@given(events=journeys)
def test_every_event_record_and_state_round_trips_through_json(events: list[HubEvent]) -> None:
    for event in events:
        raw = encode_event(event)
        assert HUB_EVENT.validate_python(orjson.loads(raw)) == event
        assert decode_event(raw) == event
        assert encode_event(HUB_EVENT.validate_python(orjson.loads(raw))) == raw
    state = apply_all(ShipmentState(SHIPMENT), events)
    assert decode_state(encode_state(state)) == state
    record = project(state, AUTHORITY)
    restored = ShipmentRecord.model_validate_json(record.model_dump_json())
    assert restored == record
    assert restored.model_dump_json() == record.model_dump_json()


# --- (d) the decoder never raises -----------------------------------------------------------------------------------


def assert_event_or_rejection(raw: bytes) -> None:
    result = decode_event(raw)
    if isinstance(result, Rejection):
        assert result.code in {"empty", "too_large", "invalid_json", "invalid_event"}
        assert result.reason
    else:
        assert decode_event(encode_event(result)) == result


@FUZZ
@given(raw=st.binary(max_size=512))
def test_decoder_returns_an_event_or_a_rejection_for_any_bytes(raw: bytes) -> None:
    assert_event_or_rejection(raw)


@FUZZ
@given(raw=mutated_events())
def test_decoder_returns_an_event_or_a_rejection_for_any_mutated_event(raw: bytes) -> None:
    assert_event_or_rejection(raw)


@FUZZ
@given(value=json_values)
def test_decoder_returns_an_event_or_a_rejection_for_any_json_value(value: Any) -> None:
    assert_event_or_rejection(orjson.dumps(value))


@FUZZ
@given(family=st.sampled_from(FAMILIES), payload=json_values, envelope=st.dictionaries(json_text, json_values, max_size=6))
def test_decoder_returns_an_event_or_a_rejection_for_any_payload_of_a_known_event_type(
    family: str, payload: Any, envelope: dict[str, Any]
) -> None:
    assert_event_or_rejection(orjson.dumps({**envelope, "event_type": family, "payload": payload}))
