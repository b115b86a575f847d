"""A carrier's view of a shipment shows its own legs, and does not tell it who else carries, insures or finances
the shipment (README, "Sharing"): the verifications list is row-scoped like the legs."""

from __future__ import annotations

from streams.sharing import entitlements, view
from tests.unit.streams.test_trade import record, trade_docs

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
