"""A graceful stop (SIGTERM) of a runner that holds work not yet checkpointed: the work is checkpointed (outputs,
changelog, offsets in one transaction) before the runner leaves the group, so whoever takes the partitions next
starts after it and nothing is emitted twice (bench.scaleout's join-term scenario, here with the toy stage)."""

from __future__ import annotations

import os
import re
import signal

import pytest
from aiokafka import AIOKafkaProducer

from tests.integration.runtime.harness import KEYS, Counting

pytestmark = pytest.mark.integration


async def test_a_graceful_stop_checkpoints_the_work_in_hand_before_it_leaves(counting: Counting) -> None:
    """The stop reaches the idle runner while it waits for records; a record arrives during that wait. The loop takes
    it in and ends at once (a checkpoint in the loop comes only when a fetch finds nothing, or after 10 minutes here):
    the record is in hand when the runner stops, and only the stop's own checkpoint can commit it."""
    await counting.send(48)
    a = counting.runner("a", MMHUB_CHECKPOINT_MS="600000", MMHUB_CHECKPOINT_RECORDS="100000")
    a.start()
    await counting.drained()  # idle: the 48 are checkpointed, the loop waits in a fetch
    producer = AIOKafkaProducer(**counting.settings.kafka_client(), acks="all", enable_idempotence=True)
    await producer.start()
    try:
        assert a.process is not None
        os.kill(a.process.pid, signal.SIGTERM)
        counting.sent.append((KEYS[0], b"in-hand"))
        await producer.send_and_wait(counting.input, b"in-hand", key=KEYS[0])
    finally:
        await producer.stop()
    assert a.stop() == 0, a.text()[-2000:]
    taken = re.search(r"records_in=(\d+)", a.text())
    assert taken is not None, a.text()[-2000:]
    # The premise: the record came in during the stop's fetch (else the runner ended with nothing in hand).
    assert int(taken.group(1)) == 49, a.text()[-2000:]
    assert await counting.committed() == 49  # committed by the stop, before the runner left
    b = counting.runner("b", data="b")
    b.start()
    await b.wait_active()
    await counting.send(48)
    await counting.drained()
    counts = await counting.check_exactly_once()
    assert sum(counts.values()) == 97
    assert b.stop() == 0
