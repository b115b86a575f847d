"""Helpers for integration tests that run the hub's real processes against the real broker and database."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Awaitable, Callable

import aiohttp
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from connectors.kafka import read_jsonl
from connectors.parties import load_parties
from connectors.postgres.store import fetch_record, projected_versions
from hubconf.settings import DEFAULT_PARTIES, Settings
from schemas.record import ShipmentRecord
from streams.codec import Rejection, decode_event
from streams.merge import fold
from tests.security.merging import sscc

JOURNEY = Path(__file__).resolve().parents[2] / "examples" / "journey.jsonl"
JOURNEY_ID = "SHP-2026-000042"
AUTHORITY = load_parties(DEFAULT_PARTIES).authority()  # the registry the test hubs run with


def journey_lines(shipment_id: str = JOURNEY_ID) -> list[bytes]:
    """The example journey, re-addressed to `shipment_id` (so one test can run many shipments)."""
    return [line.replace(JOURNEY_ID.encode(), shipment_id.encode()) for line in read_jsonl(JOURNEY)]


def packed_report(event_id: str, packages: int, first_serial: int) -> bytes:
    """A valid report of the journey's first leg by its own carrier (its "t1-arr" event, with another id) listing
    `packages` SSCCs from `first_serial`: about 21 bytes a package."""
    doc = orjson.loads(next(line for line in journey_lines() if b'"t1-arr"' in line))
    doc["event_id"] = event_id
    doc["payload"]["ssccs"] = [sscc(first_serial + serial) for serial in range(packages)]
    return orjson.dumps(doc)


def offline(lines: list[bytes]) -> dict[str, ShipmentRecord]:
    """What `mmhub fold` gives for these lines: the reference every pipeline result must equal."""
    events = [e for e in (decode_event(line) for line in lines) if not isinstance(e, Rejection)]
    return fold((e for e in events if e.shipment_id is not None), AUTHORITY)


class HubProcess:
    """One `mmhub <command>` process with the test's namespace, schema and data directory."""

    def __init__(
        self,
        command: str,
        settings: Settings,
        data_dir: Path,
        log: Path,
        extra_env: dict[str, str] | None = None,
        args: list[str] | None = None,
    ) -> None:
        self.command = command
        self.args = args or []
        self.env = {
            **os.environ,
            "MMHUB_METRICS_PORT": "0",  # tests run many at once: a test that scrapes one gives it a free port
            **(extra_env or {}),
            "MMHUB_KAFKA": settings.kafka,
            "MMHUB_PG_DSN": settings.pg_dsn,
            "MMHUB_NAMESPACE": settings.namespace,
            "MMHUB_PG_SCHEMA": settings.pg_schema,
            "MMHUB_DATA_DIR": str(data_dir),
        }
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        handle = self.log.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "mmhub.cli", self.command, *self.args], env=self.env, stdout=handle, stderr=subprocess.STDOUT
        )

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: no shutdown hooks, no final commit. What a crash looks like."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=30)

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


async def wait_for_gateway(session: aiohttp.ClientSession, base: str, gateway: HubProcess) -> None:
    """Until `mmhub gateway` at `base` answers its health check with 200."""

    async def up() -> bool:
        try:
            async with session.get(f"{base}/healthz") as response:
                return response.status == 200
        except aiohttp.ClientError:
            return False

    await wait_for(up, 60, "the gateway", gateway)


async def wait_for(condition: Callable[[], Awaitable[bool]], timeout: float, what: str, *procs: HubProcess) -> None:
    deadline = time.monotonic() + timeout
    while not await condition():
        for proc in procs:
            assert proc.alive, f"{proc.command} died while waiting for {what}:\n{proc.tail()}"
        if time.monotonic() > deadline:
            logs = "\n".join(f"--- {p.command} ---\n{p.tail()}" for p in procs)
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}\n{logs}")
        await asyncio.sleep(0.5)


async def caught_up(settings: Settings, expected: dict[str, ShipmentRecord]) -> bool:
    versions = await projected_versions(settings)
    return all(versions.get(sid, 0) >= record.version for sid, record in expected.items())


async def projected_record(settings: Settings, shipment_id: str) -> ShipmentRecord:
    row = await fetch_record(settings, shipment_id)
    assert row is not None, f"{shipment_id} is not in the projection"
    row.pop("projected_at")
    return ShipmentRecord.model_validate_json(orjson.dumps(row))


async def read_topic(settings: Settings, topic: str, expected: int, timeout: float = 30.0) -> list:
    """Every message on `topic` from the beginning, waiting until at least `expected` have arrived."""
    consumer = AIOKafkaConsumer(
        topic,
        **settings.kafka_client(),
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        isolation_level="read_committed",  # the worker's outputs are transactional
    )
    await consumer.start()
    found: list = []
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for messages in (await consumer.getmany(timeout_ms=500)).values():
                found.extend(messages)
            if len(found) >= expected:
                # one more short poll, so that an unexpected extra message is seen too
                for messages in (await consumer.getmany(timeout_ms=1000)).values():
                    found.extend(messages)
                break
    finally:
        await consumer.stop()
    return found


async def settled_ends(
    settings: Settings, committed: AIOKafkaConsumer, tps: list[TopicPartition], timeout: float = 60
) -> dict[TopicPartition, int]:
    """The partitions' last stable offsets once no transaction is open on them (each equals its high watermark).

    A transaction's commit returns to its producer once the coordinator has logged it; the markers that make its
    records readable are written after, partition by partition. So the group's committed offsets (a marker on
    __consumer_offsets) can show before an output partition's marker does, and a read_committed consumer's end
    offsets, taken at that moment, stop short of that transaction's records (CI run of 24da651: one output
    partition's 750 records missing, none repeated). The tests read only once the inputs are drained, so every
    transaction is closed or about to be; one still open after `timeout` is a failure."""
    uncommitted = AIOKafkaConsumer(**settings.kafka_client(), enable_auto_commit=False)
    await uncommitted.start()
    try:
        deadline = time.monotonic() + timeout
        while True:
            stable, high = await committed.end_offsets(tps), await uncommitted.end_offsets(tps)
            if stable == high:
                return stable
            assert time.monotonic() < deadline, f"a transaction still open after {timeout} s: {stable} < {high}"
            await asyncio.sleep(0.1)
    finally:
        await uncommitted.stop()


async def read_all(settings: Settings, topic: str, timeout: float = 60.0) -> list:
    """Every message on one of the hub's topics (settings.partitions partitions) up to its end offsets as of now."""
    consumer = AIOKafkaConsumer(**settings.kafka_client(), enable_auto_commit=False, isolation_level="read_committed")
    await consumer.start()
    found: list = []
    try:
        partitions = [TopicPartition(topic, p) for p in range(settings.partitions)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await settled_ends(settings, consumer, partitions)
        deadline = time.monotonic() + timeout
        while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
            assert time.monotonic() < deadline, f"could not read {topic} to its end within {timeout:.0f} s"
            for messages in (await consumer.getmany(timeout_ms=500)).values():
                found.extend(messages)
    finally:
        await consumer.stop()
    return found


async def drop_internal_topics(settings: Settings) -> None:
    """Faust's changelog topics for the namespace; the conftest drops the hub's own."""
    admin = AIOKafkaAdminClient(**settings.kafka_client())
    await admin.start()
    try:
        doomed = [t for t in await admin.list_topics() if t.startswith(f"{settings.app_id}-")]
        if doomed:
            await admin.delete_topics(doomed)
    finally:
        await admin.close()
