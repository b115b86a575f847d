"""Attacker's test: an eBL is surrendered for delivery by its current holder (or recorded by its issuer), never by
anyone else. Before issue 16 any party could surrender the through document, and with it claim the cargo."""

from __future__ import annotations

from pathlib import Path

import orjson

from connectors.parties import load_parties
from schemas.events import HUB_EVENT
from streams.merge import fold

REPO = Path(__file__).resolve().parents[2]
SHIPMENT = "SHP-2026-000042"


def test_a_carrier_cannot_surrender_the_consignees_ebl() -> None:
    docs = [orjson.loads(line) for line in (REPO / "examples" / "journey.jsonl").read_bytes().splitlines() if line]
    surrender = next(d for d in docs if d["event_id"] == "mtd-1-surrender")
    # the sea carrier surrenders the MTO's through document, held by the consignee, a day before the real surrender
    forged = {**surrender, "event_id": "mtd-1-grab", "source": "carrier.oceanline", "occurred_at": "2026-03-11T18:30:00Z"}
    authority = load_parties(REPO / "examples" / "parties.json").authority()
    record = fold([HUB_EVENT.validate_python(d) for d in docs + [forged]], authority)[SHIPMENT]
    assert record.through_document is not None
    assert record.through_document.surrendered_by == "mto.westcorridor/mtd-1-surrender"
    [refusal] = [r for r in record.rejected if r.event == "carrier.oceanline/mtd-1-grab"]
    assert refusal.kind == "conflict" and "only its holder consignee.johor-assembly surrenders" in refusal.reason
