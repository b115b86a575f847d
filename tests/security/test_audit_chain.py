"""Finding 7 of issue 12: the audit log was not tamper-evident.

Rows deleted from `share_audit` with the application's own database role vanished from `/disclosures` and
`mmhub usage` without a trace, though their copies remained on `hub.audit`. The rows are now a hash chain, and
`mmhub audit verify` recomputes it and compares it with hub.audit: each tampering below, done with the role the hub
itself uses, makes it exit non-zero naming the row; the untouched (and restored) audit passes.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable

import asyncpg
import orjson
import pytest
from aiokafka import AIOKafkaProducer

from connectors.gateway.reader_store import PostgresReaderStore
from connectors.kafka import publish, read_jsonl
from connectors.postgres.db import connect
from connectors.postgres.migrate import migrate
from connectors.sharing.chain import append, check
from hubconf.settings import Settings
from streams.sharing import Share
from tests.integration.hub import HubProcess, drop_internal_topics, offline, wait_for
from tests.integration.test_sharing import JOURNEY, SHIPMENT, shared_up_to

pytestmark = pytest.mark.integration

TIMEOUT_S = 180


@pytest.fixture
async def audited(
    hub_settings: Callable[..., Awaitable[Settings]], tmp_path: Path
) -> AsyncIterator[tuple[Settings, dict[str, str]]]:
    """The claim journey shared over Kafka by the real worker and share stage, plus one read audited by the
    gateway's store; every audit row published to hub.audit. The share stage is stopped: nothing writes after."""
    settings = await hub_settings()
    await migrate(settings.pg_dsn, settings.pg_schema)
    worker = HubProcess("worker", settings, tmp_path / "worker-data", tmp_path / "worker.log")
    share = HubProcess("share", settings, tmp_path / "share-data", tmp_path / "share.log")
    try:
        worker.start()
        share.start()
        lines = read_jsonl(JOURNEY)
        await publish(settings, lines)
        version = offline(lines)[SHIPMENT].version
        await wait_for(lambda: shared_up_to(settings, version), TIMEOUT_S, "the journey's shares", worker, share)
        share.stop()
        assert share.process is not None and share.process.returncode == 0, share.tail()
        await _gateway_read(settings, version)
        yield settings, share.env
    finally:
        worker.stop()
        share.stop()
        await drop_internal_topics(settings)


async def _gateway_read(settings: Settings, version: int) -> None:
    """One read through the gateway's audit store (chained, published to hub.audit before its commit)."""
    store = await PostgresReaderStore.open(settings, max_size=1)
    producer = AIOKafkaProducer(**settings.kafka_client(acks="all"))
    await producer.start()
    try:
        share = Share("shipper.chengdu-elec", SHIPMENT, version, "status", "api", ("status",), "2026-11-28.1",
                      ("shipper",), (), datetime.now(timezone.utc))

        async def to_hub_audit(entry: dict[str, Any]) -> None:
            await producer.send_and_wait(settings.topics.audit, orjson.dumps(entry), key=share.party.encode())

        await store.write(share, to_hub_audit)
    finally:
        await producer.stop()
        await store.close()


def verify(env: dict[str, str]) -> tuple[int, str]:
    """`mmhub audit verify` as an operator runs it: its exit code and what it printed."""
    done = subprocess.run(
        [sys.executable, "-m", "mmhub.cli", "audit", "verify"], env=env, capture_output=True, timeout=120, check=False
    )
    return done.returncode, done.stdout.decode() + done.stderr.decode()


async def kinds(settings: Settings) -> set[tuple[str, str | None]]:
    return {(f.kind, f.share_id) for f in (await check(settings)).findings}


async def run(settings: Settings, query: str, *args: Any) -> list[asyncpg.Record]:
    """SQL as the hub's own role, as psql would send it."""
    conn = await connect(settings, "psql")
    try:
        return list(await conn.fetch(query, *args))
    finally:
        await conn.close()


async def test_verify_finds_each_deleted_edited_reordered_or_unpublished_row(audited: tuple[Settings, dict[str, str]]) -> None:
    settings, env = audited
    rows = await run(settings, "SELECT * FROM share_audit ORDER BY seq")
    # rows[9] is the last the checks below need; the worker's checkpoints take the published journey in as one
    # burst, in fewer versions (and so fewer shares) than faust's per-fetch batches did
    assert len(rows) >= 10 and [r["seq"] for r in rows] == list(range(1, len(rows) + 1))
    assert {r["channel"] for r in rows} == {"kafka", "api"}
    code, printed = verify(env)
    assert code == 0, printed
    assert f"{len(rows)} row(s) in share_audit" in printed and "the chain is whole and hub.audit agrees" in printed

    # deleted in the middle of the chain
    victim = dict(rows[4])
    await run(settings, "DELETE FROM share_audit WHERE share_id = $1", victim["share_id"])
    code, printed = verify(env)
    assert code == 1 and "deleted" in printed and victim["share_id"] in printed, printed
    assert ("deleted", victim["share_id"]) in await kinds(settings)
    await run(settings, "INSERT INTO share_audit SELECT * FROM jsonb_populate_record(NULL::share_audit, $1::jsonb)",
              orjson.dumps(victim, default=str).decode())
    assert await kinds(settings) == set(), "restored exactly"

    # deleted at the end, with the head wound back to cover it: only hub.audit still holds it
    last = dict(rows[-1])
    await run(settings, "DELETE FROM share_audit WHERE share_id = $1", last["share_id"])
    await run(settings, "UPDATE share_audit_chain SET seq = $1, row_hash = $2", rows[-2]["seq"], rows[-2]["row_hash"])
    code, printed = verify(env)
    assert code == 1 and last["share_id"] in printed, printed
    assert ("not_in_table", last["share_id"]) in await kinds(settings)
    await run(settings, "INSERT INTO share_audit SELECT * FROM jsonb_populate_record(NULL::share_audit, $1::jsonb)",
              orjson.dumps(last, default=str).decode())
    await run(settings, "UPDATE share_audit_chain SET seq = $1, row_hash = $2", last["seq"], last["row_hash"])
    assert await kinds(settings) == set()

    # edited: a field taken out of what a party was shown
    edited = rows[7]
    await run(settings, "UPDATE share_audit SET fields = fields[2:] WHERE share_id = $1", edited["share_id"])
    code, printed = verify(env)
    assert code == 1 and "edited" in printed and edited["share_id"] in printed, printed
    assert {("edited", edited["share_id"]), ("differs", edited["share_id"])} <= await kinds(settings)
    await run(settings, "UPDATE share_audit SET fields = $2 WHERE share_id = $1", edited["share_id"], edited["fields"])
    assert await kinds(settings) == set()

    # reordered: two rows swap their places in the chain
    a, b = rows[2], rows[9]
    swap = "UPDATE share_audit SET seq = $2, prev_hash = $3, row_hash = $4 WHERE share_id = $1"
    await run(settings, swap, a["share_id"], 10**9, b["prev_hash"], b["row_hash"])
    await run(settings, swap, b["share_id"], a["seq"], a["prev_hash"], a["row_hash"])
    await run(settings, swap, a["share_id"], b["seq"], b["prev_hash"], b["row_hash"])
    code, printed = verify(env)
    assert code == 1 and a["share_id"] in printed and b["share_id"] in printed, printed
    assert {("reordered", a["share_id"]), ("reordered", b["share_id"])} <= await kinds(settings)
    await run(settings, swap, a["share_id"], 10**9, a["prev_hash"], a["row_hash"])
    await run(settings, swap, b["share_id"], b["seq"], b["prev_hash"], b["row_hash"])
    await run(settings, swap, a["share_id"], a["seq"], a["prev_hash"], a["row_hash"])
    assert await kinds(settings) == set()

    # a row chained properly but never published (written around the outbox)
    forged = Share("carrier.oceanline", SHIPMENT, 1, "status", "api", (), "2026-11-28.1", ("carrier",), (),
                   datetime.now(timezone.utc))
    conn = await connect(settings, "psql")
    try:
        async with conn.transaction():
            await append(conn, [forged])
    finally:
        await conn.close()
    code, printed = verify(env)
    assert code == 1 and "not_on_topic" in printed and forged.share_id in printed, printed
    await run(settings, "DELETE FROM share_audit WHERE share_id = $1", forged.share_id)
    await run(settings, "UPDATE share_audit_chain SET seq = $1, row_hash = $2", last["seq"], last["row_hash"])
    assert await kinds(settings) == set()

    # a message on hub.audit that the table never held
    producer = AIOKafkaProducer(**settings.kafka_client(acks="all"))
    await producer.start()
    try:
        stray = {**forged.document(), "share_id": "kafka/stray.party/SHP-2026-000043/1/status/", "party": "stray.party"}
        await producer.send_and_wait(settings.topics.audit, orjson.dumps(stray), key=b"stray.party")
    finally:
        await producer.stop()
    code, printed = verify(env)
    assert code == 1 and "not_in_table" in printed and stray["share_id"] in printed, printed


async def test_rows_audited_before_the_chain_are_chained_oldest_first_by_the_next_append(
    hub_settings: Callable[..., Awaitable[Settings]],
) -> None:
    settings = await hub_settings()
    await migrate(settings.pg_dsn, settings.pg_schema)
    old = [
        Share(party, SHIPMENT, 1, "status", "kafka", ("status",), "2026-11-28.1", ("carrier",), (),
              datetime(2026, 11, 1, hour, tzinfo=timezone.utc))
        for party, hour in (("carrier.b", 9), ("carrier.a", 8))
    ]
    for share in old:  # as the writers before migration 0008 wrote them: no place in the chain
        await run(settings, "INSERT INTO share_audit (share_id, party, shipment_id, record_version, kind, channel, fields,"
                  " policy_version, relations, via_grants, shared_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                  share.share_id, share.party, share.shipment_id, share.version, share.kind, share.channel,
                  list(share.fields), share.policy_version, list(share.relations), list(share.via_grants), share.shared_at)
    assert {(f.kind, f.share_id) for f in (await check(settings)).findings} >= {("unchained", s.share_id) for s in old}

    new = Share("carrier.c", SHIPMENT, 2, "status", "kafka", (), "2026-11-28.1", ("carrier",), (), datetime.now(timezone.utc))
    conn = await connect(settings, "test")
    try:
        async with conn.transaction():
            (entry,) = await append(conn, [new, new])  # a share id twice in one batch is audited once
    finally:
        await conn.close()
    assert entry["seq"] == 3 and entry["share_id"] == new.share_id
    chained = await run(settings, "SELECT share_id, seq FROM share_audit ORDER BY seq")
    assert [(r["share_id"], r["seq"]) for r in chained] == [(old[1].share_id, 1), (old[0].share_id, 2), (new.share_id, 3)]
    # nothing was published in this test: the only findings are the three rows missing from hub.audit
    assert {(f.kind, f.seq) for f in (await check(settings)).findings} == {("not_on_topic", 1), ("not_on_topic", 2), ("not_on_topic", 3)}
