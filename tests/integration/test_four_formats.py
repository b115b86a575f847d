"""One journey, four carriers, four formats and three ways in, on the real broker and database.

Road speaks canonical JSON over HTTP, rail sends an EDIFACT file (`mmhub ingest`), sea publishes DCSA on its
Kafka raw topic, the last mile posts EPCIS. Every carrier knows the shipment only by its own references, and all
of them send before the MTO has even booked. Among them: a forged signature (on Kafka and over HTTP) and a carrier
reporting on a leg it does not carry. The record must end as the offline fold of the same events resolved and
sent as canonical JSON; the forged and wrong-carrier events must be in the dead-letter topic with their reasons,
and nothing else lost.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import socket
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import AsyncIterator, Awaitable, Callable

import aiohttp
import orjson
import pytest

from connectors.carriers import http_signature_headers, kafka_signature_headers, load_signing_key
from connectors.formats import parser
from connectors.journeys import Send, offline_records, resent, sends
from connectors.kafka import publish_raw
from connectors.postgres.migrate import migrate
from hubconf.settings import Settings
from schemas.events import HubEvent
from schemas.record import ShipmentRecord
from schemas.rejection import Rejection
from hubconf import topics
from tests.integration.hub import (
    AUTHORITY,
    HubProcess,
    caught_up,
    drop_internal_topics,
    projected_record,
    read_topic,
    wait_for,
    wait_for_gateway,
)

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
KEYS = REPO / "examples" / "keys"
SHIPMENT, SENDS = sends()


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
async def hub(
    hub_settings: Callable[..., Awaitable[Settings]], tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[tuple[Settings, list[HubProcess], str]]:
    """The worker, the sink and the gateway; with the parameter "connect apart", the worker's connect stage runs in a
    worker process of its own (MMHUB_WORKER_STAGES), appended last, and the first worker resolves and merges."""
    settings = await hub_settings()
    await migrate(settings.pg_dsn, settings.pg_schema)
    port = _free_port()
    apart = getattr(request, "param", "one worker") == "connect apart"
    stages = {"MMHUB_WORKER_STAGES": "resolve,merge"} if apart else None
    procs = [
        HubProcess("worker", settings, tmp_path / "worker-data", tmp_path / "worker.log", stages),
        HubProcess("sink", settings, tmp_path / "sink-data", tmp_path / "sink.log"),
        HubProcess("gateway", settings, tmp_path / "gw-data", tmp_path / "gateway.log", args=["--port", str(port)]),
    ]
    if apart:
        connect = {"MMHUB_WORKER_STAGES": "connect"}
        procs.append(HubProcess("worker", settings, tmp_path / "connect-data", tmp_path / "connect.log", connect))
    yield settings, procs, f"http://127.0.0.1:{port}"
    for proc in procs:
        proc.stop()
    await drop_internal_topics(settings)


def _wrong_carrier_report() -> bytes:
    """The last-mile carrier, signing honestly, claims the rail leg has arrived: it does not carry leg 2."""
    return orjson.dumps(
        {
            "event_id": "myh-says-rail-arrived",
            "source": "carrier.my-haulage",
            "event_type": "tracking",
            "references": [{"kind": "container", "value": "FCIU7044211"}],
            "occurred_at": "2026-04-09T12:00:00Z",
            "recorded_at": "2026-04-09T12:05:00Z",
            "payload": {"status": "arrived", "raw_code": "ARR", "code_list": "my-haulage", "leg": 2},
        }
    )


def _expected() -> dict[str, ShipmentRecord]:
    """The same events resolved offline and folded as canonical events with their hub id."""
    [wrong] = parser("canonical")(_wrong_carrier_report(), "carrier.my-haulage")
    assert not isinstance(wrong, Rejection)
    return offline_records(AUTHORITY, extra=[wrong])


async def _post(session: aiohttp.ClientSession, base: str, format_name: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict]:
    async with session.post(f"{base}/v1/events/{format_name}", data=body, headers=headers) as response:
        return response.status, await response.json()


def _ingest(env: dict[str, str], format_name: str, key_file: Path, path: Path) -> None:
    subprocess.run(
        [str(Path(sys.executable).parent / "mmhub"), "ingest", "--format", format_name, "--key", str(key_file), str(path)],
        env=env,
        check=True,
        capture_output=True,
    )


@pytest.mark.parametrize("hub", ["one worker", "connect apart"], indirect=True)
async def test_four_carriers_four_formats_end_as_the_canonical_journey(hub, tmp_path: Path) -> None:
    settings, procs, base = hub
    worker, sink, gateway = procs[:3]
    expected = _expected()
    record_expected = expected[SHIPMENT]
    assert record_expected.status == "delivered" and len(record_expected.rejected) == 1  # type: ignore[attr-defined]
    for proc in procs:
        proc.start()

    async with aiohttp.ClientSession() as session:
        await wait_for_gateway(session, base, gateway)

        async def send(item: Send) -> None:
            if item.way == "http":
                status, answer = await _post(session, base, item.format_name, item.body, http_signature_headers(item.body, item.key, item.format_name, _now()))
                assert status == 202, answer
                assert answer["rejected"] == 0, answer
            elif item.way == "ingest":
                key_file = KEYS / f"{item.key.carrier}.{item.key.key_id}.json"
                await asyncio.to_thread(_ingest, worker.env, item.format_name, key_file, item.path)
            else:
                await publish_raw(settings, item.format_name, [item.body], item.key)

        # carriers first, in reverse journey order, before the booking exists
        for item in reversed([s for s in SENDS if not s.after_booking]):
            await send(item)
        assert {way for way in (s.way for s in SENDS)} == {"http", "ingest", "kafka"}

        # forgeries: the DCSA file re-sent with a signature by the wrong key, on Kafka and over HTTP
        sea = next(s.body for s in SENDS if s.format_name == "dcsa")
        thief = load_signing_key(KEYS / "carrier.my-haulage.2025-01.json")
        forged_headers = dict(http_signature_headers(sea, thief, "dcsa", _now()))
        forged_headers["Mmhub-Carrier"] = "carrier.oceanline"
        forged_headers["Mmhub-Key-Id"] = "2026-01"
        status, answer = await _post(session, base, "dcsa", sea, forged_headers)
        assert status == 401 and answer["error"] == "bad_signature", answer
        from aiokafka import AIOKafkaProducer

        producer = AIOKafkaProducer(**settings.kafka_client(), acks="all", max_request_size=8 * 1024 * 1024)
        await producer.start()
        try:
            headers = [
                (name, value) if name != topics.SIGNATURE_CARRIER else (name, b"carrier.oceanline")
                for name, value in kafka_signature_headers(sea, thief, "dcsa", _now())
            ]
            headers = [(n, b"2026-01") if n == topics.SIGNATURE_KEY_ID else (n, v) for n, v in headers]
            await producer.send_and_wait(settings.topics.raw("dcsa"), value=sea, key=b"carrier.oceanline", headers=headers)
        finally:
            await producer.stop()

        # the wrong-carrier report, honestly signed
        wrong = _wrong_carrier_report()
        status, answer = await _post(session, base, "canonical", wrong, http_signature_headers(wrong, thief, "canonical", _now()))
        assert status == 202 and answer["accepted"] == 1, answer

        # then the booking, the cover and the payments
        for item in [s for s in SENDS if s.after_booking]:
            await send(item)

    await wait_for(lambda: caught_up(settings, expected), 120, "the projection", worker, sink)  # type: ignore[arg-type]
    record = await projected_record(settings, SHIPMENT)
    assert record == record_expected
    assert record.status == "delivered"
    assert [leg.carrier for leg in record.legs] == ["carrier.sc-road", "carrier.cr-rail", "carrier.oceanline", "carrier.my-haulage"]
    assert [r.event for r in record.rejected] == ["carrier.my-haulage/myh-says-rail-arrived"]

    dead = await read_topic(settings, settings.topics.dlq, expected=3)
    by_code: dict[str, list] = {}
    for message in dead:
        by_code.setdefault(dict(message.headers)[topics.DLQ_CODE].decode(), []).append(message)
    assert sorted((code, len(found)) for code, found in by_code.items()) == [("bad_signature", 2), ("not_entitled", 1)]
    # the raw message whole (it is on the raw topic already); of the HTTP request, which nobody vouched for, the first
    # KiB with the whole body's digest and size
    assert sorted(m.value for m in by_code["bad_signature"]) == sorted([sea, sea[:1024]]) and len(sea) > 1024
    (posted,) = [dict(m.headers) for m in by_code["bad_signature"] if m.value != sea]
    assert posted[topics.DLQ_BODY_SHA256] == hashlib.sha256(sea).hexdigest().encode()
    [refused] = by_code["not_entitled"]
    reason = dict(refused.headers)[topics.DLQ_REASON].decode()
    assert "leg 2 is carried by carrier.cr-rail, not carrier.my-haulage" in reason
    assert orjson.loads(refused.value)["event_id"] == "myh-says-rail-arrived"

    # nothing waits: every parked event was released
    parked = await read_topic(settings, settings.topics.parked, expected=1)
    latest = {m.key: m.value for m in parked}
    assert latest and all(value == b"" for value in latest.values()), latest
    for proc in procs:
        assert proc.alive, proc.tail()
    if len(procs) == 4:  # connect apart: each worker ran what it was given, and only that
        said = [proc.log.read_text(errors="replace") for proc in (worker, procs[3])]
        assert "stages resolve, merge on the stage runtime" in said[0] and "stage connect:" not in said[0]
        assert "stages connect on the stage runtime" in said[1] and "stage merge:" not in said[1]

    # the same files through `mmhub convert`, re-sent, shuffled and duplicated, then `mmhub fold`: the same record
    assert _convert_and_fold(worker.env, tmp_path) == record


def _convert_and_fold(env: dict[str, str], directory: Path) -> ShipmentRecord:
    mmhub = str(Path(sys.executable).parent / "mmhub")
    wrong = directory / "wrong.json"
    wrong.write_bytes(_wrong_carrier_report())
    files = [(wrong, "canonical", "carrier.my-haulage")]
    for number, item in enumerate(SENDS):
        copy = directory / f"resent-{number}-{item.path.name}"
        copy.write_bytes(resent(item))  # EDIFACT in a new interchange, EPCIS without eventIDs
        files += [(item.path, item.format_name, item.key.carrier), (copy, item.format_name, item.key.carrier)]
    lines: list[bytes] = []
    for path, format_name, source in files:
        done = subprocess.run(
            [mmhub, "convert", "--format", format_name, "--source", source, str(path)], env=env, capture_output=True
        )
        assert (done.returncode, done.stderr) == (0, b""), done.stderr
        lines += done.stdout.splitlines()
    rng = random.Random(4)
    lines += rng.sample(lines, 12)
    rng.shuffle(lines)
    log = directory / "converted.jsonl"
    log.write_bytes(b"\n".join(lines) + b"\n")
    folded = subprocess.run([mmhub, "fold", str(log), "--shipment", SHIPMENT], env=env, capture_output=True, check=True)
    [record] = orjson.loads(folded.stdout)
    return ShipmentRecord.model_validate_json(orjson.dumps(record))


async def test_a_raw_payload_with_bad_events_is_dead_lettered_once_while_its_good_event_goes_on(hub) -> None:
    settings, procs, _ = hub
    worker = procs[0]
    worker.start()
    samples = REPO / "connectors" / "epcis" / "samples"
    body = (samples / "malformed_events.jsonld").read_bytes()
    key = load_signing_key(KEYS / "carrier.my-haulage.2025-01.json")
    results = parser("epcis")(body, key.carrier)
    good = [r for r in results if isinstance(r, HubEvent.__args__)]  # type: ignore[attr-defined]
    bad = len(results) - len(good)
    assert good and bad

    await publish_raw(settings, "epcis", [body], key)

    [dead] = await read_topic(settings, settings.topics.dlq, expected=1, timeout=60)
    headers = {name: value.decode() for name, value in dead.headers}
    assert dead.value == body  # the whole payload, byte for byte, once
    assert headers[topics.DLQ_SOURCE_TOPIC] == settings.topics.raw("epcis")
    assert headers[topics.DLQ_REASON].startswith(f"{bad} events refused: event 0 (")
    # the good events name only references, so they went on to resolution, where they wait for a booking
    expected = sum(len(event.references) for event in good)
    requests = await read_topic(settings, settings.topics.references, expected=expected, timeout=30)
    assert {orjson.loads(m.value)["event"]["event_id"] for m in requests} == {event.event_id for event in good}
    assert worker.alive, worker.tail()
