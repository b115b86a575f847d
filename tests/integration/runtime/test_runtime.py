"""The stage runtime against the real broker, with a toy counting stage run as a process (counting.py).

Each input value is unique; the stage emits `<value>:<count of its key>`. A read_committed reader of the output
must then see every input value exactly once, and each key's counts as 1, 2, ..., n in order; the store's changelog
must end at n per key. The positive marker that everything was processed: the group's committed offsets equal the
input's end offsets.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import AsyncIterator

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from hubconf import topics as topic_names
from hubconf.settings import Settings
from tests.integration.runtime.counting import POISON

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
PARTITIONS = 4
KEYS = [f"k{i:02d}".encode() for i in range(24)]


@dataclass
class Runner:
    """One counting-stage process with its own data directory."""

    env: dict[str, str]
    log: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as handle:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tests.integration.runtime.counting"],
                env=self.env, cwd=ROOT, stdout=handle, stderr=subprocess.STDOUT,
            )  # fmt: skip

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    async def wait_active(self, timeout: float = 60) -> None:
        """Until the runner says every partition it holds is restored and taking records in."""
        deadline = time.monotonic() + timeout
        while "active" not in self.text():
            assert self.alive, f"the runner died:\n{self.text()[-3000:]}"
            assert time.monotonic() < deadline, f"the runner never became active:\n{self.text()[-3000:]}"
            await asyncio.sleep(0.2)

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)
        return self.process.returncode


@dataclass
class Counting:
    settings: Settings
    tmp: Path
    input: str
    output: str
    runners: list[Runner] = field(default_factory=list)
    sent: list[tuple[bytes, bytes]] = field(default_factory=list)

    @property
    def group(self) -> str:
        return f"{self.settings.namespace}.count"

    @property
    def changelog(self) -> str:
        return f"{self.group}-counts-changelog"

    def runner(self, name: str, data: str = "a", **env: str) -> Runner:
        """A runner process logging to `<name>.log`, its RocksDB under `<data>-data`."""
        runner = Runner(
            {
                **os.environ,
                "PYTHONPATH": str(ROOT),
                "MMHUB_KAFKA": self.settings.kafka,
                "MMHUB_NAMESPACE": self.settings.namespace,
                "MMHUB_DATA_DIR": str(self.tmp / f"{data}-data"),
                "MMHUB_SESSION_TIMEOUT_S": "6",
                "COUNT_INPUT": self.input,
                "COUNT_OUTPUT": self.output,
                **env,
            },
            self.tmp / f"{name}.log",
        )
        self.runners.append(runner)
        return runner

    async def send(self, count: int, rate: float | None = None, values: list[bytes] | None = None) -> None:
        """`count` new unique values round-robin over the keys (or `values`), at `rate` per second if given."""
        producer = AIOKafkaProducer(**self.settings.kafka_client(), acks="all", enable_idempotence=True)
        await producer.start()
        try:
            futures = []
            for i in range(count) if values is None else range(len(values)):
                key = KEYS[len(self.sent) % len(KEYS)]
                value = values[i] if values is not None else b"%s-%d" % (key, len(self.sent))
                self.sent.append((key, value))
                futures.append(await producer.send(self.input, value, key=key))
                if rate is not None:
                    await asyncio.sleep(1 / rate)
            await asyncio.gather(*futures)
        finally:
            await producer.stop()

    async def committed(self) -> int:
        """How many input records the group has committed so far."""
        admin = AIOKafkaAdminClient(**self.settings.kafka_client())
        await admin.start()
        try:
            return sum(o.offset for o in (await admin.list_consumer_group_offsets(self.group)).values())
        finally:
            await admin.close()

    async def drained(self, timeout: float = 90) -> None:
        """Until the group's committed offsets reach the input's end: every input record is checkpointed."""
        admin = AIOKafkaAdminClient(**self.settings.kafka_client())
        consumer = AIOKafkaConsumer(**self.settings.kafka_client(), enable_auto_commit=False)
        await admin.start()
        await consumer.start()
        try:
            tps = [TopicPartition(self.input, p) for p in range(PARTITIONS)]
            ends = await consumer.end_offsets(tps)
            deadline = time.monotonic() + timeout
            while True:
                committed = await admin.list_consumer_group_offsets(self.group)
                if all(tp in committed and committed[tp].offset >= ends[tp] for tp in tps):
                    return
                for runner in self.runners:
                    assert runner.process is None or runner.alive or runner.process.returncode in (0, -9), runner.text()
                assert time.monotonic() < deadline, f"not drained: {committed} < {ends}\n" + "\n".join(
                    r.text()[-2000:] for r in self.runners
                )
                await asyncio.sleep(0.3)
        finally:
            await consumer.stop()
            await admin.close()

    async def committed_values(self, topic: str) -> list[tuple[bytes, bytes, tuple[tuple[str, bytes], ...]]]:
        """Every committed record of `topic` up to its last stable offset, in order per partition."""
        consumer = AIOKafkaConsumer(
            **self.settings.kafka_client(), enable_auto_commit=False, isolation_level="read_committed"
        )
        await consumer.start()
        try:
            tps = [TopicPartition(topic, p) for p in range(await _partitions(self.settings, topic))]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            ends = await consumer.end_offsets(tps)
            found = []
            while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    found += [(r.key, r.value, tuple(r.headers)) for r in records]
            return found
        finally:
            await consumer.stop()

    async def check_exactly_once(self, dead: set[bytes] = frozenset()) -> dict[bytes, int]:  # type: ignore[assignment]
        """Each sent value (not dead-lettered) emitted once, each key's counts 1..n in order; the changelog ends at n."""
        outputs = await self.committed_values(self.output)
        emitted = Counter(value.rsplit(b":", 1)[0] for _, value, _ in outputs)
        expected = Counter(value for _, value in self.sent if value not in dead)
        assert emitted == expected, f"missing {expected - emitted}, repeated {emitted - expected}"
        counts: dict[bytes, list[int]] = defaultdict(list)
        for key, value, _ in outputs:
            counts[key].append(int(value.rsplit(b":", 1)[1]))
        assert all(seq == list(range(1, len(seq) + 1)) for seq in counts.values()), dict(counts)
        latest = {key: value for key, value, _ in await self.committed_values(self.changelog)}
        assert latest == {key: str(len(seq)).encode() for key, seq in counts.items()}
        return {key: len(seq) for key, seq in counts.items()}


async def _partitions(settings: Settings, topic: str) -> int:
    admin = AIOKafkaAdminClient(**settings.kafka_client())
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topic])
        assert not described["error_code"], described
        return len(described["partitions"])
    finally:
        await admin.close()


@pytest.fixture
async def counting(tmp_path: Path) -> AsyncIterator[Counting]:
    """A private namespace with the toy stage's input and output and the hub's DLQ (only Kafka: no Postgres)."""
    settings = dataclasses.replace(Settings.from_env(), namespace=f"it-rt-{uuid.uuid4().hex[:10]}")
    env = Counting(settings, tmp_path, f"{settings.namespace}.count.in", f"{settings.namespace}.count.out")
    admin = AIOKafkaAdminClient(**settings.kafka_client())
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(name, PARTITIONS, 1) for name in (env.input, env.output, settings.topics.dlq)]
        )
        yield env
    finally:
        for runner in env.runners:
            runner.stop()
        doomed = [name for name in await admin.list_topics() if name.startswith(f"{settings.namespace}.")]
        await admin.delete_topics(doomed)
        await admin.close()


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
