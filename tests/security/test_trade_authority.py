"""Attackers against the trade parts (issue 16): authority comes from the party registry and the eBL's chain of
holders, never from what an event says about its sender. Each forged event is refused as `not_entitled` (so the
worker dead-letters it) and changes nothing the record decides."""

from __future__ import annotations

import copy

from tests.unit.streams.test_trade import by_id, record, trade_docs, without

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
