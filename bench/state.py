"""State: memory and disk per shipment in the worker's table store, and how long a restarted worker takes to serve.

    python -m bench.state [--shipments 100000 --events-per-shipment 3 --order grouped --restarts warm,kill9,cold]

One namespace `state-<stamp>-<pid>` per run (topics, the stages' consumer groups, changelogs) and a temp dir of its own
(the worker's MMHUB_DATA_DIR is in it: no other run shares it):

  load      create the hub topics, start a `mmhub worker` (its stages on the stage runtime, RocksDB stores), wait for
            the runtime's "merge: partitions [...] active", sample its RSS, then publish the workload
            (bench.workload.generate) to `<ns>.hub.events`. Loading is done when the merge group's committed offsets
            on `<ns>.hub.events` reach the end offsets (read with the admin client, so no observer reads the status
            topic meanwhile); the merge commits them in the transaction of its changelog records.
  measure   `du` of the worker's RocksDB dirs per stage (runtime.state: one RocksDB per stage and partition, the
            stage's stores as column families; running, and after the SIGTERM of the first restart), the changelog
            topics on the broker (the partition dirs under the broker's log.dirs, found from the Kafka process's
            server.properties; aiokafka 0.14 has no DescribeLogDirs), their committed records (read back
            read_committed: end offsets would count transaction markers too) and per 1,000 events, the worker's
            VmRSS/VmHWM from /proc before and after loading, and the average stored state
            (as streams.step stores it) of a sample of shipments computed offline; all per shipment and per
            100,000 shipments (scaled linearly when N differs, and labelled so).
  restart   per kind: stop the worker (warm: SIGTERM, same data dir; kill9: SIGKILL, same data dir; cold: SIGTERM,
            then the data dir is emptied so the stores are rebuilt from the changelogs), start a new one on the same
            namespace and at once publish a probe: an event of an existing shipment that the shipment has not seen.
            Back in service = process start -> the probe's new version read back (read_committed) from
            `<ns>.hub.shipment.status`. The record carried by that version must equal the offline fold of the
            shipment's events plus the probe: only then did its state survive the restart. The merge group's "Joined
            group" and "Setting newly assigned partitions" (aiokafka) and the runtime's "merge: partitions [...]
            active" lines are timed too (from their own timestamps, against the process start). Issue 13's target:
            a warm restart back in service within --target s (10).

The workers run with the presumed-loss clock set to --clock-interval (a day): the workload's deadlines are in the
past, so a tick would publish a presumed-loss report per shipment (70,628 of them at 100,000 shipments, each a new
event and version) in the middle of the load, and a restarted worker would have to merge them before the probe.

Cleanup always stops the worker and deletes the run's topics; the temp dir (worker logs, RocksDB data) is removed
unless the run failed or --keep was given.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from bench.pipeline import (
    LogWatch,
    active_marker,
    new_run,
    _tail,
    _version,
    clean_up_run,
    code_state,
    find_broker_pid,
    prepare,
    process_cpu_s,
    say,
    start_worker,
    stop_process,
)
from bench.workload import AUTHORITY, ORDERS, TEMPLATE, Workload, _shipment_events, _template, generate
from connectors.kafka import publish
from hubconf.settings import Settings
from streams.codec import Rejection, decode_event
from streams.step import stored_values
from streams.merge import ShipmentState, absorb, fold
from hubconf.topics import TABLES

PER = 100_000  # the issue asks for figures per 100,000 shipments
RESTART_KINDS = ("warm", "kill9", "cold")
RESTART_LABELS = {
    "warm": "warm (SIGTERM, same RocksDB dir)",
    "kill9": "kill -9 (SIGKILL, same RocksDB dir)",
    "cold": "cold (SIGTERM, empty data dir)",
}



# --- pure helpers (tests/unit/bench/test_state.py) ----------------------------------------------------------------


def milestones(settings: Settings) -> dict[str, tuple[str, ...]]:
    """The merge stage's log lines timed on restart (name -> what the line contains, all of it): aiokafka's join of
    the merge group and its assignment, and the runtime's activation (runtime.loop: every partition it was given
    restored, positioned and taking records in)."""
    group = settings.stage_group("merge")
    return {
        "joined": (f"Joined group '{group}'",),
        "assigned": ("Setting newly assigned partitions ", f" for group {group}"),
        "active": active_marker("merge"),
    }


def memory_from_status(text: str) -> dict[str, int]:
    """VmRSS, VmHWM, ... of a /proc/<pid>/status text, in bytes."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        parts = rest.split()
        if name.startswith("Vm") and len(parts) == 2 and parts[1] == "kB":
            out[name] = int(parts[0]) * 1024
    return out


def log_dirs_from_properties(text: str) -> list[str]:
    """Kafka's data directories from a server.properties text: `log.dirs`, else `log.dir`, else Kafka's default."""
    values: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", "!")):
            continue
        key, sep, value = line.partition("=")
        if sep:
            values[key.strip()] = value.strip()
    chosen = values.get("log.dirs") or values.get("log.dir") or "/tmp/kafka-logs"
    return [d.strip() for d in chosen.split(",") if d.strip()]


def stage_of(group: str, partition: str) -> tuple[str, int] | None:
    """(stage, partition) of a runtime RocksDB dir `<data dir>/<group>/<partition>` (runtime.state.partition_path;
    the group is `<app id>.<stage>`); None for anything else."""
    if "." not in group or not partition.isdigit():
        return None
    return group.rsplit(".", 1)[1], int(partition)


def partition_of(directory: str, topic: str) -> int | None:
    """The partition of a broker log directory `<topic>-<n>`; None for other topics and for dirs pending deletion."""
    if not directory.startswith(topic + "-"):
        return None
    rest = directory[len(topic) + 1 :]
    return int(rest) if rest.isdigit() else None


def per_shipments(value: float, shipments: int, per: int = PER) -> float:
    """`value` measured with `shipments` shipments, scaled linearly to `per` shipments."""
    return value * per / shipments


def human_bytes(value: float) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if abs(value) >= size:
            return f"{value / size:,.1f} {unit}"
    return f"{value:,.0f} B"


def choose_probe(existing: list[bytes], candidates: list[bytes]) -> tuple[bytes, int, dict[str, Any]]:
    """An event that adds one version to a shipment whose events so far are `existing`.

    Returns (the event's bytes, the version the shipment must reach, the record it must then carry, as JSON).
    """
    decoded = [_decode(line) for line in existing]
    shipment = decoded[0].shipment_id
    assert shipment is not None
    before = fold(decoded, AUTHORITY)[shipment].version
    for line in candidates:
        if line in existing:
            continue
        event = _decode(line)
        if event.shipment_id != shipment:
            continue
        record = fold([*decoded, event], AUTHORITY)[shipment]
        if record.version == before + 1:
            return line, record.version, orjson.loads(orjson.dumps(record.model_dump(mode="json")))
    raise ValueError(f"no candidate event adds a version to {shipment}")


def _decode(line: bytes) -> Any:
    decoded = decode_event(line)
    if isinstance(decoded, Rejection):
        raise ValueError(f"invalid event ({decoded.code}): {decoded.reason}")
    return decoded


# --- measuring ----------------------------------------------------------------------------------------------------


def du(path: Path) -> int:
    """Bytes allocated on disk under `path` (like `du -s`, st_blocks), 0 if it does not exist."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
            except OSError:
                pass  # RocksDB deletes files while we walk
    return total


def store_dirs(data_dir: Path) -> list[tuple[str, Path]]:
    """(stage, dir) of every RocksDB of the stage runtime under the worker's data dir: one per (stage, partition),
    holding all the stage's stores as column families."""
    found = []
    for current in data_dir.rglob("CURRENT"):  # every RocksDB dir has one
        db = current.parent
        named = stage_of(db.parent.name, db.name)
        if named is not None:
            found.append((named[0], db))
    return found


def rocksdb_usage(data_dir: Path) -> dict[str, int]:
    """du per stage of its RocksDB dirs (the merge's: shipments and deadlines; the resolve's: references)."""
    usage: dict[str, int] = {}
    for stage, path in store_dirs(data_dir):
        usage[stage] = usage.get(stage, 0) + du(path)
    return usage


def file_kind(name: str) -> str:
    """What a file in a RocksDB dir is: SST (sorted tables), WAL (write-ahead log: the unflushed memtable), other."""
    if name.endswith(".sst"):
        return "SST"
    if name.endswith(".log") and name[:-4].isdigit():
        return "WAL"
    return "other"


def rocksdb_files(data_dir: Path) -> dict[str, int]:
    """du of every RocksDB dir under `data_dir`, split into SST, WAL and other files (MANIFEST, OPTIONS, LOG)."""
    usage = {"SST": 0, "WAL": 0, "other": 0}
    for _, path in store_dirs(data_dir):
        for entry in path.iterdir():
            try:
                usage[file_kind(entry.name)] += entry.lstat().st_blocks * 512
            except OSError:
                pass
    return usage


def memory_of(pid: int) -> dict[str, int]:
    try:
        return memory_from_status(Path(f"/proc/{pid}/status").read_text())
    except OSError:
        return {}


def broker_log_dirs(broker: int | None) -> list[Path]:
    """The broker's data dirs, from the server.properties named on the Kafka process's command line."""
    candidates: list[Path] = []
    if broker is not None:
        try:
            args = Path(f"/proc/{broker}/cmdline").read_bytes().decode().split("\0")
            candidates += [Path(a) for a in args if a.endswith(".properties")]
        except OSError:
            pass
    home = Path(os.environ.get("MMHUB_HOME", Path.home() / ".cache" / "mmhub"))
    candidates.append(home / "run" / "server.properties")  # what infra/dev.sh writes
    for properties in candidates:
        try:
            return [Path(d) for d in log_dirs_from_properties(properties.read_text())]
        except OSError:
            continue
    return []


@dataclass(frozen=True)
class TopicDisk:
    segments: int  # bytes of the *.log segment files (the records)
    allocated: int  # du of the partition dirs (segments, indexes, checkpoints)
    partitions: int


def topic_disk(log_dirs: list[Path], topic: str) -> TopicDisk:
    segments = allocated = partitions = 0
    for log_dir in log_dirs:
        try:
            entries = list(log_dir.iterdir())
        except OSError:
            continue
        for entry in entries:
            if partition_of(entry.name, topic) is None:
                continue
            partitions += 1
            allocated += du(entry)
            for segment in entry.glob("*.log"):
                try:
                    segments += segment.stat().st_size
                except OSError:
                    pass
    return TopicDisk(segments, allocated, partitions)


def spawn_worker(settings: Settings, log: Path, loglevel: str) -> tuple[subprocess.Popen[bytes], float]:
    """A `mmhub worker` on `settings`, its output appended to `log`; also returns when it was started (epoch s).

    The presumed-loss clock runs every `settings.clock_interval_s`: the workload's dates are in the past, so a tick
    would publish a presumed-loss report for every shipment (new events, new versions) in the middle of the run.
    """
    started = time.time()
    # no metrics endpoint: the worker's default port may be taken by another worker on this host
    env = {"MMHUB_CLOCK_INTERVAL_S": str(settings.clock_interval_s), "MMHUB_METRICS_PORT": "0"}
    return start_worker(settings, log, loglevel, extra_env=env, append=True), started


async def wait_active(worker: subprocess.Popen[bytes], watch: LogWatch, timeout: float) -> None:
    """Until the worker's merge stage is active on its partitions."""
    deadline = time.monotonic() + timeout
    while "active" not in watch.seen:
        watch.poll()
        if worker.poll() is not None:
            raise RuntimeError(f"the worker exited with {worker.returncode}; its log ends:\n{_tail(watch.path)}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"no 'merge: partitions [...] active' after {timeout:.0f} s; log ends:\n{_tail(watch.path)}")
        await asyncio.sleep(0.1)


async def end_offsets(consumer: AIOKafkaConsumer, topic: str, partitions: int) -> int:
    offsets = await consumer.end_offsets([TopicPartition(topic, p) for p in range(partitions)])
    return sum(offsets.values())


async def count_records(settings: Settings, topic: str) -> int:
    """The committed records of a topic (read_committed from the start to the end offsets: no transaction markers,
    no aborted records)."""
    consumer = AIOKafkaConsumer(
        **settings.kafka_client(), client_id="bench-state-count", enable_auto_commit=False,
        isolation_level="read_committed",
    )  # fmt: skip
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(settings.partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        count = 0
        while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
            count += sum(len(batch) for batch in (await consumer.getmany(timeout_ms=500, max_records=10_000)).values())
        return count
    finally:
        await consumer.stop()


async def committed(admin: AIOKafkaAdminClient, group: str, topic: str) -> int:
    offsets = await admin.list_consumer_group_offsets(group)
    return sum(meta.offset for tp, meta in offsets.items() if tp.topic == topic and meta.offset > 0)


def changelog(settings: Settings, table: str) -> str:
    return f"{settings.app_id}-{table}-changelog"


# --- the run ------------------------------------------------------------------------------------------------------


@dataclass
class Probe:
    key: bytes
    line: bytes
    version: int
    record: dict[str, Any]


@dataclass
class Restart:
    kind: str
    stop_s: float
    exit_code: int | None
    milestones: dict[str, float]  # name -> seconds after the process start
    service_s: float | None = None
    created_s: float | None = None  # the probe version's CreateTime (worker's producer) - process start
    check: str = ""
    rss: int | None = None
    rocksdb_after: int | None = None


def make_probes(workload: Workload, count: int, seed: int, template: Path) -> list[Probe]:
    """One probe per restart, on shipments spread over the workload (first, middle, last, ...)."""
    journey, _ = _template(template)
    by_key: dict[bytes, list[bytes]] = {}
    for key, line in zip(workload.keys, workload.lines):
        by_key.setdefault(key, []).append(line)
    keys = list(by_key)
    picked = [keys[(i * (len(keys) - 1)) // max(count - 1, 1)] for i in range(count)] if count > 1 else keys[:1]
    probes: list[Probe] = []
    for key in dict.fromkeys(picked):
        index = int(key.decode().rsplit("-", 1)[1])
        every = [orjson.dumps(e) for e in _shipment_events(index, len(journey) + 2, journey, seed)]
        line, version, record = choose_probe(by_key[key], every)
        probes.append(Probe(key, line, version, record))
    while len(probes) < count:  # fewer shipments than restarts: stack probes on the last shipment
        last = probes[-1]
        index = int(last.key.decode().rsplit("-", 1)[1])
        every = [orjson.dumps(e) for e in _shipment_events(index, len(journey) + 2 + len(probes), journey, seed)]
        line, version, record = choose_probe(by_key[last.key] + [p.line for p in probes if p.key == last.key], every)
        probes.append(Probe(last.key, line, version, record))
    return probes


def stored_state_sizes(shipments: int, events_per_shipment: int, seed: int, template: Path, sample: int) -> float:
    """Average bytes stored of `sample` shipments with `events_per_shipment` events (offline, pure path): the state
    whole while it is small, else its head and every event's entry (streams.step.SPLIT_STATE_BYTES)."""
    workload = generate(min(sample, shipments), events_per_shipment, "grouped", seed, template)
    per_key: dict[bytes, list[Any]] = {}
    for key, line in zip(workload.keys, workload.lines):
        per_key.setdefault(key, []).append(_decode(line))
    states = [absorb(ShipmentState(k.decode()), events)[0] for k, events in per_key.items()]
    sizes = [_stored_bytes(state) for state in states]
    return sum(sizes) / len(sizes)


def _stored_bytes(state: ShipmentState) -> int:
    """What the merge stores of `state` from scratch (streams.step.stored_values): the value and its entries."""
    value, entries, _ = stored_values(True, ShipmentState(state.shipment_id), state, ())
    return len(value) + sum(len(entry) for _, entry in entries)


class Run:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        base = Settings.from_env()
        self.prefix, self.temp = new_run("state", "state")
        self.settings = replace(
            base,
            namespace=self.prefix,
            data_dir=self.temp / "data",
            store="rocksdb://",
            partitions=args.partitions or base.partitions,
            clock_interval_s=args.clock_interval,
        )
        self.worker: subprocess.Popen[bytes] | None = None
        self.broker = find_broker_pid()
        self.log_dirs = broker_log_dirs(self.broker)
        self.rows: list[tuple[str, str, str, str]] = []
        self.restarts: list[Restart] = []
        self.facts: list[tuple[str, str]] = []
        self.shipments = 0
        self.running_rocksdb: dict[str, int] = {}

    def row(self, name: str, total: float | None, shipments: int, as_bytes: bool = True) -> None:
        if total is None:
            self.rows.append((name, "n/a", "", ""))
            return
        fmt = human_bytes if as_bytes else (lambda v: f"{v:,.0f}")
        per_one = total / shipments
        one = f"{per_one:,.0f} B" if as_bytes else f"{per_one:,.2f}"
        self.rows.append((name, fmt(total), one, fmt(per_shipments(total, shipments))))

    async def load(self, workload: Workload) -> None:
        settings, args = self.settings, self.args
        await prepare(settings, replace(workload, lines=[], keys=[]))  # topics only (and leaders), no events
        log = self.temp / "worker-load.log"
        self.worker, started = spawn_worker(settings, log, args.worker_loglevel)
        watch = LogWatch(log, milestones(settings))
        await wait_active(self.worker, watch, args.timeout)
        say(f"load: worker pid {self.worker.pid}'s merge active {watch.seen['active'] - started:.1f} s after start")
        await asyncio.sleep(args.settle)
        idle = memory_of(self.worker.pid)
        cpu0 = process_cpu_s(self.worker.pid) or 0.0

        admin = AIOKafkaAdminClient(**settings.kafka_client(), client_id="bench-state-admin")
        consumer = AIOKafkaConsumer(**settings.kafka_client(), client_id="bench-state-offsets")
        await admin.start()
        await consumer.start()
        try:
            t0 = time.monotonic()
            publishing = asyncio.create_task(publish(settings, workload.lines))
            published_s: float | None = None
            done = 0
            last_move, last_done, next_say = t0, -1, t0
            while True:
                await asyncio.sleep(1.0)
                if published_s is None and publishing.done():
                    publishing.result()
                    published_s = time.monotonic() - t0
                    say(f"load: published {workload.events:,} events in {published_s:.1f} s")
                done = await committed(admin, settings.stage_group("merge"), settings.topics.events)
                target = max(workload.events, await end_offsets(consumer, settings.topics.events, settings.partitions))
                now = time.monotonic()
                if done != last_done:
                    last_move, last_done = now, done
                if self.worker.poll() is not None:
                    raise RuntimeError(f"the worker exited with {self.worker.returncode}; log ends:\n{_tail(log)}")
                if now - last_move > args.stall:
                    raise TimeoutError(
                        f"load: committed offsets stuck at {done:,}/{workload.events:,} for {args.stall:.0f} s; "
                        f"log ends:\n{_tail(log)}"
                    )
                if now >= next_say or done >= target:
                    next_say = now + args.progress
                    rss = memory_of(self.worker.pid).get("VmRSS", 0)
                    say(
                        f"load: {done:,}/{workload.events:,} events committed ({100 * done / workload.events:5.1f}%) "
                        f"{now - t0:6.1f} s, {done / (now - t0):,.0f} events/s; worker RSS {human_bytes(rss)}, "
                        f"RocksDB {human_bytes(du(settings.data_dir))}"
                    )
                if done >= target and published_s is not None:
                    break
            load_s = time.monotonic() - t0
            cpu = (process_cpu_s(self.worker.pid) or 0.0) - cpu0
            # The merge commits its input offsets in the transaction of its changelog records: they are all in.
            records = {t: await count_records(settings, changelog(settings, t)) for t in TABLES}
            dlq = await end_offsets(consumer, settings.topics.dlq, settings.partitions)
            extra = await end_offsets(consumer, settings.topics.events, settings.partitions) - workload.events
            status = await end_offsets(consumer, settings.topics.status, settings.partitions)
        finally:
            await consumer.stop()
            await admin.close()

        await asyncio.sleep(args.settle)
        loaded = memory_of(self.worker.pid)
        n = workload.shipments
        self.facts += [
            ("load", f"{workload.events:,} events in {load_s:.1f} s ({workload.events / load_s:,.0f} events/s; "
                     f"publishing took {published_s:.1f} s of it); worker CPU {cpu:.1f} s "
                     f"({cpu / workload.events * 1e3:.2f} ms/event)"),
            ("versions", f"{status:,} status messages = {workload.events / max(status, 1):.2f} events/version; "
                         f"dead letters: {dlq}"),
        ]
        self.facts.append((
            "changelog records",
            f"{sum(records.values()):,} committed for {workload.events:,} events = "
            f"{1000 * sum(records.values()) / workload.events:,.0f} per 1,000 events ("
            + ", ".join(f"{t} {1000 * records[t] / workload.events:,.0f}" for t in TABLES) + ")",
        ))
        if extra:
            self.facts.append(("WARNING", f"{extra:,} events on hub.events beyond the workload (the worker's clock?)"))
        if dlq:
            self.facts.append(("WARNING", f"{dlq} events were dead-lettered during the load"))
        running = rocksdb_usage(settings.data_dir)
        kinds = rocksdb_files(settings.data_dir)
        self.facts.append(("RocksDB files, running", ", ".join(f"{k} {human_bytes(v)}" for k, v in kinds.items())))
        self.rows.append(("RocksDB data dir, worker running (du)", "", "", ""))
        self.row("  all stages", sum(running.values()), n)
        for stage in sorted(running):
            self.row(f"  {stage} stage", running[stage], n)
        self.running_rocksdb = running
        self.rows.append(("changelog topics on the broker (segment bytes)", "", "", ""))
        disks = {t: topic_disk(self.log_dirs, changelog(settings, t)) for t in TABLES}
        if not any(d.partitions for d in disks.values()):
            self.facts.append(("WARNING", f"no changelog partition dirs found under {self.log_dirs}"))
        self.row("  all changelogs", sum(d.segments for d in disks.values()), n)
        for table in TABLES:
            self.row(f"  {table} ({records[table]:,} records)", disks[table].segments, n)
        self.row("  all changelogs, du incl. indexes", sum(d.allocated for d in disks.values()), n)
        self.row("changelog records, all tables", sum(records.values()), n, as_bytes=False)
        self.rows.append(("worker memory", "", "", ""))
        self.rows.append(("  VmRSS idle, before loading (fixed cost)", human_bytes(idle.get("VmRSS", 0)), "-", "-"))
        self.rows.append(("  VmRSS after loading", human_bytes(loaded.get("VmRSS", 0)), "-", "-"))
        self.row("  VmRSS growth from loading", loaded.get("VmRSS", 0) - idle.get("VmRSS", 0), n)
        self.rows.append(("  VmHWM (peak) after loading", human_bytes(loaded.get("VmHWM", 0)), "-", "-"))

    async def restart(self, kind: str, probe: Probe, first_stop: bool) -> Restart:
        settings, args = self.settings, self.args
        assert self.worker is not None
        say(f"restart {kind}: stopping worker pid {self.worker.pid}")
        t = time.monotonic()
        if kind == "kill9":
            self.worker.send_signal(signal.SIGKILL)
            self.worker.wait()
        else:
            await stop_process(self.worker, grace_s=60.0)
        stop_s = time.monotonic() - t
        exit_code = self.worker.returncode
        if first_stop and kind != "kill9":
            stopped = rocksdb_usage(settings.data_dir)
            kinds = rocksdb_files(settings.data_dir)
            split = ", ".join(f"{k} {human_bytes(v)}" for k, v in kinds.items())
            self.facts.append(("RocksDB files, after SIGTERM", split))
            self.rows.append(("RocksDB data dir after SIGTERM (du)", "", "", ""))
            self.row("  all stages", sum(stopped.values()), self.shipments)
            for stage in sorted(stopped):
                self.row(f"  {stage} stage", stopped[stage], self.shipments)
        if kind == "cold":
            shutil.rmtree(settings.data_dir)
            settings.data_dir.mkdir(parents=True)

        consumer = AIOKafkaConsumer(
            **settings.kafka_client(),
            client_id="bench-state-observer",
            enable_auto_commit=False,
            group_id=None,
            isolation_level="read_committed",  # as every consumer downstream of the worker's transactions
        )
        await consumer.start()
        try:
            partitions = [TopicPartition(settings.topics.status, p) for p in range(settings.partitions)]
            consumer.assign(partitions)
            await consumer.seek_to_end(*partitions)
            for tp in partitions:
                await consumer.position(tp)  # fix the start before the worker can write anything
            log = self.temp / f"worker-{kind}.log"
            self.worker, started = spawn_worker(settings, log, args.worker_loglevel)
            t0 = time.monotonic()
            watch = LogWatch(log, milestones(settings))
            await publish(settings, [probe.line])
            say(f"restart {kind}: worker pid {self.worker.pid} started; probe published to {probe.key.decode()}, "
                f"waiting for its version {probe.version}")
            result = Restart(kind, stop_s, exit_code, {})
            next_say = t0 + args.progress
            value: bytes | None = None
            while value is None:
                batches = await consumer.getmany(timeout_ms=100)
                for messages in batches.values():
                    for message in messages:
                        if message.key == probe.key and _version(message.value) >= probe.version and value is None:
                            value = message.value
                            result.service_s = time.monotonic() - t0
                            if message.timestamp_type == 0:
                                result.created_s = message.timestamp / 1000 - started
                watch.poll()
                now = time.monotonic()
                if self.worker.poll() is not None:
                    raise RuntimeError(f"the worker exited with {self.worker.returncode}; log ends:\n{_tail(log)}")
                if now - t0 > args.timeout:
                    raise TimeoutError(
                        f"restart {kind}: probe not served after {args.timeout:.0f} s "
                        f"(log milestones {sorted(watch.seen)}); log ends:\n{_tail(log)}"
                    )
                if now >= next_say:
                    next_say = now + args.progress
                    seen = ", ".join(f"{k} at {v - started:.1f} s" for k, v in watch.seen.items()) or "nothing yet"
                    say(f"restart {kind}: {now - t0:.0f} s, log: {seen}; RSS "
                        f"{human_bytes(memory_of(self.worker.pid).get('VmRSS', 0))}")
        finally:
            await consumer.stop()
        memory = memory_of(self.worker.pid)
        result.rss = memory.get("VmRSS")
        await asyncio.sleep(0.5)
        watch.poll()
        result.milestones = {name: at - started for name, at in watch.seen.items()}
        got = orjson.loads(value)["record"]
        result.check = (
            f"version {probe.version}, record = offline fold" if got == probe.record
            else f"MISMATCH: record v{got.get('version')} differs from the offline fold (want v{probe.version})"
        )
        if kind == "cold":
            result.rocksdb_after = sum(rocksdb_usage(settings.data_dir).values())
        say(f"restart {kind}: back in service after {result.service_s:.1f} s; {result.check}")
        return result


def report(run: Run, workload: Workload, state_k: float, state_15: float | None, code: str) -> None:
    n = workload.shipments
    scaled = "" if n == PER else f" (scaled linearly from {n:,})"
    print()
    print(f"bench.state: {workload.describe()}")
    dirs = ", ".join(map(str, run.log_dirs))
    print(f"  store rocksdb://, {run.settings.partitions} partitions, broker log dirs {dirs}")
    print(f"  code: {code}")
    for name, text in run.facts:
        print(f"  {name}: {text}")
    print()
    header = ("measured after loading", "total", "per shipment", f"per {PER:,} shipments{scaled}")
    width = max(len(r[0]) for r in [header, *run.rows])
    line = f"{header[0]:<{width}}  {header[1]:>11}  {header[2]:>12}  {header[3]}"
    print(line)
    print("-" * len(line))
    for name, total, one, hundred in run.rows:
        print(f"{name:<{width}}  {total:>11}  {one:>12}  {hundred}")
    print()
    k = workload.events_per_shipment
    print(f"stored state per shipment (streams.codec, as streams.step stores it; offline, sample of shipments): "
          f"{human_bytes(state_k)} at {k} events/shipment")
    merge_dbs = run.running_rocksdb.get("merge")
    if state_15 is not None:
        print(f"{'':>86}{human_bytes(state_15)} at 15 events/shipment")
        if merge_dbs:
            guess = per_shipments(merge_dbs, n) * state_15 / state_k
            others = per_shipments(sum(v for t, v in run.running_rocksdb.items() if t != "merge"), n)
            print(f"  EXTRAPOLATED, not measured: the merge's RocksDB (shipments, deadlines) at 15 events/shipment ~ "
                  f"{human_bytes(guess)} per {PER:,} shipments (measured x {state_15 / state_k:.2f}, the state-size "
                  f"ratio); other stages assumed unchanged ({human_bytes(others)})")
    print()
    header2 = (
        f"{'restart':<38} {'stop':>6} {'joined':>7} {'assigned':>9} {'active':>6} {'SERVICE':>8} {'CreateT':>7} "
        f"{'RSS':>10}  probe check"
    )
    print(f"restart with {n:,} shipments (seconds from the new process's start; stop = time for the old one to exit)")
    print(header2)
    print("-" * len(header2))

    def s(v: float | None) -> str:
        return "-" if v is None else f"{v:.1f}"

    for r in run.restarts:
        print(
            f"{RESTART_LABELS[r.kind]:<38} {s(r.stop_s):>6} {s(r.milestones.get('joined')):>7} "
            f"{s(r.milestones.get('assigned')):>9} {s(r.milestones.get('active')):>6} {s(r.service_s):>8} "
            f"{s(r.created_s):>7} {human_bytes(r.rss) if r.rss else '-':>10}  {r.check}"
            + (f"; exit {r.exit_code}" if r.exit_code not in (0, None, -signal.SIGKILL) else "")
        )
    for r in run.restarts:
        if r.kind == "warm" and r.service_s is not None:
            met = "met" if r.service_s <= run.args.target else "NOT MET"
            print(f"  target: a warm restart back in service within {run.args.target:.0f} s: {met} ({r.service_s:.1f} s)")
        if r.rocksdb_after is not None:
            print(f"  cold restart rebuilt RocksDB: {human_bytes(r.rocksdb_after)} (du, after the probe was served)")
    print("  joined/assigned/active: the merge group's 'Joined group' and 'Setting newly assigned partitions' (aiokafka), "
          "and the runtime's 'merge: partitions [...] active' (restored, taking records in);")
    print("  SERVICE: the probe's new version read from the status topic (read_committed); CreateT: that message's "
          "CreateTime")


async def run(args: argparse.Namespace) -> int:
    started = time.monotonic()
    task = asyncio.current_task()
    assert task is not None
    for signum in (signal.SIGINT, signal.SIGTERM):  # also when started in the background, where SIGINT is ignored
        asyncio.get_running_loop().add_signal_handler(signum, task.cancel)
    state = Run(args)
    code = code_state()
    failed = False
    try:
        kinds = [k for k in args.restarts.split(",") if k]
        unknown = set(kinds) - set(RESTART_KINDS)
        if unknown:
            raise SystemExit(f"unknown restart kinds {sorted(unknown)}; choose from {RESTART_KINDS}")
        workload = generate(args.shipments, args.events_per_shipment, args.order, args.seed, args.template)
        state.shipments = workload.shipments
        say(f"workload: {workload.describe()}")
        probes = make_probes(workload, max(len(kinds), 1), args.seed, args.template)
        state_k = stored_state_sizes(args.shipments, args.events_per_shipment, args.seed, args.template, args.sample)
        state_15 = (
            stored_state_sizes(args.shipments, 15, args.seed, args.template, args.sample)
            if args.events_per_shipment != 15 else None
        )
        say(f"presumed-loss clock every {args.clock_interval:,.0f} s (the workload's deadlines are in the past)")
        say(f"namespace {state.prefix}; temp dir {state.temp}; broker java pid {state.broker}, log dirs "
            f"{[str(d) for d in state.log_dirs]}; probes on {[p.key.decode() for p in probes]}")
        await state.load(workload)
        for i, kind in enumerate(kinds):
            state.restarts.append(await state.restart(kind, probes[i], first_stop=(i == 0)))
        end_code = code_state()
        described = f"{code[1]}; sources {code[0]}" + (
            "" if end_code[0] == code[0] else f" -> {end_code[0]}: CHANGED DURING THE RUN"
        )
        report(state, workload, state_k, state_15, described)
        say(f"total run time {time.monotonic() - started:.0f} s")
        return 1 if any(r.check.startswith("MISMATCH") for r in state.restarts) else 0
    except Exception:
        failed = True
        raise
    finally:
        workers = [state.worker] if state.worker is not None else []
        await clean_up_run(workers, state.settings, f"{state.prefix}.", state.temp, args.keep, failed)

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.state", description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--shipments", type=int, default=PER)
    parser.add_argument(
        "--events-per-shipment", type=int, default=3, help="state grows with it; 3 keeps 100,000 shipments to minutes"
    )
    parser.add_argument("--order", choices=ORDERS, default="grouped", help="grouped loads fastest (one version each)")
    parser.add_argument("--restarts", default=",".join(RESTART_KINDS), help=f"comma list of {RESTART_KINDS}")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--template", type=Path, default=TEMPLATE)
    parser.add_argument("--partitions", type=int, help="partitions of every run topic (default: MMHUB_PARTITIONS or 8)")
    parser.add_argument("--sample", type=int, default=300, help="shipments in the offline stored-state sample")
    parser.add_argument("--timeout", type=float, default=600.0, help="give up on a start or restart after this (s)")
    parser.add_argument("--stall", type=float, default=120.0, help="give up when loading stops moving this long (s)")
    parser.add_argument("--settle", type=float, default=3.0, help="idle seconds before a memory sample")
    parser.add_argument("--progress", type=float, default=10.0, help="seconds between progress lines")
    parser.add_argument(
        "--clock-interval",
        type=float,
        default=86400.0,
        help="the worker's presumed-loss clock (MMHUB_CLOCK_INTERVAL_S); the workload's deadlines are past, so a tick "
        "publishes a report per shipment: kept out of the run by default",
    )
    parser.add_argument("--target", type=float, default=10.0, help="issue 13's warm restart target (s)")
    parser.add_argument("--worker-loglevel", default="info")
    parser.add_argument("--keep", action="store_true", help="keep the run's topics and temp dir")
    args = parser.parse_args(argv)
    try:
        return asyncio.run(run(args))
    except (KeyboardInterrupt, asyncio.CancelledError):
        say("interrupted (cleanup done)")
        return 130


if __name__ == "__main__":
    sys.exit(main())
