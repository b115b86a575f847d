"""Running the gateway as a process: topics and migrations first, then the producer, the pool and the HTTP server."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from connectors.carriers import CarrierRegistry
from connectors.gateway.app import create_gateway
from connectors.gateway.publisher import KafkaPublisher
from connectors.gateway.receipts import PostgresReceipts
from connectors.kafka import ensure_topics
from connectors.postgres.migrate import migrate
from mmhub.config import Settings

log = logging.getLogger(__name__)


async def run_gateway(
    settings: Settings, registry: CarrierRegistry, host: str, port: int, stop: asyncio.Event
) -> None:
    """Serve until `stop` is set, then finish the requests in hand and close the producer and the pool."""
    await ensure_topics(settings)
    applied = await migrate(settings.pg_dsn, settings.pg_schema)
    if applied:
        log.info("applied migrations %s to schema %s", ", ".join(applied), settings.pg_schema)
    publisher = KafkaPublisher(settings.kafka)
    await publisher.start()
    try:
        receipts = await PostgresReceipts.open(settings)
        try:
            runner = web.AppRunner(create_gateway(settings, registry, publisher, receipts))
            await runner.setup()
            try:
                await web.TCPSite(runner, host, port).start()
                log.info(
                    "gateway listening on http://%s:%d (%d carriers registered; OpenAPI at /openapi.json)",
                    host, port, len(registry.carriers),
                )
                await stop.wait()
            finally:
                await runner.cleanup()
        finally:
            await receipts.close()
    finally:
        await publisher.stop()
