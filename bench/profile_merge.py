"""Where the worker's CPU goes per event, without Kafka: the worker's own merge stage (worker.stages.MergeHandler,
which calls streams.step.merge_step) over the bench workload, with memory stores standing in for RocksDB.

    python -m bench.profile_merge [--shipments N --events-per-shipment K --order interleaved|grouped] [--cold]
                                  [--references] [--worker-gc]

Pass 1 (no profiler) gives the events/s of the pure path and the garbage collector's part of it. Pass 2 runs the
same workload from empty stores under pyinstrument, with the collector off (a collection would be charged to the
frame whose allocation set it off), and prints the time per stage (each stage function's total time), the flat
profile (self time) and the top of the call tree. Not included: Kafka I/O, the consume loop, RocksDB reads/writes and the changelog.

`--references` drives bench.pipeline's reference-only mode instead: the same events, signed by their sources'
demo keys, on the canonical raw topic, through the worker's three handlers (ConnectHandler -> ResolveHandler ->
MergeHandler) as worker.app wires them, each output fed to the stage that reads its topic (`chain_all`). Pass 1
also prints each stage's CPU per event and the messages per event each topic gets (each is one Kafka send and one
consume in the worker).
"""

from __future__ import annotations

import argparse
import gc
import logging
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Callable

import orjson

from pyinstrument import Profiler
from pyinstrument.frame import Frame

from bench.workload import (
    AUTHORITY,
    DEFAULT_EVENTS_PER_SHIPMENT,
    DEFAULT_SHIPMENTS,
    KEYS_DIR,
    ORDERS,
    TEMPLATE,
    Workload,
    generate,
    reference_only,
    reference_only_finals,
)
from connectors.carriers import kafka_signature_headers, load_signing_key
from hubconf.settings import EXACTLY_ONCE, Settings
from hubconf.topics import Topics
from runtime.api import MemoryStore, Record, Stage, Store
from runtime.metrics import CollectorWatch
from streams.codec import encode_record, read_state
from streams.horizon import Horizon
from streams.merge import project
from worker.app import GC_THRESHOLDS, worker_stages
from worker.stages import DEADLINES, SHIPMENTS, Counters, DeadLetters, MergeHandler, WarmStates

SETTINGS = Settings.from_env()
BATCH_MAX = SETTINGS.batch_max  # what the worker reads
TOPICS = Topics("profile")  # the namespace chain() gives the worker's stages too
# The stage functions whose total time pass 2 reports, in the order the merge calls them.
STAGES = (
    "verify_kafka_headers",
    "route",
    "resolve",
    "decode_book",
    "encode_book",
    "parked_summary",
    "request_messages",
    "register_messages",
    "take_in",
    "decode_event",
    "decode_stored",
    "absorb_copies",
    "project",
    "settlement_messages",
    "claim_messages",
    "registered",
    "changed",
    "encode_state",
    "encode_head",
    "encode_entry",
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

    Each batch is taken in and flushed as one checkpoint (one version per shipment per batch): at the default
    BATCH_MAX about 2 events per version over 1,000 interleaved shipments. The worker under bench.pipeline's backlog
    coalesces more (~12 events per version, "versions" in its output); MMHUB_BATCH_MAX sets the shape here (1: a
    version per event, as in bench.latency's steady phase; 6000: ~5 events per version)."""
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
    if counters.dead_lettered != counters.refused or counters.forwarded:  # the record's refusals are part of it
        raise SystemExit(f"the workload holds events the merge does not take: {dict(counters.by_reason)}")
    return {
        "applied": counters.applied,
        "duplicates": counters.duplicates,
        "versions": counters.versions_emitted,
        "status_bytes": status_bytes,
        "state_bytes": shipments.written,
    }


def signed_records(workload: Workload) -> list[Record]:
    """bench.pipeline's reference-only events as the connector stage consumes them: each signed by its source's demo
    key on the canonical raw topic, the sources' streams interleaved (each carrier's messages are on a partition of
    its own, which the worker reads side by side)."""
    topic = TOPICS.raw("canonical")
    by_source: dict[str, list[bytes]] = defaultdict(list)
    for source, body in reference_only(workload):
        by_source[source].append(body)
    keys = {source: load_signing_key(sorted(KEYS_DIR.glob(f"{source}.*.json"))[-1]) for source in by_source}
    received = datetime.now(timezone.utc)
    records: list[Record] = []
    for position in range(max(len(bodies) for bodies in by_source.values())):
        for source in sorted(by_source):
            if position < len(by_source[source]):
                key, body = keys[source], by_source[source][position]
                headers = tuple(kafka_signature_headers(body, key, "canonical", received))
                ms = int(received.timestamp() * 1000)
                records.append(Record(topic, 0, len(records), key.carrier.encode(), body, headers, ms))
    return records


@dataclass
class Chain:
    """The worker's three stages over memory stores, each output fed to the stage that reads its topic."""

    counters: Counters
    stages: dict[str, tuple[Stage, dict[str, Store]]]
    inputs: dict[str, str]  # topic -> the stage that reads it
    cpu_s: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    sent: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # messages per topic


def chain(warm: bool = True) -> Chain:
    """The worker's three stages as worker.app builds them (worker_stages: the demo registry and parties of
    SETTINGS), in namespace "profile", over memory stores. Exactly-once's handlers: no re-send on a replay."""
    settings = replace(SETTINGS, namespace="profile", warm_states=SETTINGS.warm_states if warm else 0, guarantee=EXACTLY_ONCE)
    counters = Counters()
    stages = worker_stages(settings, counters)
    return Chain(
        counters,
        {stage.name: (stage, {name: MemoryStore() for name in stage.changelogs}) for stage in stages},
        {topic: stage.name for stage in stages for topic in stage.inputs},
    )


def chain_all(records: list[Record], warm: bool = True) -> Chain:
    """Connect -> resolve -> merge over `records` (signed_records): in rounds, each stage takes up to BATCH_MAX of
    what waits for it (as the worker's three stage runners share its event loop) until nothing waits. Every
    output becomes a record of the topic it is sent to; the rest are counted."""
    run = chain(warm)
    waiting: dict[str, list[Record]] = {name: [] for name in run.stages}
    waiting["connect"] = list(records)
    offsets: dict[str, int] = defaultdict(int)
    received_ms = records[0].timestamp_ms if records else 0
    clock = time.process_time
    while any(waiting.values()):
        for name, (stage, stores) in run.stages.items():
            batch, waiting[name] = waiting[name][:BATCH_MAX], waiting[name][BATCH_MAX:]
            if not batch:
                continue
            started = clock()
            outs = stage.checkpoint_batch(batch, stores)
            run.cpu_s[name] += clock() - started
            for out in outs:
                run.sent[out.topic] += 1
                reader = run.inputs.get(out.topic)
                if reader is not None:
                    offset = offsets[out.topic]
                    offsets[out.topic] += 1
                    waiting[reader].append(Record(out.topic, 0, offset, out.key, out.value, out.headers, received_ms))
    if run.counters.dead_lettered != run.counters.refused:  # the record's own refusals (not_entitled) are part of it
        raise SystemExit(f"the reference-only workload was dead-lettered: {dict(run.counters.by_reason)}")
    return run


def report_chain(run: Chain, workload: Workload) -> None:
    """Each stage's CPU and each topic's messages per event, and the final records against the offline fold."""
    events = workload.events
    for name, spent in run.cpu_s.items():
        print(f"[profile]   stage {name:<8} {1e6 * spent / events:7.1f} us CPU per event")
    for topic, count in sorted(run.sent.items()):
        print(f"[profile]   to {topic:<32} {count:7,} messages, {count / events:.2f} per event")
    _, expected = reference_only_finals(reference_only(workload))
    shipments = run.stages["merge"][1][SHIPMENTS]
    equal = 0
    for key, record in expected.items():
        state = read_state(shipments.get, key.decode())
        equal += state is not None and orjson.loads(encode_record(project(state, AUTHORITY))) == record
    print(f"[profile]   {equal}/{len(expected)} final records equal the offline fold")
    if equal != len(expected):
        raise SystemExit("the chain does not reproduce the offline fold")


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
    parser.add_argument(
        "--references", action="store_true", help="bench.pipeline's reference-only mode: connect -> resolve -> merge"
    )
    parser.add_argument(
        "--worker-gc",
        action="store_true",
        help="the worker's garbage collector settings (gc.freeze and worker.app.GC_THRESHOLDS) instead of CPython's",
    )
    args = parser.parse_args(argv)
    logging.getLogger("mmhub.worker").setLevel(logging.ERROR)  # the record's refusals are dead-lettered loudly
    if args.worker_gc:  # as worker.app.run_worker does: the collector then rarely walks the warm states
        gc.freeze()
        gc.set_threshold(*GC_THRESHOLDS)

    workload = generate(args.shipments, args.events_per_shipment, args.order, template=args.template)
    cache = "no warm cache" if args.cold else "warm cache"
    if args.references:
        passes: Callable[[], object] = partial(chain_all, signed_records(workload), warm=not args.cold)
        through = "connect -> resolve -> merge (reference-only, signed)"
    else:
        passes = partial(merge_all, workload, warm=not args.cold)
        through = "the merge stage"
    print(f"[profile] workload: {workload.describe()}; batches of {BATCH_MAX} through {through}, {cache}", flush=True)

    gc.collect()
    collections = CollectorWatch()  # the worker's own account (runtime.metrics), a fresh one for this pass
    gc.callbacks.append(collections)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    result = passes()
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    gc.callbacks.remove(collections)
    print(
        f"[profile] pure path: {workload.events} events in {wall:.2f} s wall ({cpu:.2f} s CPU) = "
        f"{workload.events / wall:,.0f} events/s wall, {workload.events / cpu:,.0f} events per CPU-second "
        f"(one thread; wall > CPU means other processes took the core); {1e6 * cpu / workload.events:.0f} us CPU per event"
    )
    print(
        f"[profile] of which the garbage collector: {1e6 * sum(collections.seconds) / workload.events:.0f} us per event "
        f"(its pauses; the pass has one thread) in {sum(collections.runs)} collections (generations 0/1/2: "
        f"{'/'.join(map(str, collections.runs))}; {'the worker' if args.worker_gc else 'CPython'}'s settings); "
        f"longest pause {' / '.join(f'{1000 * s:.1f}' for s in collections.longest)} ms"
    )
    if isinstance(result, Chain):
        report_chain(result, workload)
    else:
        assert isinstance(result, dict)
        print(
            f"[profile] {result['versions']} versions emitted, "
            f"avg status {result['status_bytes'] / max(result['versions'], 1) / 1024:.1f} KiB, "
            f"avg state {result['state_bytes'] / max(result['versions'], 1) / 1024:.1f} KiB"
        )

    gc.collect()
    profiler = Profiler(interval=args.interval)
    # The collector off while sampling: a collection runs inside whatever allocation set it off, and the profile
    # would charge its walk of every tracked object to that frame (custody's handover_into showed 7-12 % self time
    # so). Its own cost is the line above.
    gc.disable()
    profiler.start()
    passes()
    profiler.stop()
    gc.enable()
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
        if not spent:
            continue
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
