"""Crashes at random points of a long run: the worker is killed with SIGKILL several times while carriers keep
publishing, and restarted each time. Nothing may be lost or counted twice."""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import asyncpg
import orjson
import pytest
from aiokafka.structs import ConsumerRecord

from connectors.kafka import publish, read_jsonl, scramble
from hubconf.settings import Settings
from hubconf import topics
from streams.codec import Rejection, decode_event
from streams.copies import fingerprint
from tests.integration.hub import HubProcess, caught_up, offline, projected_record, read_all, wait_for

pytestmark = pytest.mark.integration

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
KILLS = 4
SEED = 20261128


def _readdressed(name: str, shipment_id: str) -> list[bytes]:
    lines = read_jsonl(EXAMPLES / name)
    original = orjson.loads(lines[0])["shipment_id"].encode()
    return [line.replace(original, shipment_id.encode()) for line in lines]


POISON = [
    b"{not json",
    b"[]",
    orjson.dumps({"event_id": "x-1", "source": "carrier.sc-road", "event_type": "tracking"}),
    b"",
]


async def _kill_and_restart(worker: HubProcess, rng: random.Random, log: list[str]) -> None:
    """SIGKILL at random moments after each start: some a second in (still joining the group and recovering
    its tables), some well into processing."""
    for kill in range(KILLS):
        delay = rng.choice([rng.uniform(0.3, 1.5), rng.uniform(2.0, 8.0)])
        await asyncio.sleep(delay)
        worker.kill()
        log.append(f"kill {kill + 1} {delay:.1f} s after start")
        await asyncio.sleep(rng.uniform(0.0, 1.0))
        worker.start()


async def _publish_in_bursts(settings: Settings, stream: list[bytes], rng: random.Random) -> None:
    size = len(stream) // 10 + 1
    for start in range(0, len(stream), size):
        await publish(settings, stream[start : start + size])
        await asyncio.sleep(rng.uniform(0.2, 1.5))


async def _stored_events(settings: Settings) -> set[tuple[str, str]]:
    conn = await asyncpg.connect(settings.pg_dsn, server_settings={"search_path": settings.pg_schema})
    try:
        rows = await conn.fetch("SELECT shipment_id, fingerprint FROM shipment_events")
    finally:
        await conn.close()
    return {(row["shipment_id"], row["fingerprint"]) for row in rows}


def _dead_lettered_offsets(messages: list[ConsumerRecord]) -> list[tuple[int, int]]:
    out = []
    for message in messages:
        headers = dict(message.headers)
        assert headers[topics.DLQ_REASON], "every dead letter says why"
        out.append((int(headers[topics.DLQ_SOURCE_PARTITION]), int(headers[topics.DLQ_SOURCE_OFFSET])))
    return out


async def test_kills_at_random_points_lose_nothing_and_count_every_input_once(hub) -> None:
    settings, worker, sink = hub
    rng = random.Random(SEED)
    shipments = [f"SHP-CRASH-{n:04d}" for n in range(60)]
    lines = [
        line
        for n, shipment_id in enumerate(shipments)
        for line in _readdressed("journey-claim.jsonl" if n % 2 else "journey.jsonl", shipment_id)
    ]
    expected = offline(lines)
    stream = scramble(lines, duplicates=250, seed=SEED)
    for poison in POISON:
        stream.insert(rng.randrange(len(stream)), poison)

    sink.start()
    worker.start()
    kills: list[str] = []
    await asyncio.gather(_publish_in_bursts(settings, stream, rng), _kill_and_restart(worker, rng, kills))
    await wait_for(lambda: caught_up(settings, expected), 300, f"the projection after {kills}", worker, sink)

    # every shipment's record equals the offline fold, in Postgres and as the latest status version
    records = {shipment_id: await projected_record(settings, shipment_id) for shipment_id in shipments}
    for shipment_id in shipments:
        assert records[shipment_id] == expected[shipment_id], (shipment_id, kills)
    statuses = await read_all(settings, settings.topics.status)
    latest: dict[bytes, dict[str, object]] = {}
    newest: dict[bytes, int] = defaultdict(int)
    for message in statuses:
        record = orjson.loads(message.value)["record"]
        if record["version"] >= newest[message.key]:
            newest[message.key], latest[message.key] = record["version"], record
    assert {key.decode(): record for key, record in latest.items()} == {
        shipment_id: record.model_dump(mode="json") for shipment_id, record in expected.items()
    }

    # the ledger balances in every currency of every shipment
    for shipment_id, record in records.items():
        assert record.settlement is not None, shipment_id
        totals: dict[str, list[Decimal]] = defaultdict(lambda: [Decimal(0), Decimal(0)])
        for entry in record.settlement.ledger:
            totals[entry.currency][0] += entry.debit
            totals[entry.currency][1] += entry.credit
        assert totals and all(debit == credit for debit, credit in totals.values()), (shipment_id, totals)

    # no claim is duplicated: one claim per id in the records, and a claim sent again after a crash is the same
    # claim, word for word, never a second one
    in_records = {claim.claim_id for record in records.values() for claim in record.claims}
    assert len(in_records) == sum(len(record.claims) for record in records.values())
    assert len(in_records) >= len(shipments) // 2  # every claim journey opens one
    claim_messages = await read_all(settings, settings.topics.claims)
    sent: dict[tuple[str, int], set[bytes]] = defaultdict(set)
    for message in claim_messages:
        body = orjson.loads(message.value)
        sent[(body["claim"]["claim_id"], body["record_version"])].add(message.value)
    assert all(len(copies) == 1 for copies in sent.values()), "a re-sent claim differs from the first"
    assert {claim_id for claim_id, _ in sent} == in_records

    # input = applied + recognised duplicates + dead-lettered, input by input: a valid input's copy has its row in
    # shipment_events (the first copy applied it, a later one is a duplicate), a rejected input's offset is on the
    # DLQ. The two set equalities below say exactly that; the sum of the counts follows from them.
    inputs = await read_all(settings, settings.topics.events)
    assert len(inputs) == len(stream)
    valid: list[tuple[str, str]] = []
    rejected: set[tuple[int, int]] = set()
    for message in inputs:
        event = decode_event(message.value)
        if isinstance(event, Rejection):
            rejected.add((message.partition, message.offset))
        else:
            assert event.shipment_id is not None
            valid.append((event.shipment_id, fingerprint(event)))
    applied = await _stored_events(settings)
    dead = _dead_lettered_offsets(await read_all(settings, settings.topics.dlq))
    assert applied == set(valid), "an accepted event is missing from the projection, or one appeared from nowhere"
    assert set(dead) == rejected, "every rejected input is dead-lettered, and nothing else is"
    assert len(rejected) == len(POISON)
    assert worker.alive and sink.alive, kills
