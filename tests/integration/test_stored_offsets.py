"""The one stored-offsets loop (runtime.stored_offsets) on the real broker and database, with two of its stages at
once: the Postgres sink and the share stage, both reading the same status topic, each cancelled again and again at
random moments (a crash: mid-poll, mid-transaction, mid-delivery, between batches, at start) and restarted. Nothing
is lost, nothing is doubled, and a poison record is set aside once by each stage while the records after it land.
And a batch whose transaction the database loses after its shares were delivered is audited on the retry, not
delivered a second time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from typing import Awaitable, Callable

import asyncpg
import orjson
import pytest

from connectors.postgres.db import quote_ident
from connectors.postgres.migrate import migrate
from connectors.postgres.sink import run_sink
from connectors.postgres.store import projected_versions
from connectors.sharing.stage import application_name, run_share, share_group
from hubconf.settings import Settings
from tests.integration.test_postgres_sink import (
    DEADLINE_S,
    VERSIONS,
    NewSettings,
    count_rows,
    interleaved,
    produce,
    status_messages,
)
from tests.integration.test_sharing import delivered_by_audience, sql

pytestmark = pytest.mark.integration

Stage = Callable[[Settings, asyncio.Event], Awaitable[None]]
GOOD = [f"SHP-SO-{n:04d}" for n in range(1, 4)]
POISON = "SHP-SO-POISON"
CRASHES = 8  # per stage, before it is left to finish
BATCH = 7  # records per batch, so a crash has many batches to fall between and inside


def poisoned(value: bytes) -> bytes:
    """A status message whose record holds a NUL: Postgres' jsonb refuses it, the share stage cannot decode it."""
    document = orjson.loads(value)
    document["record"]["shipper"]["name"] = "Chengdu\x00Electronics"
    return orjson.dumps(document)


async def sink(settings: Settings, stop: asyncio.Event) -> None:
    await run_sink(settings, stop, max_records=BATCH)


async def share(settings: Settings, stop: asyncio.Event) -> None:
    await run_share(settings, stop, max_records=BATCH)


async def stored(settings: Settings, group: str) -> dict[int, int]:
    rows = await sql(
        settings,
        "SELECT partition, next_offset FROM sink_offsets WHERE consumer = $1 AND topic = $2",
        group,
        settings.topics.status,
    )
    return {row["partition"]: row["next_offset"] for row in rows}


async def run_until_caught_up(
    settings: Settings, stage: Stage, group: str, ends: dict[int, int], crashes: int, rng: random.Random
) -> int:
    """Run `stage`, cancelling it `crashes` times at random moments (the first right at its start) and starting it
    again, then let it run until its stored offsets reach `ends` and stop it cleanly. Returns the cancels made."""
    made = 0
    deadline = asyncio.get_running_loop().time() + 4 * DEADLINE_S
    while True:
        stop = asyncio.Event()
        task = asyncio.create_task(stage(settings, stop))
        if made < crashes:
            await asyncio.sleep(0.0 if made == 0 else rng.uniform(0.05, 1.5))
            if task.done():
                task.result()  # it died on its own: that is a failure, raised here
                pytest.fail("the stage returned without being stopped")
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            made += 1
            continue
        try:
            while {p: o for p, o in (await stored(settings, group)).items() if p in ends} != ends:
                assert not task.done(), task.result()
                assert asyncio.get_running_loop().time() < deadline, f"{group} never caught up"
                await asyncio.sleep(0.1)
        finally:
            stop.set()
            await asyncio.wait_for(task, DEADLINE_S)
        return made


async def audited(settings: Settings) -> list[tuple[str, str, int, str, tuple[str, ...]]]:
    rows = await sql(settings, "SELECT share_id, party, shipment_id, record_version, kind, fields FROM share_audit")
    return sorted((r["share_id"], r["party"], r["shipment_id"], r["record_version"], r["kind"], tuple(sorted(r["fields"])))
                  for r in rows)


async def test_sink_and_share_stage_cancelled_mid_stream_lose_and_double_nothing_and_set_the_poison_aside_once(
    hub_settings: NewSettings,
) -> None:
    settings, reference = await hub_settings(), await hub_settings()
    good = interleaved([status_messages(shipment_id) for shipment_id in GOOD])
    poison_key, poison_value = status_messages(POISON)[-1]
    # the poison in the middle of the stream: records after it, in its batch and later, must land
    messages = [*good[: len(good) // 2], (poison_key, poisoned(poison_value)), *good[len(good) // 2 :]]
    for target in (settings, reference):
        await migrate(target.pg_dsn, target.pg_schema)
    ends = await produce(settings, messages)
    assert await produce(reference, messages) == ends

    rng = random.Random(13)
    made = await asyncio.gather(
        run_until_caught_up(settings, sink, settings.sink_group, ends, CRASHES, rng),
        run_until_caught_up(settings, share, share_group(settings), ends, CRASHES, rng),
    )
    assert made == [CRASHES, CRASHES]
    # the same stream through the share stage, never interrupted: what the crashed one must have audited
    await run_until_caught_up(reference, share, share_group(reference), ends, 0, rng)

    # the sink: every good record at its last version, each event copy once; the poison nowhere but in quarantine
    assert await projected_versions(settings) == {shipment_id: VERSIONS for shipment_id in GOOD}
    assert await count_rows(settings, "shipment_events") == {shipment_id: VERSIONS for shipment_id in GOOD}
    quarantined = await sql(settings, "SELECT stage, consumer, key, value, reason FROM quarantine ORDER BY stage")
    assert [(q["stage"], q["consumer"], q["key"], q["value"]) for q in quarantined] == [
        ("share", share_group(settings), poison_key, poisoned(poison_value)),
        ("sink", settings.sink_group, poison_key, poisoned(poison_value)),
    ], "the poison set aside once by each stage, with its original bytes"
    share_reason, sink_reason = (q["reason"] for q in quarantined)
    assert share_reason.startswith("malformed status message"), share_reason
    assert "UntranslatableCharacterError" in sink_reason, sink_reason

    # the share stage: audited exactly what the uninterrupted run audited (share ids are deterministic), every
    # shipment shared up to its last version, and every audited share delivered on Kafka, nothing unaudited
    expected = await audited(reference)
    assert expected, "the reference run shared nothing: the comparison would prove nothing"
    assert await audited(settings) == expected
    versions = await sql(settings, "SELECT shipment_id, version FROM share_versions")
    assert {r["shipment_id"]: r["version"] for r in versions} == {shipment_id: VERSIONS for shipment_id in GOOD}
    delivered = {
        orjson.loads(m.value)["share_id"] for found in (await delivered_by_audience(settings)).values() for m in found
    }
    assert delivered == {share_id for share_id, *_ in expected}


async def test_a_share_batch_whose_session_is_killed_after_delivery_is_audited_on_the_retry_not_sent_again(
    hub_settings: NewSettings, caplog: pytest.LogCaptureFixture
) -> None:
    settings = await hub_settings()
    await migrate(settings.pg_dsn, settings.pg_schema)
    caplog.set_level(logging.WARNING)
    admin = await asyncpg.connect(settings.pg_dsn)
    stop = asyncio.Event()
    task = asyncio.create_task(share(settings, stop))
    try:
        # The audit table locked: the stage plans and delivers its first batch, then waits to audit it. Its session
        # is killed there, so the batch's transaction is lost after Kafka has its shares.
        async with admin.transaction():
            await admin.execute(f"LOCK TABLE {quote_ident(settings.pg_schema)}.share_audit IN ACCESS EXCLUSIVE MODE")
            ends = await produce(settings, status_messages(GOOD[0])[:BATCH])
            deadline = asyncio.get_running_loop().time() + DEADLINE_S
            while not await admin.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'",
                application_name(settings),
            ):
                assert not task.done(), task.result()
                assert asyncio.get_running_loop().time() < deadline, "the share stage never tried to audit"
                await asyncio.sleep(0.05)
            killed = await admin.fetch(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
                application_name(settings),
            )
            assert len(killed) == 1
        while await stored(settings, share_group(settings)) != ends:
            assert not task.done(), task.result()
            assert asyncio.get_running_loop().time() < deadline, "the share stage never caught up"
            await asyncio.sleep(0.1)
    finally:
        stop.set()
        await asyncio.wait_for(task, DEADLINE_S)
        await admin.close()

    assert any("Postgres unavailable" in r.getMessage() for r in caplog.records), "the session was not lost"
    audit = {share_id for share_id, *_ in await audited(settings)}
    assert audit, "nothing was shared: the check below would prove nothing"
    sent = [orjson.loads(m.value)["share_id"] for found in (await delivered_by_audience(settings)).values() for m in found]
    assert sorted(sent) == sorted(audit), "each share delivered once and audited once"
