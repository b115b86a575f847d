"""Attacks on money and the e-BL (a review, 2026-12-05): a backdated second endorsement, a carrier's credit beyond
its own charges, a payout in a currency no verified invoice bills, another insurer deciding the policy's claim, and
one damage made into two claims (a payout in a currency no verified invoice bills: test_invoice_authority.py)."""

from __future__ import annotations

from pathlib import Path

from schemas.record import ShipmentRecord
from streams.merge import fold
from streams.authority import Authority, Operator
from tests.security.test_ebl_authority import through
from tests.unit.builders import (
    RATE_SOURCES,
    claim_doc,
    policy_doc,
    tracking_doc,
    AUTHORITY,
    MTO,
    SHIPMENT,
    Doc,
    booking_doc,
    hub_event,
    settlement_doc,
)

REPO = Path(__file__).resolve().parents[2]


def record(*docs: Doc) -> ShipmentRecord:
    return fold([hub_event(doc) for doc in docs], AUTHORITY)[SHIPMENT]


# --- the through document: a previous holder endorses it again, dated before its first endorsement ------------------


def test_a_previous_holder_cannot_endorse_the_ebl_again_by_backdating() -> None:
    chain = [
        booking_doc(),
        through("issued", source=MTO, event_id="issue", occurred=10, holder="shipper.test"),
        through("transferred", source="shipper.test", event_id="to-bank", occurred=20, holder="bank.test"),
        through("surrendered", source="bank.test", event_id="surrender", occurred=30),
    ]
    honest = record(*chain).through_document
    assert honest is not None and (honest.status, honest.surrendered_by) == ("surrendered", "bank.test/surrender")

    # The shipper sold the bill to the bank, which took delivery. Later the shipper signs a second endorsement of
    # the same bill to an accomplice, dated before the first: the chain is re-ordered by the sender's timestamp.
    double = through("transferred", source="shipper.test", event_id="to-mate", occurred=15, holder="consignee.test")
    grab = through("surrendered", source="consignee.test", event_id="grab", occurred=40)
    stolen = record(*chain, double, grab).through_document
    assert stolen is not None
    assert stolen.surrendered_by != "consignee.test/grab", "the shipper endorsed the same bill twice"
    assert stolen.holder != "consignee.test"

    # the same with a surrender: the shipper takes delivery itself, dated before it endorsed the bill to the bank
    taken = through("surrendered", source="shipper.test", event_id="take", occurred=15)
    kept = record(*chain, taken).through_document
    assert kept is not None and kept.surrendered_by != "shipper.test/take"


# --- a carrier's credit makes the shipper's invoice negative: paid without a payment ---------------------------------


def test_a_carrier_cannot_mark_the_invoice_paid_by_a_negative_charge() -> None:
    charges = [
        settlement_doc([("FRT", "100.00", "USD")], leg=1, event_id="chg-1", occurred=10),
        settlement_doc([("FRT", "100.00", "USD")], leg=2, event_id="chg-2", occurred=20),
        # the sea carrier's "rebate" is larger than the whole freight
        settlement_doc([("FRT", "-1000.00", "USD")], leg=3, event_id="chg-3", occurred=30),
    ]
    result = record(booking_doc(), *charges)
    settlement = result.settlement
    assert settlement is not None and settlement.payments == []
    assert settlement.status not in ("paid", "overpaid"), (settlement.status, settlement.balance)
    assert [p.status for p in settlement.payouts if p.amount.amount > 0] == ["pending", "pending"]


# --- claims: decided by the policy's own insurer; one damage, one claim -----------------------------------------------

TWO_INSURERS = Authority.of([Operator(MTO, ("SHP-TEST-",), frozenset({"insurer.test", "insurer.other"}), RATE_SOURCES)])


def test_another_insurer_of_the_mto_cannot_decide_the_policys_claim() -> None:
    # The MTO places cover with two insurers; this shipment's policy is insurer.test's. insurer.other (a competitor,
    # with no part in this policy) rejects the claim, and settles it for a token amount, dated after the real answer.
    claim_id = f"CLM-{SHIPMENT}-damage-L2"
    base = [booking_doc(), policy_doc(), tracking_doc("damaged", leg=2, occurred=25)]
    real = claim_doc(claim_id, "assessed", event_id="upd-1", occurred=40)
    rival = {**claim_doc(claim_id, "rejected", event_id="upd-x", occurred=41), "source": "insurer.other"}
    result = fold([hub_event(d) for d in (*base, real, rival)], TWO_INSURERS)[SHIPMENT]
    [claim] = [c for c in result.claims if c.claim_id == claim_id]
    assert (claim.insurer, claim.status, claim.status_set_by) == ("insurer.test", "assessed", "insurer.test/upd-1")


def test_one_damage_reported_with_and_without_its_leg_is_one_claim() -> None:
    # The sea carrier reports the container damaged on its leg; the MTO (which may report on any leg) passes the
    # same damage on to the hub without naming the leg. One damaged container: one claim, localised, not two claims
    # for the insurer (one of them with recourse against nobody).
    localised = tracking_doc("damaged", leg=3, occurred=70)
    relayed = tracking_doc("damaged", leg=None, source=MTO, event_id="mto-damage", occurred=71)
    result = record(booking_doc(), policy_doc(), localised, relayed)
    damage = [c for c in result.claims if c.kind == "damage"]
    assert [(c.claim_id, c.evidence) for c in damage] == [
        (f"CLM-{SHIPMENT}-damage-L3", ["carrier.sea/trk-3-damaged-act", f"{MTO}/mto-damage"])
    ]


def test_the_same_endorsement_or_surrender_sent_again_is_refused_not_disputed() -> None:
    # a carrier's system re-sends its message under a new event id: nothing is re-routed, so nothing is disputed
    chain = [
        booking_doc(),
        through("issued", source=MTO, event_id="issue", occurred=10, holder="shipper.test"),
        through("transferred", source="shipper.test", event_id="to-bank", occurred=20, holder="bank.test"),
        through("transferred", source="shipper.test", event_id="to-bank-again", occurred=21, holder="bank.test"),
        through("surrendered", source="bank.test", event_id="surrender", occurred=30),
        through("surrendered", source="bank.test", event_id="surrender-again", occurred=31),
    ]
    folded = record(*chain)
    document = folded.through_document
    assert document is not None and (document.status, document.surrendered_by) == ("surrendered", "bank.test/surrender")
    refused = {r.event.split("/")[-1]: r for r in folded.rejected}
    assert set(refused) == {"to-bank-again", "surrender-again"}
    assert all(r.kind == "conflict" and "disputed" not in r.reason for r in refused.values())


def test_a_bill_endorsed_back_or_reissued_to_a_former_holder_may_be_endorsed_by_it_again() -> None:
    chain = [
        booking_doc(),
        through("issued", source=MTO, event_id="issue", occurred=10, holder="shipper.test"),
        through("transferred", source="shipper.test", event_id="to-bank", occurred=20, holder="bank.test"),
        through("transferred", source="bank.test", event_id="back", occurred=30, holder="shipper.test"),
        through("transferred", source="shipper.test", event_id="to-consignee", occurred=40, holder="consignee.test"),
    ]
    document = record(*chain).through_document
    assert document is not None and document.holder == "consignee.test"
    amended = [
        *chain[:3],
        through("surrendered_for_amendment", source=MTO, event_id="amend", occurred=30),
        through("issued", source=MTO, event_id="reissue", occurred=35, holder="shipper.test"),
        through("transferred", source="shipper.test", event_id="to-consignee", occurred=40, holder="consignee.test"),
    ]
    document = record(*amended).through_document
    assert document is not None and document.holder == "consignee.test"
