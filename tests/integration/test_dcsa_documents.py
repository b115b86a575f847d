"""DCSA eBL notifications on the real broker (issue 14): the MTO's signed notifications on `carrier.dcsa.raw` that
name only the through document's number resolve through the registration the through document made, amend and
surrender it; a carrier's notification about it is refused and dead-lettered. The projection equals the offline fold."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from connectors.carriers import load_signing_key
from connectors.dcsa.parse import parse
from connectors.kafka import publish, publish_raw
from hubconf import topics
from schemas.rejection import Rejection
from streams.references import addressed
from tests.integration.hub import JOURNEY_ID, caught_up, journey_lines, offline, projected_record, read_topic, wait_for

pytestmark = pytest.mark.integration

KEYS = Path(__file__).resolve().parents[2] / "examples" / "keys"
THROUGH = "WLC-MTD-260302-0042"  # the journey's through document, issued by mto.westcorridor


def notification(status: str, ident: str, time: str) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": ident,
        "source": "https://dcsa.example/ebl",
        "type": "org.dcsa.transport-document.v3",
        "time": time,
        "datacontenttype": "application/json",
        "subscriptionReference": "sub-42",
        "data": {"transportDocumentStatus": status, "transportDocumentReference": THROUGH},
    }


async def test_mto_ebl_notifications_amend_and_surrender_the_through_document_and_a_carriers_is_refused(hub) -> None:
    settings, worker, sink = hub
    lines = [line for line in journey_lines() if b'"mtd-1-surrender"' not in line]
    mto_body = orjson.dumps(
        [
            notification("SURRENDERED_FOR_AMENDMENT", "n-1", "2026-03-05T09:00:00Z"),
            notification("ISSUED", "n-2", "2026-03-05T11:00:00Z"),
            notification("SURRENDERED_FOR_DELIVERY", "n-3", "2026-03-12T18:30:00Z"),
        ]
    )
    forged_body = orjson.dumps(notification("VOIDED", "x-1", "2026-03-06T00:00:00Z"))
    mto_key = load_signing_key(KEYS / "mto.westcorridor.2025-01.json")
    carrier_key = load_signing_key(KEYS / "carrier.oceanline.2025-01.json")
    parsed = parse(mto_body, mto_key.carrier) + parse(forged_body, carrier_key.carrier)
    assert not any(isinstance(e, Rejection) for e in parsed)
    resolved = [orjson.dumps(addressed(e, JOURNEY_ID).model_dump(mode="json")) for e in parsed if not isinstance(e, Rejection)]
    expected = offline(lines + resolved)
    document = expected[JOURNEY_ID].through_document
    assert document is not None and document.status == "surrendered"
    assert [a.action for a in document.amendments] == ["surrendered_for_amendment", "amended"]
    assert [r.kind for r in expected[JOURNEY_ID].rejected if r.event.startswith("carrier.oceanline/")] == ["not_entitled"]

    worker.start()
    sink.start()
    await publish(settings, lines)
    await publish_raw(settings, "dcsa", [mto_body], mto_key)
    await publish_raw(settings, "dcsa", [forged_body], carrier_key)
    await wait_for(lambda: caught_up(settings, expected), 120, "the projection", worker, sink)
    assert await projected_record(settings, JOURNEY_ID) == expected[JOURNEY_ID]
    dead = await read_topic(settings, settings.topics.dlq, expected=1, timeout=60)
    codes = [dict(m.headers)[topics.DLQ_CODE].decode() for m in dead]
    assert codes == ["not_entitled"]
    assert worker.alive, worker.tail()
