"""The runtime tests' harness: counting-stage processes (counting.py) and what they read and write on the broker."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from hubconf.settings import Settings
from tests.integration.hub import settled_ends

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
            ends = await settled_ends(self.settings, consumer, tps)
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
        broken = {key: _first_break(seq) for key, seq in counts.items() if seq != list(range(1, len(seq) + 1))}
        assert not broken, broken
        latest = {key: value for key, value, _ in await self.committed_values(self.changelog)}
        assert latest == {key: str(len(seq)).encode() for key, seq in counts.items()}
        return {key: len(seq) for key, seq in counts.items()}


def _first_break(seq: list[int]) -> str:
    """Where a key's counts stop being 1, 2, 3, ...: the index and the counts around it."""
    at = next(i for i, count in enumerate(seq) if count != i + 1)
    return f"at {at} of {len(seq)}: ...{seq[max(0, at - 3) : at + 4]}"


async def _partitions(settings: Settings, topic: str) -> int:
    admin = AIOKafkaAdminClient(**settings.kafka_client())
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topic])
        assert not described["error_code"], described
        return len(described["partitions"])
    finally:
        await admin.close()
