"""What the share stage sends for record versions: one view per party but the operator, claims only when changed,
nothing to a revoked delegate, and the same share ids however often a version is replayed."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator

import pytest

from connectors.kafka import read_jsonl
from connectors.sharing.plan import Outgoing, leaf_paths, plan_batch, plan_version
from schemas.record import ShipmentRecord
from streams.codec import decode_event
from streams.merge import ShipmentState, apply, project
from streams.sharing import POLICY, Grant

from ..builders import AUTHORITY

REPO = Path(__file__).resolve().parents[3]
SHIPMENT = "SHP-2026-000043"
SHIPPER = "shipper.chengdu-elec"
INSURER = "insurer.picc"
MTO = "mto.westcorridor"
BROKER = "broker.customs-jb"
NOW = datetime(2026, 6, 1, tzinfo=timezone.utc)
RATES = {"charges", "payouts", "margin", "carrier_charges", "ledger", "journey_charges", "charges_total"}


@lru_cache(maxsize=1)
def versions() -> tuple[ShipmentRecord, ...]:
    """Every record version of the claim journey, in the order the worker would emit them."""
    state = ShipmentState(SHIPMENT)
    out = []
    for line in read_jsonl(REPO / "examples" / "journey-claim.jsonl"):
        event = decode_event(line)
        after = apply(state, event)  # type: ignore[arg-type]
        if after is not state:
            out.append(project(after, AUTHORITY))
        state = after
    return tuple(out)


def final() -> ShipmentRecord:
    return versions()[-1]


def grant(**changes: Any) -> Grant:
    fields: dict[str, Any] = {
        "grant_id": "g-broker", "shipment_id": SHIPMENT, "grantor": SHIPPER, "grantee": BROKER,
        "grades": ["public", "operational"], "granted_at": NOW - timedelta(days=1),
    }
    return Grant(**{**fields, **changes})


def keys(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield key
            yield from keys(value)
    elif isinstance(node, list):
        for item in node:
            yield from keys(item)


def of(messages: list[Outgoing], party: str, kind: str | None = None) -> list[Outgoing]:
    return [m for m in messages if m.party == party and (kind is None or m.document["kind"] == kind)]


def test_the_operator_gets_nothing() -> None:
    planned = plan_batch(versions(), {}, {}, {}, NOW)
    assert planned.messages and not of(planned.messages, MTO)


def test_every_other_party_gets_exactly_one_view_on_its_audience_topic() -> None:
    messages, _ = plan_version(final(), [grant()], {}, NOW)
    statuses = [m for m in messages if m.document["kind"] == "status"]
    assert sorted((m.party, m.audience) for m in statuses) == [
        (BROKER, "delegate"),
        ("carrier.cr-rail", "carrier"),
        ("carrier.my-haulage", "carrier"),
        ("carrier.oceanline", "carrier"),
        ("carrier.sc-road", "carrier"),
        ("consignee.johor-assembly", "consignee"),
        (INSURER, "insurer"),
        (SHIPPER, "shipper"),
    ]
    for m in statuses:
        assert m.key == m.party.encode()
        assert m.document["version"] == final().version and m.document["shipment_id"] == SHIPMENT
        assert m.document["view"]["policy_version"] == m.document["policy_version"] == POLICY.version
        assert m.share.share_id == m.document["share_id"] and m.share.kind == "status" and m.share.channel == "kafka"
        delivered = {key: value for key, value in m.document["view"].items() if key != "policy_version"}
        assert set(m.share.fields) == set(leaf_paths(delivered)), "the audit names exactly the fields delivered"
    broker = of(statuses, BROKER)[0].document
    assert broker["relations"] == ["delegate"] and broker["via_grants"] == ["g-broker"]
    assert "settlement" not in broker["view"] and "contact" not in broker["view"]["shipper"]


def test_the_insurer_sees_the_claim_but_no_rates() -> None:
    messages, _ = plan_version(final(), [], {}, NOW)
    insurer = of(messages, INSURER)
    assert [m.document["kind"] for m in insurer] == ["status", "claim"]
    claim = of(insurer, INSURER, "claim")[0]
    assert claim.document["claim"] == final().claims[0].model_dump(mode="json")
    assert claim.share.ref == claim.document["claim"]["claim_id"]
    policy = final().insurance.policy
    assert policy is not None
    # the envelope carries the insured value and its currency (schema version 2), and the audit names it
    assert claim.document["schema_version"] == 2
    assert claim.document["insured_value"] == policy.insured_value.model_dump(mode="json")
    value_fields = {"insurance.policy.insured_value.amount", "insurance.policy.insured_value.currency"}
    claim_fields = set(claim.share.fields) - value_fields
    assert set(claim.share.fields) >= value_fields and claim_fields
    assert all(path.startswith("claims[].") for path in claim_fields)
    assert not RATES & set(keys([m.document for m in insurer]))


def test_a_claim_goes_out_again_only_when_it_changed() -> None:
    planned = plan_batch(versions(), {}, {}, {}, NOW)
    sent = [m.document["claim"] for m in of(planned.messages, INSURER, "claim")]
    seen = [r.claims[0].model_dump(mode="json") for r in versions() if r.claims]
    distinct = [claim for i, claim in enumerate(seen) if i == 0 or claim != seen[i - 1]]
    assert len(sent) == len(distinct) > 1  # opened, then more evidence and the insurer's answer
    assert sent == distinct
    (slot,) = [slot for slot in planned.claims if slot[0] == INSURER]
    assert planned.claims[slot].version == max(m.document["version"] for m in of(planned.messages, INSURER, "claim"))

    # the next version, planned from what is stored: the unchanged claim is not sent again
    stored = {s: sent_claim.digest for s, sent_claim in planned.claims.items()}
    again, changed = plan_version(final(), [], stored, NOW)
    assert not [m for m in again if m.document["kind"] == "claim"] and not changed


def test_carriers_and_the_consignee_get_no_claims() -> None:
    planned = plan_batch(versions(), {}, {}, {}, NOW)
    receivers = {m.party for m in planned.messages if m.document["kind"] == "claim"}
    assert receivers == {INSURER, SHIPPER}


def test_a_revoked_or_expired_grant_gives_its_grantee_nothing() -> None:
    live, _ = plan_version(final(), [grant()], {}, NOW)
    assert [m.audience for m in of(live, BROKER)] == ["delegate"]
    for ended in (grant(revoked_at=NOW - timedelta(seconds=1)), grant(expires_at=NOW - timedelta(seconds=1))):
        messages, _ = plan_version(final(), [ended], {}, NOW)
        assert not of(messages, BROKER)
        assert of(messages, SHIPPER)


def test_share_ids_are_stable_across_replays() -> None:
    first = plan_batch(versions(), {SHIPMENT: [grant()]}, {}, {}, NOW)
    later = plan_batch(list(reversed(versions())), {SHIPMENT: [grant()]}, {}, {}, NOW + timedelta(hours=3))
    assert [m.share.share_id for m in first.messages] == [m.share.share_id for m in later.messages]
    assert len({m.share.share_id for m in first.messages}) == len(first.messages)
    assert {m.share.shared_at for m in later.messages} == {NOW + timedelta(hours=3)}


def test_a_version_already_shared_or_older_is_skipped() -> None:
    records = versions()
    planned = plan_batch(records + records[:5], {}, {SHIPMENT: 10}, {}, NOW)
    assert planned.skipped == 15
    assert {m.document["version"] for m in planned.messages} == {r.version for r in records[10:]}
    assert planned.versions == {SHIPMENT: records[-1].version}


@pytest.mark.parametrize(
    ("node", "paths"),
    [
        ({"a": 1, "b": {"c": None, "d": []}}, ["x.a", "x.b.c", "x.b.d"]),
        ({"l": [{"m": 1}, {"m": 2, "n": 3}], "s": ["t"]}, ["x.l[].m", "x.l[].m", "x.l[].n", "x.s"]),
    ],
)
def test_disclosed_claim_fields_are_named_as_views_name_them(node: dict[str, Any], paths: list[str]) -> None:
    assert list(leaf_paths(node, "x")) == paths
