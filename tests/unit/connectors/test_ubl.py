"""The UBL reader and writer: a full EN 16931 (Peppol BIS 3.0) invoice read, a carrier's invoice round trip, hostile XML
refused."""

from __future__ import annotations

import os
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from lxml import etree

from connectors.formats import parser
from connectors.payload import Refused
from connectors.ubl.parse import NS, read_invoice
from connectors.ubl.write import shipper_invoice, write
from schemas.events import CarrierInvoiceEvent
from schemas.invoices import InvoiceParty
from schemas.rejection import Rejection

from ..builders import MTO, booking_doc, record_of, settlement_doc

FIXTURES = Path(__file__).parent / "ubl_fixtures"
SAMPLES = Path(__file__).resolve().parents[3] / "connectors" / "ubl" / "samples"


# our own full EN 16931 invoice (ubl_fixtures/NOTICE says why it is not the Peppol BIS example)
FULL = FIXTURES / "full-invoice.xml"


def test_a_full_en16931_invoice_reads_with_its_figures() -> None:
    found = read_invoice(FULL.read_bytes())
    invoice = found.invoice
    assert (invoice.invoice_number, invoice.issue_date, invoice.currency) == ("OCL-2026-0046-07", date(2026, 4, 15), "USD")
    assert [line.amount.amount for line in invoice.lines] == [Decimal("3200.00"), Decimal("-400.00")]
    assert invoice.charges is not None and invoice.charges.amount == Decimal(50)
    assert invoice.allowances is not None and invoice.allowances.amount == Decimal(100)
    assert (invoice.net_total.amount, invoice.tax_total.amount, invoice.payable.amount) == (Decimal(2750), Decimal(165), Decimal(2915))
    assert {i.value for i in invoice.seller.identifiers} == {"9521234000013", "OCL-SUPPLIER-7731", "W10-1808-32000046", "201901004611"}
    assert invoice.seller.name == "Oceanline Feeder Services Sdn Bhd"  # the legal name (BT-27) before the trading name
    # it names no hub shipment (BT-13), so as a carrier invoice it is refused with that reason
    [refused] = parser("ubl")(FULL.read_bytes(), "carrier.rail")
    assert isinstance(refused, Rejection) and "BT-13" in refused.reason


def test_a_carrier_invoice_round_trips_through_ubl() -> None:
    source = read_invoice(FULL.read_bytes()).invoice
    written = write(source, "SHP-TEST-0001", "2")
    [event] = parser("ubl")(written, "carrier.rail")
    assert isinstance(event, CarrierInvoiceEvent)
    assert (event.shipment_id, event.payload.leg, event.event_id) == ("SHP-TEST-0001", 2, "invoice-OCL-2026-0046-07")
    assert event.payload.model_dump(exclude={"leg"}) == source.model_dump()


def test_the_shippers_invoice_is_written_with_the_mandatory_fields_and_reads_back() -> None:
    record = record_of(
        booking_doc(),
        settlement_doc([("FRT", "800.00", "USD")], leg=1, occurred=10),
        settlement_doc([("FRT", "1200.00", "USD")], leg=2, event_id="inv-2", occurred=11),
        settlement_doc([("FRT", "2000.00", "USD")], leg=3, event_id="inv-3", occurred=12),
    )
    parties = {MTO: InvoiceParty(name="Test MTO", identifiers=[{"scheme": "0199", "value": "LEI-MTO"}])}  # type: ignore[list-item]
    written = write(shipper_invoice(record, parties), record.shipment_id)
    root = etree.fromstring(written)
    for path in ("cbc:ID", "cbc:IssueDate", "cbc:InvoiceTypeCode", "cbc:DocumentCurrencyCode",
                 "cac:AccountingSupplierParty/cac:Party/cac:PartyLegalEntity/cbc:RegistrationName",
                 "cac:AccountingCustomerParty/cac:Party/cac:PartyLegalEntity/cbc:RegistrationName",
                 "cac:LegalMonetaryTotal/cbc:PayableAmount", "cac:InvoiceLine/cbc:LineExtensionAmount"):
        assert root.xpath(path, namespaces=NS), path
    back = read_invoice(written)
    assert back.order_reference == "SHP-TEST-0001"
    assert (back.invoice.invoice_number, back.invoice.payable.amount) == ("INV-SHP-TEST-0001-R1", Decimal("4000.00"))
    assert back.invoice.buyer.name == "Test Shipper Ltd" and back.invoice.seller.name == "Test MTO"


XXE = b"""<?xml version="1.0"?>
<!DOCTYPE Invoice [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<Invoice xmlns="urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"><ID>&secret;</ID></Invoice>"""
LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;"><!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">]>
<Invoice xmlns="urn:oasis:names:specification:ubl:schema:xsd:Invoice-2">&lol4;</Invoice>"""


@pytest.mark.parametrize("hostile", [XXE, LAUGHS], ids=["xxe", "billion-laughs"])
def test_a_document_with_a_doctype_is_refused_with_its_reason_and_nothing_is_expanded(hostile: bytes) -> None:
    with pytest.raises(Refused) as refused:
        read_invoice(hostile)
    assert refused.value.code == "unsafe_xml" and "DOCTYPE" in refused.value.reason
    [rejection] = parser("ubl")(hostile, "carrier.rail")
    assert isinstance(rejection, Rejection) and rejection.code == "unsafe_xml"
    assert "root:" not in rejection.reason and "lollol" not in rejection.reason


def test_broken_xml_and_other_documents_are_refused_with_a_reason() -> None:
    [broken] = parser("ubl")(b"<Invoice>", "carrier.rail")
    assert isinstance(broken, Rejection) and broken.code == "invalid_xml"
    [other] = parser("ubl")(b"<Order xmlns='urn:x'/>", "carrier.rail")
    assert isinstance(other, Rejection) and other.code == "not_an_invoice"


# The OASIS UBL XSDs (the Invoice schema and its ~8 MB of common, signature and XAdES modules) are not vendored:
# point MMHUB_UBL_XSD at the Invoice XSD of a UBL 2.1+ release package (e.g. .../xsd/maindoc/UBL-Invoice-2.5.xsd;
# 2.5 validates 2.1 documents: same namespaces, additive changes) to validate what the hub writes against it.
UBL_XSD = os.environ.get("MMHUB_UBL_XSD")


@pytest.mark.skipif(not UBL_XSD, reason="MMHUB_UBL_XSD names no UBL Invoice XSD")
def test_what_the_hub_writes_is_valid_against_the_ubl_invoice_xsd() -> None:
    schema = etree.XMLSchema(etree.parse(str(UBL_XSD)))
    record = record_of(
        booking_doc(),
        settlement_doc([("FRT", "800.00", "USD")], leg=1, occurred=10),
        settlement_doc([("FRT", "1200.00", "USD")], leg=2, event_id="inv-2", occurred=11),
        settlement_doc([("FRT", "2000.00", "USD")], leg=3, event_id="inv-3", occurred=12),
    )
    written = [write(shipper_invoice(record, {}), record.shipment_id)] + [
        write(read_invoice(path.read_bytes()).invoice, "SHP-TEST-0001", "2") for path in sorted(SAMPLES.glob("*.xml"))
    ]
    for document in written:
        assert schema.validate(etree.fromstring(document)), schema.error_log
