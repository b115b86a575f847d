"""A checkpoint that fails while a rebalance waits for it, on the real broker, with the runner in this process."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.errors import KafkaTimeoutError

from runtime.loop import StageRunner
from tests.integration.runtime import counting as counting_stage
from tests.integration.runtime.harness import Counting

pytestmark = pytest.mark.integration


async def _uncommitted(counting: Counting, partitions: list[int]) -> dict[int, tuple[int, int]]:
    """Per input partition: (committed, end), for those whose committed offset is below the end."""
    admin = AIOKafkaAdminClient(**counting.settings.kafka_client())
    consumer = AIOKafkaConsumer(**counting.settings.kafka_client(), enable_auto_commit=False)
    await admin.start()
    await consumer.start()
    try:
        tps = [TopicPartition(counting.input, p) for p in partitions]
        ends = await consumer.end_offsets(tps)
        committed = await admin.list_consumer_group_offsets(counting.group)
        found = {tp.partition: (committed[tp].offset if tp in committed else 0, ends[tp]) for tp in tps}
        return {p: (c, e) for p, (c, e) in found.items() if c < e}
    finally:
        await consumer.stop()
        await admin.close()


async def test_a_checkpoint_failing_while_a_rebalance_waits_restarts_its_partition_once(counting: Counting) -> None:
    """The loop's checkpoint of partition 0 fails while the rebalance's revocation waits for the lock: its restart
    (an activation in RETRY_BACKOFF_S) must not outlive the revocation. Before the fix it did: once the rebalance
    gave partition 0 back, that stale activation ran beside the fresh one, discarded the producer of a partition
    already active and taking records in, and broke its checkpoint in flight (a second restart; on another
    interleaving a fence, and the partition dropped as if another member owned it)."""
    settings = dataclasses.replace(counting.settings, data_dir=counting.tmp / "in-process", session_timeout_s=6)
    runner = StageRunner(counting_stage.stage(settings, counting.input, counting.output), settings)
    real_transaction, real_revoked = runner._transaction, runner._revoked
    armed, in_transaction, revoking = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def transaction(partition: Any) -> dict[str, int]:
        if armed.is_set() and partition.number == 0:
            armed.clear()
            in_transaction.set()
            await revoking.wait()  # the broker answers slowly; meanwhile the group rebalances
            await asyncio.sleep(0.2)
            raise KafkaTimeoutError()
        if revoking.is_set() and partition.number == 0:
            await asyncio.sleep(0.3)  # a slow broker: checkpoints of partition 0 take a while from now on
        return await real_transaction(partition)

    async def revoked(tps: set[TopicPartition]) -> None:
        if in_transaction.is_set():
            revoking.set()
        await real_revoked(tps)

    runner._transaction = transaction  # type: ignore[method-assign]
    runner._revoked = revoked  # type: ignore[method-assign]
    running = asyncio.create_task(runner.run())
    other: AIOKafkaConsumer | None = None
    try:
        await asyncio.wait_for(runner.active.wait(), 60)
        await counting.send(48)
        await counting.drained()
        armed.set()
        await counting.send(48)
        await asyncio.wait_for(in_transaction.wait(), 30)
        # another member joins: RangeAssignor gives the first member id (ours, "<namespace>.count.consumer-...")
        # partitions 0 and 1, and this one ("zzz-...") 2 and 3: partition 0 stays with the runner
        other = AIOKafkaConsumer(
            **settings.kafka_client(client_id="zzz"),
            group_id=counting.group,
            enable_auto_commit=False,
            partition_assignment_strategy=(RangePartitionAssignor,),
            session_timeout_ms=6000,
            heartbeat_interval_ms=1500,
        )
        other.subscribe([counting.input])
        await other.start()
        await asyncio.wait_for(revoking.wait(), 30)
        deadline = time.monotonic() + 30
        while not (other.assignment() and runner.active.is_set()):
            assert time.monotonic() < deadline, "the rebalance never completed"
            await asyncio.sleep(0.1)
        assert {tp.partition for tp in other.assignment()} == {2, 3}
        await counting.send(96, rate=40)  # records keep coming, through the 1 s the stale activation waits
        deadline = time.monotonic() + 40
        while left := await _uncommitted(counting, [0, 1]):
            assert time.monotonic() < deadline, (
                f"partitions (committed, end) never processed: {left}; counters {runner.counters}"
            )
            await asyncio.sleep(0.5)
        await other.stop()
        other = None
        await counting.drained()
        await counting.check_exactly_once()
        assert runner.counters.fenced == 0, runner.counters
        # one failed checkpoint (the one made to fail), one restart: no other checkpoint broken behind the loop's back
        assert runner.counters.retried == 1, runner.counters
    finally:
        runner.stop()
        await asyncio.wait_for(running, 60)
        if other is not None:
            await other.stop()
