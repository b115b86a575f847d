"""Scale-out: one against two `mmhub worker`s on the same load, and a worker joining and leaving mid-stream.

    python -m bench.scaleout [--shipments N --events-per-shipment K --partitions P --scenarios one,two,...]

Every scenario gets its own namespace `bench-<stamp>-<pid>-<scenario>` (topics, consumer groups, changelogs), the
same workload (bench.workload) and the same broker. `one` and `two` find the whole workload on the topic when the
workers start (bench.pipeline.prepare); in the join scenarios it is published at --rate events/s while the workers
run (the runtime drains the backlog in seconds, before a joiner would have started):

  one         one worker from the start;
  two         two workers from the start (same MMHUB_NAMESPACE, their own MMHUB_DATA_DIR each);
  join-term   one worker; a second joins when 1/3 of the events are applied; the first leaves at 2/3 (SIGTERM);
  join-kill   the same, but the first worker is killed (SIGKILL): its partitions wait for the group's session
              timeout (MMHUB_SESSION_TIMEOUT_S, 10 s by default) before the survivor gets them.

This process (the observer) reads `<ns>.hub.shipment.status` from the beginning and keeps, per status message,
its shipment, version, partition, CreateTime (stamped by the worker's producer) and arrival time. The window runs
as in bench.pipeline: from the first status message's CreateTime until every shipment's final version (its
number of distinct events, from the offline streams.merge.fold) has been read. After the window the observer
keeps reading until the topic is quiet for --drain seconds, so late re-sends are counted too.

Per scenario it reports:
  - events/s over the window, and the CPU (cores, from /proc) of the broker, every worker, the observer, the
    Postgres processes (no sink runs here: that is the database idling) and the rest of the machine;
  - how the partitions of `<ns>.hub.events` were split: from each worker's log (aiokafka's "Setting newly assigned
    partitions ... for group <ns>.mmhub.merge") and from the merge group's description
    (AIOKafkaAdminClient.describe_consumer_groups);
  - stalls: the longest gap between consecutive status messages (by CreateTime, and by arrival here), overall and
    per partition while that partition still had shipments short of their final version;
  - rebalances: when each worker was started or signalled, and when the merge stage began ("(Re-)joining group")
    and ended (the runtime's "merge: partitions [...] active": restored and taking records in) each rebalance,
    relative to the window's start;
  - no loss: every shipment's last status message has its final version and a record equal to the offline fold;
  - no double effect: no version above the final one, and no (shipment, version) sent twice (the observer reads
    read_committed, as every consumer downstream of the worker's transactions: an aborted transaction's messages
    are not sent); messages whose version is below one already seen for the shipment ("backwards", what would make a
    consumer that does not skip older versions go back); and the workers' own applied/duplicates counters (from
    their periodic report line, every --report-interval s, so a killed or stopped worker's last seconds are missing).

Events/s of the rebalance scenarios include the second worker's start-up and the hand-overs: they measure the
disruption, not steady throughput. Cleanup always stops the workers and deletes the run's topics; the temp dir
(worker logs, RocksDB data) is removed unless the run failed or --keep was given.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Iterable, Sequence

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment
from aiokafka.partitioner import murmur2

from bench.pipeline import (
    new_run,
    add_workload_arguments,
    _tail,
    _version,
    clean_up_run,
    code_state,
    find_broker_pid,
    first_difference,
    prepare,
    process_cpu_s,
    Progress,
    say,
    start_worker,
    stop_process,
    system_busy_s,
)
from bench.workload import Workload, generate, offline_finals
from connectors.kafka import shipment_key
from hubconf.settings import Settings

# --- pure helpers (tested in tests/unit/bench/test_scaleout_helpers.py) ---------------------------------------


@dataclass(frozen=True)
class Seen:
    """One status message as the observer read it."""

    key: bytes
    version: int
    partition: int
    created: float  # CreateTime, wall-clock seconds (the worker's producer stamps it)
    arrived: float  # wall-clock seconds when this process read it


@dataclass(frozen=True)
class VersionAudit:
    messages: int
    distinct: int  # distinct (shipment, version) pairs
    repeated: dict[tuple[bytes, int], int]  # (shipment, version) -> times sent, for those sent more than once
    backwards: list[tuple[bytes, int, int]]  # (shipment, version, highest version seen before it)
    above_final: list[tuple[bytes, int, int]]  # (shipment, version, final version): an event applied twice

    @property
    def extra_messages(self) -> int:
        return self.messages - self.distinct


def audit_versions(seen: Iterable[Seen], finals: dict[bytes, int]) -> VersionAudit:
    """Double effects in the order the observer read the messages (per shipment that is the partition's order)."""
    counts: Counter[tuple[bytes, int]] = Counter()
    highest: dict[bytes, int] = {}
    backwards: list[tuple[bytes, int, int]] = []
    above: list[tuple[bytes, int, int]] = []
    messages = 0
    for s in seen:
        messages += 1
        counts[(s.key, s.version)] += 1
        before = highest.get(s.key, 0)
        if s.version < before:
            backwards.append((s.key, s.version, before))
        else:
            highest[s.key] = s.version
        final = finals.get(s.key)
        if final is not None and s.version > final:
            above.append((s.key, s.version, final))
    return VersionAudit(messages, len(counts), {k: n for k, n in counts.items() if n > 1}, backwards, above)


def longest_gap(times: Iterable[float], start: float, end: float) -> tuple[float, float]:
    """(longest gap, when it began) between consecutive instants in [start, end], counting start and end."""
    points = sorted({start, end, *(t for t in times if start <= t <= end)})
    best, at = 0.0, start
    for a, b in zip(points, points[1:]):
        if b - a > best:
            best, at = b - a, a
    return best, at


def partition_of(key: bytes, partitions: int) -> int:
    """The partition the default (murmur2) partitioner of aiokafka and faust gives a key."""
    hashed: int = murmur2(key)
    return (hashed & 0x7FFFFFFF) % partitions


def partition_done_at(seen: Iterable[Seen], finals: dict[bytes, int], partitions: int) -> dict[int, float]:
    """Per partition, the CreateTime at which its last shipment first reached its final version."""
    waiting: Counter[int] = Counter(partition_of(key, partitions) for key in finals)
    done: dict[int, float] = {}
    reached: set[bytes] = set()
    for s in seen:
        if s.key in reached or s.version < finals.get(s.key, 1 << 62):
            continue
        reached.add(s.key)
        p = partition_of(s.key, partitions)
        waiting[p] -= 1
        if waiting[p] == 0:
            done[p] = s.created
    return done


def partition_gaps(
    seen: Sequence[Seen], finals: dict[bytes, int], partitions: int, start: float
) -> dict[int, tuple[float, float]]:
    """Per partition: the longest gap between its status messages (CreateTime) from `start` until its last
    shipment was final, i.e. while it had work left. A partition that never finished is measured to its last
    message."""
    by_partition: dict[int, list[float]] = defaultdict(list)
    for s in seen:
        by_partition[s.partition].append(s.created)
    done = partition_done_at(seen, finals, partitions)
    gaps = {}
    for p in range(partitions):
        times = by_partition.get(p, [])
        end = done.get(p, max(times, default=start))
        gaps[p] = longest_gap(times, start, end)
    return gaps


_PARTITION_SET = re.compile(r"\{([0-9,\s\-]*)\}")


def parse_partition_set(text: str) -> set[int]:
    """A compressed partition set: '{0-3, 5, 7}' -> {0, 1, 2, 3, 5, 7}."""
    found = _PARTITION_SET.search(text)
    result: set[int] = set()
    if found is None:
        return result
    for part in found.group(1).split(","):
        part = part.strip()
        if not part:
            continue
        if "-" in part:
            low, high = part.split("-", 1)
            result.update(range(int(low), int(high) + 1))
        else:
            result.add(int(part))
    return result


@dataclass(frozen=True)
class LogMark:
    at: float  # wall clock, seconds since the epoch (the worker logs milliseconds, in local time)
    kind: str  # join | revoked | assigned | ready | signal | stopping | left
    detail: str = ""


_LOG_LINE = re.compile(r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3})\] \[\d+\] \[\w+\] (.*)$")
_TOPIC_PARTITION = re.compile(r"TopicPartition\(topic='([^']+)', partition=(\d+)\)")
_ACTIVE = re.compile(r"^(\w+): partitions \[([0-9,\s]*)\] active")


def _marks(group: str, stage: str) -> tuple[tuple[str, str], ...]:
    """(what a log line starts with, its kind): aiokafka's group milestones of the stage's consumer group, the
    runtime's activation of the stage (runtime.loop: restored, positioned, taking records in) and faust's worker."""
    return (
        (f"(Re-)joining group {group}", "join"),
        ("Revoking previously assigned partitions ", "revoked"),
        ("Setting newly assigned partitions ", "assigned"),
        (f"{stage}: partitions [", "ready"),
        ("[^Worker]: Signal received", "signal"),
        ("[^Worker]: Stopping...", "stopping"),
        ("LeaveGroup request succeeded", "left"),
    )


def _owned(message: str, topic: str) -> str:
    return ",".join(
        str(p) for p in sorted({int(n) for t, n in _TOPIC_PARTITION.findall(message) if t == topic})
    )


def parse_worker_log(text: str, events_topic: str, group: str, stage: str = "merge") -> list[LogMark]:
    """The milestones of the merge stage in a worker log: its consumer group's joins, revocations and
    assignments (aiokafka's lines, the events topic's partitions as a sorted comma-separated list), the runtime's
    'partitions [...] active' (ready, with the partitions activated), and faust's signal and stop. A LeaveGroup
    line names no group: the first of a burst (one per stage) is kept."""
    marks: list[LogMark] = []
    for line in text.splitlines():
        matched = _LOG_LINE.match(line)
        if matched is None:
            continue
        stamp, millis, message = matched.groups()
        at = datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S").timestamp() + int(millis) / 1000
        for needle, kind in _marks(group, stage):
            if not message.startswith(needle):
                continue
            detail = ""
            if kind in ("revoked", "assigned"):
                if not message.rstrip().endswith(f" for group {group}"):
                    break
                detail = _owned(message, events_topic)
            elif kind == "ready":
                active = _ACTIVE.match(message)
                if active is None:
                    break
                detail = ",".join(p.strip() for p in active.group(2).split(",") if p.strip())
            elif kind == "left" and marks and marks[-1].kind == "left" and at - marks[-1].at < 1.0:
                break
            marks.append(LogMark(at, kind, detail))
            break
    return marks


_REPORT = re.compile(r"applied=(\d+) duplicates=(\d+).*versions_emitted=(\d+)")


def last_report(text: str) -> tuple[int, int, int] | None:
    """(applied, duplicates, versions_emitted) from the worker's last periodic report line."""
    found = _REPORT.findall(text)
    if not found:
        return None
    applied, duplicates, versions = found[-1]
    return int(applied), int(duplicates), int(versions)


def compress(partitions: Iterable[int]) -> str:
    """{0, 1, 2, 5} -> '0-2,5'."""
    values = sorted(set(partitions))
    runs: list[str] = []
    i = 0
    while i < len(values):
        j = i
        while j + 1 < len(values) and values[j + 1] == values[j] + 1:
            j += 1
        runs.append(str(values[i]) if i == j else f"{values[i]}-{values[j]}")
        i = j + 1
    return ",".join(runs) or "-"


# --- CPU of a changing set of processes ------------------------------------------------------------------------


def postgres_cpu() -> dict[int, float]:
    """utime+stime of every process named `postgres` (the server and its backends)."""
    result: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() != "postgres":
                continue
        except OSError:
            continue
        cpu = process_cpu_s(int(entry.name))
        if cpu is not None:
            result[int(entry.name)] = cpu
    return result


def grown(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds a set of processes used between two samples (processes that appeared count from zero)."""
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())


@dataclass
class Snapshot:
    at: float
    broker: float | None
    workers: dict[int, float]  # worker number -> its CPU seconds so far (last value read, also once it exited)
    observer: float
    postgres: dict[int, float]
    system: float


@dataclass
class Shares:
    wall: float
    broker: float | None
    workers: dict[int, float]
    observer: float
    postgres: float
    other: float

    @property
    def workers_total(self) -> float:
        return sum(self.workers.values())


def shares_between(a: Snapshot, b: Snapshot) -> Shares:
    wall = max(b.at - a.at, 1e-9)
    broker = None if a.broker is None or b.broker is None else (b.broker - a.broker) / wall
    workers = {n: (cpu - a.workers.get(n, 0.0)) / wall for n, cpu in b.workers.items()}
    observer = (b.observer - a.observer) / wall
    postgres = grown(a.postgres, b.postgres) / wall
    counted = (broker or 0.0) + sum(workers.values()) + observer + postgres
    return Shares(wall, broker, workers, observer, postgres, max((b.system - a.system) / wall - counted, 0.0))


# --- one scenario -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    name: str
    initial: int
    join_at: float | None = None  # fraction of the events applied when a second worker starts
    leave_at: float | None = None  # fraction applied when worker 1 is stopped
    leave_signal: int = signal.SIGTERM
    text: str = ""


SCENARIOS = {
    "one": Scenario("one", 1, text="one worker"),
    "two": Scenario("two", 2, text="two workers from the start"),
    "join-term": Scenario(
        "join-term", 1, 1 / 3, 2 / 3, signal.SIGTERM, "w2 joins at 1/3, w1 leaves at 2/3 (SIGTERM)"
    ),
    "join-kill": Scenario(
        "join-kill", 1, 1 / 3, 2 / 3, signal.SIGKILL, "w2 joins at 1/3, w1 is killed at 2/3 (SIGKILL)"
    ),
}


@dataclass
class Worker:
    number: int
    process: subprocess.Popen[bytes]
    log: Path
    spawned_at: float
    signalled: tuple[float, str] | None = None
    exited_at: float | None = None
    cpu: float = 0.0


@dataclass
class Outcome:
    scenario: Scenario
    events: int
    start: float = 0.0  # window start (wall clock)
    end: float = 0.0
    startup_s: float = 0.0
    shares: Shares | None = None
    seen: list[Seen] = field(default_factory=list)
    audit: VersionAudit | None = None
    final_check: str = ""
    lost: int = 0
    mismatched: int = 0
    gap_created: tuple[float, float] = (0.0, 0.0)
    gap_arrived: tuple[float, float] = (0.0, 0.0)
    partition_gaps: dict[int, tuple[float, float]] = field(default_factory=dict)
    actions: list[tuple[float, str]] = field(default_factory=list)
    marks: dict[int, list[LogMark]] = field(default_factory=dict)
    group: str = ""
    reports: dict[int, tuple[int, int, int] | None] = field(default_factory=dict)
    drained: int = 0  # status messages read after the window (late re-sends)
    observed_until: float = 0.0  # when the observer stopped reading (the workers are stopped after it)
    leave_waited_s: float = 0.0  # how long the leave waited for the joiner to be processing
    partition_mismatch: int = 0  # status messages not on the partition murmur2 gives their key

    @property
    def seconds(self) -> float:
        return self.end - self.start

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0

    @property
    def worst_stall(self) -> float:
        """The longest silence of a partition that still had work, or of the whole topic."""
        return max([self.gap_created[0], *(g for g, _ in self.partition_gaps.values())])

    @property
    def ok(self) -> bool:
        audit = self.audit
        return (
            self.lost == 0
            and self.mismatched == 0
            and audit is not None
            and not audit.above_final
            and not audit.repeated  # exactly-once outputs: no version emitted twice
            and not audit.backwards
        )


async def describe_group(settings: Settings, group: str, events_topic: str) -> str:
    """'<client id>: partitions' per member of the consumer group, from the broker's point of view."""
    admin = AIOKafkaAdminClient(**settings.kafka_client(client_id="bench-admin"))
    await admin.start()
    try:
        responses = await admin.describe_consumer_groups([group])
    finally:
        await admin.close()
    parts: list[str] = []
    for response in responses:
        for described in response.groups:
            state, members = described[2], described[5]
            entries = []
            for member in members:
                member_id, assignment = member[0], member[4]
                owned: list[int] = []
                if assignment:
                    decoded = ConsumerProtocolMemberAssignment.decode(assignment)
                    owned = [p for topic, ps in decoded.assignment if topic == events_topic for p in ps]
                entries.append(f"{member_id[-8:]}: {compress(owned)}")
            parts.append(f"group {state}, {len(members)} member(s): " + "; ".join(entries))
    return " | ".join(parts) or "group not found"


async def publish_paced(settings: Settings, workload: Workload, rate: float) -> None:
    """The workload to `<ns>.hub.events` at `rate` events/s (in tenths of a second), as a carrier stream would."""
    producer = AIOKafkaProducer(**settings.kafka_client(), acks="all", linger_ms=5, enable_idempotence=True)
    await producer.start()
    try:
        step = max(1, round(rate / 10))
        started = time.monotonic()
        futures = []
        for first in range(0, workload.events, step):
            for line in workload.lines[first : first + step]:
                futures.append(await producer.send(settings.topics.events, value=line, key=shipment_key(line)))
            ahead = started + (first + step) / rate - time.monotonic()
            if ahead > 0:
                await asyncio.sleep(ahead)
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


def processing(marks: Sequence[LogMark]) -> bool:
    """Whether the merge stage is active on the partitions of its last assignment (some), i.e. processing them."""
    assigned = [i for i, m in enumerate(marks) if m.kind == "assigned"]
    if not assigned or not marks[assigned[-1]].detail:
        return False
    return any(m.kind == "ready" and m.detail for m in marks[assigned[-1] + 1 :])


def worker_processing(worker: Worker, settings: Settings) -> bool:
    try:
        text = worker.log.read_text(errors="replace")
    except OSError:
        return False
    return processing(parse_worker_log(text, settings.topics.events, settings.stage_group("merge")))


def track_workers(workers: list[Worker]) -> None:
    """Each live worker's CPU so far. Called before reaping: a zombie still shows its final utime+stime."""
    for w in workers:
        cpu = process_cpu_s(w.process.pid)
        if cpu is not None and w.exited_at is None:
            w.cpu = cpu


def snapshot(broker: int | None, workers: list[Worker]) -> Snapshot:
    track_workers(workers)
    return Snapshot(
        time.time(),
        process_cpu_s(broker),
        {w.number: w.cpu for w in workers},
        process_cpu_s(os.getpid()) or 0.0,
        postgres_cpu(),
        system_busy_s(),
    )


async def run_scenario(
    scenario: Scenario,
    settings: Settings,
    workload: Workload,
    finals: dict[bytes, int],
    expected: dict[bytes, Any],
    broker: int | None,
    args: argparse.Namespace,
    all_workers: list[subprocess.Popen[bytes]],
    paced: bool = False,
) -> Outcome:
    """With `paced`, the workload is published at --rate while the workers run (it is not on the topic yet)."""
    status = settings.topics.status
    temp = settings.data_dir
    consumer = AIOKafkaConsumer(
        **settings.kafka_client(),
        client_id="bench-observer",
        enable_auto_commit=False,
        group_id=None,
        isolation_level="read_committed",  # as every consumer downstream of the worker's transactions
    )
    await consumer.start()
    tps = [TopicPartition(status, p) for p in range(settings.partitions)]
    consumer.assign(tps)
    await consumer.seek_to_beginning(*tps)
    workers: list[Worker] = []
    outcome = Outcome(scenario, workload.events)
    # no metrics endpoint: two workers on one host would both want the worker's default port
    extra_env = {"MMHUB_REPORT_INTERVAL_S": str(args.report_interval), "MMHUB_METRICS_PORT": "0"}

    def spawn() -> Worker:
        number = len(workers) + 1
        worker_settings = replace(settings, data_dir=temp / f"w{number}")
        log = temp / f"worker-{number}.log"
        process = start_worker(worker_settings, log, args.worker_loglevel, extra_env=extra_env)
        all_workers.append(process)
        worker = Worker(number, process, log, time.time())
        workers.append(worker)
        outcome.actions.append((worker.spawned_at, f"w{number} started (pid {process.pid})"))
        return worker

    spawned_at = time.time()
    for _ in range(scenario.initial):
        spawn()
    publishing = asyncio.create_task(publish_paced(settings, workload, args.rate)) if paced else None

    shipments = len(finals)
    highest: dict[bytes, int] = {}
    last_value: dict[bytes, bytes] = {}
    final_count = 0
    applied = 0
    seen = outcome.seen
    first: Snapshot | None = None
    progress = Progress(f"{scenario.name}", workload.events)
    deadline = time.monotonic() + args.timeout
    last_message = time.monotonic()
    joined = left = False
    wanted_leave = 0.0
    try:
        while final_count < shipments:
            batches = await consumer.getmany(timeout_ms=100)
            now = time.time()
            if batches:
                last_message = time.monotonic()
            for messages in batches.values():
                for message in messages:
                    created = message.timestamp / 1000 if message.timestamp_type == 0 else now
                    if first is None:
                        outcome.start = created if created >= spawned_at else now
                        first = snapshot(broker, workers)
                    version = _version(message.value)
                    key = message.key
                    seen.append(Seen(key, version, message.partition, created, now))
                    last_value[key] = message.value
                    before = highest.get(key, 0)
                    if version > before:
                        highest[key] = version
                        applied += version - before
                        if before < finals[key] <= version:
                            final_count += 1
            if first is None:
                progress.maybe(0, "  (worker starting, not timed)")
            else:
                live = sum(1 for w in workers if w.exited_at is None)
                progress.maybe(applied, f"  {final_count:,}/{shipments:,} shipments final, {live} worker(s) live")
            if scenario.join_at is not None and not joined and applied >= scenario.join_at * workload.events:
                joined = True
                worker = spawn()
                say(f"{scenario.name}: {applied:,} events applied: started w{worker.number}")
            due = scenario.leave_at is not None and not left and applied >= scenario.leave_at * workload.events
            if due and not wanted_leave:
                wanted_leave = time.time()
            # Only once both are processing after the join's rebalance: else this would be a hand-over to a worker still
            # starting, or the leaver would go while it restores, with no work of its own in flight.
            if due and (scenario.join_at is None or all(worker_processing(w, settings) for w in workers)):
                left = True
                outcome.leave_waited_s = time.time() - wanted_leave
                leaving = workers[0]
                name = signal.Signals(scenario.leave_signal).name
                leaving.process.send_signal(scenario.leave_signal)
                leaving.signalled = (time.time(), name)
                outcome.actions.append((leaving.signalled[0], f"w{leaving.number} sent {name}"))
                say(f"{scenario.name}: {applied:,} events applied: sent {name} to w{leaving.number}")
            track_workers(workers)  # keeps each worker's last CPU figure before it is reaped
            for w in workers:
                if w.exited_at is None and w.process.poll() is not None:
                    w.exited_at = time.time()
                    outcome.actions.append((w.exited_at, f"w{w.number} exited ({w.process.returncode})"))
                    if w.signalled is None:
                        raise RuntimeError(
                            f"w{w.number} exited with {w.process.returncode}; its log ends:\n{_tail(w.log)}"
                        )
            if publishing is not None and publishing.done():
                publishing.result()  # raises if publishing failed
            stalled = time.monotonic() - last_message > args.stall
            if time.monotonic() > deadline or stalled:
                behind = [(k.decode(), highest.get(k, 0), v) for k, v in finals.items() if highest.get(k, 0) < v]
                why = f"no status message for {args.stall:.0f} s" if stalled else f"not done after {args.timeout:.0f} s"
                logs = "\n".join(f"w{w.number} log {w.log} ends:\n{_tail(w.log, 15)}" for w in workers)
                raise TimeoutError(
                    f"{scenario.name}: {why}; reached {applied}/{workload.events} events; {len(behind)} shipments "
                    f"short, e.g. (id, seen, final): {behind[:3]}\n{logs}"
                )
        outcome.end = time.time()
        last = snapshot(broker, workers)
        if scenario.join_at is not None and not joined:
            outcome.actions.append((outcome.end, "the load was done before 1/3: no worker joined (use more events)"))
        if scenario.leave_at is not None and not left:
            outcome.actions.append((outcome.end, "no worker left: the load was done first (use more events)"))
        assert first is not None
        outcome.shares = shares_between(first, last)
        outcome.startup_s = outcome.start - spawned_at
        progress.show(applied, f"  {final_count:,}/{shipments:,} shipments final")
        try:
            outcome.group = await describe_group(settings, settings.stage_group("merge"), settings.topics.events)
        except Exception as error:  # noqa: BLE001 - a report line, not a reason to fail
            outcome.group = f"describe_consumer_groups failed: {error!r}"
        # Late re-sends: keep reading until the topic is quiet.
        window_messages = len(seen)
        quiet_since = time.monotonic()
        while time.monotonic() - quiet_since < args.drain:
            batches = await consumer.getmany(timeout_ms=200)
            now = time.time()
            for messages in batches.values():
                for message in messages:
                    quiet_since = time.monotonic()
                    created = message.timestamp / 1000 if message.timestamp_type == 0 else now
                    seen.append(Seen(message.key, _version(message.value), message.partition, created, now))
                    last_value[message.key] = message.value
        outcome.drained = len(seen) - window_messages
        outcome.observed_until = time.time()
    finally:
        if publishing is not None and not publishing.done():
            publishing.cancel()
            await asyncio.gather(publishing, return_exceptions=True)
        await consumer.stop()
        for w in workers:
            await stop_process(w.process)
    for w in workers:
        text = w.log.read_text(errors="replace") if w.log.exists() else ""
        # the milestones while observed; the shutdown that follows (cleanup) is not part of the scenario
        outcome.marks[w.number] = [
            m for m in parse_worker_log(text, settings.topics.events, settings.stage_group("merge")) if m.at < outcome.observed_until - 0.001
        ]  # (the log truncates its timestamps to the millisecond)
        outcome.reports[w.number] = last_report(text)

    outcome.audit = audit_versions(seen, finals)
    outcome.partition_mismatch = sum(1 for s in seen if s.partition != partition_of(s.key, settings.partitions))
    window = [s for s in seen if s.created <= outcome.end]
    outcome.gap_created = longest_gap((s.created for s in window), outcome.start, outcome.end)
    outcome.gap_arrived = longest_gap((s.arrived for s in window), outcome.start, outcome.end)
    outcome.partition_gaps = partition_gaps(window, finals, settings.partitions, outcome.start)
    # No loss: the last status of every shipment (what a consumer keeps) is final and equals the offline fold.
    for key, final in finals.items():
        value = last_value.get(key)
        if value is None or _version(value) != final:
            outcome.lost += 1
            continue
        if orjson.loads(value)["record"] != expected[key]:
            outcome.mismatched += 1
            if outcome.mismatched == 1:
                where = first_difference(orjson.loads(value)["record"], expected[key])
                outcome.final_check = f" (first mismatch: {key.decode()} at {where})"
    outcome.final_check = (
        f"{shipments - outcome.lost - outcome.mismatched}/{shipments} last records final and equal to the offline fold"
        + (f"; {outcome.lost} not at their final version" if outcome.lost else "")
        + (f"; {outcome.mismatched} differ{outcome.final_check}" if outcome.mismatched else "")
    )
    return outcome


# --- report -------------------------------------------------------------------------------------------------------


def _rel(at: float, start: float) -> str:
    return f"{at - start:+.1f}s"


def rebalance_lines(outcome: Outcome) -> list[str]:
    """Actions and merge-stage milestones of every worker, in time order, relative to the window's start."""
    start = outcome.start
    events: list[tuple[float, str]] = list(outcome.actions)
    for number, marks in outcome.marks.items():
        for mark in marks:
            text = {
                "join": "merge (re-)joining group",
                "revoked": f"revoked hub.events {{{compress(int(p) for p in mark.detail.split(',') if p)}}}",
                "assigned": f"assigned hub.events {{{compress(int(p) for p in mark.detail.split(',') if p)}}}",
                "ready": f"merge active on {{{compress(int(p) for p in mark.detail.split(',') if p)}}}",
                "signal": "signal received",
                "stopping": "stopping",
                "left": "left the group (LeaveGroup)",
            }[mark.kind]
            events.append((mark.at, f"w{number} {text}"))
    return [f"{_rel(at, start):>8}  {text}" for at, text in sorted(events)]


def rebalances(outcome: Outcome) -> list[tuple[float, float]]:
    """(began, ended) of each rebalance: from the first '(Re-)joining group' of any worker to the last
    'partitions [...] active' that follows it before the next join round."""
    marks = sorted((m.at, m.kind) for ms in outcome.marks.values() for m in ms if m.kind in ("join", "ready"))
    rounds: list[tuple[float, float]] = []
    began: float | None = None
    ended: float | None = None
    for at, kind in marks:
        if kind == "join":
            if began is None or (ended is not None and at > ended):
                if began is not None and ended is not None:
                    rounds.append((began, ended))
                began, ended = at, None
        elif began is not None:
            ended = at
    if began is not None and ended is not None:
        rounds.append((began, ended))
    return rounds


def report(
    outcomes: list[Outcome], workload: Workload, partitions: int, broker: int | None, code: str, max_stall: float
) -> None:
    print()
    print(f"workload: {workload.describe()}; {partitions} partitions; broker java pid {broker}; {code}")
    print(f"CPU = cores busy on average over the window, of {os.cpu_count()}; times relative to the window start")
    header = (
        f"{'scenario':<10} {'events/s':>8} {'window':>7} {'start-up':>8} {'broker':>6} {'workers':>12} "
        f"{'observer':>8} {'postgres':>8} {'other':>5} {'w CPU/ev':>8} {'msgs':>6} {'repeat':>6} {'back':>4} "
        f"{'gap max':>7} {'p-gap max':>9}  {'no loss':<7} stalls"
    )
    print(header)
    print("-" * len(header))
    for o in outcomes:
        s = o.shares
        assert s is not None and o.audit is not None
        workers = "+".join(f"{v:.2f}" for _, v in sorted(s.workers.items()))
        per_event = s.workers_total * s.wall / o.events * 1e3
        worst = max(o.partition_gaps.items(), key=lambda kv: kv[1][0])
        print(
            f"{o.scenario.name:<10} {o.rate:>8,.0f} {o.seconds:>6.1f}s {o.startup_s:>7.1f}s "
            f"{'n/a' if s.broker is None else f'{s.broker:.2f}':>6} {workers:>12} {s.observer:>8.2f} "
            f"{s.postgres:>8.2f} {s.other:>5.2f} {per_event:>6.2f}ms {o.audit.messages:>6,} "
            f"{len(o.audit.repeated):>6,} {len(o.audit.backwards):>4} {o.gap_created[0]:>6.1f}s "
            f"{worst[1][0]:>6.1f}s p{worst[0]}  {'yes' if o.ok else 'NO':<7} "
            f"{'<= ' if o.worst_stall <= max_stall else 'OVER '}{max_stall:.0f}s"
        )
    print("  workers: CPU of w1+w2 (w2 counted from its start); w CPU/ev: all workers' CPU seconds per event")
    print("  msgs: status messages read (window + drain); repeat: (shipment, version) pairs sent more than once;")
    print("  back: messages with a version below one already read for that shipment")
    print("  gap max: longest silence of the whole status topic (CreateTime); p-gap max: of one partition while it")
    print("  still had shipments short of their final version; stalls: the worse of the two against --max-stall")
    print("  no loss: every shipment's last status is final and equals the offline fold, no version is above it,")
    print("  none was sent twice and none went backwards")
    for o in outcomes:
        s = o.shares
        audit = o.audit
        assert s is not None and audit is not None
        print()
        print(f"== {o.scenario.name}: {o.scenario.text}")
        print(f"  result      {o.rate:,.0f} events/s over {o.seconds:.2f} s; {o.final_check}")
        print(
            f"  versions    {audit.messages:,} status messages ({o.drained} after the window), {audit.distinct:,} "
            f"distinct (shipment, version); {len(audit.repeated):,} pairs sent more than once "
            f"({audit.extra_messages:,} extra messages); {len(audit.backwards)} backwards; "
            f"{len(audit.above_final)} above the final version"
            + (f"; {o.partition_mismatch} on an unexpected partition" if o.partition_mismatch else "")
        )
        if audit.repeated:
            times = Counter(audit.repeated.values())
            example = next(iter(audit.repeated))
            print(
                "              repeats: " + ", ".join(f"{n} pairs x{k}" for k, n in sorted(times.items()))
                + f"; e.g. {example[0].decode()} v{example[1]}"
            )
        if audit.backwards:
            key, version, before = audit.backwards[0]
            print(f"              backwards e.g. {key.decode()}: v{version} read after v{before}")
        if audit.above_final:
            key, version, final = audit.above_final[0]
            print(
                f"              ABOVE FINAL e.g. {key.decode()}: v{version} > final v{final} (an event applied twice)"
            )
        reports = "; ".join(
            f"w{n}: " + ("no report line" if r is None else f"applied={r[0]:,} duplicates={r[1]:,} versions={r[2]:,}")
            for n, r in sorted(o.reports.items())
        )
        total = sum(r[0] for r in o.reports.values() if r is not None)
        print(f"  counters    {reports} (sum applied {total:,} of {o.events:,} events; last report line each)")
        cpu_workers = ", ".join(f"w{n} {v:.2f}" for n, v in sorted(s.workers.items()))
        print(
            f"  CPU         broker {'n/a' if s.broker is None else f'{s.broker:.2f}'}, workers {s.workers_total:.2f} "
            f"({cpu_workers}), observer {s.observer:.2f}, postgres {s.postgres:.2f}, other {s.other:.2f} cores"
        )
        print(
            f"  stalls      whole topic: {o.gap_created[0]:.2f} s by CreateTime "
            f"(from {_rel(o.gap_created[1], o.start)}), "
            f"{o.gap_arrived[0]:.2f} s by arrival here (from {_rel(o.gap_arrived[1], o.start)})"
        )
        print(
            "  per part.   "
            + ", ".join(f"p{p} {g:.1f}s@{_rel(at, o.start)}" for p, (g, at) in sorted(o.partition_gaps.items()))
        )
        rounds = rebalances(o)
        if rounds:
            print(
                "  rebalances  "
                + "; ".join(f"{_rel(a, o.start)} .. {_rel(b, o.start)} ({b - a:.1f} s)" for a, b in rounds)
                + "  (first '(Re-)joining group' .. last 'merge: partitions [...] active')"
            )
        split = {
            n: [m.detail for m in marks if m.kind == "assigned" and m.at <= o.end]
            for n, marks in sorted(o.marks.items())
        }
        print(
            "  split       from the logs, last assignment before the window's end: "
            + "; ".join(
                f"w{n} {{{compress(int(p) for p in (a[-1] if a else '').split(',') if p)}}}" for n, a in split.items()
            )
        )
        print(f"              broker at the window's end: {o.group}")
        if o.leave_waited_s > 0.05:
            print(f"  note        the leave waited {o.leave_waited_s:.1f} s past 2/3 for both workers to be processing")
        print("  timeline")
        for line in rebalance_lines(o):
            print(f"    {line}")


# --- main ---------------------------------------------------------------------------------------------------------


async def run(args: argparse.Namespace) -> int:
    base = Settings.from_env()
    base = replace(base, partitions=args.partitions)
    prefix, temp = new_run("bench", "scaleout")
    broker = find_broker_pid()
    processes: list[subprocess.Popen[bytes]] = []
    outcomes: list[Outcome] = []
    keep_temp = False
    started = time.monotonic()
    code_at_start = code_state()
    names = [n.strip() for n in args.scenarios.split(",") if n.strip()]
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        raise SystemExit(f"unknown scenario(s) {unknown}; choose from {list(SCENARIOS)}")
    try:
        workload = generate(args.shipments, args.events_per_shipment, args.order, args.seed, args.template)
        say(f"workload: {workload.describe()}")
        finals, expected = offline_finals(workload)
        per_key = Counter(workload.keys)
        equal = sum(1 for key, final in finals.items() if per_key[key] == final)
        say(
            f"offline fold: {len(finals)} shipments, final versions {min(finals.values())}..{max(finals.values())}; "
            f"final version = events of the shipment for {equal}/{len(finals)}; {args.partitions} partitions; "
            f"broker java pid {broker}; temp {temp}"
        )
        for name in names:
            scenario = SCENARIOS[name]
            settings = replace(base, namespace=f"{prefix}-{name}", data_dir=temp / name)
            settings.data_dir.mkdir(parents=True)
            paced = scenario.join_at is not None and args.rate > 0
            if paced:
                await prepare(settings, replace(workload, lines=[], keys=[]))  # the topics only
                say(f"{name}: publishing {workload.events:,} events at {args.rate:,.0f}/s while the workers run")
            else:
                rate = await prepare(settings, workload)
                say(f"{name}: published {workload.events:,} events to {settings.topics.events} ({rate:,.0f}/s)")
            await asyncio.sleep(args.pause)
            outcome = await run_scenario(
                scenario, settings, workload, finals, expected, broker, args, processes, paced
            )
            outcomes.append(outcome)
            say(
                f"{name}: {outcome.rate:,.0f} events/s ({outcome.seconds:.2f} s); {outcome.final_check}; "
                f"longest silence {outcome.gap_created[0]:.1f} s"
            )
        code_at_end = code_state()
        code = f"code {code_at_start[1]}, sources {code_at_start[0]}" + (
            "" if code_at_start[0] == code_at_end[0] else f" -> {code_at_end[0]}: CHANGED DURING THE RUN"
        )
        report(outcomes, workload, args.partitions, broker, code, args.max_stall)
        say(f"total run time {time.monotonic() - started:.0f} s")
        failed = [o.scenario.name for o in outcomes if not o.ok]
        stalled = [o.scenario.name for o in outcomes if o.worst_stall > args.max_stall]
        if stalled:
            say(f"stalls over {args.max_stall:.0f} s in: {', '.join(stalled)} (see the timelines above)")
        if failed:
            keep_temp = True
            say(f"loss or double effect in: {', '.join(failed)} (see above)")
        return 1 if failed else 0
    except Exception:
        keep_temp = True  # the worker logs are the evidence
        raise
    finally:
        await clean_up_run(processes, base, f"{prefix}-", temp, args.keep, keep_temp)


def main(argv: list[str] | None = None) -> int:
    assert __doc__ is not None
    parser = argparse.ArgumentParser(prog="python -m bench.scaleout", description=__doc__.split("\n\n")[0])
    add_workload_arguments(parser)
    parser.add_argument("--partitions", type=int, default=8, help="partitions of every run topic (at least 2)")
    parser.add_argument(
        "--scenarios", default=",".join(SCENARIOS), help=f"comma-separated, from {', '.join(SCENARIOS)}"
    )
    parser.add_argument("--timeout", type=float, default=400.0, help="give up on one scenario after this (s)")
    parser.add_argument(
        "--stall",
        type=float,
        default=120.0,
        help="give up when the status topic gets nothing new for this long (s); above the session timeout",
    )
    parser.add_argument(
        "--max-stall", type=float, default=5.0, help="a silence longer than this (s) is reported as a stall"
    )
    parser.add_argument("--drain", type=float, default=3.0, help="after the window, read until quiet this long (s)")
    parser.add_argument(
        "--rate",
        type=float,
        default=500.0,
        help="events/s published while the workers run in the join scenarios (0: the whole workload before, as in "
        "one and two, which the runtime drains before a joiner has started)",
    )
    parser.add_argument("--pause", type=float, default=1.0, help="idle seconds before each scenario")
    parser.add_argument("--report-interval", type=float, default=5.0, help="the workers' MMHUB_REPORT_INTERVAL_S")
    parser.add_argument("--worker-loglevel", default="info")
    parser.add_argument("--keep", action="store_true", help="keep the run's topics and temp dir (worker logs)")
    args = parser.parse_args(argv)
    if args.partitions < 2:
        parser.error("--partitions must be at least 2 for two workers to share them")
    try:
        return asyncio.run(run(args))
    except KeyboardInterrupt:
        say("interrupted (cleanup done)")
        return 130


if __name__ == "__main__":
    sys.exit(main())
