"""The Postgres projection against the real broker and database: newest versions win, events land once, a
restart resumes exactly where Postgres says, and killed database connections cost nothing.

Status messages are built the way the worker builds them: records folded from examples/journey.jsonl, one
message per version, each carrying the event copy that made it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable

import asyncpg
import orjson
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from connectors.postgres.db import quote_ident
from connectors.postgres.migrate import migrate, packaged
from connectors.postgres.sink import application_name, run_sink
from connectors.postgres.store import fetch_events, fetch_record, projected_versions
from hubconf.settings import Settings
from schemas.events import HubEvent
from streams.codec import Rejection, decode_event, encode_record, encode_status
from streams.merge import Copy, fingerprint, fold
from tests.integration.hub import AUTHORITY

pytestmark = pytest.mark.integration

JOURNEY = Path(__file__).resolve().parents[2] / "examples" / "journey.jsonl"
SHIPMENTS = [f"SHP-IT-{n:04d}" for n in range(1, 5)]
DEADLINE_S = 60.0

Message = tuple[bytes, bytes]  # (key, value)
NewSettings = Callable[..., Awaitable[Settings]]  # the `hub_settings` fixture


def journey(shipment_id: str) -> list[HubEvent]:
    """The example journey's event copies (VERSIONS of them), addressed to `shipment_id`."""
    events = []
    for line in JOURNEY.read_bytes().splitlines():
        event = decode_event(line)
        assert not isinstance(event, Rejection), event
        events.append(event.model_copy(update={"shipment_id": shipment_id}))
    return events


VERSIONS = len(JOURNEY.read_bytes().splitlines())  # every line of the journey is a distinct copy


def status_messages(shipment_id: str) -> list[Message]:
    """Version k of the shipment (k = 1..VERSIONS) at index k-1: the record of the first k events and event k."""
    events = journey(shipment_id)
    return [
        (
            shipment_id.encode(),
            encode_status(fold(events[: k + 1], AUTHORITY)[shipment_id], [Copy(fingerprint(event), event)]),
        )
        for k, event in enumerate(events)
    ]


def final_record(shipment_id: str) -> dict[str, Any]:
    record: dict[str, Any] = orjson.loads(encode_record(fold(journey(shipment_id), AUTHORITY)[shipment_id]))
    return record


def interleaved(per_shipment: list[list[Message]]) -> list[Message]:
    """Round-robin across shipments, each in its own order: how the worker's output reaches the topic."""
    return [message for group in zip(*per_shipment) for message in group]


async def produce(settings: Settings, messages: list[Message]) -> dict[int, int]:
    """Send and await acknowledgement. Returns per partition the offset after the last message sent."""
    producer = AIOKafkaProducer(**settings.kafka_client(), acks="all", enable_idempotence=True, linger_ms=5)
    await producer.start()
    try:
        futures = [await producer.send(settings.topics.status, value=value, key=key) for key, value in messages]
        sent = await asyncio.gather(*futures)
    finally:
        await producer.stop()
    ends: dict[int, int] = {}
    for metadata in sent:
        ends[metadata.partition] = max(ends.get(metadata.partition, 0), metadata.offset + 1)
    return ends


async def trickle(settings: Settings, messages: list[Message], chunk: int = 8) -> dict[int, int]:
    """Produce in small chunks with pauses, so the sink keeps writing for a while."""
    ends: dict[int, int] = {}
    for start in range(0, len(messages), chunk):
        ends = merged(ends, await produce(settings, messages[start : start + chunk]))
        await asyncio.sleep(0.05)
    return ends


def merged(*ends: dict[int, int]) -> dict[int, int]:
    out: dict[int, int] = {}
    for end in ends:
        for partition, offset in end.items():
            out[partition] = max(out.get(partition, 0), offset)
    return out


@dataclasses.dataclass
class Sink:
    """A sink running in the background, with the number of messages it has committed per batch."""

    task: asyncio.Task[None]
    stop: asyncio.Event
    batches: list[int]

    @property
    def committed(self) -> int:
        return sum(self.batches)


@contextlib.asynccontextmanager
async def running_sink(settings: Settings, max_records: int = 500, stop_after: int | None = None) -> AsyncIterator[Sink]:
    """Run the sink until the block ends (or `stop_after` batches are committed), then stop it cleanly."""
    stop = asyncio.Event()
    batches: list[int] = []

    def on_batch(count: int) -> None:
        batches.append(count)
        if stop_after is not None and len(batches) >= stop_after:
            stop.set()

    task = asyncio.create_task(run_sink(settings, stop, on_batch, max_records=max_records))
    try:
        yield Sink(task, stop, batches)
    finally:
        stop.set()
        await asyncio.wait_for(task, DEADLINE_S)


async def stored_offsets(settings: Settings) -> dict[int, int]:
    conn = await asyncpg.connect(settings.pg_dsn)
    try:
        rows = await conn.fetch(
            f"SELECT partition, next_offset FROM {quote_ident(settings.pg_schema)}.sink_offsets"
            " WHERE consumer = $1 AND topic = $2",
            settings.sink_group,
            settings.topics.status,
        )
    finally:
        await conn.close()
    return {row["partition"]: row["next_offset"] for row in rows}


async def caught_up(settings: Settings, sink: Sink, ends: dict[int, int]) -> None:
    """Wait until Postgres records every partition read up to `ends`; fail early if the sink died."""
    deadline = asyncio.get_running_loop().time() + DEADLINE_S
    while True:
        if sink.task.done():
            sink.task.result()
            pytest.fail("the sink stopped before catching up")
        stored = await stored_offsets(settings)
        if all(stored.get(partition, 0) >= end for partition, end in ends.items()):
            return
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"projection did not catch up in {DEADLINE_S}s: stored {stored}, want {ends}")
        await asyncio.sleep(0.1)


async def count_rows(settings: Settings, table: str) -> dict[str, int]:
    conn = await asyncpg.connect(settings.pg_dsn)
    try:
        rows = await conn.fetch(
            f"SELECT shipment_id, count(*) AS n FROM {quote_ident(settings.pg_schema)}.{table} GROUP BY shipment_id"
        )
    finally:
        await conn.close()
    return {row["shipment_id"]: row["n"] for row in rows}


async def test_the_newest_version_wins_even_when_older_versions_arrive_after_it(hub_settings: NewSettings) -> None:
    settings = await hub_settings()
    rng = random.Random(7)
    scrambled = []
    for shipment_id in SHIPMENTS:
        versions = status_messages(shipment_id)
        rng.shuffle(versions)
        scrambled.append(versions)
    async with running_sink(settings, max_records=10) as sink:
        await caught_up(settings, sink, await produce(settings, interleaved(scrambled)))
        before = {shipment_id: await fetch_record(settings, shipment_id) for shipment_id in SHIPMENTS}

        stale = [status_messages(shipment_id)[k] for shipment_id in SHIPMENTS for k in (0, 9, 32)]
        await caught_up(settings, sink, await produce(settings, stale))

    assert await projected_versions(settings) == {shipment_id: VERSIONS for shipment_id in SHIPMENTS}
    for shipment_id in SHIPMENTS:
        record = await fetch_record(settings, shipment_id)
        assert record is not None
        assert record == before[shipment_id], "a stale version touched the row"
        record.pop("projected_at")
        assert record == final_record(shipment_id)
    conn = await asyncpg.connect(settings.pg_dsn)
    try:
        columns = await conn.fetch(
            f"SELECT DISTINCT status, shipper, mto FROM {quote_ident(settings.pg_schema)}.shipments"
        )
    finally:
        await conn.close()
    assert [tuple(row) for row in columns] == [("delivered", "shipper.chengdu-elec", "mto.westcorridor")]


async def test_each_applied_event_is_logged_once_even_when_everything_is_replayed(hub_settings: NewSettings) -> None:
    settings = await hub_settings()
    messages = interleaved([status_messages(shipment_id) for shipment_id in SHIPMENTS[:2]])
    async with running_sink(settings) as sink:
        # The worker re-emits what it had not committed when it crashed: the same messages, twice.
        ends = merged(await produce(settings, messages), await produce(settings, messages[10:30]))
        await caught_up(settings, sink, ends)
    first_pass = await fetch_events(settings, SHIPMENTS[0])

    conn = await asyncpg.connect(settings.pg_dsn)
    try:
        await conn.execute(f"DELETE FROM {quote_ident(settings.pg_schema)}.sink_offsets")
    finally:
        await conn.close()
    async with running_sink(settings, max_records=7) as sink:
        await caught_up(settings, sink, ends)
        assert sink.committed == sum(ends.values()), "without stored offsets the sink reads the topic again"

    assert await count_rows(settings, "shipment_events") == {shipment_id: VERSIONS for shipment_id in SHIPMENTS[:2]}
    events = await fetch_events(settings, SHIPMENTS[0])
    assert events == first_pass
    occurred = [(event["event"]["occurred_at"], event["event_key"]) for event in events]
    assert occurred == sorted(occurred)
    identities = len({orjson.loads(line)["source"] + "/" + orjson.loads(line)["event_id"] for line in JOURNEY.read_bytes().splitlines()})
    assert len({event["event_key"] for event in events}) == identities  # revisions and retractions share a key
    assert await projected_versions(settings) == {shipment_id: VERSIONS for shipment_id in SHIPMENTS[:2]}


async def test_a_restarted_sink_resumes_from_its_stored_offsets(hub_settings: NewSettings) -> None:
    settings = await hub_settings()
    per_shipment = [status_messages(shipment_id) for shipment_id in SHIPMENTS]
    early = interleaved([versions[:20] for versions in per_shipment])
    late = interleaved([versions[20:] for versions in per_shipment])
    early_ends = await produce(settings, early)

    async with running_sink(settings, max_records=7, stop_after=3) as first:
        await asyncio.wait_for(first.task, DEADLINE_S)  # stops itself mid-way, after three batches
    assert 0 < first.committed < len(early)
    assert sum((await stored_offsets(settings)).values()) == first.committed

    ends = merged(early_ends, await produce(settings, late))
    async with running_sink(settings, max_records=7) as second:
        await caught_up(settings, second, ends)
    assert first.committed + second.committed == len(early) + len(late), "a message was read twice or never"

    assert await stored_offsets(settings) == ends
    assert await projected_versions(settings) == {shipment_id: VERSIONS for shipment_id in SHIPMENTS}
    assert await count_rows(settings, "shipment_events") == {shipment_id: VERSIONS for shipment_id in SHIPMENTS}
    admin = AIOKafkaAdminClient(**settings.kafka_client())
    await admin.start()
    try:
        mirrored = await admin.list_consumer_group_offsets(settings.sink_group)
    finally:
        await admin.close()
    assert {tp.partition: meta.offset for tp, meta in mirrored.items()} == ends, "Kafka lag would be misreported"


async def test_the_sink_rides_out_its_database_connections_being_killed(
    hub_settings: NewSettings, caplog: pytest.LogCaptureFixture
) -> None:
    settings = await hub_settings()
    await migrate(settings.pg_dsn, settings.pg_schema)
    messages = interleaved([status_messages(shipment_id) for shipment_id in SHIPMENTS])
    schema = quote_ident(settings.pg_schema)
    admin = await asyncpg.connect(settings.pg_dsn)
    caplog.set_level(logging.WARNING, logger="connectors.postgres.sink")

    async def kill() -> int:
        return len(
            await admin.fetch(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE usename = 'mmhub' AND application_name = $1 AND pid <> pg_backend_pid()",
                application_name(settings),
            )
        )

    try:
        async with running_sink(settings, max_records=5) as sink:
            await caught_up(settings, sink, await produce(settings, messages[:10]))

            # Deterministic blip in mid-write: hold a lock the next batch needs, kill the session waiting on it.
            async with admin.transaction():
                await admin.execute(f"LOCK TABLE {schema}.shipments IN ACCESS EXCLUSIVE MODE")
                ends = await produce(settings, messages[10:40])
                deadline = asyncio.get_running_loop().time() + DEADLINE_S
                while not await admin.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'",
                    application_name(settings),
                ):
                    assert asyncio.get_running_loop().time() < deadline, "the sink never tried to write"
                    await asyncio.sleep(0.05)
                assert await kill() >= 1

            # And blips at random moments while the rest trickles in.
            producing = asyncio.create_task(trickle(settings, messages[40:]))
            while not producing.done():
                await kill()
                await asyncio.sleep(0.07)
            ends = merged(ends, await producing)
            await caught_up(settings, sink, ends)
            assert not sink.task.done(), "the sink gave up on a database blip"
    finally:
        await admin.close()

    assert any("Postgres unavailable" in record.getMessage() for record in caplog.records)
    assert await projected_versions(settings) == {shipment_id: VERSIONS for shipment_id in SHIPMENTS}
    assert await count_rows(settings, "shipment_events") == {shipment_id: VERSIONS for shipment_id in SHIPMENTS}
    for shipment_id in SHIPMENTS:
        record = await fetch_record(settings, shipment_id)
        assert record is not None and record["version"] == VERSIONS and record["status"] == "delivered"


async def test_a_status_message_the_hub_could_not_have_written_is_set_aside_and_the_sink_goes_on(
    hub_settings: NewSettings,
) -> None:
    settings = await hub_settings()
    await migrate(settings.pg_dsn, settings.pg_schema)  # so caught_up can read the offsets before the sink starts
    good = status_messages(SHIPMENTS[0])
    ends = await produce(settings, good[:3] + [(SHIPMENTS[0].encode(), b'{"record": {"shipment_id": 42}}')] + good[3:])
    (partition,) = ends

    async with running_sink(settings) as sink:
        await caught_up(settings, sink, ends)
    assert await projected_versions(settings) == {SHIPMENTS[0]: VERSIONS}
    conn = await asyncpg.connect(settings.pg_dsn)
    try:
        rows = await conn.fetch(f"SELECT partition, kafka_offset, reason FROM {quote_ident(settings.pg_schema)}.quarantine")
    finally:
        await conn.close()
    assert [(r["partition"], r["kafka_offset"]) for r in rows] == [(partition, 3)]
    assert "'shipment_id' should be str" in rows[0]["reason"]


async def test_racing_migrations_apply_each_file_once(hub_settings: NewSettings) -> None:
    settings = await hub_settings(topics=False)
    results = await asyncio.gather(*(migrate(settings.pg_dsn, settings.pg_schema) for _ in range(3)))
    # Each file is applied by exactly one of the racers (not necessarily the same one for every file).
    assert sorted(label for labels in results for label in labels) == [m.label for m in packaged()]
    assert await migrate(settings.pg_dsn, settings.pg_schema) == []
    conn = await asyncpg.connect(settings.pg_dsn)
    try:
        applied = await conn.fetch(f"SELECT version, name FROM {quote_ident(settings.pg_schema)}.schema_migrations")
    finally:
        await conn.close()
    assert sorted(tuple(row) for row in applied) == [(m.version, m.name) for m in packaged()]
