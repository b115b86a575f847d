"""A poison message first, in the middle and last of a batch never blocks its partition (issue 6, faults).

All messages go to one shipment, so one partition: the worker takes them in one batch (or a few), and every
good event must be applied while each poison message lands in the dead-letter topic with its reason.
"""

from __future__ import annotations

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from hubconf import topics
from tests.integration.hub import (
    JOURNEY_ID,
    HubProcess,
    caught_up,
    journey_lines,
    offline,
    projected_record,
    read_topic,
    wait_for,
)

pytestmark = pytest.mark.integration

POISON = [
    (b"\xff\xfe not even UTF-8", "invalid_json"),
    (b'{"event_type": "tracking"}', "invalid_event"),
    (orjson.dumps({"event_id": "x", "source": "carrier.sc-road", "event_type": "booking", "shipment_id": JOURNEY_ID,
                   "occurred_at": "2026-03-02T01:00:00Z", "recorded_at": "2026-03-02T01:00:00Z", "payload": {}}), "invalid_event"),
]


async def test_poison_first_middle_and_last_of_a_batch_never_blocks_the_partition(hub) -> None:
    settings, worker, sink = hub
    lines = journey_lines()
    expected = offline(lines)
    middle = len(lines) // 2
    # poison first, middle and last, all on the shipment's key: the same partition as every good event
    sequence = [POISON[0][0], *lines[:middle], POISON[1][0], *lines[middle:], POISON[2][0]]
    worker.start()
    sink.start()
    await wait_for(lambda: _worker_ready(worker), 60, "the worker to join its group", worker)
    producer = AIOKafkaProducer(**settings.kafka_client(), acks="all", linger_ms=50)
    await producer.start()
    try:
        # one burst, so the worker takes it as one batch (or very few)
        futures = [await producer.send(settings.topics.events, value=value, key=JOURNEY_ID.encode()) for value in sequence]
        partitions = {(await future).partition for future in futures}
    finally:
        await producer.stop()
    assert len(partitions) == 1

    await wait_for(lambda: caught_up(settings, expected), 90, "the projection", worker, sink)
    assert await projected_record(settings, JOURNEY_ID) == expected[JOURNEY_ID]
    dead = await read_topic(settings, settings.topics.dlq, expected=len(POISON))
    assert sorted(m.value for m in dead) == sorted(value for value, _ in POISON)
    for message in dead:
        headers = dict(message.headers)
        assert headers[topics.DLQ_CODE].decode() == dict(POISON)[message.value]
        assert headers[topics.DLQ_REASON]
    offsets = sorted(int(dict(m.headers)[topics.DLQ_SOURCE_OFFSET]) for m in dead)
    assert offsets[0] < offsets[1] < offsets[2] and offsets[2] - offsets[0] == len(sequence) - 1  # first, middle, last
    assert worker.alive, worker.tail()


async def _worker_ready(worker: HubProcess) -> bool:
    return b"Ready" in worker.log.read_bytes() if worker.log.exists() else False
