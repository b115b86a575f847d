"""Reading the projection: what the CLI, the demo and the tests ask of Postgres once the sink has written it.

Each call opens and closes its own connection: these are occasional reads, not a hot path. Results are plain
JSON-ready dicts (timestamps added by Postgres are ISO 8601 strings, like those inside the record).
"""

from __future__ import annotations

from typing import Any

import orjson

from connectors.postgres.db import connect
from hubconf.settings import Settings
from schemas.record import ShipmentRecord


async def fetch_record(settings: Settings, shipment_id: str) -> dict[str, Any] | None:
    """The latest projected record of a shipment, with `projected_at` (when this version was written) added."""
    conn = await connect(settings, "mmhub-pg-store")
    try:
        row = await conn.fetchrow("SELECT record, projected_at FROM shipments WHERE shipment_id = $1", shipment_id)
    finally:
        await conn.close()
    if row is None:
        return None
    record: dict[str, Any] = orjson.loads(row["record"])
    record["projected_at"] = row["projected_at"].isoformat()
    return record


async def fetch_events(settings: Settings, shipment_id: str) -> list[dict[str, Any]]:
    """Every event copy the hub applied to a shipment, in the order things happened (ties by event key)."""
    conn = await connect(settings, "mmhub-pg-store")
    try:
        rows = await conn.fetch(
            "SELECT event_key, fingerprint, record_version, event FROM shipment_events WHERE shipment_id = $1"
            " ORDER BY occurred_at, event_key, record_version, fingerprint",
            shipment_id,
        )
    finally:
        await conn.close()
    return [
        {
            "event_key": row["event_key"],
            "fingerprint": row["fingerprint"],
            "record_version": row["record_version"],
            "event": orjson.loads(row["event"]),
        }
        for row in rows
    ]


async def held_fingerprints(settings: Settings, shipment_id: str, fingerprints: list[str]) -> set[str]:
    """Which of these event copies (streams.copies.fingerprint) the projection of a shipment has taken in."""
    conn = await connect(settings, "mmhub-pg-store")
    try:
        rows = await conn.fetch(
            "SELECT fingerprint FROM shipment_events WHERE shipment_id = $1 AND fingerprint = ANY($2::text[])",
            shipment_id,
            fingerprints,
        )
    finally:
        await conn.close()
    return {row["fingerprint"] for row in rows}


async def projected_versions(settings: Settings) -> dict[str, int]:
    """Shipment id -> projected version: lets a caller wait until the projection has caught up with the hub."""
    conn = await connect(settings, "mmhub-pg-store")
    try:
        rows = await conn.fetch("SELECT shipment_id, version FROM shipments")
    finally:
        await conn.close()
    return {row["shipment_id"]: row["version"] for row in rows}


async def all_records(settings: Settings) -> list[ShipmentRecord]:
    """Every shipment's latest projected record (the live projection the data sets are computed from)."""
    conn = await connect(settings, "mmhub-pg-store")
    try:
        rows = await conn.fetch("SELECT record FROM shipments ORDER BY shipment_id")
    finally:
        await conn.close()
    return [ShipmentRecord.model_validate_json(row["record"]) for row in rows]
