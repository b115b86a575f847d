"""The runtime tests' fixture: a private namespace with the counting stage's topics (only Kafka, no Postgres)."""

from __future__ import annotations

import dataclasses
import uuid
from pathlib import Path
from typing import AsyncIterator

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from hubconf.settings import Settings
from tests.integration.runtime.harness import PARTITIONS, Counting


@pytest.fixture
async def counting(tmp_path: Path) -> AsyncIterator[Counting]:
    """A private namespace with the toy stage's input and output and the hub's DLQ (only Kafka: no Postgres)."""
    settings = dataclasses.replace(Settings.from_env(), namespace=f"it-rt-{uuid.uuid4().hex[:10]}")
    env = Counting(settings, tmp_path, f"{settings.namespace}.count.in", f"{settings.namespace}.count.out")
    admin = AIOKafkaAdminClient(**settings.kafka_client())
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(name, PARTITIONS, 1) for name in (env.input, env.output, settings.topics.dlq)]
        )
        yield env
    finally:
        for runner in env.runners:
            runner.stop()
        doomed = [name for name in await admin.list_topics() if name.startswith(f"{settings.namespace}.")]
        await admin.delete_topics(doomed)
        await admin.close()
