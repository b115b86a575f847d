"""The quarantine: records a stage could not decode or write, set aside with the reason so the stage goes on.

A stage writes its set-aside records in the transaction that stores its offsets past them, so a record is either
applied, or quarantined, or read again: never lost. `bad_record` tells a record Postgres refuses (its data) from
an outage (connectors.postgres.sink.transient: retried, never quarantined) and from anything else (a hub bug or a
broken schema, which stops the stage as before: quarantining every record would hide it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Sequence

import asyncpg

from connectors.postgres.db import columns

Stage = Literal["sink", "share", "webhooks"]

SET_ASIDE = """
INSERT INTO quarantine (stage, consumer, topic, partition, kafka_offset, kafka_timestamp, key, value, reason)
SELECT $1, $2, q.topic, q.partition, q.kafka_offset, q.kafka_timestamp, q.key, q.value, q.reason
FROM unnest($3::text[], $4::integer[], $5::bigint[], $6::bigint[], $7::bytea[], $8::bytea[], $9::text[])
    AS q(topic, partition, kafka_offset, kafka_timestamp, key, value, reason)
ON CONFLICT (consumer, topic, partition, kafka_offset) DO NOTHING
"""
LIST = """
SELECT quarantine_id, stage, consumer, topic, partition, kafka_offset, kafka_timestamp, key, value, reason,
    quarantined_at, attempts, replayed_at
FROM quarantine WHERE $1 OR replayed_at IS NULL ORDER BY quarantine_id
"""
TAKE = "SELECT * FROM quarantine WHERE quarantine_id = $1 FOR UPDATE"
REPLAYED = "UPDATE quarantine SET replayed_at = now(), attempts = attempts + 1 WHERE quarantine_id = $1"
FAILED = "UPDATE quarantine SET reason = $2, attempts = attempts + 1 WHERE quarantine_id = $1"

# What Postgres says about a record's own data: a value it cannot store (class 22: NUL in text or jsonb, an
# untranslatable character, a number out of range), a constraint the row breaks (23), a value too large (54), or
# asyncpg refusing to encode an argument (a lone surrogate).
BAD_RECORD: tuple[type[BaseException], ...] = (
    asyncpg.exceptions.DataError,
    asyncpg.exceptions.IntegrityConstraintViolationError,
    asyncpg.exceptions.ProgramLimitExceededError,
    asyncpg.exceptions._base.DataError,
    UnicodeError,
)


def bad_record(error: BaseException) -> bool:
    """Did Postgres (or asyncpg) refuse this because of the record's own data?"""
    return isinstance(error, BAD_RECORD)


def refused_by_postgres(error: BaseException) -> str:
    return f"Postgres refused it: {type(error).__name__}: {error}"


@dataclass(frozen=True)
class SetAside:
    """One consumed record, as it came, and why it could not be applied."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    reason: str
    timestamp: int  # the Kafka record's, in ms: the webhook filler dates a share by it


def storable(reason: str) -> str:
    """`reason` as text Postgres takes: a reason may quote the very character that made the record bad."""
    return reason.replace("\x00", "\\x00").encode("utf-8", "backslashreplace").decode("utf-8")


async def set_aside(conn: asyncpg.Connection, stage: Stage, consumer: str, records: Sequence[SetAside]) -> None:
    """Quarantine `records` (inside the caller's transaction, with its offsets); one already there stays as is."""
    if not records:
        return
    kept = columns(records, "topic", "partition", "offset", "timestamp", "key", "value")
    await conn.execute(SET_ASIDE, stage, consumer, *kept, [storable(r.reason) for r in records])


async def listed(conn: asyncpg.Connection, include_replayed: bool = False) -> list[dict[str, Any]]:
    return [dict(row) for row in await conn.fetch(LIST, include_replayed)]
