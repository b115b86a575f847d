"""Faults from the outside world (issue 6): the broker restarts mid-stream; Postgres is away for a while.

Each test stops one real service with `infra/dev.sh stop`, keeps going, and starts it again (always, even when
the test fails). Nothing may be lost: every shipment's projection ends equal to the offline fold.
"""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest

from connectors.kafka import publish
from connectors.postgres.store import projected_versions
from hubconf.settings import Settings
from tests.integration.hub import caught_up, journey_lines, offline, projected_record, wait_for

pytestmark = pytest.mark.integration

DEV = Path(__file__).resolve().parents[2] / "infra" / "dev.sh"
SHIPMENTS = [f"SHP-OUT-{n:04d}" for n in range(20)]


def _dev(*args: str) -> None:
    subprocess.run(["bash", str(DEV), *args], check=True, capture_output=True, timeout=240)


def _halves() -> tuple[list[bytes], list[bytes], dict]:
    lines = [line for sid in SHIPMENTS for line in journey_lines(sid)]
    first = [line for i, line in enumerate(lines) if i % 2 == 0]
    second = [line for i, line in enumerate(lines) if i % 2 == 1]
    return first, second, offline(lines)


async def _some_projected(settings: Settings) -> bool:
    return len(await projected_versions(settings)) >= len(SHIPMENTS) // 2


async def test_a_broker_restart_mid_stream_loses_nothing(hub) -> None:
    settings, worker, sink = hub
    first, second, expected = _halves()
    worker.start()
    sink.start()
    await publish(settings, first)
    await wait_for(lambda: _some_projected(settings), 120, "half the shipments projected", worker, sink)
    try:
        await asyncio.to_thread(_dev, "stop", "kafka")
        await asyncio.sleep(3)  # the worker and the sink see the broker gone
    finally:
        await asyncio.to_thread(_dev, "start", "kafka")
    await publish(settings, second)
    await wait_for(lambda: caught_up(settings, expected), 240, "the projection after the broker restart", worker, sink)
    for shipment_id in SHIPMENTS:
        assert await projected_record(settings, shipment_id) == expected[shipment_id]
    assert worker.alive and sink.alive, worker.tail() + sink.tail()


async def test_postgres_away_for_a_while_the_sink_retries_and_catches_up(hub) -> None:
    settings, worker, sink = hub
    first, second, expected = _halves()
    worker.start()
    sink.start()
    await publish(settings, first)
    await wait_for(lambda: _some_projected(settings), 120, "half the shipments projected", worker, sink)
    try:
        await asyncio.to_thread(_dev, "stop", "postgres")
        await publish(settings, second)  # the worker keeps merging; the sink cannot write
        await asyncio.sleep(8)
        assert sink.alive, sink.tail()
    finally:
        await asyncio.to_thread(_dev, "start", "postgres")
    await wait_for(lambda: caught_up(settings, expected), 180, "the projection after the outage", worker, sink)
    for shipment_id in SHIPMENTS:
        assert await projected_record(settings, shipment_id) == expected[shipment_id]
    assert worker.alive and sink.alive, worker.tail() + sink.tail()
