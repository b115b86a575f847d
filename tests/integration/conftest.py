"""Shared fixtures for integration tests: the real broker and database, and a private corner of each per test.

The services are started outside the tests (`bash infra/dev.sh up`); a session fixture waits for them, and
every test gets its own namespace (topics, consumer groups) and Postgres schema, removed when it ends.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from pathlib import Path
from typing import AsyncIterator, Awaitable, Callable

import asyncpg
import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaConnectionError

from connectors.acl import drop_namespace_acls
from connectors.kafka import ensure_topics
from connectors.postgres.db import quote_ident
from connectors.postgres.migrate import migrate
from hubconf.settings import Settings
from tests.integration.hub import HubProcess, drop_internal_topics

SERVICES_TIMEOUT_S = 180


@pytest.fixture(scope="session")
async def services() -> Settings:
    """The environment's settings, once Kafka and Postgres both answer (they may still be starting)."""
    settings = Settings.from_env()
    deadline = asyncio.get_running_loop().time() + SERVICES_TIMEOUT_S
    while True:
        try:
            conn = await asyncpg.connect(settings.pg_dsn, timeout=5)
            await conn.close()
            admin = AIOKafkaAdminClient(**settings.kafka_client(), request_timeout_ms=5000)
            await admin.start()
            await admin.close()
            return settings
        except (OSError, asyncpg.PostgresError, KafkaConnectionError) as error:
            if asyncio.get_running_loop().time() > deadline:
                pytest.fail(f"Kafka ({settings.kafka}) or Postgres not reachable: {error}; run `bash infra/dev.sh up`")
            await asyncio.sleep(2)


@pytest.fixture
async def hub_settings(services: Settings) -> AsyncIterator[Callable[..., Awaitable[Settings]]]:
    """A factory of settings with a unique namespace and pg_schema; their topics and schemas are dropped after."""
    made: list[Settings] = []

    async def new(topics: bool = True) -> Settings:
        tag = uuid.uuid4().hex[:10]
        settings = dataclasses.replace(services, namespace=f"it-{tag}", pg_schema=f"it_{tag}")
        made.append(settings)
        if topics:
            await ensure_topics(settings)
        return settings

    yield new

    if not made:
        return
    conn = await asyncpg.connect(services.pg_dsn)
    try:
        for settings in made:
            await conn.execute(f"DROP SCHEMA IF EXISTS {quote_ident(settings.pg_schema)} CASCADE")
    finally:
        await conn.close()
    admin = AIOKafkaAdminClient(**services.kafka_client())
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        # the hub's topics, faust's and the per-party share topics: everything under the namespace
        doomed = [name for name in existing if any(name.startswith(f"{settings.namespace}.") for settings in made)]
        if doomed:
            await admin.delete_topics(doomed)
    finally:
        await admin.close()
    await drop_namespace_acls(services, [settings.namespace for settings in made])


@pytest.fixture
async def hub(
    hub_settings: Callable[..., Awaitable[Settings]], tmp_path: Path
) -> AsyncIterator[tuple[Settings, HubProcess, HubProcess]]:
    """A private namespace with its schema migrated, and a worker and a sink ready to start (stopped after)."""
    settings = await hub_settings()
    await migrate(settings.pg_dsn, settings.pg_schema)  # so a test can poll the projection before the sink is up
    worker = HubProcess("worker", settings, tmp_path / "worker-data", tmp_path / "worker.log")
    sink = HubProcess("sink", settings, tmp_path / "sink-data", tmp_path / "sink.log")
    yield settings, worker, sink
    worker.stop()
    sink.stop()
    await drop_internal_topics(settings)
