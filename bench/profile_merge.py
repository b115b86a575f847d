"""Where the worker's CPU goes per event, without Kafka: the body of `merge_batch` (worker/app.py) over the
bench workload, with a dict standing in for the RocksDB table.

    python -m bench.profile_merge [--shipments N --events-per-shipment K --order interleaved|grouped]

Pass 1 (no profiler) times each stage with perf_counter and gives the events/s of the pure path. Pass 2 runs
the same workload from an empty table under pyinstrument and prints the flat profile (self time) and the top of
the call tree. Not included: Kafka I/O, faust's stream/event machinery, RocksDB reads/writes and the changelog.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Callable, ParamSpec, TypeVar

from pyinstrument import Profiler
from pyinstrument.frame import Frame

from bench.workload import AUTHORITY, DEFAULT_EVENTS_PER_SHIPMENT, DEFAULT_SHIPMENTS, ORDERS, TEMPLATE, Workload, generate
from schemas.events import HubEvent
from streams.codec import Rejection, decode_event, decode_state, encode_state, encode_status
from hubconf.settings import Settings
from streams.merge import ShipmentState, absorb, project

BATCH_MAX = Settings.from_env().batch_max  # what the worker reads
P = ParamSpec("P")
R = TypeVar("R")
STAGES = ("decode_event", "decode_state", "absorb", "project", "encode_state", "encode_status")


class Clock:
    """Accumulates perf_counter time per stage around each call."""

    def __init__(self) -> None:
        self.spent: dict[str, float] = defaultdict(float)

    def time(self, stage: str, function: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        start = time.perf_counter()
        result = function(*args, **kwargs)
        self.spent[stage] += time.perf_counter() - start
        return result


def _call(stage: str, function: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    return function(*args, **kwargs)


def merge_all(workload: Workload, clock: Clock | None = None) -> dict[str, int]:
    """Mirror of merge_batch over consecutive batches of BATCH_MAX messages (publish order); returns counters.

    Publish-order batches match what the worker does on this workload: `mmhub worker` emits one version per event
    for 1,000+ interleaved shipments, as this does (see "versions" in bench.pipeline's output)."""
    run = clock.time if clock is not None else _call
    table: dict[bytes, bytes] = {}
    counters = {"applied": 0, "duplicates": 0, "versions": 0, "status_bytes": 0, "state_bytes": 0}
    messages = list(zip(workload.keys, workload.lines))
    for start in range(0, len(messages), BATCH_MAX):
        accepted: dict[str, list[HubEvent]] = defaultdict(list)
        for key, value in messages[start : start + BATCH_MAX]:
            decoded = run("decode_event", decode_event, value)
            if isinstance(decoded, Rejection) or decoded.shipment_id is None:
                raise SystemExit(f"the workload holds an invalid event: {decoded}")
            if key != decoded.shipment_id.encode():
                raise SystemExit("the workload holds a wrongly keyed event")
            accepted[decoded.shipment_id].append(decoded)
        for shipment_id, items in accepted.items():
            table_key = shipment_id.encode()
            stored = table.get(table_key)
            before = run("decode_state", decode_state, stored) if stored is not None else ShipmentState(shipment_id)
            state, new_copies = run("absorb", absorb, before, items)
            record = run("project", project, state, AUTHORITY)
            counters["applied"] += len(new_copies)
            counters["duplicates"] += len(items) - len(new_copies)
            if state is before:
                continue
            table[table_key] = run("encode_state", encode_state, state)
            status = run("encode_status", encode_status, record, new_copies)
            counters["versions"] += 1
            counters["status_bytes"] += len(status)
            counters["state_bytes"] += len(table[table_key])
    return counters


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
    parser.add_argument("--interval", type=float, default=0.0005, help="pyinstrument sampling interval (s)")
    parser.add_argument("--flat", type=int, default=25, help="lines of the flat profile to print")
    parser.add_argument("--html", help="also write pyinstrument's HTML report here")
    args = parser.parse_args(argv)

    workload = generate(args.shipments, args.events_per_shipment, args.order, template=args.template)
    print(f"[profile] workload: {workload.describe()}; batches of {BATCH_MAX} as in merge_batch", flush=True)

    gc.collect()
    clock = Clock()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    counters = merge_all(workload, clock)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    staged = sum(clock.spent.values())
    print(
        f"[profile] pure path: {workload.events} events in {wall:.2f} s wall ({cpu:.2f} s CPU) = "
        f"{workload.events / wall:,.0f} events/s wall, {workload.events / cpu:,.0f} events per CPU-second "
        f"(one thread; wall > CPU means other processes took the core); {counters['versions']} versions emitted, "
        f"avg status {counters['status_bytes'] / max(counters['versions'], 1) / 1024:.1f} KiB, "
        f"avg state {counters['state_bytes'] / max(counters['versions'], 1) / 1024:.1f} KiB"
    )
    print("[profile] time per stage (perf_counter around each call):")
    for stage in STAGES:
        spent = clock.spent[stage]
        print(
            f"    {stage:<14} {spent:7.2f} s  {100 * spent / wall:5.1f}%  {1e6 * spent / workload.events:7.1f} us/event"
        )
    print(f"    {'(loop, other)':<14} {wall - staged:7.2f} s  {100 * (wall - staged) / wall:5.1f}%")

    gc.collect()
    profiler = Profiler(interval=args.interval)
    profiler.start()
    merge_all(workload)
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
