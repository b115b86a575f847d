"""Attackers against the trade parts (issue 16): authority comes from the party registry and the eBL's chain of
holders, never from what an event says about its sender. Each forged event is refused as `not_entitled` (so the
worker dead-letters it) and changes nothing the record decides."""

from __future__ import annotations

import copy

import orjson

from streams.step import merge_step
from tests.unit.streams.test_trade import (
    SHIPMENT,
    STRICT,
    paid_in_full,
    by_id,
    carriers_verified,
    parsed,
    record,
    trade_docs,
    verification,
    without,
)

CONSIGNEE, SHIPPER, CARRIER = "consignee.johor-assembly", "shipper.chengdu-elec", "carrier.oceanline"


def _forged(event_id: str, new_id: str, source: str, **payload: object) -> dict:
    doc = copy.deepcopy(by_id(trade_docs(), event_id))
    doc.update(event_id=new_id, source=source)
    doc["payload"].update(payload)
    return doc


def _refused(folded, key: str, kind: str = "not_entitled") -> str:  # type: ignore[no-untyped-def]
    [refusal] = [r for r in folded.rejected if r.event == key]
    assert refusal.kind == kind
    return refusal.reason


def test_only_the_customs_authority_releases_a_declaration() -> None:
    # the import is still under inspection; a carrier, the consignee and the declarant each try to release it
    docs = without(trade_docs(), "cus-im-released")
    forged = [
        _forged("cus-im-inspect", "fake-release-carrier", CARRIER, status="released", raw_code="RELEASED"),
        _forged("cus-im-inspect", "fake-release-consignee", CONSIGNEE, status="released", raw_code="RELEASED"),
        _forged("cus-im-inspect", "fake-release-broker", "broker.customs-jb", status="released", raw_code="RELEASED"),
    ]
    folded = record(docs + forged)
    assert "neither a customs authority" in _refused(folded, f"{CARRIER}/fake-release-carrier")
    assert "neither a customs authority" in _refused(folded, f"{CONSIGNEE}/fake-release-consignee")
    assert "only the customs authority says" in _refused(folded, "broker.customs-jb/fake-release-broker")
    assert folded.customs[1].status == "under_inspection"
    assert folded.release is not None and folded.release.status == "blocked"


def test_a_broker_lodges_only_its_own_declarations() -> None:
    forged = _forged("cus-im-lodged", "lodge-for-another", "broker.qinzhou-trade", declaration_number="B10-FAKE-1")
    folded = record(trade_docs() + [forged])
    assert "declarant broker.customs-jb" in _refused(folded, "broker.qinzhou-trade/lodge-for-another")
    assert [c.declaration_number for c in folded.customs] == ["531620260000460461", "B10-2604-004611"]


def test_only_a_registry_trusted_verifier_verifies_a_party() -> None:
    # the consignee was never verified; it vouches for itself, and so does an (untrusted) bank for it
    docs = without(trade_docs(), "idv-3")
    forged = [
        _forged("idv-3", "self-verify", CONSIGNEE),
        _forged("idv-3", "bank-verify", "bank.maybank"),
    ]
    folded = record(docs + forged)
    for key in (f"{CONSIGNEE}/self-verify", "bank.maybank/bank-verify"):
        assert "not a verifier the registry trusts" in _refused(folded, key)
    assert {v.party_id: v.state for v in folded.verifications}[CONSIGNEE] == "unverified"


def test_only_the_holder_of_the_ebl_surrenders_it() -> None:
    # after the transfer the consignee holds the eBL: the shipper (its former holder) and a carrier try first
    docs = without(trade_docs(), "mtd-1-surrender")
    forged = [
        _forged("mtd-1-surrender", "surrender-by-shipper", SHIPPER, holder=SHIPPER),
        _forged("mtd-1-surrender", "surrender-by-carrier", CARRIER),
    ]
    folded = record(docs + forged)
    for key in (f"{SHIPPER}/surrender-by-shipper", f"{CARRIER}/surrender-by-carrier"):
        assert f"only its holder {CONSIGNEE} surrenders" in _refused(folded, key, "conflict")
    assert folded.through_document is not None and folded.through_document.status == "issued"
    assert folded.release is not None and folded.release.status == "blocked"
    # the issuer may record a surrender made to it, but not one by a party that does not hold the eBL
    by_issuer = _forged("mtd-1-surrender", "issuer-names-shipper", "mto.westcorridor", holder=SHIPPER)
    assert f"only its holder {CONSIGNEE}" in _refused(record(docs + [by_issuer]), "mto.westcorridor/issuer-names-shipper", "conflict")


def test_only_the_issuing_bank_states_the_credit() -> None:
    # the beneficiary restates the credit with a larger amount; a bank that is not the issuing bank names another
    forged = [
        _forged("lc-terms", "terms-by-beneficiary", SHIPPER, amount={"amount": "900000.00", "currency": "USD"}),
        _forged("lc-terms", "terms-by-shipper-as-bank", SHIPPER, issuing_bank=SHIPPER),
        _forged("lc-terms", "terms-for-another-bank", "bank.maybank", issuing_bank="insurer.picc"),
    ]
    for doc in forged:
        doc["occurred_at"] = "2026-03-26T03:00:00Z"  # later than the real terms: a latest-wins rule would take them
    folded = record(trade_docs() + forged)
    for key in (f"{SHIPPER}/terms-by-beneficiary", f"{SHIPPER}/terms-by-shipper-as-bank", "bank.maybank/terms-for-another-bank"):
        assert "states the credit's terms" in _refused(folded, key)
    credit = folded.letter_of_credit
    assert credit is not None and credit.terms_set_by == "bank.maybank/lc-terms"
    assert str(credit.terms.amount.amount) == "412000.00"


def test_only_the_beneficiary_or_a_bank_presents_and_only_the_seller_invoices() -> None:
    presentation = _forged("lc-present", "present-by-carrier", CARRIER)
    presentation["occurred_at"] = "2026-04-10T02:00:00Z"
    invoice = _forged("civ-1", "invoice-by-consignee", CONSIGNEE, amount={"amount": "1.00", "currency": "USD"})
    invoice["occurred_at"] = "2026-04-03T05:00:00Z"
    folded = record(trade_docs() + [presentation, invoice])
    assert "only the beneficiary" in _refused(folded, f"{CARRIER}/present-by-carrier")
    assert "only the seller" in _refused(folded, f"{CONSIGNEE}/invoice-by-consignee")
    credit = folded.letter_of_credit
    assert credit is not None and credit.presentation is not None
    assert (credit.presentation.set_by, credit.presentation.invoice_set_by) == (f"{SHIPPER}/lc-present", f"{SHIPPER}/civ-1")


# --- require_verified_parties: bookings and payouts (issue 16, item 2) --------------------------------------------
# Verification counts only from a verifier the registry trusts, and only while it is valid: a carrier vouching for
# itself, or a trusted finding that expired before the booking, admits no booking and frees no payout.


def test_a_carrier_verifying_itself_gets_its_booking_held_and_the_forgery_dead_lettered() -> None:
    # the ocean carrier, never verified, publishes a finding on itself (and one on the cr-rail carrier, too)
    forged = [
        verification(CARRIER, "self-verify", source=CARRIER),
        verification("carrier.cr-rail", "vouch-for-partner", source=CARRIER),
    ]
    docs = trade_docs() + forged
    folded = record(docs, STRICT)
    assert "not a verifier the registry trusts" in _refused(folded, f"{CARRIER}/self-verify")
    assert folded.booking is None and folded.status == "awaiting_booking"
    [held] = [r for r in folded.rejected if r.event == "mto.westcorridor/bkg-1"]
    assert held.kind == "conflict"
    assert "not verified at 2026-04-01T01:00:00+00:00: carrier.cr-rail (unverified), carrier.oceanline (unverified)" in held.reason
    # in the worker's step: the forgeries are dead-lettered with the bytes they came in, the booking is only held
    items = [(orjson.dumps(doc), event) for doc, event in zip(docs, parsed(docs))]
    result = merge_step(SHIPMENT, None, items, STRICT, resend_on_replay=False)
    assert {r.source for r in result.refusals} == {orjson.dumps(doc) for doc in forged}
    assert result.releases == [] and result.write is not None and result.write.record.booking is None


def test_an_expired_verification_admits_no_booking() -> None:
    # a trusted verifier did verify the ocean carrier, but that finding ran out before the MTO booked
    lapsed = verification(CARRIER, "idv-oc", at="2026-01-05T00:00:00Z", valid_until="2026-03-31T00:00:00Z")
    folded = record(carriers_verified(trade_docs(), CARRIER) + [lapsed], STRICT)
    assert folded.booking is None
    [held] = [r for r in folded.rejected if r.event == "mto.westcorridor/bkg-1"]
    assert held.reason.endswith("not verified at 2026-04-01T01:00:00+00:00: carrier.oceanline (expired)")
    # a failed finding later than a good one stands too
    failed = verification(CARRIER, "idv-oc-failed", at="2026-03-31T00:00:00Z", outcome="failed")
    folded = record(carriers_verified(trade_docs()) + [failed], STRICT)
    assert folded.booking is None


def test_a_payout_to_a_carrier_that_verified_itself_is_held_with_its_reason() -> None:
    # booked while the ocean carrier was verified; its verification lapsed, and it "renews" it itself
    docs = paid_in_full(carriers_verified(trade_docs(), CARRIER)) + [
        verification(CARRIER, "idv-oc", valid_until="2026-04-10T00:00:00Z"),
        verification(CARRIER, "self-renew", source=CARRIER, at="2026-04-13T00:00:00Z"),
    ]
    folded = record(docs, STRICT)
    assert "not a verifier the registry trusts" in _refused(folded, f"{CARRIER}/self-renew")
    assert folded.settlement is not None and folded.settlement.status == "paid"
    [payout] = [p for p in folded.settlement.payouts if p.carrier == CARRIER]
    assert payout.status == "held"
    assert payout.held_reason == "mto.westcorridor pays only verified parties; not verified: carrier.oceanline (expired)"
    assert not [e for e in folded.settlement.ledger if e.memo == f"payout {payout.payout_id}"]  # no money moved
