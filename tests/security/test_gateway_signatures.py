"""Finding 9: a carrier's signature covered only the body, so a captured request could be replayed at any time and
re-posted to another format's route. A v1 signature covers the format and a signing time; the hub refuses a
signature more than 300 s from when it received the message (the gateway's receipt time; on a raw topic, the
record's timestamp), and one made for another format. Inside the window a replay is a duplicate copy.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Awaitable, Callable

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from connectors.carriers import http_signature_headers, kafka_signature_headers, load_signing_key
from hubconf.settings import Settings
from hubconf.topics import DLQ_CODE, DLQ_REASON
from tests.integration.hub import JOURNEY, HubProcess, read_topic
from tests.security.gateway_app import served

pytestmark = pytest.mark.integration

NewSettings = Callable[..., Awaitable[Settings]]
KEYS = Path(__file__).resolve().parents[2] / "examples" / "keys"
CARRIER = "carrier.oceanline"
KEY = load_signing_key(KEYS / f"{CARRIER}.2025-01.json")
LINES = [line for line in JOURNEY.read_bytes().splitlines() if orjson.loads(line)["source"] == CARRIER]
BODY = b"[" + b",".join(LINES) + b"]"
SIGNED_AT = datetime(2026, 11, 1, 12, 0, tzinfo=timezone.utc)  # after every journey event: none is future-dated


class Clock:
    def __init__(self) -> None:
        self.now = SIGNED_AT

    def __call__(self) -> datetime:
        return self.now


async def post(client: Any, format_name: str, headers: dict[str, str]) -> tuple[int, Any]:
    async with client.post(f"/v1/events/{format_name}", data=BODY, headers=headers) as response:
        return response.status, await response.json()


async def test_a_captured_request_is_a_duplicate_inside_the_window_and_refused_outside_it_or_on_another_route(
    hub_settings: NewSettings,
) -> None:
    settings = await hub_settings()
    clock = Clock()
    captured = http_signature_headers(BODY, KEY, "canonical", SIGNED_AT)
    async with served(settings, clock=clock) as app:
        clock.now = SIGNED_AT + timedelta(seconds=5)
        status, first = await post(app.client, "canonical", captured)
        assert (status, first["accepted"]) == (202, len(LINES)), first

        clock.now = SIGNED_AT + timedelta(seconds=290)
        status, replay = await post(app.client, "canonical", captured)
        assert (status, replay["accepted"], replay["duplicates"]) == (202, 0, len(LINES)), replay

        clock.now = SIGNED_AT + timedelta(hours=1)
        status, late = await post(app.client, "canonical", captured)
        print(f"the captured request replayed an hour later: {status} {late}")
        assert (status, late["error"]) == (401, "stale_signature") and "300 s" in late["reason"]

        clock.now = SIGNED_AT + timedelta(seconds=5)
        status, elsewhere = await post(app.client, "dcsa", captured)
        print(f"the captured request re-posted as DCSA: {status} {elsewhere}")
        assert (status, elsewhere["error"]) == (401, "bad_signature") and "format dcsa" in elsewhere["reason"]

    events = await read_topic(settings, settings.topics.events, len(LINES))
    assert len(events) == len(LINES)  # published once, whatever was replayed
    letters = await read_topic(settings, settings.topics.dlq, 2)
    assert sorted(dict(m.headers)[DLQ_CODE] for m in letters) == [b"bad_signature", b"stale_signature"]


async def test_a_raw_message_is_refused_when_signed_for_another_format_or_long_before_its_record_time(
    hub: tuple[Settings, HubProcess, HubProcess],
) -> None:
    settings, worker, _ = hub
    now = datetime.now(timezone.utc)
    producer = AIOKafkaProducer(**settings.kafka_client(acks="all"))
    await producer.start()
    try:
        raw = settings.topics.raw("canonical")
        sends = [
            kafka_signature_headers(BODY, KEY, "edifact", now),  # a signature made for the EDIFACT topic
            kafka_signature_headers(BODY, KEY, "canonical", now - timedelta(hours=1)),  # a replay an hour on
            kafka_signature_headers(BODY, KEY, "canonical", now),  # the positive marker: genuine and fresh
        ]
        for headers in sends:
            await producer.send_and_wait(raw, value=BODY, key=CARRIER.encode(), headers=headers)
        # the replay again, its record backdated to the signing time: the broker stamps raw records itself
        backdated = int((now - timedelta(hours=1)).timestamp() * 1000)
        await producer.send_and_wait(raw, value=BODY, key=CARRIER.encode(), headers=sends[1], timestamp_ms=backdated)
    finally:
        await producer.stop()
    worker.start()
    letters = await read_topic(settings, settings.topics.dlq, 3, timeout=90)
    for letter in letters:
        print(f"raw message refused: {dict(letter.headers)[DLQ_CODE]!r} {dict(letter.headers)[DLQ_REASON][:120]!r}")
    codes = sorted(dict(m.headers)[DLQ_CODE] for m in letters)
    assert codes == [b"bad_signature", b"stale_signature", b"stale_signature"]
    events = await read_topic(settings, settings.topics.events, len(LINES), timeout=90)
    ours = [m for m in events if orjson.loads(m.value)["source"] == CARRIER]
    assert len(ours) == len(LINES)  # only the genuine message's events
