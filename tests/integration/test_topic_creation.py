"""`mmhub topics` on a real broker: topics are created with MMHUB_REPLICATION_FACTOR copies, and a topic the broker
refuses is an error naming it, not a silent success (aiokafka's create_topics does not raise per topic)."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Awaitable, Callable

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from connectors.kafka import TopicNotCreated, ensure_share_topics, ensure_topics
from hubconf.settings import Settings
from hubconf.topics import DLQ_MAX_MESSAGE_BYTES, RAW_MAX_MESSAGE_BYTES, RECEIPT_TIME

pytestmark = pytest.mark.integration


async def test_a_replication_factor_the_cluster_cannot_hold_is_refused_by_name(
    hub_settings: Callable[..., Awaitable[Settings]],
) -> None:
    settings = dataclasses.replace(await hub_settings(topics=False), replication_factor=3)  # the broker is one
    with pytest.raises(TopicNotCreated) as refused:
        await ensure_topics(settings)
    assert f"{settings.topics.events}: InvalidReplicationFactorError" in str(refused.value)
    with pytest.raises(TopicNotCreated, match="InvalidReplicationFactorError"):
        await ensure_share_topics(settings, [settings.topics.share("insurer", "insurer.picc")])
    admin = AIOKafkaAdminClient(**settings.kafka_client())
    await admin.start()
    try:
        assert not [name for name in await admin.list_topics() if name.startswith(f"{settings.namespace}.")]
    finally:
        await admin.close()


async def test_the_topics_are_made_with_the_replication_factor_asked_for(
    hub_settings: Callable[..., Awaitable[Settings]],
) -> None:
    settings = await hub_settings(topics=False)
    assert settings.replication_factor == 1
    created = await ensure_topics(settings)
    assert settings.topics.events in created and await ensure_topics(settings) == []  # the second run makes nothing
    admin = AIOKafkaAdminClient(**settings.kafka_client())
    await admin.start()
    try:
        (described,) = await admin.describe_topics([settings.topics.events])
        assert {len(p["replicas"]) for p in described["partitions"]} == {1}
        assert len(described["partitions"]) == settings.partitions
    finally:
        await admin.close()


async def test_an_existing_raw_topic_takes_the_hubs_size_limit_and_keeps_its_own_settings(
    hub_settings: Callable[..., Awaitable[Settings]],
) -> None:
    """A raw topic made when raw topics took as much per message as the DLQ (5 MiB): a carrier's record of just
    under that made a dead letter the DLQ refuses. ensure_topics now holds it to RAW_MAX_MESSAGE_BYTES."""
    settings = await hub_settings(topics=False)
    raw = settings.topics.raw("canonical")
    admin = AIOKafkaAdminClient(**settings.kafka_client())
    await admin.start()
    try:
        before = {"max.message.bytes": str(DLQ_MAX_MESSAGE_BYTES), "retention.ms": "4242", **RECEIPT_TIME}
        await admin.create_topics([NewTopic(raw, settings.partitions, 1, topic_configs=before)])
        while raw not in await admin.list_topics():  # the marker: the broker lists it as existing
            await asyncio.sleep(0.2)
        await ensure_topics(settings)

        async def topic_config() -> dict[str, str]:
            [response] = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, raw)])
            [(_, _, _, _, entries)] = response.resources
            return {entry[0]: entry[1] for entry in entries}

        # the broker applies an accepted change a moment later: wait for it (or for the timeout, which fails below)
        deadline = asyncio.get_running_loop().time() + 30
        while (found := await topic_config())["max.message.bytes"] != str(RAW_MAX_MESSAGE_BYTES):
            if asyncio.get_running_loop().time() > deadline:
                break
            await asyncio.sleep(0.5)
    finally:
        await admin.close()
    assert (found["max.message.bytes"], found["retention.ms"]) == (str(RAW_MAX_MESSAGE_BYTES), "4242")
    assert found["message.timestamp.type"] == "LogAppendTime"
