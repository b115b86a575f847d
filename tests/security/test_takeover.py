"""Issue 12, finding 1: any signer could take over a shipment.

The attack: a carrier of the journey signs a `booking` for an existing shipment that names itself as MTO, dated
after the MTO's. The latest booking by `occurred_at` won, from any source, so the carrier became the responsible
operator and saw the ledger, the margin and every contact, and the MTO's own confirmation was refused. Now the
party registry says which MTO owns a shipment id, and nothing else may book, decide on, price or insure it.
"""

from __future__ import annotations

import asyncio
import copy
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Awaitable, Callable

import orjson
import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.carriers import load_signing_key
from connectors.gateway.intake import Refused, admit
from connectors.kafka import ensure_topics, publish, publish_raw, read_jsonl
from connectors.parties import PartyRegistry, load_parties
from connectors.postgres.store import projected_versions
from mmhub.cli import main as mmhub
from hubconf.settings import DEFAULT_PARTIES
from schemas.record import ShipmentRecord
from hubconf import topics
from streams.copies import fingerprint
from streams.horizon import FUTURE_DATED, Horizon
from streams.merge import ShipmentState, apply, apply_all, project
from streams.sharing import entitlements
from tests.integration.hub import projected_record, read_all, read_topic, wait_for
from tests.unit.builders import hub_event

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
JOURNEY = "SHP-2026-000042"
MTO = "mto.westcorridor"
AUTHORITY = load_parties(DEFAULT_PARTIES).authority()  # the registry the worker and `mmhub fold` load
LINES = read_jsonl(EXAMPLES / "journey.jsonl")
GENUINE = [orjson.loads(line) for line in LINES]
MTO_BOOKING = next(doc for doc in GENUINE if doc["event_type"] == "booking")
CONFIRMATION = next(doc for doc in GENUINE if doc["event_type"] == "booking_status" and doc["source"] == MTO)


def takeover(source: str = "carrier.oceanline", *, event_id: str = "takeover-1", at: str = "2026-03-13T00:00:00Z") -> dict[str, Any]:
    """The attacker's booking: the MTO's own, re-signed by `source`, naming `source` as MTO, dated later."""
    doc = copy.deepcopy(MTO_BOOKING)
    doc.update(event_id=event_id, source=source, occurred_at=at, recorded_at=at)
    doc["payload"]["mto"] = source
    return doc


def record_of(docs: list[dict[str, Any]]) -> ShipmentRecord:
    return project(apply_all(ShipmentState(JOURNEY), [hub_event(doc) for doc in docs]), AUTHORITY)


def _bookkeeping(record: ShipmentRecord) -> dict[str, Any]:
    """The fields a refused event still changes: it is counted, listed as refused, and was recorded at some time."""
    return {name: getattr(record, name) for name in ("version", "events_applied", "updated_at", "rejected")}


# --- through the fold ---------------------------------------------------------------------------------------------


def test_a_later_carrier_booking_naming_itself_mto_takes_nothing_over() -> None:
    genuine = record_of(GENUINE)
    attacked = record_of([takeover(), *GENUINE])
    assert attacked.responsible_operator == MTO
    assert (attacked.booking_set_by, attacked.booking_status, attacked.booking_status_set_by) == (
        f"{MTO}/{MTO_BOOKING['event_id']}",
        "confirmed",
        f"{MTO}/{CONFIRMATION['event_id']}",
    )
    assert entitlements(attacked) == entitlements(genuine)
    refused = [(r.event, r.kind) for r in attacked.rejected if r.event == "carrier.oceanline/takeover-1"]
    assert refused == [("carrier.oceanline/takeover-1", "not_entitled")]
    assert attacked == genuine.model_copy(update=_bookkeeping(attacked))


def test_a_hostile_booking_that_arrives_first_never_makes_its_source_the_owner() -> None:
    alone = record_of([takeover()])
    assert (alone.status, alone.responsible_operator, alone.booking) == ("awaiting_booking", None, None)
    assert [(r.event, r.kind) for r in alone.rejected] == [("carrier.oceanline/takeover-1", "not_entitled")]
    assert f"belongs to the MTO {MTO}" in alone.rejected[0].reason
    state = apply_all(ShipmentState(JOURNEY), [hub_event(takeover())])
    then_mto = project(apply(state, hub_event(MTO_BOOKING)), AUTHORITY)
    assert (then_mto.responsible_operator, then_mto.booking_set_by) == (MTO, f"{MTO}/{MTO_BOOKING['event_id']}")


def test_a_booking_dated_2099_does_not_beat_the_mtos_re_booking() -> None:
    rebooking = copy.deepcopy(MTO_BOOKING)
    rebooking.update(revised_at="2026-03-04T00:00:00Z")
    rebooking["payload"]["cargo"]["pieces"] += 1
    record = record_of([*GENUINE, takeover("carrier.my-haulage", at="2099-01-01T00:00:00Z"), rebooking])
    assert (record.responsible_operator, record.booking_set_by) == (MTO, f"{MTO}/{MTO_BOOKING['event_id']}")
    assert record.booking is not None and record.booking.cargo.pieces == MTO_BOOKING["payload"]["cargo"]["pieces"] + 1
    # and on its way in it is refused anyway: dated far past any time it could have been received
    late = Horizon().refusal(hub_event(takeover(at="2099-01-01T00:00:00Z")), datetime(2026, 3, 13, tzinfo=timezone.utc))
    assert late is not None and late.code == FUTURE_DATED and "occurred_at 2099-01-01" in late.reason


def test_the_owner_itself_may_not_book_in_another_mtos_name() -> None:
    doc = copy.deepcopy(MTO_BOOKING)
    doc["payload"]["mto"] = "mto.rival"
    record = record_of([doc])
    assert record.responsible_operator is None
    assert [r.reason for r in record.rejected] == [f"{JOURNEY} belongs to the MTO {MTO}; its booking may not name mto.rival as MTO"]


def test_a_shipment_id_no_mto_owns_cannot_be_booked_by_anyone() -> None:
    doc = copy.deepcopy(MTO_BOOKING)
    doc["shipment_id"] = "XYZ-1"
    record = project(apply_all(ShipmentState("XYZ-1"), [hub_event(doc)]), AUTHORITY)
    assert (record.responsible_operator, record.status) == (None, "awaiting_booking")
    assert [r.reason for r in record.rejected] == ["no MTO in the registry owns shipment id XYZ-1"]


@pytest.mark.parametrize(
    ("event_type", "payload", "reason"),
    [
        ("booking_status", {"action": "cancelled"}, f"only the MTO {MTO} decides on the booking"),
        ("margin", {"percent": "90"}, f"only the MTO {MTO} sets the margin"),
        (
            "waybill",
            {"document_kind": "multimodal_transport_document", "document_number": "FAKE-1", "issuer": "carrier.cr-rail"},
            f"only the MTO {MTO} issues the through document",
        ),
        (
            "insurance",
            {"action": "policy_bound", "policy_number": "X-1", "insurer": "carrier.cr-rail",
             "insured_value": {"amount": "1.00", "currency": "USD"}, "conditions": "none"},
            f"carrier.cr-rail is not an insurer the MTO {MTO} places cover with",
        ),
    ],
)
def test_every_word_only_the_mto_may_say_is_refused_from_a_carrier(event_type: str, payload: dict[str, Any], reason: str) -> None:
    hostile = {**CONFIRMATION, "event_id": "hostile", "source": "carrier.cr-rail", "event_type": event_type,
               "occurred_at": "2099-01-01T00:00:00Z", "payload": payload}
    genuine, attacked = record_of(GENUINE), record_of([*GENUINE, hostile])
    assert [(r.event, r.reason, r.kind) for r in attacked.rejected] == [("carrier.cr-rail/hostile", reason, "not_entitled")]
    assert attacked == genuine.model_copy(update=_bookkeeping(attacked))


def test_a_policy_bound_by_someone_else_for_the_mtos_insurer_is_refused() -> None:
    policy = next(doc for doc in GENUINE if doc["event_type"] == "insurance")
    forged = {**policy, "event_id": "forged-policy", "source": "shipper.chengdu-elec", "occurred_at": "2026-03-10T00:00:00Z"}
    record = record_of([*GENUINE, forged])
    assert record.insurance.policy is not None and record.insurance.policy.set_by == f"insurer.picc/{policy['event_id']}"
    assert [r.reason for r in record.rejected] == ["shipper.chengdu-elec may not bind a policy of insurer.picc"]


def test_the_registry_refuses_prefixes_that_would_give_one_shipment_id_two_owners() -> None:
    document = orjson.loads((EXAMPLES / "parties.json").read_bytes())
    rival = {"party_id": "mto.rival", "name": "Rival MTO", "roles": ["mto"], "shipment_prefixes": ["SHP-2026-"]}
    with pytest.raises(ValueError, match="overlaps"):
        PartyRegistry.model_validate({**document, "parties": [*document["parties"], rival]})
    carrier_owner = {"party_id": "carrier.greedy", "name": "Greedy", "roles": ["carrier"], "shipment_prefixes": ["G-"]}
    with pytest.raises(ValueError, match="is not an MTO"):
        PartyRegistry.model_validate({**document, "parties": [*document["parties"], carrier_owner]})


# --- the horizon ------------------------------------------------------------------------------------------------------


def test_an_actual_event_may_not_be_dated_past_its_receipt_but_an_estimate_may_look_ahead() -> None:
    received = datetime(2026, 3, 3, 7, 0, tzinfo=timezone.utc)
    estimate = hub_event(next(doc for doc in GENUINE if doc["classifier"] == "EST"))  # five days ahead of its recording
    assert Horizon().refusal(estimate, received) is None
    actual = hub_event({**CONFIRMATION, "occurred_at": "2026-03-03T07:16:00Z", "recorded_at": "2026-03-03T07:00:00Z"})
    refusal = Horizon().refusal(actual, received)
    assert refusal is not None and refusal.code == FUTURE_DATED
    assert Horizon(skew=timedelta(minutes=20)).refusal(actual, received) is None
    recorded_later = hub_event({**estimate.model_dump(mode="json"), "recorded_at": "2026-03-04T00:00:00Z"})
    late = Horizon().refusal(recorded_later, received)
    assert late is not None and late.reason.startswith(f"event {estimate.key}: recorded_at 2026-03-04")


# --- `mmhub fold` replays the attack from its events alone ------------------------------------------------------------


def test_mmhub_fold_replays_the_attack_with_the_workers_rules(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "attack.jsonl"
    hostile = [takeover(), takeover("carrier.sc-road", event_id="takeover-2099", at="2099-01-01T00:00:00Z")]
    log.write_bytes(b"\n".join([*LINES, *(orjson.dumps(doc) for doc in hostile)]) + b"\n")

    code = mmhub(["fold", str(log), "--received-at", "2026-03-13T00:10:00Z"])
    out, err = capsys.readouterr()
    [record] = orjson.loads(out)
    assert code == 1  # a line was rejected: the 2099 booking, dated far past when the hub received it
    assert f"line {len(LINES) + 2}: rejected ({FUTURE_DATED})" in err
    assert record["responsible_operator"] == MTO
    assert {(r["event"], r["kind"]) for r in record["rejected"]} == {("carrier.oceanline/takeover-1", "not_entitled")}


# --- on the real services, through the worker -------------------------------------------------------------------------


@pytest.mark.integration
async def test_a_carrier_signed_booking_claiming_mto_is_dead_lettered_and_the_mtos_confirmation_still_applies(hub) -> None:
    settings, worker, sink = hub
    worker.start()
    sink.start()
    confirmation = next(line for line in LINES if orjson.loads(line)["event_id"] == CONFIRMATION["event_id"])
    await publish(settings, [line for line in LINES if line != confirmation])
    attack = orjson.dumps(takeover())
    await publish_raw(settings, "canonical", [attack], load_signing_key(EXAMPLES / "keys" / "carrier.oceanline.2025-01.json"))

    def copies(lines: list[bytes]) -> int:
        return len({fingerprint(hub_event(orjson.loads(line))) for line in lines})

    def reached(version: int) -> Callable[[], Awaitable[bool]]:
        """The positive marker: Postgres counts this many distinct event copies for the journey."""
        async def check() -> bool:
            return (await projected_versions(settings)).get(JOURNEY, 0) >= version
        return check

    before_confirmation = [line for line in LINES if line != confirmation] + [attack]
    await wait_for(reached(copies(before_confirmation)), 120, "the hostile booking to be merged", worker, sink)
    await publish_raw(settings, "canonical", [confirmation], load_signing_key(EXAMPLES / "keys" / "mto.westcorridor.2025-01.json"))
    await wait_for(reached(copies([*LINES, attack])), 120, "the MTO's confirmation to be merged", worker, sink)

    record = await projected_record(settings, JOURNEY)
    assert record.responsible_operator == MTO
    assert (record.booking_status, record.booking_status_set_by) == ("confirmed", f"{MTO}/{CONFIRMATION['event_id']}")
    assert entitlements(record) == entitlements(record_of(GENUINE))
    # the connector stage passed the signed booking on to hub.events as its canonical event; the merge refused it there
    letters = [{name: value.decode() for name, value in m.headers} for m in await read_all(settings, settings.topics.dlq)]
    assert [(h[topics.DLQ_CODE], h[topics.DLQ_REASON]) for h in letters] == [
        ("not_entitled", f"carrier.oceanline/takeover-1: {JOURNEY} belongs to the MTO {MTO}; carrier.oceanline may not book it")
    ]



@pytest.mark.integration
async def test_an_event_dated_past_its_receipt_is_dead_lettered_from_a_raw_topic_and_from_hub_events(hub) -> None:
    settings, worker, _ = hub
    worker.start()
    signed = orjson.dumps(takeover("carrier.sc-road", event_id="takeover-2099", at="2099-01-01T00:00:00Z"))
    await publish_raw(settings, "canonical", [signed], load_signing_key(EXAMPLES / "keys" / "carrier.sc-road.2025-01.json"))
    direct = orjson.dumps({**MTO_BOOKING, "revised_at": "2099-01-01T00:00:00Z"})
    await publish(settings, [direct])

    letters = await read_topic(settings, settings.topics.dlq, expected=2, timeout=120)
    found = {m.value: {name: value.decode() for name, value in m.headers} for m in letters}
    assert set(found) == {signed, direct}  # the original bytes, each dead-lettered once
    assert {found[signed][topics.DLQ_CODE], found[direct][topics.DLQ_CODE]} == {FUTURE_DATED}
    assert found[signed][topics.DLQ_SOURCE_TOPIC] == settings.topics.raw("canonical")
    assert "occurred_at 2099-01-01T00:00:00+00:00 is more than 900 s after it was received" in found[signed][topics.DLQ_REASON]
    assert found[direct][topics.DLQ_SOURCE_TOPIC] == settings.topics.events
    assert "revised_at 2099-01-01T00:00:00+00:00 is more than 900 s after" in found[direct][topics.DLQ_REASON]


def test_the_gateway_refuses_an_event_dated_past_the_request_with_a_reason() -> None:
    [refused] = admit([hub_event(takeover(at="2099-01-01T00:00:00Z"))], "carrier.oceanline", "http:x",
                      datetime(2026, 3, 13, tzinfo=timezone.utc), Horizon())
    assert isinstance(refused, Refused) and refused.rejection.code == FUTURE_DATED


# --- the property -----------------------------------------------------------------------------------------------------

HOSTILE_SOURCES = sorted(
    {leg["carrier"] for leg in MTO_BOOKING["payload"]["legs"]}
    | {MTO_BOOKING["payload"]["shipper"]["party_id"], MTO_BOOKING["payload"]["consignee"]["party_id"]}
    | {"insurer.picc", "insurer.rogue", "stranger.somebody", "mto.rival"}
)
GENUINE_RECORD = record_of(GENUINE)


@st.composite
def hostile_event(draw: st.DrawFn, number: int) -> dict[str, Any]:
    """Any kind of event the journey holds, said by a party that is not the MTO, about anything, dated anywhen."""
    doc = copy.deepcopy(draw(st.sampled_from(GENUINE)))
    source = draw(st.sampled_from(HOSTILE_SOURCES))
    at = (datetime(2026, 3, 1, tzinfo=timezone.utc) + timedelta(hours=draw(st.integers(0, 24 * 365 * 80)))).isoformat()
    doc.update(event_id=f"hostile-{number}", source=source, occurred_at=at, recorded_at=at)
    claimed = draw(st.sampled_from([source, MTO, "mto.rival", "insurer.rogue"]))
    payload = doc["payload"]
    if doc["event_type"] == "booking":
        payload["mto"] = claimed
    elif doc["event_type"] == "insurance" and payload["action"] == "policy_bound":
        payload["insurer"] = claimed
    elif doc["event_type"] in ("waybill", "settlement"):
        payload["issuer" if doc["event_type"] == "waybill" else "carrier"] = source
    return doc


@st.composite
def attacked_journeys(draw: st.DrawFn) -> list[dict[str, Any]]:
    count = draw(st.integers(1, 8))
    hostile = [draw(hostile_event(number)) for number in range(count)]
    return draw(st.permutations([*GENUINE, *hostile]))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(attacked_journeys())
def test_hostile_events_in_any_interleaving_never_change_who_is_responsible_or_who_may_see(docs: list[dict[str, Any]]) -> None:
    record = record_of(docs)
    assert record.responsible_operator == MTO
    assert record.booking_set_by == GENUINE_RECORD.booking_set_by
    assert record.booking_status_set_by == GENUINE_RECORD.booking_status_set_by
    assert entitlements(record) == entitlements(GENUINE_RECORD)


@pytest.mark.integration
async def test_a_topic_made_before_the_horizon_gets_broker_receipt_times_and_keeps_its_own_settings(hub_settings) -> None:
    settings = await hub_settings(topics=False)
    admin = AIOKafkaAdminClient(**settings.kafka_client())
    await admin.start()
    try:
        await admin.create_topics([NewTopic(settings.topics.events, settings.partitions, 1, topic_configs={"retention.ms": "4242"})])
        while settings.topics.events not in await admin.list_topics():  # the marker: the broker lists it as existing
            await asyncio.sleep(0.2)
        await ensure_topics(settings)

        async def topic_config() -> dict[str, str]:
            [response] = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, settings.topics.events)])
            [(_, _, _, _, entries)] = response.resources
            return {entry[0]: entry[1] for entry in entries}

        # the broker applies an accepted change a moment later: wait for it (or for the timeout, which fails below)
        deadline = asyncio.get_running_loop().time() + 30
        while (found := await topic_config())["message.timestamp.type"] != "LogAppendTime":
            if asyncio.get_running_loop().time() > deadline:
                break
            await asyncio.sleep(0.5)
    finally:
        await admin.close()
    assert (found["message.timestamp.type"], found["retention.ms"]) == ("LogAppendTime", "4242")
