"""StageRunner's bookkeeping around rebalances, with a fake consumer and producer (no Kafka): what runs when."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from aiokafka import TopicPartition
from aiokafka.errors import KafkaTimeoutError

from hubconf.settings import Settings
from runtime.api import Out, Stage
from runtime.loop import StageRunner

TP = TopicPartition("in", 0)


class FakeConsumer:
    def __init__(self) -> None:
        self.paused: set[TopicPartition] = set()
        self.seeks: list[tuple[TopicPartition, int]] = []

    def pause(self, *tps: TopicPartition) -> None:
        self.paused.update(tps)

    def resume(self, *tps: TopicPartition) -> None:
        self.paused.difference_update(tps)

    async def committed(self, tp: TopicPartition) -> int:
        return 0

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.seeks.append((tp, offset))

    async def seek_to_beginning(self, *tps: TopicPartition) -> None:
        pass


def runner_for(tmp_path: Path) -> tuple[StageRunner, Counter[int]]:
    settings = Settings(
        kafka="unused:9092", pg_dsn="postgresql://unused", pg_schema="unused", namespace="ns", store="memory://",
        data_dir=tmp_path, partitions=1, clock_interval_s=600, report_interval_s=30,
    )  # fmt: skip
    stage = Stage("count", "count-group", ("in",), lambda records, stores: [Out("out", r.key, r.value) for r in records],
                  {"counts": "count-changelog"})  # fmt: skip
    runner = StageRunner(stage, settings)
    runner._consumer = FakeConsumer()  # type: ignore[assignment]
    started: Counter[int] = Counter()

    async def start_producer(partition: Any) -> None:
        started[partition.number] += 1
        await asyncio.sleep(0.05)  # init_transactions takes a round trip or two
        partition.producer = SimpleNamespace(name=f"producer #{started[partition.number]}")

    async def restore(partitions: Any) -> None:
        await asyncio.sleep(0.05)

    runner._start_producer = start_producer  # type: ignore[method-assign]
    runner._restore = restore  # type: ignore[method-assign]
    return runner, started


def message(offset: int) -> SimpleNamespace:
    return SimpleNamespace(topic="in", partition=0, offset=offset, key=b"k", value=b"v", headers=(), timestamp=0)


async def test_an_activation_scheduled_by_a_checkpoint_failing_during_a_revocation_does_not_outlive_it(
    tmp_path: Path,
) -> None:
    """The loop's checkpoint fails while the rebalance's revocation waits for the lock: `_restart` schedules an
    activation after `_cancel_activations` has run, so it survives the revocation. Once the partition is assigned
    again (kept by this member), that stale activation runs BESIDE the fresh one: a second producer of the same
    transactional id (on Kafka, it fences the producer the fresh activation gave the partition, and the fence makes
    `_lose` drop the partition, which then stays paused and unprocessed until the next rebalance), a second seek
    and a `_drop` of work taken in since the fresh activation."""
    runner, started = runner_for(tmp_path)
    await runner._assigned({TP})
    await asyncio.wait_for(runner.active.wait(), 5)
    assert started[0] == 1

    async def failing_transaction(partition: Any) -> dict[str, int]:
        await asyncio.sleep(0.1)  # the broker is slow: meanwhile the group rebalances
        raise KafkaTimeoutError()

    runner._transaction = failing_transaction  # type: ignore[method-assign]
    async with runner._lock:  # as _loop does
        runner._take(TP, [message(0)])
    assert runner._partitions[0].next_offsets

    async def loop_checkpoint() -> None:
        async with runner._lock:
            await runner._checkpoint()

    checkpoint = asyncio.create_task(loop_checkpoint())
    await asyncio.sleep(0.01)  # the checkpoint holds the lock
    await runner._revoked({TP})  # aiokafka's listener: waits for the checkpoint, which fails and restarts it
    await checkpoint
    try:
        # the failed checkpoint's restart did not outlive the revocation: nothing is left scheduled to run
        assert not runner._activations, f"activations left after the revocation: {runner._activations}"
        await runner._assigned({TP})  # the rebalance gives this member the partition again
        await asyncio.wait_for(runner.active.wait(), 5)
        await asyncio.wait_for(asyncio.gather(*runner._activations), 5)  # every activation scheduled, to its end
        assert started[0] == 2, f"one activation per assignment; producers started for partition 0: {started[0]}"
    finally:
        await runner._cancel_activations()
        for p in list(runner._partitions.values()):
            if p.state is not None:
                p.state.close()


async def test_a_store_view_held_across_a_rebalance_does_not_lock_the_partition_out(tmp_path: Path) -> None:
    """`runner.stores()` hands out the partition's OverlayStores, whose column families keep its RocksDB open after
    `PartitionState.close`. worker.app's presumed-loss timer holds them across its awaits (`events_topic.send`,
    `asyncio.sleep(0)`) for a whole tick; if the partition is lost and given back meanwhile (two rebalances: a member
    joining, then leaving), reopening its RocksDB fails with 'lock hold by current process': StoreLocked, which the
    runner takes for another process on its data directory and stops the worker."""
    runner, _ = runner_for(tmp_path)
    await runner._assigned({TP})
    await asyncio.wait_for(runner.active.wait(), 5)
    held = runner.stores()  # the timer's `for stores in runners["merge"].stores().values()`, mid-tick
    await runner._revoked({TP})
    await runner._assigned(set())  # a member joined and took the partition
    await runner._assigned({TP})  # it left again: the partition comes back
    await asyncio.sleep(0.5)
    try:
        assert runner._fatal is None, f"the runner stopped: {runner._fatal!r}"
        assert runner.active.is_set()
    finally:
        del held
        await runner._cancel_activations()
        for p in list(runner._partitions.values()):
            if p.state is not None:
                p.state.close()
