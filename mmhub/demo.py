"""`mmhub demo`: a multimodal journey end to end through the real broker into the real database.

Starts a worker and the Postgres sink as separate processes (as in production), publishes the journeys
scrambled with duplicates and a few malformed messages, then the four-format journey (examples/formats/) as its
carriers send it, signed, on their raw topics and before the booking, and the rail carrier's UBL e-invoices
(connectors/ubl/samples/) with a tax verifier's result; waits for the projection with progress, then prints each merged
record (legs, documents, custody, invoice, payouts, carrier invoices and their verification, claims, customs, the
letter of credit's check, the release), checks it against the offline fold of the same files, and shows what reached
the settlement, claims, release and dead-letter topics.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import asyncpg
import orjson
from aiokafka import AIOKafkaConsumer, ConsumerRecord
from aiokafka.admin import AIOKafkaAdminClient

from connectors.carriers import load_signing_key
from connectors.journeys import offline_records, sends
from connectors.acl import drop_namespace_acls
from connectors.kafka import ensure_topics, publish, publish_raw, read_jsonl, scramble, share_topics
from connectors.postgres.db import quote_ident
from connectors.postgres.migrate import migrate
from connectors.parties import load_parties
from connectors.postgres.store import fetch_record, projected_versions
from connectors.sharing.audit import table, usage
from connectors.ubl.parse import parse as parse_ubl
from hubconf.settings import Settings
from mmhub.render import summary
from schemas.events import HubEvent
from schemas.record import ShipmentRecord
from streams.codec import Rejection, decode_event
from streams.merge import fold
from hubconf.topics import DLQ_CODE, DLQ_REASON

MALFORMED = [
    b"this is not JSON",
    b'{"event_type": "teleport", "event_id": "x1", "source": "carrier.unknown"}',
    b'{"event_type": "settlement", "event_id": "bad-amount", "source": "carrier.sc-road",'
    b' "shipment_id": "SHP-2026-000042", "occurred_at": "2026-03-03T11:00:00Z", "recorded_at": "2026-03-03T11:00:00Z",'
    b' "payload": {"carrier": "carrier.sc-road", "leg": 1, "charges": [{"code": "FRT", "amount": {"amount": 99.95, "currency": "CNY"}}]}}',
]
WAIT_S = 180.0
REPO = Path(__file__).resolve().parents[1]
# The rail carrier's EN 16931 e-invoices for leg 2 of the canonical journey (one matched, one with a wrong tax figure),
# sent signed on the raw `ubl` topic, and the tax verifier's result for the first (examples/invoices/README.md)
UBL_SAMPLES = REPO / "connectors" / "ubl" / "samples"
INVOICE_CHECKS = REPO / "examples" / "invoices" / "verification.jsonl"
INVOICE_KEY = REPO / "examples" / "keys" / "carrier.cr-rail.2025-01.json"


def _say(text: str) -> None:
    print(f"[demo] {text}", flush=True)


def _spawn(command: str, settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "MMHUB_NAMESPACE": settings.namespace,
        "MMHUB_PG_SCHEMA": settings.pg_schema,
        "MMHUB_DATA_DIR": str(settings.data_dir),
        "MMHUB_METRICS_PORT": "0",  # no /metrics: a demo beside a running hub (or another demo) must not fight for ports
    }
    handle = log.open("wb")
    return subprocess.Popen(
        [sys.executable, "-m", "mmhub.cli", command], env=env, stdout=handle, stderr=subprocess.STDOUT
    )


async def _read(settings: Settings, topic: str, enough: int, wait_s: float = 30) -> list[ConsumerRecord[bytes, bytes]]:
    """The messages on `topic` from the start, once at least `enough` are there (or the wait is over)."""
    consumer = AIOKafkaConsumer(
        topic,
        **settings.kafka_client(),
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        isolation_level="read_committed",  # the worker's outputs are transactional
    )
    await consumer.start()
    found: list[ConsumerRecord[bytes, bytes]] = []
    try:
        deadline = time.monotonic() + wait_s
        while len(found) < enough and time.monotonic() < deadline:
            for messages in (await consumer.getmany(timeout_ms=500)).values():
                found.extend(messages)
    finally:
        await consumer.stop()
    return found


async def _dead_letters(settings: Settings, expected: int) -> list[tuple[str, str]]:
    found = []
    for message in await _read(settings, settings.topics.dlq, expected):
        headers = dict(message.headers)
        found.append((headers[DLQ_CODE].decode(), headers[DLQ_REASON].decode()))
    return found


async def _show_outbound(settings: Settings, expected: dict[str, ShipmentRecord]) -> None:
    """What the shipper's accounts, the insurers and the terminals received: hub.settlement, hub.claims, hub.release."""
    wanted_claims = sum(len(record.claims) for record in expected.values())
    settlement = [orjson.loads(m.value) for m in await _read(settings, settings.topics.settlement, 1, 10)]
    claims = [orjson.loads(m.value) for m in await _read(settings, settings.topics.claims, wanted_claims, 10)]
    kinds = ", ".join(f"{sum(1 for m in settlement if m['kind'] == kind)} {kind}(s)" for kind in ("invoice", "note", "payout"))
    _say(f"{settings.topics.settlement}: {len(settlement)} message(s): {kinds}")
    latest_claims = {m["claim"]["claim_id"]: m["claim"] for m in claims}
    _say(f"{settings.topics.claims}: {len(claims)} message(s) for {len(latest_claims)} claim(s)")
    for claim in latest_claims.values():
        limit = claim["liability"]["basis"] if claim["liability"] else "no limit computed"
        print(f"       - {claim['claim_id']}: {claim['kind']} on leg {claim['leg']}, liable {claim['liable_carrier']}; {limit}")
    wanted_releases = sum(1 for r in expected.values() if r.release is not None and r.release.status == "issued")
    releases = [orjson.loads(m.value)["release"] for m in await _read(settings, settings.topics.release, wanted_releases, 10)]
    _say(f"{settings.topics.release}: {len(releases)} release order(s)")
    for release in releases:
        print(f"       - {release['release_id']} to {release['to']} at {release['location']}, {release['issued_at']}")


RATES = ("charges", "payouts", "margin", "carrier_charges", "ledger", "journey_charges", "charges_total")


def _keys(node: object) -> set[str]:
    if isinstance(node, dict):
        return set(node) | {k for value in node.values() for k in _keys(value)}
    if isinstance(node, list):
        return {k for value in node for k in _keys(value)}
    return set()


async def _show_sharing(settings: Settings, expected: dict[str, ShipmentRecord]) -> None:
    """What each party received on its own share topic (only what the policy allows), and the audit of it."""
    claim_id = next((c.claim_id for r in expected.values() for c in r.claims), None)
    deadline = time.monotonic() + 60
    while True:  # the sharing stage follows the status topic; wait until it has shared every final version
        report = await usage(settings)
        final = {(row.shipment_id, row.last_version) for row in report.rows if row.kind == "status"}
        if all((sid, r.version) in final for sid, r in expected.items()) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    received: dict[str, list[dict[str, Any]]] = {}
    for topic in await share_topics(settings):
        audience, party = topic.removeprefix(settings.topics.share_prefix).split(".", 1)
        for message in await _read(settings, topic, 1, 3):
            received.setdefault(f"{audience}:{party}", []).append(orjson.loads(message.value))
    where = f"{settings.topics.share_prefix}<audience>.<party>"
    _say(f"shared with {len(received)} part(ies), each on its own {where} (the MTO reads the hub's own topics):")
    for who, messages in sorted(received.items()):
        kinds = ", ".join(f"{sum(1 for m in messages if m['kind'] == k)} {k}" for k in ("status", "claim"))
        leaked = sorted(_keys(messages) & set(RATES))
        party = who.split(":", 1)[1]
        views = [m["view"] for m in messages if m["kind"] == "status"]
        own_only = all(
            all(leg["carrier"] == party for leg in v.get("legs", []))
            and all(p["carrier"] == party for p in v.get("settlement", {}).get("payouts", []))
            for v in views
        )
        if not leaked:
            note = "rates and margin withheld"
        elif who.startswith("carrier:") and own_only:
            note = "only its own leg, its own charges and payout"
        else:
            note = f"sees {', '.join(leaked)}"
        print(f"       - {who}: {kinds}; {note}")
    if claim_id:
        insurer = [m for who, ms in received.items() if who.startswith("insurer:") for m in ms if m["kind"] == "claim"]
        _say(f"the insurer's claims stream: {len(insurer)} claim message(s) for {claim_id}, no rates in any of them")
    audited = sum(row.shares for row in report.rows)
    delivered = sum(len(ms) for ms in received.values())
    _say(f"audit log: {audited} share(s) recorded, {delivered} message(s) delivered on the share topics")
    print()
    print(table(await usage(settings, shipment_id=next(iter(expected)))))
    print()


def _e_invoices(shipments: set[str | None]) -> tuple[list[bytes], list[bytes], list[HubEvent]]:
    """(the UBL documents, the verifier's lines, the events both make) when the journeys played hold their shipment."""
    key = load_signing_key(INVOICE_KEY)
    documents = [path.read_bytes() for path in sorted(UBL_SAMPLES.glob("*.xml"))]
    checks = read_jsonl(INVOICE_CHECKS)
    events = [e for body in documents for e in parse_ubl(body, key.carrier)] + [decode_event(line) for line in checks]
    made = [e for e in events if not isinstance(e, Rejection)]
    if len(made) != len(events):
        raise ValueError("an example e-invoice does not read: a bug in the examples")
    if not {e.shipment_id for e in made} <= shipments:
        return [], [], []
    return documents, checks, made


async def _play(settings: Settings, journeys: list[Path]) -> int:
    lines = [line for journey in journeys for line in read_jsonl(journey)]
    decoded = [decode_event(line) for line in lines]
    events = [e for e in decoded if not isinstance(e, Rejection)]
    authority = load_parties(settings.parties_path).authority()
    invoices, checks, invoiced = _e_invoices({e.shipment_id for e in events})
    expected = fold(events + invoiced, authority)
    names = ", ".join(journey.name for journey in journeys)
    _say(f"journeys {names}: {len(lines)} events for {len(expected)} shipment(s)")

    created = await ensure_topics(settings)
    _say(f"topics ready ({len(created)} created): {', '.join(settings.topics.all())}")
    scrambled = scramble(lines, duplicates=12, seed=int(time.time()))
    sent = await publish(settings, scrambled + MALFORMED)
    _say(f"published {sent} messages: the journey shuffled, 12 duplicates, {len(MALFORMED)} malformed")

    # The third journey as carriers really send it: their own formats, their own references, signed, and
    # before the MTO has booked (their events wait in reference resolution until the booking registers them).
    formats_id, formats_sends = sends()
    expected.update(offline_records(authority))
    ordered = [item for item in formats_sends if not item.after_booking] + [i for i in formats_sends if i.after_booking]
    for item in ordered:
        [(partition, offset)] = await publish_raw(settings, item.format_name, [item.body], item.key)
        _say(
            f"{formats_id}: {item.key.carrier} sent {item.path.name} ({item.format_name}, {len(item.body)} bytes, "
            f"signed with key {item.key.key_id}) -> {settings.topics.raw(item.format_name)}[{partition}]@{offset}"
        )

    if invoices:
        key = load_signing_key(INVOICE_KEY)
        await publish(settings, checks)
        await publish_raw(settings, "ubl", invoices, key)
        _say(
            f"{key.carrier} sent {len(invoices)} EN 16931 UBL e-invoices ({UBL_SAMPLES.relative_to(REPO)}/, signed with key"
            f" {key.key_id}) -> {settings.topics.raw('ubl')}; the tax verifier's result on the first -> hub events"
        )

    deadline = time.monotonic() + WAIT_S
    last = ""
    while True:
        versions = await projected_versions(settings)
        done = all(versions.get(sid, 0) >= record.version for sid, record in expected.items())
        progress = ", ".join(f"{sid} v{versions.get(sid, 0)}/{r.version}" for sid, r in expected.items())
        if progress != last:
            _say(f"projection: {progress}")
            last = progress
        if done:
            break
        if time.monotonic() > deadline:
            _say(f"the projection did not catch up within {WAIT_S:.0f}s; see the logs")
            return 1
        await asyncio.sleep(0.5)

    matches = True
    for shipment_id, offline in expected.items():
        row = await fetch_record(settings, shipment_id)
        assert row is not None, f"{shipment_id} reached its version but has no row"
        row.pop("projected_at")
        projected = ShipmentRecord.model_validate_json(orjson.dumps(row))
        print()
        print(summary(projected))
        print()
        same = projected == offline
        matches = matches and same
        _say(f"Postgres record equals the offline `mmhub fold` of the same events: {'yes' if same else 'NO'}")

    await _show_outbound(settings, expected)
    await _show_sharing(settings, expected)
    rejected = await _dead_letters(settings, len(MALFORMED))
    _say(f"dead-letter topic {settings.topics.dlq}: {len(rejected)} message(s)")
    for code, reason in rejected:
        print(f"       - {code}: {reason[:150]}")
    return 0 if matches and len(rejected) == len(MALFORMED) else 1


async def _forget_run(settings: Settings) -> None:
    """Drop this run's topics (the hub's and the worker's internal ones, all under its namespace) and its schema;
    nothing of another run, which may still be going."""
    admin = AIOKafkaAdminClient(**settings.kafka_client())
    await admin.start()
    try:
        doomed = [name for name in await admin.list_topics() if name.startswith(f"{settings.namespace}.")]
        if doomed:
            await admin.delete_topics(doomed)
    finally:
        await admin.close()
    await drop_namespace_acls(settings, sorted({name.split(".", 1)[0] for name in doomed}))
    conn = await asyncpg.connect(settings.pg_dsn, timeout=settings.pg_connect_timeout_s)
    try:
        await conn.execute(f"DROP SCHEMA IF EXISTS {quote_ident(settings.pg_schema)} CASCADE")
    finally:
        await conn.close()
    for state in settings.data_dir.iterdir():  # the worker's tables; the logs stay
        if state.is_dir():
            shutil.rmtree(state, ignore_errors=True)


def run_demo(settings: Settings, journeys: list[Path]) -> int:
    # A namespace of its own per run: the full flow every time, nothing mixed with a real deployment or with another
    # run going at the same time, and all of it dropped when the run ends.
    stamp = f"{datetime.now(timezone.utc):%Y%m%d%H%M%S}_{secrets.token_hex(3)}"
    settings = replace(
        settings,
        namespace=f"demo-{stamp}",
        pg_schema=f"demo_{stamp}",
        data_dir=settings.data_dir / "demo" / stamp,
    )
    logs = settings.data_dir
    logs.mkdir(parents=True, exist_ok=True)
    _say(
        f"this run plays in topics {settings.namespace}.* and schema {settings.pg_schema}, and drops them when it"
        " ends; nothing else is touched"
    )
    asyncio.run(ensure_topics(settings))
    asyncio.run(migrate(settings.pg_dsn, settings.pg_schema, settings.pg_connect_timeout_s))
    worker = _spawn("worker", settings, logs / "worker.log")
    sink = _spawn("sink", settings, logs / "sink.log")
    share = _spawn("share", settings, logs / "share.log")
    _say(
        f"worker (pid {worker.pid}), Postgres sink (pid {sink.pid}) and sharing stage (pid {share.pid}) started;"
        f" logs in {logs}"
    )
    try:
        return asyncio.run(_play(settings, journeys))
    finally:
        for process in (worker, sink, share):
            process.send_signal(signal.SIGTERM)
        for process in (worker, sink, share):
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        _say("worker, sink and sharing stage stopped")
        asyncio.run(_forget_run(settings))
        _say(f"this run's topics ({settings.namespace}.*) and schema ({settings.pg_schema}) dropped; logs in {logs}")
