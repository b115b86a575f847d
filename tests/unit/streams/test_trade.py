"""Issue 16: customs, verified identities, the electronic release and the letter of credit, on the example trade
journey (examples/journey-trade.jsonl) and variations of it, with the registry of examples/parties.json."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from connectors.parties import load_parties
from schemas.events import HUB_EVENT, HubEvent
from schemas.identifiers import Eori, Lei, Uscc
from schemas.messages import ReleaseMessage
from schemas.record import ShipmentRecord
from streams.merge import ShipmentState, apply, fold
from streams.outbound import release_messages
from streams.release import newly_issued

REPO = Path(__file__).resolve().parents[3]
SHIPMENT = "SHP-2026-000046"
AUTHORITY = load_parties(REPO / "examples" / "parties.json").authority()
Doc = dict[str, Any]


def trade_docs() -> list[Doc]:
    return [orjson.loads(line) for line in (REPO / "examples" / "journey-trade.jsonl").read_bytes().splitlines() if line]


def by_id(docs: list[Doc], event_id: str) -> Doc:
    return next(d for d in docs if d["event_id"] == event_id)


def parsed(docs: list[Doc]) -> list[HubEvent]:
    return [HUB_EVENT.validate_python(d) for d in docs]


def record(docs: list[Doc], authority: Any = AUTHORITY) -> ShipmentRecord:
    return fold(parsed(docs), authority)[SHIPMENT]


def without(docs: list[Doc], *event_ids: str) -> list[Doc]:
    return [d for d in docs if d["event_id"] not in event_ids]


def variant(docs: list[Doc], event_id: str, **payload: Any) -> list[Doc]:
    out = copy.deepcopy(docs)
    by_id(out, event_id)["payload"].update(payload)
    return out


# --- the example --------------------------------------------------------------------------------------------------


def test_the_example_trade_journey_folds_to_every_trade_part() -> None:
    folded = record(trade_docs())
    assert folded.rejected == []
    body = folded.model_dump(mode="json")
    assert {"customs", "release", "letter_of_credit", "verifications"} <= body.keys()
    export, import_ = folded.customs
    assert (export.direction, export.status, export.holds) == ("export", "released", [])
    assert (import_.direction, import_.status) == ("import", "released")
    [hold] = import_.holds
    assert (hold.kind, hold.opened_by, hold.cleared_by) == (
        "under_inspection", "customs.my-rmcd/cus-im-inspect", "customs.my-rmcd/cus-im-released"
    )
    states = {v.party_id: v.state for v in folded.verifications}
    assert states["shipper.chengdu-elec"] == states["consignee.johor-assembly"] == states["bank.maybank"] == "verified"
    assert states["carrier.oceanline"] == "unverified"
    assert folded.through_document is not None and folded.through_document.status == "surrendered"
    assert folded.through_document.surrendered_by == "consignee.johor-assembly/mtd-1-surrender"
    credit = folded.letter_of_credit
    assert credit is not None and credit.presentation is not None
    assert credit.presentation.result == "discrepant"
    assert [d.code for d in credit.presentation.discrepancies] == ["insurance_under_cover"]
    release = folded.release
    assert release is not None and release.status == "issued"
    assert (release.release_id, release.to, release.location) == (f"{SHIPMENT}/release", "consignee.johor-assembly", "MYPKG")
    # issued when the inspection hold cleared: the last condition to hold (the eBL was surrendered the day before)
    assert release.issued_at == hold.cleared_at


# --- customs ------------------------------------------------------------------------------------------------------


def test_a_hold_blocks_the_release_until_customs_clears_it() -> None:
    folded = record(without(trade_docs(), "cus-im-released"))
    assert folded.customs[1].status == "under_inspection" and folded.customs[1].holds[0].cleared_by is None
    assert folded.release is not None and folded.release.status == "blocked" and folded.release.release_id is None
    customs = next(c for c in folded.release.conditions if c.name == "customs")
    assert not customs.met and customs.reason == "the import declaration at MYPKG is under_inspection"


def test_a_released_declaration_takes_no_later_status() -> None:
    docs = trade_docs()
    late = copy.deepcopy(by_id(docs, "cus-im-inspect"))
    late.update(event_id="cus-im-late-hold", occurred_at="2026-04-20T08:00:00Z", recorded_at="2026-04-20T08:03:00Z")
    late["payload"]["status"] = "held"
    folded = record(docs + [late])
    assert folded.customs[1].status == "released" and folded.release is not None and folded.release.status == "issued"
    assert [(r.event, r.kind) for r in folded.rejected] == [("customs.my-rmcd/cus-im-late-hold", "conflict")]


# --- identifiers --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "good", "bad"),
    [
        (Uscc, "91510100MA61R8XQ15", "91510100MA61R8XQ16"),  # GB 32100-2015 check character
        (Uscc, "91110000717830650E", "91110000717830650F"),
        (Lei, "5493008H3KQ1T7ZK8R51", "5493008H3KQ1T7ZK8R52"),  # ISO 17442: ISO 7064 mod 97-10
        (Lei, "254900XQ2R7M1KZ4HL14", "254900XQ2R7M1KZ4HL41"),
        (Lei, "5493008H3KQ1T7ZK8R51", "5493008h3kq1t7zk8r51"),  # valid once upper-cased: refused as written
        (Uscc, "91510100MA61R8XQ15", "91510100ma61r8xq15"),
        (Eori, "DE123456789012345", "123456789"),
    ],
)
def test_legal_identifiers_are_checked_by_their_check_characters(kind: Any, good: str, bad: str) -> None:
    adapter = TypeAdapter(kind)
    assert adapter.validate_python(good) == good
    with pytest.raises(ValidationError):
        adapter.validate_python(bad)


def test_a_verification_names_an_identifier_and_expires() -> None:
    docs = trade_docs()
    bare = copy.deepcopy(by_id(docs, "idv-1"))
    del bare["payload"]["uscc"]
    with pytest.raises(ValidationError, match="at least one legal identifier"):
        HUB_EVENT.validate_python(bare)
    lapsed = variant(docs, "idv-1", valid_until="2026-04-10T00:00:00Z")  # before the journey's last event
    states = {v.party_id: v.state for v in record(lapsed).verifications}
    assert states["shipper.chengdu-elec"] == "expired"


# the MTO's require_verified_parties option on
STRICT = dataclasses.replace(
    AUTHORITY, operators=tuple(dataclasses.replace(o, require_verified=True) for o in AUTHORITY.operators)
)
CARRIERS = ("carrier.cr-rail", "carrier.oceanline")


def verification(party: str, event_id: str, *, source: str = "verifier.trade-id", at: str = "2026-03-30T03:00:00Z",
                 valid_until: str = "2027-03-30T00:00:00Z", outcome: str = "verified") -> Doc:
    """A finding on `party`, identified by an EORI (checked by its format)."""
    return {
        "event_id": event_id, "source": source, "event_type": "identity", "shipment_id": SHIPMENT,
        "occurred_at": at, "recorded_at": at,
        "payload": {"party_id": party, "legal_name": party, "outcome": outcome, "verification_source": "registry extract",
                    "valid_until": valid_until, "eori": "MY" + "".join(c for c in party if c.isalnum()).upper()[:15]},
    }


def carriers_verified(docs: list[Doc], *but: str) -> list[Doc]:
    """`docs` with a trusted verifier's finding for each carrier of the booking except `but`."""
    return docs + [verification(c, f"idv-{c}") for c in CARRIERS if c not in but]


def test_the_verified_parties_option_blocks_a_release_to_an_unverified_party() -> None:
    assert record(carriers_verified(trade_docs()), STRICT).release.status == "issued"  # type: ignore[union-attr]
    # the consignee's verification lapses before delivery: the booking counted, the release waits for the consignee
    late = variant(trade_docs(), "idv-3", valid_until="2026-04-12T00:00:00Z")
    blocked = record(carriers_verified(late), STRICT).release
    assert blocked is not None and blocked.status == "blocked"
    [condition] = [c for c in blocked.conditions if not c.met]
    assert (condition.name, condition.reason) == ("verified_parties", "not verified: consignee.johor-assembly")


def test_the_verified_parties_option_holds_a_booking_naming_an_unverified_party_with_its_reason() -> None:
    held = record(carriers_verified(trade_docs(), "carrier.oceanline"), STRICT)
    assert held.booking is None and held.status == "awaiting_booking" and held.release is None
    [refusal] = [r for r in held.rejected if r.event == "mto.westcorridor/bkg-1"]
    assert refusal.kind == "conflict"
    assert refusal.reason == (
        "mto.westcorridor books only verified parties; not verified at 2026-04-01T01:00:00+00:00: carrier.oceanline (unverified)"
    )
    # a finding made before the booking that arrives late admits it: the same record as with it from the start
    admitted = record(carriers_verified(trade_docs()), STRICT)
    assert admitted.booking is not None and not [r for r in admitted.rejected if r.event == "mto.westcorridor/bkg-1"]
    # one made after the booking does not: the MTO books again (a revision) once its parties are verified
    after = carriers_verified(trade_docs(), "carrier.oceanline") + [
        verification("carrier.oceanline", "idv-late", at="2026-04-02T00:00:00Z")
    ]
    assert record(after, STRICT).booking is None
    rebooked = copy.deepcopy(after)
    by_id(rebooked, "bkg-1")["revised_at"] = "2026-04-02T01:00:00Z"
    assert record(rebooked, STRICT).booking is not None
    # without the option nothing waits
    assert record(carriers_verified(trade_docs(), "carrier.oceanline")).booking is not None


def paid_in_full(docs: list[Doc]) -> list[Doc]:
    """`docs` (whose legs the example charges 900.00 + 1450.00 USD) with the whole invoice paid, so the carriers'
    payouts fall due."""
    payment = {"payment_id": "PMT-46-1", "payer": "shipper.chengdu-elec", "amount": {"amount": "2350.00", "currency": "USD"}}
    return docs + [
        {
            "event_id": "pay-1", "source": "shipper.chengdu-elec", "event_type": "payment", "shipment_id": SHIPMENT,
            "occurred_at": "2026-04-13T20:00:00Z", "recorded_at": "2026-04-13T20:00:00Z", "payload": payment,
        }
    ]


def test_the_verified_parties_option_holds_a_payout_to_a_carrier_no_longer_verified_with_its_reason() -> None:
    # the ocean carrier was verified when booked, but its verification lapsed before the invoice was paid
    docs = paid_in_full(carriers_verified(trade_docs(), "carrier.oceanline")) + [
        verification("carrier.oceanline", "idv-oc", valid_until="2026-04-10T00:00:00Z")
    ]
    settlement = record(docs, STRICT).settlement
    assert settlement is not None and settlement.status == "paid"
    payouts = {p.carrier: p for p in settlement.payouts}
    assert payouts["carrier.oceanline"].status == "held"
    assert (payouts["carrier.cr-rail"].status, payouts["carrier.cr-rail"].held_reason) == ("released", None)
    assert payouts["carrier.oceanline"].held_reason == (
        "mto.westcorridor pays only verified parties; not verified: carrier.oceanline (expired)"
    )
    # renewed: released; without the option: released
    renewed = docs + [verification("carrier.oceanline", "idv-oc-2", at="2026-04-13T00:00:00Z")]
    assert {p.status for p in record(renewed, STRICT).settlement.payouts} == {"released"}  # type: ignore[union-attr]
    assert {p.status for p in record(docs).settlement.payouts} == {"released"}  # type: ignore[union-attr]


# --- release: conditions in any order ----------------------------------------------------------------------------


def _conditions_hold(folded: ShipmentRecord) -> bool:
    """The release conditions, read independently of streams.release."""
    imports = [c for c in folded.customs if c.direction == "import"]
    through = folded.through_document
    return (
        bool(imports)
        and all(c.status == "released" for c in imports)
        and through is not None
        and through.status == "surrendered"
        and through.surrendered_by == "consignee.johor-assembly/mtd-1-surrender"
    )


# Besides the journey: a hold reported after the release, a repeat of the customs release, and a surrender by a party
# that does not hold the eBL. None may issue a second release or an early one.
def _extras() -> list[Doc]:
    docs = trade_docs()
    late = copy.deepcopy(by_id(docs, "cus-im-inspect"))
    late.update(event_id="cus-im-late-hold", occurred_at="2026-04-20T08:00:00Z")
    again = copy.deepcopy(by_id(docs, "cus-im-released"))
    again.update(event_id="cus-im-released-again", occurred_at="2026-04-13T16:00:00Z")
    thief = copy.deepcopy(by_id(docs, "mtd-1-surrender"))
    thief.update(event_id="mtd-1-surrender-by-carrier", source="carrier.oceanline", occurred_at="2026-04-11T22:00:00Z")
    return [late, again, thief]


ALL = parsed(trade_docs() + _extras())


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(
    order=st.permutations(range(len(ALL))),
    repeats=st.lists(st.integers(0, len(ALL) - 1), max_size=10),
    positions=st.lists(st.integers(0, len(ALL) + 10), min_size=10, max_size=10),
)
def test_the_release_is_issued_once_and_never_before_its_conditions_whatever_the_order(
    order: list[int], repeats: list[int], positions: list[int]
) -> None:
    arrivals = [ALL[i] for i in order]
    for n, i in enumerate(repeats):  # duplicates, anywhere
        arrivals.insert(positions[n] % (len(arrivals) + 1), ALL[i])
    state, before = ShipmentState(SHIPMENT), None
    issued_at_version = []
    for event in arrivals:
        after_state = apply(state, event)
        if after_state is state:
            continue
        state = after_state
        after = fold_state(state)
        if newly_issued(before, after):
            issued_at_version.append(after.version)
            assert _conditions_hold(after), "a release before its conditions hold"
            assert len(release_messages(before, after)) == 1
        else:
            assert release_messages(before, after) == []
        before = after
    assert len(issued_at_version) == 1
    assert before is not None and before == record(trade_docs() + _extras())


def fold_state(state: ShipmentState) -> ShipmentRecord:
    from streams.merge import project

    return project(state, AUTHORITY)


def test_a_release_message_carries_the_release_once() -> None:
    blocked = record(without(trade_docs(), "cus-im-released"))
    issued = record(trade_docs())
    [message] = release_messages(blocked, issued)
    body = orjson.loads(message)
    assert ReleaseMessage.model_validate_json(message).release == issued.release  # what the AsyncAPI document says
    assert (body["kind"], body["shipment_id"], body["release"]["release_id"]) == ("release", SHIPMENT, f"{SHIPMENT}/release")
    assert release_messages(issued, issued) == [] and release_messages(None, blocked) == []


def test_freight_unpaid_without_credit_terms_blocks_the_release() -> None:
    no_credit = dataclasses.replace(
        AUTHORITY, operators=tuple(dataclasses.replace(o, credit_terms=frozenset()) for o in AUTHORITY.operators)
    )
    release = record(trade_docs(), no_credit).release
    assert release is not None and release.status == "blocked"
    [freight] = [c for c in release.conditions if c.name == "freight"]
    assert freight.reason == "the freight is not paid yet"  # the legs' charges are invoiced, unpaid


# --- letter of credit: UCP 600 checks with worked figures ---------------------------------------------------------


def _codes(docs: list[Doc]) -> list[str]:
    credit = record(docs).letter_of_credit
    assert credit is not None and credit.presentation is not None
    return [d.code for d in credit.presentation.discrepancies]


def _complying() -> list[Doc]:
    """The example with cover of 453,200.00 USD: exactly 110 % of the 412,000.00 CIF invoice, so nothing is wrong."""
    return variant(trade_docs(), "pol-1", insured_value={"amount": "453200.00", "currency": "USD"})


def test_a_complying_presentation_has_no_discrepancy() -> None:
    credit = record(_complying()).letter_of_credit
    assert credit is not None and credit.presentation is not None and credit.presentation.result == "complying"


def test_invoice_within_the_credit_and_its_tolerance() -> None:
    # credit 412,000.00 USD, tolerance 5 %: the ceiling is 432,600.00
    assert _codes(variant(_complying(), "civ-1", amount={"amount": "432600.00", "currency": "USD"})) == [
        "insurance_under_cover"  # 453,200.00 < 110 % of 432,600.00 = 475,860.00
    ]
    over = variant(_complying(), "civ-1", amount={"amount": "432600.01", "currency": "USD"})
    credit = record(over).letter_of_credit
    assert credit is not None and credit.presentation is not None
    reasons = {d.code: d.reason for d in credit.presentation.discrepancies}
    assert "432600.01 USD exceeds the credit 412000.00 + 5 % = 432600.00" in reasons["invoice_over_credit"]
    assert _codes(variant(_complying(), "civ-1", amount={"amount": "412000.00", "currency": "EUR"})) == ["invoice_currency"]


def test_insurance_cover_and_currency() -> None:
    credit = record(trade_docs()).letter_of_credit
    assert credit is not None and credit.presentation is not None
    [under] = credit.presentation.discrepancies
    assert under.rule == "UCP 600 art. 28 f ii"
    assert under.reason == "insured 440000.00 USD, less than 110 % of the CIF value 412000.00 = 453200.00"
    assert _codes(variant(trade_docs(), "pol-1", insured_value={"amount": "500000.00", "currency": "CNY"})) == [
        "insurance_currency"
    ]


def test_late_shipment_and_late_presentation() -> None:
    # the transport document is dated 2026-04-02; the latest shipment date moved to 2026-04-01
    assert _codes(variant(_complying(), "lc-terms", latest_shipment="2026-04-01T23:59:59Z")) == ["late_shipment"]
    # 21 days after 2026-04-02 is 2026-04-23: presenting on the 23rd complies, on the 24th it is late
    on_time = copy.deepcopy(_complying())
    by_id(on_time, "lc-present")["occurred_at"] = "2026-04-23T10:00:00Z"
    assert _codes(on_time) == []
    late = copy.deepcopy(_complying())
    by_id(late, "lc-present")["occurred_at"] = "2026-04-24T10:00:00Z"
    assert _codes(late) == ["late_presentation"]
    expired = variant(late, "lc-terms", expiry="2026-04-20T23:59:59Z")
    assert _codes(expired) == ["late_presentation", "credit_expired"]


def test_ports_and_documents_match_the_credit() -> None:
    assert _codes(variant(_complying(), "lc-terms", port_of_discharge="SGSIN")) == ["port_of_discharge"]
    short = variant(_complying(), "lc-present", documents=["transport_document", "commercial_invoice"])
    assert _codes(short) == ["document_not_presented"]
    assert _codes(without(_complying(), "civ-1")) == ["document_missing"]


def test_freight_paid_releases_without_credit_terms() -> None:
    no_credit = dataclasses.replace(
        AUTHORITY, operators=tuple(dataclasses.replace(o, credit_terms=frozenset()) for o in AUTHORITY.operators)
    )

    def doc(event_id: str, source: str, event_type: str, at: str, payload: Doc) -> Doc:
        return {
            "event_id": event_id, "source": source, "event_type": event_type, "shipment_id": SHIPMENT,
            "occurred_at": at, "recorded_at": at, "payload": payload,
        }

    usd = lambda amount: {"amount": amount, "currency": "USD"}  # noqa: E731
    part = doc("pay-1", "shipper.chengdu-elec", "payment", "2026-04-13T20:00:00Z",
               {"payment_id": "PMT-46-1", "payer": "shipper.chengdu-elec", "amount": usd("2000.00")})
    rest = doc("pay-2", "shipper.chengdu-elec", "payment", "2026-04-14T10:00:00Z",
               {"payment_id": "PMT-46-2", "payer": "shipper.chengdu-elec", "amount": usd("350.00")})
    partly = record(trade_docs() + [part], no_credit).release
    assert partly is not None and partly.status == "blocked"
    assert [c.reason for c in partly.conditions if not c.met] == ["the freight is not paid yet"]
    paid = record(trade_docs() + [part, rest], no_credit).release
    assert paid is not None and paid.status == "issued"
    # issued when the last payment settled the invoice, after customs had released the goods
    assert paid.issued_at is not None and paid.issued_at.isoformat() == "2026-04-14T10:00:00+00:00"
