"""A documentary credit (信用证) and the basic UCP 600 checks of a presentation against the documents the hub holds.

The terms count only from the issuing bank they name, registered as a `bank` and listed among the banks whose credits
the shipment's MTO takes (the registry's `banks`), and only for the shipment's own parties (its consignee applies
for the credit, its shipper is the beneficiary; terms wait for the booking); terms from two banks are a conflict and
neither counts. The commercial invoice counts only from its seller; a presentation from the beneficiary or the
credit's issuing bank. The checks, each with its rule:

- the shipment date (the transport document's date of issue, art. 19 a ii / 20 a ii) no later than the latest
  shipment date;
- the invoice in the credit's currency (art. 18 a iii) and within its amount and tolerance (art. 30, 18 b);
- the insurance in the credit's currency and for at least `insurance_percent` (110 %) of the CIF value, taken as the
  invoice amount (art. 28 f);
- the ports of loading and discharge of the sea legs (else the journey's ends, art. 19) those of the credit;
- presentation within `presentation_days` (21) calendar days of the shipment date and before expiry (art. 14 c, 6 d);
- every required document presented and held by the hub.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Callable, Iterable, Mapping, Sequence

from schemas.base import Money
from schemas.events import CommercialInvoiceEvent, CreditTermsEvent, CreditTermsPayload, PresentationEvent
from schemas.identifiers import TransportMode
from schemas.record import CreditDiscrepancy, LetterOfCreditRecord, Presentation, Rejected, ShipmentRecord
from streams.authority import Authority

_Say = Callable[[str, str, str], None]  # records one discrepancy: code, rule, reason
TRANSPORT_KINDS = ("multimodal_transport_document", "bill_of_lading", "sea_waybill")


def letter_of_credit(
    record: ShipmentRecord,
    terms: Iterable[CreditTermsEvent],
    invoices: Sequence[CommercialInvoiceEvent],
    presentations: Iterable[PresentationEvent],
    authority: Authority,
    occurred: Mapping[str, datetime],
) -> tuple[LetterOfCreditRecord | None, list[Rejected]]:
    """The credit's latest terms and its latest presentation, checked; the refused events. `occurred` gives the
    event time of each live event key (a document's date of issue)."""
    rejected: list[Rejected] = []

    def refuse(key: str, reason: str) -> None:
        rejected.append(Rejected(event=key, reason=reason, kind="not_entitled"))

    stated = []
    operator = authority.operator(record.shipment_id)
    buyer = record.consignee.party_id if record.consignee else None
    seller = record.shipper.party_id if record.shipper else None
    for event in terms:
        bank = event.payload.issuing_bank
        if event.source != bank or not authority.has_role(bank, "bank"):
            refuse(event.key, f"only the issuing bank {bank}, registered as a bank, states the credit's terms, not {event.source}")
        elif operator is None or bank not in operator.banks:
            # the registry, not the event, says which banks' credits a shipment takes: a bank with no part in the
            # shipment never attaches itself to it (and reads it) by stating a credit
            owner = operator.mto if operator is not None else "that owns the shipment"
            refuse(event.key, f"{bank} is not a bank whose credits the MTO {owner} takes")
        elif buyer is None or seller is None:
            continue  # waits for the booking, which names the shipment's consignee and shipper
        elif (event.payload.applicant, event.payload.beneficiary) != (buyer, seller):
            # a conflict, not a refusal of its sender: an amended booking may name these parties
            reason = f"a credit of this shipment is applied for by its consignee {buyer} for its shipper {seller}"
            rejected.append(Rejected(event=event.key, reason=reason))
        else:
            stated.append(event)
    banks = sorted({event.payload.issuing_bank for event in stated})
    if len(banks) > 1:
        # which bank's credit it is, no event can settle by its time or its arrival: a bank that restates another
        # bank's credit in its own name takes nothing over, and neither counts until one is retracted
        reason = f"the credit's terms are stated by more than one bank ({', '.join(banks)}); none counts"
        rejected += [Rejected(event=event.key, reason=reason) for event in stated]
        stated = []
    latest = max(stated, key=lambda e: (e.occurred_at, e.key), default=None)
    sellers = [e for e in invoices if e.source == e.payload.seller]
    rejected += [
        Rejected(event=e.key, reason=f"only the seller {e.payload.seller} issues its invoice, not {e.source}", kind="not_entitled")
        for e in invoices
        if e.source != e.payload.seller
    ]
    if latest is None:
        return None, sorted(rejected, key=lambda r: r.event)
    credit = latest.payload
    presented = []
    for offer in presentations:
        if offer.payload.credit_number != credit.credit_number:
            rejected.append(Rejected(event=offer.key, reason=f"the shipment's credit is {credit.credit_number}"))
        elif offer.source not in (credit.beneficiary, credit.issuing_bank):
            refuse(
                offer.key,
                f"only the beneficiary {credit.beneficiary} or the issuing bank {credit.issuing_bank} presents under "
                f"{credit.credit_number}",
            )
        else:
            presented.append(offer)
    invoice = max(
        (e for e in sellers if e.payload.seller == credit.beneficiary), key=lambda e: (e.occurred_at, e.key), default=None
    )
    shown = max(presented, key=lambda e: (e.occurred_at, e.key), default=None)
    presentation = None if shown is None else check(record, credit, shown, invoice, occurred)
    return LetterOfCreditRecord(terms=credit, terms_set_by=latest.key, presentation=presentation), sorted(
        rejected, key=lambda r: r.event
    )


def shipment_date(record: ShipmentRecord, occurred: Mapping[str, datetime]) -> datetime | None:
    """The date of issue of the transport document: the through document, else the first leg document of a kind
    that evidences shipment."""
    held = [record.through_document] if record.through_document else []
    held += [d for leg in record.legs for d in leg.documents if d.kind in TRANSPORT_KINDS]
    dates = [occurred[d.set_by] for d in held if d.set_by in occurred]
    return dates[0] if dates else None


def ports(record: ShipmentRecord) -> tuple[str, str] | None:
    """Where the goods were loaded and discharged: the sea legs' ends, else the journey's (art. 19: dispatch and
    final destination)."""
    if not record.legs:
        return None
    sea = [leg for leg in record.legs if leg.mode == TransportMode.MARITIME] or record.legs
    return sea[0].origin, sea[-1].destination


def check(
    record: ShipmentRecord,
    credit: CreditTermsPayload,
    presentation: PresentationEvent,
    invoice: CommercialInvoiceEvent | None,
    occurred: Mapping[str, datetime],
) -> Presentation:
    found: list[CreditDiscrepancy] = []

    def discrepancy(code: str, rule: str, reason: str) -> None:
        found.append(CreditDiscrepancy(code=code, rule=rule, reason=reason))

    shipped = shipment_date(record, occurred)
    policy = record.insurance.policy
    held = {"transport_document": shipped is not None, "commercial_invoice": invoice is not None, "insurance_certificate": policy is not None}
    for document in credit.documents_required:
        if document not in presentation.payload.documents:
            discrepancy("document_not_presented", "UCP 600 art. 14 a", f"the credit requires a {document}; it was not presented")
        elif not held.get(document, True):
            discrepancy("document_missing", "UCP 600 art. 14 a", f"a {document} was presented but the hub holds none")
    if shipped is not None:
        if shipped.date() > credit.latest_shipment.date():
            discrepancy(
                "late_shipment", "UCP 600 art. 20 a ii",
                f"shipped {shipped.date()}, after the latest shipment date {credit.latest_shipment.date()}",
            )
        days = (presentation.occurred_at.date() - shipped.date()).days
        if days > credit.presentation_days:
            discrepancy(
                "late_presentation", "UCP 600 art. 14 c",
                f"presented {days} days after shipment ({shipped.date()}), more than {credit.presentation_days}",
            )
    if presentation.occurred_at.date() > credit.expiry.date():
        discrepancy(
            "credit_expired", "UCP 600 art. 6 d",
            f"presented {presentation.occurred_at.date()}, after the credit expired on {credit.expiry.date()}",
        )
    if invoice is not None:
        _invoice(credit, invoice.payload.amount, discrepancy)
        if policy is not None:
            _insurance(credit, invoice.payload.amount, policy.insured_value, discrepancy)
    ends = ports(record)
    if ends is not None:
        for code, expected, actual in (
            ("port_of_loading", credit.port_of_loading, ends[0]),
            ("port_of_discharge", credit.port_of_discharge, ends[1]),
        ):
            if expected != actual:
                discrepancy(code, "UCP 600 art. 20 a iii", f"the credit names {expected}, the journey {actual}")
    return Presentation(
        presented_at=presentation.occurred_at,
        presented_by=presentation.source,
        documents=presentation.payload.documents,
        shipment_date=shipped,
        invoice=invoice.payload.amount if invoice else None,
        invoice_set_by=invoice.key if invoice else None,
        insured=policy.insured_value if policy else None,
        result="discrepant" if found else "complying",
        discrepancies=found,
        set_by=presentation.key,
    )


def _invoice(credit: CreditTermsPayload, amount: Money, discrepancy: _Say) -> None:
    if amount.currency != credit.amount.currency:
        discrepancy("invoice_currency", "UCP 600 art. 18 a iii", f"invoice in {amount.currency}, credit in {credit.amount.currency}")
        return
    ceiling = credit.amount.amount * (1 + credit.tolerance_percent / 100)
    if amount.amount > ceiling:
        discrepancy(
            "invoice_over_credit", "UCP 600 art. 30",
            f"invoice {amount.amount} {amount.currency} exceeds the credit {credit.amount.amount} "
            f"+ {credit.tolerance_percent} % = {ceiling}",
        )


def _insurance(credit: CreditTermsPayload, invoiced: Money, insured: Money, discrepancy: _Say) -> None:
    if insured.currency != credit.amount.currency:
        discrepancy("insurance_currency", "UCP 600 art. 28 f i", f"insured in {insured.currency}, credit in {credit.amount.currency}")
        return
    if invoiced.currency != insured.currency:
        return  # reported as the invoice's currency discrepancy
    floor = invoiced.amount * credit.insurance_percent / Decimal(100)
    if insured.amount < floor:
        discrepancy(
            "insurance_under_cover", "UCP 600 art. 28 f ii",
            f"insured {insured.amount} {insured.currency}, less than {credit.insurance_percent} % of the CIF value "
            f"{invoiced.amount} = {floor}",
        )
