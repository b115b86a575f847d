"""EN 16931 invoices in OASIS UBL 2.1 syntax (the Peppol BIS Billing 3.0 profile) to canonical carrier_invoice events.

Read with lxml, hardened: no DTD is loaded, no entity is resolved, nothing is fetched from the network, and a
document that declares a DOCTYPE at all (the carrier of XXE and "billion laughs" entity expansion) is refused with
its reason, as UBL has no use for one. Sizes are screened before parsing.

How a carrier's invoice names what it bills (the hub's decision, in standard fields): the purchase order reference
(BT-13, `cac:OrderReference/cbc:ID`) is the hub's shipment id, the MTO's order; the referenced order line of every
invoice line (BT-132, `cac:OrderLineReference/cbc:LineID`) is the leg it bills, and all lines bill one leg. The event
id is `invoice-<number>`: a re-sent invoice is the same event. The event's time is the issue date (BT-2), 00:00 UTC.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timezone
from decimal import Decimal, InvalidOperation

from lxml import etree
from pydantic import ValidationError

from connectors.payload import Refused, screen
from schemas.base import Money
from schemas.events import CarrierInvoiceEvent, HubEvent
from schemas.invoices import CarrierInvoicePayload, EnInvoice, InvoiceIdentifier, InvoiceLine, InvoiceParty, TaxSubtotal
from schemas.rejection import Rejection, describe

MAX_DOCUMENT_BYTES = 2 * 1024 * 1024
INVOICE = "urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"
CAC = "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2"
CBC = "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2"
NS = {"inv": INVOICE, "cac": CAC, "cbc": CBC}
EN16931 = "urn:cen.eu:en16931:2017"  # every CustomizationID of a conformant invoice starts so (BT-24)


@dataclass(frozen=True)
class UblInvoice:
    """What a UBL invoice says: the invoice itself, the order it references (BT-13) and its lines' order lines."""

    invoice: EnInvoice
    order_reference: str | None
    order_lines: tuple[str, ...]


def _parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False, huge_tree=False,
        remove_comments=True, remove_pis=True,
    )


def read_invoice(raw: bytes) -> UblInvoice:
    """The invoice in `raw`; raises Refused with the reason when it is not a safe, well-formed EN 16931 UBL invoice."""
    refused = screen(raw, MAX_DOCUMENT_BYTES, "the invoice", blank_is_empty=True)
    if refused is not None:
        raise Refused(refused.code, refused.reason)
    try:
        root = etree.fromstring(raw, _parser())
    except etree.XMLSyntaxError as error:
        raise Refused("invalid_xml", f"not well-formed XML: {error}") from None
    info = root.getroottree().docinfo
    if any(getattr(info, name, None) for name in ("doctype", "public_id", "system_url", "internal_DTD")):
        raise Refused("unsafe_xml", "the document declares a DOCTYPE; a UBL invoice has none (DTDs and entities refused)")
    if root.tag != f"{{{INVOICE}}}Invoice":
        raise Refused("not_an_invoice", f"the root element is {root.tag}, not a UBL 2.1 Invoice")
    customization = _text(root, "cbc:CustomizationID")
    if customization is None or not customization.startswith(EN16931):
        raise Refused("not_an_invoice", f"CustomizationID (BT-24) {customization!r} does not claim EN 16931 conformance")
    try:
        return _read(root)
    except ValidationError as error:
        raise Refused("invalid_invoice", describe(error)) from None


def parse(raw: bytes, source: str) -> list[HubEvent | Rejection]:
    """The carrier invoice in a UBL document as one canonical event, or the Rejection saying why not; never raises."""
    try:
        found = read_invoice(raw)
        return [_event(found, source)]
    except Refused as refused:
        return [refused.rejection()]


def _event(found: UblInvoice, source: str) -> CarrierInvoiceEvent:
    invoice = found.invoice
    if found.order_reference is None:
        raise Refused("invalid_invoice", "no purchase order reference (BT-13): it carries the hub's shipment id")
    legs = sorted(set(found.order_lines))
    # ASCII digits only, and few: str.isdigit() also takes '²' and int() refuses it (or more than 4300 digits)
    if len(legs) != 1 or not (legs[0].isascii() and legs[0].isdigit() and len(legs[0]) <= 4):
        named = ", ".join(legs) or "none"
        raise Refused("invalid_invoice", f"every line names the one leg it bills as its order line (BT-132); found {named}")
    at = datetime.combine(invoice.issue_date, time(0), timezone.utc)
    try:
        return CarrierInvoiceEvent(
            event_type="carrier_invoice",
            event_id=f"invoice-{invoice.invoice_number}",
            source=source,
            shipment_id=found.order_reference,
            occurred_at=at,
            recorded_at=at,
            payload=CarrierInvoicePayload(**dict(invoice), leg=int(legs[0])),
        )
    except ValidationError as error:
        raise Refused("invalid_invoice", describe(error)) from None


# --- reading the tree -----------------------------------------------------------------------------------------------


def _all(node: etree._Element, path: str) -> list[etree._Element]:
    found = node.xpath(path, namespaces=NS)
    return [n for n in found if isinstance(n, etree._Element)] if isinstance(found, list) else []


def _one(node: etree._Element, path: str) -> etree._Element | None:
    found = _all(node, path)
    return found[0] if found else None


def _text(node: etree._Element, path: str) -> str | None:
    found = _one(node, path)
    text = found.text.strip() if found is not None and found.text else ""
    return text or None


def _required(node: etree._Element, path: str, what: str) -> str:
    text = _text(node, path)
    if text is None:
        raise Refused("invalid_invoice", f"{what} ({path}) is missing")
    return text


def _decimal(text: str, what: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise Refused("invalid_invoice", f"{what} {text!r} is not a decimal number") from None
    if not value.is_finite():
        raise Refused("invalid_invoice", f"{what} {text!r} is not a finite amount")
    return value


def _money(node: etree._Element, path: str, what: str) -> Money:
    element = _one(node, path)
    if element is None or not (element.text or "").strip():
        raise Refused("invalid_invoice", f"{what} ({path}) is missing")
    currency = element.get("currencyID")
    if not currency:
        raise Refused("invalid_invoice", f"{what} ({path}) names no currencyID")
    return Money(amount=_decimal((element.text or "").strip(), what), currency=currency)


def _optional_money(node: etree._Element, path: str, what: str) -> Money | None:
    return _money(node, path, what) if _one(node, path) is not None else None


def _party(node: etree._Element, path: str, what: str) -> InvoiceParty:
    party = _one(node, path)
    if party is None:
        raise Refused("invalid_invoice", f"the {what} ({path}) is missing")
    name = _text(party, "cac:PartyLegalEntity/cbc:RegistrationName") or _text(party, "cac:PartyName/cbc:Name")
    # distinct by (scheme, value) in a dict: a search of the ones already kept was quadratic, and an invoice within
    # its size limit names 40,000 of them (4,000 cost 15 s) before the schema's limit refuses more than 10
    identifiers: dict[tuple[str | None, str], InvoiceIdentifier] = {}
    for element, scheme in (
        [(e, e.get("schemeID")) for e in _all(party, "cbc:EndpointID")]
        + [(e, e.get("schemeID")) for e in _all(party, "cac:PartyIdentification/cbc:ID")]
        + [(e, _text(t, "cac:TaxScheme/cbc:ID")) for t in _all(party, "cac:PartyTaxScheme") for e in _all(t, "cbc:CompanyID")]
        + [(e, e.get("schemeID")) for e in _all(party, "cac:PartyLegalEntity/cbc:CompanyID")]
    ):
        value = (element.text or "").strip()
        if value and (scheme, value) not in identifiers:
            identifiers[scheme, value] = InvoiceIdentifier(scheme=scheme, value=value)
    # as a set: UBL spreads them over four elements
    distinct = sorted(identifiers.values(), key=lambda i: (i.scheme or "", i.value))
    return InvoiceParty(
        name=name or "", identifiers=distinct, country=_text(party, "cac:PostalAddress/cac:Country/cbc:IdentificationCode")
    )


def _allowance_charges(root: etree._Element, charge: bool, currency: str) -> Money | None:
    flag = "true" if charge else "false"
    amounts = [
        _money(node, "cbc:Amount", "allowance or charge amount")
        for node in _all(root, "cac:AllowanceCharge")
        if (_text(node, "cbc:ChargeIndicator") or "").lower() == flag
    ]
    if not amounts:
        return None
    foreign = sorted({m.currency for m in amounts} - {currency})
    if foreign:
        raise Refused("invalid_invoice", f"allowances and charges are in {', '.join(foreign)}, not the invoice's {currency}")
    return Money(amount=sum((m.amount for m in amounts), Decimal(0)), currency=currency)


def _tax_total(root: etree._Element, currency: str) -> Money:
    """The tax total (BT-110): the TaxTotal's TaxAmount in the invoice currency (BT-5); a second TaxTotal may give it
    in the VAT accounting currency (BT-111). Chosen here, not by an XPath predicate comparing every TaxAmount with
    every DocumentCurrencyCode: that cost time quadratic in the invoice's size (8,000 of each: 6.8 s)."""
    for total in _all(root, "cac:TaxTotal"):
        amount = _one(total, "cbc:TaxAmount")
        if amount is not None and amount.get("currencyID") == currency:
            return _money(total, "cbc:TaxAmount", "the tax total (BT-110)")
    raise Refused("invalid_invoice", f"the tax total (BT-110) (cac:TaxTotal/cbc:TaxAmount in {currency}) is missing")


def _read(root: etree._Element) -> UblInvoice:
    currency = _required(root, "cbc:DocumentCurrencyCode", "the invoice currency (BT-5)")
    issued = _required(root, "cbc:IssueDate", "the issue date (BT-2)")
    try:
        issue_date = date.fromisoformat(issued)
    except ValueError:
        raise Refused("invalid_invoice", f"issue date (BT-2) {issued!r} is not YYYY-MM-DD") from None
    type_code = _required(root, "cbc:InvoiceTypeCode", "the invoice type (BT-3)")
    if type_code != "380":
        raise Refused("invalid_invoice", f"invoice type {type_code} is not a commercial invoice (380)")
    lines, order_lines = [], []
    for line in _all(root, "cac:InvoiceLine"):
        line_id = _required(line, "cbc:ID", "an invoice line's id (BT-126)")
        order_line = _text(line, "cac:OrderLineReference/cbc:LineID")
        if order_line is not None:
            order_lines.append(order_line)
        lines.append(
            InvoiceLine(
                line_id=line_id,
                description=_required(line, "cac:Item/cbc:Name", f"line {line_id}'s item name (BT-153)"),
                code=_text(line, "cac:Item/cac:SellersItemIdentification/cbc:ID"),
                quantity=_decimal(_required(line, "cbc:InvoicedQuantity", f"line {line_id}'s quantity"), "quantity"),
                amount=_money(line, "cbc:LineExtensionAmount", f"line {line_id}'s net amount (BT-131)"),
                tax_category=_required(line, "cac:Item/cac:ClassifiedTaxCategory/cbc:ID", f"line {line_id}'s VAT category"),
                tax_percent=_decimal(_text(line, "cac:Item/cac:ClassifiedTaxCategory/cbc:Percent") or "0", "VAT rate"),
            )
        )
    subtotals = [
        TaxSubtotal(
            category=_required(node, "cac:TaxCategory/cbc:ID", "a VAT breakdown's category (BT-118)"),
            percent=_decimal(_text(node, "cac:TaxCategory/cbc:Percent") or "0", "VAT rate (BT-119)"),
            taxable=_money(node, "cbc:TaxableAmount", "a VAT breakdown's taxable amount (BT-116)"),
            tax=_money(node, "cbc:TaxAmount", "a VAT breakdown's tax (BT-117)"),
        )
        for node in _all(root, "cac:TaxTotal/cac:TaxSubtotal")
    ]
    totals = "cac:LegalMonetaryTotal"
    invoice = EnInvoice(
        invoice_number=_required(root, "cbc:ID", "the invoice number (BT-1)"),
        issue_date=issue_date,
        currency=currency,
        seller=_party(root, "cac:AccountingSupplierParty/cac:Party", "seller (BG-4)"),
        buyer=_party(root, "cac:AccountingCustomerParty/cac:Party", "buyer (BG-7)"),
        lines=lines,
        charges=_allowance_charges(root, True, currency),
        allowances=_allowance_charges(root, False, currency),
        net_total=_money(root, f"{totals}/cbc:TaxExclusiveAmount", "the net total (BT-109)"),
        tax_total=_tax_total(root, currency),
        tax_subtotals=subtotals,
        prepaid=_optional_money(root, f"{totals}/cbc:PrepaidAmount", "the paid amount (BT-113)"),
        payable=_money(root, f"{totals}/cbc:PayableAmount", "the amount due (BT-115)"),
    )
    return UblInvoice(invoice, _text(root, "cac:OrderReference/cbc:ID"), tuple(order_lines))
