"""Finding 9: `mmhub demo` deleted every `demo-*` topic and `demo_*` schema on the broker, including those of other
runs. A run now drops only its own namespace's topics and its own schema, when it ends."""

from __future__ import annotations

import asyncio
import dataclasses
import subprocess
import sys
import time
import uuid
from pathlib import Path

import asyncpg
import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from connectors.postgres.db import quote_ident
from mmhub import demo
from hubconf.settings import Settings

pytestmark = pytest.mark.integration


async def topics(settings: Settings) -> set[str]:
    admin = AIOKafkaAdminClient(**settings.kafka_client())
    await admin.start()
    try:
        return set(await admin.list_topics())
    finally:
        await admin.close()


async def schemas(settings: Settings) -> set[str]:
    conn = await asyncpg.connect(settings.pg_dsn)
    try:
        return {row["nspname"] for row in await conn.fetch("SELECT nspname FROM pg_namespace")}
    finally:
        await conn.close()


async def test_a_demo_run_drops_its_own_topics_and_schema_and_nobody_elses(
    services: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tag = uuid.uuid4().hex[:8]
    other_topic, other_schema = f"demo-other-{tag}.hub.events", f"demo_other_{tag}"
    admin = AIOKafkaAdminClient(**services.kafka_client())
    await admin.start()
    try:
        await admin.create_topics([NewTopic(other_topic, num_partitions=1, replication_factor=1)])
    finally:
        await admin.close()
    conn = await asyncpg.connect(services.pg_dsn)
    await conn.execute(f"CREATE SCHEMA {quote_ident(other_schema)}")
    await conn.close()

    runs: list[Settings] = []

    async def play(settings: Settings, journeys: list[Path]) -> int:
        runs.append(settings)
        deadline = time.monotonic() + 30  # the run made its own topics; wait until the broker lists them
        while settings.topics.events not in await topics(settings):
            assert time.monotonic() < deadline, "the run's topics never appeared"
            await asyncio.sleep(0.5)
        return 0

    def spawn(command: str, settings: Settings, log: Path) -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])  # stands in for the stages

    monkeypatch.setattr(demo, "_play", play)
    monkeypatch.setattr(demo, "_spawn", spawn)
    settings = dataclasses.replace(services, data_dir=tmp_path)
    try:
        assert await asyncio.to_thread(demo.run_demo, settings, []) == 0
        (run,) = runs
        deadline = time.monotonic() + 30  # Kafka deletes topics in the background; list_topics shows them meanwhile
        while [t for t in await topics(services) if t.startswith(run.namespace + ".")] and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
        after_topics, after_schemas = await topics(services), await schemas(services)
        print(f"after the run: other run's topic kept {other_topic in after_topics}, schema kept"
              f" {other_schema in after_schemas}; own topics left {sorted(t for t in after_topics if t.startswith(run.namespace + '.'))}")
        assert other_topic in after_topics and other_schema in after_schemas
        assert not [t for t in after_topics if t.startswith(run.namespace + ".")]
        assert run.pg_schema not in after_schemas
    finally:
        admin = AIOKafkaAdminClient(**services.kafka_client())
        await admin.start()
        try:
            if other_topic in await admin.list_topics():
                await admin.delete_topics([other_topic])
        finally:
            await admin.close()
        conn = await asyncpg.connect(services.pg_dsn)
        await conn.execute(f"DROP SCHEMA IF EXISTS {quote_ident(other_schema)} CASCADE")
        await conn.close()

