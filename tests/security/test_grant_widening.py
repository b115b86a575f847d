"""Finding 3 of issue 12: grants widened what a party sees.

A party's grades and its legs used to be merged separately: the consignee (no rates grade, the whole journey)
granting a carrier `[public]` left the carrier with its own `rates` on the consignee's whole journey, so it saw
every leg with every carrier's charges and all four payouts; a chain of grants passed the same cross product on.
A party's view is now the union of what each of its relations and grants (its lenses) shows on its own.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from connectors.gateway.access import recipient_scope
from connectors.kafka import read_jsonl
from connectors.sharing.plan import plan_version
from schemas.events import HubEvent
from schemas.record import ShipmentRecord
from streams.codec import decode_event
from streams.merge import ShipmentState, apply_all, fold, project
from streams.sharing import POLICY, Entitlement, Grant, entitlements, relations, view, with_grants
from tests.integration.hub import AUTHORITY as EXAMPLE_REGISTRY
from tests.unit.builders import AUTHORITY
from tests.unit.strategies import SHIPMENT, journeys

REPO = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 6, 1, tzinfo=timezone.utc)
JOURNEY = "SHP-2026-000042"
CONSIGNEE = "consignee.johor-assembly"
RAIL = "carrier.cr-rail"
OCEAN = "carrier.oceanline"
BROKER = "broker.customs-jb"
AGENT = "agent.port-klang"


def _journey() -> ShipmentRecord:
    events = (decode_event(line) for line in read_jsonl(REPO / "examples" / "journey.jsonl"))
    return fold(events, EXAMPLE_REGISTRY)[JOURNEY]  # type: ignore[arg-type]


def _grant(grant_id: str, grantor: str, grantee: str, grades: list[str], shipment: str = JOURNEY, **times: Any) -> Grant:
    return Grant(
        grant_id=grant_id, shipment_id=shipment, grantor=grantor, grantee=grantee, grades=grades,
        granted_at=NOW - timedelta(days=1), **times,
    )


def _charged_legs(document: dict[str, Any]) -> list[int]:
    return [leg["sequence"] for leg in document.get("legs", []) if "charges" in leg]


def _payees(document: dict[str, Any]) -> list[str]:
    return [p["carrier"] for p in document.get("settlement", {}).get("payouts", [])]


def test_a_consignees_public_grant_does_not_spread_a_carriers_rates_over_the_journey() -> None:
    record = _journey()
    alone = view(record, entitlements(record)[RAIL]).document
    assert _charged_legs(alone) == [2] and _payees(alone) == [RAIL]

    parties = with_grants(entitlements(record), [_grant("g-pub", CONSIGNEE, RAIL, ["public"])], JOURNEY, NOW)
    granted = view(record, parties[RAIL]).document
    # the consignee's lens shows no leg (legs are `operational`, which it did not grant), the carrier's lens its own
    assert [leg["sequence"] for leg in granted["legs"]] == [2]
    assert _charged_legs(granted) == [2]
    assert _payees(granted) == [RAIL]
    assert granted == alone  # everything public was the carrier's already

    # the Kafka share stage sends exactly that view
    messages, _ = plan_version(record, [_grant("g-pub", CONSIGNEE, RAIL, ["public"])], {}, NOW)
    (sent,) = [m for m in messages if m.party == RAIL and m.document["kind"] == "status"]
    assert sent.document["view"] == granted


def test_a_carrier_granted_the_consignees_operational_grade_sees_every_leg_but_only_its_own_charges() -> None:
    record = _journey()
    parties = with_grants(entitlements(record), [_grant("g-op", CONSIGNEE, RAIL, ["public", "operational"])], JOURNEY, NOW)
    document = view(record, parties[RAIL]).document
    assert [leg["sequence"] for leg in document["legs"]] == [1, 2, 3, 4]
    assert _charged_legs(document) == [2]
    assert _payees(document) == [RAIL]


def test_a_grant_down_a_chain_carries_only_its_grantors_own_rows() -> None:
    record = _journey()
    grants = [_grant("g1", CONSIGNEE, RAIL, ["public"]), _grant("g2", RAIL, AGENT, ["rates"])]
    agent = view(record, with_grants(entitlements(record), grants, JOURNEY, NOW)[AGENT]).document
    assert len([leg for leg in agent.get("legs", []) if "charges" in leg]) == 1
    assert _payees(agent) == [RAIL]


def test_chained_grants_pass_on_each_lens_alone() -> None:
    record = _journey()
    grants = [
        _grant("g1", CONSIGNEE, RAIL, ["public"]),
        _grant("g2", RAIL, AGENT, ["public", "operational", "rates"]),  # the carrier passes on what it holds
        _grant("g3", OCEAN, BROKER, ["operational", "rates"]),
        _grant("g4", CONSIGNEE, BROKER, ["public", "operational"]),
        _grant("g5", BROKER, AGENT, ["operational", "rates"]),
    ]
    parties = with_grants(entitlements(record), grants, JOURNEY, NOW)

    broker = view(record, parties[BROKER]).document
    assert [leg["sequence"] for leg in broker["legs"]] == [1, 2, 3, 4]  # the consignee's operational lens
    assert _charged_legs(broker) == [3] and _payees(broker) == [OCEAN]  # rates only on the ocean carrier's lens

    agent = view(record, parties[AGENT]).document
    assert [leg["sequence"] for leg in agent["legs"]] == [1, 2, 3, 4]
    assert _charged_legs(agent) == [2, 3]  # the rail carrier's own leg (g2) and the ocean leg (g3 -> g5)
    assert sorted(_payees(agent)) == [RAIL, OCEAN]
    charges = {leg["sequence"]: leg["charges"] for leg in agent["legs"] if "charges" in leg}
    assert charges == {leg["sequence"]: leg["charges"] for leg in view(record, entitlements(record)[RAIL]).document["legs"]} | {
        leg["sequence"]: leg["charges"] for leg in view(record, entitlements(record)[OCEAN]).document["legs"]
    }


def test_a_grant_does_not_let_a_carrier_see_who_else_holds_the_shipment() -> None:
    record = _journey()
    grants = [_grant("g-pub", CONSIGNEE, RAIL, ["public"])]
    rail = with_grants(entitlements(record), grants, JOURNEY, NOW)[RAIL]
    assert recipient_scope(rail) == "own_and_delegates"
    assert recipient_scope(entitlements(record)[CONSIGNEE]) == "all"


# --- the property ------------------------------------------------------------------------------------------------


def _leaf_count(node: Any) -> int:
    if isinstance(node, dict) and node:
        return sum(_leaf_count(value) for value in node.values())
    if isinstance(node, list) and node and isinstance(node[0], (dict, list)):
        return sum(_leaf_count(item) for item in node)
    return 1


def _at(document: dict[str, Any], location: tuple[str | int, ...]) -> Any:
    node: Any = document
    for step in location:
        node = node[step]
    return node


def _lens_views(record: ShipmentRecord, who: Entitlement) -> Iterator[set[tuple[str | int, ...]]]:
    for lens in who.lenses:
        yield view(record, Entitlement(who.party, who.relations, (lens,))).leaves


OUTSIDERS = ["broker.a", "agent.b", "bank.c"]


@st.composite
def grant_sets(draw: st.DrawFn, record: ShipmentRecord) -> list[Grant]:
    parties = sorted(relations(record)) + OUTSIDERS
    grants = []
    for n in range(draw(st.integers(0, 6))):
        grantor, grantee = draw(st.lists(st.sampled_from(parties), min_size=2, max_size=2, unique=True))
        grades = draw(st.lists(st.sampled_from(list(POLICY.grades)), min_size=1, max_size=4, unique=True))
        revoked = NOW - timedelta(minutes=1) if draw(st.integers(0, 5)) == 0 else None
        grants.append(_grant(f"g{n}", grantor, grantee, grades, shipment=record.shipment_id, revoked_at=revoked))
    return grants


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example])
@given(events=journeys, data=st.data())
def test_every_leaf_a_party_sees_is_shown_by_one_of_its_lenses_alone(events: list[HubEvent], data: st.DataObject) -> None:
    record = project(apply_all(ShipmentState(SHIPMENT), events), AUTHORITY)
    _assert_union_of_lenses(record, data.draw(grant_sets(record), label="grants"))


EXAMPLE = _journey()  # four carriers, charges on every leg, four payouts


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_on_the_example_journey_any_grants_show_only_what_one_lens_alone_shows(data: st.DataObject) -> None:
    _assert_union_of_lenses(EXAMPLE, data.draw(grant_sets(EXAMPLE), label="grants"))


def _assert_union_of_lenses(record: ShipmentRecord, grants: list[Grant]) -> None:
    base = entitlements(record)
    parties = with_grants(base, grants, record.shipment_id, NOW)
    live = [g for g in grants if g.live(NOW)]
    for party, who in parties.items():
        shown = view(record, who)
        # the document holds exactly the located leaves, with the record's values
        rest = {k: v for k, v in shown.document.items() if k != "policy_version"}
        assert (_leaf_count(rest) if rest else 0) == len(shown.leaves)
        full = record.model_dump(mode="json")
        # every leaf is in the view of at least one lens alone
        alone = set().union(*_lens_views(record, who)) if who.lenses else set()
        assert shown.leaves <= alone, f"{party} sees {sorted(map(str, shown.leaves - alone))[:5]} that no lens alone shows"
        for location in shown.leaves:
            _at(full, location)  # a real place in the record
        # each leg's charges and each payout shown are shown by one lens that holds `rates` on that very row, never
        # by one lens's rates and another's rows (the row is found in the record, by the leaf's place)
        for location in shown.leaves:
            if location[:1] == ("legs",) and location[2:3] == ("charges",):
                sequence = full["legs"][location[1]]["sequence"]
                assert any("rates" in lens.grades and (lens.legs is None or sequence in lens.legs) for lens in who.lenses), (
                    f"{party} sees the charges of leg {sequence}")
            if location[:2] == ("settlement", "payouts") and len(location) > 2:
                carrier = full["settlement"]["payouts"][location[2]]["carrier"]
                assert any("rates" in lens.grades and (lens.legs is None or carrier == lens.carrier) for lens in who.lenses), (
                    f"{party} sees the payout of {carrier}")
                event("a payout shown")
            if location[:1] == ("legs",) and location[2:3] == ("charges",):
                event("charges shown")
            if len(who.lenses) > 1:
                event("a party with several lenses")
        # a grantee never sees a leaf that neither its own relations nor one of its live grantors can see
        own = view(record, base[party]).leaves if party in base else set()
        grantors = {g.grantor for g in live if g.grantee == party and g.grantor in parties}
        bound = own.union(*(view(record, parties[g]).leaves for g in grantors))
        assert shown.leaves <= bound, f"{party} sees {sorted(map(str, shown.leaves - bound))[:5]} beyond its grantors"


# --- one walk of the record for every party (streams.sharing.Leaves, issue 13) -----------------------------------


def test_the_sharing_stages_one_walk_shows_each_party_what_its_own_walk_did_in_any_order() -> None:
    """The sharing stage walks a version once (`Leaves.of`) and views it for every party from that walk, in turn.
    Nothing of one party's view may reach another's: each status view it sends must equal the record walked for
    that party alone by the walk it replaced (`_reference_view`), and so must each party's view from a shared walk
    taken in reverse order (a carrier after the consignee, the agent after the carriers that granted it)."""
    from streams.sharing import Leaves, view_of
    from tests.unit.streams.test_sharing import _reference_view

    record = _journey()
    grants = [
        _grant("g1", CONSIGNEE, RAIL, ["public"]),
        _grant("g2", RAIL, AGENT, ["public", "operational", "rates"]),
        _grant("g3", OCEAN, BROKER, ["operational", "rates"]),
        _grant("g5", BROKER, AGENT, ["operational", "rates"]),
    ]
    parties = with_grants(entitlements(record), grants, JOURNEY, NOW)
    alone = {party: _reference_view(record, who)[0] for party, who in parties.items()}
    for each in alone.values():
        each["policy_version"] = POLICY.version

    messages, _ = plan_version(record, grants, {}, NOW)
    sent = {m.party: m.document["view"] for m in messages if m.document["kind"] == "status"}
    assert {RAIL, OCEAN, BROKER, AGENT, CONSIGNEE} <= sent.keys()
    for party, document in sent.items():
        assert document == alone[party], party
    assert _charged_legs(sent[RAIL]) == [2] and _charged_legs(sent[CONSIGNEE]) == []

    shared = Leaves.of(record)
    for party in sorted(parties, reverse=True):
        assert view_of(shared, parties[party]).document == alone[party], party
