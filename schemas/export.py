"""JSON Schema of every canonical model, so carriers in any language can validate what they send."""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter

from schemas.events import HUB_EVENT
from schemas.record import ShipmentRecord


def json_schemas() -> dict[str, dict[str, Any]]:
    return {
        "hub-event": HUB_EVENT.json_schema(mode="validation"),
        "shipment-record": TypeAdapter(ShipmentRecord).json_schema(mode="serialization"),
    }
