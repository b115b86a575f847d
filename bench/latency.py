"""End-to-end latency, carrier publish -> status topic -> Postgres row, at a steady share of the maximum rate;
and the Postgres projection's lag at the maximum rate.

    python -m bench.latency [--shipments N --events-per-shipment K --load 0.5 --steady-s D --rate R]

One run (namespace `lat-<utc stamp>-<pid>`, its own Postgres schema, a `mmhub worker` and a `mmhub sink`
subprocess against the running broker and database):

  warm-up  one shipment's booking is published and waited for on the status topic and in Postgres, so start-up,
           group joins and table recovery are behind us (not timed).
  max      a backlog of N x K events (interleaved, bench/workload.py) is published at once. Sustained rate = events
           / (first status message of the phase -> every shipment's final version seen on the status topic).
           The sink's lag is sampled every 0.25 s: the status topic's end offsets minus the offsets the sink has
           stored in Postgres with its rows (sink_offsets). `catch-up` is how long after the last final version
           appeared on the status topic Postgres held every final version too.
  steady   other shipments (same shape) are published one event at a time, paced at `load` x the max rate (or
           --rate) for D seconds, interleaved. Per event:
             to status   the bench's consumer receives the status message whose `applied` list holds the event
                         (matched by fingerprint) minus the moment just before the event was handed to the producer;
             to Postgres shipment_events.stored_at (clock_timestamp() at insert, so a few ms before the commit of
                         that batch) minus the same moment.
           p50/p90/p99/max are printed; the issue's target is p99 < 100 ms to the status topic.

With `--readers share` the sharing stage (`mmhub share`, the demo registry's parties) runs too, over the same status
topic. It is not waited for in the phases; after the steady phase the bench waits until it has stored the offsets
the sink has (past the status topic's last record), then reports every process's CPU per event and per version
from the start of the max phase to that moment (max, steady and the catch-up): the stage costs README's
architecture section quotes.

Both phases end with a check: every shipment's Postgres record equals the offline fold. Cleanup: the worker and
sink are stopped and the run's topics deleted, always; the schema and temp dir are dropped unless --keep.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import functools
import math
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from bench.pipeline import Progress, delete_run_topics, find_broker_pid, new_run, process_cpu_s, say, stop_process, system_busy_s
from bench.workload import Workload, expected_records, generate, offline_finals
from connectors.kafka import ensure_topics
from connectors.postgres.migrate import migrate
from connectors.sharing.stage import share_group
from hubconf.settings import Settings
from streams.codec import Rejection, decode_event
from streams.copies import fingerprint

SAMPLE_EVERY_S = 0.25
TARGET_P99_MS = 100.0


@dataclass
class StatusWatch:
    """What the bench's consumer saw on the status topic: per shipment the highest version, per event
    fingerprint the moment its version arrived."""

    versions: dict[bytes, int] = field(default_factory=dict)
    arrived: dict[str, float] = field(default_factory=dict)
    created: dict[str, float] = field(default_factory=dict)
    last_at: float | None = None
    messages: int = 0  # status messages read (one per version)


async def watch_status(consumer: AIOKafkaConsumer, watch: StatusWatch, stop: asyncio.Event) -> None:
    while not stop.is_set():
        fetched = await consumer.getmany(timeout_ms=20)
        now = time.time()
        for messages in fetched.values():
            for message in messages:
                watch.last_at = now
                watch.messages += 1
                document = orjson.loads(message.value)
                version = document["record"]["version"]
                if version > watch.versions.get(message.key, 0):
                    watch.versions[message.key] = version
                for applied in document["applied"]:
                    watch.arrived.setdefault(applied["fingerprint"], now)
                    watch.created.setdefault(applied["fingerprint"], message.timestamp / 1000)


def spawn(command: str, settings: Settings, log: Path, profile: Path | None = None) -> subprocess.Popen[bytes]:
    """`mmhub <command>` (its words split on spaces) as a subprocess of this run's settings, logging to `log`."""
    env = {
        **os.environ,
        "MMHUB_KAFKA": settings.kafka,
        "MMHUB_PG_DSN": settings.pg_dsn,
        "MMHUB_PG_SCHEMA": settings.pg_schema,
        "MMHUB_NAMESPACE": settings.namespace,
        "MMHUB_DATA_DIR": str(settings.data_dir),
        "MMHUB_PARTITIONS": str(settings.partitions),
        "PYTHONUNBUFFERED": "1",
    }
    # pyinstrument saves the session when the process exits on SIGTERM
    profiler = ["-m", "pyinstrument", "-i", "0.001", "-r", "pyisession", "-o", str(profile)] if profile else []
    with log.open("ab") as handle:
        return subprocess.Popen(
            [sys.executable, *profiler, "-m", "mmhub.cli", *command.split()], env=env, stdout=handle, stderr=subprocess.STDOUT
        )


def spy_on(pid: int, seconds: float, temp: Path) -> subprocess.Popen[bytes] | None:
    """py-spy samples the worker for the steady phase: where its CPU goes when events arrive one by one, which the
    max phase's profile does not show. None (and said why) when py-spy is not installed."""
    spy = shutil.which("py-spy")
    if spy is None:
        say("py-spy: not installed (.venv/bin/pip install py-spy); the steady phase runs without it")
        return None
    out = temp / "worker-steady.speedscope.json"
    say(f"py-spy: sampling the worker for {seconds:.0f} s into {out}")
    return subprocess.Popen(
        [spy, "record", "--pid", str(pid), "--duration", str(max(1, int(seconds))), "--rate", "200",
         "--format", "speedscope", "--output", str(out), "--nonblocking"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )


@dataclass(frozen=True)
class CpuMark:
    """CPU seconds of the hub's processes at one moment (None: the process was not found)."""

    at: float
    seconds: dict[str, float | None]
    machine: float  # CPU seconds the whole machine spent busy (bench.pipeline.system_busy_s)


def cpu_mark(pids: dict[str, int | None]) -> CpuMark:
    return CpuMark(time.monotonic(), {name: process_cpu_s(pid) for name, pid in pids.items()}, system_busy_s())


def cores_between(a: CpuMark, b: CpuMark) -> str:
    """Cores each process used between two marks, divided by the time between those same marks; then the rest of
    the machine (Postgres's server processes, the kernel, anything else) and the machine's cores in all."""
    wall = max(b.at - a.at, 1e-9)
    shares = []
    listed = 0.0
    for name, before in a.seconds.items():
        after = b.seconds.get(name)
        if before is not None and after is not None:
            listed += after - before
        shares.append(f"{name} " + ("n/a" if before is None or after is None else f"{(after - before) / wall:.2f} cores"))
    busy = b.machine - a.machine
    shares.append(f"rest {max(0.0, busy - listed) / wall:.2f} cores (machine {busy / wall:.2f} of {os.cpu_count()})")
    return ", ".join(shares)


def per_item(a: CpuMark, b: CpuMark, items: int) -> str:
    """CPU each process spent between two marks, per item, in µs."""
    costs = []
    for name, before in a.seconds.items():
        after = b.seconds.get(name)
        costs.append(f"{name} " + ("n/a" if before is None or after is None else f"{1e6 * (after - before) / items:,.0f} us"))
    return ", ".join(costs)


def finals(workload: Workload) -> dict[bytes, int]:
    return offline_finals(workload)[0]


# the Postgres-writing readers of the status topic --readers may add: their command and consumer group (the webhook
# filler reads the parties' share topics, downstream of the sharing stage)
READERS = {"share": ("share", share_group)}


async def stored_offsets(pool: asyncpg.Pool, settings: Settings, group: str | None = None) -> dict[int, int]:
    rows = await pool.fetch(
        "SELECT partition, next_offset FROM sink_offsets WHERE consumer = $1 AND topic = $2",
        group or settings.sink_group,
        settings.topics.status,
    )
    return {row["partition"]: row["next_offset"] for row in rows}


async def postgres_versions(pool: asyncpg.Pool, keys: list[bytes]) -> dict[bytes, int]:
    rows = await pool.fetch(
        "SELECT shipment_id, version FROM shipments WHERE shipment_id = ANY($1::text[])", [k.decode() for k in keys]
    )
    return {row["shipment_id"].encode(): row["version"] for row in rows}


async def check_records(pool: asyncpg.Pool, workload: Workload) -> str:
    expected = {key: record.model_dump(mode="json") for key, record in expected_records(workload).items()}
    rows = await pool.fetch("SELECT shipment_id, record FROM shipments WHERE shipment_id = ANY($1::text[])", list(expected))
    got = {row["shipment_id"]: orjson.loads(row["record"]) for row in rows}
    wrong = [key for key, record in expected.items() if got.get(key) != record]
    return f"{len(expected) - len(wrong)}/{len(expected)} Postgres records equal the offline fold" + (
        f"; MISMATCH e.g. {wrong[:3]}" if wrong else ""
    )


def percentiles(values_ms: list[float]) -> dict[str, float]:
    ordered = sorted(values_ms)
    if not ordered:
        return {}

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]

    return {"p50": at(0.50), "p90": at(0.90), "p99": at(0.99), "max": ordered[-1]}


async def run(args: argparse.Namespace) -> int:
    namespace, temp = new_run("lat", "latency")
    base = Settings.from_env()
    settings = dataclasses.replace(
        base, namespace=namespace, pg_schema=namespace.replace("-", "_"), data_dir=temp / "worker-data"
    )
    if args.partitions:
        settings = dataclasses.replace(settings, partitions=args.partitions)
    say(f"namespace {namespace}; schema {settings.pg_schema}; broker {settings.kafka}; temp dir {temp}")
    backlog = generate(args.shipments, args.events_per_shipment, "interleaved")
    processes: list[subprocess.Popen[bytes]] = []
    pool = await asyncpg.create_pool(settings.pg_dsn, min_size=1, max_size=2, server_settings={"search_path": settings.pg_schema})
    producer = AIOKafkaProducer(**settings.kafka_client(), acks="all", linger_ms=0, client_id="bench-latency")
    consumer = AIOKafkaConsumer(**settings.kafka_client(), group_id=None, enable_auto_commit=False, fetch_max_wait_ms=20,
        isolation_level="read_committed",  # only what the worker committed counts
    )
    failed = True
    watcher: asyncio.Task[None] | None = None
    halt = asyncio.Event()
    try:
        await ensure_topics(settings)
        await migrate(settings.pg_dsn, settings.pg_schema)
        await producer.start()
        await consumer.start()
        partitions = [TopicPartition(settings.topics.status, p) for p in range(settings.partitions)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        watch = StatusWatch()
        watcher = asyncio.create_task(watch_status(consumer, watch, halt))
        profile = temp / "worker.pyisession" if args.profile_worker else None
        processes.append(spawn("worker", settings, temp / "worker.log", profile))
        processes.append(spawn("sink", settings, temp / "sink.log"))
        readers = {name: spawn(READERS[name][0], settings, temp / f"{name}.log") for name in args.readers}
        processes += readers.values()
        broker = find_broker_pid()

        def alive() -> None:
            for process in processes:
                if process.poll() is not None:
                    raise RuntimeError(f"a hub process exited with {process.returncode}; see the logs in {temp}")

        # --- warm-up -----------------------------------------------------------------------------------------
        warm = generate(1, 1, first=900_000)
        started = time.monotonic()
        await producer.send_and_wait(settings.topics.events, key=warm.keys[0], value=warm.lines[0])
        while watch.versions.get(warm.keys[0], 0) < 1 or (await postgres_versions(pool, warm.keys)).get(warm.keys[0], 0) < 1:
            alive()
            if time.monotonic() - started > 120:
                raise TimeoutError("warm-up: the worker or sink did not come up within 120 s")
            await asyncio.sleep(0.1)
        say(f"warm-up: hub in service {time.monotonic() - started:.1f} s after start (not timed)")

        # --- max: a backlog ------------------------------------------------------------------------------------
        targets = finals(backlog)
        say(f"max: publishing {backlog.describe()}")
        pids = {
            "worker": processes[0].pid, "sink": processes[1].pid, **{n: p.pid for n, p in readers.items()}, "broker": broker,
            "bench": os.getpid(),  # its publisher and status reader share the machine's cores with the hub
        }
        warm_messages = watch.messages  # the warm-up's version(s)
        max_cpu0 = cpu_mark(pids)  # the worker starts merging while the backlog is still being published
        max_cpu1: CpuMark | None = None
        for key, line in zip(backlog.keys, backlog.lines):
            await producer.send(settings.topics.events, key=key, value=line)
        await producer.flush()
        published_at = time.time()
        lag_samples: list[tuple[float, int]] = []
        progress = Progress("max", backlog.events)
        worker_done: float | None = None
        sink_done: float | None = None
        while sink_done is None:
            alive()
            now = time.time()
            reached = sum(min(watch.versions.get(k, 0), v) for k, v in targets.items())
            if worker_done is None and all(watch.versions.get(k, 0) >= v for k, v in targets.items()):
                worker_done = watch.last_at or now
                max_cpu1 = cpu_mark(pids)
            ends = await consumer.end_offsets(partitions)
            stored = await stored_offsets(pool, settings)
            lag = sum(max(0, end - stored.get(tp.partition, 0)) for tp, end in ends.items())
            lag_samples.append((now, lag))
            if worker_done is not None:
                have = await postgres_versions(pool, list(targets))
                if all(have.get(k, 0) >= v for k, v in targets.items()):
                    sink_done = time.time()
            progress.maybe(reached, f"  sink lag {lag:,} status messages")
            if now - published_at > args.timeout:
                raise TimeoutError(f"max: not done after {args.timeout:.0f} s")
            await asyncio.sleep(SAMPLE_EVERY_S)
        assert worker_done is not None and max_cpu1 is not None
        first_status = min(t for t in (watch.arrived.get(fingerprint_of(line)) for line in backlog.lines) if t is not None)
        window = worker_done - first_status
        max_rate = backlog.events / window
        max_check = await check_records(pool, backlog)
        max_lag = max(lag for _, lag in lag_samples)
        say(f"max: {max_rate:,.0f} events/s over {window:.1f} s; sink caught up {sink_done - worker_done:.2f} s after the last version; {max_check}")

        # --- steady: paced at load x max ------------------------------------------------------------------------
        rate = args.rate or args.load * max_rate
        wanted = max(1, int(rate * args.steady_s))
        per = args.events_per_shipment
        steady = generate(math.ceil(wanted / per), per, "interleaved", first=args.shipments + 1000)
        sent = dataclasses.replace(steady, lines=steady.lines[:wanted], keys=steady.keys[:wanted])  # the first `wanted`, in publish order
        lines = list(zip(sent.keys, sent.lines))
        prints = [fingerprint_of(line) for _, line in lines]
        sent_at: dict[str, float] = {}
        acked_at: dict[str, float] = {}  # the broker acknowledged the publish: the carrier's part of the latency

        def acked(mark: str, done: asyncio.Future[Any]) -> None:
            if done.exception() is None:
                acked_at[mark] = time.time()

        # The offline fold takes seconds: made before the first publish, not while the phase's last versions arrive (it
        # would hold the event loop, and so the status reader, and their arrival would be counted seconds late).
        steady_targets = finals(sent)
        say(f"steady: {len(lines):,} events at {rate:,.0f} events/s ({rate / max_rate:.0%} of max) for {len(lines) / rate:.0f} s")
        begin = time.monotonic() + 0.2
        steady_cpu0 = cpu_mark(pids)
        spy = spy_on(processes[0].pid, len(lines) / rate, temp) if os.environ.get("MMHUB_BENCH_PYSPY") else None
        progress = Progress("steady", len(lines))
        for index, ((key, line), mark) in enumerate(zip(lines, prints)):
            delay = begin + index / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            sent_at[mark] = time.time()
            sending = await producer.send(settings.topics.events, key=key, value=line)
            sending.add_done_callback(functools.partial(acked, mark))
            if index % 200 == 0:
                alive()
                progress.maybe(index, "")
        await producer.flush()
        steady_s = time.monotonic() - begin
        paced = len(lines) / steady_s
        steady_cpu1 = cpu_mark(pids)
        if spy is not None:
            _, complaint = await asyncio.to_thread(spy.communicate)  # the status reader goes on meanwhile
            if spy.returncode != 0:
                say(f"py-spy exited with {spy.returncode}: {complaint.decode(errors='replace').strip()[-300:]}")
        steady_keys = sorted({key for key, _ in lines})
        deadline = time.monotonic() + args.timeout
        worked: CpuMark | None = None  # the status topic has every steady final version: the worker's part is done
        while True:
            alive()
            if worked is None and all(watch.versions.get(k, 0) >= v for k, v in steady_targets.items()):
                worked = cpu_mark(pids)
            have = await postgres_versions(pool, steady_keys)
            if worked is not None and all(have.get(k, 0) >= v for k, v in steady_targets.items()):
                break
            if time.monotonic() > deadline:
                raise TimeoutError("steady: the hub did not catch up")
            await asyncio.sleep(0.2)
        rows = await pool.fetch(
            "SELECT fingerprint, stored_at FROM shipment_events WHERE shipment_id = ANY($1::text[])", [k.decode() for k in steady_keys]
        )
        stored_at = {row["fingerprint"]: row["stored_at"].timestamp() for row in rows}
        to_ack = [(acked_at[m] - sent_at[m]) * 1000 for m in prints if m in acked_at]
        to_status = [(watch.arrived[m] - sent_at[m]) * 1000 for m in prints if m in watch.arrived]
        to_created = [(watch.created[m] - sent_at[m]) * 1000 for m in prints if m in watch.created]
        to_postgres = [(stored_at[m] - sent_at[m]) * 1000 for m in prints if m in stored_at]
        steady_check = await check_records(pool, sent)
        if args.keep:  # each steady event's times (s since the epoch; empty: never seen), for a look at the tail
            with (temp / "steady.csv").open("w") as out:
                out.write("index,sent,acked,created,received,stored\n")
                for index, mark in enumerate(prints):
                    times = (sent_at[mark], acked_at.get(mark), watch.created.get(mark), watch.arrived.get(mark), stored_at.get(mark))
                    out.write(f"{index}," + ",".join("" if t is None else f"{t:.6f}" for t in times) + "\n")
        whole: tuple[float, CpuMark] | None = None
        if readers:
            # the sink has every final version now: its stored offsets are one past each partition's last record (the
            # end offsets would count the transaction markers after it)
            ends = await stored_offsets(pool, settings)
            started = time.monotonic()
            while True:
                alive()
                at = {name: await stored_offsets(pool, settings, READERS[name][1](settings)) for name in readers}
                if all(all(offsets.get(p, 0) >= end for p, end in ends.items()) for offsets in at.values()):
                    break
                if time.monotonic() - started > args.timeout:
                    raise TimeoutError(f"readers: not at the status topic's end after {args.timeout:.0f} s: {at}")
                await asyncio.sleep(0.2)
            whole = time.monotonic() - started, cpu_mark(pids)
            say(f"readers: {', '.join(readers)} at the status topic's end {whole[0]:.1f} s after the steady phase")

        # --- report ---------------------------------------------------------------------------------------------
        print("\nsummary")
        rows_out = [
            ("backlog (max phase)", backlog.describe()),
            ("max sustained rate", f"{max_rate:,.0f} events/s ({backlog.events:,} events in {window:.1f} s)"),
            ("CPU in max phase", cores_between(max_cpu0, max_cpu1) + " (publish start -> last final version)"),
            ("sink lag, max phase", f"peak {max_lag:,} status messages behind; Postgres had every final version {sink_done - worker_done:.2f} s after the status topic"),
            ("records, max phase", max_check),
            ("steady load", f"{len(lines):,} events over {len(steady_keys):,} shipments at {paced:,.0f} events/s ({paced / max_rate:.0%} of max)"),
            ("CPU in steady phase", cores_between(steady_cpu0, steady_cpu1)),
            # from the first steady publish until every steady final version is on the status topic: a worker that
            # fell behind is still at the phase's events after the publishing stops (target: worker <= 0.15 ms)
            (f"CPU per steady event ({len(lines):,})", per_item(steady_cpu0, worked, len(lines)) if worked else "n/a"),
        ]
        for name, values in (("-> publish acknowledged", to_ack), ("-> status topic (received)", to_status), ("-> status topic (CreateTime)", to_created), ("-> Postgres row", to_postgres)):
            p = percentiles(values)
            rows_out.append(
                (f"latency {name}", f"n={len(values):,}  " + "  ".join(f"{k} {v:,.1f} ms" for k, v in p.items()) if p else "n/a")
            )
        p99 = percentiles(to_status).get("p99", float("inf"))
        rows_out.append(("target p99 < 100 ms to status", "met" if p99 < TARGET_P99_MS else f"NOT met (p99 {p99:,.1f} ms)"))
        rows_out.append(("records, steady phase", steady_check))
        if whole is not None:
            events = backlog.events + len(lines)
            versions = watch.messages - warm_messages
            rows_out.append((f"CPU per event ({events:,})", per_item(max_cpu0, whole[1], events)))
            rows_out.append((f"CPU per version ({versions:,})", per_item(max_cpu0, whole[1], versions)))
        width = max(len(name) for name, _ in rows_out)
        for name, value in rows_out:
            print(f"  {name.ljust(width)}  {value}")
        missing = len(prints) - len(to_status)
        failed = "MISMATCH" in max_check + steady_check or missing > 0
        if missing:
            say(f"{missing} steady events never showed on the status topic")
        return 1 if failed else 0
    finally:
        halt.set()
        if watcher is not None:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
        for process in processes:
            await stop_process(process)
        await consumer.stop()
        await producer.stop()
        deleted = await delete_run_topics(settings, f"{namespace}.")
        say(f"cleanup: deleted {len(deleted)} topics {namespace}.*")
        if not (args.keep or args.profile_worker or os.environ.get("MMHUB_BENCH_PYSPY")) and not failed:
            await pool.execute(f'DROP SCHEMA IF EXISTS "{settings.pg_schema}" CASCADE')
            shutil.rmtree(temp, ignore_errors=True)
        else:
            say(f"kept schema {settings.pg_schema} and {temp}")
        await pool.close()


def fingerprint_of(line: bytes) -> str:
    event = decode_event(line)
    if isinstance(event, Rejection):
        raise ValueError(f"the workload holds an invalid event: {event.reason}")
    return fingerprint(event)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.latency", description=__doc__.split("\n\n")[0])
    parser.add_argument("--shipments", type=int, default=1000, help="shipments in the max-rate backlog")
    parser.add_argument("--events-per-shipment", type=int, default=15)
    parser.add_argument("--load", type=float, default=0.5, help="steady rate as a share of the measured max")
    parser.add_argument("--rate", type=float, default=None, help="steady rate in events/s (overrides --load)")
    parser.add_argument("--steady-s", type=float, default=30.0, help="length of the steady phase")
    parser.add_argument("--partitions", type=int, default=None)
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--keep", action="store_true", help="keep the Postgres schema and the temp dir")
    parser.add_argument(
        "--profile-worker", action="store_true", help="run the worker under pyinstrument (implies --keep; slower worker)"
    )
    parser.add_argument(
        "--readers",
        type=lambda text: [name for name in text.split(",") if name],
        default=[],
        help=f"also run these readers of the status topic and report each process's CPU per event: {','.join(READERS)}",
    )
    args = parser.parse_args(argv)
    unknown = sorted(set(args.readers) - set(READERS))
    if unknown:
        parser.error(f"--readers: unknown {unknown}; known: {sorted(READERS)}")
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
