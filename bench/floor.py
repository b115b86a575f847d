"""The stack's own floor: how fast faust itself moves the same bytes, against the raw aiokafka passthrough.

    python -m bench.floor [--shipments N --events-per-shipment K --repeat R]

bench.pipeline compares the hub with a raw aiokafka consume->produce passthrough. This bench asks how much of
the gap is faust's before the hub does any work: it runs, on the same published workload and in the same run,

  passthrough     the raw aiokafka consume->produce of bench.pipeline (run_baseline, in this process)
  faust           a faust agent (a subprocess, `python -m bench.floor agent`) that sends every event unchanged to
                  a sink topic: faust's consumer thread, conductor, stream, acks, commits and producer
  faust+table     as faust, and the event's bytes written to a RocksDB table keyed by shipment (its changelog too)
  faust+decode    the same as faust+table, and each event parsed and validated (streams.codec.decode_event):
                  the one pydantic validation per event that the hub cannot skip

The faust app runs with the settings the hub's faust worker had (acks=all, linger 0, PRODUCER_BATCH_BYTES producer batches,
RocksDB, raw serializers; faust's own fetch wait: the worker's stages now run on runtime.loop, not on faust's stream). Window for a faust mode: the CreateTime of the first message on
its sink topic -> the moment this process has read every message back (as bench.pipeline's observer does).
Start-up (imports, group join) is before the window. Modes alternate their order between repetitions. The hub
pipeline itself is bench.pipeline.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from dataclasses import replace

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from bench.pipeline import (
    new_run,
    Measurement,
    Progress,
    add_workload_arguments,
    clean_up_run,
    cpu_between,
    find_broker_pid,
    prepare,
    run_baseline,
    sample_cpu,
    say,
    stop_process,
)
from bench.workload import generate
from hubconf.settings import DEFAULT_BATCH_MAX, PRODUCER_BATCH_BYTES, Settings
from streams.codec import Rejection, decode_event

MODES = ("faust", "faust+table", "faust+decode")


def sink_topic(settings: Settings, mode: str) -> str:
    return settings.topics.name(f"bench.floor-{mode.replace('+', '-')}")


# --- the faust side (runs in its own process) -------------------------------------------------------------------


def run_agent(mode: str, source: str, sink: str, kafka: str, data_dir: str, partitions: int, app_id: str) -> None:
    import faust
    from faust.worker import Worker

    from hubconf.settings import Settings
    from worker.app import broker_credentials

    app = faust.App(
        app_id,
        broker=f"kafka://{kafka}",
        broker_credentials=broker_credentials(Settings.from_env()),  # the bench's own principal (admin)
        store="rocksdb://",
        datadir=data_dir,
        topic_partitions=partitions,
        topic_replication_factor=1,
        key_serializer="raw",
        value_serializer="raw",
        web_enabled=False,
        producer_acks=-1,
        producer_max_batch_size=PRODUCER_BATCH_BYTES,
        stream_buffer_maxsize=max(4096, 2 * DEFAULT_BATCH_MAX),  # as worker.app.create_app
    )
    source_topic = app.topic(source, key_type=bytes, value_type=bytes, partitions=partitions)
    sink_topic_ = app.topic(sink, key_type=bytes, value_type=bytes, partitions=partitions)
    table = app.Table("floor", default=None, key_type=bytes, value_type=bytes, partitions=partitions)

    @app.agent(source_topic, name="floor")
    async def floor(stream):  # type: ignore[no-untyped-def]
        async for event in stream.events():
            value = event.message.value
            if mode == "faust+decode" and isinstance(decode_event(value), Rejection):
                raise ValueError("the bench workload holds an invalid event")
            if mode != "faust":
                table[event.message.key] = value
            await sink_topic_.send(key=event.message.key, value=value)

    Worker(app, loglevel="warning").execute_from_commandline()


# --- the bench side ---------------------------------------------------------------------------------------------


async def run_faust(
    settings: Settings, mode: str, events: int, repetition: int, broker: int | None, timeout: float,
    processes: list[subprocess.Popen[bytes]],
) -> Measurement:
    sink = sink_topic(settings, mode)
    consumer = AIOKafkaConsumer(**settings.kafka_client(), client_id="bench-floor", enable_auto_commit=False)
    await consumer.start()
    partitions = [TopicPartition(sink, p) for p in range(settings.partitions)]
    consumer.assign(partitions)
    await consumer.seek_to_beginning(*partitions)
    log = settings.data_dir.parent / f"floor-{mode}-r{repetition}.log"
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as handle:
        agent = subprocess.Popen(
            [sys.executable, "-m", "bench.floor", "agent", "--mode", mode, "--source", settings.topics.events,
             "--sink", sink, "--kafka", settings.kafka, "--data-dir", str(settings.data_dir / mode),
             "--partitions", str(settings.partitions), "--app-id", f"{settings.namespace}.floor-{mode.replace('+', '-')}",
             "worker"],
            stdout=handle, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    processes.append(agent)
    progress = Progress(f"r{repetition} {mode}", events)
    start: float | None = None
    cpu0 = None
    seen = 0
    deadline = time.monotonic() + timeout
    try:
        while seen < events:
            batches = await consumer.getmany(timeout_ms=100)
            for messages in batches.values():
                for message in messages:
                    if start is None:
                        start = message.timestamp / 1000
                        cpu0 = sample_cpu(broker, agent.pid)
                    seen += 1
            progress.maybe(seen)
            if agent.poll() is not None:
                raise RuntimeError(f"the {mode} agent exited with {agent.returncode}; see {log}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{mode}: {seen}/{events} messages after {timeout:.0f} s; see {log}")
        end = time.time()
        cpu1 = sample_cpu(broker, agent.pid)
    finally:
        await consumer.stop()
    progress.show(seen)
    await stop_process(agent)
    assert start is not None and cpu0 is not None
    return Measurement(mode, repetition, events, end - start, cpu_between(cpu0, cpu1, sut_is_bench=False))


async def create_sinks(settings: Settings) -> None:
    admin = AIOKafkaAdminClient(**settings.kafka_client(), client_id="bench-admin")
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(sink_topic(settings, m), num_partitions=settings.partitions, replication_factor=1) for m in MODES]
        )
    finally:
        await admin.close()


async def run(args: argparse.Namespace) -> int:
    base = Settings.from_env()
    prefix, temp = new_run("bench", "floor")
    broker = find_broker_pid()
    processes: list[subprocess.Popen[bytes]] = []
    results: list[Measurement] = []
    failed = False
    try:
        workload = generate(args.shipments, args.events_per_shipment, args.order, args.seed, args.template)
        say(f"workload: {workload.describe()}")
        for repetition in range(1, args.repeat + 1):
            settings = replace(base, namespace=f"{prefix}-r{repetition}", data_dir=temp / f"r{repetition}")
            rate = await prepare(settings, workload)
            await create_sinks(settings)
            say(f"r{repetition}: published {workload.events:,} events ({rate:,.0f}/s)")
            kinds = ["passthrough", *MODES]
            if repetition % 2 == 0:
                kinds.reverse()
            for kind in kinds:
                await asyncio.sleep(args.pause)
                if kind == "passthrough":
                    result = await run_baseline(settings, workload, repetition, broker, args.timeout)
                else:
                    result = await run_faust(settings, kind, workload.events, repetition, broker, args.timeout, processes)
                results.append(replace(result, kind=kind))
                say(f"r{repetition} {kind}: {result.rate:,.0f} events/s ({result.seconds:.2f} s)")
        decode_ms = decode_cost_ms(workload.lines)
        report(results, decode_ms)
        return 0
    except Exception:
        failed = True
        raise
    finally:
        await clean_up_run(processes, base, f"{prefix}-", temp, args.keep, failed)


def decode_cost_ms(lines: list[bytes], rounds: int = 3) -> float:
    """CPU ms per event of streams.codec.decode_event alone (orjson + the pydantic validation every event gets),
    in this process: the best of `rounds` passes over the workload."""
    best = float("inf")
    for _ in range(rounds):
        started = time.process_time()
        for line in lines:
            if isinstance(decode_event(line), Rejection):
                raise ValueError("the bench workload holds an invalid event")
        best = min(best, (time.process_time() - started) * 1000 / len(lines))
    return best


def report(results: list[Measurement], decode_ms: float) -> None:
    by_rep = {(m.kind, m.repetition): m for m in results}
    reps = sorted({m.repetition for m in results})
    print("\nsummary (median [min .. max] over repetitions; ratio = mode / passthrough of the same repetition)")
    print(f"  {'':14} {'events/s':>28} {'ratio':>26} {'process CPU per event':>24}")
    for kind in ("passthrough", *MODES):
        rates = [by_rep[(kind, r)].rate for r in reps]
        ratios = [by_rep[(kind, r)].rate / by_rep[("passthrough", r)].rate for r in reps]
        cpu = [(by_rep[(kind, r)].cpu.sut or 0.0) * by_rep[(kind, r)].seconds / by_rep[(kind, r)].events * 1000 for r in reps]

        def spread(values: list[float], fmt: str) -> str:
            return f"{statistics.median(values):{fmt}} [{min(values):{fmt}} .. {max(values):{fmt}}]"

        print(f"  {kind:14} {spread(rates, ',.0f'):>28} {spread(ratios, '.3f'):>26} {spread(cpu, '.3f') + ' ms':>24}")
    passthrough = statistics.median(by_rep[("passthrough", r)].rate for r in reps)
    print(
        f"  decode_event alone: {decode_ms:.3f} ms CPU per event in this process, i.e. at most {1000 / decode_ms:,.0f} "
        f"events/s on one fully busy core = {1000 / decode_ms / passthrough:.3f} x the passthrough's median"
    )


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    if argv[:1] == ["agent"]:
        agent = argparse.ArgumentParser(prog="python -m bench.floor agent")
        agent.add_argument("--mode", choices=MODES, required=True)
        for name in ("--source", "--sink", "--kafka", "--data-dir", "--app-id"):
            agent.add_argument(name, required=True)
        agent.add_argument("--partitions", type=int, required=True)
        known, rest = agent.parse_known_args(argv[1:])
        sys.argv = [sys.argv[0], *rest]  # faust's command line: `worker`
        run_agent(known.mode, known.source, known.sink, known.kafka, known.data_dir, known.partitions, known.app_id)
        return 0
    parser = argparse.ArgumentParser(prog="python -m bench.floor", description=__doc__.split("\n\n")[0])
    add_workload_arguments(parser)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--pause", type=float, default=1.0, help="idle seconds before each measurement")
    parser.add_argument("--keep", action="store_true", help="keep the run's topics and temp dir")
    return asyncio.run(run(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
