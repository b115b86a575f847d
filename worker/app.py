"""`mmhub worker`: a faust App whose services run the worker's stages on the stage runtime (runtime.loop).

faust is the application framework (the worker's lifecycle, signals, logging, timers and its producer); the
high-volume stages each run one `StageRunner`, with its own consumer group, batches, stores and checkpoints:

- connect: the raw carrier topics -> hub.events / hub.references (no store);
- resolve: hub.references -> the reference books (store "references") -> released events to hub.events;
- merge: hub.events -> the shipment states and deadlines (stores "shipments", "deadlines") -> status versions,
  settlement, claims, registrations.

Every decision is made by the stages' handlers (worker.stages, over the pure core in streams/). The presumed-loss
clock stays a faust timer: it reads the deadlines of the merge partitions this worker holds and publishes a
report event for each shipment past its deadline.

A process runs all three stages unless MMHUB_WORKER_STAGES names some (Settings.worker_stages): each is its own
consumer group, so the connect stage, whose Ed25519 checks cost ~50 us of CPU a carrier message, can run in
processes of its own beside one that resolves and merges (bench/README).
"""

from __future__ import annotations

import asyncio
import gc
import logging
from datetime import datetime, timedelta, timezone
from typing import Any, Sequence

import faust
from faust.app.base import BootStrategy
from mode import Service

from connectors.acl import Operation, Pattern, Resource, hub_acls
from connectors.carriers import load_registry
from connectors.parties import load_parties
from hubconf import topics as topic_names
from runtime.logs import logging_config
from runtime.metrics import count_events, host_for, observe_parked, port_for, watch_collector
from hubconf.settings import EXACTLY_ONCE, PRODUCER_BATCH_BYTES, Settings
from runtime.api import Stage
from runtime.loop import StageRunner
from runtime.state import StoreLocked, hold_data_dir
from streams.clock import presumed_loss
from streams.codec import encode_event, read_state
from streams.horizon import Horizon
from streams.merge import project
from streams.references import EXPIRE_MESSAGE, decode_book, overdue
from worker.stages import (
    DEADLINES,
    REFERENCES,
    SHIPMENTS,
    ConnectHandler,
    Counters,
    DeadLetters,
    MergeHandler,
    ResolveHandler,
    WarmStates,
)

log = logging.getLogger("mmhub.worker")

GC_THRESHOLDS = (700, 10, 10_000)  # gen0 allocations, gen0 runs per gen1, gen1 runs per gen2; see run_worker
CLOCK_YIELD_EVERY = 50  # presumed-loss reports between two chances for the stages to run
STOP_TIMEOUT_S = 60.0  # a stage's last checkpoint and leave on a graceful stop


class StagesOnly(BootStrategy):
    """faust without its own consumer (and so without its tables): the stages consume with the runtime's groups."""

    enable_kafka_consumer = False
    enable_web = False


class StageServices(Service):
    """Runs the worker's StageRunners (`runners`, set by create_app on a subclass) for the worker's life. A graceful
    stop checkpoints what is pending and leaves the groups; a runner that fails (another process holds its RocksDB,
    its topics are missing) stops the worker."""

    runners: tuple[StageRunner, ...] = ()

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._running: list[asyncio.Task[None]] = []

    async def on_start(self) -> None:
        self._running = [asyncio.create_task(self._run(runner)) for runner in self.runners]

    async def _run(self, runner: StageRunner) -> None:
        try:
            await runner.run()
        except StoreLocked as error:
            log.error("%s", error)
            await self.crash(error)
        except Exception as error:  # noqa: BLE001 - the worker must stop, not run without this stage
            log.exception("stage %s failed", runner.stage.name)
            await self.crash(error)

    async def on_stop(self) -> None:
        for runner in self.runners:
            runner.stop()
        done, pending = await asyncio.wait(self._running, timeout=STOP_TIMEOUT_S) if self._running else (set(), set())
        for task in pending:
            log.warning("a stage did not stop within %.0f s", STOP_TIMEOUT_S)
            task.cancel()


def broker_credentials(settings: Settings) -> faust.SASLCredentials | None:
    """faust's form of Settings.kafka_client's credentials (its producer uses them)."""
    client = settings.kafka_client()
    if "sasl_mechanism" not in client:
        return None
    return faust.SASLCredentials(
        username=client["sasl_plain_username"],
        password=client["sasl_plain_password"],
        mechanism=client["sasl_mechanism"],
    )


def worker_stages(settings: Settings, counters: Counters) -> tuple[Stage, Stage, Stage]:
    """The worker's three stages (connect, resolve, merge) with their handlers, inputs and stores."""
    names = settings.topics
    registry = load_registry(settings.carriers_path)
    authority = load_parties(
        settings.parties_path
    ).authority()  # who owns which shipment ids: the fold's only source of the MTO
    horizon = Horizon.of(settings)
    dead_letters = DeadLetters(names.dlq, counters)
    raw = {names.raw(name): name for name in topic_names.RAW_FORMATS}
    connect = Stage(
        "connect",
        settings.stage_group("connect"),
        tuple(raw),
        ConnectHandler(raw, registry, horizon, names, dead_letters, counters),
    )
    resolve_handler = ResolveHandler(names, dead_letters, counters, parked_ttl=timedelta(seconds=settings.parked_ttl_s))
    resolve = Stage(
        "resolve",
        settings.stage_group("resolve"),
        (names.references,),
        resolve_handler,
        {REFERENCES: settings.changelog(REFERENCES)},
        on_revoked=resolve_handler.forget,
    )
    # Exactly-once outputs need no re-send of the current version on a replay: a replayed event's version was
    # committed with the offsets that would have skipped it. At least once, a replay sends it again.
    merge_handler = MergeHandler(
        names,
        authority,
        horizon,
        dead_letters,
        counters,
        resend_on_replay=settings.guarantee != EXACTLY_ONCE,
        warm=WarmStates(settings.warm_states),
    )
    merge = Stage(
        "merge",
        settings.stage_group("merge"),
        (names.events,),
        merge_handler.take,
        {SHIPMENTS: settings.changelog(SHIPMENTS), DEADLINES: settings.changelog(DEADLINES)},
        flush=merge_handler.flush,  # one version per shipment per checkpoint
        discard=merge_handler.discard,
    )
    return connect, resolve, merge


def create_app(settings: Settings) -> faust.App:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        settings.app_id,
        broker=f"kafka://{settings.kafka}",
        broker_credentials=broker_credentials(settings),
        datadir=str(settings.data_dir / settings.app_id),
        topic_partitions=settings.partitions,
        topic_replication_factor=1,
        key_serializer="raw",
        value_serializer="raw",
        web_enabled=False,
        producer_acks=-1,
        producer_max_batch_size=PRODUCER_BATCH_BYTES,
    )
    app.boot_strategy = StagesOnly(app)
    counters = Counters()
    exported = Counters()  # what the report timer has handed to runtime.metrics so far
    app.mmhub_counters = counters  # type: ignore[attr-defined]
    connect, resolve, merge = worker_stages(settings, counters)
    resolve_handler = resolve.handler
    assert isinstance(resolve_handler, ResolveHandler)  # noqa: S101 - built by worker_stages
    chosen = tuple(stage for stage in (connect, resolve, merge) if stage.name in settings.worker_stages)
    app.mmhub_stages = chosen  # type: ignore[attr-defined]
    runners = {stage.name: StageRunner(stage, settings) for stage in chosen}

    @app.service
    class Stages(StageServices):
        pass

    Stages.runners = tuple(runners.values())
    events_topic = app.topic(settings.topics.events, key_type=bytes, value_type=bytes)
    references_topic = app.topic(settings.topics.references, key_type=bytes, value_type=bytes)
    parked_ttl = timedelta(seconds=settings.parked_ttl_s)
    authority = load_parties(settings.parties_path).authority()

    @app.timer(interval=settings.clock_interval_s)
    async def presume_losses() -> None:
        """Publish the presumed-loss report of every shipment past its deadline on the merge partitions held here
        (see streams.clock)."""
        if "merge" not in runners:
            return  # the deadlines are the merge stage's: the process that runs it reports them
        now = datetime.now(timezone.utc)
        overdue = 0
        for stores in runners["merge"].stores().values():
            for key, raw_due in list(stores[DEADLINES].items()):
                if datetime.fromisoformat(raw_due.decode()) > now:
                    continue
                state = read_state(stores[SHIPMENTS].get, key.decode())
                if state is None:
                    continue
                report = presumed_loss(project(state, authority), now)
                if report is not None:
                    log.warning(
                        "shipment %s is past its delivery deadline: publishing a presumed-loss report", key.decode()
                    )
                    await events_topic.send(key=key, value=encode_event(report))
                    overdue += 1
                    if overdue % CLOCK_YIELD_EVERY == 0:
                        # A tick can find tens of thousands overdue (bench.state's past deadlines found 70,628): let
                        # the stages run between them instead of holding the event loop for the whole tick.
                        await asyncio.sleep(0)

    @app.timer(interval=settings.report_interval_s)
    async def report() -> None:
        now = datetime.now(timezone.utc)
        # Only the books this worker parked events in, and those its partitions held parked events in when it took
        # them (looked through once, encoded: decoding every reference of every shipment, hundreds of thousands,
        # each tick would hold the event loop). The full picture is `mmhub parked`.
        held = runners["resolve"].stores() if "resolve" in runners else {}
        for number, stores in held.items():
            if number not in resolve_handler.indexed:  # a partition restored since: what was parked before it
                resolve_handler.index(number, stores[REFERENCES].items())
        books = [stores[REFERENCES] for stores in held.values()]
        waiting = []
        for key in list(resolve_handler.parked):
            raw = next((found for found in (book.get(key) for book in books) if found is not None), None)
            if raw is not None:
                book = decode_book(raw)
                waiting.append(book.parked)
                if overdue(book, now, parked_ttl):
                    # the resolve stage dead-letters what has waited too long, in its own checkpoint
                    await references_topic.send(key=key, value=EXPIRE_MESSAGE)
        oldest = min((p.since for parked in waiting for p in parked), default=None)
        export(counters, exported)
        observe_parked(sum(len(parked) for parked in waiting), (now - oldest).total_seconds() if oldest else None)
        log.info(
            "applied=%d duplicates=%d dead_lettered=%d %s refused=%d connected=%d forwarded=%d resolved=%d "
            "parked_now=%d oldest_parked_s=%s versions_emitted=%d batches=%d largest_batch=%d oldest_input_s=%.3f "
            "warm_hits=%d warm_misses=%d",
            counters.applied,
            counters.duplicates,
            counters.dead_lettered,
            dict(counters.by_reason),
            counters.refused,
            counters.connected,
            counters.forwarded,
            counters.resolved,
            sum(len(parked) for parked in waiting),
            f"{(now - oldest).total_seconds():.0f}" if oldest else "-",
            counters.versions_emitted,
            counters.batches,
            counters.largest_batch,
            counters.oldest_input_s,
            counters.warm_hits,
            counters.warm_misses,
        )
        for name, runner in runners.items():
            log.info("stage %s: %s", name, runner.counters)
        log.info("collector: %s", watch_collector().summary())
        counters.oldest_input_s = 0.0

    return app


def export(counters: Counters, exported: Counters) -> None:
    """Hand runtime.metrics what `counters` gained since `exported` (then brought up to date)."""
    reasons = {code: n - exported.by_reason[code] for code, n in counters.by_reason.items() if n > exported.by_reason[code]}
    count_events(counters.applied - exported.applied, counters.duplicates - exported.duplicates, reasons)
    exported.applied, exported.duplicates = counters.applied, counters.duplicates
    exported.by_reason.update(counters.by_reason)


def banner(settings: Settings, stages: Sequence[Stage], metrics_port: int, metrics_host: str) -> list[str]:
    """What `mmhub worker` says when it starts, one log line each: its stages with their groups, inputs and stores,
    the topics it writes, the guarantee, where its state and its metrics are."""
    writes = [
        acl.name
        for acl in hub_acls(settings)
        if (acl.user, acl.resource, acl.operation, acl.pattern)
        == ("worker", Resource.TOPIC, Operation.WRITE, Pattern.LITERAL)
    ]
    lines = [
        f"mmhub worker {settings.app_id}: stages {', '.join(stage.name for stage in stages)} on the stage runtime,"
        f" each its own consumer group; guarantee {settings.guarantee} (MMHUB_GUARANTEE); Kafka {settings.kafka}"
        f" as {settings.kafka_user}",
    ]
    for stage in stages:
        stores = ", ".join(f"{store} (changelog {topic})" for store, topic in stage.changelogs.items()) or "none"
        lines.append(f"stage {stage.name}: group {stage.group}; reads {', '.join(stage.inputs)}; stores {stores}")
    lines += [
        f"writes {', '.join(writes)}",
        f"state: RocksDB under {settings.data_dir} (MMHUB_DATA_DIR), one directory per stage group and partition",
        f"metrics: http://{metrics_host}:{metrics_port}/metrics" if metrics_port else "metrics: off (MMHUB_METRICS_PORT=0)",
        (
            f"presumed-loss clock every {settings.clock_interval_s:g} s"
            if any(stage.name == "merge" for stage in stages)
            else "presumed-loss clock: not here (it reads the merge stage's deadlines)"
        )
        + f"; counters logged every {settings.report_interval_s:g} s",
    ]
    return lines


def run_worker(settings: Settings, loglevel: str = "info") -> None:
    """Run the stream worker in the foreground until SIGTERM/SIGINT."""
    from faust.worker import Worker

    held = hold_data_dir(settings.data_dir)  # noqa: F841 - held until the process exits
    app = create_app(settings)
    for line in banner(settings, app.mmhub_stages, port_for("worker"), host_for()):  # type: ignore[attr-defined]
        log.info("%s", line)
    # The worker's heap is mostly long-lived (the warm states and records): with CPython's default thresholds a full
    # collection walks all of it every few seconds (bench.latency at 300 events/s: p99 431 -> 280 ms without). What
    # a young or middle collection walks is what survived since the last one: the records of recent versions. So
    # both run often and short (CPython's 700 and 10: pauses up to 16-40 and 72-78 ms in bench.latency, against
    # 340-364 ms for young runs at a 50,000 threshold, the same total), and a full one only after 10,000 middle ones
    # (by the middle ones' rate in bench.latency, about half an hour at the max rate: an estimate, none seen yet; it
    # walks the whole heap, 2.7-2.9 s when measured). bench/README, "The worker's garbage collector: short pauses".
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    watch_collector()  # each collection's pause: mmhub_gc_pause_seconds, and the report's "collector:" line
    worker = Worker(app, loglevel=loglevel, logging_config=logging_config(loglevel))
    try:
        worker.execute_from_commandline()
    except SystemExit:
        # mode turns every crash into exit 1; a store another worker holds is the user's to fix (mmhub.entry)
        if isinstance(worker.crash_reason, StoreLocked):
            raise worker.crash_reason from None
        raise
