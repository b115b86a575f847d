"""Who may say a payment was made, and who may decide a claim: the registry and the booking, never any signer.

Found in the review of issue 12's fix: payments and insurer claim updates were taken from any source. A carrier could
report the shipper's invoice paid and so release its own payout, mark the claim against it rejected, and publish
the SDR rate that sets its own liability limit.
"""

from __future__ import annotations

from schemas.record import ShipmentRecord
from streams.merge import fold

from tests.unit.builders import (
    AUTHORITY,
    SHIPMENT,
    Doc,
    at,
    booking_doc,
    claim_doc,
    envelope,
    hub_event,
    policy_doc,
    tracking_doc,
)
from tests.unit.streams.test_outbound import CHARGES  # one charge of 100.00 USD per leg

CLAIM = f"CLM-{SHIPMENT}-damage-L2"


def payment(source: str) -> Doc:
    payload = {"payment_id": "PMT-1", "payer": "shipper.test", "amount": {"amount": "300.00", "currency": "USD"}}
    return envelope("payment", payload, event_id="pay-1", source=source, occurred=60)


def claim_update(source: str) -> Doc:
    doc = claim_doc(CLAIM, "rejected", event_id="upd-1", occurred=40)
    return {**doc, "source": source}


def record(*docs: Doc) -> ShipmentRecord:
    return fold([hub_event(doc) for doc in docs], AUTHORITY)[SHIPMENT]


def test_a_carrier_reporting_the_invoice_paid_releases_no_payout() -> None:
    forged = record(booking_doc(), *CHARGES, payment("carrier.rail"))
    assert forged.settlement is not None
    assert [p.status for p in forged.settlement.payouts] == ["pending"] * 3
    assert forged.settlement.payments == []
    [refusal] = [r for r in forged.rejected if r.event == "carrier.rail/pay-1"]
    assert refusal.kind == "not_entitled" and "reports a payment" in refusal.reason

    genuine = record(booking_doc(), *CHARGES, payment("shipper.test"))  # the positive marker: the payer's own word
    assert genuine.settlement is not None
    assert [p.status for p in genuine.settlement.payouts] == ["released"] * 3


def test_only_an_insurer_of_the_mto_decides_a_claim() -> None:
    damage = tracking_doc("damaged", leg=2, occurred=25)
    base = [booking_doc(), policy_doc(), damage]
    for stranger in ("carrier.rail", "insurer.rogue", "shipper.test"):
        forged = record(*base, claim_update(stranger))
        [claim] = [c for c in forged.claims if c.claim_id == CLAIM]
        assert claim.status == "opened", (stranger, claim.status)
        assert any(r.event == f"{stranger}/upd-1" and r.kind == "not_entitled" for r in forged.rejected), stranger

    genuine = record(*base, claim_update("insurer.test"))  # the positive marker: the policy's insurer
    [claim] = [c for c in genuine.claims if c.claim_id == CLAIM]
    assert claim.status == "rejected"


def sdr_rate(source: str) -> Doc:
    payload = {"base": "XDR", "quote": "USD", "rate": "0.01", "rate_source": "made up", "as_of": at(1)}
    return envelope("rate", payload, event_id="xdr-usd", source=source, occurred=1)


def test_only_the_mto_or_its_publishers_set_the_sdr_rate_of_a_liability_limit() -> None:
    damage = tracking_doc("damaged", leg=2, occurred=25)
    forged = record(booking_doc(), policy_doc(), damage, sdr_rate("carrier.rail"))
    [claim] = [c for c in forged.claims if c.claim_id == CLAIM]
    assert claim.liability is not None and claim.liability.sdr_rate_set_by is None
    assert any(r.event == "carrier.rail/xdr-usd" and r.kind == "not_entitled" for r in forged.rejected)

    genuine = record(booking_doc(), policy_doc(), damage, sdr_rate("imf.rates"))  # a publisher the MTO takes
    [claim] = [c for c in genuine.claims if c.claim_id == CLAIM]
    assert claim.liability is not None and claim.liability.sdr_rate_set_by == "imf.rates/xdr-usd"
