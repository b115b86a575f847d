"""A broker restart mid-stream under the runtime (aiokafka#905), both ways a checkpoint in flight can meet it:
- its transaction outlasts MMHUB_CHECKPOINT_TIMEOUT_S: the runner aborts, rebuilds its producers and starts the
  partitions again from their committed positions, in the same process;
- the broker is back within the timeout: aiokafka's retries carry the transaction through (the transaction
  coordinator keeps its state, the idempotent producer its sequence numbers), and nothing is redone.
Either way the outputs stay exactly-once, and each run shows that it met the restart.

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


@pytest.mark.parametrize("timeout_s", ["2", "30"], ids=["aborted-and-redone", "carried-through"])
async def test_a_broker_restart_mid_transaction_is_retried_exactly_once(counting: Counting, timeout_s: str) -> None:
    # about 500 records a second in batches of 50: a checkpoint's transaction is open most of the time
    runner = counting.runner("a", COUNT_SLOW_S="0.002", MMHUB_BATCH_MAX="50", MMHUB_CHECKPOINT_TIMEOUT_S=timeout_s)
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
    text = runner.text()
    retried = int(re.search(r"retried=(\d+)", text).group(1))  # type: ignore[union-attr]
    longest = float(re.search(r"checkpoint_s_max=([0-9.]+)", text).group(1))  # type: ignore[union-attr]
    if timeout_s == "2":  # the broker is away for more than 3 s: a checkpoint timed out and was redone
        assert retried > 0, text[-3000:]
    else:  # no checkpoint failed, and one stayed open across the 3 s the broker was away
        assert retried == 0 and longest > 3, text[-3000:]
