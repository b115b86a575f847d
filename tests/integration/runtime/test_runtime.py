"""The stage runtime against the real broker, with a toy counting stage run as a process (counting.py).

Each input value is unique; the stage emits `<value>:<count of its key>`. A read_committed reader of the output
must then see every input value exactly once, and each key's counts as 1, 2, ..., n in order; the store's changelog
must end at n per key. The positive marker that everything was processed: the group's committed offsets equal the
input's end offsets.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import time

import pytest
from aiokafka import AIOKafkaProducer

from hubconf import topics as topic_names
from runtime.loop import HANDLER_RECORDS
from tests.integration.runtime.counting import HUGE, POISON
from tests.integration.runtime.harness import Counting

pytestmark = pytest.mark.integration


async def test_exactly_once_through_kill_9(counting: Counting) -> None:
    """SIGKILL mid-stream (transactions open), restart: each input's effect is seen exactly once, counts exact."""
    first = counting.runner("a")
    first.start()
    await first.wait_active()
    feeding = asyncio.create_task(counting.send(1500, rate=500))
    while await counting.committed() < 300:  # mid-stream: checkpoints committed, more records coming in
        assert not feeding.done() and first.alive, first.text()[-2000:]
        await asyncio.sleep(0.05)
    first.kill()
    assert not feeding.done()
    await feeding
    second = counting.runner("a2")  # the same data directory: RocksDB is behind what the killed one committed
    second.start()
    await counting.send(300)
    await counting.drained()
    counts = await counting.check_exactly_once()
    assert sum(counts.values()) == 1800


async def test_restore_from_changelog_with_a_wiped_data_dir(counting: Counting) -> None:
    first = counting.runner("a")
    first.start()
    await counting.send(600)
    await counting.drained()
    assert first.stop() == 0
    shutil.rmtree(counting.tmp / "a-data")
    second = counting.runner("a2")
    second.start()
    await counting.send(240)
    await counting.drained()
    counts = await counting.check_exactly_once()
    assert set(counts.values()) == {35}  # 840 values over 24 keys: the counts went on from the restored 25
    assert second.stop() == 0
    assert "restored_records=24," in second.text()  # one changelog record per key: the 600 writes coalesced


async def test_two_runners_rebalance_exactly_once(counting: Counting) -> None:
    """A second runner joins mid-stream, then the first leaves (SIGTERM) mid-stream: nothing lost, nothing twice."""
    a, b = counting.runner("a"), counting.runner("b", data="b")
    a.start()
    await a.wait_active()
    feeding = asyncio.create_task(counting.send(1200, rate=300))
    await asyncio.sleep(1.0)
    b.start()
    await asyncio.sleep(2.5)
    assert a.stop() == 0
    await feeding
    await counting.drained()
    counts = await counting.check_exactly_once()
    assert sum(counts.values()) == 1200
    assert "counters" in a.text() and b.alive


async def test_at_least_once_mode(counting: Counting) -> None:
    """MMHUB_GUARANTEE=at_least_once: one idempotent producer, flushed, then offsets committed; without a failure,
    nothing is repeated either; a graceful restart in between keeps the counts."""
    first = counting.runner("a", MMHUB_GUARANTEE="at_least_once")
    first.start()
    await counting.send(480)
    await counting.drained()
    assert first.stop() == 0
    second = counting.runner("a2", MMHUB_GUARANTEE="at_least_once")
    second.start()
    await counting.send(240)
    await counting.drained()
    counts = await counting.check_exactly_once()
    assert set(counts.values()) == {30}


async def test_a_handler_exception_dead_letters_its_batch_and_the_loop_goes_on(counting: Counting) -> None:
    runner = counting.runner("a")
    runner.start()
    await runner.wait_active()
    await counting.send(0, values=[b"before-%d" % i for i in range(48)])
    await counting.drained()
    await counting.send(0, values=[POISON])
    await counting.drained()
    await counting.send(0, values=[b"after-%d" % i for i in range(48)])
    await counting.drained()
    dead = await counting.committed_values(counting.settings.topics.dlq)
    assert [value for _, value, _ in dead] == [POISON]  # sent alone, its batch is itself
    headers = dict(dead[0][2])
    assert headers[topic_names.DLQ_CODE] == b"hub_error"
    assert headers[topic_names.DLQ_SOURCE_TOPIC] == counting.input.encode()
    assert b"a poison record" in headers[topic_names.DLQ_REASON]
    counts = await counting.check_exactly_once(dead={POISON})
    assert sum(counts.values()) == 96 and runner.alive


async def test_a_fenced_producer_loses_its_partition_until_the_next_rebalance(counting: Counting) -> None:
    """Another producer takes partition 0's transactional id mid-stream (what a new owner does): the runner's next
    checkpoint of partition 0 is fenced, it drops that partition's work and the partition, the others go on; after
    the next rebalance (a second runner joins) everything is processed, still exactly once."""
    a = counting.runner("a", COUNT_SLOW_S="0.002", MMHUB_BATCH_MAX="50")
    a.start()
    await a.wait_active()
    feeding = asyncio.create_task(counting.send(1200, rate=400))
    while await counting.committed() < 100:
        assert a.alive, a.text()[-2000:]
        await asyncio.sleep(0.05)
    thief = AIOKafkaProducer(**counting.settings.kafka_client(), transactional_id=f"{counting.group}.0")
    await thief.start()  # InitProducerId: bumps the epoch, fences the runner's producer of partition 0
    await thief.stop()
    await feeding
    deadline = time.monotonic() + 30
    while "partition 0 fenced" not in a.text():
        assert a.alive and time.monotonic() < deadline, a.text()[-2000:]
        await asyncio.sleep(0.1)
    b = counting.runner("b", data="b")
    b.start()
    await counting.drained()
    counts = await counting.check_exactly_once()
    assert sum(counts.values()) == 1200
    assert a.alive and b.alive
    assert a.stop() == 0
    assert re.search(r"fenced=1\b", a.text()), a.text()[-2000:]


async def test_a_backlog_reaches_the_handler_in_calls_of_at_most_handler_records(counting: Counting) -> None:
    """bench.scaleout: a 2,000-record batch handled in one call held a starved worker's event loop for 8.9 s, past
    its heartbeats. A backlog taken in 2,000 at a time must reach the handler in calls of HANDLER_RECORDS at most."""
    await counting.send(3000)  # waiting before the runner starts: its first fetches come back full
    runner = counting.runner("a", MMHUB_BATCH_MAX="2000")
    runner.start()
    await counting.drained()
    assert await counting.check_exactly_once()
    assert runner.stop() == 0
    largest = int(re.search(r"largest_batch=(\d+)", runner.text()).group(1))  # type: ignore[union-attr]
    # without the cap this run's fetches handed 875 records to one call
    assert HANDLER_RECORDS == 500 and 0 < largest <= HANDLER_RECORDS, largest


async def test_a_deferring_stage_through_kill_9_exactly_once(counting: Counting) -> None:
    """A stage that defers its work to the checkpoint (Stage.flush, as the merge does), SIGKILLed mid-stream and
    restarted: what it flushed is committed with the offsets or not at all; each input's effect is seen once."""
    first = counting.runner("a", COUNT_DEFER="1")
    first.start()
    await first.wait_active()
    feeding = asyncio.create_task(counting.send(1500, rate=500))
    while await counting.committed() < 300:
        assert not feeding.done() and first.alive, first.text()[-2000:]
        await asyncio.sleep(0.05)
    first.kill()
    await feeding
    second = counting.runner("a2", COUNT_DEFER="1")
    second.start()
    await counting.send(300)
    await counting.drained()
    counts = await counting.check_exactly_once()
    assert sum(counts.values()) == 1800
    assert second.stop() == 0
    assert not re.search(r"retried=[1-9]", second.text()), second.text()[-2000:]


async def test_a_flush_that_raises_restarts_its_partition_and_loses_nothing(counting: Counting) -> None:
    """A flush that raises after its first chunk (a hub bug): the chunk's store writes and messages and the rest of
    the partition's deferred work are dropped, the partition starts again from its committed position, and in the
    end every input is counted and emitted exactly once."""
    runner = counting.runner("a", COUNT_DEFER="1", COUNT_FLUSH_FAIL="3")
    runner.start()
    await runner.wait_active()
    await counting.send(0, values=[b"v-%d" % i for i in range(240)])
    await counting.drained()
    counts = await counting.check_exactly_once()
    assert sum(counts.values()) == 240
    assert runner.stop() == 0
    text = runner.text()
    assert "flush 3 raises" in text and "failed: restarting it" in text, text[-2000:]
    assert re.search(r"retried=1\b", text), text[-2000:]


@pytest.mark.parametrize("guarantee", ["exactly_once", "at_least_once"])
async def test_a_record_the_broker_refuses_for_good_is_set_aside_and_its_partition_goes_on(counting: Counting, guarantee: str) -> None:
    """A changelog record over the broker's max.message.bytes: aiokafka fails that record's future but not the
    transaction, which committed the offsets, the outputs and the other store writes without it (the store then
    restored without the write, the output already out: a state behind what was sent). The runtime waits for every
    record before the commit, so the checkpoint fails and nothing of it is visible; it then failed at every retry
    and the partition stopped there for good. Now the records of the refused checkpoint are taken again one per
    checkpoint, the one refused alone is dead-lettered with its bytes (code `unwritable`), and the partition goes on:
    every other record exactly once, nothing of the refused ones in the outputs or the changelog. At least once, the
    checkpoint covers every partition with work: while one is isolating, each is checkpointed on its own; and the
    one idempotent producer is replaced after a failed checkpoint (after a refused record, its sequence numbers were
    behind the broker's and every later checkpoint failed with OutOfOrderSequenceNumber)."""
    runner = counting.runner("a", MMHUB_GUARANTEE=guarantee)
    runner.start()
    await runner.wait_active()
    await counting.send(48)
    await counting.drained()
    huge = [HUGE, HUGE + b"-among-others"]
    await counting.send(0, values=[huge[0]])  # alone in its checkpoint
    await counting.drained()  # the positive marker: committed past it
    # among others of its partition in one checkpoint: they are taken one by one to find it
    await counting.send(0, values=[b"before-%d" % i for i in range(20)] + [huge[1]] + [b"after-%d" % i for i in range(20)])
    await counting.send(24)
    await counting.drained()
    dead = await counting.committed_values(counting.settings.topics.dlq)
    assert sorted((value, dict(headers)[topic_names.DLQ_CODE]) for _, value, headers in dead) == [(v, b"unwritable") for v in sorted(huge)]
    assert all(b"refused by Kafka for good" in dict(headers)[topic_names.DLQ_REASON] for _, _, headers in dead)
    if guarantee == "exactly_once":
        await counting.check_exactly_once(dead=set(huge))
        assert not [key for key, _, _ in await counting.committed_values(counting.changelog) if key.startswith(HUGE)]
    else:  # at least once: what a failed checkpoint sent before its refusal may be out (the outputs, even the huge's)
        emitted = {value.rsplit(b":", 1)[0] for _, value, _ in await counting.committed_values(counting.output)}
        assert {value for _, value in counting.sent} - set(huge) <= emitted
    text = runner.text()
    assert text.count("MessageSizeTooLargeError") >= 2 and "set aside" in text, text[-3000:]
    assert runner.alive
