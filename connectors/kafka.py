"""Kafka edges outside the stream app: creating the hub's topics, publishing event files and signed raw payloads."""

from __future__ import annotations

import asyncio
import logging
import random
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaConnectionError, TopicAlreadyExistsError, for_code
from aiokafka.structs import ConsumerRecord

from connectors.carriers import SigningKey, kafka_signature_headers
from hubconf.settings import Settings
from hubconf.topics import CHANGELOG_CONFIG, ENFORCED_SETTINGS, SHARE_CONFIG, SHARE_PARTITIONS, TABLES
from hubconf.topics import MAX_RAW_BYTES as MAX_RAW_BYTES  # re-exported: `mmhub ingest` and its tests take it from here
from hubconf.topics import RAW_REQUEST_OVERHEAD

log = logging.getLogger("mmhub.kafka")
DYNAMIC_TOPIC_CONFIG = 1  # DescribeConfigs' config source of a topic-level override
LEADER_TIMEOUT_S = 30.0  # how long new topics may take to get their partitions' leaders


async def ensure_topics(settings: Settings, attempts: int = 30) -> list[str]:
    """Create the hub's topics if absent, and grant each hub process its ACLs on them (idempotent; as the admin
    principal, before the processes start); hold the existing ones to the settings that guard the hub (the broker's
    time of receipt, the size limits: hold_to_settings). Returns the names created now."""
    from connectors.acl import ensure_hub_acls  # lazily: connectors.acl imports the sharing stage, which imports us

    admin = AIOKafkaAdminClient(**settings.kafka_client(client_id="mmhub-admin"))
    for attempt in range(attempts):
        try:
            await admin.start()
            break
        except KafkaConnectionError:
            if attempt == attempts - 1:
                raise
            await asyncio.sleep(1)
    try:
        existing = set(await admin.list_topics())
        every = {
            **settings.topics.all(),
            **{f"{settings.app_id}-{table}-changelog": CHANGELOG_CONFIG for table in TABLES},
        }
        wanted = [
            NewTopic(name, settings.partitions, settings.replication_factor, topic_configs=config)
            for name, config in every.items()
            if name not in existing
        ]
        await _create(admin, wanted)
        await wait_for_leaders(admin, [topic.name for topic in wanted])
        held = {name: {k: v for k, v in config.items() if k in ENFORCED_SETTINGS} for name, config in every.items()}
        await hold_to_settings(admin, {name: wanted for name, wanted in held.items() if wanted and name in existing})
    finally:
        await admin.close()
    await ensure_hub_acls(settings)
    return [topic.name for topic in wanted]


async def _create(admin: AIOKafkaAdminClient, wanted: list[NewTopic]) -> None:
    """Create `wanted`; raise TopicNotCreated for one the broker refuses (the request itself succeeds: each topic has
    its own error code in the answer). One that another process created since the list is what was wanted."""
    if wanted:
        try:
            response = await admin.create_topics(wanted)
        except TopicAlreadyExistsError:
            return
        refused = [
            f"{topic}: {for_code(code).__name__}{f' ({rest[0]})' if rest and rest[0] else ''}"
            for topic, code, *rest in response.topic_errors
            if code not in (0, TopicAlreadyExistsError.errno)
        ]
        if refused:
            raise TopicNotCreated(f"the broker refused to create {len(refused)} topic(s): {'; '.join(refused)}")


class TopicNotCreated(RuntimeError):
    """The broker refused a topic: a replication factor above its brokers (MMHUB_REPLICATION_FACTOR), a config or a
    name it does not take, or no permission."""


async def ensure_share_topics(settings: Settings, names: Iterable[str]) -> None:
    """Create these per-party share topics if absent (the sharing stage as parties appear; onboarding), and return
    once they have leaders: the stage sends to them at once."""
    names = list(names)
    admin = AIOKafkaAdminClient(**settings.kafka_client(client_id="mmhub-share-topics"))
    await admin.start()
    try:
        copies = settings.replication_factor
        await _create(admin, [NewTopic(name, SHARE_PARTITIONS, copies, topic_configs=SHARE_CONFIG) for name in names])
    finally:
        await admin.close()
    await leaders_of(settings, names)


async def leaders_of(settings: Settings, names: list[str]) -> None:
    """wait_for_leaders with a client of its own."""
    admin = AIOKafkaAdminClient(**settings.kafka_client(client_id="mmhub-share-topics"))
    await admin.start()
    try:
        await wait_for_leaders(admin, names)
    finally:
        await admin.close()


async def hold_to_settings(admin: AIOKafkaAdminClient, wanted: dict[str, dict[str, str]]) -> None:
    """Give existing topics the settings of `wanted` (per topic) they lack: a topic made before the hub read its time
    of receipt from it switches to LogAppendTime (streams.horizon: with CreateTime the producer, a carrier, would
    choose it), and one made with other size limits takes the hub's (hubconf.topics.RAW_MAX_MESSAGE_BYTES).
    AlterConfigs replaces every topic-level setting, so each topic's own overrides are read first and kept."""
    if not wanted:
        return
    described = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, name) for name in wanted])
    changes = []
    for response in described:
        for _, _, _, name, entries in response.resources:
            overrides = {entry[0]: entry[1] for entry in entries if entry[3] == DYNAMIC_TOPIC_CONFIG}
            if wanted[name].items() <= overrides.items():
                continue
            differ = {k: f"{overrides.get(k, 'the default')} -> {v}" for k, v in wanted[name].items() if overrides.get(k) != v}
            log.warning("topic %s: setting %s (the hub's settings for it)", name, differ)
            changes.append(ConfigResource(ConfigResourceType.TOPIC, name, configs={**overrides, **wanted[name]}))
    if changes:
        for response in await admin.alter_configs(changes):
            for error_code, message, _, name in response.resources:
                if error_code:
                    raise RuntimeError(f"could not set {wanted[name]} on {name}: error {error_code} {message}")


async def wait_for_leaders(admin: AIOKafkaAdminClient, names: list[str], timeout_s: float = LEADER_TIMEOUT_S) -> None:
    """Return once every partition of `names` has a leader in the broker's metadata. A topic just created has none
    for a moment, and a producer that sends then logs NotLeaderForPartitionError and retries (make demo did)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    pending = list(names)
    while pending:
        described = await admin.describe_topics(pending)
        pending = [
            topic["topic"]
            for topic in described
            if topic["error_code"]
            or not topic["partitions"]
            or any(p["error_code"] or p["leader"] < 0 for p in topic["partitions"])
        ]
        if pending:
            if asyncio.get_running_loop().time() > deadline:
                raise RuntimeError(f"no leader after {timeout_s:g} s for the partitions of {', '.join(pending)}")
            await asyncio.sleep(0.1)


def read_jsonl(path: Path) -> list[bytes]:
    """The non-blank lines of a JSON-lines file, as the exact bytes a carrier would send."""
    return [line.strip() for line in path.read_bytes().splitlines() if line.strip()]


def scramble(lines: list[bytes], duplicates: int, seed: int) -> list[bytes]:
    """The lines in a shuffled order with `duplicates` extra copies of random lines: the demo's hostile network."""
    rng = random.Random(seed)
    out = lines + [rng.choice(lines) for _ in range(duplicates)] if lines else []
    rng.shuffle(out)
    return out


def shipment_key(line: bytes) -> bytes | None:
    """The partition key of a canonical event: its shipment id, if the line is JSON that has one."""
    try:
        document = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    shipment_id = document.get("shipment_id") if isinstance(document, dict) else None
    return shipment_id.encode() if isinstance(shipment_id, str) else None


async def publish(settings: Settings, lines: Iterable[bytes], topic: str | None = None) -> int:
    """Send each line as one message to `hub.events` (keyed by shipment id) and wait until all are acknowledged."""
    producer = AIOKafkaProducer(**settings.kafka_client(), acks="all", linger_ms=5, enable_idempotence=True)
    sent = 0
    try:
        await producer.start()  # inside the try: a producer that could not start is stopped too (no "Unclosed")
        futures = []
        for line in lines:
            futures.append(await producer.send(topic or settings.topics.events, value=line, key=shipment_key(line)))
            sent += 1
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return sent


async def publish_raw(
    settings: Settings, format_name: str, payloads: list[bytes], key: SigningKey
) -> list[tuple[int, int]]:
    """Send each payload, untouched, as one signed message to the format's raw topic, keyed by the carrier.

    Waits until all are acknowledged; returns each one's (partition, offset), in order.
    """
    topic = settings.topics.raw(format_name)
    producer = AIOKafkaProducer(
        **settings.kafka_client(),
        acks="all",
        enable_idempotence=True,
        max_request_size=MAX_RAW_BYTES + RAW_REQUEST_OVERHEAD,
    )
    try:
        await producer.start()
        futures = [
            await producer.send(
                topic,
                value=body,
                key=key.carrier.encode(),
                headers=kafka_signature_headers(body, key, format_name, datetime.now(timezone.utc)),
            )
            for body in payloads
        ]
        sent = await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return [(metadata.partition, metadata.offset) for metadata in sent]


async def share_topics(settings: Settings) -> list[str]:
    """The per-party share topics of the namespace that exist now (those the principal may see), sorted."""
    admin = AIOKafkaAdminClient(**settings.kafka_client(client_id="mmhub-share-topics"))
    await admin.start()
    try:
        return sorted(name for name in await admin.list_topics() if name.startswith(settings.topics.share_prefix))
    finally:
        await admin.close()


async def read_latest(settings: Settings, topic: str) -> dict[bytes, bytes]:
    """The last value per key on `topic`, read from the beginning to the end as it is now (for compacted topics)."""
    return {m.key: m.value or b"" for m in await read_all(settings, topic) if m.key is not None}


async def read_all(settings: Settings, topic: str) -> list[ConsumerRecord[bytes, bytes]]:
    """Every message on `topic`, in order per partition, from the beginning to each partition's high watermark as
    it is when the read starts: the watermark is the positive marker that nothing earlier is left unread."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    # read_committed: the worker writes its outputs in transactions; an aborted one is not the hub's output
    consumer = AIOKafkaConsumer(**settings.kafka_client(), enable_auto_commit=False, isolation_level="read_committed")
    found: list[ConsumerRecord[bytes, bytes]] = []
    try:
        await consumer.start()
        if topic not in await consumer.topics():
            return found
        partitions = [TopicPartition(topic, p) for p in range(settings.partitions)]  # as ensure_topics made it
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        remaining = {tp for tp in partitions if ends[tp] > 0}
        while remaining:
            for tp, messages in (await consumer.getmany(*remaining, timeout_ms=1000)).items():
                found.extend(m for m in messages if m.offset < ends[tp])
                if await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
    finally:
        await consumer.stop()
    return found
