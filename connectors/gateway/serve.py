"""Running the gateway as a process: topics and migrations first, then the producer, the pool and the HTTP server."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from connectors.carriers import CarrierRegistry
from connectors.gateway.app import create_gateway, utc_now
from connectors.gateway.datasets import DatasetReader, DatasetStore
from connectors.gateway.guards import runner as gateway_runner
from connectors.gateway.publisher import KafkaPublisher
from connectors.gateway.reader import Reader
from connectors.gateway.reader_store import PostgresReaderStore
from connectors.gateway.receipts import PostgresReceipts
from connectors.parties import PartyRegistry
from connectors.postgres.migrate import migrate
from connectors.webhooks.run import config_from_env
from connectors.webhooks.store import WebhookStore
from hubconf.settings import Settings

log = logging.getLogger(__name__)


async def run_gateway(
    settings: Settings, registry: CarrierRegistry, host: str, port: int, stop: asyncio.Event, parties: PartyRegistry
) -> None:
    """Serve until `stop` is set, then finish the requests in hand and close the producer and the pool."""
    applied = await migrate(settings.pg_dsn, settings.pg_schema)
    if applied:
        log.info("applied migrations %s to schema %s", ", ".join(applied), settings.pg_schema)
    publisher = KafkaPublisher(settings.kafka_client())
    await publisher.start()
    try:
        receipts = await PostgresReceipts.open(settings)
        try:
            store = await PostgresReaderStore.open(settings)
            dataset_store = await DatasetStore.open(settings)
            webhooks = await WebhookStore.open(settings, config_from_env(), application_name="mmhub-gateway-webhooks")
            try:
                await webhooks.run(webhooks.seal)  # stops here, with KeyProblem, on a keyring that does not fit
                reader = Reader(settings, parties, store, store, store, publisher, utc_now)
                datasets = DatasetReader(settings, parties, dataset_store, publisher, utc_now)
                app = create_gateway(
                    settings,
                    registry,
                    publisher,
                    receipts,
                    reader=reader,
                    webhooks=webhooks,
                    parties=parties,
                    datasets=datasets,
                )
                runner = gateway_runner(app)
                await runner.setup()
                try:
                    await web.TCPSite(runner, host, port).start()
                    log.info(
                        "gateway listening on http://%s:%d (%d carriers, %d reader parties registered; OpenAPI at"
                        " /openapi.json)",
                        host,
                        port,
                        len(registry.carriers),
                        len(parties.parties),
                    )
                    await stop.wait()
                finally:
                    await runner.cleanup()  # ends the live views first (Reader's on_shutdown), then the requests
            finally:
                await webhooks.close()
                await dataset_store.close()
                await store.close()
        finally:
            await receipts.close()
    finally:
        await publisher.stop()
