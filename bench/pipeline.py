"""End-to-end throughput of the merge pipeline against a raw consume->produce passthrough, same broker, same bytes.

    python -m bench.pipeline [--shipments N --events-per-shipment K --repeat R --order interleaved|grouped]

Per repetition r (namespace `bench-<stamp>-<pid>-r<r>`, so the worker always starts from an empty group and table):

  setup     create the hub topics (connectors.kafka.ensure_topics) plus `<ns>.bench.passthrough`, and publish the
            workload once to `<ns>.hub.events` (connectors.kafka.publish: keyed by shipment id, acks=all).
  baseline  in this process, an aiokafka consumer (own group, from earliest) reads `<ns>.hub.events` and produces
            every message unchanged (same key and value) to `<ns>.bench.passthrough` with the producer settings
            the faust worker uses (acks=all, linger 0, 256 KiB batches). Window: first message consumed -> every
            message produced and acknowledged. Client start-up and the group join are before the window.
  pipeline  a `mmhub worker` subprocess (MMHUB_NAMESPACE=<ns>, its own MMHUB_DATA_DIR, default RocksDB store)
            consumes the same topic. This process reads `<ns>.hub.shipment.status` and tracks the latest version
            per shipment. Window: the worker's merge stage saying it holds its partitions (the time of its log's
            "merge: partitions [...] active" line, read as it grows), or the worker's first output if earlier ->
            the moment every shipment's final version (its number of distinct events, from the offline
            streams.merge.fold) has been read back from the status topic. The start-up before it (imports, group
            joins, producers, restore) is reported apart. After the window the final records are compared with
            the offline fold.

  refs      (with --modes ...,references, the default) the same events as a carrier mostly sends them: each
            shipment's booking keeps its shipment id, every other event names only the shipment's container;
            each is signed by its source's demo key (examples/keys) and published, before the window, to
            `<ns>-refs.carrier.canonical.raw` of a namespace of its own. A fresh worker connects, resolves and
            merges them; window (from the connect stage's "active") and checks as for pipeline (the offline fold
            resolves them first). Its ratio is
            against the same repetition's baseline.
  refs-split (with --split-connect) the refs workload again, in a namespace of its own, with the connect stage in
            a worker process of its own (MMHUB_WORKER_STAGES=connect) beside one that resolves and merges
            (MMHUB_WORKER_STAGES=resolve,merge); the worker CPU is both processes' together.

This process's own data (the workload, the offline fold's records) is frozen out of the collector before the
measurements (--bench-gc frozen, the default), so the passthrough that runs here does not walk it.

Repetitions alternate the order (odd: baseline first, even: pipeline first) so slow drift hits both sides. CPU
per process comes from /proc/<pid>/stat (utime+stime) sampled at the window's edges; `other` is everything else
on the machine (/proc/stat), i.e. noise from processes that are not part of the measurement. `worker CPU per
event` (worker CPU seconds / events) is the figure least moved by that noise. The summary also names the code
measured (git HEAD, uncommitted paths, a hash of the sources at start and end: the hub must not change mid-run).

A pipeline measurement fails if the worker exits, if the status topic gets nothing new for --stall seconds, or
after --timeout; its final records must equal the offline fold (a mismatch is reported and the exit status is 1).
Cleanup: the worker is stopped and every topic of the run deleted, always; the temp dir (worker logs, RocksDB
data) is removed unless the run failed or --keep was given. --profile-worker runs the worker under pyinstrument
and prints where its main thread spends time (slower worker: its events/s are not comparable).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import hashlib
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from bench.workload import (
    DEFAULT_EVENTS_PER_SHIPMENT,
    DEFAULT_SHIPMENTS,
    ORDERS,
    TEMPLATE,
    Workload,
    KEYS_DIR,
    generate,
    offline_finals,
    reference_only,
    reference_only_finals,
)
from connectors.carriers import load_signing_key
from connectors.kafka import ensure_topics, publish, publish_raw
from hubconf.settings import PRODUCER_BATCH_BYTES, Settings

PASSTHROUGH = "bench.passthrough"
PROGRESS_EVERY_S = 1.0
_TICK = os.sysconf("SC_CLK_TCK")
_VERSION = re.compile(rb'"version":(\d+)')


def new_run(namespace_kind: str, temp_label: str) -> tuple[str, Path]:
    """A benchmark run's namespace prefix, `<kind>-<utc stamp>-<pid>` (its topics, groups and schema start with
    it), and a temp dir of its own."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d%H%M%S")
    return f"{namespace_kind}-{stamp}-{os.getpid()}", Path(tempfile.mkdtemp(prefix=f"mmhub-{temp_label}-"))


def say(text: str) -> None:
    print(f"[bench] {text}", flush=True)


# --- CPU accounting from /proc ----------------------------------------------------------------------------------


def process_cpu_s(pid: int | None) -> float | None:
    """utime + stime of a process (all its threads), in seconds; None if it is gone."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / _TICK  # fields 14 and 15 of stat(5), counted after the comm


def system_busy_s() -> float:
    """CPU seconds spent busy by the whole machine, summed over cores (user+nice+system+irq+softirq+steal)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = values
    return (user + nice + system + irq + softirq + steal) / _TICK


def find_broker_pid() -> int | None:
    """The Kafka JVM: the pid file infra/dev.sh writes, else any java process whose command line names Kafka."""
    home = Path(os.environ.get("MMHUB_HOME", Path.home() / ".cache" / "mmhub"))
    candidates: list[int] = []
    try:
        candidates.append(int((home / "run" / "kafka.pid").read_text().split()[0]))
    except (OSError, ValueError, IndexError):
        pass
    candidates += [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]
    for pid in candidates:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"java" in cmdline and b"kafka" in cmdline.lower():
            return pid
    return None


@dataclass(frozen=True)
class CpuSample:
    at: float
    broker: float | None
    sut: float | None  # the system under test: the worker process, or this process for the passthrough
    bench: float | None
    system: float


def sample_cpu(broker: int | None, sut: int | None, *more: int) -> CpuSample:
    """`more`: other processes of the system under test (a worker running only the connect stage), added to it."""
    parts = [process_cpu_s(pid) for pid in (sut, *more)]
    total = None if any(part is None for part in parts) else sum(part for part in parts if part is not None)
    return CpuSample(time.monotonic(), process_cpu_s(broker), total, process_cpu_s(os.getpid()), system_busy_s())


@dataclass(frozen=True)
class CpuShare:
    """Cores used on average over a window (1.0 = one core busy all the time)."""

    broker: float | None
    sut: float | None
    observer: float | None
    other: float


def cpu_between(a: CpuSample, b: CpuSample, sut_is_bench: bool) -> CpuShare:
    wall = max(b.at - a.at, 1e-9)

    def rate(x: float | None, y: float | None) -> float | None:
        return None if x is None or y is None else (y - x) / wall

    broker = rate(a.broker, b.broker)
    sut = rate(a.sut, b.sut)
    observer = None if sut_is_bench else rate(a.bench, b.bench)
    counted = sum(v for v in (broker, sut, observer) if v is not None)
    # /proc counts in clock ticks (1/100 s): over a 0.5 s window a share is only good to ~0.05 core.
    return CpuShare(broker, sut, observer, max((rate(a.system, b.system) or 0.0) - counted, 0.0))


# --- measurements -----------------------------------------------------------------------------------------------


@dataclass
class Measurement:
    kind: str
    repetition: int
    events: int
    seconds: float
    cpu: CpuShare
    startup_s: float | None = None  # pipeline only: worker spawn -> first status message
    versions: int | None = None  # pipeline only: status messages the worker emitted
    checked: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.events / self.seconds


class Progress:
    def __init__(self, label: str, total: int, unit: str = "events") -> None:
        self.label, self.total, self.unit = label, total, unit
        self.started = time.monotonic()
        self.next_at = self.started + PROGRESS_EVERY_S

    def maybe(self, done: int, extra: str = "") -> None:
        now = time.monotonic()
        if now >= self.next_at:
            self.next_at = now + PROGRESS_EVERY_S
            self.show(done, extra)

    def show(self, done: int, extra: str = "") -> None:
        percent = 100 * done / self.total if self.total else 100.0
        say(
            f"{self.label}: {done:,}/{self.total:,} {self.unit} ({percent:5.1f}%) "
            f"{time.monotonic() - self.started:6.1f} s{extra}"
        )


async def run_baseline(
    settings: Settings, workload: Workload, repetition: int, broker: int | None, timeout: float
) -> Measurement:
    source, sink = settings.topics.events, settings.topics.name(PASSTHROUGH)
    consumer = AIOKafkaConsumer(
        source,
        **settings.kafka_client(),
        group_id=f"{settings.namespace}.bench-baseline",
        client_id="bench-baseline",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    # The producer settings the faust worker runs with (faust defaults + producer_acks=-1 in worker/app.py).
    producer = AIOKafkaProducer(
        **settings.kafka_client(), client_id="bench-baseline", acks="all", linger_ms=0, max_batch_size=PRODUCER_BATCH_BYTES
    )
    await producer.start()
    await consumer.start()
    total = workload.events
    acked = 0
    consumed = 0

    def on_ack(_: asyncio.Future[Any]) -> None:
        nonlocal acked
        acked += 1

    futures: list[asyncio.Future[Any]] = []
    progress = Progress(f"r{repetition} baseline", total)
    start: float | None = None
    cpu0: CpuSample | None = None
    deadline = time.monotonic() + timeout
    try:
        while consumed < total:
            batches = await consumer.getmany(timeout_ms=200)
            for messages in batches.values():
                for message in messages:
                    if start is None:
                        start, cpu0 = time.perf_counter(), sample_cpu(broker, os.getpid())
                    future = await producer.send(sink, value=message.value, key=message.key)
                    future.add_done_callback(on_ack)
                    futures.append(future)
                    consumed += 1
            progress.maybe(acked, f"  (consumed {consumed:,})")
            if time.monotonic() > deadline:
                raise TimeoutError(f"baseline consumed only {consumed}/{total} messages in {timeout:.0f} s")
        pending = set(futures)
        while pending:
            _, pending = await asyncio.wait(pending, timeout=0.2)
            progress.maybe(acked, "  (all consumed, waiting for acks)")
        for future in futures:
            future.result()  # raise if any send failed
        seconds = time.perf_counter() - start  # type: ignore[operator]
        cpu1 = sample_cpu(broker, os.getpid())
    finally:
        await consumer.stop()
        await producer.stop()
    progress.show(acked)
    assert cpu0 is not None
    return Measurement("baseline", repetition, total, seconds, cpu_between(cpu0, cpu1, sut_is_bench=True))


def first_difference(got: Any, want: Any, path: str = "record") -> str:
    """Where two JSON documents first differ, as a dotted path."""
    if isinstance(got, dict) and isinstance(want, dict):
        for name in sorted(set(got) | set(want)):
            if name not in got or name not in want:
                return f"{path}.{name} ({'missing in the worker' if name not in got else 'extra in the worker'})"
            if got[name] != want[name]:
                return first_difference(got[name], want[name], f"{path}.{name}")
    if isinstance(got, list) and isinstance(want, list) and len(got) == len(want):
        for index, (a, b) in enumerate(zip(got, want)):
            if a != b:
                return first_difference(a, b, f"{path}[{index}]")
    return path


SOURCES = ("streams", "schemas", "mmhub", "connectors", "hubconf", "runtime", "worker")  # what the worker runs


def code_state() -> tuple[str, str]:
    """(a hash of the hub's Python sources, a git description): to tell which code a run measured."""
    root = Path(__file__).resolve().parents[1]
    digest = hashlib.blake2b(digest_size=6)
    for path in sorted(p for name in SOURCES for p in (root / name).rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes())
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--", *SOURCES],
            capture_output=True, text=True, check=True,
        ).stdout.splitlines()
        described = f"git {head}" + (f" + {len(dirty)} uncommitted path(s) under {'/'.join(SOURCES)}" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        described = "not a git checkout"
    return digest.hexdigest(), described


def _worker_command(profile: Path | None = None) -> list[str]:
    if profile is not None:  # pyinstrument saves the session when faust exits on SIGTERM
        return [sys.executable, "-m", "pyinstrument", "-i", "0.001", "-r", "pyisession", "-o", str(profile)] + [
            "-m", "mmhub.cli", "worker"
        ]
    script = Path(sys.executable).parent / "mmhub"
    return [str(script), "worker"] if script.exists() else [sys.executable, "-m", "mmhub.cli", "worker"]


def _version(value: bytes) -> int:
    found = _VERSION.search(value, 0, 400)  # `record` is the first key and `version` its second field
    if found is not None:
        return int(found.group(1))
    return int(orjson.loads(value)["record"]["version"])


async def stop_process(process: subprocess.Popen[bytes], grace_s: float = 30.0) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while process.poll() is None and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    if process.poll() is None:
        say(f"worker pid {process.pid} ignored SIGTERM for {grace_s:.0f} s; killing it")
        process.kill()
        process.wait()


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def start_worker(
    settings: Settings,
    log: Path,
    loglevel: str,
    profile: Path | None = None,
    extra_env: dict[str, str] | None = None,
    append: bool = False,
) -> subprocess.Popen[bytes]:
    """A `mmhub worker` subprocess for `settings` (namespace, data dir, store, partitions); stdout+stderr to `log`
    (appended to with `append`, as when the same worker restarts)."""
    env = {
        **os.environ,
        "MMHUB_KAFKA": settings.kafka,
        "MMHUB_NAMESPACE": settings.namespace,
        "MMHUB_DATA_DIR": str(settings.data_dir),
        "MMHUB_STORE": settings.store,
        "MMHUB_PARTITIONS": str(settings.partitions),
        "PYTHONUNBUFFERED": "1",
        **(extra_env or {}),
    }
    with log.open("ab" if append else "wb") as handle:
        return subprocess.Popen(
            _worker_command(profile) + ["--loglevel", loglevel], env=env, stdout=handle, stderr=subprocess.STDOUT
        )


async def run_pipeline(
    settings: Settings,
    workload: Workload,
    finals: dict[bytes, int],
    expected: dict[bytes, Any],
    repetition: int,
    broker: int | None,
    timeout: float,
    workers: list[subprocess.Popen[bytes]],
    loglevel: str,
    profile: Path | None = None,
    stall: float = 60.0,
    kind: str = "pipeline",
    split_connect: bool = False,
) -> Measurement:
    """One pipeline measurement: a worker started on the published workload, timed from the moment the stage the
    workload waits for takes its partitions (or the worker's first output, if earlier) to the last shipment's final
    version (module docstring). `split_connect`: the connect stage in a worker process of its own
    (MMHUB_WORKER_STAGES=connect) beside one that resolves and merges; the worker CPU is then both processes'."""
    status = settings.topics.status
    consumer = AIOKafkaConsumer(
        **settings.kafka_client(),
        client_id="bench-observer",
        enable_auto_commit=False,
        group_id=None,
        isolation_level="read_committed",  # the worker writes in transactions: only what it committed counts
    )
    await consumer.start()
    partitions = [TopicPartition(status, p) for p in range(settings.partitions)]
    consumer.assign(partitions)
    await consumer.seek_to_beginning(*partitions)

    log = settings.data_dir.parent / f"worker-r{repetition}.log"
    spawned_at = time.time()
    helpers: list[subprocess.Popen[bytes]] = []
    if split_connect:
        connect_settings = replace(settings, data_dir=settings.data_dir.parent / f"{settings.data_dir.name}-connect")
        connect_log = settings.data_dir.parent / f"worker-r{repetition}-connect.log"
        helpers.append(start_worker(connect_settings, connect_log, loglevel, None, {"MMHUB_WORKER_STAGES": "connect"}))
        workers.append(helpers[0])
    stages = {"MMHUB_WORKER_STAGES": "resolve,merge"} if split_connect else None
    worker = start_worker(settings, log, loglevel, profile, stages)
    workers.append(worker)
    helper_pids = [helper.pid for helper in helpers]
    # (wall time, CPU sample, each worker process's CPU s), every poll from the spawn: the window's start is known
    # only at the end (the first output is read back then), and its CPU mark is the last sample before it
    marks: list[tuple[float, CpuSample, list[float | None]]] = []
    # the stage the workload's records wait for: the merge's (hub.events), or connect's (the raw topic); the others
    # start at about the same time with nothing to do
    first_stage = "connect" if kind.startswith("refs") else "merge"
    # when that stage says it holds its partitions (runtime.loop: restored, taking in what waits), by the log line's
    # own timestamp
    watch = LogWatch(connect_log if split_connect else log, {"active": active_marker(first_stage)})

    shipments = len(finals)
    versions: dict[bytes, int] = {}
    final_values: dict[bytes, bytes] = {}
    applied = 0
    emitted = 0
    start: float | None = None
    cpu0: CpuSample | None = None
    notes: list[str] = []
    progress = Progress(f"r{repetition} {kind}", workload.events)
    deadline = time.monotonic() + timeout
    last_progress = time.monotonic()
    try:
        while len(final_values) < shipments:
            marks.append(
                (time.time(), sample_cpu(broker, worker.pid, *helper_pids),
                 [process_cpu_s(pid) for pid in (worker.pid, *helper_pids)])
            )
            watch.poll()
            batches = await consumer.getmany(timeout_ms=100)
            if batches:
                last_progress = time.monotonic()
            for messages in batches.values():
                for message in messages:
                    if start is None:
                        created = message.timestamp / 1000 if message.timestamp_type == 0 else None
                        start = created if created is not None and created >= spawned_at else time.time()
                        if created is None or created < spawned_at:
                            notes.append("window starts at the first status message's arrival (no usable CreateTime)")
                    emitted += 1
                    version = _version(message.value)
                    key = message.key
                    before = versions.get(key, 0)
                    if version > before:
                        versions[key] = version
                        applied += version - before
                        if version >= finals[key] and key not in final_values:
                            final_values[key] = message.value
            if start is None:
                progress.maybe(0, "  (worker starting, not timed)")
            else:
                progress.maybe(applied, f"  {len(final_values):,}/{shipments:,} shipments final")
            if worker.poll() is not None:
                raise RuntimeError(f"the worker exited with {worker.returncode}; its log ends:\n{_tail(log)}")
            for helper in helpers:
                if helper.poll() is not None:
                    raise RuntimeError(f"the connect worker exited with {helper.returncode}; see {connect_log}")
            stalled = time.monotonic() - last_progress > stall
            if time.monotonic() > deadline or stalled:
                behind = [(k.decode(), versions.get(k, 0), v) for k, v in finals.items() if k not in final_values]
                why = f"no status message for {stall:.0f} s" if stalled else f"not done after {timeout:.0f} s"
                raise TimeoutError(
                    f"pipeline: {why}; reached {applied}/{workload.events} events; {len(behind)} shipments short of "
                    f"their final version, e.g. (id, seen, final): {behind[:3]}; worker log {log} ends:\n{_tail(log)}"
                )
        end = time.time()
        cpu1 = sample_cpu(broker, worker.pid, *helper_pids)
        cpu_parts1 = [process_cpu_s(pid) for pid in (worker.pid, *helper_pids)]
        assert start is not None
        first = await first_output(consumer, settings, spawned_at)
        watch.poll()
        active_at = watch.seen.get("active")
        earliest = min((t for t in (first, active_at) if t is not None), default=start)
        if earliest < start:
            notes.append(
                f"window starts {start - earliest:.2f} s before the first version, at the worker's "
                + (f"{first_stage} stage taking its partitions" if earliest == active_at else "first output")
            )
            start = earliest
    finally:
        await consumer.stop()
    earlier = [mark for mark in marks if mark[0] <= start] or marks[:1]
    _, cpu0, cpu_parts0 = earlier[-1]
    progress.show(applied, f"  {len(final_values):,}/{shipments:,} shipments final")
    if helpers and start is not None:
        cores = [
            (b - a) / max(end - start, 1e-9) if a is not None and b is not None else float("nan")
            for a, b in zip(cpu_parts0, cpu_parts1)
        ]
        notes.append(f"worker = resolve+merge {cores[0]:.2f} cores + connect (own process) {cores[1]:.2f} cores")
    await stop_process(worker)
    for helper in helpers:
        await stop_process(helper)
    checked = f"{len(final_values)}/{shipments} final records equal the offline fold"
    mismatched = [key for key, value in final_values.items() if orjson.loads(value)["record"] != expected[key]]
    if mismatched:
        key = mismatched[0]
        where = first_difference(orjson.loads(final_values[key])["record"], expected[key])
        checked = (
            f"MISMATCH: {len(mismatched)}/{shipments} final records differ from the offline fold "
            f"(first: {key.decode()} at {where})"
        )
    return Measurement(
        kind,
        repetition,
        workload.events,
        end - start,
        cpu_between(cpu0, cpu1, sut_is_bench=False),
        startup_s=start - spawned_at,
        versions=emitted,
        checked=checked,
        notes=notes,
    )


_LOG_TIME = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3})\]")


def parse_log_time(line: str) -> float | None:
    """The epoch seconds of a worker log line (`[2026-11-28 15:52:51,313] ...`, local time); None if it has none."""
    found = _LOG_TIME.match(line)
    if found is None:
        return None
    stamp = datetime.strptime(found.group(1), "%Y-%m-%d %H:%M:%S")  # naive: the worker logs in local time
    return stamp.timestamp() + int(found.group(2)) / 1000


def active_marker(stage: str) -> tuple[str, ...]:
    """What a worker log line says when `stage` holds its partitions (runtime.loop: "<stage>: partitions [...]
    active", once they are restored and it takes in what waits for it), as LogWatch's marker."""
    return (f"] {stage}: partitions [", "] active")


class LogWatch:
    """Reads a worker log as it grows and keeps when each milestone line first appeared (its own timestamp)."""

    def __init__(self, path: Path, markers: dict[str, tuple[str, ...]]) -> None:
        self.path = path
        self.markers = markers
        self.offset = 0
        self.partial = b""
        self.seen: dict[str, float] = {}  # milestone -> epoch seconds from the log line (arrival time if none)

    def poll(self) -> None:
        try:
            with self.path.open("rb") as handle:
                handle.seek(self.offset)
                chunk = handle.read()
        except OSError:
            return
        self.offset += len(chunk)
        lines = (self.partial + chunk).split(b"\n")
        self.partial = lines.pop()
        for raw in lines:
            line = raw.decode(errors="replace")
            for name, marker in self.markers.items():
                if name not in self.seen and all(part in line for part in marker):
                    self.seen[name] = parse_log_time(line) or time.time()


async def first_output(consumer: AIOKafkaConsumer, settings: Settings, spawned_at: float) -> float | None:
    """When the worker first wrote to a topic it writes (status; events and references, which the reference-only
    run's connect stage writes first): the earliest CreateTime at or after the spawn on them, in seconds. What the
    bench published itself is older than the spawn."""
    topics = (settings.topics.status, settings.topics.events, settings.topics.references)
    since = int(spawned_at * 1000)
    found = await consumer.offsets_for_times(
        {TopicPartition(topic, p): since for topic in topics for p in range(settings.partitions)}
    )
    stamps = [entry.timestamp for entry in found.values() if entry is not None]
    return min(stamps) / 1000 if stamps else None


# --- setup, cleanup, report -------------------------------------------------------------------------------------


async def prepare(settings: Settings, workload: Workload, signed: list[tuple[str, bytes]] | None = None) -> float:
    """Create the run's topics and publish the workload (or, given `signed`, those (source, body) pairs, each
    signed by its source's demo key, to the canonical raw topic); returns the publish rate (events/s)."""
    await ensure_topics(settings)
    names = [*settings.topics.all(), settings.topics.name(PASSTHROUGH)]
    admin = AIOKafkaAdminClient(**settings.kafka_client(), client_id="bench-admin")
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(names[-1], num_partitions=settings.partitions, replication_factor=1)]
        )
        # Publishing the instant a topic exists draws NotLeaderForPartition retries: wait for every leader.
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            described = await admin.describe_topics(names)
            if all(
                t["error_code"] == 0
                and len(t["partitions"]) == settings.partitions
                and all(p["leader"] >= 0 for p in t["partitions"])
                for t in described
            ):
                break
            await asyncio.sleep(0.2)
        await asyncio.sleep(0.5)
    finally:
        await admin.close()
    started = time.perf_counter()
    if signed is None:
        sent = await publish(settings, workload.lines)
    else:
        sent = 0
        for source in sorted({source for source, _ in signed}):
            key = load_signing_key(sorted(KEYS_DIR.glob(f"{source}.*.json"))[-1])
            sent += len(await publish_raw(settings, "canonical", [body for s, body in signed if s == source], key))
    return sent / (time.perf_counter() - started)


async def delete_run_topics(settings: Settings, prefix: str) -> list[str]:
    admin = AIOKafkaAdminClient(**settings.kafka_client(client_id="bench-admin"))
    await admin.start()
    try:
        doomed = sorted(t for t in await admin.list_topics() if t.startswith(prefix))
        if doomed:
            await admin.delete_topics(doomed)
        return doomed
    finally:
        await admin.close()


async def clean_up_run(
    processes: list[subprocess.Popen[bytes]], settings: Settings, prefix: str, temp: Path, keep: bool, failed: bool
) -> None:
    """Stop the run's workers, delete its topics (unless --keep) and its temp dir (unless --keep or it failed:
    the worker logs are the evidence). Reports what it could not clean and goes on."""
    for process in processes:
        await stop_process(process)
    try:
        if keep:
            raise RuntimeError("--keep: topics left in place")
        deleted = await delete_run_topics(settings, prefix)
        say(f"cleanup: deleted {len(deleted)} topics {prefix}*")
    except Exception as error:  # noqa: BLE001 - report, keep cleaning
        say(f"cleanup: did not delete the topics {prefix}*: {error}")
    if keep or failed:
        say(f"kept {temp} (worker logs, RocksDB data, profiles){'' if keep else ': the run failed'}")
    else:
        shutil.rmtree(temp, ignore_errors=True)


def _median_spread(values: list[float], fmt: Callable[[float], str], percent: bool = True) -> str:
    if not values:
        return "n/a"
    median = statistics.median(values)
    if len(values) == 1:
        return fmt(median)
    spread = f", spread {(max(values) - min(values)) / median * 100:.0f}%" if percent and median else ""
    return f"{fmt(median)}  [{fmt(min(values))} .. {fmt(max(values))}{spread}]"


def _cores(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def _cpu_row(name: str, measurements: list[Measurement], pick: Callable[[CpuShare], float | None]) -> tuple[str, str]:
    values = [v for v in (pick(m.cpu) for m in measurements) if v is not None]
    return name, _median_spread(values, lambda v: f"{v:.2f}", percent=False) + (" cores" if values else "")


def _full_core(pipelines: list[Measurement]) -> str:
    """What the worker's CPU cost per event would allow with a core of its own: a noise-robust ceiling."""
    costs = [m.cpu.sut * m.seconds / m.events for m in pipelines if m.cpu.sut]
    return f" -> at most {1 / statistics.median(costs):,.0f} events/s with a whole core" if costs else ""


def report(
    workload: Workload,
    results: list[Measurement],
    broker: int | None,
    loads: tuple[str, str],
    code: tuple[tuple[str, str], tuple[str, str]],
    bench_gc: str = "frozen",
) -> None:
    baselines = [m for m in results if m.kind == "baseline"]
    pipelines = [m for m in results if m.kind == "pipeline"]
    ratios = [p.rate / b.rate for p in pipelines for b in baselines if b.repetition == p.repetition]
    refs = [m for m in results if m.kind == "refs"]
    refs_ratios = [p.rate / b.rate for p in refs for b in baselines if b.repetition == p.repetition]
    split = [m for m in results if m.kind == "refs-split"]
    split_ratios = [p.rate / b.rate for p in split for b in baselines if b.repetition == p.repetition]
    print()
    print(f"per measurement (CPU = cores busy on average over the window, of {os.cpu_count()}):")
    header = (
        f"{'rep':>3} {'kind':<8} {'events/s':>9} {'window s':>8} {'versions':>8} "
        f"{'broker':>6} {'sut':>5} {'observer':>8} {'other':>5}  notes"
    )
    print(header)
    print("-" * len(header))
    for m in sorted(results, key=lambda m: (m.repetition, m.kind)):
        notes = [f"start-up {m.startup_s:.1f} s (untimed)", m.checked] if m.startup_s is not None else []
        versions = f"{m.versions:,}" if m.versions is not None else "-"
        print(
            f"{m.repetition:>3} {m.kind:<8} {m.rate:>9,.0f} {m.seconds:>8.2f} {versions:>8} {_cores(m.cpu.broker):>6} "
            f"{_cores(m.cpu.sut):>5} {_cores(m.cpu.observer):>8} {m.cpu.other:>5.2f}  {'; '.join(notes + m.notes)}"
        )
    print(
        "  sut: the passthrough (this process) for baseline, the `mmhub worker` process for pipeline (both worker"
        " processes for refs-split)"
    )
    print("  observer: this process reading the status topic; other: the rest of the machine (noise)")
    print("  versions: status messages the worker emitted (one per shipment per batch that changed it)")
    print()
    rows = [
        ("workload", workload.describe()),
        (
            "machine",
            f"{os.cpu_count()} cores; broker (java pid {broker}), worker and this process on one host; "
            f"load avg 1 min: {loads[0]} at start, {loads[1]} at end",
        ),
        (
            "code",
            f"{code[0][1]}; sources {code[0][0]}"
            + ("" if code[0][0] == code[1][0] else f" -> {code[1][0]}: CHANGED DURING THE RUN, results mix versions"),
        ),
        ("bench process's collector", f"{bench_gc} (--bench-gc; the passthrough runs in this process)"),
        ("repetitions", f"{len(pipelines)}; figures are median [min .. max, spread = (max-min)/median]"),
        ("baseline events/s", _median_spread([m.rate for m in baselines], lambda v: f"{v:,.0f}")),
        ("pipeline events/s", _median_spread([m.rate for m in pipelines], lambda v: f"{v:,.0f}")),
        ("ratio pipeline/baseline", _median_spread(ratios, lambda v: f"{v:.3f}") + " (paired per repetition)"),
        *(
            [
                ("refs events/s", _median_spread([m.rate for m in refs], lambda v: f"{v:,.0f}")),
                ("ratio refs/baseline", _median_spread(refs_ratios, lambda v: f"{v:.3f}") + " (connect+resolve+merge)"),
                (
                    "refs worker CPU per event",
                    _median_spread(
                        [m.cpu.sut * m.seconds / m.events * 1e3 for m in refs if m.cpu.sut], lambda v: f"{v:.2f} ms"
                    ),
                ),
            ]
            if refs
            else []
        ),
        *(
            [
                ("refs-split events/s", _median_spread([m.rate for m in split], lambda v: f"{v:,.0f}")),
                (
                    "ratio refs-split/baseline",
                    _median_spread(split_ratios, lambda v: f"{v:.3f}") + " (connect in a process of its own)",
                ),
                (
                    "refs-split CPU per event",
                    _median_spread(
                        [m.cpu.sut * m.seconds / m.events * 1e3 for m in split if m.cpu.sut], lambda v: f"{v:.2f} ms"
                    )
                    + " (both worker processes)",
                ),
            ]
            if split
            else []
        ),
        _cpu_row("pipeline CPU: broker", pipelines, lambda c: c.broker),
        _cpu_row("pipeline CPU: worker", pipelines, lambda c: c.sut),
        _cpu_row("pipeline CPU: observer", pipelines, lambda c: c.observer),
        _cpu_row("pipeline CPU: other", pipelines, lambda c: c.other),
        _cpu_row("baseline CPU: broker", baselines, lambda c: c.broker),
        _cpu_row("baseline CPU: passthrough", baselines, lambda c: c.sut),
        _cpu_row("baseline CPU: other", baselines, lambda c: c.other),
        (
            "worker CPU per event",
            _median_spread(
                [m.cpu.sut * m.seconds / m.events * 1e3 for m in pipelines if m.cpu.sut],
                lambda v: f"{v:.2f} ms",
            )
            + _full_core(pipelines),
        ),
        (
            "passthrough CPU per event",
            _median_spread(
                [m.cpu.sut * m.seconds / m.events * 1e6 for m in baselines if m.cpu.sut], lambda v: f"{v:.0f} us"
            ),
        ),
        (
            "pipeline events/version",
            _median_spread([m.events / m.versions for m in pipelines if m.versions], lambda v: f"{v:.2f}"),
        ),
        (
            "worker start-up (untimed)",
            _median_spread([m.startup_s for m in pipelines if m.startup_s], lambda v: f"{v:.1f} s"),
        ),
    ]
    width = max(len(name) for name, _ in rows)
    print("summary")
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")


def report_worker_profile(sessions: list[Path], top: int) -> None:
    """Flat view of the worker's main thread under pyinstrument (--profile-worker)."""
    from pyinstrument.session import Session

    from bench.profile_merge import flat_profile

    for path in sessions:
        if not path.exists():
            say(f"no worker profile at {path} (did the worker exit cleanly?)")
            continue
        session = Session.load(str(path))
        root = session.root_frame()
        if root is None:
            continue
        own, inclusive = flat_profile(root)
        print()
        print(
            f"worker profile {path.name}: main thread, {session.duration:.1f} s wall, {session.cpu_time:.1f} s CPU "
            "(wall-clock sampling: time the process waited for a core counts where it stood; faust's consumer "
            "thread is not sampled)"
        )
        print(f"  top {top} by self time:")
        for where, spent in sorted(own.items(), key=lambda kv: -kv[1])[:top]:
            print(f"    {100 * spent / root.time:5.1f}%  {where}")
        print(f"  top {top} by total time (below the event loop):")
        shown = 0
        for where, spent in sorted(inclusive.items(), key=lambda kv: -kv[1]):
            if spent / root.time > 0.9:
                continue  # the entry point, runpy, the event loop: everything is below them
            print(f"    {100 * spent / root.time:5.1f}%  {where}")
            shown += 1
            if shown == top:
                break


async def run(args: argparse.Namespace) -> int:
    base = Settings.from_env()
    base = replace(base, partitions=args.partitions or base.partitions)
    prefix, temp = new_run("bench", "bench")
    broker = find_broker_pid()
    workers: list[subprocess.Popen[bytes]] = []
    results: list[Measurement] = []
    profiles: list[Path] = []
    run_started = time.monotonic()
    loads = (Path("/proc/loadavg").read_text().split()[0],) * 2
    code_at_start = code_state()
    keep_temp = False
    try:
        workload = generate(args.shipments, args.events_per_shipment, args.order, args.seed, args.template)
        say(f"workload: {workload.describe()}")
        finals, expected = offline_finals(workload)
        signed = reference_only(workload) if "references" in args.modes else None
        refs_finals = reference_only_finals(signed) if signed is not None else None
        say(
            f"offline fold: {len(finals)} shipments, final versions {min(finals.values())}..{max(finals.values())}; "
            f"broker {base.kafka} (java pid {broker or 'not found: no broker CPU figures'}); temp dir {temp}"
        )
        if args.bench_gc == "frozen":
            # The passthrough runs in this process, beside the bench's own data: the offline fold's records (about
            # 150,000 objects at 1,000 shipments, twice that with the reference-only run's). Frozen out of the
            # collector's reach, as the worker freezes its start-up heap, they are not walked by the collections the
            # passthrough's own allocations set off; its collector is otherwise CPython's default, untuned
            # (bench/README, "What bench.pipeline measured, corrected", flaw 2: 1.06-1.47x the passthrough's events/s).
            gc.collect()
            tracked = len(gc.get_objects())
            gc.freeze()
            say(f"this process's {tracked:,} objects frozen out of the collector (--bench-gc frozen)")
        if args.profile_worker:
            say("--profile-worker: the worker runs under pyinstrument, so its events/s are NOT representative")
        for repetition in range(1, args.repeat + 1):
            settings = replace(base, namespace=f"{prefix}-r{repetition}", data_dir=temp / f"r{repetition}")
            rate = await prepare(settings, workload)
            say(f"r{repetition}: published {workload.events:,} events to {settings.topics.events} ({rate:,.0f}/s)")
            kinds = ["baseline", "pipeline"] if repetition % 2 else ["pipeline", "baseline"]
            if signed is not None:
                kinds.append("refs")
            for kind in kinds:
                await asyncio.sleep(args.pause)  # let the broker settle between measurements
                if kind == "baseline":
                    result = await run_baseline(settings, workload, repetition, broker, args.timeout)
                elif kind == "refs":
                    assert signed is not None and refs_finals is not None
                    refs = replace(settings, namespace=f"{settings.namespace}-refs", data_dir=temp / f"r{repetition}-refs")
                    rate = await prepare(refs, workload, signed)
                    say(f"r{repetition}: published {len(signed):,} reference-only events, signed, to "
                        f"{refs.topics.raw('canonical')} ({rate:,.0f}/s)")
                    result = await run_pipeline(
                        refs, workload, *refs_finals, repetition, broker, args.timeout, workers,
                        args.worker_loglevel, None, args.stall, kind="refs",
                    )
                    if args.split_connect:
                        results.append(result)
                        say(f"r{repetition} refs: {result.rate:,.0f} events/s ({result.seconds:.2f} s) {result.checked}")
                        split = replace(refs, namespace=f"{refs.namespace}-split", data_dir=temp / f"r{repetition}-split")
                        await prepare(split, workload, signed)
                        await asyncio.sleep(args.pause)
                        result = await run_pipeline(
                            split, workload, *refs_finals, repetition, broker, args.timeout, workers,
                            args.worker_loglevel, None, args.stall, kind="refs-split", split_connect=True,
                        )
                else:
                    profile = temp / f"worker-r{repetition}.pyisession" if args.profile_worker else None
                    result = await run_pipeline(
                        settings, workload, finals, expected, repetition, broker, args.timeout, workers,
                        args.worker_loglevel, profile, args.stall,
                    )
                    if profile is not None:
                        profiles.append(profile)
                results.append(result)
                say(f"r{repetition} {kind}: {result.rate:,.0f} events/s ({result.seconds:.2f} s) {result.checked}")
        loads = (loads[0], Path("/proc/loadavg").read_text().split()[0])
        report(workload, results, broker, loads, (code_at_start, code_state()), args.bench_gc)
        report_worker_profile(profiles, args.profile_top)
        say(f"total run time {time.monotonic() - run_started:.0f} s")
        failed = [m for m in results if m.checked.startswith("MISMATCH")]
        if failed:
            say(
                f"{len(failed)} pipeline run(s) did not reproduce the offline fold (see above); if the hub's code "
                "changed during the run, the worker and this process folded with different versions"
            )
        return 1 if failed else 0
    except Exception:
        keep_temp = True  # the worker logs are the evidence
        raise
    finally:
        await clean_up_run(workers, base, f"{prefix}-", temp, args.keep, keep_temp)


def add_workload_arguments(parser: argparse.ArgumentParser) -> None:
    """The options that shape bench/workload.py's workload, the same in every benchmark."""
    parser.add_argument("--shipments", type=int, default=DEFAULT_SHIPMENTS)
    parser.add_argument("--events-per-shipment", type=int, default=DEFAULT_EVENTS_PER_SHIPMENT)
    parser.add_argument("--order", choices=ORDERS, default="interleaved")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--template", type=Path, default=TEMPLATE, help="JSON-lines journey to build shipments from")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.pipeline", description=__doc__.split("\n\n")[0])
    add_workload_arguments(parser)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--modes",
        type=lambda text: set(text.split(",")),
        default={"direct", "references"},
        help="'direct' is always run; 'references' adds a run of the same events reference-only and signed on the "
        "canonical raw topic (connect -> resolve -> merge), with its own ratio; default direct,references",
    )
    parser.add_argument(
        "--split-connect",
        action="store_true",
        help="with 'references': also run the reference-only workload with the connect stage in a worker process of "
        "its own (MMHUB_WORKER_STAGES=connect) beside one that resolves and merges, reported as 'refs-split'",
    )
    parser.add_argument("--partitions", type=int, help="partitions of every run topic (default: MMHUB_PARTITIONS or 8)")
    parser.add_argument(
        "--bench-gc",
        choices=("frozen", "default"),
        default="frozen",
        help="frozen (the default): this process's data is frozen out of the collector before the measurements, so "
        "the passthrough, which runs here, does not walk it; default: left as it is (how runs before 2026-12-04 "
        "20:45 UTC measured the passthrough)",
    )
    parser.add_argument("--timeout", type=float, default=300.0, help="give up on one measurement after this (s)")
    parser.add_argument(
        "--stall", type=float, default=60.0, help="give up when the status topic gets nothing new for this long (s)"
    )
    parser.add_argument("--pause", type=float, default=1.0, help="idle seconds before each measurement")
    parser.add_argument("--worker-loglevel", default="info")
    parser.add_argument(
        "--keep", action="store_true", help="keep the run's topics and temp dir (worker logs, RocksDB data)"
    )
    parser.add_argument(
        "--profile-worker",
        action="store_true",
        help="run the worker under pyinstrument and print its flat profile (slows the worker: figures not comparable)",
    )
    parser.add_argument("--profile-top", type=int, default=20, help="lines per list with --profile-worker")
    args = parser.parse_args(argv)
    try:
        return asyncio.run(run(args))
    except KeyboardInterrupt:
        say("interrupted (cleanup done)")
        return 130


if __name__ == "__main__":
    sys.exit(main())
