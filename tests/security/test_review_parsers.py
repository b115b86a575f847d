"""Parser review: payloads of a few hundred KB, within every size limit, that cost a parser time quadratic in their
size (minutes to hours of CPU for one 4 MiB payload, on the connect stage's one event loop), each the same pattern:
a list searched once per item (`x not in seen`, `list.remove`), or the message header's references and texts read
again for every status. Measured as a ratio in the same run, not against a clock, as
tests/security/test_edge_inputs.py does: eight times the items must cost about eight times as much (quadratic: 64),
the fastest of three passes each. No Kafka or Postgres."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import orjson

from connectors.formats import parser
from schemas.events import HubEvent
from schemas.rejection import Rejection
from tests.security.cpu import least_cpu

REPO = Path(__file__).resolve().parents[2]
UBL_SAMPLE = (REPO / "connectors" / "ubl" / "samples" / "rail-leg2-matched.xml").read_bytes()
CARRIER = "carrier.review"
SMALL, LARGE = 500, 4000  # items; LARGE / SMALL = 8


def _cpu(format_name: str, body: bytes) -> tuple[float, list[HubEvent | Rejection]]:
    return least_cpu(lambda: parser(format_name)(body, CARRIER))


def _assert_linear(format_name: str, build: Callable[[int], bytes]) -> list[HubEvent | Rejection]:
    small, _ = _cpu(format_name, build(SMALL))
    large, results = _cpu(format_name, build(LARGE))
    assert large / small < 24, f"{format_name}: {SMALL} items {small:.3f} s, {LARGE} items {large:.3f} s: not linear"
    return results


# --- DCSA: the event's references made distinct by a search of the ones already seen ----------------------------


def _dcsa_with_document_references(count: int) -> bytes:
    return orjson.dumps(
        {
            "eventID": "review-1",
            "eventType": "EQUIPMENT",
            "eventClassifierCode": "ACT",
            "equipmentEventTypeCode": "LOAD",
            "eventDateTime": "2026-03-01T10:00:00Z",
            "eventCreatedDateTime": "2026-03-01T10:00:00Z",
            "documentReferences": [
                {"documentReferenceType": "BKG", "documentReferenceValue": f"BKG{index}"} for index in range(count)
            ],
        }
    )


def test_a_dcsa_event_with_thousands_of_document_references_is_read_in_linear_time() -> None:
    """8,000 references (519 KB) took 49 s, a 4 MiB event (64,000) about an hour, before the schema's limit of 20
    refused it."""
    (result,) = _assert_linear("dcsa", _dcsa_with_document_references)
    assert isinstance(result, Rejection) and "at most 20" in result.reason, result


def test_a_dcsa_event_still_names_each_reference_once_in_the_order_sent() -> None:
    body = orjson.loads(_dcsa_with_document_references(3))
    body["documentReferences"] += body["documentReferences"][:2]
    (event,) = parser("dcsa")(orjson.dumps(body), CARRIER)
    assert not isinstance(event, Rejection), event
    assert [(r.kind, r.value) for r in event.references] == [("carrier_booking", f"BKG{i}") for i in range(3)]


# --- EPCIS: the event hash's property order removed each used node by a search of the list ----------------------


def _epcis_with_nodes(count: int) -> bytes:
    event = {
        "type": "ObjectEvent",
        "eventTime": "2026-03-01T10:00:00Z",
        "eventTimeZoneOffset": "+00:00",
        "action": "OBSERVE",
        "bizStep": "departing",
        "epcList": ["urn:epc:id:bic:CSQU3054383"],
        # nodes with children, which the order leaves in place, ahead of leaves it uses up one by one
        "a": [{"b": f"x{index}"} for index in range(count)],
        "certificationInfo": [f"c{index}" for index in range(count)],
    }
    return orjson.dumps({"type": "EPCISDocument", "schemaVersion": "2.0", "epcisBody": {"eventList": [event]}})


def test_an_epcis_event_with_thousands_of_fields_is_hashed_in_linear_time() -> None:
    """8,000 of each (174 KB) took 12 s, a 4 MiB document about two hours."""
    (result,) = _assert_linear("epcis", _epcis_with_nodes)
    assert not isinstance(result, Rejection), result


# --- ONE Record: every prefix an @context binds to the cargo namespace tried for every term ----------------------


def _onerecord_with_prefixes(count: int) -> bytes:
    context = {f"p{index}": "https://onerecord.iata.org/ns/cargo#" for index in range(count)}
    events = [
        {
            "@id": f"https://1r.example.com/logistics-events/{index}",
            "@type": "LogisticsEvent",
            "eventCode": "DEP",
            "eventDate": "2026-03-01T10:00:00Z",
            "creationDate": "2026-03-01T10:00:00Z",
            "eventFor": {"waybillPrefix": "020", "waybillNumber": "12345675"},
        }
        for index in range(count // 10)
    ]
    return orjson.dumps({"@context": context, "@graph": events})


def test_a_onerecord_context_with_thousands_of_cargo_prefixes_is_refused_in_linear_time() -> None:
    """8,000 prefixes and 800 events (537 KB) took 8.7 s, a 4 MiB payload many minutes: each prefix was searched
    for in the list of those seen, and every term of every event looked up under each of them."""
    results = _assert_linear("onerecord", _onerecord_with_prefixes)
    assert [r.code for r in results if isinstance(r, Rejection)] == ["invalid_onerecord"], results[:2]
    assert "prefixes" in results[0].reason, results[0]


def test_a_onerecord_event_node_context_with_too_many_cargo_prefixes_is_that_events_rejection() -> None:
    one = orjson.loads(_onerecord_with_prefixes(10))
    event = one["@graph"][0]
    good = {**event, "@id": "https://1r.example.com/logistics-events/good", "@context": {"c1": "https://onerecord.iata.org/ns/cargo#"}}
    bad = {**event, "@context": {f"q{i}": "https://onerecord.iata.org/ns/cargo#" for i in range(100)}}
    results = parser("onerecord")(orjson.dumps([good, bad]), CARRIER)
    assert not isinstance(results[0], Rejection), results[0]
    assert isinstance(results[1], Rejection) and "prefixes" in results[1].reason, results[1]


# --- UBL: a party's identifiers made distinct by a search of the ones already seen -------------------------------


def _ubl_with_identifiers(count: int) -> bytes:
    identifiers = b"".join(b'<cbc:EndpointID schemeID="0088">%d</cbc:EndpointID>' % index for index in range(count))
    anchor = b'<cbc:EndpointID schemeID="0199">'
    return UBL_SAMPLE.replace(anchor, identifiers + anchor, 1)


def test_a_ubl_party_with_thousands_of_identifiers_is_read_in_linear_time() -> None:
    """4,000 identifiers (215 KB) took 15 s, a 2 MiB invoice (40,000) about half an hour."""
    (result,) = _assert_linear("ubl", _ubl_with_identifiers)
    assert isinstance(result, Rejection) and result.code == "invalid_invoice" and "identifiers" in result.reason, result


def _ubl_with_tax_totals(count: int) -> bytes:
    currency = b"<cbc:DocumentCurrencyCode>CNY</cbc:DocumentCurrencyCode>"
    totals = b'<cac:TaxTotal><cbc:TaxAmount currencyID="EUR">1</cbc:TaxAmount></cac:TaxTotal>' * count
    return UBL_SAMPLE.replace(currency, currency * (count + 1) + totals, 1)


def test_a_ubl_invoice_with_thousands_of_tax_totals_and_currency_codes_is_read_in_linear_time() -> None:
    """The tax total (BT-110) was found by an XPath comparing every TaxTotal's currency with every
    DocumentCurrencyCode: 8,000 of each (1 MiB) took 6.8 s."""
    _assert_linear("ubl", lambda count: _ubl_with_tax_totals(count * 2))


def test_the_ubl_tax_total_is_still_the_one_in_the_invoice_currency() -> None:
    foreign = b'<cac:TaxTotal><cbc:TaxAmount currencyID="EUR">99.00</cbc:TaxAmount></cac:TaxTotal>'
    body = UBL_SAMPLE.replace(b"<cac:TaxTotal>", foreign + b"<cac:TaxTotal>", 1)
    (event,) = parser("ubl")(body, CARRIER)
    assert not isinstance(event, Rejection), event
    assert (str(event.payload.tax_total.amount), event.payload.tax_total.currency) == ("670.50", "CNY")


# --- EDIFACT: the message header's references and texts read again for every status -----------------------------


def _iftsta(header_segments: list[str], statuses: int) -> bytes:
    message = ["UNH+M1+IFTSTA:D:99B:UN'", "BGM+23+DOC1+9'", *header_segments, "CNI+1'"]
    for _ in range(statuses):
        message += ["STS++1'", "DTM+334:202603011200:203'"]
    message.append(f"UNT+{len(message) + 1}+M1'")
    return "".join(["UNB+UNOA:2+SND+RCV+260301:1200+IC1'", *message, "UNZ+1+IC1'"]).encode()


def test_an_iftsta_with_thousands_of_header_references_and_statuses_is_read_in_linear_time() -> None:
    """4,000 header references and 4,000 statuses (179 KB) took 14 s, a 1 MiB interchange about ten minutes, each
    status refused for the same header."""
    results = _assert_linear("edifact", lambda count: _iftsta([f"RFF+BN:B{i}'" for i in range(count)], count))
    assert len(results) == 1 and isinstance(results[0], Rejection), results[:2]
    assert results[0].code == "invalid_edifact" and "references" in results[0].reason, results[0]


def test_an_iftsta_with_thousands_of_header_texts_and_statuses_is_read_in_linear_time() -> None:
    results = _assert_linear("edifact", lambda count: _iftsta(["RFF+BN:B1'"] + [f"FTX+AAI+++T{i}'" for i in range(count)], count))
    assert all(not isinstance(r, Rejection) for r in results), results[0]
    remarks = results[0].payload.remarks
    assert remarks is not None and remarks.startswith("T0; T1; ") and remarks.endswith("…") and len(remarks) == 500


def test_an_iftsta_header_still_gives_every_status_its_references_and_texts() -> None:
    body = _iftsta(["RFF+BN:B1'", "RFF+BN:B1'", "FTX+AAI+++header text'", "RFF+BM:BL2'"], 2)
    body = body.replace(b"STS++1'", b"STS++1'RFF+AWB:020-12345675'FTX+AAI+++own text'", 1)
    body = body.replace(b"UNT+12+M1'", b"UNT+14+M1'")
    first, second = parser("edifact")(body, CARRIER)
    assert not isinstance(first, Rejection) and not isinstance(second, Rejection), (first, second)
    assert [(r.kind, r.value) for r in first.references] == [
        ("carrier_booking", "B1"), ("bill_of_lading", "BL2"), ("air_waybill", "020-12345675")
    ]
    assert [(r.kind, r.value) for r in second.references] == [("carrier_booking", "B1"), ("bill_of_lading", "BL2")]
    assert first.payload.remarks == "own text; header text; DTM 334 202603011200 (203)"
    assert second.payload.remarks == "header text; DTM 334 202603011200 (203)"
