"""A member's local RocksDB left behind when its partition moved, and the changelog compacted meanwhile."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import Mapping, Sequence

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from hubconf.settings import Settings
from runtime.api import Out, Record, Stage, Store
from runtime.loop import StageRunner
from tests.integration.runtime.harness import PARTITIONS, Counting

pytestmark = pytest.mark.integration

# compacted as the hub's changelogs are, but rolled and cleaned within seconds instead of days
FAST_COMPACTION = {
    "cleanup.policy": "compact",
    "segment.ms": "100",
    "delete.retention.ms": "100",
    "min.cleanable.dirty.ratio": "0.01",
    "min.compaction.lag.ms": "0",
}


def handler(output: str):  # type: ignore[no-untyped-def]
    """`put` stores the key, `del` deletes it, `get` emits what the store holds for it."""

    def handle(records: Sequence[Record], stores: Mapping[str, Store]) -> list[Out]:
        store, out = stores["kept"], []
        for record in records:
            assert record.key is not None
            if record.value == b"put":
                store.put(record.key, b"here")
            elif record.value == b"del":
                store.delete(record.key)
            else:
                out.append(Out(output, record.key, store.get(record.key) or b"absent"))
        return out

    return handle


async def _run_until(runner: StageRunner, done: asyncio.Event) -> None:
    running = asyncio.create_task(runner.run())
    await asyncio.wait_for(runner.active.wait(), 60)
    await done.wait()
    runner.stop()
    await asyncio.wait_for(running, 60)


async def _changelog_keys(settings: Settings, topic: str, partition: int) -> list[tuple[bytes, bytes | None]]:
    consumer = AIOKafkaConsumer(**settings.kafka_client(), enable_auto_commit=False, isolation_level="read_committed")
    await consumer.start()
    try:
        tp = TopicPartition(topic, partition)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        end = (await consumer.end_offsets([tp]))[tp]
        found = []
        while await consumer.position(tp) < end:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                found += [(r.key, r.value) for r in records]
        return found
    finally:
        await consumer.stop()


async def _drained(settings: Settings, group: str, topic: str, timeout: float = 60) -> None:
    admin = AIOKafkaAdminClient(**settings.kafka_client())
    consumer = AIOKafkaConsumer(**settings.kafka_client(), enable_auto_commit=False)
    await admin.start()
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        ends = await consumer.end_offsets(tps)
        deadline = time.monotonic() + timeout
        while True:
            committed = await admin.list_consumer_group_offsets(group)
            if all((committed[tp].offset if tp in committed else 0) >= ends[tp] for tp in tps):
                return
            assert time.monotonic() < deadline, f"not drained: {committed} < {ends}"
            await asyncio.sleep(0.3)
    finally:
        await consumer.stop()
        await admin.close()


async def test_a_delete_compacted_away_while_the_partition_was_elsewhere_is_not_lost(counting: Counting) -> None:
    group = f"{counting.settings.namespace}.kept"
    changelog = f"{group}-kept-changelog"
    admin = AIOKafkaAdminClient(**counting.settings.kafka_client())
    await admin.start()
    try:
        await admin.create_topics([NewTopic(changelog, PARTITIONS, 1, topic_configs=FAST_COMPACTION)])
    finally:
        await admin.close()
    stage = Stage("kept", group, (counting.input,), handler(counting.output), {"kept": changelog})

    def runner(data: str) -> StageRunner:
        return StageRunner(stage, dataclasses.replace(counting.settings, data_dir=counting.tmp / data))

    producer = AIOKafkaProducer(**counting.settings.kafka_client(), acks="all")
    await producer.start()

    async def send(key: bytes, value: bytes, partition: int | None = None) -> int:
        return (await (await producer.send(counting.input, value, key=key, partition=partition))).partition

    try:
        # member A stores k, then leaves (a scale-down, a node drained): its RocksDB stays on its disk
        first, done = runner("a-data"), asyncio.Event()
        a = asyncio.create_task(_run_until(first, done))
        await asyncio.wait_for(first.active.wait(), 60)
        partition = await send(b"k", b"put")
        await _drained(counting.settings, group, counting.input)
        done.set()
        await a
        # member B holds the partition meanwhile: k is deleted, the changelog rolls and the cleaner drops the
        # tombstone (after delete.retention.ms: a day by default, here 100 ms)
        second, done = runner("b-data"), asyncio.Event()
        b = asyncio.create_task(_run_until(second, done))
        await asyncio.wait_for(second.active.wait(), 60)
        await send(b"k", b"del")
        await _drained(counting.settings, group, counting.input)
        deadline, filler = time.monotonic() + 150, 0
        while b"k" in [key for key, _ in await _changelog_keys(counting.settings, changelog, partition)]:
            assert time.monotonic() < deadline, "the cleaner never dropped the tombstone"
            filler += 1
            await send(b"filler-%d" % filler, b"put", partition)  # new records roll the segment with the tombstone
            await asyncio.sleep(2)
        done.set()
        await b
        # A comes back, restores from its local position to the changelog's end, and reads k
        third, done = runner("a-data"), asyncio.Event()
        c = asyncio.create_task(_run_until(third, done))
        await asyncio.wait_for(third.active.wait(), 60)
        held = third.stores()[partition]["kept"].get(b"k")
        done.set()
        await c
        assert held is None, f"k was deleted, yet the member that held it before restored it as {held!r}"
    finally:
        await producer.stop()
