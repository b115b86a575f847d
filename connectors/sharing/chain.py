"""Appending to the share audit's hash chain in Postgres, and reading the chain and its `hub.audit` copy for
`mmhub audit verify` (the hashing and the checks are in streams.audit_chain).

Every writer of `share_audit` (the share stage, the webhook dispatcher, the gateway's reads) appends through
`append`, in its own transaction, after locking the chain's head row: one writer at a time extends the chain.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import asyncpg
import orjson

from connectors.kafka import read_all
from connectors.postgres.db import connect
from hubconf.settings import Settings
from streams.audit_chain import Finding, Head, extend, verify
from streams.sharing import Share


class ChainHeadMissing(RuntimeError):
    """The chain's head row is gone: nothing is audited until an operator has looked (`mmhub audit verify`)."""


LOCK_HEAD = "SELECT seq, row_hash FROM share_audit_chain WHERE id = 1 FOR UPDATE"
MOVE_HEAD = "UPDATE share_audit_chain SET seq = $1, row_hash = $2 WHERE id = 1"
AUDITED = "SELECT share_id FROM share_audit WHERE share_id = ANY($1::text[])"
ROW_COLUMNS = (
    "share_id, party, shipment_id, record_version, kind, channel, fields, policy_version, relations, via_grants, "
    "shared_at, seq, prev_hash, row_hash AS hash"
)
UNCHAINED = f"SELECT {ROW_COLUMNS} FROM share_audit WHERE seq IS NULL ORDER BY shared_at, share_id"
PLACE = """
UPDATE share_audit a SET seq = u.seq, prev_hash = u.prev_hash, row_hash = u.row_hash
FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[]) AS u(share_id, seq, prev_hash, row_hash)
WHERE a.share_id = u.share_id
"""
# Arrays of arrays cannot be ragged in Postgres, so each row's fields, relations and grants travel as JSON.
INSERT = """
INSERT INTO share_audit (share_id, party, shipment_id, record_version, kind, channel, fields, policy_version,
    relations, via_grants, shared_at, seq, prev_hash, row_hash)
SELECT share_id, party, shipment_id, record_version, kind, channel,
    ARRAY(SELECT jsonb_array_elements_text(fields::jsonb)), policy_version,
    ARRAY(SELECT jsonb_array_elements_text(relations::jsonb)),
    ARRAY(SELECT jsonb_array_elements_text(via_grants::jsonb)), shared_at, seq, prev_hash, row_hash
FROM unnest($1::text[], $2::text[], $3::text[], $4::integer[], $5::text[], $6::text[], $7::text[], $8::text[],
    $9::text[], $10::text[], $11::timestamptz[], $12::bigint[], $13::text[], $14::text[])
    AS s(share_id, party, shipment_id, record_version, kind, channel, fields, policy_version, relations,
         via_grants, shared_at, seq, prev_hash, row_hash)
"""
OUTBOX = """
INSERT INTO share_audit_outbox (share_id, party, document)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[])
"""


async def append(conn: asyncpg.Connection, shares: Sequence[Share]) -> list[dict[str, Any]]:
    """Chain and insert the shares not audited before (a replayed share id keeps its first row), in the caller's
    transaction. Returns their `hub.audit` documents (the share's document with `seq`, `prev_hash` and `hash`),
    in order. Rows from before the chain began are placed first, oldest first."""
    head = await conn.fetchrow(LOCK_HEAD)
    if head is None:
        raise ChainHeadMissing("share_audit_chain has no head row; run `mmhub audit verify`")
    seq, prev = head["seq"], head["row_hash"]
    unchained = [dict(row) for row in await conn.fetch(UNCHAINED)]
    if unchained:
        placed = extend(seq, prev, unchained)
        await conn.execute(PLACE, *zip(*((e["share_id"], e["seq"], e["prev_hash"], e["hash"]) for e in placed)))
        seq, prev = placed[-1]["seq"], placed[-1]["hash"]
    known = {row["share_id"] for row in await conn.fetch(AUDITED, [s.share_id for s in shares])}
    fresh: dict[str, Share] = {}
    for share in shares:
        if share.share_id not in known:
            fresh.setdefault(share.share_id, share)
    entries = extend(seq, prev, [s.document() for s in fresh.values()])
    if entries:
        s = list(fresh.values())
        await conn.execute(
            INSERT,
            [e["share_id"] for e in entries], [e["party"] for e in entries], [e["shipment_id"] for e in entries],
            [e["record_version"] for e in entries], [e["kind"] for e in entries], [e["channel"] for e in entries],
            [orjson.dumps(e["fields"]).decode() for e in entries], [e["policy_version"] for e in entries],
            [orjson.dumps(e["relations"]).decode() for e in entries],
            [orjson.dumps(e["via_grants"]).decode() for e in entries], [share.shared_at for share in s],
            [e["seq"] for e in entries], [e["prev_hash"] for e in entries], [e["hash"] for e in entries],
        )
        seq, prev = entries[-1]["seq"], entries[-1]["hash"]
    if unchained or entries:
        await conn.execute(MOVE_HEAD, seq, prev)
    return entries


async def append_with_outbox(conn: asyncpg.Connection, shares: Sequence[Share]) -> int:
    """`append`, and queue each new row for hub.audit (`share_audit_outbox`, which the share stage publishes).
    Returns how many rows were new."""
    entries = await append(conn, shares)
    if entries:
        await conn.execute(
            OUTBOX, [e["share_id"] for e in entries], [e["party"] for e in entries],
            [orjson.dumps(e).decode() for e in entries],
        )
    return len(entries)


# --- verification ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Report:
    rows: int
    published: int
    pending: int
    findings: list[Finding]

    def document(self) -> dict[str, Any]:
        return {
            "rows": self.rows, "published": self.published, "pending": self.pending,
            "findings": [f.document() for f in self.findings],
        }


async def check(settings: Settings) -> Report:
    """Read the chain from Postgres and every message on hub.audit up to its high watermark, and verify."""
    conn = await connect(settings, "mmhub-audit-verify")
    try:
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            rows = [dict(row) for row in await conn.fetch(f"SELECT {ROW_COLUMNS} FROM share_audit")]
            head_row = await conn.fetchrow("SELECT seq, row_hash FROM share_audit_chain WHERE id = 1")
            pending = {row["share_id"] for row in await conn.fetch("SELECT share_id FROM share_audit_outbox")}
    finally:
        await conn.close()
    head = None if head_row is None else Head(head_row["seq"], head_row["row_hash"])
    published: list[dict[str, Any]] = []
    malformed: list[Finding] = []
    for message in await read_all(settings, settings.topics.audit):
        try:
            document = orjson.loads(message.value or b"")
            if not isinstance(document, dict) or not isinstance(document.get("share_id"), str):
                raise ValueError("not an audit entry")
            published.append(document)
        except ValueError as error:
            where = f"partition {message.partition} offset {message.offset}"
            malformed.append(Finding("malformed", None, None, f"hub.audit {where}: {error}"))
    # Writers go on while this reads: a row the gateway committed after the table was read can be on the topic.
    conn = await connect(settings, "mmhub-audit-verify")
    try:
        now = await conn.fetchval("SELECT seq FROM share_audit_chain WHERE id = 1")
    finally:
        await conn.close()
    since = 0 if head is None or now is None else max(0, now - head.seq)
    findings = malformed + verify(rows, head, published, pending, since)
    return Report(len(rows), len(published), len(pending), findings)
