"""The hub end to end on the real broker and database: worker and sink as real processes."""

from __future__ import annotations

import random

import orjson
import pytest

from connectors.kafka import publish, scramble
from hubconf.settings import Settings
from hubconf import topics
from streams.codec import MAX_EVENT_BYTES
from tests.integration.hub import (
    JOURNEY_ID,
    caught_up,
    journey_lines,
    offline,
    projected_record,
    read_topic,
    wait_for,
)

pytestmark = pytest.mark.integration


async def test_scrambled_journey_reaches_postgres_equal_to_offline_fold(hub) -> None:
    settings, worker, sink = hub
    lines = journey_lines()
    expected = offline(lines)
    worker.start()
    sink.start()

    sent = await publish(settings, scramble(lines, duplicates=15, seed=3))
    assert sent == len(lines) + 15

    await wait_for(lambda: caught_up(settings, expected), 120, "the projection", worker, sink)
    record = await projected_record(settings, JOURNEY_ID)
    assert record == expected[JOURNEY_ID]
    assert record.status == "delivered"
    assert record.version == len(lines)  # every distinct copy counted once, duplicates not at all
    assert [leg.status for leg in record.legs] == ["handed_over", "handed_over", "handed_over", "delivered"]

    # the status topic's last version for the shipment is the same record
    statuses = await read_topic(settings, settings.topics.status, expected=1)
    latest = orjson.loads([m for m in statuses if m.key == JOURNEY_ID.encode()][-1].value)
    assert latest["record"] == record.model_dump(mode="json")


def _bad_inputs() -> list[tuple[bytes | None, bytes, str]]:
    """(key, value, expected DLQ code) for each kind of input a carrier can get wrong.

    (An event naming only carrier references is not wrong: it goes to reference resolution, see
    test_references.py.)"""
    good = next(doc for doc in map(orjson.loads, journey_lines()) if doc["event_type"] == "settlement")
    key = JOURNEY_ID.encode()

    def variant(**changes: object) -> bytes:
        return orjson.dumps({**good, **changes})

    float_amount = orjson.loads(orjson.dumps(good))
    float_amount["event_id"] = "float-amount"
    float_amount["payload"]["charges"][0]["amount"]["amount"] = 1380.5
    return [
        (key, b"{not json", "invalid_json"),
        (key, b"[1, 2, 3]", "invalid_json"),
        (key, b"", "empty"),
        (key, variant(event_id="wrong-type", occurred_at=12345), "invalid_event"),
        (key, variant(event_id="no-such-type", event_type="teleport"), "invalid_event"),
        (key, variant(event_id="naive-time", occurred_at="2026-03-12T18:00:00"), "invalid_event"),
        (key, orjson.dumps(float_amount), "invalid_event"),
        (key, b'{"pad": "' + b"x" * (MAX_EVENT_BYTES + 1) + b'"}', "too_large"),
        (b"SHP-SOMEONE-ELSE", variant(event_id="wrong-key"), "wrong_key"),
    ]


async def test_bad_input_is_dead_lettered_with_reason_while_good_events_flow(hub) -> None:
    settings, worker, sink = hub
    lines = journey_lines()
    expected = offline(lines)
    bad = _bad_inputs()
    worker.start()
    sink.start()

    # interleave the bad messages at random places among the good ones, each keyed as a carrier would send it
    rng = random.Random(11)
    messages: list[tuple[bytes | None, bytes]] = [(JOURNEY_ID.encode(), line) for line in lines]
    for key, value, _ in bad:
        messages.insert(rng.randrange(len(messages) + 1), (key, value))
    await _send_keyed(settings, messages)

    await wait_for(lambda: caught_up(settings, expected), 120, "the projection", worker, sink)
    assert await projected_record(settings, JOURNEY_ID) == expected[JOURNEY_ID]

    dead = await read_topic(settings, settings.topics.dlq, expected=len(bad))
    assert worker.alive, worker.tail()
    by_value = {m.value: m for m in dead}
    assert len(dead) == len(bad)
    for key, value, code in bad:
        message = by_value[value]  # the original bytes, untouched
        headers = {name: raw.decode() for name, raw in message.headers}
        assert headers[topics.DLQ_CODE] == code, headers
        assert headers[topics.DLQ_REASON]
        assert headers[topics.DLQ_SOURCE_TOPIC] == settings.topics.events
        assert int(headers[topics.DLQ_SOURCE_OFFSET]) >= 0
        assert 0 <= int(headers[topics.DLQ_SOURCE_PARTITION]) < settings.partitions
        assert message.key == key
    def reason_for(event_id: str) -> str:
        [value] = [v for _, v, _ in bad if b'"event_id":"%s"' % event_id.encode() in v]
        return dict(by_value[value].headers)[topics.DLQ_REASON].decode()

    assert "decimal" in reason_for("float-amount") and "float" in reason_for("float-amount")
    assert "timezone" in reason_for("naive-time")


async def _send_keyed(settings: Settings, messages: list[tuple[bytes | None, bytes]]) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(**settings.kafka_client(), acks="all", max_request_size=2 * 1024 * 1024)
    await producer.start()
    try:
        for key, value in messages:
            await producer.send_and_wait(settings.topics.events, value=value, key=key)
    finally:
        await producer.stop()


async def test_worker_killed_mid_stream_ends_equal_to_offline_fold(hub) -> None:
    settings, worker, sink = hub
    shipments = [f"SHP-KILL-{n:04d}" for n in range(120)]
    lines = [line for sid in shipments for line in journey_lines(sid)]
    expected = offline(lines)
    stream = scramble(lines, duplicates=300, seed=5)
    half = len(stream) // 2
    sink.start()
    worker.start()

    await publish(settings, stream[:half])

    async def some_progress() -> bool:
        from connectors.postgres.store import projected_versions

        return len(await projected_versions(settings)) >= len(shipments) // 2

    # Killed once it is well under way; test_crashes kills at random moments, early ones included.
    await wait_for(some_progress, 120, "the first shipments", worker, sink)
    worker.kill()
    await publish(settings, stream[half:])
    worker.start()

    await wait_for(lambda: caught_up(settings, expected), 300, "the projection after the crash", worker, sink)
    for shipment_id in shipments:
        assert await projected_record(settings, shipment_id) == expected[shipment_id], shipment_id
