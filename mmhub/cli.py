"""`mmhub`: one command line for the whole hub (local services, worker, sink, publishing, replay, inspection)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson

from mmhub.config import Settings

REPO = Path(__file__).resolve().parents[1]


def _dev(action: str) -> int:
    return subprocess.call(["bash", str(REPO / "infra" / "dev.sh"), action])


def _worker(args: argparse.Namespace, settings: Settings) -> int:
    from connectors.kafka import ensure_topics
    from streams.app import run_worker

    asyncio.run(ensure_topics(settings))
    sys.argv = [sys.argv[0]]  # faust's Worker parses argv; it must not see ours
    run_worker(settings, loglevel=args.loglevel)
    return 0


def _sink(args: argparse.Namespace, settings: Settings) -> int:
    from connectors.kafka import ensure_topics
    from connectors.postgres.sink import run_sink

    logging.basicConfig(level=args.loglevel.upper(), format="[%(asctime)s] [%(process)d] [%(levelname)s] %(message)s")

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)  # finish the batch in hand, then leave
        await ensure_topics(settings)
        await run_sink(settings, stop=stop, on_batch=progress.add)

    progress = _Progress("projected")
    asyncio.run(main())
    return 0


class _Progress:
    """Counts what a long-running process did and logs it now and then, so an operator sees it is alive."""

    def __init__(self, what: str, every_s: float = 30.0) -> None:
        self.what = what
        self.every_s = every_s
        self.total = 0
        self._last = time.monotonic()

    def add(self, count: int) -> None:
        self.total += count
        if time.monotonic() - self._last >= self.every_s:
            logging.getLogger("mmhub").info("%s %d status messages so far", self.what, self.total)
            self._last = time.monotonic()


def _topics(args: argparse.Namespace, settings: Settings) -> int:
    from connectors.kafka import ensure_topics

    created = asyncio.run(ensure_topics(settings))
    for name in settings.topics.all():
        print(f"{name}\t{'created' if name in created else 'exists'}")
    return 0


def _publish(args: argparse.Namespace, settings: Settings) -> int:
    from connectors.kafka import ensure_topics, publish, read_jsonl, scramble

    lines = read_jsonl(Path(args.file))
    if args.scramble:
        lines = scramble(lines, duplicates=args.duplicates, seed=args.seed)

    async def main() -> int:
        await ensure_topics(settings)
        return await publish(settings, lines)

    sent = asyncio.run(main())
    print(f"published {sent} events to {settings.topics.events}", file=sys.stderr)
    return 0


def _fold(args: argparse.Namespace, settings: Settings) -> int:
    from connectors.kafka import read_jsonl
    from streams.codec import Rejection, decode_event
    from streams.merge import fold

    events = []
    rejected = 0
    for number, line in enumerate(read_jsonl(Path(args.file)), start=1):
        decoded = decode_event(line)
        if isinstance(decoded, Rejection):
            rejected += 1
            print(f"line {number}: rejected ({decoded.code}): {decoded.reason}", file=sys.stderr)
        elif decoded.shipment_id is None:
            rejected += 1
            print(f"line {number}: rejected (unresolved): no shipment_id", file=sys.stderr)
        else:
            events.append(decoded)
    records = fold(events)
    selected = [r for r in records.values() if args.shipment in (None, r.shipment_id)]
    document = [r.model_dump(mode="json") for r in selected]
    sys.stdout.buffer.write(orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n")
    print(f"folded {len(events)} events into {len(records)} shipment(s); {rejected} rejected", file=sys.stderr)
    return 0 if rejected == 0 or args.allow_rejects else 1


def _shipment_get(args: argparse.Namespace, settings: Settings) -> int:
    from connectors.postgres.store import fetch_record
    from mmhub.render import summary
    from schemas.record import ShipmentRecord

    row = asyncio.run(fetch_record(settings, args.shipment_id))
    if row is None:
        print(f"shipment {args.shipment_id} is not in the projection", file=sys.stderr)
        return 1
    if args.json:
        sys.stdout.buffer.write(orjson.dumps(row, option=orjson.OPT_INDENT_2) + b"\n")
    else:
        projected_at = row.pop("projected_at")
        print(summary(ShipmentRecord.model_validate_json(orjson.dumps(row))))
        print(f"  Projected to Postgres at {projected_at}")
    return 0


def _schema(args: argparse.Namespace, settings: Settings) -> int:
    from schemas.export import json_schemas

    schemas = json_schemas()
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        for name, schema in schemas.items():
            (out / f"{name}.schema.json").write_bytes(orjson.dumps(schema, option=orjson.OPT_INDENT_2))
            print(out / f"{name}.schema.json")
    else:
        sys.stdout.buffer.write(orjson.dumps(schemas, option=orjson.OPT_INDENT_2) + b"\n")
    return 0


def _demo(args: argparse.Namespace, settings: Settings) -> int:
    from mmhub.demo import run_demo

    return run_demo(settings, [Path(name) for name in args.files])


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="mmhub", description=__doc__)
    sub = top.add_subparsers(dest="command", required=True)

    dev = sub.add_parser("dev", help="start/stop the local Kafka broker and Postgres (no Docker needed)")
    dev.add_argument("action", choices=["up", "down", "status", "reset"])

    worker = sub.add_parser("worker", help="run the stream worker (merge agent)")
    worker.add_argument("--loglevel", default="info")
    worker.set_defaults(run=_worker)

    sink = sub.add_parser("sink", help="run the Postgres projection")
    sink.add_argument("--loglevel", default="info")
    sink.set_defaults(run=_sink)
    sub.add_parser("topics", help="create the hub's topics if absent").set_defaults(run=_topics)

    publish = sub.add_parser("publish", help="send a JSON-lines file of canonical events to hub.events")
    publish.add_argument("file")
    publish.add_argument("--scramble", action="store_true", help="shuffle the events and add duplicates")
    publish.add_argument("--duplicates", type=int, default=10)
    publish.add_argument("--seed", type=int, default=7)
    publish.set_defaults(run=_publish)

    fold = sub.add_parser("fold", help="replay a JSON-lines event log offline and print the record(s)")
    fold.add_argument("file")
    fold.add_argument("--shipment", help="print only this shipment")
    fold.add_argument("--allow-rejects", action="store_true", help="exit 0 even if some lines were rejected")
    fold.set_defaults(run=_fold)

    shipment = sub.add_parser("shipment", help="read shipments from the Postgres projection")
    shipment_sub = shipment.add_subparsers(dest="shipment_command", required=True)
    get = shipment_sub.add_parser("get", help="show one shipment's merged record")
    get.add_argument("shipment_id")
    get.add_argument("--json", action="store_true", help="machine-readable output")
    get.set_defaults(run=_shipment_get)

    schema = sub.add_parser("schema", help="export the JSON Schema of every canonical model")
    schema.add_argument("--out", help="write one file per model into this directory")
    schema.set_defaults(run=_schema)

    demo = sub.add_parser("demo", help="run the hub and play a multimodal journey end to end")
    demo.add_argument(
        "files",
        nargs="*",
        default=[str(REPO / "examples" / "journey.jsonl"), str(REPO / "examples" / "journey-claim.jsonl")],
        help="JSON-lines event logs to play (default: the two example journeys)",
    )
    demo.set_defaults(run=_demo)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "dev":
        return _dev(args.action)
    code: int = args.run(args, Settings.from_env())
    return code


if __name__ == "__main__":
    sys.exit(main())
