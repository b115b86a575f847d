"""`mmhub topics` on a real broker: topics are created with MMHUB_REPLICATION_FACTOR copies, and a topic the broker
refuses is an error naming it, not a silent success (aiokafka's create_topics does not raise per topic)."""

from __future__ import annotations

import dataclasses
from typing import Awaitable, Callable

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from connectors.kafka import TopicNotCreated, ensure_share_topics, ensure_topics
from hubconf.settings import Settings

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
