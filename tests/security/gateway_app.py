"""The production gateway in-process on the real broker and database, for the gateway findings' tests: the Kafka
publisher, the Postgres receipts, reader store and webhook store, with the example journey's record projected."""

from __future__ import annotations

from collections import Counter
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator

import asyncpg
import orjson
from aiohttp.test_utils import TestClient, TestServer

from connectors.carriers import load_registry
from connectors.gateway.app import create_gateway, utc_now
from connectors.gateway.publisher import KafkaPublisher
from connectors.gateway.reader import Reader
from connectors.gateway.reader_store import PostgresReaderStore
from connectors.gateway.receipts import PostgresReceipts
from connectors.parties import load_parties
from connectors.postgres.db import quote_ident
from connectors.postgres.migrate import migrate
from connectors.webhooks.run import config_from_env
from connectors.webhooks.store import WebhookStore
from hubconf.settings import Settings
from schemas.record import ShipmentRecord
from tests.unit.connectors.readers import journey_record

TOKENS: dict[str, str] = orjson.loads(
    (Path(__file__).resolve().parents[2] / "examples" / "keys" / "tokens.json").read_bytes()
)["tokens"]
RECORD = journey_record()


def auth(party: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[party]}"}


class CountingStore:
    """The real reader store, counting each call by method name (every call is one Postgres query)."""

    def __init__(self, store: PostgresReaderStore) -> None:
        self.store = store
        self.calls: Counter[str] = Counter()
        self.log: list[str] = []

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.store, name)

        async def counted(*args: Any) -> Any:
            self.calls[name] += 1
            self.log.append(name)
            return await method(*args)

        return counted


@dataclass
class Served:
    settings: Settings
    client: TestClient[Any, Any]
    store: CountingStore
    reader: Reader


async def project(settings: Settings, record: ShipmentRecord) -> None:
    """The record as the sink writes it."""
    conn = await asyncpg.connect(settings.pg_dsn)
    try:
        await conn.execute(
            f"INSERT INTO {quote_ident(settings.pg_schema)}.shipments"
            " (shipment_id, status, shipper, mto, version, updated_at, record) VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb)"
            " ON CONFLICT (shipment_id) DO UPDATE SET version = EXCLUDED.version, record = EXCLUDED.record",
            record.shipment_id, record.status, record.shipper.party_id if record.shipper else None,
            record.responsible_operator, record.version, record.updated_at, record.model_dump_json(),
        )
    finally:
        await conn.close()


@asynccontextmanager
async def served(settings: Settings, **gateway: Any) -> AsyncIterator[Served]:
    """The gateway with a reader and the webhook routes; `gateway` goes to create_gateway (e.g. limits)."""
    await migrate(settings.pg_dsn, settings.pg_schema)
    await project(settings, RECORD)
    publisher = KafkaPublisher(settings.kafka_client())
    await publisher.start()
    receipts = await PostgresReceipts.open(settings)
    store = await PostgresReaderStore.open(settings)
    webhooks = await WebhookStore.open(settings, config_from_env(), application_name="security-test-webhooks")
    counting = CountingStore(store)
    parties = load_parties(settings.parties_path)
    try:
        reader = Reader(settings, parties, counting, counting, counting, publisher, utc_now)
        app = create_gateway(
            settings, load_registry(settings.carriers_path), publisher, receipts,
            reader=reader, webhooks=webhooks, parties=parties, **gateway,
        )
        async with TestClient(TestServer(app)) as client:
            yield Served(settings, client, counting, reader)
    finally:
        await webhooks.close()
        await store.close()
        await receipts.close()
        await publisher.stop()
