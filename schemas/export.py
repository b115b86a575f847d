"""JSON Schema of every canonical model, so carriers in any language can validate what they send, and of every
message the hub writes (schemas.messages), so parties and insurers can validate what they receive."""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter

from schemas.events import HUB_EVENT
from schemas.messages import AuditEntry, ClaimMessage, ParkedSummary, SettlementMessage, ShareMessage, StatusMessage
from schemas.record import ShipmentRecord

# What the hub writes, by the name `mmhub schema` gives its file: each is read as it is serialised.
MESSAGES: dict[str, Any] = {
    "status-message": StatusMessage,
    "settlement-message": SettlementMessage,
    "claim-message": ClaimMessage,
    "share-message": ShareMessage,
    "audit-entry": AuditEntry,
    "parked-summary": ParkedSummary,
}


def json_schemas() -> dict[str, dict[str, Any]]:
    return {
        "hub-event": HUB_EVENT.json_schema(mode="validation"),
        "shipment-record": TypeAdapter(ShipmentRecord).json_schema(mode="serialization"),
        **{name: TypeAdapter(model).json_schema(mode="serialization") for name, model in MESSAGES.items()},
    }
