"""Who sees what: every view holds only the grades (and rows) its party's policy allows, field by field."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.kafka import read_jsonl
from connectors.parties import load_parties
from schemas.events import HubEvent
from schemas.record import ShipmentRecord
from streams.codec import decode_event
from streams.merge import ShipmentState, apply_all, fold, project
from streams.sharing import (
    POLICY,
    Entitlement,
    Grant,
    entitlements,
    load_policy,
    may_receive,
    policy_table,
    view,
    with_grants,
)

from streams.step import Stored, merge_step

from ..builders import AUTHORITY
from ..strategies import SHIPMENT, journeys
from .test_trade import STRICT, by_id, carriers_verified, paid_in_full, parsed, trade_docs, verification

REPO = Path(__file__).resolve().parents[3]
NOW = datetime(2026, 6, 1, tzinfo=timezone.utc)


def _journey(name: str = "journey.jsonl", shipment: str = "SHP-2026-000042") -> ShipmentRecord:
    return fold((decode_event(line) for line in read_jsonl(REPO / "examples" / name)), AUTHORITY)[shipment]  # type: ignore[misc]


def _leaves(node: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict) and node:
        for key, value in node.items():
            yield from _leaves(value, f"{path}.{key}" if path else key)
    elif isinstance(node, list) and node and isinstance(node[0], (dict, list)):
        for item in node:
            yield from _leaves(item, f"{path}[]")
    else:
        yield path, node


def _assert_only_allowed(record: ShipmentRecord, who: Entitlement) -> None:
    shown = view(record, who)
    for path, _ in _leaves(shown.document):
        if path == "policy_version":
            continue
        grade = POLICY.grade(path)
        personal_exception = grade == "personal" and who.legs is not None and path.endswith(("shipper.contact", "consignee.contact"))
        assert grade in who.grades or personal_exception, f"{who.party} got {path} ({grade})"
    if who.legs is not None:
        document = shown.document
        assert all(leg["sequence"] in who.legs for leg in document.get("legs", []))
        assert all(h["from_leg"] in who.legs or h["to_leg"] in who.legs for h in document.get("handovers", []))
        assert all(c["leg"] in who.legs for c in document.get("custody", []))
        assert all(p["carrier"] == who.party for p in document.get("settlement", {}).get("payouts", []))
        assert all(i["carrier"] == who.party for i in document.get("carrier_invoices", []))
        assert all(leg["leg"] in who.legs for leg in document.get("emissions", {}).get("legs", []))


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example])
@given(events=journeys)
def test_no_party_receives_a_field_its_policy_denies(events: list[HubEvent]) -> None:
    record = project(apply_all(ShipmentState(SHIPMENT), events), AUTHORITY)
    for who in entitlements(record).values():
        _assert_only_allowed(record, who)


def test_the_example_parties_see_what_a_user_expects() -> None:
    record = _journey()
    parties = entitlements(record)
    shipper = view(record, parties["shipper.chengdu-elec"]).document
    assert shipper["settlement"]["invoices"] and "payouts" not in shipper["settlement"]
    assert all("carrier_charges" not in i and "margin" not in i and i["total"] for i in shipper["settlement"]["invoices"])
    assert all("charges" not in leg for leg in shipper["legs"]) and "journey_charges" not in shipper
    assert shipper["consignee"]["contact"]  # the shipper gave it

    rail = view(record, parties["carrier.cr-rail"]).document
    assert [leg["sequence"] for leg in rail["legs"]] == [2] and rail["legs"][0]["charges"]
    assert [(h["from_leg"], h["to_leg"]) for h in rail["handovers"]] == [(1, 2), (2, 3)]
    assert [p["carrier"] for p in rail["settlement"]["payouts"]] == ["carrier.cr-rail"]
    assert "invoices" not in rail["settlement"] and "insurance" not in rail and "claims" not in rail
    assert "contact" not in rail["shipper"] and "contact" not in rail["consignee"]

    last_mile = view(record, parties["carrier.my-haulage"]).document
    assert last_mile["consignee"]["contact"] and "contact" not in last_mile["shipper"]  # it delivers

    insurer = view(record, parties["insurer.picc"]).document
    assert insurer["insurance"]["policy"] and insurer["booking"]["declared_value"] and insurer["booking"]["cargo"]
    assert "settlement" not in insurer and all("charges" not in leg for leg in insurer["legs"])
    assert "contact" not in insurer["shipper"]


def test_an_unlisted_field_is_withheld_from_everyone_but_the_mto() -> None:
    policy = load_policy(POLICY.model_dump_json().encode())
    assert policy.grade("some_future_field") == policy.default_grade == "internal"
    assert [name for name, rule in policy.relations.items() if "internal" in rule.grades] == ["mto"]


def test_a_policy_naming_an_undeclared_grade_is_refused() -> None:
    broken = POLICY.model_dump(mode="json")
    broken["fields"]["status"] = "secret"
    with pytest.raises(ValueError, match="undeclared grades"):
        load_policy(Policy_json(broken))


def Policy_json(document: dict[str, Any]) -> bytes:
    import orjson

    return orjson.dumps(document)


def _grant(grant_id: str, grantor: str, grantee: str, grades: list[str], **times: Any) -> Grant:
    return Grant(
        grant_id=grant_id, shipment_id="SHP-2026-000042", grantor=grantor, grantee=grantee, grades=grades,
        granted_at=NOW - timedelta(days=1), **times,
    )


def test_delegation_gives_at_most_what_the_grantor_holds_and_revoking_cuts_the_chain() -> None:
    record = _journey()
    base = entitlements(record)
    broker_grant = _grant("g1", "shipper.chengdu-elec", "broker.customs", ["public", "operational", "commercial"])
    sub_grant = _grant("g2", "broker.customs", "agent.local", ["operational"])
    granted = with_grants(base, [broker_grant, sub_grant], record.shipment_id, NOW)
    assert granted["broker.customs"].grades == {"public", "operational"}  # the shipper has no commercial grade
    assert granted["agent.local"].grades == {"operational"} and granted["agent.local"].via == ("g1", "g2")
    _assert_only_allowed(record, granted["agent.local"])

    revoked = broker_grant.model_copy(update={"revoked_at": NOW - timedelta(minutes=1)})
    after = with_grants(base, [revoked, sub_grant], record.shipment_id, NOW)
    assert "broker.customs" not in after and "agent.local" not in after

    expired = broker_grant.model_copy(update={"expires_at": NOW - timedelta(seconds=1)})
    assert "broker.customs" not in with_grants(base, [expired], record.shipment_id, NOW)
    other_shipment = broker_grant.model_copy(update={"shipment_id": "SHP-OTHER-1"})
    assert "broker.customs" not in with_grants(base, [other_shipment], record.shipment_id, NOW)


def test_a_carriers_delegate_sees_no_more_than_the_carriers_legs() -> None:
    record = _journey()
    granted = with_grants(
        entitlements(record), [_grant("g1", "carrier.oceanline", "agent.port", ["operational", "rates"])], record.shipment_id, NOW
    )
    assert granted["agent.port"].legs == {3}
    assert [leg["sequence"] for leg in view(record, granted["agent.port"]).document["legs"]] == [3]


def test_outbound_messages_follow_the_same_grades() -> None:
    record = _journey()
    parties = entitlements(record)
    payout = {"kind": "payout", "payout": {"carrier": "carrier.cr-rail"}}
    assert may_receive("payout", payout, parties["carrier.cr-rail"])
    assert not may_receive("payout", payout, parties["carrier.oceanline"])
    assert not may_receive("payout", payout, parties["shipper.chengdu-elec"])
    assert may_receive("invoice", {"kind": "invoice"}, parties["shipper.chengdu-elec"])
    assert not may_receive("invoice", {"kind": "invoice"}, parties["insurer.picc"])
    assert may_receive("claim", {"kind": "claim"}, parties["insurer.picc"])
    assert not may_receive("claim", {"kind": "claim"}, parties["carrier.oceanline"])
    assert not may_receive("something_new", {}, parties["mto.westcorridor"])  # deny by default


def test_the_policy_table_lists_every_relation_and_grade() -> None:
    table = policy_table()
    assert all(f"| {name} |" in table for name in POLICY.relations)
    assert table.splitlines()[0].count("|") == len(POLICY.grades) + 3


def test_the_readme_table_is_the_one_generated_from_the_policy() -> None:
    readme = (REPO / "README.md").read_text()
    start = readme.index("<!-- policy-table:start -->") + len("<!-- policy-table:start -->")
    end = readme.index("<!-- policy-table:end -->")
    assert readme[start:end].strip() == policy_table().strip(), "regenerate the README table from the policy"


# --- the trade parts (issue 16) -------------------------------------------------------------------------------------

TRADE_SHIPMENT = "SHP-2026-000046"
TRADE_AUTHORITY = load_parties(REPO / "examples" / "parties.json").authority()  # the customs, verifier and bank roles
TRADE_EVENTS = [e for e in (decode_event(line) for line in read_jsonl(REPO / "examples" / "journey-trade.jsonl"))]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(keep=st.lists(st.booleans(), min_size=len(TRADE_EVENTS), max_size=len(TRADE_EVENTS)))
def test_no_party_receives_a_trade_field_its_policy_denies(keep: list[bool]) -> None:
    events = [e for e, kept in zip(TRADE_EVENTS, keep) if kept]
    record = project(apply_all(ShipmentState(TRADE_SHIPMENT), events), TRADE_AUTHORITY)  # type: ignore[arg-type]
    broker = Grant(
        grant_id="g-broker", shipment_id=TRADE_SHIPMENT, grantor="shipper.chengdu-elec", grantee="broker.qinzhou-trade",
        grades=["customs"], granted_at=NOW - timedelta(days=1),
    )
    for who in with_grants(entitlements(record), [broker], TRADE_SHIPMENT, NOW).values():
        _assert_only_allowed(record, who)


def test_the_bank_sees_the_credit_and_a_customs_broker_the_declarations_by_a_grant() -> None:
    record = fold(TRADE_EVENTS, TRADE_AUTHORITY)[TRADE_SHIPMENT]  # type: ignore[arg-type]
    parties = entitlements(record)
    bank = view(record, parties["bank.maybank"]).document
    assert bank["letter_of_credit"]["presentation"]["result"] == "discrepant"
    assert bank["letter_of_credit"]["presentation"]["discrepancies"][0]["code"] == "insurance_under_cover"
    assert not {"customs", "settlement", "legs", "booking", "release", "verifications"} & bank.keys()

    insurer = view(record, parties["insurer.picc"]).document
    hold = insurer["customs"][1]["holds"][0]  # the hold is an exception the insurer sees, the declaration is not
    assert hold["kind"] == "under_inspection" and "declaration_number" not in insurer["customs"][1]
    assert "letter_of_credit" not in insurer and "uscc" not in insurer["verifications"][-1]["finding"]

    carrier = view(record, parties["carrier.oceanline"]).document
    assert "letter_of_credit" not in carrier and "declarant" not in carrier["customs"][0]

    grant = Grant(
        grant_id="g-broker", shipment_id=TRADE_SHIPMENT, grantor="shipper.chengdu-elec", grantee="broker.qinzhou-trade",
        grades=["customs"], granted_at=NOW - timedelta(days=1),
    )
    broker = view(record, with_grants(parties, [grant], TRADE_SHIPMENT, NOW)["broker.qinzhou-trade"]).document
    assert broker["customs"][0]["declaration_number"] == "531620260000460461" and "status" not in broker["customs"][0]
    assert not {"letter_of_credit", "settlement", "legs"} & broker.keys()


# --- the fields the verified-parties option and the one-shot release add ---------------------------------------------
# A payout's `held_reason`, the release's `since_issued` (a condition lost after issue) and a booking held for an
# unverified party (`rejected`): every record here is stepped through the worker's merge step, so the release is the
# hub's own fact and a retraction after it leaves a note.

_VERIFIED_DOCS = paid_in_full(carriers_verified(trade_docs(), "carrier.oceanline")) + [
    verification("carrier.oceanline", "idv-oc", valid_until="2026-04-14T00:00:00Z"),
] + [dict(by_id(trade_docs(), "cus-im-released"), retracted=True, revised_at="2026-04-14T12:00:00Z")]
_VERIFIED_EVENTS = parsed(_VERIFIED_DOCS)
_DECLARATIONS = ("531620260000460461", "B10-2604-004611")


def _stepped(events: list[HubEvent]) -> ShipmentRecord | None:
    """The record after the events one merge step each, in order (the release fact kept as the worker keeps it)."""
    stored: Stored | None = None
    for n, event in enumerate(events):
        result = merge_step(TRADE_SHIPMENT, stored, [(n, event)], STRICT, resend_on_replay=False)
        if result.write is not None:
            stored = Stored(result.write.state, result.write.record, whole=result.write.whole)
    return stored.record if stored is not None else None


def _assert_no_declaration_number_outside_customs(record: ShipmentRecord, who: Entitlement) -> None:
    if "customs" in who.grades:
        return
    text = orjson.dumps(view(record, who).document).decode()
    assert not [n for n in _DECLARATIONS if n in text], f"{who.party} sees a declaration number"


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(keep=st.lists(st.booleans(), min_size=len(_VERIFIED_EVENTS), max_size=len(_VERIFIED_EVENTS)))
def test_no_party_receives_a_verified_parties_or_release_field_its_policy_denies(keep: list[bool]) -> None:
    record = _stepped([e for e, kept in zip(_VERIFIED_EVENTS, keep) if kept])
    if record is None:
        return
    for who in entitlements(record).values():
        _assert_only_allowed(record, who)
        _assert_no_declaration_number_outside_customs(record, who)


def test_the_new_fields_reach_whom_their_grades_allow() -> None:
    record = _stepped(_VERIFIED_EVENTS)
    assert record is not None and record.release is not None and record.settlement is not None
    assert record.release.status == "issued" and record.release.since_issued  # the customs release was retracted
    assert {p.carrier: p.status for p in record.settlement.payouts}["carrier.oceanline"] == "held"
    assert POLICY.grade("release.since_issued") == "operational"
    assert POLICY.grade("settlement.payouts[].held_reason") == "rates"
    parties = entitlements(record)
    ocean = view(record, parties["carrier.oceanline"]).document
    assert ocean["settlement"]["payouts"][0]["held_reason"].endswith("carrier.oceanline (expired)")
    assert ocean["release"]["since_issued"] == ["customs no longer holds: the import declaration at MYPKG is under_inspection"]
    rail = view(record, parties["carrier.cr-rail"]).document
    assert [p["carrier"] for p in rail["settlement"]["payouts"]] == ["carrier.cr-rail"]
    shipper = view(record, parties["shipper.chengdu-elec"]).document
    assert "payouts" not in shipper["settlement"] and shipper["release"]["since_issued"]
    for who in parties.values():
        _assert_no_declaration_number_outside_customs(record, who)
    # a booking held for an unverified party is on the hub's own status topic (which the MTO reads) and shared with
    # nobody: `rejected` is internal, and without a booking the record names no other party
    held = _stepped(parsed(trade_docs()))
    assert held is not None and held.booking is None and "books only verified parties" in held.rejected[0].reason
    assert not [p for p, who in entitlements(held).items() if "rejected" in view(held, who).document]


# --- the view against a plain reference walk -------------------------------------------------------------------
# streams.sharing.view walks a record once into its leaves (Leaves.of) for every party's view of that version, and
# takes whole what a view shows whole. This is the walk it replaced (one pass over the document per lens, then one
# to cut the document down), kept as the reference it must equal: document, disclosed, withheld and leaves.


def _reference_view(record: ShipmentRecord, who: Entitlement) -> tuple[dict[str, Any], set[str], set[str], set[Any]]:
    from streams.sharing import _OWN_VALUES, _ROWS, _is_branch

    disclosed: set[str] = set()
    withheld: set[str] = set()
    leaves: set[Any] = set()
    gone = object()

    def visible(node: Any, at: tuple[Any, ...], path: str, lens: Any) -> None:
        if isinstance(node, dict) and node:
            for key, value in node.items():
                visible(value, at + (key,), f"{path}.{key}" if path else key, lens)
        elif _is_branch(node):
            in_rows = _ROWS.get(path)
            for index, item in enumerate(node):
                if lens.legs is None or in_rows is None or in_rows(item, lens):
                    visible(item, at + (index,), f"{path}[]", lens)
        elif lens.legs is not None and (own := _OWN_VALUES.get(path)) is not None and not own(node, lens):
            pass  # another carrier's value: neither shown nor withheld by this lens
        elif POLICY.grade(path) in lens.grades or any(path == p or path.startswith(p + ".") for p in lens.extra):
            disclosed.add(path)
            leaves.add(at)
        else:
            withheld.add(path)

    def keep(node: Any, at: tuple[Any, ...]) -> Any:
        if _is_branch(node):
            pairs = node.items() if isinstance(node, dict) else enumerate(node)
            kept = {k: v for k, v in ((k, keep(v, at + (k,))) for k, v in pairs) if v is not gone}
            if not kept:
                return gone
            return kept if isinstance(node, dict) else list(kept.values())
        return node if at in leaves else gone

    document = record.model_dump(mode="json")
    for lens in who.lenses:
        visible(document, (), "", lens)
    kept = keep(document, ())
    out = kept if isinstance(kept, dict) else {}
    out["policy_version"] = POLICY.version
    return out, disclosed, withheld - disclosed, leaves


def _assert_views_equal_the_reference(record: ShipmentRecord, parties: dict[str, Entitlement]) -> None:
    for who in parties.values():
        shown = view(record, who)
        document, disclosed, withheld, leaves = _reference_view(record, who)
        assert orjson.dumps(shown.document) == orjson.dumps(document), who.party  # the same keys in the same order
        assert (shown.disclosed, shown.withheld, shown.leaves) == (disclosed, withheld, leaves), who.party


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example])
@given(events=journeys)
def test_every_view_equals_the_reference_walk(events: list[HubEvent]) -> None:
    record = project(apply_all(ShipmentState(SHIPMENT), events), AUTHORITY)
    _assert_views_equal_the_reference(record, entitlements(record))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(keep=st.lists(st.booleans(), min_size=len(TRADE_EVENTS), max_size=len(TRADE_EVENTS)))
def test_every_trade_view_and_delegated_view_equals_the_reference_walk(keep: list[bool]) -> None:
    events = [e for e, kept in zip(TRADE_EVENTS, keep) if kept]
    record = project(apply_all(ShipmentState(TRADE_SHIPMENT), events), TRADE_AUTHORITY)  # type: ignore[arg-type]
    grants = [
        Grant(grant_id="g-broker", shipment_id=TRADE_SHIPMENT, grantor="shipper.chengdu-elec",
              grantee="broker.qinzhou-trade", grades=["customs", "personal"], granted_at=NOW - timedelta(days=1)),
        Grant(grant_id="g-agent", shipment_id=TRADE_SHIPMENT, grantor="carrier.oceanline", grantee="agent.port",
              grades=["operational", "rates", "personal"], granted_at=NOW - timedelta(days=1)),
    ]  # fmt: skip
    _assert_views_equal_the_reference(record, with_grants(entitlements(record), grants, TRADE_SHIPMENT, NOW))


def test_the_example_journeys_views_equal_the_reference_walk() -> None:
    for name, shipment in (("journey.jsonl", "SHP-2026-000042"), ("journey-trade.jsonl", TRADE_SHIPMENT)):
        record = _journey(name, shipment)
        grant = _grant("g1", "carrier.oceanline", "agent.port", ["operational", "rates", "personal"])
        _assert_views_equal_the_reference(record, with_grants(entitlements(record), [grant], record.shipment_id, NOW))


def test_a_copy_of_the_policy_with_other_grades_looks_its_grades_up_again() -> None:
    record = _journey()
    shipper = entitlements(record)["shipper.chengdu-elec"]
    assert "status" in view(record, shipper).document  # the grades of the record's paths are now remembered
    stricter = POLICY.model_copy(update={"fields": {**POLICY.fields, "status": "internal"}})
    assert stricter.grade("status") == "internal"
    assert "status" not in view(record, shipper, stricter).document
    assert "status" in view(record, shipper).document  # the original keeps its own
