"""Issue 12, finding 2: one record never stops a stage. A status message the sink cannot write (NUL in a JSON
string, crafted directly on the status topic since the schemas now refuse it upstream) or cannot decode is set
aside in the quarantine table with its reason, the sink goes on, and later good records land; an operator lists
the quarantine and replays a record once its cause is fixed. The share stage does the same with a message it
cannot decode, and the webhook filler with a share message it cannot read or queue.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from typing import Awaitable, Callable

import asyncpg
import orjson
from aiokafka import AIOKafkaProducer

from connectors.postgres.migrate import migrate
from connectors.postgres.store import projected_versions
from connectors.sharing.stage import run_share, share_group
from hubconf.settings import Settings
from tests.integration.test_sharing import sql
from tests.integration.test_webhooks import SHIPPER, Subscriber, produce as produce_shares, status, store_for, subscribe, until, webhooks
from tests.integration.test_postgres_sink import (
    DEADLINE_S,
    VERSIONS,
    caught_up,
    merged,
    produce,
    running_sink,
    status_messages,
)

NewSettings = Callable[..., Awaitable[Settings]]
GOOD, EVIL, GARBLED, FIXED = "SHP-Q-GOOD", "SHP-Q-EVIL", "SHP-Q-GARBLED", "SHP-Q-FIXED"


def with_nul_in_record(value: bytes) -> bytes:
    """A status message whose record (not its applied event) holds a NUL: Postgres' jsonb refuses it."""
    document = orjson.loads(value)
    document["record"]["shipper"]["name"] = "Chengdu\x00Electronics"
    return orjson.dumps(document)


def mmhub(settings: Settings, *args: str) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "MMHUB_KAFKA": settings.kafka, "MMHUB_PG_DSN": settings.pg_dsn,
           "MMHUB_NAMESPACE": settings.namespace, "MMHUB_PG_SCHEMA": settings.pg_schema}
    return subprocess.run([sys.executable, "-m", "mmhub.cli", *args], env=env, capture_output=True, timeout=60)


async def test_the_sink_sets_aside_what_postgres_refuses_goes_on_and_an_operator_replays_it(hub_settings: NewSettings) -> None:
    settings = await hub_settings()
    good = status_messages(GOOD)
    evil_key, evil_value = status_messages(EVIL)[-1]
    fixed = status_messages(FIXED)[-1]
    await migrate(settings.pg_dsn, settings.pg_schema)
    ends = await produce(settings, good[:5])
    async with running_sink(settings) as sink:
        await caught_up(settings, sink, ends)
        # Postgres refuses rows it is given: a constraint an operator added (lifted below, then replayed)
        await sql(settings, f"ALTER TABLE shipments ADD CONSTRAINT no_fixed CHECK (shipment_id <> '{FIXED}') NOT VALID")
        # one burst: the bad messages are read in one batch with good ones, which must still land
        ends = merged(
            ends,
            await produce(
                settings,
                [*good[5:10], (evil_key, with_nul_in_record(evil_value)), (GARBLED.encode(), b"\x00not json"), fixed,
                 *good[10:]],
            ),
        )
        await caught_up(settings, sink, ends)
        assert not sink.task.done(), "the sink stopped"

        assert await projected_versions(settings) == {GOOD: VERSIONS}, "the good records after the bad ones landed"
        rows = await sql(settings, "SELECT * FROM quarantine ORDER BY quarantine_id")
        assert sorted((r["stage"], r["key"], r["consumer"], r["topic"]) for r in rows) == sorted(
            ("sink", key.encode(), settings.sink_group, settings.topics.status) for key in (FIXED, GARBLED, EVIL)
        )
        by_key = {r["key"]: r for r in rows}  # three keys, so up to three partitions: no one order among them
        nul, garbled, refused = by_key[EVIL.encode()], by_key[GARBLED.encode()], by_key[FIXED.encode()]
        assert nul["value"] == with_nul_in_record(evil_value), "the original bytes, untouched"
        assert "UntranslatableCharacterError" in nul["reason"] and "\\u0000" in nul["reason"], nul["reason"]
        assert garbled["value"] == b"\x00not json" and garbled["reason"].startswith("malformed status message: not JSON")
        assert "CheckViolationError" in refused["reason"] and "no_fixed" in refused["reason"], refused["reason"]

        listing = mmhub(settings, "quarantine", "list", "--json")
        assert listing.returncode == 0, listing.stderr
        listed = orjson.loads(listing.stdout)
        assert [(q["quarantine_id"], q["value"]) for q in listed] == [(r["quarantine_id"], r["value"].hex()) for r in rows]

        again = mmhub(settings, "quarantine", "replay", str(nul["quarantine_id"]))
        assert again.returncode == 1 and b"still refused" in again.stderr, again
        await sql(settings, "ALTER TABLE shipments DROP CONSTRAINT no_fixed")
        replayed = mmhub(settings, "quarantine", "replay", str(refused["quarantine_id"]))
        assert replayed.returncode == 0, replayed.stderr
        assert await projected_versions(settings) == {GOOD: VERSIONS, FIXED: VERSIONS}
        assert (await sql(settings, "SELECT count(*) AS n FROM shipment_events WHERE shipment_id = $1", FIXED))[0]["n"] == 1

        waiting = orjson.loads(mmhub(settings, "quarantine", "list", "--json").stdout)
        assert sorted((q["quarantine_id"], q["attempts"]) for q in waiting) == sorted(
            [(nul["quarantine_id"], 1), (garbled["quarantine_id"], 0)]
        ), "the replayed record left the list; the refused replay was counted"
        assert not sink.task.done(), "the sink stopped"


async def test_the_share_stage_sets_aside_a_message_it_cannot_decode_and_shares_the_next(hub_settings: NewSettings) -> None:
    settings = await hub_settings()
    await migrate(settings.pg_dsn, settings.pg_schema)
    good_key, good_value = status_messages(GOOD)[-1]
    producer = AIOKafkaProducer(**settings.kafka_client(acks="all"))
    await producer.start()
    try:
        for key, value in [(GARBLED.encode(), b'{"record": {"shipment_id": "x\\u0000"}}'), (good_key, good_value)]:
            await producer.send_and_wait(settings.topics.status, value, key=key)
    finally:
        await producer.stop()
    stop = asyncio.Event()
    task = asyncio.create_task(run_share(settings, stop))
    try:
        deadline = asyncio.get_running_loop().time() + DEADLINE_S
        while not await _shared(settings, GOOD):
            assert not task.done(), task.result()
            assert asyncio.get_running_loop().time() < deadline, "the good record was never shared"
            await asyncio.sleep(0.2)
        [row] = await sql(settings, "SELECT * FROM quarantine")
        assert (row["stage"], row["consumer"], row["key"]) == ("share", share_group(settings), GARBLED.encode())
        assert row["reason"].startswith("malformed status message: record: shipment_id"), row["reason"]
        again = mmhub(settings, "quarantine", "replay", str(row["quarantine_id"]))
        assert again.returncode == 1 and b"still refused: malformed status message" in again.stderr, again
        assert not task.done(), "the share stage stopped"
    finally:
        stop.set()
        await asyncio.wait_for(task, DEADLINE_S)


async def _shared(settings: Settings, shipment_id: str) -> bool:
    try:
        return bool(await sql(settings, "SELECT 1 FROM share_versions WHERE shipment_id = $1", shipment_id))
    except asyncpg.UndefinedTableError:
        return False  # not migrated yet


async def test_the_webhook_filler_sets_aside_what_postgres_refuses_and_queues_the_next(hub_settings: NewSettings) -> None:
    """A share message with NUL in its view (crafted on hub.share.shipper: the stage would never write it) is
    refused by the outbox's jsonb; a message that is not JSON cannot be read. Both are set aside, and the good
    messages around them, in the same batch, reach the subscriber."""
    settings = await hub_settings()
    shipment = "SHP-Q-WEBHOOK"
    evil = status(SHIPPER, shipment, 2)
    evil["view"]["status"] = "in\x00transit"
    subscriber = Subscriber()
    await subscriber.start()
    try:
        async with store_for(settings) as store:
            await subscribe(store, SHIPPER, subscriber.url)
            async with webhooks(settings) as task:
                await produce_shares(settings, "shipper", [status(SHIPPER, shipment, 1), evil])
                producer = AIOKafkaProducer(**settings.kafka_client(acks="all"))
                await producer.start()
                try:
                    await producer.send_and_wait(settings.topics.share("shipper", SHIPPER), b"\xff not json", key=SHIPPER.encode())
                finally:
                    await producer.stop()
                await produce_shares(settings, "shipper", [status(SHIPPER, shipment, 3)])
                await until(lambda: len(subscriber.received) >= 2, "the good notifications", task=task)
                rows = await sql(settings, "SELECT * FROM quarantine ORDER BY kafka_offset")
                assert not task.done(), "the webhooks service stopped"
    finally:
        await subscriber.stop()
    assert [n["version"] for n in subscriber.received] == [1, 3]
    assert [(r["stage"], r["kafka_offset"], r["key"]) for r in rows] == [("webhooks", 1, SHIPPER.encode()),
                                                                        ("webhooks", 2, SHIPPER.encode())]
    nul, garbled = rows
    assert nul["value"] == orjson.dumps(evil) and "UntranslatableCharacterError" in nul["reason"], nul["reason"]
    assert garbled["value"] == b"\xff not json" and garbled["reason"].startswith("not a share message"), garbled["reason"]

    again = mmhub(settings, "quarantine", "replay", str(nul["quarantine_id"]))
    assert again.returncode == 1 and b"still refused" in again.stderr, again
