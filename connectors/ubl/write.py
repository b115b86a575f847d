"""EN 16931 invoices written as OASIS UBL 2.1 (Peppol BIS Billing 3.0 identifiers), the reverse of connectors.ubl.parse.

`write` serialises any EnInvoice; `shipper_invoice` makes the shipper's one invoice (the settlement's current
revision) into one. Decisions for the shipper's invoice, where the hub has no data: one line per invoice currency
is not possible in UBL (one document currency, BT-5), so the invoice is written for one currency; it bills the whole
journey as one line (the carriers' charges and the margin are the MTO's commercial split, not the shipper's); and
international carriage is zero-rated (VAT category Z, 0 %), as the hub computes no tax on it.
"""

from __future__ import annotations

from decimal import Decimal

from lxml import etree

from connectors.ubl.parse import CAC, CBC, INVOICE
from schemas.base import Money
from schemas.invoices import EnInvoice, InvoiceLine, InvoiceParty, TaxSubtotal
from schemas.record import ShipmentRecord

CUSTOMIZATION = "urn:cen.eu:en16931:2017#compliant#urn:fdc:peppol.eu:2017:poacc:billing:3.0"
PROFILE = "urn:fdc:peppol.eu:2017:poacc:billing:01:1.0"
_NSMAP = {None: INVOICE, "cac": CAC, "cbc": CBC}


def _cbc(parent: etree._Element, name: str, text: str, **attributes: str) -> etree._Element:
    element = etree.SubElement(parent, f"{{{CBC}}}{name}", attributes)
    element.text = text
    return element


def _cac(parent: etree._Element, name: str) -> etree._Element:
    return etree.SubElement(parent, f"{{{CAC}}}{name}")


def _amount(parent: etree._Element, name: str, money: Money) -> None:
    _cbc(parent, name, str(money.amount), currencyID=money.currency)


def _tax_category(parent: etree._Element, name: str, category: str, percent: Decimal) -> None:
    node = _cac(parent, name)
    _cbc(node, "ID", category)
    _cbc(node, "Percent", str(percent))
    _cbc(_cac(node, "TaxScheme"), "ID", "VAT")


def _party(parent: etree._Element, role: str, party: InvoiceParty) -> None:
    node = _cac(_cac(parent, role), "Party")
    endpoint = next((i for i in party.identifiers if i.scheme and i.scheme != "VAT"), None)
    if endpoint is not None:
        _cbc(node, "EndpointID", endpoint.value, schemeID=endpoint.scheme or "")
    for identifier in party.identifiers:
        if identifier is endpoint or identifier.scheme == "VAT":
            continue
        attributes = {"schemeID": identifier.scheme} if identifier.scheme else {}
        _cbc(_cac(node, "PartyIdentification"), "ID", identifier.value, **attributes)
    _cbc(_cac(node, "PartyName"), "Name", party.name)
    if party.country:
        _cbc(_cac(_cac(node, "PostalAddress"), "Country"), "IdentificationCode", party.country)
    for identifier in party.identifiers:
        if identifier.scheme == "VAT":
            tax = _cac(node, "PartyTaxScheme")
            _cbc(tax, "CompanyID", identifier.value)
            _cbc(_cac(tax, "TaxScheme"), "ID", "VAT")
    _cbc(_cac(node, "PartyLegalEntity"), "RegistrationName", party.name)


def write(invoice: EnInvoice, order_reference: str | None = None, order_line: str | None = None) -> bytes:
    """`invoice` as a UBL 2.1 Invoice document (UTF-8, with its XML declaration). `order_reference` is BT-13 and
    `order_line` every line's BT-132, as connectors.ubl.parse reads them."""
    root = etree.Element(f"{{{INVOICE}}}Invoice", nsmap=_NSMAP)  # type: ignore[arg-type]  # None: the default namespace
    _cbc(root, "CustomizationID", CUSTOMIZATION)
    _cbc(root, "ProfileID", PROFILE)
    _cbc(root, "ID", invoice.invoice_number)
    _cbc(root, "IssueDate", invoice.issue_date.isoformat())
    _cbc(root, "InvoiceTypeCode", invoice.type_code)
    _cbc(root, "DocumentCurrencyCode", invoice.currency)
    if order_reference is not None:
        _cbc(root, "BuyerReference", order_reference)
        _cbc(_cac(root, "OrderReference"), "ID", order_reference)
    _party(root, "AccountingSupplierParty", invoice.seller)
    _party(root, "AccountingCustomerParty", invoice.buyer)
    for indicator, money in (("true", invoice.charges), ("false", invoice.allowances)):
        if money is not None:
            node = _cac(root, "AllowanceCharge")
            _cbc(node, "ChargeIndicator", indicator)
            _cbc(node, "AllowanceChargeReason", "Charge" if indicator == "true" else "Allowance")
            _amount(node, "Amount", money)
    tax_total = _cac(root, "TaxTotal")
    _amount(tax_total, "TaxAmount", invoice.tax_total)
    for subtotal in invoice.tax_subtotals:
        node = _cac(tax_total, "TaxSubtotal")
        _amount(node, "TaxableAmount", subtotal.taxable)
        _amount(node, "TaxAmount", subtotal.tax)
        _tax_category(node, "TaxCategory", subtotal.category, subtotal.percent)
    totals = _cac(root, "LegalMonetaryTotal")
    lines = Money(amount=sum((line.amount.amount for line in invoice.lines), Decimal(0)), currency=invoice.currency)
    _amount(totals, "LineExtensionAmount", lines)
    _amount(totals, "TaxExclusiveAmount", invoice.net_total)
    inclusive = invoice.net_total.amount + invoice.tax_total.amount
    _amount(totals, "TaxInclusiveAmount", Money(amount=inclusive, currency=invoice.currency))
    if invoice.allowances is not None:
        _amount(totals, "AllowanceTotalAmount", invoice.allowances)
    if invoice.charges is not None:
        _amount(totals, "ChargeTotalAmount", invoice.charges)
    if invoice.prepaid is not None:
        _amount(totals, "PrepaidAmount", invoice.prepaid)
    _amount(totals, "PayableAmount", invoice.payable)
    for line in invoice.lines:
        _line(root, line, order_line)
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True))


def _line(root: etree._Element, line: InvoiceLine, order_line: str | None) -> None:
    node = _cac(root, "InvoiceLine")
    _cbc(node, "ID", line.line_id)
    _cbc(node, "InvoicedQuantity", str(line.quantity), unitCode="C62")
    _amount(node, "LineExtensionAmount", line.amount)
    if order_line is not None:
        _cbc(_cac(node, "OrderLineReference"), "LineID", order_line)
    item = _cac(node, "Item")
    _cbc(item, "Name", line.description)
    if line.code is not None:
        _cbc(_cac(item, "SellersItemIdentification"), "ID", line.code)
    _tax_category(item, "ClassifiedTaxCategory", line.tax_category, line.tax_percent)
    price = Money(amount=line.amount.amount / line.quantity if line.quantity else line.amount.amount, currency=line.amount.currency)
    _amount(_cac(node, "Price"), "PriceAmount", price)


class NoInvoice(ValueError):
    """The record has no invoice to write (not issued yet), or not in the currency asked for."""


def shipper_invoice(record: ShipmentRecord, parties: dict[str, InvoiceParty], currency: str | None = None) -> EnInvoice:
    """The shipper's invoice (the settlement's current revision) in one currency, as an EN 16931 invoice from the
    MTO to the shipper. `parties` gives the MTO's and the shipper's invoice identities, by party id."""
    settlement, booking = record.settlement, record.booking
    if settlement is None or booking is None or not settlement.invoices:
        raise NoInvoice(f"{record.shipment_id} has no invoice yet")
    current = settlement.invoices[-1]
    totals = {line.currency: line.amount for line in current.total}
    if currency is None and len(totals) != 1:
        raise NoInvoice(f"the invoice is in {', '.join(sorted(totals))}: name the one currency to write (--currency)")
    chosen = currency or next(iter(totals))
    if chosen not in totals:
        raise NoInvoice(f"the invoice has no line in {chosen}; it is in {', '.join(sorted(totals))}")
    amount = Money(amount=totals[chosen], currency=chosen)
    zero = Money(amount=Decimal(0), currency=chosen)
    first, last = booking.legs[0], booking.legs[-1]
    return EnInvoice(
        invoice_number=f"{current.invoice_id}-R{current.revision}",
        issue_date=current.issued_at.date(),
        currency=chosen,
        seller=parties.get(booking.mto) or InvoiceParty(name=booking.mto),
        buyer=parties.get(booking.shipper.party_id) or InvoiceParty(name=booking.shipper.name),
        lines=[
            InvoiceLine(
                line_id="1",
                description=f"Multimodal carriage {record.shipment_id} {first.origin}-{last.destination}",
                code="CARRIAGE",
                amount=amount,
                tax_category="Z",
            )
        ],
        net_total=amount,
        tax_total=zero,
        tax_subtotals=[TaxSubtotal(category="Z", percent=Decimal(0), taxable=amount, tax=zero)],
        payable=amount,
    )
