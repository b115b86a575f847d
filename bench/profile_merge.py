"""Where the worker's CPU goes per event, without Kafka: the worker's own merge stage (worker.stages.MergeHandler,
which calls streams.step.merge_step) over the bench workload, with memory stores standing in for RocksDB.

    python -m bench.profile_merge [--shipments N --events-per-shipment K --order interleaved|grouped] [--cold]

Pass 1 (no profiler) gives the events/s of the pure path. Pass 2 runs the same workload from empty stores under
pyinstrument and prints the time per stage (each stage function's total time), the flat profile (self time) and the
top of the call tree. Not included: Kafka I/O, the consume loop, RocksDB reads/writes and the changelog.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from pyinstrument import Profiler
from pyinstrument.frame import Frame

from bench.workload import AUTHORITY, DEFAULT_EVENTS_PER_SHIPMENT, DEFAULT_SHIPMENTS, ORDERS, TEMPLATE, Workload, generate
from hubconf.settings import Settings
from hubconf.topics import Topics
from runtime.api import MemoryStore, Record
from streams.horizon import Horizon
from worker.stages import DEADLINES, SHIPMENTS, Counters, DeadLetters, MergeHandler, WarmStates

SETTINGS = Settings.from_env()
BATCH_MAX = SETTINGS.batch_max  # what the worker reads
TOPICS = Topics("profile")
# The stage functions whose total time pass 2 reports, in the order the merge calls them.
STAGES = (
    "decode_event",
    "decode_state",
    "absorb_copies",
    "project",
    "settlement_messages",
    "claim_messages",
    "registrations",
    "encode_state",
    "encode_status",
)


@dataclass
class WrittenStore(MemoryStore):
    """A MemoryStore that counts the bytes written to it."""

    written: int = 0

    def put(self, key: bytes, value: bytes) -> None:
        self.written += len(value)
        super().put(key, value)


def merge_all(workload: Workload, warm: bool = True) -> dict[str, int]:
    """The worker's merge stage over consecutive batches of BATCH_MAX messages (publish order, one partition);
    returns its counters. No replays: the re-send setting (the exactly-once worker's, off) changes nothing here.

    Publish-order batches match what the worker does on this workload: `mmhub worker` emits one version per event
    for 1,000+ interleaved shipments, as this does (see "versions" in bench.pipeline's output)."""
    counters = Counters()
    cache = WarmStates(SETTINGS.warm_states if warm else 0)
    merge = MergeHandler(TOPICS, AUTHORITY, Horizon.of(SETTINGS), DeadLetters(TOPICS.dlq, counters), counters, False, cache)
    shipments = WrittenStore()
    stores = {SHIPMENTS: shipments, DEADLINES: MemoryStore()}
    received_ms = int(time.time() * 1000)  # the broker's timestamp: the workload's events are all in the past
    records = [
        Record(TOPICS.events, 0, offset, key, value, (), received_ms)
        for offset, (key, value) in enumerate(zip(workload.keys, workload.lines))
    ]
    status_bytes = 0
    for start in range(0, len(records), BATCH_MAX):
        for out in merge(records[start : start + BATCH_MAX], stores):
            if out.topic == TOPICS.status:
                status_bytes += len(out.value or b"")
    if counters.dead_lettered or counters.forwarded:
        raise SystemExit(f"the workload holds events the merge does not take: {dict(counters.by_reason)}")
    return {
        "applied": counters.applied,
        "duplicates": counters.duplicates,
        "versions": counters.versions_emitted,
        "status_bytes": status_bytes,
        "state_bytes": shipments.written,
    }


def _where(frame: Frame) -> str:
    return f"{frame.function}  {frame.file_path_short}:{frame.line_no}"


def flat_profile(root: Frame) -> tuple[dict[str, float], dict[str, float]]:
    """Self and inclusive seconds per function over the whole call tree (recursion counted once)."""
    own: dict[str, float] = defaultdict(float)
    inclusive: dict[str, float] = defaultdict(float)

    def visit(frame: Frame, ancestors: frozenset[str]) -> None:
        if frame.is_synthetic:
            return
        where = _where(frame)
        own[where] += frame.total_self_time
        if where not in ancestors:
            inclusive[where] += frame.time
        for child in frame.children:
            visit(child, ancestors | {where})

    visit(root, frozenset())
    return own, inclusive


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile_merge", description=__doc__.split("\n\n")[0])
    parser.add_argument("--shipments", type=int, default=DEFAULT_SHIPMENTS)
    parser.add_argument("--events-per-shipment", type=int, default=DEFAULT_EVENTS_PER_SHIPMENT)
    parser.add_argument("--order", choices=ORDERS, default="interleaved")
    parser.add_argument("--template", type=Path, default=TEMPLATE, help="JSON-lines journey to build shipments from")
    parser.add_argument("--cold", action="store_true", help="no warm cache: every version decodes its stored state")
    parser.add_argument("--interval", type=float, default=0.0005, help="pyinstrument sampling interval (s)")
    parser.add_argument("--flat", type=int, default=25, help="lines of the flat profile to print")
    parser.add_argument("--html", help="also write pyinstrument's HTML report here")
    args = parser.parse_args(argv)

    workload = generate(args.shipments, args.events_per_shipment, args.order, template=args.template)
    cache = "no warm cache" if args.cold else "warm cache"
    print(f"[profile] workload: {workload.describe()}; batches of {BATCH_MAX} through the merge stage, {cache}", flush=True)

    gc.collect()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    counters = merge_all(workload, warm=not args.cold)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    print(
        f"[profile] pure path: {workload.events} events in {wall:.2f} s wall ({cpu:.2f} s CPU) = "
        f"{workload.events / wall:,.0f} events/s wall, {workload.events / cpu:,.0f} events per CPU-second "
        f"(one thread; wall > CPU means other processes took the core); {counters['versions']} versions emitted, "
        f"avg status {counters['status_bytes'] / max(counters['versions'], 1) / 1024:.1f} KiB, "
        f"avg state {counters['state_bytes'] / max(counters['versions'], 1) / 1024:.1f} KiB"
    )

    gc.collect()
    profiler = Profiler(interval=args.interval)
    profiler.start()
    merge_all(workload, warm=not args.cold)
    profiler.stop()
    session = profiler.last_session
    assert session is not None
    root = session.root_frame()
    assert root is not None
    own, inclusive = flat_profile(root)
    total = root.time
    print(
        f"[profile] pyinstrument: {session.duration:.1f} s sampled every {args.interval * 1000:g} ms "
        f"({session.sample_count} samples; the profiler's overhead inflates this run)"
    )
    by_function: dict[str, float] = defaultdict(float)
    for where, spent in inclusive.items():
        by_function[where.split()[0]] += spent
    print(f"[profile] time per stage (total time of each stage function, {workload.events} events):")
    for stage in STAGES:
        spent = by_function[stage]
        print(f"    {stage:<20} {100 * spent / total:5.1f}%  {1e6 * spent / workload.events:7.1f} us/event")
    print(f"[profile] top {args.flat} functions by self time (time spent in the function itself):")
    for rank, (where, spent) in enumerate(sorted(own.items(), key=lambda kv: -kv[1])[: args.flat], start=1):
        print(f"  {rank:3d}. {100 * spent / total:5.1f}%  {where}")
    print(f"[profile] top {args.flat} functions by total time (including what they call; bench/ frames left out):")
    hub = [(where, spent) for where, spent in inclusive.items() if "bench/" not in where]
    for rank, (where, spent) in enumerate(sorted(hub, key=lambda kv: -kv[1])[: args.flat], start=1):
        print(f"  {rank:3d}. {100 * spent / total:5.1f}%  {where}")
    print("[profile] pyinstrument call tree:")
    print(profiler.output_text(unicode=False, color=False, time="percent_of_total"))
    if args.html:
        with open(args.html, "w") as handle:
            handle.write(profiler.output_html())
        print(f"[profile] HTML report: {args.html}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
