"""Crash test: the worker killed (SIGKILL) again and again mid-stream, and the broker restarted once.

    python -m bench.crash [--shipments N --events-per-shipment K --kills 20 --rate R --no-broker-restart]

One namespace `crash-<stamp>-<pid>`, one `mmhub worker` at a time with one data directory (so a restart finds the
RocksDB state the killed worker left, as a restarted container would). This process:

  publishes  the workload (bench.workload) to `<ns>.hub.events` at --rate events/s, plus a copy of every
             --duplicate-every'th line (a carrier's re-send), so the stream is still flowing while the kills happen;
  kills      the worker --kills times with SIGKILL, each after a random 0.3-4 s of life (the first within 1 s of its
             start, before it has finished restoring), and restarts it at once; halfway through it stops and starts
             the broker (`bash infra/dev.sh stop kafka`, `start kafka`, same MMHUB_HOME: a broker restart mid-stream,
             with transactions open);
  observes   `<ns>.hub.shipment.status`, `<ns>.hub.claims` and the DLQ with isolation_level=read_committed, from the
             beginning, until every shipment's final version (the offline fold's) has been read and then the
             end offsets it took after that are reached (a positive marker, not a quiet period).

It then checks, and exits 1 if any fails:
  - every shipment's last record equals the offline fold (`streams.merge.fold`);
  - no (shipment, version) status message was read twice, and none went backwards (versions neither repeated);
  - every distinct input event was carried by exactly one status message's `applied` list (none lost, none twice);
  - no claim message was read twice (claims not doubled);
  - input messages = applied + duplicates + dead-lettered, counted from the outputs.

The broker restart needs a stack this process may restart: run it against a private `bash infra/dev.sh up` (its
MMHUB_HOME, ports) — never against a broker others use. `--no-broker-restart` skips that step.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from bench.pipeline import (
    _tail,
    _version,
    add_workload_arguments,
    clean_up_run,
    first_difference,
    new_run,
    say,
    start_worker,
    stop_process,
)
from bench.workload import Workload, generate, offline_finals
from connectors.kafka import ensure_topics
from hubconf.settings import Settings
from hubconf.topics import DLQ_CODE
from streams.codec import Rejection, decode_event
from streams.copies import Copy

ROOT = Path(__file__).resolve().parents[1]
FIRST_KILL_S = (0.2, 1.0)  # the first cycle: killed within a second of its start
LIFE_S = (0.3, 4.0)  # every other cycle: a random life in this range


@dataclass
class Observed:
    """What the observer read, and what it makes of it."""

    status: int = 0
    versions: Counter[tuple[bytes, int]] = field(default_factory=Counter)
    backwards: list[tuple[bytes, int, int]] = field(default_factory=list)
    highest: dict[bytes, int] = field(default_factory=dict)
    last: dict[bytes, Any] = field(default_factory=dict)
    applied: Counter[str] = field(default_factory=Counter)  # copy fingerprint -> status messages that carried it
    carried_by: dict[str, list[tuple[bytes, int]]] = field(default_factory=dict)  # fingerprint -> (shipment, version)
    claims: Counter[bytes] = field(default_factory=Counter)
    dead_letters: int = 0  # input dead-lettered as it came in (its event never entered a state)
    refusals: int = 0  # events the record refuses (not_entitled): kept in the state, so also applied

    def take_status(self, key: bytes, value: bytes) -> None:
        self.status += 1
        version = _version(value)
        self.versions[(key, version)] += 1
        before = self.highest.get(key, 0)
        if version < before:
            self.backwards.append((key, version, before))
            return
        self.highest[key] = version
        document = orjson.loads(value)
        self.last[key] = document["record"]
        for copy in document.get("applied", []):
            self.applied[copy["fingerprint"]] += 1
            self.carried_by.setdefault(copy["fingerprint"], []).append((key, version))


def input_keys(lines: list[bytes]) -> list[str]:
    """Each input line's copy fingerprint (what a status message's `applied` entries are named by)."""
    keys = []
    for line in lines:
        decoded = decode_event(line)
        keys.append(line.hex() if isinstance(decoded, Rejection) else Copy.of(decoded).fingerprint)
    return keys


@dataclass(frozen=True)
class Verdict:
    lines: list[str]
    failed: bool


def judge(
    observed: Observed, expected: dict[bytes, Any], finals: dict[bytes, int], sent_keys: list[str]
) -> Verdict:
    """The checks of the module docstring, over what was observed (pure: tested in tests/unit/bench)."""
    out: list[str] = []
    failed = False
    wrong = [key for key, record in expected.items() if observed.last.get(key) != record]
    if wrong:
        failed = True
        key = wrong[0]
        out.append(f"FAIL records: {len(wrong)} of {len(expected)} differ from the offline fold; first {key.decode()}: "
                   f"{first_difference(observed.last.get(key), expected[key])}")
    else:
        out.append(f"ok   records: all {len(expected)} equal the offline fold")
    repeated = {k: n for k, n in observed.versions.items() if n > 1}
    if repeated or observed.backwards:
        failed = True
        out.append(f"FAIL versions: {len(repeated)} (shipment, version) sent more than once, "
                   f"{len(observed.backwards)} went backwards")
    else:
        out.append(f"ok   versions: {observed.status} status messages, none repeated, none backwards")
    distinct = set(sent_keys)
    twice = {k: n for k, n in observed.applied.items() if n > 1}
    missing = distinct - set(observed.applied)
    if twice or len(missing) > observed.dead_letters:
        failed = True
        example = next(iter(twice), None)
        out.append(f"FAIL events: {len(twice)} carried by more than one status message, {len(missing)} never carried "
                   f"({observed.dead_letters} dead-lettered); e.g. {example} in {observed.carried_by.get(example or '')}")
    else:
        out.append(f"ok   events: each of {len(observed.applied)} applied events carried once")
    doubled = {k: n for k, n in observed.claims.items() if n > 1}
    if doubled:
        failed = True
        out.append(f"FAIL claims: {len(doubled)} claim messages read more than once")
    else:
        out.append(f"ok   claims: {sum(observed.claims.values())} claim messages, none doubled")
    applied = len(observed.applied)
    duplicates = len(sent_keys) - len(distinct)
    balance = applied + duplicates + observed.dead_letters
    if balance != len(sent_keys):
        failed = True
    out.append(f"{'ok  ' if balance == len(sent_keys) else 'FAIL'} input {len(sent_keys)} = applied {applied} + "
               f"duplicates {duplicates} + dead-lettered {observed.dead_letters} ({balance}); of the applied, "
               f"{observed.refusals} refused by the record (dead-lettered not_entitled, kept in the state)")
    return Verdict(out, failed)


async def publish_slowly(settings: Settings, lines: list[bytes], keys: list[bytes], rate: float, done: asyncio.Event) -> None:
    """Publish at `rate` lines/s; rides out the broker restart (idempotent producer, retried sends)."""
    producer = AIOKafkaProducer(**settings.kafka_client(client_id="crash-publisher"), acks="all", enable_idempotence=True)
    await producer.start()
    topic = settings.topics.events
    started = time.monotonic()
    try:
        for index, (key, line) in enumerate(zip(keys, lines)):
            while True:
                try:
                    await producer.send(topic, value=line, key=key)
                    break
                except KafkaError as error:
                    say(f"publisher: {error!r}; retrying")
                    await asyncio.sleep(0.5)
            ahead = started + (index + 1) / rate - time.monotonic()
            if ahead > 0:
                await asyncio.sleep(ahead)
        await producer.flush()
    finally:
        await producer.stop()
        done.set()


async def observe(settings: Settings, observed: Observed, finals: dict[bytes, int], stop: asyncio.Event) -> None:
    names = settings.topics
    consumer = AIOKafkaConsumer(
        names.status, names.claims, names.dlq,
        **settings.kafka_client(client_id="crash-observer"),
        group_id=None, auto_offset_reset="earliest", isolation_level="read_committed", enable_auto_commit=False,
    )
    await consumer.start()
    try:
        marker: dict[TopicPartition, int] | None = None
        while True:
            batches = await consumer.getmany(timeout_ms=500, max_records=5000)
            for tp, records in batches.items():
                for record in records:
                    if tp.topic == names.status:
                        observed.take_status(record.key, record.value)
                    elif tp.topic == names.claims:
                        observed.claims[record.value] += 1
                    elif dict(record.headers or []).get(DLQ_CODE) == b"not_entitled":
                        observed.refusals += 1
                    else:
                        observed.dead_letters += 1
            complete = all(observed.highest.get(key, 0) >= version for key, version in finals.items())
            if complete and marker is None:
                # every final version is in: read on to the end offsets as they stand now, then stop
                parts = list(consumer.assignment())
                marker = await consumer.end_offsets(parts)
            if marker is not None and all([await consumer.position(tp) >= end for tp, end in marker.items()]):
                return
            if stop.is_set():
                return
    finally:
        await consumer.stop()


def broker(action: str) -> None:
    subprocess.run(["bash", str(ROOT / "infra" / "dev.sh"), action, "kafka"], check=True)


async def run(args: argparse.Namespace) -> int:
    base = Settings.from_env()
    prefix, temp = new_run("crash", "crash")
    settings = replace(base, namespace=prefix, data_dir=temp / "data")
    workload: Workload = generate(args.shipments, args.events_per_shipment, args.order, args.seed, args.template)
    finals, expected = offline_finals(workload)
    lines = list(workload.lines)
    keys = list(workload.keys)
    for index in range(0, len(workload.lines), args.duplicate_every):
        lines.append(workload.lines[index])
        keys.append(workload.keys[index])
    rng = random.Random(args.seed)
    say(f"{prefix}: {len(lines)} messages ({len(lines) - workload.events} re-sends) at {args.rate:.0f}/s, "
        f"{args.kills} kills, broker restart {'on' if args.broker_restart else 'off'}")
    await ensure_topics(settings)
    log = temp / "worker-00.log"  # one log per start: a killed worker's lines are kept apart from its successor's
    worker = start_worker(settings, log, "info")
    published = asyncio.Event()
    give_up = asyncio.Event()
    observed = Observed()
    publisher = asyncio.create_task(publish_slowly(settings, lines, keys, args.rate, published))
    observer = asyncio.create_task(observe(settings, observed, finals, give_up))
    failed = True
    try:
        for cycle in range(args.kills):
            life = rng.uniform(*(FIRST_KILL_S if cycle == 0 else LIFE_S))
            await asyncio.sleep(life)
            if worker.poll() is not None:
                say(f"worker exited by itself (rc {worker.returncode}):\n{_tail(log)}")
                return 1
            worker.kill()
            worker.wait()
            say(f"kill {cycle + 1}/{args.kills} after {life:.2f} s")
            if args.broker_restart and cycle == args.kills // 2:
                say("broker: stop")
                broker("stop")
                broker("start")
                say("broker: started again")
            log = temp / f"worker-{cycle + 1:02d}.log"
            worker = start_worker(settings, log, "info")
        deadline = time.monotonic() + args.timeout
        while not observer.done() and time.monotonic() < deadline:
            if worker.poll() is not None:
                say(f"worker exited by itself (rc {worker.returncode}):\n{_tail(log)}")
                return 1
            await asyncio.sleep(0.5)
        if not observer.done():
            say(f"timed out after {args.timeout:.0f} s: {sum(observed.highest.get(k, 0) >= v for k, v in finals.items())}"
                f" of {len(finals)} shipments at their final version")
            give_up.set()
            return 1
        await publisher
        verdict = judge(observed, expected, finals, input_keys(lines))
        for line in verdict.lines:
            say(line)
        failed = verdict.failed
        return 1 if failed else 0
    finally:
        give_up.set()
        publisher.cancel()
        await asyncio.gather(observer, publisher, return_exceptions=True)
        await stop_process(worker)
        await clean_up_run([], settings, prefix, temp, args.keep, failed)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.crash", description=__doc__.split("\n\n")[0])
    add_workload_arguments(parser)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--rate", type=float, default=500.0, help="input events per second")
    parser.add_argument("--duplicate-every", type=int, default=20, help="re-send every Nth line once more")
    parser.add_argument("--no-broker-restart", dest="broker_restart", action="store_false")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds after the last kill")
    parser.add_argument("--keep", action="store_true")
    parser.set_defaults(shipments=300, events_per_shipment=15)
    return asyncio.run(run(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
