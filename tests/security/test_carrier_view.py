"""A carrier's view of a shipment shows its own legs, and does not tell it who else carries, insures or finances
the shipment (README, "Sharing"): the verifications list is row-scoped like the legs."""

from __future__ import annotations

import dataclasses

from streams.sharing import entitlements, view
from tests.unit.streams.test_trade import AUTHORITY, record, trade_docs

OTHERS = {"carrier", "insurer", "bank"}


def test_a_carrier_does_not_learn_who_else_carries_insures_or_finances_the_shipment() -> None:
    folded = record(trade_docs())
    parties = entitlements(folded)
    carriers = [p for p, lens in parties.items() if "carrier" in lens.relations]
    assert len(carriers) >= 2
    for carrier in carriers:
        shown = {v["party_id"] for v in view(folded, parties[carrier]).document.get("verifications", [])}
        others = {p for p, lens in parties.items() if p != carrier and OTHERS & set(lens.relations)}
        assert others and not shown & others, f"{carrier} learns of {sorted(shown & others)}"
        # its own verification and the shipment's own parties stay in its view
        assert carrier in shown and {"shipper.chengdu-elec", "consignee.johor-assembly"} <= shown


def test_the_mto_and_the_shipper_still_see_every_verification() -> None:
    folded = record(trade_docs())
    parties = entitlements(folded)
    every = {v.party_id for v in folded.verifications}
    for party in ("mto.westcorridor", "shipper.chengdu-elec"):
        assert {v["party_id"] for v in view(folded, parties[party]).document["verifications"]} == every


def test_the_release_does_not_tell_a_carrier_or_an_insurer_how_the_freight_stands() -> None:
    """The release is graded operational, so every carrier and insurer reads its conditions. The freight condition
    said "freight not paid (partially_paid) and no credit terms", or that the shipper "has credit terms with" the MTO:
    the shipper's payments and its terms with the MTO, which the billing grade withholds from them."""
    no_credit = dataclasses.replace(
        AUTHORITY, operators=tuple(dataclasses.replace(o, credit_terms=frozenset()) for o in AUTHORITY.operators)
    )
    for authority in (AUTHORITY, no_credit):
        folded = record(trade_docs(), authority)
        parties = entitlements(folded)
        for party, lens in parties.items():
            if not {"carrier", "insurer"} & set(lens.relations):
                continue
            shown = view(folded, lens).document
            assert "status" not in shown.get("settlement", {})  # billing: not theirs (a carrier sees its payouts)
            [freight] = [c for c in shown["release"]["conditions"] if c["name"] == "freight"]
            for word in ("paid (", "partially", "issued", "credit terms with", "shipper."):
                assert word not in freight["reason"], (party, freight["reason"])
