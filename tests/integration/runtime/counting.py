"""A toy stage for the runtime's tests, run as a process (`python -m tests.integration.runtime.counting`).

It counts the records per key in the store "counts" and, per record, emits `<value>:<count>` to the output topic:
a duplicate or a lost checkpoint shows as an input value emitted twice, or as a count that repeats or skips.
A record whose value is `poison` makes the handler raise (a hub bug): the runtime dead-letters its batch.
Environment: the usual MMHUB_* settings, COUNT_INPUT / COUNT_OUTPUT (full topic names), and COUNT_SLOW_S (a pause
per record, so a test can catch the stage mid-stream). COUNT_DEFER=1 makes it a deferring stage (as the merge is):
the handler only keeps the records, the flush before each checkpoint counts and emits them, FLUSH_CHUNK at a time;
COUNT_FLUSH_FAIL=n makes the n-th flush raise (once) after its first chunk. A record whose value starts with `huge` also
stores HUGE_BYTES under `huge:<key>`: a changelog record over the broker's default max.message.bytes.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from typing import Iterator, Mapping, Sequence

from hubconf.settings import Settings
from runtime.api import Out, Record, Stage, Store
from runtime.loop import StageRunner
from runtime.state import StoreLocked

POISON = b"poison"
HUGE = b"huge"
HUGE_BYTES = 1_100_000


@dataclass
class Counting:
    output: str
    slow_s: float = 0.0

    def __call__(self, records: Sequence[Record], stores: Mapping[str, Store]) -> list[Out]:
        counts = stores["counts"]
        out = []
        for record in records:
            if record.value == POISON:
                raise ValueError("a poison record")
            assert record.key is not None and record.value is not None
            time.sleep(self.slow_s)
            count = int(counts.get(record.key) or b"0") + 1
            counts.put(record.key, str(count).encode())
            if record.value.startswith(HUGE):
                counts.put(b"huge:" + record.key, b"x" * HUGE_BYTES)
            out.append(Out(self.output, record.key, record.value + b":" + str(count).encode()))
        return out


FLUSH_CHUNK = 7


@dataclass
class Deferring:
    """The same counting, deferred to the checkpoint: `take` keeps the records per partition, `flush` counts them."""

    counting: Counting
    fail_at: int = 0  # the flush call that raises (1-based; 0: none)
    flushes: int = 0
    kept: dict[int, list[Record]] = field(default_factory=dict)

    def take(self, records: Sequence[Record], stores: Mapping[str, Store]) -> list[Out]:
        self.kept.setdefault(records[0].partition, []).extend(records)
        return []

    def flush(self, partition: int, stores: Mapping[str, Store]) -> Iterator[list[Out]]:
        self.flushes += 1
        records = self.kept.pop(partition, [])
        for start in range(0, len(records), FLUSH_CHUNK):
            yield self.counting(records[start : start + FLUSH_CHUNK], stores)
            if self.flushes == self.fail_at:
                print(f"flush {self.flushes} raises", flush=True)
                raise RuntimeError("a flush that fails")

    def discard(self, partition: int) -> None:
        self.kept.pop(partition, None)


def stage(settings: Settings, input_topic: str, output_topic: str) -> Stage:
    group = f"{settings.namespace}.count"
    counting = Counting(output_topic, float(os.environ.get("COUNT_SLOW_S", "0")))
    changelogs = {"counts": f"{group}-counts-changelog"}
    if os.environ.get("COUNT_DEFER") == "1":
        deferring = Deferring(counting, int(os.environ.get("COUNT_FLUSH_FAIL", "0")))
        return Stage("count", group, (input_topic,), deferring.take, changelogs, None, deferring.flush, deferring.discard)
    return Stage(name="count", group=group, inputs=(input_topic,), handler=counting, changelogs=changelogs)


async def main() -> int:
    settings = Settings.from_env()
    runner = StageRunner(stage(settings, os.environ["COUNT_INPUT"], os.environ["COUNT_OUTPUT"]), settings)
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, runner.stop)

    async def announce() -> None:
        await runner.active.wait()
        print("active", flush=True)

    announcer = asyncio.create_task(announce())
    try:
        await runner.run()
    except StoreLocked as error:
        print(error, file=sys.stderr, flush=True)
        return 2
    finally:
        announcer.cancel()
        print(f"counters {runner.counters}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
