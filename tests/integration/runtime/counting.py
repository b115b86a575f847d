"""A toy stage for the runtime's tests, run as a process (`python -m tests.integration.runtime.counting`).

It counts the records per key in the store "counts" and, per record, emits `<value>:<count>` to the output topic:
a duplicate or a lost checkpoint shows as an input value emitted twice, or as a count that repeats or skips.
A record whose value is `poison` makes the handler raise (a hub bug): the runtime dead-letters its batch.
Environment: the usual MMHUB_* settings, COUNT_INPUT / COUNT_OUTPUT (full topic names), and COUNT_SLOW_S (a pause
per record, so a test can catch the stage mid-stream).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from dataclasses import dataclass
from typing import Mapping, Sequence

from hubconf.settings import Settings
from runtime.api import Out, Record, Stage, Store
from runtime.loop import StageRunner
from runtime.state import StoreLocked

POISON = b"poison"


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
            out.append(Out(self.output, record.key, record.value + b":" + str(count).encode()))
        return out


def stage(settings: Settings, input_topic: str, output_topic: str) -> Stage:
    group = f"{settings.namespace}.count"
    return Stage(
        name="count",
        group=group,
        inputs=(input_topic,),
        handler=Counting(output_topic, float(os.environ.get("COUNT_SLOW_S", "0"))),
        changelogs={"counts": f"{group}-counts-changelog"},
    )


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
