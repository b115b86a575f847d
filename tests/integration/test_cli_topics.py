"""`mmhub topics` (and `make demo`, which creates its topics the same way) returns only once every new topic's
partitions have a leader, so the first publish gets no NotLeaderForPartitionError retries; `--json` says what it
did. Against the real broker."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Awaitable, Callable

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from connectors.kafka import ensure_share_topics, publish, read_jsonl
from hubconf.settings import Settings
from streams.references import Book, Parked, parked_summary
from tests.integration.cli import env_of, mmhub
from tests.integration.hub import JOURNEY


async def test_topics_json_and_every_partition_has_a_leader_when_it_returns(
    hub_settings: Callable[..., Awaitable[Settings]], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = await hub_settings(topics=False)
    code, _, out = mmhub(["topics", "--json"], env_of(settings), tmp_path)
    assert code == 0
    states = orjson.loads(out)
    assert {s["topic"] for s in states} == set(settings.topics.all())
    assert {s["state"] for s in states} == {"created"}

    admin = AIOKafkaAdminClient(**settings.kafka_client())
    await admin.start()
    try:
        described = await admin.describe_topics(list(settings.topics.all()))
    finally:
        await admin.close()
    leaderless = [
        (t["topic"], p["partition"]) for t in described for p in t["partitions"] if p["leader"] < 0 or p["error_code"]
    ]
    assert all(t["error_code"] == 0 and len(t["partitions"]) > 0 for t in described)
    assert leaderless == []

    with caplog.at_level(logging.WARNING, logger="aiokafka"):
        assert await publish(settings, read_jsonl(JOURNEY)) == len(read_jsonl(JOURNEY))
    assert not [r.getMessage() for r in caplog.records if "NotLeader" in r.getMessage()]

    code, _, out = mmhub(["topics", "--json"], env_of(settings), tmp_path)
    assert code == 0 and {s["state"] for s in orjson.loads(out)} == {"exists"}


async def test_parked_reports_the_age_now_and_counts_an_event_once(
    hub_settings: Callable[..., Awaitable[Settings]], tmp_path: Path
) -> None:
    """Summaries as the worker writes them (streams.references.parked_summary, at the moment of parking) on the real
    compacted topic; `mmhub parked` read nine minutes later."""
    settings = await hub_settings()
    now = datetime.now(timezone.utc)
    since = now - timedelta(minutes=9)
    event = Parked(event={"source": "carrier.oceanline", "event_id": "dep-1"}, since=since)
    other = Parked(event={"source": "carrier.oceanline", "event_id": "arr-1"}, since=now - timedelta(minutes=1))
    written = {
        b"container:CSQU3054383": parked_summary("container:CSQU3054383", Book(parked=[event]), since + timedelta(seconds=0.124)),
        b"bill_of_lading:OCLN1": parked_summary("bill_of_lading:OCLN1", Book(parked=[event, other]), now - timedelta(minutes=1)),
    }
    producer = AIOKafkaProducer(**settings.kafka_client(), acks="all")
    await producer.start()
    try:
        for key, value in written.items():
            await producer.send_and_wait(settings.topics.parked, value=value, key=key)
    finally:
        await producer.stop()

    code, _, out = mmhub(["parked"], env_of(settings), tmp_path)
    text = out.decode().splitlines()
    print("\n".join(text))
    assert code == 0
    assert text[0] == "2 event(s) parked, on 2 reference(s) (an event waits on each reference it names)"
    assert all(" 9m0" in line for line in text[2:]), "both references' oldest event waits since nine minutes ago"
    code, _, out = mmhub(["parked", "--json"], env_of(settings), tmp_path)
    rows = orjson.loads(out)
    assert code == 0 and all(540 <= row["oldest_age_s"] < 600 and row["oldest_since"].endswith("Z") for row in rows)


async def test_share_topics_have_leaders_when_ensure_share_topics_returns(
    hub_settings: Callable[..., Awaitable[Settings]],
) -> None:
    """The sharing stage creates a party's share topic and sends to it at once (the demo's share.log had two
    NotLeaderForPartitionError retries doing so)."""
    settings = await hub_settings()
    names = [settings.topics.share("carrier", party) for party in ("carrier.oceanline", "carrier.my-haulage")]
    await ensure_share_topics(settings, iter(names))  # any iterable, read once
    admin = AIOKafkaAdminClient(**settings.kafka_client())
    await admin.start()
    try:
        described = await admin.describe_topics(names)
    finally:
        await admin.close()
    assert sorted(t["topic"] for t in described if t["error_code"] == 0 and t["partitions"]) == sorted(names)
    assert all(p["leader"] >= 0 for t in described for p in t["partitions"])
