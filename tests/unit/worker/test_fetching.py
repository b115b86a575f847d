"""The worker's consumer waits at most MMHUB_FETCH_MAX_WAIT_MS for a fetch, not faust's fixed 1.5 s.

Why it matters (worker.fetching): aiokafka keeps one fetch in flight per broker, and a busy merge leaves that
fetch naming only quiet topics; the broker then holds it for the whole wait while the input waits behind it.
bench.latency measured the effect; this checks that the setting reaches the aiokafka consumer faust builds.
No broker is contacted: the consumer is built, not started.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

from hubconf.settings import Settings
from worker.app import create_app
from worker.fetching import prompt_consumer


@pytest.mark.asyncio
async def test_the_worker_consumer_gets_the_configured_fetch_wait(tmp_path: Path) -> None:
    settings = replace(Settings.from_env(), namespace="unit-fetching", data_dir=tmp_path, fetch_max_wait_ms=37)
    app = create_app(settings)
    thread = app.consumer._thread
    consumer = thread._create_worker_consumer(app.transport)
    assert consumer._fetch_max_wait_ms == 37


@pytest.mark.asyncio
async def test_faust_alone_would_wait_a_second_and_a_half(tmp_path: Path) -> None:
    # The reason for worker.fetching: if faust's own consumer stops fixing 1.5 s, the override may go.
    settings = replace(Settings.from_env(), namespace="unit-fetching-plain", data_dir=tmp_path)
    app = create_app(settings)
    plain = AIOKafkaConsumerThread(app.consumer, loop=app.consumer.loop, beacon=app.consumer.beacon)
    assert plain._create_worker_consumer(app.transport)._fetch_max_wait_ms == 1500


def test_a_wait_under_one_millisecond_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        prompt_consumer(0)
