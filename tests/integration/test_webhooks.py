"""Webhooks end to end on the real broker and database: share messages on `hub.share.<audience>` reach a local
subscriber signed, in order and once, through retries, 413s, outages and rotations, and the audit says so."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable

import asyncpg
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from aiokafka import AIOKafkaProducer

from connectors.kafka import ensure_share_topics
from connectors.parties import load_parties
from connectors.postgres.db import quote_ident
from connectors.postgres.migrate import migrate
from connectors.webhooks.delivery import SIGNATURE, SIGNATURE_PREVIOUS, SUBSCRIPTION_ID, WebhookConfig, verify
from connectors.webhooks.notifications import Subscription, SubscriptionRequest
from connectors.webhooks.routes import add_subscription_routes
from connectors.webhooks.run import run_webhooks
from connectors.webhooks.store import WebhookStore
from hubconf.settings import Settings
from streams.sharing import POLICY

from tests.integration.hub import HubProcess

pytestmark = pytest.mark.integration

NewSettings = Callable[..., Awaitable[Settings]]

REPO = Path(__file__).resolve().parents[2]
SHIPPER = "shipper.chengdu-elec"
CONSIGNEE = "consignee.johor-assembly"
TOKENS = orjson.loads((REPO / "examples" / "keys" / "tokens.json").read_bytes())["tokens"]
# Production knobs with the waits shrunk, so retries happen within a test; the subscribers listen on loopback over
# plain http, which only the operator's allow-list (and allow_http) lets the hub reach.
CONFIG = WebhookConfig(
    batch_size=50, max_attempts=3, retry_for_s=600, backoff_base_s=0.05, backoff_cap_s=0.3, timeout_s=5,
    poll_s=0.05, allow_http=True, allow_hosts=("127.0.0.1",),
)
ENV = {"MMHUB_WEBHOOKS_ALLOW_HTTP": "1", "MMHUB_WEBHOOKS_ALLOW_HOSTS": "127.0.0.1", "MMHUB_WEBHOOKS_POLL_S": "0.05",
       "MMHUB_WEBHOOKS_BACKOFF_BASE_S": "0.05", "MMHUB_WEBHOOKS_BACKOFF_CAP_S": "0.3", "MMHUB_WEBHOOKS_MAX_ATTEMPTS": "3"}


# --- share messages, as the sharing stage writes them ----------------------------------------------------------------


def status(party: str, shipment: str, version: int, relation: str = "shipper") -> dict[str, Any]:
    return {
        "kind": "status", "party": party, "shipment_id": shipment, "version": version, "relations": [relation],
        "via_grants": [], "policy_version": POLICY.version,
        "view": {"shipment_id": shipment, "version": version, "status": "in_transit",
                 "legs": [{"sequence": 1, "mode": "1"}, {"sequence": 2, "mode": "2"}], "policy_version": POLICY.version},
    }


def claim(party: str, shipment: str, version: int, claim_id: str) -> dict[str, Any]:
    return {
        "kind": "claim", "party": party, "shipment_id": shipment, "version": version, "relations": ["shipper"],
        "via_grants": [], "policy_version": POLICY.version,
        "claim": {"claim_id": claim_id, "status": "open", "leg": 2, "liability": {"sdr": "8.33"}},
    }


def journeys(party: str, shipments: list[str], versions: int) -> list[dict[str, Any]]:
    """Versions 1..n of each shipment, interleaved as the status topic interleaves shipments."""
    return [status(party, shipment, v) for v in range(1, versions + 1) for shipment in shipments]


def key_of(message: dict[str, Any]) -> str:
    ref = message["claim"]["claim_id"] if message["kind"] == "claim" else ""
    return f"{message['party']}/{message['shipment_id']}/{message['version']}/{message['kind']}/{ref}"


async def produce(settings: Settings, audience: str, messages: list[dict[str, Any]], key: str | None = None) -> None:
    """As the sharing stage sends: on the party's own share topic (the key's), which it creates first."""
    parties = [key or message["party"] for message in messages]
    await ensure_share_topics(settings, {settings.topics.share(audience, party) for party in parties})
    producer = AIOKafkaProducer(**settings.kafka_client(), acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for message, party in zip(messages, parties, strict=True):
            topic = settings.topics.share(audience, party)
            await producer.send_and_wait(topic, orjson.dumps(message), key=party.encode())
    finally:
        await producer.stop()


# --- the subscriber ---------------------------------------------------------------------------------------------------

Answer = tuple[int, dict[str, str], str]


def accept(notifications: list[dict[str, Any]]) -> Answer:
    return 200, {}, ""


@dataclass
class Call:
    at: float  # time.monotonic() on arrival
    headers: dict[str, str]
    body: bytes
    status: int

    @property
    def notifications(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = orjson.loads(self.body)["notifications"]
        return found


@dataclass
class Subscriber:
    """A webhook endpoint on 127.0.0.1 that answers each POST with `answer(notifications)` and keeps every call."""

    answer: Callable[[list[dict[str, Any]]], Answer] = accept
    calls: list[Call] = field(default_factory=list)
    port: int = 0
    runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self._receive)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", self.port)
        await site.start()
        self.port = self.runner.addresses[0][1]

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    async def _receive(self, request: web.Request) -> web.Response:
        body = await request.read()
        status, headers, text = self.answer(orjson.loads(body)["notifications"])
        self.calls.append(Call(time.monotonic(), dict(request.headers), body, status))
        return web.Response(status=status, headers=headers, text=text)

    @property
    def delivered(self) -> list[Call]:
        return [call for call in self.calls if 200 <= call.status < 300]

    @property
    def received(self) -> list[dict[str, Any]]:
        """Every notification of an accepted call, in the order they arrived."""
        return [n for call in self.delivered for n in call.notifications]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


# --- the hub's side -------------------------------------------------------------------------------------------------


@asynccontextmanager
async def store_for(settings: Settings, config: WebhookConfig = CONFIG) -> AsyncIterator[WebhookStore]:
    await migrate(settings.pg_dsn, settings.pg_schema)
    store = await WebhookStore.open(settings, config)
    try:
        yield store
    finally:
        await store.close()


@asynccontextmanager
async def webhooks(settings: Settings, config: WebhookConfig = CONFIG) -> AsyncIterator[asyncio.Task[None]]:
    """The filler and the dispatcher in this process, stopped as SIGTERM stops `mmhub webhooks run`."""
    stop = asyncio.Event()
    task = asyncio.create_task(run_webhooks(settings, config, stop))
    try:
        yield task
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def subscribe(store: WebhookStore, party: str, url: str, **filters: Any) -> Subscription:
    return await store.subscribe(party, SubscriptionRequest(url=url, **filters), datetime.now(timezone.utc))


async def until(condition: Callable[[], bool | Awaitable[bool]], what: str, timeout: float = 60.0,
                task: asyncio.Task[None] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while True:
        outcome = condition()
        if outcome if isinstance(outcome, bool) else await outcome:
            return
        if task is not None and task.done():
            task.result()  # raises what stopped it
            raise AssertionError(f"the webhooks service stopped while waiting for {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        await asyncio.sleep(0.1)


async def fetch(settings: Settings, query: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(settings.pg_dsn, server_settings={"search_path": quote_ident(settings.pg_schema)})
    try:
        rows: list[asyncpg.Record] = await conn.fetch(query, *args)
        return rows
    finally:
        await conn.close()


async def audited(settings: Settings) -> set[str]:
    rows = await fetch(settings, "SELECT share_id FROM share_audit WHERE channel = 'webhook'")
    return {row["share_id"] for row in rows}


def assert_in_order_once(received: list[dict[str, Any]], expected: list[dict[str, Any]]) -> None:
    """Each expected notification exactly once; per shipment in version order; seq increasing throughout."""
    ids = [n["notification_id"] for n in received]
    assert len(ids) == len(set(ids)), f"duplicates: {sorted(i for i in ids if ids.count(i) > 1)[:5]}"
    assert set(ids) == {key_of(m) for m in expected}
    seqs = [n["seq"] for n in received]
    assert seqs == sorted(seqs)
    for shipment in {m["shipment_id"] for m in expected}:
        versions = [n["version"] for n in received if n["shipment_id"] == shipment and n["kind"] == "status"]
        assert versions == sorted(versions), f"{shipment}: {versions}"


def cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **ENV, "MMHUB_KAFKA": settings.kafka, "MMHUB_PG_DSN": settings.pg_dsn,
           "MMHUB_NAMESPACE": settings.namespace, "MMHUB_PG_SCHEMA": settings.pg_schema}
    return subprocess.run([sys.executable, "-m", "mmhub.cli", "webhooks", *args], env=env, capture_output=True,
                          text=True, timeout=60)


# --- the tests ------------------------------------------------------------------------------------------------------


async def test_a_shippers_endpoint_receives_signed_ordered_batches_once(hub_settings: NewSettings, tmp_path: Path) -> None:
    """Through the command line: `subscribe` (with and without filters), `run` as a process, SIGTERM."""
    settings = await hub_settings()
    everything, claims_only = Subscriber(), Subscriber()
    await everything.start()
    await claims_only.start()
    made = cli(settings, "subscribe", "--party", SHIPPER, "--url", everything.url)
    assert made.returncode == 0, made.stderr
    printed = dict(line.split("\t") for line in made.stdout.splitlines())
    sid, secret = printed["subscription_id"], printed["secret"]
    filtered = cli(settings, "subscribe", "--party", SHIPPER, "--url", claims_only.url, "--shipment", "SHP-A-1",
                   "--kinds", "claim", "--expires", "2099-01-01T00:00:00Z")
    assert filtered.returncode == 0, filtered.stderr
    filtered_secret = dict(line.split("\t") for line in filtered.stdout.splitlines())["secret"]

    service = HubProcess("webhooks", settings, tmp_path, tmp_path / "webhooks.log", extra_env=ENV, args=["run"])
    service.start()
    try:
        shipped = journeys(SHIPPER, ["SHP-A-1", "SHP-A-2", "SHP-A-3"], 10)
        claims = [claim(SHIPPER, "SHP-A-1", 6, "CLM-SHP-A-1-damage-L2"), claim(SHIPPER, "SHP-A-2", 7, "CLM-SHP-A-2-loss-L1")]
        await produce(settings, "shipper", shipped[:15] + claims + shipped[15:])
        expected = shipped + claims
        await until(lambda: len(everything.received) >= len(expected) and len(claims_only.received) >= 1,
                    "every notification", timeout=90)
        await asyncio.sleep(1.0)  # anything extra would arrive now
        assert service.alive, service.tail()
    finally:
        service.stop()
    assert service.process is not None and service.process.returncode == 0, service.tail()
    await everything.stop()
    await claims_only.stop()

    assert_in_order_once(everything.received, expected)
    for call in everything.calls:
        assert call.headers[SUBSCRIPTION_ID] == sid
        assert verify(secret, call.body, call.headers[SIGNATURE])
        assert SIGNATURE_PREVIOUS not in call.headers
        assert orjson.loads(call.body)["subscription_id"] == sid
    assert [n["notification_id"] for n in claims_only.received] == [key_of(claims[0])]
    assert all(verify(filtered_secret, call.body, call.headers[SIGNATURE]) for call in claims_only.calls)
    first = everything.received[0]
    assert first["view"]["legs"] == [{"sequence": 1, "mode": "1"}, {"sequence": 2, "mode": "2"}]

    # the audit: one row per delivered share (the claim both subscriptions got is one share), with its fields
    assert await audited(settings) == {f"webhook/{key_of(m)}" for m in expected}
    rows = await fetch(settings, "SELECT * FROM share_audit WHERE share_id = $1", f"webhook/{key_of(claims[0])}")
    assert rows[0]["fields"] == ["claims[].claim_id", "claims[].leg", "claims[].liability.sdr", "claims[].status"]
    assert (rows[0]["party"], rows[0]["record_version"], rows[0]["policy_version"]) == (SHIPPER, 6, POLICY.version)
    status_rows = await fetch(settings, "SELECT fields FROM share_audit WHERE share_id = $1", f"webhook/{key_of(shipped[0])}")
    assert status_rows[0]["fields"] == ["legs[].mode", "legs[].sequence", "shipment_id", "status", "version"]


async def test_503_with_retry_after_then_413_still_delivers_each_notification_once(hub_settings: NewSettings) -> None:
    settings = await hub_settings()

    def busy_then_small(notifications: list[dict[str, Any]]) -> Answer:
        if len(subscriber.calls) < 2:
            return 503, {"Retry-After": "1"}, "maintenance"
        if len(notifications) > 5:
            return 413, {}, "at most 5 at a time"
        return 200, {}, ""

    subscriber = Subscriber(busy_then_small)
    await subscriber.start()
    messages = journeys(SHIPPER, ["SHP-B-1", "SHP-B-2", "SHP-B-3"], 10)
    async with store_for(settings) as store:
        made = await subscribe(store, SHIPPER, subscriber.url)
        await produce(settings, "shipper", messages)  # all queued before the first POST: one big first batch
        async with webhooks(settings) as task:
            await until(lambda: len(subscriber.received) >= len(messages), "every notification", task=task)
            await asyncio.sleep(0.5)
    await subscriber.stop()

    assert_in_order_once(subscriber.received, messages)
    statuses = [call.status for call in subscriber.calls]
    assert statuses[:2] == [503, 503] and 413 in statuses, statuses
    # Retry-After: 1 was honoured, both times (the backoff alone would have waited at most 0.3 s)
    first, second, third = subscriber.calls[:3]
    assert second.at - first.at >= 1.0 and third.at - second.at >= 1.0, (second.at - first.at, third.at - second.at)
    assert second.at - first.at < 3.0
    # halved on each 413 down to what the endpoint takes, then kept there
    sizes = [len(call.notifications) for call in subscriber.calls]
    assert sizes[:2] == [30, 30] and sizes[2:6] == [30, 15, 7, 3], sizes
    assert all(len(call.notifications) <= 5 for call in subscriber.delivered)
    for call in subscriber.calls:
        assert verify(made.secret, call.body, call.headers[SIGNATURE])
    assert await audited(settings) == {f"webhook/{key_of(m)}" for m in messages}
    rows = await fetch(settings, "SELECT state, count(*) AS n FROM webhook_outbox GROUP BY state")
    assert {row["state"]: row["n"] for row in rows} == {"delivered": 30}


async def test_a_subscriber_down_for_a_while_gets_everything_in_order_once_back(hub_settings: NewSettings) -> None:
    """Connection refused, the service restarted meanwhile, then the endpoint comes up: nothing lost or repeated."""
    settings = await hub_settings()
    subscriber = Subscriber(port=free_port())  # not listening yet
    first_half = journeys(SHIPPER, ["SHP-C-1", "SHP-C-2"], 6)
    second_half = [status(SHIPPER, shipment, v) for v in range(7, 11) for shipment in ("SHP-C-1", "SHP-C-2")]

    async def refused() -> bool:
        rows = await fetch(settings, "SELECT attempts, last_error FROM webhook_outbox ORDER BY seq LIMIT 1")
        return bool(rows) and rows[0]["attempts"] >= 3 and rows[0]["last_error"] == "refused"

    async with store_for(settings) as store:
        await subscribe(store, SHIPPER, subscriber.url)
        async with webhooks(settings) as task:
            await produce(settings, "shipper", first_half)
            await until(refused, "deliveries refused by the closed port", task=task)
        await produce(settings, "shipper", second_half)  # while no webhooks process runs
        async with webhooks(settings) as task:
            await asyncio.sleep(1.0)
            await subscriber.start()
            try:
                expected = first_half + second_half
                await until(lambda: len(subscriber.received) >= len(expected), "every notification", task=task)
                await asyncio.sleep(0.5)
            finally:
                await subscriber.stop()
        overview = await store.overview(SHIPPER)

    assert_in_order_once(subscriber.received, expected)
    assert (overview[0]["delivered"], overview[0]["pending"], overview[0]["dead"]) == (len(expected), 0, 0)
    assert overview[0]["last_error"] == "refused"  # the outage stays visible, as its class
    assert await audited(settings) == {f"webhook/{key_of(m)}" for m in expected}


async def test_a_notification_refused_every_time_ends_dead_with_its_reason_listed(hub_settings: NewSettings) -> None:
    settings = await hub_settings()
    poison = "SHP-D-2", 3

    def refuse_poison(notifications: list[dict[str, Any]]) -> Answer:
        if any((n["shipment_id"], n["version"]) == poison for n in notifications):
            return 422, {}, f"unknown shipment {poison[0]} version {poison[1]}"
        return 204, {}, ""

    subscriber = Subscriber(refuse_poison)
    await subscriber.start()
    messages = journeys(SHIPPER, ["SHP-D-1", "SHP-D-2", "SHP-D-3"], 4)
    good = [m for m in messages if (m["shipment_id"], m["version"]) != poison]
    async with store_for(settings) as store:
        made = await subscribe(store, SHIPPER, subscriber.url)
        async with webhooks(settings) as task:
            await produce(settings, "shipper", messages)
            await until(lambda: len(subscriber.received) >= len(good), "every other notification", task=task)
            dead = await fetch(settings, "SELECT message_key, attempts, last_error FROM webhook_outbox WHERE state = 'dead'")
    await subscriber.stop()

    # dead rows are skipped, not waited on: everything after the poison still arrives, in order
    assert_in_order_once(subscriber.received, good)
    assert [(row["message_key"], row["attempts"]) for row in dead] == [(f"{SHIPPER}/SHP-D-2/3/status/", CONFIG.max_attempts)]
    assert dead[0]["last_error"] == "http_422 (refused 3 times; gave up)"  # the answer's body is the operator's
    assert await audited(settings) == {f"webhook/{key_of(m)}" for m in good}  # the dead one was never delivered

    listed = cli(settings, "list", "--party", SHIPPER)
    assert listed.returncode == 0, listed.stderr
    assert made.subscription_id in listed.stdout
    assert f"pending 0  delivered {len(good)}  dead 1" in listed.stdout, listed.stdout
    assert "last dead letter: http_422 (refused 3 times; gave up)" in listed.stdout


async def test_after_rotation_deliveries_carry_both_signatures(hub_settings: NewSettings) -> None:
    """Subscribe and rotate through the gateway's routes, as a party would, with its reader token."""
    settings = await hub_settings()
    subscriber = Subscriber()
    await subscriber.start()
    wave_1, wave_2 = journeys(SHIPPER, ["SHP-F-1"], 3), [status(SHIPPER, "SHP-F-1", v) for v in (4, 5, 6)]
    auth = {"Authorization": f"Bearer {TOKENS[SHIPPER]}"}
    async with store_for(settings) as store:
        app = web.Application()
        add_subscription_routes(app, store, load_parties(settings.parties_path))
        async with TestClient(TestServer(app)) as api:
            response = await api.post("/v1/subscriptions", data=orjson.dumps({"url": subscriber.url}), headers=auth)
            made = orjson.loads(await response.read())
            assert response.status == 201, made
            async with webhooks(settings) as task:
                await produce(settings, "shipper", wave_1)
                await until(lambda: len(subscriber.received) >= 3, "the first wave", task=task)
                response = await api.post(f"/v1/subscriptions/{made['subscription_id']}/rotate", headers=auth)
                rotated = orjson.loads(await response.read())
                assert response.status == 200, rotated
                before_rotation = len(subscriber.calls)
                await produce(settings, "shipper", wave_2)
                await until(lambda: len(subscriber.received) >= 6, "the second wave", task=task)
            listed = orjson.loads(await (await api.get("/v1/subscriptions", headers=auth)).read())["subscriptions"]
    await subscriber.stop()

    old, new = made["secret"], rotated["secret"]
    assert old != new
    for call in subscriber.calls[:before_rotation]:
        assert verify(old, call.body, call.headers[SIGNATURE]) and SIGNATURE_PREVIOUS not in call.headers
    for call in subscriber.calls[before_rotation:]:
        assert verify(new, call.body, call.headers[SIGNATURE])
        assert verify(old, call.body, call.headers[SIGNATURE_PREVIOUS])
    assert_in_order_once(subscriber.received, wave_1 + wave_2)
    assert [(row["subscription_id"], row["delivered"]) for row in listed] == [(made["subscription_id"], 6)]


async def test_a_partys_subscription_never_receives_another_partys_messages(hub_settings: NewSettings) -> None:
    settings = await hub_settings()
    shipper_end, consignee_end = Subscriber(), Subscriber()
    await shipper_end.start()
    await consignee_end.start()
    shipper_messages = journeys(SHIPPER, ["SHP-G-1"], 4)
    consignee_messages = [status(CONSIGNEE, "SHP-G-1", v, relation="consignee") for v in range(1, 5)]
    async with store_for(settings) as store:
        await subscribe(store, SHIPPER, shipper_end.url)
        await subscribe(store, CONSIGNEE, consignee_end.url)
        async with webhooks(settings) as task:
            await produce(settings, "consignee", consignee_messages)
            # on the shipper's topic and keyed by the shipper, but shared with the consignee: not for anyone
            await produce(settings, "shipper", [status(CONSIGNEE, "SHP-G-1", 9, relation="consignee")], key=SHIPPER)
            await produce(settings, "shipper", shipper_messages)
            await until(lambda: len(shipper_end.received) >= 4 and len(consignee_end.received) >= 4, "both", task=task)
            await asyncio.sleep(1.0)
    await shipper_end.stop()
    await consignee_end.stop()

    assert_in_order_once(shipper_end.received, shipper_messages)
    assert_in_order_once(consignee_end.received, consignee_messages)
    assert {n["party"] for n in shipper_end.received} == {SHIPPER}
    assert {n["party"] for n in consignee_end.received} == {CONSIGNEE}


async def test_two_webhook_processes_deliver_each_notification_once_in_order(hub_settings: NewSettings) -> None:
    """Fillers share the partitions; one dispatcher leads while the other stands by."""
    settings = await hub_settings()
    subscriber = Subscriber()
    await subscriber.start()
    messages = journeys(SHIPPER, ["SHP-H-1", "SHP-H-2"], 10)
    async with store_for(settings) as store:
        await subscribe(store, SHIPPER, subscriber.url)
        async with webhooks(settings) as one, webhooks(settings) as two:
            await produce(settings, "shipper", messages[:10])
            await asyncio.sleep(0.5)
            await produce(settings, "shipper", messages[10:])
            await until(lambda: len(subscriber.received) >= len(messages), "every notification", task=one)
            await asyncio.sleep(1.0)
            assert not two.done()
    await subscriber.stop()
    assert_in_order_once(subscriber.received, messages)
