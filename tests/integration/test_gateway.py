"""The HTTP gateway with the real aiokafka publisher and Postgres receipts, on the real broker and database."""

from __future__ import annotations

from contextlib import asynccontextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable

import asyncpg
import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer
from aiokafka import AIOKafkaConsumer, TopicPartition

from connectors.carriers import http_signature_headers, load_registry, load_signing_key, new_key
from connectors.gateway.app import create_gateway
from connectors.gateway.guards import RateLimits
from connectors.gateway.publisher import KafkaPublisher
from connectors.gateway.receipts import PostgresReceipts
from connectors.postgres.db import quote_ident
from connectors.postgres.migrate import migrate
from hubconf.settings import Settings
from streams.codec import decode_event, encode_event
from hubconf.topics import DLQ_BODY_SIZE, DLQ_CODE, DLQ_REASON, DLQ_SOURCE_TOPIC

from tests.integration.hub import JOURNEY, JOURNEY_ID, read_topic

pytestmark = pytest.mark.integration

NewSettings = Callable[..., Awaitable[Settings]]

KEYS = Path(__file__).resolve().parents[2] / "examples" / "keys"
CARRIER = "carrier.oceanline"
NOW = datetime(2026, 11, 1, 12, 0, tzinfo=timezone.utc)  # after every example: none is dated past its receipt
LINES = [line for line in JOURNEY.read_bytes().splitlines() if orjson.loads(line)["source"] == CARRIER]
BODY = b"[" + b",".join(LINES) + b"]"


@asynccontextmanager
async def gateway(settings: Settings, limits: RateLimits | None = None) -> AsyncIterator[TestClient[Any, Any]]:
    """The gateway app in-process, with the production publisher and receipts store."""
    await migrate(settings.pg_dsn, settings.pg_schema)
    publisher = KafkaPublisher(settings.kafka_client())
    await publisher.start()
    receipts = await PostgresReceipts.open(settings)
    app = create_gateway(
        settings, load_registry(settings.carriers_path), publisher, receipts, clock=lambda: NOW, limits=limits or RateLimits()
    )
    try:
        async with TestClient(TestServer(app)) as client:
            yield client
    finally:
        await receipts.close()
        await publisher.stop()


async def end_offsets(settings: Settings, topic: str) -> int:
    consumer = AIOKafkaConsumer(**settings.kafka_client())
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        if not partitions:
            partitions = [TopicPartition(topic, p) for p in range(settings.partitions)]
        return sum((await consumer.end_offsets(partitions)).values())
    finally:
        await consumer.stop()


async def post(client: TestClient[Any, Any], body: bytes, headers: dict[str, str]) -> tuple[int, Any]:
    response = await client.post("/v1/events/canonical", data=body, headers=headers)
    return response.status, orjson.loads(await response.read())


async def test_signed_batch_is_published_once_and_forgeries_are_dead_lettered(hub_settings: NewSettings) -> None:
    settings = await hub_settings()
    key = load_signing_key(KEYS / f"{CARRIER}.2025-01.json")
    expected = sorted((JOURNEY_ID.encode(), encode_event(decode_event(line))) for line in LINES)

    async with gateway(settings) as client:
        status, answer = await post(client, BODY, http_signature_headers(BODY, key, "canonical", NOW))
        assert status == 202, answer
        assert (answer["accepted"], answer["duplicates"], answer["rejected"]) == (len(LINES), 0, 0)

        arrived = await read_topic(settings, settings.topics.events, len(LINES))
        assert sorted((m.key, m.value) for m in arrived) == expected
        assert all(m.partition == arrived[0].partition for m in arrived), "one shipment, one partition"

        status, again = await post(client, BODY, http_signature_headers(BODY, key, "canonical", NOW))
        assert status == 202
        assert (again["accepted"], again["duplicates"], again["rejected"]) == (0, len(LINES), 0)
        assert len(await read_topic(settings, settings.topics.events, len(LINES))) == len(LINES)
        assert await end_offsets(settings, settings.topics.events) == len(LINES)

        forged, _ = new_key(CARRIER, "2025-01", "ed25519", NOW)
        status, refused = await post(client, BODY, http_signature_headers(BODY, forged, "canonical", NOW))
        assert (status, refused["error"]) == (401, "bad_signature")
        (letter,) = await read_topic(settings, settings.topics.dlq, 1)
        headers = dict(letter.headers)
        assert letter.value == BODY[:1024] and headers[DLQ_BODY_SIZE] == str(len(BODY)).encode()
        assert headers[DLQ_CODE] == b"bad_signature"
        assert headers[DLQ_REASON].decode() == refused["reason"]
        assert headers[DLQ_SOURCE_TOPIC] == b"http:/v1/events/canonical"

        health = await client.get("/healthz")
        assert (health.status, await health.json()) == (200, {"kafka": "up", "postgres": "up"})

    conn = await asyncpg.connect(settings.pg_dsn)
    try:
        table = f"{quote_ident(settings.pg_schema)}.gateway_receipts"
        rows = await conn.fetch(f"SELECT source, event_id, request_id::text, routed_to FROM {table}")
    finally:
        await conn.close()
    assert sorted(r["event_id"] for r in rows) == sorted(orjson.loads(line)["event_id"] for line in LINES)
    assert {(r["source"], r["request_id"], r["routed_to"]) for r in rows} == {
        (CARRIER, answer["request_id"], "shipment")
    }


async def test_a_large_rejected_body_still_fits_in_the_dead_letter_topic(hub_settings: NewSettings) -> None:
    settings = await hub_settings()
    key = load_signing_key(KEYS / f"{CARRIER}.2025-01.json")
    body = b"[" + b",".join(LINES) + b"]" + b" " * (3 * 1024 * 1024) + b"x"  # 3 MiB and not JSON

    async with gateway(settings) as client:
        status, answer = await post(client, body, http_signature_headers(body, key, "canonical", NOW))

    assert (status, answer["error"]) == (422, "nothing_accepted"), answer
    assert [r["code"] for r in answer["results"]] == ["invalid_json"]
    (letter,) = await read_topic(settings, settings.topics.dlq, 1)
    assert letter.value == body
