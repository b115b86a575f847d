"""A bank with no part in a shipment may not attach itself to it with a letter of credit, take its credit over or
present under it: the credit would make it a party that reads the shipment (streams.sharing's `bank` relation, the
`trade_finance` grade). Which banks' credits a shipment takes comes from the registry (the MTO's `banks`), whom a
credit is for from the booking, never from an event's time or arrival order."""

from __future__ import annotations

import copy
import dataclasses

import orjson
import pytest

from connectors.parties import PartyRegistry
from schemas.record import ShipmentRecord
from streams.authority import Authority
from streams.sharing import entitlements
from tests.unit.streams.test_trade import AUTHORITY, REPO, Doc, by_id, record, trade_docs, without

ROGUE = "bank.rogue"  # a bank the registry knows (it trades through the hub), with no part in this shipment
OTHER = "bank.second"  # a second bank the MTO takes credits from


def _with_banks(*banks: str, taken: tuple[str, ...] = ()) -> Authority:
    """The example registry with more registered banks, and more banks whose credits the MTO takes."""
    roles = dict(AUTHORITY.roles)
    roles.update({bank: frozenset({"bank"}) for bank in banks})
    operators = tuple(dataclasses.replace(o, banks=o.banks | frozenset(taken)) for o in AUTHORITY.operators)
    return dataclasses.replace(AUTHORITY, operators=operators, roles=tuple(sorted(roles.items())))


def _terms(new_id: str, bank: str, occurred_at: str, **payload: object) -> Doc:
    doc = copy.deepcopy(by_id(trade_docs(), "lc-terms"))
    doc.update(event_id=new_id, source=bank, occurred_at=occurred_at, recorded_at=occurred_at)
    doc["payload"].update(issuing_bank=bank, credit_number=f"{new_id.upper()}-1", **payload)
    return doc


def _refusal(folded: ShipmentRecord, event_id: str) -> tuple[str, str]:
    [found] = [r for r in folded.rejected if r.event.endswith(f"/{event_id}")]
    return found.kind, found.reason


def test_the_registry_lists_the_banks_an_mto_takes_credits_from() -> None:
    [operator] = [o for o in AUTHORITY.operators if o.mto == "mto.westcorridor"]
    assert operator.banks == frozenset({"bank.maybank"})


def test_a_later_credit_from_a_bank_the_mto_does_not_take_changes_nothing() -> None:
    rogue = _terms("rogue-terms", ROGUE, "2026-03-26T03:00:00Z", amount={"amount": "1.00", "currency": "USD"})
    folded = record(trade_docs() + [rogue], _with_banks(ROGUE))
    credit = folded.letter_of_credit
    assert credit is not None and credit.terms.issuing_bank == "bank.maybank"
    assert _refusal(folded, "rogue-terms") == ("not_entitled", f"{ROGUE} is not a bank whose credits the MTO mto.westcorridor takes")
    assert ROGUE not in entitlements(folded)
    assert "bank.maybank" in entitlements(folded)


def test_a_bank_the_mto_does_not_take_cannot_attach_itself_to_a_shipment_without_a_credit() -> None:
    # it knows the shipment's parties and names them rightly: the registry still does not list it
    rogue = _terms("rogue-terms", ROGUE, "2026-03-26T03:00:00Z")
    folded = record(without(trade_docs(), "lc-terms") + [rogue], _with_banks(ROGUE))
    assert folded.letter_of_credit is None
    assert _refusal(folded, "rogue-terms")[0] == "not_entitled"
    assert ROGUE not in entitlements(folded)


@pytest.mark.parametrize(
    "parties", [{"applicant": ROGUE}, {"beneficiary": "consignee.johor-assembly"}, {"applicant": "shipper.chengdu-elec"}]
)
def test_a_credit_for_other_parties_than_the_shipments_does_not_count(parties: dict[str, str]) -> None:
    terms = _terms("odd-terms", "bank.maybank", "2026-03-26T03:00:00Z", **parties)
    folded = record(without(trade_docs(), "lc-terms") + [terms])
    assert folded.letter_of_credit is None
    kind, reason = _refusal(folded, "odd-terms")
    assert kind == "conflict" and "consignee.johor-assembly" in reason and "shipper.chengdu-elec" in reason


def test_two_banks_the_mto_takes_stating_a_credit_is_a_conflict_whatever_the_order() -> None:
    second = _terms("second-terms", OTHER, "2026-03-26T03:00:00Z")
    docs = trade_docs() + [second]
    authority = _with_banks(OTHER, taken=(OTHER,))
    folded = [record(docs, authority), record(docs[::-1], authority), record([second, *docs[:-1]], authority)]
    assert all(f.letter_of_credit is None for f in folded)
    assert len({f.model_dump_json() for f in folded}) == 1
    assert {_refusal(folded[0], e)[0] for e in ("lc-terms", "second-terms")} == {"conflict"}
    assert OTHER not in entitlements(folded[0]) and "bank.maybank" not in entitlements(folded[0])


def test_only_the_beneficiary_or_the_credits_own_bank_presents_under_it() -> None:
    # a registered bank with no part in the credit presents under it, later than the beneficiary, leaving documents out
    rogue = copy.deepcopy(by_id(trade_docs(), "lc-present"))
    rogue.update(event_id="rogue-present", source=ROGUE, occurred_at="2026-04-10T02:00:00Z", recorded_at="2026-04-10T02:00:00Z")
    rogue["payload"]["documents"] = ["transport_document"]
    folded = record(trade_docs() + [rogue], _with_banks(ROGUE))
    credit = folded.letter_of_credit
    assert credit is not None and credit.presentation is not None
    assert credit.presentation.set_by == "shipper.chengdu-elec/lc-present"
    assert _refusal(folded, "rogue-present")[0] == "not_entitled"


def test_the_registry_refuses_a_bank_list_that_names_no_bank_or_is_not_an_mtos() -> None:
    document = orjson.loads((REPO / "examples" / "parties.json").read_bytes())
    parties = [dict(p) for p in document["parties"]]
    mto = next(p for p in parties if p["party_id"] == "mto.westcorridor")
    mto["banks"] = ["bank.maybank", "carrier.oceanline"]  # a carrier is no bank
    with pytest.raises(ValueError, match="names carrier.oceanline as a bank, but the registry does not"):
        PartyRegistry.model_validate({**document, "parties": parties})
    mto["banks"] = ["bank.maybank"]
    shipper = next(p for p in parties if p["party_id"] == "shipper.chengdu-elec")
    shipper["banks"] = ["bank.maybank"]  # only an MTO's entry says whose credits its shipments take
    with pytest.raises(ValueError, match="is not an MTO"):
        PartyRegistry.model_validate({**document, "parties": parties})
