"""Issue 12, finding 0: Kafka itself was open (PLAINTEXT, no authentication, no ACLs).

On the real broker of the local stack: a client without credentials, or with a wrong password, is refused; a
carrier writes its raw topics (where an unsigned message is still dead-lettered) but not hub.events, and reads
no other carrier's shares; a party reads only its own share topics with its own groups, also when another
party's id starts with its own; a hub process may not do what its job does not need.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from typing import Any, Awaitable, Callable

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import (
    GroupAuthorizationFailedError,
    KafkaConnectionError,
    KafkaError,
    KafkaTimeoutError,
    TopicAuthorizationFailedError,
)

from hubconf.settings import Settings
from hubconf.topics import DLQ_CODE
from runtime.loop import DELETE_RETENTION
from tests.integration.hub import HubProcess, read_topic

pytestmark = pytest.mark.integration

TIMEOUT_MS = 5000
# What a refused produce looks like to aiokafka: the broker answers the metadata request with
# TOPIC_AUTHORIZATION_FAILED, and the producer gives up on the topic (or times out waiting for it).
REFUSED = (TopicAuthorizationFailedError, KafkaTimeoutError)


def as_party(settings: Settings, party: str, password: str) -> dict[str, Any]:
    """Client keyword arguments for an onboarded party (it has no password file: onboarding printed it)."""
    return settings.kafka_client(
        sasl_plain_username=party, sasl_plain_password=password, request_timeout_ms=TIMEOUT_MS
    )


async def produce(client: dict[str, Any], topic: str, value: bytes, key: bytes | None = None) -> None:
    producer = AIOKafkaProducer(**client, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topic, value, key=key)
    finally:
        await producer.stop()


async def read_from_start(
    client: dict[str, Any], topic: str, group: str | None = None, partitions: int = 1
) -> list[bytes]:
    """What a consumer gets from `topic` from its beginning, as that client. A topic the client
    may not describe is, to it, a topic without partitions: it gets nothing (the broker answers no fetch)."""
    consumer = AIOKafkaConsumer(**client, group_id=group, enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    try:
        if group is None:
            tps = [TopicPartition(topic, p) for p in range(partitions)]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
        else:
            consumer.subscribe([topic])
        batch = await consumer.getmany(timeout_ms=TIMEOUT_MS)
        return [m.value for messages in batch.values() for m in messages]
    finally:
        await consumer.stop()


def tag() -> str:
    return uuid.uuid4().hex[:8]


async def onboarded(settings: Settings, party: str, kind: str) -> dict[str, Any]:
    # imported here, so that the module loads on the base commit too (where the first test shows the open door)
    from connectors.acl import onboard

    return as_party(settings, party, await onboard(settings, party, kind))


async def two_parties(
    settings: Settings, audience: str, ours: tuple[str, str], theirs: tuple[str, str]
) -> tuple[dict[str, Any], str, str]:
    """Onboard two parties (id, kind) and put one message on each one's `audience` share topic, b"ours" and
    b"theirs", as the sharing stage would. Returns our client, our topic and theirs."""
    client = await onboarded(settings, *ours)
    await onboarded(settings, *theirs)
    topics = settings.topics.share(audience, ours[0]), settings.topics.share(audience, theirs[0])
    for topic, party, value in zip(topics, (ours[0], theirs[0]), (b"ours", b"theirs"), strict=True):
        await produce(settings.kafka_client(), topic, value, key=party.encode())
    return client, *topics


async def test_a_client_without_credentials_is_refused(hub_settings: Callable[..., Awaitable[Settings]]) -> None:
    settings = await hub_settings()
    anonymous = {"bootstrap_servers": settings.kafka, "request_timeout_ms": TIMEOUT_MS}
    with pytest.raises(KafkaConnectionError):
        await produce(anonymous, settings.topics.events, b'{"event_type": "booking"}')
    # the control: the same send with the tools principal's credentials is taken
    await produce(settings.as_principal("tools").kafka_client(), settings.topics.events, b"{}")


async def test_a_wrong_password_is_refused(hub_settings: Callable[..., Awaitable[Settings]]) -> None:
    settings = await hub_settings()
    worker = settings.as_principal("worker")
    with pytest.raises(KafkaError):
        await produce(
            worker.kafka_client(sasl_plain_password="not-the-password", request_timeout_ms=TIMEOUT_MS),
            settings.topics.events,
            b"{}",
        )
    await produce(worker.kafka_client(), settings.topics.events, b"{}")


async def test_a_carrier_writes_its_raw_topics_only_and_reads_no_other_carriers_shares(
    hub_settings: Callable[..., Awaitable[Settings]],
) -> None:
    settings = await hub_settings()
    t = tag()
    ours = f"carrier.ocean-{t}"
    carrier, own_topic, rival_topic = await two_parties(
        settings, "carrier", (ours, "carrier"), (f"carrier.ocean-{t}.rival", "carrier")
    )

    with pytest.raises(REFUSED):
        await produce(carrier, settings.topics.events, b'{"event_type": "booking"}', key=b"SHP-2026-000042")
    with pytest.raises(REFUSED):
        await produce(carrier, settings.topics.status, b"{}", key=b"SHP-2026-000042")
    assert await read_from_start(carrier, rival_topic) == []
    assert await read_from_start(settings.kafka_client(), rival_topic) == [b"theirs"], "the control"
    # what a carrier may do, it can: publish raw, read its own view
    await produce(carrier, settings.topics.raw("canonical"), b"{}", key=ours.encode())
    assert await read_from_start(carrier, own_topic) == [b"ours"]


async def test_an_unsigned_raw_message_from_an_authenticated_carrier_is_still_dead_lettered(hub: Any) -> None:
    settings, worker, sink = hub
    assert isinstance(worker, HubProcess)
    carrier_id = f"carrier.road-{tag()}"
    carrier = await onboarded(settings, carrier_id, "carrier")
    worker.start()
    body = b'{"event_type": "booking", "event_id": "forged-1", "source": "mto.westcorridor"}'
    await produce(carrier, settings.topics.raw("canonical"), body, key=carrier_id.encode())
    dead = await read_topic(settings, settings.topics.dlq, expected=1, timeout=90)
    assert [m.value for m in dead] == [body], worker.tail()
    assert dict(dead[0].headers)[DLQ_CODE] == b"unsigned"
    events = await read_topic(settings, settings.topics.events, expected=0, timeout=1)
    assert events == [], "nothing of the unsigned message reached hub.events"
    # under its own principal the worker may read how long its changelogs keep a delete (runtime.loop): the merge
    # stage reads it before it restores, and says so once its partitions are active
    deadline = time.monotonic() + 60
    while re.search(r"merge: partitions \[[0-9, ]+\] active", log := worker.log.read_text(errors="replace")) is None:
        assert time.monotonic() < deadline, worker.tail()
        await asyncio.sleep(0.5)
    assert f"cannot read {DELETE_RETENTION}" not in log, worker.tail()


async def test_a_party_reads_only_its_own_shares_with_its_own_groups(
    hub_settings: Callable[..., Awaitable[Settings]],
) -> None:
    settings = await hub_settings()
    t = tag()
    # the second id starts with the first: a prefix grant on the first would cover the second
    ours, theirs = f"shipper.acme-{t}", f"shipper.acme-{t}.eu"
    party, own_topic, their_topic = await two_parties(settings, "shipper", (ours, "shipper"), (theirs, "consignee"))

    assert await read_from_start(party, their_topic) == []
    assert await read_from_start(settings.kafka_client(), their_topic) == [b"theirs"], "the control"
    with pytest.raises(GroupAuthorizationFailedError):
        await read_from_start(party, own_topic, group=f"{settings.topics.party_groups(theirs)}reader")
    with pytest.raises(REFUSED):
        await produce(party, settings.topics.events, b"{}")
    own_group = f"{settings.topics.party_groups(ours)}reader"
    assert await read_from_start(party, own_topic, group=own_group) == [b"ours"]


async def test_each_hub_process_may_do_only_what_it_needs(hub_settings: Callable[..., Awaitable[Settings]]) -> None:
    settings = await hub_settings()
    sink = settings.as_principal("sink").kafka_client(request_timeout_ms=TIMEOUT_MS)
    share = settings.as_principal("share").kafka_client(request_timeout_ms=TIMEOUT_MS)
    webhooks = settings.as_principal("webhooks").kafka_client(request_timeout_ms=TIMEOUT_MS)
    gateway = settings.as_principal("gateway").kafka_client(request_timeout_ms=TIMEOUT_MS)
    await produce(settings.kafka_client(), settings.topics.status, b"a version", key=b"SHP-2026-000042")
    from connectors.kafka import ensure_share_topics

    a_share_topic = settings.topics.share("shipper", f"shipper.acme-{tag()}")
    await ensure_share_topics(settings, [a_share_topic])

    with pytest.raises(REFUSED):
        await produce(sink, settings.topics.events, b"{}")
    with pytest.raises(REFUSED):
        await produce(share, settings.topics.events, b"{}")
    with pytest.raises(REFUSED):
        await produce(webhooks, a_share_topic, b"{}")
    with pytest.raises(REFUSED):
        await produce(gateway, settings.topics.status, b"{}")
    assert await read_from_start(gateway, settings.topics.status, partitions=settings.partitions) == []
    # the sink's one job: read the status topic
    assert await read_from_start(sink, settings.topics.status, partitions=settings.partitions) == [b"a version"]
