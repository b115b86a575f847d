"""`mmhub`: one command line for the whole hub (local services, worker, sink, publishing, replay, inspection)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Awaitable, Callable

import orjson

from connectors.webhooks.commands import add_commands as add_webhook_commands
from hubconf.settings import Settings
from mmhub.helptext import add_command as add_help_command
from mmhub.helptext import document
from mmhub.quarantine import add_commands as add_quarantine_commands
from mmhub.render import utc
from mmhub.invoice import add_invoice_commands
from mmhub.dataset import add_dataset_commands
from hubconf.topics import RAW_FORMATS
from schemas.rejection import Rejection

if TYPE_CHECKING:
    from connectors.carriers import SigningKey
    from schemas.events import HubEvent

REPO = Path(__file__).resolve().parents[1]


def _dev(args: argparse.Namespace) -> int:
    if args.action == "reset" and not args.yes:
        home = os.environ.get("MMHUB_HOME", Path.home() / ".cache" / "mmhub")
        print(
            f"mmhub dev reset stops the local Kafka and Postgres and DELETES their data under {home}/run:"
            " every topic, every schema, the generated passwords.",
            file=sys.stderr,
        )
        if not sys.stdin.isatty():
            print("mmhub dev reset: nothing deleted; run it with --yes to go on", file=sys.stderr)
            return 2
        if input("type yes to delete it all: ").strip() != "yes":
            print("mmhub dev reset: nothing deleted", file=sys.stderr)
            return 2
    return subprocess.call(["bash", str(REPO / "infra" / "dev.sh"), args.action])


def _worker(args: argparse.Namespace, settings: Settings) -> int:
    from mmhub.entry import probe_kafka, probe_topics
    from worker.app import run_worker

    async def probe() -> None:  # faust would log these failures as tracebacks: say them in one line first
        await probe_kafka(settings)
        names = settings.topics
        await probe_topics(settings, [names.events, names.references, *(names.raw(f) for f in RAW_FORMATS)])

    asyncio.run(probe())
    sys.argv = [sys.argv[0]]  # faust's Worker parses argv; it must not see ours
    run_worker(settings, loglevel=args.loglevel)
    return 0


def _sink(args: argparse.Namespace, settings: Settings) -> int:
    from connectors.postgres.sink import run_sink

    return _consume(args, settings, run_sink, "projected")


def _share(args: argparse.Namespace, settings: Settings) -> int:
    from connectors.sharing.stage import run_share

    return _consume(args, settings, run_share, "shared")


def _consume(args: argparse.Namespace, settings: Settings, run: Callable[..., Awaitable[None]], what: str) -> int:
    """Run a stage that consumes `hub.shipment.status` batch by batch until SIGTERM or SIGINT."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)  # finish the batch in hand, then leave
        await run(settings, stop=stop, on_batch=progress.add)

    progress = _Progress(what)
    asyncio.run(main())
    return 0


def _usage(args: argparse.Namespace, settings: Settings) -> int:
    import asyncpg

    from connectors.sharing.audit import month_range, table, usage

    if args.party is None and args.shipment is None:
        print("mmhub usage: give --party (with --month) or --shipment", file=sys.stderr)
        return 2
    if args.month is not None:
        try:
            month_range(args.month)
        except ValueError as error:
            print(f"mmhub usage: {error}", file=sys.stderr)
            return 2
    try:
        report = asyncio.run(usage(settings, args.party, args.shipment, args.month))
    except asyncpg.UndefinedTableError:
        print(f"mmhub usage: no share audit in schema {settings.pg_schema!r} (has `mmhub share` run?)", file=sys.stderr)
        return 1
    if args.json:
        sys.stdout.buffer.write(orjson.dumps(report, option=orjson.OPT_INDENT_2) + b"\n")
    else:
        print(table(report))
    return 0


def _audit_verify(args: argparse.Namespace, settings: Settings) -> int:
    """Recompute the share audit's hash chain and compare it with hub.audit; exit 1 on any finding."""
    import asyncpg

    from connectors.sharing.chain import check

    try:
        report = asyncio.run(check(settings))
    except (asyncpg.UndefinedTableError, asyncpg.UndefinedColumnError):
        print(f"mmhub audit verify: no chained share audit in schema {settings.pg_schema!r} (migrations before 0008)",
              file=sys.stderr)
        return 2
    if args.json:
        sys.stdout.buffer.write(orjson.dumps(report.document(), option=orjson.OPT_INDENT_2) + b"\n")
    else:
        for finding in report.findings:
            print(finding.line())
        verdict = f"{len(report.findings)} finding(s)" if report.findings else "the chain is whole and hub.audit agrees"
        print(f"{report.rows} row(s) in share_audit, {report.published} message(s) on hub.audit, "
              f"{report.pending} waiting in the outbox: {verdict}")
    return 1 if report.findings else 0


def _gateway(args: argparse.Namespace, settings: Settings) -> int:
    from connectors.carriers import RegistryError, load_registry
    from connectors.gateway.serve import run_gateway
    from connectors.parties import load_parties

    try:
        registry = load_registry(settings.carriers_path)
        parties = load_parties(settings.parties_path)
    except (RegistryError, ValueError) as error:
        print(f"mmhub gateway: {error}", file=sys.stderr)
        return 2

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)  # answer the requests in hand, then leave
        await run_gateway(settings, registry, args.host, args.port, stop, parties)

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
    from mmhub.entry import probe_kafka

    asyncio.run(probe_kafka(settings))  # ensure_topics waits up to 30 s for a broker that is starting
    created = asyncio.run(ensure_topics(settings))
    states = [{"topic": name, "state": "created" if name in created else "exists"} for name in settings.topics.all()]
    if args.json:
        _json_out(states)
    else:
        for state in states:
            print(f"{state['topic']}\t{state['state']}")
    return 0


def _publish(args: argparse.Namespace, settings: Settings) -> int:
    """Decode every line first, as the worker will: a file with lines the hub would dead-letter is not sent (unless
    --allow-rejects), so a typo is an error here and not a silent dead letter there."""
    from connectors.kafka import publish, read_jsonl, scramble
    from connectors.parties import load_parties
    from mmhub.dataset import checked as decode_checked
    from mmhub.entitlement import refused_lines
    from mmhub.entry import REFUSED, probe_kafka

    lines = read_jsonl(Path(args.file))
    checked = decode_checked(lines, settings, datetime.now(timezone.utc))
    refused = [(number, result) for number, result in enumerate(checked, start=1) if isinstance(result, Rejection)]
    refused += refused_lines(checked, load_parties(settings.parties_path).authority())  # the merge's not_entitled
    rejects = [
        {"line": number, "code": result.code, "reason": result.reason}
        for number, result in sorted(refused, key=lambda numbered: numbered[0])
    ]
    for reject in rejects:
        print(f"{args.file}:{reject['line']}: rejected ({reject['code']}): {reject['reason']}", file=sys.stderr)
    topic = settings.topics.events
    sent = 0
    if rejects and not args.allow_rejects:
        print(
            f"mmhub publish: nothing sent: {len(rejects)} of {len(lines)} line(s) would be dead-lettered"
            " (fix them, or send them anyway with --allow-rejects)",
            file=sys.stderr,
        )
    else:
        if args.scramble:
            lines = scramble(lines, duplicates=args.duplicates, seed=args.seed)
        asyncio.run(probe_kafka(settings))
        sent = asyncio.run(publish(settings, lines))
        doomed = f" ({len(rejects)} of them will be dead-lettered: see `mmhub dlq`)" if rejects else ""
        print(f"published {sent} events to {topic}{doomed}", file=sys.stderr)
    if args.json:
        _json_out({"topic": topic, "sent": sent, "rejected": rejects})
    if sent and args.wait:
        from mmhub.entitlement import refused_by_the_hub

        events = [result for result in checked if not isinstance(result, Rejection)]
        projected = _wait_projected(settings, events, args.wait)
        if projected is None:
            return REFUSED
        # the hub's answer, with all it holds of the shipments (a booking sent before this file, say)
        refused_there = refused_by_the_hub(projected, {event.key for event in events})
        for key, reason in sorted(refused_there.items()):
            print(f"{args.file}: refused by the hub (not_entitled): {key}: {reason}", file=sys.stderr)
        if refused_there:
            return REFUSED
    return REFUSED if rejects and not args.allow_rejects else 0


def _wait_projected(settings: Settings, events: list[HubEvent], timeout_s: float) -> list[dict[str, object]] | None:
    """Wait until Postgres holds each shipment of `events` at least at the version the offline fold gives them, and
    has taken in each of their copies (also when it held the shipment before), printing each version as it arrives;
    their records, or None (and why) after `timeout_s`."""
    import asyncpg

    from connectors.parties import load_parties
    from connectors.postgres.store import fetch_record, held_fingerprints
    from streams.merge import fingerprint, fold

    authority = load_parties(settings.parties_path).authority()
    placed = [e for e in events if e.shipment_id]
    wanted = {sid: r.version for sid, r in fold(placed, authority).items()}
    copies: dict[str, set[str]] = {}
    for event in placed:
        copies.setdefault(str(event.shipment_id), set()).add(fingerprint(event))
    seen: dict[str, int] = {}
    rows: dict[str, dict[str, object]] = {}

    async def poll() -> bool:
        deadline = time.monotonic() + timeout_s
        while True:
            for shipment_id, version in wanted.items():
                try:
                    if copies[shipment_id]:  # before the record: a record read after them includes them
                        copies[shipment_id] -= await held_fingerprints(settings, shipment_id, sorted(copies[shipment_id]))
                    row = await fetch_record(settings, shipment_id)
                except asyncpg.UndefinedTableError:
                    row = None  # the sink makes its tables when it starts
                if row is not None:
                    rows[shipment_id] = row
                now_at = int(row["version"]) if row else 0
                if seen.get(shipment_id) != now_at:
                    seen[shipment_id] = now_at
                    print(f"{shipment_id}: version {now_at} of {version} in Postgres", file=sys.stderr)
            if all(seen[sid] >= version and not copies[sid] for sid, version in wanted.items()):
                return True
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.25)

    if asyncio.run(poll()):
        print(f"projected: {len(wanted)} shipment(s) in Postgres ({settings.pg_schema})", file=sys.stderr)
        return list(rows.values())
    print(
        f"mmhub publish: not projected within {timeout_s:g} s; are `mmhub worker` and `mmhub sink` running"
        f" (MMHUB_NAMESPACE={settings.namespace!r}, MMHUB_PG_SCHEMA={settings.pg_schema})?",
        file=sys.stderr,
    )
    return None


def _json_out(document: object) -> None:
    sys.stdout.buffer.write(orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n")


def _timestamp(text: str) -> datetime:
    try:
        stamp = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 timestamp") from None
    if stamp.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} needs a timezone offset (e.g. 2026-01-01T00:00:00Z)")
    return stamp


def _keys_new(args: argparse.Namespace, settings: Settings) -> int:
    from pydantic import ValidationError

    from connectors.carriers import new_key
    from schemas.rejection import describe

    not_before = args.not_before or datetime.now(timezone.utc).replace(microsecond=0)
    try:
        signing, entry = new_key(args.carrier, args.key_id, args.algorithm, not_before)
    except ValidationError as error:
        print(f"mmhub keys new: {describe(error)}", file=sys.stderr)
        return 2
    document = {"registry_entry": entry.model_dump(mode="json", exclude_none=True)}
    private = signing.model_dump(mode="json", exclude_none=True)
    if args.out:
        try:
            # O_EXCL: never overwrite a key someone may still be signing with; 0600 from the first byte
            handle = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as error:
            print(f"mmhub keys new: cannot create {args.out}: {error.strerror or error}", file=sys.stderr)
            return 2
        with os.fdopen(handle, "wb") as out:
            out.write(orjson.dumps(private, option=orjson.OPT_INDENT_2) + b"\n")
        print(f"wrote the signing key to {args.out} (mode 0600)", file=sys.stderr)
    else:
        document["signing_key"] = private
    sys.stdout.buffer.write(orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n")
    return 0


def _carriers_add_key(args: argparse.Namespace, settings: Settings) -> int:
    """Register a key a carrier sent (the `registry_entry` that `mmhub keys new` printed) in MMHUB_CARRIERS: the
    file is checked whole as the hub will load it, then replaced in one rename."""
    from pydantic import ValidationError

    from connectors.carriers import CarrierKey, CarrierRegistry, load_registry
    from mmhub.entry import REFUSED, USAGE
    from schemas.rejection import describe

    path = settings.carriers_path
    raw = sys.stdin.buffer.read() if args.entry == "-" else Path(args.entry).read_bytes()
    try:
        document = orjson.loads(raw)
        entry = CarrierKey.model_validate(document.get("registry_entry", document) if isinstance(document, dict) else document)
    except orjson.JSONDecodeError as error:
        print(f"mmhub carriers add-key: {args.entry}: not JSON: {error}", file=sys.stderr)
        return USAGE
    except ValidationError as error:
        print(f"mmhub carriers add-key: {args.entry}: not a registry entry: {describe(error)}", file=sys.stderr)
        return USAGE
    registry = load_registry(path).model_dump(mode="json", exclude_none=True)
    carriers: list[dict[str, object]] = registry["carriers"]
    carrier = next((c for c in carriers if c["party_id"] == args.carrier), None)
    if carrier is None:
        if not args.name:
            print(f"mmhub carriers add-key: {args.carrier} is not in {path}; give --name to register it", file=sys.stderr)
            return USAGE
        carrier = {"party_id": args.carrier, "name": args.name, "keys": []}
        carriers.append(carrier)
    keys = carrier["keys"]
    assert isinstance(keys, list)
    keys.append(entry.model_dump(mode="json", exclude_none=True))
    try:
        checked = CarrierRegistry.model_validate(registry)  # a repeated key id, a bad party id: nothing is written
    except ValidationError as error:
        print(f"mmhub carriers add-key: {path} would not load: {describe(error)}; nothing written", file=sys.stderr)
        return REFUSED
    staged = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    staged.write_bytes(orjson.dumps(checked.model_dump(mode="json", exclude_none=True), option=orjson.OPT_INDENT_2) + b"\n")
    os.chmod(staged, path.stat().st_mode & 0o777)
    os.replace(staged, path)
    print(
        f"added key {entry.key_id} ({entry.algorithm}, valid from {utc(entry.not_before)}) to {args.carrier} in {path}."
        " The gateway and the worker read the registry at start-up: restart `mmhub gateway` and `mmhub worker`"
        " for the key to count.",
        file=sys.stderr,
    )
    return 0


def _ingest(args: argparse.Namespace, settings: Settings) -> int:
    from aiokafka.errors import KafkaConnectionError, KafkaError

    from connectors.carriers import RegistryError, load_signing_key
    from connectors.kafka import MAX_RAW_BYTES, publish_raw
    from mmhub.entry import NO_FILE, REFUSED, probe_kafka

    problems = []
    payloads = []
    for name in args.files:
        try:
            with open(name, "rb") as handle:
                body = handle.read(MAX_RAW_BYTES + 1)  # one byte more tells "too large" without reading it all
        except OSError as error:
            problems.append(f"{name}: {error.strerror or error}")
            continue
        if len(body) > MAX_RAW_BYTES:
            problems.append(f"{name}: larger than the limit of {MAX_RAW_BYTES} bytes")
        payloads.append(body)
    try:
        key = load_signing_key(Path(args.key))
    except RegistryError as error:
        problems.append(str(error))
    if problems:
        for problem in problems:
            print(f"mmhub ingest: {problem}", file=sys.stderr)
        print("mmhub ingest: nothing sent", file=sys.stderr)
        return NO_FILE

    refusals = _ingest_refusals(args, settings, key, payloads)
    for refusal in refusals:
        print(f"mmhub ingest: {refusal}", file=sys.stderr)
    if refusals and not args.allow_rejects:
        print("mmhub ingest: nothing sent (fix these, or send anyway with --allow-rejects)", file=sys.stderr)
        if args.json:
            _json_out({"topic": settings.topics.raw(args.format), "sent": [], "refused": refusals})
        return REFUSED
    topic = settings.topics.raw(args.format)
    asyncio.run(probe_kafka(settings))
    try:
        placed = asyncio.run(publish_raw(settings, args.format, payloads, key))
    except KafkaError as error:
        if isinstance(error, KafkaConnectionError):
            raise  # unreachable, or the login refused: main() says which setting
        print(f"mmhub ingest: Kafka refused the send: {error!r}; files before it may be on {topic}", file=sys.stderr)
        return 1
    sent = [
        {"file": name, "bytes": len(body), "topic": topic, "partition": partition, "offset": offset}
        for name, body, (partition, offset) in zip(args.files, payloads, placed)
    ]
    if args.json:
        _json_out({"topic": topic, "sent": sent, "refused": refusals})
    else:
        for item in sent:
            print(f"{item['file']}\t{item['bytes']} bytes\t{topic}\tpartition {item['partition']}\toffset {item['offset']}")
    return REFUSED if refusals else 0


def _ingest_refusals(args: argparse.Namespace, settings: Settings, key: SigningKey, payloads: list[bytes]) -> list[str]:
    """What the hub would refuse, checked here before anything is sent: the key against the registry the hub reads
    (MMHUB_CARRIERS), then every event of every file as the connector stage parses and routes it."""
    from connectors.carriers import load_registry, sign, verify
    from connectors.formats import parser as format_parser
    from schemas.rejection import for_event
    from streams.horizon import Horizon
    from streams.routing import route

    now = datetime.now(timezone.utc)
    registry = load_registry(settings.carriers_path)
    refused = verify(registry, key.carrier, key.key_id, sign(b"", key, args.format, now), b"", now, args.format)
    if refused is not None:
        return [f"{args.key}: {refused.reason} (MMHUB_CARRIERS={settings.carriers_path}; see `mmhub carriers add-key`)"]
    read, horizon = format_parser(args.format), Horizon.of(settings)
    found = []
    for name, body in zip(args.files, payloads):
        results = read(body, key.carrier)
        for index, result in enumerate(results):
            if not isinstance(result, Rejection):
                routed = route(result, key.carrier, now, horizon)
                if not isinstance(routed, Rejection):
                    continue
                result = routed
            labelled = for_event(index, result)
            found.append(f"{name}: {labelled.code}: {labelled.reason} (as --format {args.format})")
        if not results:
            found.append(f"{name}: no events in it as --format {args.format}")
    return found


def _fold(args: argparse.Namespace, settings: Settings) -> int:
    from connectors.parties import load_parties
    from mmhub.dataset import decoded_events
    from streams.merge import fold

    # The worker's rules: the same party registry (who owns which shipment ids) and the same horizon, with one time
    # of receipt for the whole log (a log of events carries no receipt times; the worker uses each record's).
    authority = load_parties(settings.parties_path).authority()
    received_at = (args.received_at or datetime.now(timezone.utc)).astimezone(timezone.utc)
    events, rejected, parked = decoded_events([Path(args.file)], settings, received_at)
    records = fold(events, authority)
    selected = [r for r in records.values() if args.shipment in (None, r.shipment_id)]
    document = [r.model_dump(mode="json") for r in selected]
    sys.stdout.buffer.write(orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n")
    print(
        f"folded {len(events)} events into {len(records)} shipment(s); {rejected} rejected, {parked} parked",
        file=sys.stderr,
    )
    return 0 if rejected == 0 or args.allow_rejects else 1


def _convert(args: argparse.Namespace, settings: Settings) -> int:
    """Carrier files to canonical events, offline: the events as JSON lines on stdout (what `mmhub fold` reads), one
    line per refused event or payload on stderr; exit 1 when anything was refused, 2 when a file cannot be read."""
    from connectors.formats import parser as format_parser
    from schemas.rejection import Rejection, for_event
    from streams.codec import encode_event
    from streams.horizon import Horizon
    from streams.routing import route

    read = format_parser(args.format)
    horizon = Horizon.of(settings)
    received_at = (args.received_at or datetime.now(timezone.utc)).astimezone(timezone.utc)
    refused = 0
    for name in args.files:
        try:
            body = Path(name).read_bytes()
        except OSError as error:
            print(f"{name}: unreadable: {error.strerror or error}", file=sys.stderr)
            return 2
        for index, result in enumerate(read(body, args.source)):
            # the same check as every path into the hub: a file speaks only for the party that sends it
            if not isinstance(result, Rejection):
                routed = route(result, args.source, received_at, horizon)
                if not isinstance(routed, Rejection):
                    sys.stdout.buffer.write(encode_event(result) + b"\n")
                    continue
                result = routed
            refused += 1
            labelled = for_event(index, result)
            print(f"{name}: {labelled.code}: {labelled.reason}", file=sys.stderr)
    return 1 if refused else 0


def _parked(args: argparse.Namespace, settings: Settings) -> int:
    """What waits for a reference now: one row per reference, from the compacted hub.references.parked topic."""
    from connectors.kafka import read_latest
    from mmhub.entry import probe_kafka
    from mmhub.render import age, parked_report

    asyncio.run(probe_kafka(settings))
    latest = asyncio.run(read_latest(settings, settings.topics.parked))
    waiting, events = parked_report([orjson.loads(v) for v in latest.values() if v], datetime.now(timezone.utc))
    if args.json:
        _json_out(waiting)
        return 0
    print(f"{events} event(s) parked, on {len(waiting)} reference(s) (an event waits on each reference it names)")
    if waiting:
        print(f"{'reference':<36} {'events':>6}  {'oldest since':<20} {'age':>7}  registered for")
    for s in waiting:
        print(
            f"{s['reference']:<36} {s['parked']:>6}  {s['oldest_since'][:19] + 'Z':<20} {age(s['oldest_age_s']):>7}  "
            f"{', '.join(s['registered_shipments']) or '-'}"
        )
    return 0


def _dlq(args: argparse.Namespace, settings: Settings) -> int:
    """The dead-letter topic, oldest first: each message's code, reason and source, from its headers."""
    from connectors.kafka import read_all
    from hubconf.topics import DLQ_CODE, DLQ_REASON, DLQ_SOURCE_OFFSET, DLQ_SOURCE_PARTITION, DLQ_SOURCE_TOPIC, ORIGIN
    from mmhub.entry import probe_kafka

    asyncio.run(probe_kafka(settings))
    letters = []
    for message in sorted(asyncio.run(read_all(settings, settings.topics.dlq)), key=lambda m: (m.timestamp, m.partition, m.offset)):
        headers = {name: value.decode("utf-8", "backslashreplace") for name, value in message.headers or [] if value is not None}
        source = headers.get(DLQ_SOURCE_TOPIC, "-")
        if DLQ_SOURCE_PARTITION in headers:
            source += f"[{headers[DLQ_SOURCE_PARTITION]}]@{headers.get(DLQ_SOURCE_OFFSET, '?')}"
        code = headers.get(DLQ_CODE, "-")
        if args.code and code not in args.code:
            continue
        letters.append(
            {
                "at": utc(datetime.fromtimestamp(message.timestamp / 1000, timezone.utc)),
                "partition": message.partition,
                "offset": message.offset,
                "code": code,
                "reason": headers.get(DLQ_REASON, "-"),
                "source": source,
                "origin": headers.get(ORIGIN),
                "key": message.key.decode("utf-8", "backslashreplace") if message.key is not None else None,
                "bytes": len(message.value or b""),
                "headers": headers,
                "value": (message.value or b"").decode("utf-8", "backslashreplace"),
            }
        )
    letters = letters[-args.last :] if args.last else letters
    if args.json:
        _json_out(letters)
        return 0
    print(f"{len(letters)} dead letter(s) on {settings.topics.dlq}")
    for letter in letters:
        print(f"{letter['at']}  {letter['code']:<22} {letter['source']}  ({letter['bytes']} bytes)")
        print(f"    {letter['reason']}")
    return 0


def _shipment_get(args: argparse.Namespace, settings: Settings) -> int:
    from connectors.postgres.store import fetch_record
    from mmhub.render import summary
    from schemas.record import ShipmentRecord

    row = asyncio.run(fetch_record(settings, args.shipment_id))
    if row is None:
        print(f"shipment {args.shipment_id} is not in the projection", file=sys.stderr)
        return 1
    row["projected_at"] = utc(datetime.fromisoformat(row["projected_at"]))
    if args.json:
        sys.stdout.buffer.write(orjson.dumps(row, option=orjson.OPT_INDENT_2) + b"\n")
    else:
        projected_at = row.pop("projected_at")
        print(summary(ShipmentRecord.model_validate_json(orjson.dumps(row))))
        print(f"  Projected to Postgres at {projected_at}")
    return 0


def _grant(args: argparse.Namespace, settings: Settings) -> int:
    """An operator's grant, straight into Postgres, under the same rules as `POST /v1/shipments/{id}/grants`."""
    import uuid

    from pydantic import ValidationError

    from connectors.gateway.access import GrantRequest, entitled, new_grant, refuse_grant
    from connectors.gateway.reader_store import PostgresReaderStore
    from connectors.parties import load_parties
    from connectors.postgres.migrate import migrate
    from schemas.rejection import describe

    try:
        parties = load_parties(settings.parties_path)
        grades = [grade.strip() for grade in args.grades.split(",")]
        request = GrantRequest(grantee=args.grantee, grades=grades, expires_at=args.expires)
    except ValidationError as error:
        print(f"mmhub grant: {describe(error)}", file=sys.stderr)
        return 2
    except ValueError as error:
        print(f"mmhub grant: {error}", file=sys.stderr)
        return 2

    async def main() -> dict[str, object] | str:
        await migrate(settings.pg_dsn, settings.pg_schema, settings.pg_connect_timeout_s)
        store = await PostgresReaderStore.open(settings, max_size=1)
        try:
            record = await store.record(args.shipment)
            if record is None:
                return f"shipment {args.shipment} is not in the projection"
            now = datetime.now(timezone.utc)
            grants = await store.for_shipment(args.shipment)
            grantor = entitled(record, grants, now).get(args.grantor)
            if grantor is None:
                return f"{args.grantor} is not entitled to {args.shipment}, so it has nothing to grant"
            refusal = refuse_grant(grantor, request, parties, now, grants=grants)
            if refusal is not None:
                return f"{args.grantor}: {refusal.reason}"
            grant = new_grant(str(uuid.uuid4()), args.shipment, args.grantor, request, now)
            await store.add(grant)
            return grant.model_dump(mode="json")
        finally:
            await store.close()

    made = asyncio.run(main())
    if isinstance(made, str):
        print(f"mmhub grant: {made}; nothing granted", file=sys.stderr)
        return 2
    sys.stdout.buffer.write(orjson.dumps(made, option=orjson.OPT_INDENT_2) + b"\n")
    return 0


def _revoke(args: argparse.Namespace, settings: Settings) -> int:
    """An operator's revocation: the grant, and what was delegated from it, ends now (an earlier revocation stands)."""
    from connectors.gateway.reader_store import PostgresReaderStore
    from connectors.postgres.migrate import migrate

    async def main() -> dict[str, object] | None:
        await migrate(settings.pg_dsn, settings.pg_schema, settings.pg_connect_timeout_s)
        store = await PostgresReaderStore.open(settings, max_size=1)
        try:
            revoked = await store.revoke(args.grant_id, datetime.now(timezone.utc))
        finally:
            await store.close()
        return None if revoked is None else revoked.model_dump(mode="json")

    revoked = asyncio.run(main())
    if revoked is None:
        print(f"mmhub revoke: no grant {args.grant_id}", file=sys.stderr)
        return 1
    sys.stdout.buffer.write(orjson.dumps(revoked, option=orjson.OPT_INDENT_2) + b"\n")
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
    dev.add_argument(
        "action", choices=["up", "down", "status", "reset"], help="reset also deletes every topic and the database"
    )
    dev.add_argument("--yes", action="store_true", help="reset without asking (it deletes all local data)")

    worker = sub.add_parser("worker", help="run the stream worker (merge agent)")
    worker.add_argument("--loglevel", default="info", help="log level: debug, info, warning or error")
    worker.set_defaults(run=_worker)

    sink = sub.add_parser("sink", help="run the Postgres projection")
    sink.add_argument("--loglevel", default="info", help="log level: debug, info, warning or error")
    sink.set_defaults(run=_sink)

    share = sub.add_parser("share", help="send each party its permitted view on hub.share.<audience>, and audit it")
    share.add_argument("--loglevel", default="info", help="log level: debug, info, warning or error")
    share.set_defaults(run=_share)

    usage = sub.add_parser("usage", help="what was shared with whom, from the share audit")
    usage.add_argument("--party", help="one party's shares, such as insurer.picc")
    usage.add_argument("--month", help="YYYY-MM (UTC); default: all time")
    usage.add_argument("--shipment", help="who received what of one shipment")
    usage.add_argument("--json", action="store_true", help="machine-readable output")
    usage.set_defaults(run=_usage)

    audit = sub.add_parser("audit", help="the share audit's hash chain")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True)
    verify = audit_sub.add_parser("verify", help="find deleted, edited or reordered audit rows, and rows that differ from hub.audit")
    verify.add_argument("--json", action="store_true", help="machine-readable output")
    verify.set_defaults(run=_audit_verify)

    gateway = sub.add_parser("gateway", help="run the HTTP gateway where carriers POST signed batches of events")
    gateway.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    gateway.add_argument("--port", type=int, default=8080, help="port to listen on (default 8080)")
    gateway.add_argument("--loglevel", default="info", help="log level: debug, info, warning or error")
    gateway.set_defaults(run=_gateway)
    topics = sub.add_parser(
        "topics", help="create the hub's topics if absent, and each hub process's ACLs on them (as admin)"
    )
    topics.add_argument("--json", action="store_true", help="machine-readable output")
    topics.set_defaults(run=_topics)

    publish = sub.add_parser("publish", help="send a JSON-lines file of canonical events to hub.events")
    publish.add_argument("file", help="JSON lines, one canonical event each (see examples/journey.jsonl)")
    publish.add_argument("--scramble", action="store_true", help="shuffle the events and add duplicates")
    publish.add_argument("--duplicates", type=int, default=10, help="with --scramble: extra copies (default 10)")
    publish.add_argument("--seed", type=int, default=7, help="with --scramble: the random seed (default 7)")
    publish.add_argument(
        "--allow-rejects", action="store_true", help="send lines the hub will dead-letter too (default: send nothing)"
    )
    publish.add_argument("--json", action="store_true", help="machine-readable summary on stdout")
    publish.add_argument(
        "--wait",
        type=float,
        metavar="SECONDS",
        help="then wait up to SECONDS until Postgres has taken in every event of the file; exit 1 if the hub refused"
        " one as not entitled (needs worker and sink)",
    )
    publish.set_defaults(run=_publish)

    ingest = sub.add_parser("ingest", help="send carrier files, signed and untouched, to their format's raw topic")
    ingest.add_argument("--format", required=True, choices=RAW_FORMATS, help="the files' format")
    ingest.add_argument("--key", required=True, help="the carrier's signing key file (see `mmhub keys new`)")
    ingest.add_argument("files", nargs="+", help="each file is sent as one message, byte for byte")
    ingest.add_argument(
        "--allow-rejects", action="store_true", help="send files with events the hub will refuse too (default: none)"
    )
    ingest.add_argument("--json", action="store_true", help="machine-readable summary on stdout")
    ingest.set_defaults(run=_ingest)

    keys = sub.add_parser("keys", help="carrier signing keys")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    new = keys_sub.add_parser("new", help="make a key: print its registry entry and the carrier's signing key")
    new.add_argument("--carrier", required=True, help="the party id, such as carrier.oceanline")
    new.add_argument("--key-id", required=True, help="a name for the key, unique for the carrier, such as 2027-01")
    new.add_argument(
        "--algorithm", choices=["ed25519", "hmac-sha256"], default="ed25519", help="ed25519 (default) or a shared secret"
    )
    new.add_argument("--not-before", type=_timestamp, help="ISO 8601 with an offset (default: now)")
    new.add_argument("--out", help="write the signing key to this new file (mode 0600) instead of printing it")
    new.set_defaults(run=_keys_new)

    carriers = sub.add_parser("carriers", help="the carrier registry (MMHUB_CARRIERS): who may publish, with which keys")
    carriers_sub = carriers.add_subparsers(dest="carriers_command", required=True)
    add_key = carriers_sub.add_parser(
        "add-key",
        help="register a carrier's public key (the registry_entry `mmhub keys new` printed) in MMHUB_CARRIERS",
    )
    add_key.add_argument("--carrier", required=True, help="the party id, such as carrier.oceanline")
    add_key.add_argument("--name", help="the carrier's name, when it is not in the registry yet")
    add_key.add_argument("entry", help="a JSON file with the registry entry (the output of `mmhub keys new`), or -")
    add_key.set_defaults(run=_carriers_add_key)

    fold = sub.add_parser("fold", help="replay a JSON-lines event log offline and print the record(s)")
    fold.add_argument("file", help="JSON lines, one canonical event each")
    fold.add_argument("--shipment", help="print only this shipment")
    fold.add_argument("--allow-rejects", action="store_true", help="exit 0 even if some lines were rejected")
    fold.add_argument(
        "--received-at",
        type=_timestamp,
        help="when the hub received the events, for MMHUB_MAX_FUTURE_S and MMHUB_MAX_PLAN_AHEAD_S (default: now)",
    )
    fold.set_defaults(run=_fold)

    convert = sub.add_parser("convert", help="carrier files to canonical events (JSON lines on stdout), offline")
    convert.add_argument("--format", required=True, choices=RAW_FORMATS, help="the files' format")
    convert.add_argument("--source", required=True, help="the party that sent the files (the events' source)")
    convert.add_argument("files", nargs="+", help="carrier files, each as it would be sent")
    convert.add_argument("--received-at", type=_timestamp, help="as for fold: the time of receipt (default: now)")
    convert.set_defaults(run=_convert)

    parked = sub.add_parser("parked", help="list the carrier events waiting for their reference to be registered")
    parked.add_argument("--json", action="store_true", help="machine-readable output")
    parked.set_defaults(run=_parked)

    dlq = sub.add_parser("dlq", help="what the hub refused: the dead-letter topic with each message's code, reason and source")
    dlq.add_argument("--code", action="append", help="only this rejection code (repeatable), such as invalid_event")
    dlq.add_argument("--last", type=int, metavar="N", help="only the N most recent")
    dlq.add_argument("--json", action="store_true", help="machine-readable: every header and the original bytes")
    dlq.set_defaults(run=_dlq)

    shipment = sub.add_parser("shipment", help="read shipments from the Postgres projection")
    shipment_sub = shipment.add_subparsers(dest="shipment_command", required=True)
    get = shipment_sub.add_parser("get", help="show one shipment's merged record")
    get.add_argument("shipment_id", help="such as SHP-2026-000042")
    get.add_argument("--json", action="store_true", help="machine-readable output")
    get.set_defaults(run=_shipment_get)

    grant = sub.add_parser("grant", help="let a party see some grades of a shipment on another's behalf (operators)")
    grant.add_argument("--shipment", required=True, help="the shipment id")
    grant.add_argument("--grantor", required=True, help="the entitled party that delegates, e.g. shipper.chengdu-elec")
    grant.add_argument("--grantee", required=True, help="a registered party, such as broker.customs-jb")
    grant.add_argument("--grades", required=True, help="comma-separated, such as public,operational")
    grant.add_argument("--expires", type=_timestamp, help="ISO 8601 with an offset (default: until revoked)")
    grant.set_defaults(run=_grant)

    revoke = sub.add_parser("revoke", help="revoke a grant, and what was delegated from it (operators)")
    revoke.add_argument("grant_id", help="as `mmhub grant` printed it")
    revoke.set_defaults(run=_revoke)

    schema = sub.add_parser("schema", help="export the JSON Schema of every canonical model")
    schema.add_argument("--out", help="write one file per model into this directory")
    schema.set_defaults(run=_schema)

    demo = sub.add_parser("demo", help="run the hub and play a multimodal journey end to end")
    demo.add_argument(
        "files",
        nargs="*",
        default=[str(REPO / "examples" / name) for name in ("journey.jsonl", "journey-claim.jsonl", "journey-trade.jsonl")],
        help="JSON-lines event logs to play (default: the three example journeys)",
    )
    demo.set_defaults(run=_demo)

    add_webhook_commands(sub, _timestamp)
    _add_party_commands(sub)
    _add_contract_commands(sub)
    add_quarantine_commands(sub)
    add_invoice_commands(sub)
    add_dataset_commands(sub)
    add_help_command(sub)
    return document(top)


# --- Kafka principals: which one each command is (unless MMHUB_KAFKA_USER says), and onboarding a party ---------

# A command not named here touches Kafka, if at all, as the operator's "tools" (publish, ingest, parked).
PRINCIPAL_OF = {
    "worker": "worker",
    "sink": "sink",
    "share": "share",
    "gateway": "gateway",
    "webhooks": "webhooks",
    "topics": "admin",
    "demo": "admin",
    "parties": "admin",
    "dataset": "share",  # `mmhub dataset publish` audits its release and sends it, as the share stage does
    "quarantine": "share",  # a replayed share goes to the party's topic and is audited, as the share stage does
}


def _onboard(args: argparse.Namespace, settings: Settings) -> int:
    from connectors.acl import onboard

    try:
        password = asyncio.run(onboard(settings, args.party, args.kind))
    except ValueError as error:  # also pydantic's ValidationError: not a party id
        print(f"mmhub parties onboard: {args.party!r}: {error}", file=sys.stderr)
        return 2
    if args.password_file:
        fd = os.open(args.password_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(password + "\n")
        print(f"{args.party}: password written to {args.password_file}", file=sys.stderr)
    else:
        print(password)
    for topic in settings.topics.party_share_topics(args.party):
        print(f"{args.party}: may read {topic}", file=sys.stderr)
    print(f"{args.party}: may use consumer groups {settings.topics.party_groups(args.party)}*", file=sys.stderr)
    if args.kind == "carrier":
        print(f"{args.party}: may write the raw topics {settings.topics.raw('canonical')} etc.", file=sys.stderr)
    return 0


def _add_party_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from connectors.acl import PARTY_KINDS

    parties = sub.add_parser("parties", help="parties' Kafka access (as admin)")
    parties_sub = parties.add_subparsers(dest="parties_command", required=True)
    onboard = parties_sub.add_parser(
        "onboard", help="make a party's Kafka user (new password), its share topics and its ACLs; print the password"
    )
    onboard.add_argument("party", help="the party id, such as carrier.oceanline")
    onboard.add_argument("--kind", required=True, choices=PARTY_KINDS, help="a carrier may also write the raw topics")
    onboard.add_argument("--password-file", help="write the password to this new file (mode 0600) instead of stdout")
    onboard.set_defaults(run=_onboard)


# --- the hub's Kafka contract: an AsyncAPI 3.0 document of every topic ----------------------------------------------


def _asyncapi(args: argparse.Namespace, settings: Settings) -> int:
    from connectors.asyncapi import asyncapi_document

    document = orjson.dumps(asyncapi_document(settings), option=orjson.OPT_INDENT_2) + b"\n"
    if args.out:
        Path(args.out).write_bytes(document)
        print(args.out, file=sys.stderr)
    else:
        sys.stdout.buffer.write(document)
    return 0


def _add_contract_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    asyncapi = sub.add_parser(
        "asyncapi",
        help="print the AsyncAPI 3.0 document of every Kafka topic: messages, keys, headers, schemas, who sends and "
        "who receives",
        description="For carriers, parties and insurers integrating over Kafka: the hub's topics (with this "
        "deployment's MMHUB_NAMESPACE and MMHUB_KAFKA), each message's payload JSON Schema, key and headers, and one "
        "operation per role and topic, generated from the ACLs the hub grants. Example: mmhub asyncapi --out "
        "asyncapi.json",
    )
    asyncapi.add_argument("--out", help="write the document to this file instead of standard output")
    asyncapi.set_defaults(run=_asyncapi)


# --- logs and metrics: MMHUB_LOG_FORMAT, MMHUB_METRICS_PORT ----------------------------------------------------------


def _observability(args: argparse.Namespace) -> None:
    """Every command logs in MMHUB_LOG_FORMAT; each long-running process also serves its Prometheus metrics."""
    from runtime.logs import setup_logging
    from runtime.metrics import DEFAULT_PORTS, port_for, serve

    setup_logging(getattr(args, "loglevel", "warning"))
    one_shot = args.command not in DEFAULT_PORTS or (args.command == "webhooks" and args.webhooks_command != "run")
    if one_shot:
        # a one-shot command's failures end in one line (mmhub.entry): aiokafka's own log of each failed connection
        # would repeat it, so its records stop at its NullHandler
        logging.getLogger("aiokafka").propagate = False
    if not one_shot:
        port = port_for(args.command)
        try:
            serve(port)
        except OSError as error:
            raise SystemExit(f"mmhub {args.command}: cannot serve metrics on MMHUB_METRICS_PORT={port}: {error}")


def main(argv: list[str] | None = None) -> int:
    """Run one command; the failures a user can fix (mmhub.entry.classify) end in one line and their exit code."""
    from mmhub.entry import REFUSED, USAGE, Failure, classify

    args = parser().parse_args(argv)
    # aiokafka logs each failed connection; a command that set up no logging says it once, in its one line. With
    # logging set up (the services' basicConfig), the records still reach the root handler.
    logging.getLogger("aiokafka").addHandler(logging.NullHandler())
    if args.command == "dev":
        return _dev(args)
    _observability(args)
    settings = None
    try:
        try:
            settings = Settings.from_env(PRINCIPAL_OF.get(args.command, "tools"))
        except ValueError as error:  # a number that is not one, an unknown MMHUB_KAFKA_SECURITY
            raise Failure(USAGE, str(error)) from None
        code: int = args.run(args, settings)
    except BrokenPipeError:  # `mmhub ... | head`: the reader left, so do we, quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return REFUSED
    except BaseException as error:  # noqa: BLE001 - classified: a bug (None) is raised again with its traceback
        failure = classify(error, settings)
        if failure is None:
            raise
        logging.shutdown()
        print(f"mmhub {args.command}: {failure.line}", file=sys.stderr)
        return failure.code
    return code


if __name__ == "__main__":
    sys.exit(main())
