"""Carriers' e-invoices for their legs (EN 16931, read from UBL by connectors.ubl) and a tax authority's verification
of them: the canonical payloads, and the record part the fold makes of them (streams.invoices).

An invoice's amounts are checked here against its own arithmetic (EN 16931 BR-CO-13/15): the sum of its lines plus
charges less allowances is its net total, net plus tax less prepaid is what is payable. Whether it matches the
hub's ledger is decided in the fold, not here.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal

from pydantic import Field, StringConstraints, model_validator

from schemas.base import Frozen, IsoDate, Money, MultilineText, PlainText, StrictDecimal, UtcDatetime, empty_list
from schemas.identifiers import CurrencyCode, DocumentNumber, PartyId

InvoiceText = Annotated[PlainText, StringConstraints(min_length=1, max_length=500)]
InvoiceCode = Annotated[PlainText, StringConstraints(min_length=1, max_length=35)]
IdentifierValue = Annotated[PlainText, StringConstraints(min_length=1, max_length=100)]
InvoiceLeg = Annotated[int, Field(ge=1, le=16)]
InvoiceEventKey = Annotated[PlainText, Field(min_length=3, max_length=200)]


class InvoiceIdentifier(Frozen):
    """One identifier of an invoice party: its electronic address (BT-34), party id (BT-29), legal registration
    (BT-30) or tax registration (BT-31), with the scheme it is given in (an ISO 6523 ICD, `VAT`), if any."""

    scheme: InvoiceCode | None = None
    value: IdentifierValue


class InvoiceParty(Frozen):
    """The seller (BG-4) or buyer (BG-7) of an invoice."""

    name: InvoiceText
    identifiers: Annotated[list[InvoiceIdentifier], Field(max_length=10)] = empty_list()
    country: Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")] | None = None


class InvoiceLine(Frozen):
    """One invoice line (BG-25): its net amount (BT-131), the charge code it bills (the seller's item id, BT-155) and
    its VAT category (BT-151) and rate (BT-152)."""

    line_id: InvoiceCode
    description: InvoiceText
    code: InvoiceCode | None = None
    quantity: StrictDecimal = Decimal(1)
    amount: Money
    tax_category: InvoiceCode = "S"
    tax_percent: Annotated[StrictDecimal, Field(ge=0, le=100)] = Decimal(0)


class TaxSubtotal(Frozen):
    """One VAT breakdown line (BG-23): the taxable amount (BT-116) in a category (BT-118) at a rate (BT-119) and the
    tax on it (BT-117). The fold checks the tax against the rate (streams.invoices), so a wrong one is listed."""

    category: InvoiceCode
    percent: Annotated[StrictDecimal, Field(ge=0, le=100)]
    taxable: Money
    tax: Money


class EnInvoice(Frozen):
    """An EN 16931 invoice in its own currency (BT-5): what connectors.ubl reads and writes."""

    invoice_number: DocumentNumber  # BT-1
    issue_date: IsoDate  # BT-2
    type_code: Literal["380"] = "380"  # BT-3: a commercial invoice; a correction is a new invoice after a red-flush
    currency: CurrencyCode
    seller: InvoiceParty
    buyer: InvoiceParty
    lines: Annotated[list[InvoiceLine], Field(min_length=1, max_length=200)]
    charges: Money | None = None  # BT-108, document-level charges
    allowances: Money | None = None  # BT-107
    net_total: Money  # BT-109, without tax
    tax_total: Money  # BT-110
    tax_subtotals: Annotated[list[TaxSubtotal], Field(min_length=1, max_length=20)]
    prepaid: Money | None = None  # BT-113
    payable: Money  # BT-115

    @model_validator(mode="after")
    def _adds_up(self) -> EnInvoice:
        amounts = [line.amount for line in self.lines] + [t.taxable for t in self.tax_subtotals] + [
            t.tax for t in self.tax_subtotals
        ] + [
            m for m in (self.charges, self.allowances, self.net_total, self.tax_total, self.prepaid, self.payable) if m
        ]
        foreign = sorted({m.currency for m in amounts} - {self.currency})
        if foreign:
            raise ValueError(f"every amount is in the invoice currency {self.currency}, not {', '.join(foreign)}")

        def value(money: Money | None) -> Decimal:
            return money.amount if money else Decimal(0)

        lines = sum((line.amount.amount for line in self.lines), Decimal(0))
        net = lines + value(self.charges) - value(self.allowances)
        if net != self.net_total.amount:
            raise ValueError(
                f"net total {self.net_total.amount} is not the lines {lines} + charges {value(self.charges)}"
                f" - allowances {value(self.allowances)} = {net} (EN 16931 BR-CO-13)"
            )
        payable = net + self.tax_total.amount - value(self.prepaid)
        if payable != self.payable.amount:
            raise ValueError(
                f"payable {self.payable.amount} is not net {net} + tax {self.tax_total.amount}"
                f" - prepaid {value(self.prepaid)} = {payable} (EN 16931 BR-CO-15/16)"
            )
        return self


class CarrierInvoicePayload(EnInvoice):
    """A carrier's invoice to the MTO for one leg: the MTO's order line it bills (BT-132 in UBL)."""

    leg: InvoiceLeg


VerificationResult = Literal["verified", "not_found", "void", "red_flushed"]


class InvoiceVerificationPayload(Frozen):
    """A tax authority's answer about one carrier invoice (电子发票核验): it exists and is valid, it does not exist,
    it was voided (作废), or it was reversed by a red-letter invoice (红冲). Void and red-flushed are final."""

    carrier: PartyId
    invoice_number: DocumentNumber
    result: VerificationResult
    verifier_reference: InvoiceCode | None = None
    remarks: Annotated[MultilineText, StringConstraints(min_length=1, max_length=500)] | None = None
    # What the authority holds for the invoice: the amount payable, tax included (as 查验 answers with the invoice's
    # figures). A `verified` result states it, so it vouches for that content, not for whatever a carrier later
    # sends under the number.
    payable: Money | None = None

    @model_validator(mode="after")
    def _verified_states_the_amount(self) -> InvoiceVerificationPayload:
        if self.result == "verified" and self.payable is None:
            raise ValueError("a verified result states the invoice's amount payable (`payable`) that it verified")
        return self


# --- the record part ----------------------------------------------------------------------------------------------

MismatchField = Literal["amount", "currency", "tax", "invoice_number", "issuer"]


class InvoiceMismatch(Frozen):
    """Why an invoice does not match the hub's figures: what was expected, what the invoice says."""

    field: MismatchField
    expected: str
    found: str
    reason: str


class InvoiceCheck(Frozen):
    """One verification result folded into an invoice."""

    result: VerificationResult
    at: UtcDatetime
    verifier: PartyId
    set_by: InvoiceEventKey


class CarrierInvoiceRecord(Frozen):
    """A carrier's invoice for its leg, matched against the leg's charges and verified by a tax authority."""

    carrier: PartyId
    leg: int
    invoice_number: str
    issue_date: IsoDate
    currency: CurrencyCode
    net_total: Money
    tax_total: Money
    payable: Money
    seller_name: str
    match: Literal["matched", "mismatched"]
    mismatches: list[InvoiceMismatch]
    verification: Literal["unverified", "verified", "not_found", "void", "red_flushed"]
    verification_set_by: InvoiceEventKey | None
    checks: list[InvoiceCheck]
    set_by: InvoiceEventKey
