"""A broker restart mid-stream under the runtime (aiokafka#905): the transactions in flight fail, the runner aborts,
rebuilds its producers and starts the partitions again from their committed positions, in the same process; the
outputs stay exactly-once.

It stops and starts the broker of MMHUB_HOME with infra/dev.sh, so it runs only when MMHUB_TEST_BROKER_RESTART=1
says that stack is a private one (never the shared services):

    MMHUB_HOME=/tmp/x-home MMHUB_KAFKA_PORT=19392 MMHUB_KAFKA_CONTROLLER_PORT=19393 MMHUB_PG_PORT=55532 \\
        bash infra/dev.sh up     # then, with the same variables, MMHUB_KAFKA=127.0.0.1:19392 and
    MMHUB_TEST_BROKER_RESTART=1 .venv/bin/python -m pytest tests/integration/runtime/test_broker_restart.py
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess

import pytest

from tests.integration.runtime.harness import ROOT, Counting

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        os.environ.get("MMHUB_TEST_BROKER_RESTART") != "1",
        reason="restarts the broker of MMHUB_HOME: set MMHUB_TEST_BROKER_RESTART=1 for a private stack only",
    ),
]


def _dev(*args: str) -> None:
    subprocess.run(["bash", str(ROOT / "infra" / "dev.sh"), *args], check=True, capture_output=True, timeout=240)


async def test_a_broker_restart_mid_transaction_is_retried_exactly_once(counting: Counting) -> None:
    # about 500 records a second in batches of 50: a checkpoint's transaction is open most of the time
    runner = counting.runner("a", COUNT_SLOW_S="0.002", MMHUB_BATCH_MAX="50", MMHUB_CHECKPOINT_TIMEOUT_S="10")
    runner.start()
    await runner.wait_active()
    await counting.send(3000)
    while await counting.committed() < 400:
        assert runner.alive, runner.text()[-2000:]
        await asyncio.sleep(0.05)
    try:
        await asyncio.to_thread(_dev, "stop", "kafka")
        await asyncio.sleep(3)
    finally:
        await asyncio.to_thread(_dev, "start", "kafka")
    await counting.send(300)
    await counting.drained(timeout=240)
    counts = await counting.check_exactly_once()
    assert sum(counts.values()) == 3300
    assert runner.alive
    assert runner.stop() == 0
    retried = re.search(r"retried=(\d+)", runner.text())
    assert retried is not None and int(retried.group(1)) > 0, runner.text()[-3000:]  # it did meet the restart
