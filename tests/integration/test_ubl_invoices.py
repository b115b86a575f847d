"""Carrier e-invoices on the real broker (issue 16, item 3): a carrier's signed UBL invoices on `carrier.ubl.raw`
and a tax verifier's result fold into `carrier_invoices` as the offline fold does; the same verification forged by
the carrier is refused, and a document with a DOCTYPE is dead-lettered `unsafe_xml` with its original bytes."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from connectors.carriers import load_signing_key
from connectors.kafka import publish, publish_raw
from connectors.ubl.parse import parse
from hubconf import topics
from schemas.events import CarrierInvoiceEvent
from tests.integration.hub import JOURNEY_ID, caught_up, journey_lines, offline, projected_record, read_topic, wait_for

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "connectors" / "ubl" / "samples"
HOSTILE = b'<?xml version="1.0"?><!DOCTYPE Invoice [<!ENTITY x SYSTEM "file:///etc/passwd">]><Invoice>&x;</Invoice>'


def verification(source: str, event_id: str) -> bytes:
    return orjson.dumps({
        "event_id": event_id, "source": source, "shipment_id": JOURNEY_ID, "event_type": "invoice_verification",
        "occurred_at": "2026-03-07T02:00:00Z", "recorded_at": "2026-03-07T02:00:05Z",
        "payload": {
            "carrier": "carrier.cr-rail", "invoice_number": "CRCT-2026-0001", "result": "verified",
            "payable": {"amount": "8120.50", "currency": "CNY"},  # rail-leg2-matched.xml's PayableAmount
        },
    })


async def test_ubl_invoices_and_a_verifiers_result_fold_as_offline_and_a_doctype_is_dead_lettered(hub) -> None:
    settings, worker, sink = hub
    key = load_signing_key(REPO / "examples" / "keys" / "carrier.cr-rail.2025-01.json")
    bodies = [(SAMPLES / name).read_bytes() for name in ("rail-leg2-matched.xml", "rail-leg2-tax-mismatch.xml")]
    invoices = [e for body in bodies for e in parse(body, key.carrier)]
    assert all(isinstance(e, CarrierInvoiceEvent) for e in invoices)
    checks = [verification("verifier.chinatax", "chk-1"), verification("carrier.cr-rail", "chk-forged")]
    lines = journey_lines() + checks
    expected = offline(lines + [orjson.dumps(e.model_dump(mode="json")) for e in invoices])
    found = {i.invoice_number: i for i in expected[JOURNEY_ID].carrier_invoices}
    assert (found["CRCT-2026-0001"].match, found["CRCT-2026-0001"].verification) == ("matched", "verified")
    assert found["CRCT-2026-0002"].match == "mismatched"

    worker.start()
    sink.start()
    await publish(settings, lines)
    await publish_raw(settings, "ubl", bodies + [HOSTILE], key)
    await wait_for(lambda: caught_up(settings, expected), 120, "the projection", worker, sink)
    assert await projected_record(settings, JOURNEY_ID) == expected[JOURNEY_ID]
    dead = await read_topic(settings, settings.topics.dlq, expected=2, timeout=60)
    by_code = {dict(m.headers)[topics.DLQ_CODE].decode(): m for m in dead}
    assert set(by_code) == {"unsafe_xml", "not_entitled"}
    assert by_code["unsafe_xml"].value == HOSTILE
    assert worker.alive, worker.tail()
