"""Sharing with parties over Kafka, end to end: worker and share stage as real processes on the real broker and
database, playing the claim journey (examples/journey-claim.jsonl).

The insurer's consumer sees the claim and no rates; a shipper's delegate gets views until the grant is revoked and
none after; every message on the hub.share.* topics has exactly one audit row (and one hub.audit message), and
the audit names exactly the fields each message disclosed; a replay from scratch sends and audits nothing twice.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable

import asyncpg
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from connectors.kafka import publish, read_jsonl, share_topics
from connectors.postgres.db import quote_ident
from connectors.postgres.migrate import migrate
from connectors.sharing.plan import insured_value_fields, leaf_paths
from connectors.sharing.stage import share_group
from hubconf.settings import Settings
from hubconf.topics import SHARE_AUDIENCES, SHARE_PARTITIONS
from tests.integration.hub import HubProcess, drop_internal_topics, offline, wait_for

pytestmark = pytest.mark.integration

JOURNEY = Path(__file__).resolve().parents[2] / "examples" / "journey-claim.jsonl"
SHIPMENT = "SHP-2026-000043"
SHIPPER = "shipper.chengdu-elec"
INSURER = "insurer.picc"
MTO = "mto.westcorridor"
BROKER = "broker.customs-jb"
GRANT = "g-it-broker"
RATES = {"charges", "payouts", "margin", "carrier_charges", "ledger", "journey_charges", "charges_total"}
# A payment after the journey: a new record version for the shipment once the broker's grant is revoked.
LATER_PAYMENT = orjson.dumps(
    {
        "event_id": "pay-cny-2", "source": SHIPPER, "event_type": "payment", "shipment_id": SHIPMENT,
        "occurred_at": "2026-03-13T09:00:00Z", "recorded_at": "2026-03-13T09:03:00Z", "classifier": "ACT",
        "payload": {"payment_id": "PMT-43-003", "payer": SHIPPER, "amount": {"amount": "100.00", "currency": "CNY"}},
    }
)
TIMEOUT_S = 180
CHUNKS = [20, 49, 50, 51, 52]  # where the journey is cut (line numbers, 1-based, of each chunk's last event)


@pytest.fixture
async def hub(
    hub_settings: Callable[..., Awaitable[Settings]], tmp_path: Path
) -> AsyncIterator[tuple[Settings, HubProcess, HubProcess]]:
    settings = await hub_settings()
    await migrate(settings.pg_dsn, settings.pg_schema)  # so the test can write a grant before the stage starts
    worker = HubProcess("worker", settings, tmp_path / "worker-data", tmp_path / "worker.log")
    share = HubProcess("share", settings, tmp_path / "share-data", tmp_path / "share.log")
    yield settings, worker, share
    worker.stop()
    share.stop()
    await drop_internal_topics(settings)


async def sql(settings: Settings, query: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(settings.pg_dsn, server_settings={"search_path": quote_ident(settings.pg_schema)})
    try:
        return list(await conn.fetch(query, *args))
    finally:
        await conn.close()


async def shared_up_to(settings: Settings, version: int) -> bool:
    """The stage has shared `version` of the shipment and published every audit row to hub.audit."""
    rows = await sql(
        settings,
        "SELECT (SELECT version FROM share_versions WHERE shipment_id = $1) AS version,"
        " (SELECT count(*) FROM share_audit_outbox) AS waiting",
        SHIPMENT,
    )
    return bool(rows[0]["version"] is not None and rows[0]["version"] >= version and rows[0]["waiting"] == 0)


async def read_to_end(settings: Settings, topic: str, count: int | None = None) -> list[Any]:
    """Every message on `topic` (`count` partitions, by default settings.partitions) as it is now, from the beginning to
    the end offsets."""
    consumer = AIOKafkaConsumer(**settings.kafka_client(), enable_auto_commit=False)
    await consumer.start()
    found: list[Any] = []
    try:
        partitions = [TopicPartition(topic, p) for p in range(count or settings.partitions)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        remaining = {tp for tp in partitions if ends[tp] > 0}
        deadline = time.monotonic() + 60
        while remaining and time.monotonic() < deadline:
            for tp, messages in (await consumer.getmany(*remaining, timeout_ms=1000)).items():
                found.extend(messages)
                if await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
        assert not remaining, f"could not read {topic} to its end"
    finally:
        await consumer.stop()
    return found


async def delivered_by_audience(settings: Settings) -> dict[str, list[Any]]:
    """Every share message as it is now, by audience, read from each party's own topic (which holds only its own)."""
    found: dict[str, list[Any]] = {audience: [] for audience in SHARE_AUDIENCES}
    for topic in await share_topics(settings):
        audience, party = topic.removeprefix(settings.topics.share_prefix).split(".", 1)
        messages = await read_to_end(settings, topic, SHARE_PARTITIONS)
        assert {m.key.decode() for m in messages} <= {party}, f"{topic} holds another party's messages"
        found[audience].extend(messages)
    return found


def keys(node: Any) -> set[str]:
    if isinstance(node, dict):
        return set(node) | {k for value in node.values() for k in keys(value)}
    if isinstance(node, list):
        return {k for item in node for k in keys(item)}
    return set()


async def test_parties_get_only_their_views_a_revoked_delegate_gets_nothing_new_and_the_audit_matches_delivery(
    hub: tuple[Settings, HubProcess, HubProcess],
) -> None:
    settings, worker, share = hub
    lines = read_jsonl(JOURNEY)
    final_version = offline(lines + [LATER_PAYMENT])[SHIPMENT].version
    assert final_version == offline(lines)[SHIPMENT].version + 1
    await sql(
        settings,
        "INSERT INTO grants (grant_id, shipment_id, grantor, grantee, grades, granted_at) VALUES ($1, $2, $3, $4, $5, $6)",
        GRANT, SHIPMENT, SHIPPER, BROKER, ["public", "operational"], datetime.now(timezone.utc) - timedelta(minutes=1),
    )
    worker.start()
    share.start()

    # In chunks, each shared before the next is sent, so several versions go out: the claim opens (line 50), gains
    # evidence (51), is acknowledged by the insurer (52), then stays the same.
    start = 0
    for end in CHUNKS + [len(lines)]:
        await publish(settings, lines[start:end])
        version = offline(lines[:end])[SHIPMENT].version
        await wait_for(lambda: shared_up_to(settings, version), TIMEOUT_S, f"the shares of lines ..{end}", worker, share)
        start = end
    await sql(settings, "UPDATE grants SET revoked_at = now() WHERE grant_id = $1", GRANT)
    await publish(settings, [LATER_PAYMENT])
    await wait_for(lambda: shared_up_to(settings, final_version), TIMEOUT_S, "the payment's shares", worker, share)
    share.stop()
    assert share.process is not None and share.process.returncode == 0, share.tail()

    delivered = await delivered_by_audience(settings)
    documents = [(audience, m.key.decode(), orjson.loads(m.value)) for audience, ms in delivered.items() for m in ms]
    assert all(party == doc["party"] for _, party, doc in documents), "every message is keyed by its party"
    assert MTO not in {party for _, party, _ in documents}

    # (a) the insurer's consumer: views and the claim, no rates anywhere
    insurer = [doc for audience, party, doc in documents if audience == "insurer" and party == INSURER]
    claims = [doc for doc in insurer if doc["kind"] == "claim"]
    states = [offline(lines[:end])[SHIPMENT].claims for end in CHUNKS + [len(lines)]]
    changes = [c[0].model_dump(mode="json") for i, c in enumerate(states) if c and (i == 0 or c != states[i - 1])]
    assert len(changes) == 3, "opened, more evidence, acknowledged"
    assert [doc["claim"] for doc in claims] == changes, "each change of the claim is sent once, nothing else"
    assert claims[-1]["claim"]["liable_carrier"] == "carrier.oceanline"
    views = [doc for doc in insurer if doc["kind"] == "status"]
    # (the worker may emit a chunk as more than one version: each chunk's last is certain)
    chunk_versions = {offline(lines[:end])[SHIPMENT].version for end in CHUNKS + [len(lines)]}
    assert chunk_versions | {final_version} <= {doc["version"] for doc in views}
    assert views[-1]["version"] == final_version and views[-1]["view"]["claims"]
    assert not RATES & keys(insurer), f"the insurer received {RATES & keys(insurer)}"
    assert all("settlement" not in doc["view"] for doc in views)

    # (b) the delegate: the shipper's grant gave it views until revoked, none of the version after
    broker = [doc for audience, party, doc in documents if audience == "delegate" and party == BROKER]
    shipper = [doc for audience, party, doc in documents if audience == "shipper" and party == SHIPPER]
    assert broker and all(doc["kind"] == "status" and doc["via_grants"] == [GRANT] for doc in broker)
    assert all("settlement" not in doc["view"] and "contact" not in doc["view"]["shipper"] for doc in broker)
    shipper_versions = {doc["version"] for doc in shipper if doc["kind"] == "status"}
    assert final_version in shipper_versions
    assert {doc["version"] for doc in broker} == shipper_versions - {final_version}
    assert chunk_versions <= {doc["version"] for doc in broker}

    # (c) the audit: one row per delivered message and back, naming exactly what the message disclosed
    audit = await sql(settings, "SELECT * FROM share_audit")
    assert {row["channel"] for row in audit} == {"kafka"}
    assert Counter((row["party"], row["shipment_id"], row["record_version"], row["kind"]) for row in audit) == Counter(
        (doc["party"], doc["shipment_id"], doc["version"], doc["kind"]) for _, _, doc in documents
    )
    by_id = {row["share_id"]: row for row in audit}
    assert sorted(by_id) == sorted(doc["share_id"] for _, _, doc in documents)
    for _, _, doc in documents:
        if doc["kind"] == "status":
            shown = {key: value for key, value in doc["view"].items() if key != "policy_version"}
            disclosed = set(leaf_paths(shown))
        else:
            # the claim, and the insured value its envelope carries
            assert doc["schema_version"] == 2 and doc["insured_value"]["currency"]
            disclosed = {*leaf_paths(doc["claim"], "claims[]"), *insured_value_fields(doc["insured_value"])}
        assert set(by_id[doc["share_id"]]["fields"]) == disclosed, doc["share_id"]
    logged = [orjson.loads(m.value) for m in await read_to_end(settings, settings.topics.audit)]
    assert sorted(entry["share_id"] for entry in logged) == sorted(by_id)
    assert all(entry["party"] == by_id[entry["share_id"]]["party"] for entry in logged)

    # `mmhub usage`, as an operator would run it
    month = min(row["shared_at"] for row in audit).astimezone(timezone.utc).strftime("%Y-%m")
    printed = mmhub(share, "usage", "--party", INSURER, "--month", month)
    assert SHIPMENT in printed and "status" in printed and "claim" in printed, printed
    report = orjson.loads(mmhub(share, "usage", "--party", INSURER, "--month", month, "--json"))
    assert {(row["kind"], row["shares"]) for row in report["rows"]} == {("status", len(views)), ("claim", len(claims))}
    assert report["totals"]["shares"] == len(insurer)
    per_party = orjson.loads(mmhub(share, "usage", "--shipment", SHIPMENT, "--json"))
    assert sum(row["shares"] for row in per_party["rows"]) == len(documents)

    # a replay from the beginning of the status topic sends nothing again and audits nothing twice
    offsets = "SELECT partition, next_offset FROM sink_offsets WHERE consumer = $1 ORDER BY partition"
    read_before = [tuple(row) for row in await sql(settings, offsets, share_group(settings))]
    await sql(settings, "DELETE FROM sink_offsets WHERE consumer = $1", share_group(settings))
    share.start()

    async def replayed() -> bool:
        return [tuple(row) for row in await sql(settings, offsets, share_group(settings))] == read_before

    await wait_for(replayed, TIMEOUT_S, "the replay", share)
    share.stop()
    replayed_shares = await delivered_by_audience(settings)
    for audience in SHARE_AUDIENCES:
        assert len(replayed_shares[audience]) == len(delivered[audience])
    assert len(await sql(settings, "SELECT share_id FROM share_audit")) == len(audit)


def mmhub(proc: HubProcess, *args: str) -> str:
    """Run one `mmhub` command with the test's environment; its standard output."""
    done = subprocess.run(
        [sys.executable, "-m", "mmhub.cli", *args], env=proc.env, capture_output=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout.decode()
