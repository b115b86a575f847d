"""The merge step (streams.step): what one shipment's step stores and sends, and its replay invariants on generated
journeys: a replay emits no new version (and, with the re-send off, nothing at all), any split of a batch into steps
ends where one step ends, and a refusal is dead-lettered once, when it first appears."""

from __future__ import annotations

import random
from unittest.mock import patch
from pathlib import Path
from typing import Sequence

import orjson
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from schemas.events import CarrierReference, HubEvent
from schemas.record import ShipmentRecord
from streams.clock import deadline
from streams.codec import encode_entry, encode_event, encode_head, encode_state, encode_status, entry_key
from streams.copies import Copy
from streams.merge import ShipmentState, apply_all, project
from streams.outbound import claim_messages, settlement_messages
from streams.references import (
    REFERENCE_MESSAGE,
    RegisterMessage,
    Registration,
    reference_key,
    register_messages,
    registrations,
)
from streams import step as step_module
from streams.step import NOT_ENTITLED, StepResult, Stored, merge_step

from ..builders import AUTHORITY, SHIPMENT, booking_doc, hub_event, settlement_doc, tracking_doc
from ..strategies import SHIPMENT as PROP_SHIPMENT
from ..strategies import journeys

_JOURNEY_SIZED = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example]
EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
PROPERTY = settings(max_examples=100, deadline=None, suppress_health_check=_JOURNEY_SIZED)

Items = list[tuple[int, HubEvent]]  # each event with its position in the input, standing in for its Kafka record


def step(stored: Stored | None, items: Items, *, resend: bool = False, shipment_id: str = PROP_SHIPMENT) -> StepResult[int]:
    return merge_step(shipment_id, stored, items, AUTHORITY, resend_on_replay=resend)


def after(stored: Stored | None, result: StepResult[int], warm: bool, store: dict[bytes, bytes] | None = None) -> Stored | None:
    """What the next step starts from: the state, record and registrations the step left (a warm cache), or only what
    its store holds. `store` stands in for the shipments store across steps (each step's writes go into it, warm or
    not); without it, only this step's writes."""
    if result.write is None:
        return stored
    write = result.write
    store = {} if store is None else store
    key = write.state.shipment_id.encode()
    store.update(write.puts(key))
    if warm:
        return Stored(write.state, write.record, write.registrations, write.whole)
    return Stored.decode(store[key], lambda event_key: store.get(entry_key(key, event_key)))


def arrivals(data: st.DataObject, events: list[HubEvent]) -> Items:
    """The journey with duplicates, in any order, numbered in arrival order."""
    extra = data.draw(st.lists(st.sampled_from(events), max_size=len(events)), label="duplicates")
    return list(enumerate(data.draw(st.permutations(events + extra), label="arrival order")))


def split(data: st.DataObject, items: Items) -> list[Items]:
    """Consecutive steps at random cuts; or the bookings in a step of their own after the rest (so that the events
    a booking shows to be refused came in an earlier step)."""
    if data.draw(st.booleans(), label="bookings last"):
        rest = [item for item in items if item[1].event_type != "booking"]
        return [rest, [item for item in items if item[1].event_type == "booking"]]
    cuts = sorted(data.draw(st.lists(st.integers(0, len(items)), max_size=6), label="cuts"))
    bounds = [0, *cuts, len(items)]
    return [items[start:end] for start, end in zip(bounds, bounds[1:])]


def not_entitled(record: ShipmentRecord | None) -> set[str]:
    return {r.event for r in record.rejected if r.kind == NOT_ENTITLED} if record is not None else set()


def said(results: Sequence[StepResult[int]]) -> set[tuple[str, int | None, str, str | None]]:
    """Every registration the steps sent: (reference, leg, valid from, valid until)."""
    out = set()
    for result in results:
        for message in result.references:
            incoming = REFERENCE_MESSAGE.validate_json(message.value)
            assert isinstance(incoming, RegisterMessage) and message.key == reference_key(incoming.registration.reference).encode()
            r = incoming.registration
            out.add((reference_key(r.reference), r.leg, r.valid_from.isoformat(), r.valid_until and r.valid_until.isoformat()))
    return out


def newly_said(before: list[Registration], after: list[Registration]) -> list[Registration]:
    """The registrations of `after` that say something `before` did not (the version alone does not count): what a
    version sends, by the definition, over every registration of both versions."""
    what = {(reference_key(r.reference), r.leg, r.valid_from, r.valid_until, tuple(r.parties)) for r in before}
    return [r for r in after if (reference_key(r.reference), r.leg, r.valid_from, r.valid_until, tuple(r.parties)) not in what]


def version_of(status: bytes) -> int:
    version = orjson.loads(status)["record"]["version"]
    assert isinstance(version, int)
    return version


# --- properties -----------------------------------------------------------------------------------------------------


@PROPERTY
@given(events=journeys, data=st.data())
def test_any_split_of_a_batch_into_steps_ends_where_one_step_ends(events: list[HubEvent], data: st.DataObject) -> None:
    # the state stored whole throughout (the default bound, far above these journeys), as a head and entries from
    # the first version (0), or split on the way, at a point that depends on the order
    bound = data.draw(st.sampled_from([step_module.SPLIT_STATE_BYTES, 0, 6_000]), label="split state bytes")
    with patch.object(step_module, "SPLIT_STATE_BYTES", bound):
        _any_split_ends_where_one_step_ends(events, data, bound)


def _any_split_ends_where_one_step_ends(events: list[HubEvent], data: st.DataObject, bound: int) -> None:
    items = arrivals(data, events)
    whole = step(None, items)
    assert whole.write is not None
    expected_state = apply_all(ShipmentState(PROP_SHIPMENT), events)
    expected = project(expected_state, AUTHORITY)
    assert whole.write.state == expected_state and whole.write.record == expected
    if whole.write.whole:
        assert whole.write.encoded == encode_state(expected_state) and len(whole.write.encoded) <= bound
        assert whole.write.entries == ()
    else:
        assert len(encode_state(expected_state)) > bound
        assert whole.write.encoded == encode_head(expected_state)
        assert dict(whole.write.entries) == {key: encode_entry(expected_state, key) for key in expected_state.copies}
    assert [refusal.source for refusal in whole.refusals] == [
        max(n for n, event in items if event.key == key) for key in [r.event for r in expected.rejected if r.kind == NOT_ENTITLED]
    ]  # one step from nothing: each refused event once, with the bytes it came in

    warm = data.draw(st.booleans(), label="warm")
    stored: Stored | None = None
    store: dict[bytes, bytes] = {}
    previous: ShipmentRecord | None = None
    results = []
    carried: list[str] = []
    for part in split(data, items):
        result = step(stored, part)
        results.append(result)
        assert result.applied + result.duplicates == len(part)
        if result.write is None:
            # nothing new: nothing stored, nothing sent (the re-send is off)
            assert result.applied == 0 and result.status is None and not (result.documents or result.claims or result.references or result.refusals)
            continue
        record = result.write.record
        assert result.status is not None and version_of(result.status) == record.version
        # what a warm cache keeps of the step's registrations is what its record registers, and each registration
        # the hub builds without validation validates back to itself
        registered = registrations(result.write.state, record)
        assert result.write.registrations.all() == registered
        assert all(Registration.model_validate_json(r.model_dump_json()) == r for r in registered)
        # what it sends (worked out from the identities of the events it took in, warm or cold) is what the record
        # registers and the previous version's did not say
        before = registrations(stored.state, previous) if stored is not None and previous is not None else []
        assert result.references == (register_messages(newly_said(before, registered)) if record.booking else [])
        # without the re-send (exactly-once) the version carries exactly the copies it took in: a copy is carried once
        applied = [copy["fingerprint"] for copy in orjson.loads(result.status)["applied"]]
        assert len(applied) == result.applied and set(applied) <= {Copy.of(event).fingerprint for _, event in part}
        carried += applied
        due = deadline(record)
        assert result.write.deadline == (due.isoformat().encode() if due is not None else None)
        assert result.documents == settlement_messages(previous, record)
        assert result.claims == claim_messages(previous, record)
        # a refusal goes out when it first appears, once, with the bytes it came in or as the event the state holds
        newly = [r for r in record.rejected if r.kind == NOT_ENTITLED and r.event not in not_entitled(previous)]
        arrived = {event.key: n for n, event in part}
        assert [(f.rejection.code, f.rejection.reason) for f in result.refusals] == [(r.kind, f"{r.event}: {r.reason}") for r in newly]
        for refusal, refused in zip(result.refusals, newly):
            event("a refusal of an event that came earlier" if refusal.held else "a refusal of an event in the step")
            if refused.event in arrived:
                assert (refusal.source, refusal.held) == (arrived[refused.event], None)
            else:
                assert refusal.source == part[-1][0]
                assert refusal.held == encode_event(result.write.state.copies[refused.event].event)
        stored, previous = after(stored, result, warm, store), record

    assert stored is not None and previous is not None
    assert stored.state == expected_state and previous == expected
    # With the state whole throughout, or split from the first version, the store holds the same bytes under the same
    # keys whatever the split and order: a split version wrote its head and the entries it changed, and the entries it
    # did not write are still right. Split on the way, it holds the same state (read back above); it is split if
    # the state ever passed the bound (a retraction may make it smaller again), whole otherwise.
    if bound in (0, step_module.SPLIT_STATE_BYTES):
        assert store == dict(whole.write.puts(PROP_SHIPMENT.encode()))
    elif not whole.write.whole:
        assert store == dict(whole.write.puts(PROP_SHIPMENT.encode()))  # split by then, whatever the order
    event(f"stored {'whole' if whole.write.whole else 'split'} at bound {bound}")
    assert previous.model_dump_json() == expected.model_dump_json()
    statuses = [version_of(result.status) for result in results if result.status is not None]
    assert statuses == sorted(set(statuses)), "a version was emitted twice or out of order"
    assert sum(result.applied for result in results) == expected_state.version == len({Copy.of(e).fingerprint for e in events})
    assert sorted(carried) == sorted({Copy.of(e).fingerprint for e in events}), "a copy carried twice, or never"
    # whatever the split, every registration the final record makes was sent
    final = {
        (reference_key(r.reference), r.leg, r.valid_from.isoformat(), r.valid_until and r.valid_until.isoformat())
        for r in registrations(expected_state, expected)
    }
    assert final <= said(results)


@PROPERTY
@given(events=journeys, data=st.data())
def test_stepping_the_same_items_again_emits_no_new_version_and_without_the_resend_nothing(
    events: list[HubEvent], data: st.DataObject
) -> None:
    items = arrivals(data, events)
    first = step(None, items)
    assert first.write is not None
    stored = after(None, first, data.draw(st.booleans(), label="warm"))
    again = data.draw(st.lists(st.sampled_from(items), min_size=1), label="replayed")

    quiet = step(stored, again, resend=False)
    assert quiet == StepResult(None, None, duplicates=len(again))

    resent = step(stored, again, resend=True)
    record = first.write.record
    assert resent.write is None and resent.applied == 0 and resent.duplicates == len(again)
    assert resent.refusals == []  # refused when it first appeared, never again
    assert resent.status is not None and version_of(resent.status) == record.version
    copies = list({copy.fingerprint: copy for copy in (Copy.of(event) for _, event in again)}.values())
    assert resent.status == encode_status(record, copies)
    assert resent.documents == settlement_messages(None, record) and resent.claims == claim_messages(None, record)


@PROPERTY
@given(events=journeys, data=st.data())
def test_each_version_sends_what_its_record_registers_and_the_previous_did_not_say(
    events: list[HubEvent], data: st.DataObject
) -> None:
    """The journeys with most copies naming a container as well (so that, revision by revision, the winning copy of
    an event comes to name or stop naming references, and its identity comes and goes), in any order and split,
    warm or cold: each version's registrations are worked out from the identities of the copies it took in only,
    and must be what its whole record registers, and what it sends what the previous version's did not say."""
    named = [CarrierReference(kind="container", value="MSCU1234566")]
    copies = [e.model_copy(update={"references": named}) if data.draw(st.booleans(), label="named") else e for e in events]
    warm = data.draw(st.booleans(), label="warm")
    stored: Stored | None = None
    store: dict[bytes, bytes] = {}
    previous: ShipmentRecord | None = None
    for part in split(data, arrivals(data, copies)):
        result = step(stored, part)
        if result.write is None:
            continue
        state, record = result.write.state, result.write.record
        registered = registrations(state, record)
        assert result.write.registrations.all() == registered
        before = registrations(stored.state, previous) if stored is not None and previous is not None else []
        assert result.references == (register_messages(newly_said(before, registered)) if record.booking else [])
        stored, previous = after(stored, result, warm, store), record


# --- examples -------------------------------------------------------------------------------------------------------


def test_a_report_from_the_carrier_of_another_leg_is_refused_with_the_bytes_it_came_in() -> None:
    booked = step(None, [(0, hub_event(booking_doc()))], shipment_id=SHIPMENT)
    assert booked.write is not None and booked.refusals == []
    forged = hub_event(tracking_doc("arrived", leg=1, source="carrier.sea", event_id="sea-says-road-arrived"))
    result = step(after(None, booked, warm=False), [(1, forged)], shipment_id=SHIPMENT)
    assert [(f.source, f.held, f.rejection.code) for f in result.refusals] == [(1, None, NOT_ENTITLED)]
    assert result.refusals[0].rejection.reason == (
        "carrier.sea/sea-says-road-arrived: leg 1 is carried by carrier.road, not carrier.sea"
    )


def test_a_report_refused_only_once_the_booking_arrives_is_dead_lettered_as_the_event_the_state_holds() -> None:
    forged = hub_event(tracking_doc("arrived", leg=1, source="carrier.sea", event_id="sea-says-road-arrived"))
    early = step(None, [(0, forged)], shipment_id=SHIPMENT)
    assert early.write is not None and early.refusals == []  # no booking yet: nobody knows who carries leg 1
    result = step(after(None, early, warm=True), [(1, hub_event(booking_doc()))], shipment_id=SHIPMENT)
    assert [(f.source, f.held) for f in result.refusals] == [(1, encode_event(forged))]


@pytest.mark.parametrize("journey", ["journey.jsonl", "journey-claim.jsonl"])
def test_the_example_journeys_dead_letter_nothing_in_any_order_or_split(journey: str) -> None:
    """Fresh-clone CI at bcb2c98: the MTO's record of the consignee's surrender, arriving before the transfer to the
    consignee, was refused `not_entitled` and dead-lettered, then applied once the transfer came. Which documents the
    chain of holders refuses depends on what has arrived, so those refusals are conflicts, never dead letters; these
    journeys refuse nothing in the end, so no order and no split may dead-letter anything."""
    events = [hub_event(orjson.loads(line)) for line in (EXAMPLES / journey).read_bytes().splitlines() if line]
    final = project(apply_all(ShipmentState(events[0].shipment_id or ""), events), AUTHORITY)
    assert final.rejected == []
    rng = random.Random(journey)
    for _ in range(40):
        order = rng.sample(events, len(events))
        size = rng.choice([1, 1, 2, 3, 5])
        stored: Stored | None = None
        store: dict[bytes, bytes] = {}
        for start in range(0, len(order), size):
            part = list(enumerate(order[start : start + size], start))
            result = step(stored, part, shipment_id=order[0].shipment_id or "")
            assert result.refusals == [], [r.rejection.reason for r in result.refusals]
            stored = after(stored, result, warm=bool(start % 2), store=store)
        assert stored is not None and stored.state.version == len(events)


def test_the_first_booking_registers_its_references_and_sets_the_deadline() -> None:
    booking = booking_doc()
    booking["payload"]["requested_delivery"] = "2026-03-20T00:00:00Z"
    booking["payload"]["cargo"]["containers"] = ["CSQU3054383"]
    result = step(None, [(0, hub_event(booking))], shipment_id=SHIPMENT)
    assert result.write is not None
    assert result.write.deadline is not None and result.write.deadline.startswith(b"2026-")
    assert b"container:CSQU3054383" in [message.key for message in result.references]
    # nothing new the second time: no registration is sent again
    replay = step(after(None, result, warm=False), [(1, hub_event(booking))], shipment_id=SHIPMENT)
    assert replay == StepResult(None, None, duplicates=1)


@pytest.mark.parametrize("order", [(0, 1, 2), (0, 2, 1), (2, 1, 0), (1, 2, 0)])
def test_a_charge_corrected_in_any_order_is_stored_with_its_earlier_copy(order: tuple[int, ...], monkeypatch: pytest.MonkeyPatch) -> None:
    """The money keeps what a corrected charge used to be (ShipmentState.superseded) in the charge's entry: an earlier
    copy that arrives after its correction changes that entry alone, and the step writes it (the state split from
    its first version)."""
    monkeypatch.setattr(step_module, "SPLIT_STATE_BYTES", 0)
    charge = settlement_doc([("FRT", "100.00", "USD")], leg=1)
    corrected = {**settlement_doc([("FRT", "120.00", "USD")], leg=1), "revised_at": "2026-03-03T00:00:00Z"}
    events = [hub_event(doc) for doc in (booking_doc(), charge, corrected)]
    stored: Stored | None = None
    store: dict[bytes, bytes] = {}
    for n in order:
        stored = after(stored, step(stored, [(n, events[n])], shipment_id=SHIPMENT), warm=False, store=store)
    expected = apply_all(ShipmentState(SHIPMENT), events)
    assert expected.superseded and stored is not None and stored.state == expected
