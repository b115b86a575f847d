"""What the reader tests share: the example journey's record, its parties and their demo API tokens (plus one more
party with no relation to the shipment, to be a delegate's delegate)."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import orjson

from connectors.kafka import read_jsonl
from connectors.parties import Party, PartyRegistry, ReaderToken, load_parties, token_hash
from hubconf.settings import DEFAULT_PARTIES
from schemas.record import ShipmentRecord
from streams.codec import decode_event
from streams.merge import fold

from ..builders import AUTHORITY

REPO = Path(__file__).resolve().parents[3]
SHIPMENT = "SHP-2026-000042"
NOW = datetime(2026, 3, 20, 12, 0, tzinfo=timezone.utc)
MTO, SHIPPER, INSURER = "mto.westcorridor", "shipper.chengdu-elec", "insurer.picc"
RAIL, SEA, BROKER = "carrier.cr-rail", "carrier.oceanline", "broker.customs-jb"
SG_BROKER, SG_TOKEN = "broker.customs-sg", "unit-test-token-sg"

TOKENS: dict[str, str] = {
    **orjson.loads((REPO / "examples" / "keys" / "tokens.json").read_bytes())["tokens"],
    SG_BROKER: SG_TOKEN,
}
PARTIES = PartyRegistry(parties=[
    *load_parties(DEFAULT_PARTIES).parties,
    Party(party_id=SG_BROKER, name="SG Customs Brokers", roles=["customs_broker"],
          tokens=[ReaderToken(token_id="t1", sha256=token_hash(SG_TOKEN))]),
])


def journey_record() -> ShipmentRecord:
    records = fold((decode_event(line) for line in read_jsonl(REPO / "examples" / "journey.jsonl")), AUTHORITY)  # type: ignore[misc]
    return records[SHIPMENT]


RECORD = journey_record()
