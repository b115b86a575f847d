"""The quarantine, for the operator: the records a stage set aside (it could not decode them, or Postgres refused
their rows), listed, and each marked once replayed (`mmhub quarantine`).

The stages set records aside through their loop (runtime.stored_offsets), in the transaction that stores their
offsets past them, so a record is either applied, or quarantined, or read again: never lost.
"""

from __future__ import annotations

from typing import Any

import asyncpg

LIST = """
SELECT quarantine_id, stage, consumer, topic, partition, kafka_offset, kafka_timestamp, key, value, reason,
    quarantined_at, attempts, replayed_at
FROM quarantine WHERE $1 OR replayed_at IS NULL ORDER BY quarantine_id
"""
TAKE = "SELECT * FROM quarantine WHERE quarantine_id = $1 FOR UPDATE"
REPLAYED = "UPDATE quarantine SET replayed_at = now(), attempts = attempts + 1 WHERE quarantine_id = $1"
FAILED = "UPDATE quarantine SET reason = $2, attempts = attempts + 1 WHERE quarantine_id = $1"


async def listed(conn: asyncpg.Connection, include_replayed: bool = False) -> list[dict[str, Any]]:
    return [dict(row) for row in await conn.fetch(LIST, include_replayed)]
