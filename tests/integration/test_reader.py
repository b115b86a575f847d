"""Parties read the example journey through `mmhub gateway` on the real broker and database: their views, delegation
and its revocation (over HTTP and by an operator), a live view that receives a new version, and the audit of it all
in `share_audit` and on hub.audit."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable

import aiohttp
import asyncpg
import orjson
import pytest

from connectors.kafka import publish
from connectors.postgres.db import server_settings
from connectors.postgres.migrate import migrate
from hubconf.settings import Settings
from streams.sharing import POLICY
from tests.integration.hub import (
    JOURNEY_ID,
    HubProcess,
    caught_up,
    drop_internal_topics,
    journey_lines,
    offline,
    read_topic,
    wait_for,
)
from tests.unit.connectors.sse_client import next_event

pytestmark = pytest.mark.integration

TOKENS: dict[str, str] = orjson.loads(
    (Path(__file__).resolve().parents[2] / "examples" / "keys" / "tokens.json").read_bytes()
)["tokens"]
SHIPPER, INSURER, RAIL, BROKER = "shipper.chengdu-elec", "insurer.picc", "carrier.cr-rail", "broker.customs-jb"
SHIPMENT = f"/v1/shipments/{JOURNEY_ID}"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def auth(party: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[party]}"}


def leaves(node: Any, path: str = "") -> list[str]:
    if isinstance(node, dict) and node:
        return [p for key, value in node.items() for p in leaves(value, f"{path}.{key}" if path else key)]
    if isinstance(node, list) and node and isinstance(node[0], (dict, list)):
        return [p for item in node for p in leaves(item, f"{path}[]")]
    return [path]


class Running:
    def __init__(self, settings: Settings, base: str, procs: list[HubProcess], http: aiohttp.ClientSession) -> None:
        self.settings, self.base, self.procs, self.http = settings, base, procs, http
        self.reads: Counter[tuple[str, str, str]] = Counter()  # (party, kind, channel) we were sent

    async def get(self, party: str, path: str) -> tuple[int, Any]:
        async with self.http.get(self.base + path, headers=auth(party)) as response:
            body = orjson.loads(await response.read())
            if response.status == 200:
                self.reads[(party, "disclosures" if path.endswith("/disclosures") else "status", "api")] += 1
            return response.status, body

    async def send(self, method: str, party: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = None if body is None else orjson.dumps(body)
        async with self.http.request(method, self.base + path, data=data, headers=auth(party)) as response:
            return response.status, orjson.loads(await response.read())

    def cli(self, *args: str) -> subprocess.CompletedProcess[bytes]:
        env = HubProcess("grant", self.settings, Path("/nonexistent"), Path("/dev/null")).env
        return subprocess.run([sys.executable, "-m", "mmhub.cli", *args], env=env, capture_output=True, timeout=60)


@pytest.fixture
async def running(hub_settings: Callable[..., Awaitable[Settings]], tmp_path: Path) -> AsyncIterator[Running]:
    settings = await hub_settings()
    await migrate(settings.pg_dsn, settings.pg_schema)
    port = free_port()
    procs = [
        HubProcess("worker", settings, tmp_path / "worker-data", tmp_path / "worker.log"),
        HubProcess("sink", settings, tmp_path / "sink-data", tmp_path / "sink.log"),
        HubProcess("gateway", settings, tmp_path / "gateway-data", tmp_path / "gateway.log", args=["--port", str(port)]),
    ]
    for proc in procs:
        proc.start()
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, sock_read=90)) as http:
            base = f"http://127.0.0.1:{port}"

            async def healthy() -> bool:
                try:
                    async with http.get(base + "/healthz") as response:
                        return response.status == 200
                except aiohttp.ClientConnectionError:
                    return False

            await wait_for(healthy, 60, "the gateway", *procs)
            yield Running(settings, base, procs, http)
    finally:
        for proc in procs:
            proc.stop()
        await drop_internal_topics(settings)


async def audit_rows(settings: Settings) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(settings.pg_dsn, server_settings=server_settings(settings, "test-reader"))
    try:
        return list(await conn.fetch(
            "SELECT share_id, party, kind, channel, record_version, fields FROM share_audit WHERE shipment_id = $1",
            JOURNEY_ID,
        ))
    finally:
        await conn.close()


async def test_parties_read_their_views_delegate_follow_live_and_every_share_is_audited(running: Running) -> None:
    lines = journey_lines()
    held_back = lines[-1]  # the last payment: published while a live view is open
    first = offline(lines[:-1])[JOURNEY_ID]
    await publish(running.settings, lines[:-1])
    await wait_for(lambda: caught_up(running.settings, {JOURNEY_ID: first}), 120, "the projection", *running.procs)

    # (a) each party's view
    status, shipper = await running.get(SHIPPER, SHIPMENT)
    assert status == 200 and shipper["version"] == first.version
    assert all("charges" not in leg for leg in shipper["legs"]) and "journey_charges" not in shipper
    assert all("margin" not in i and "carrier_charges" not in i for i in shipper["settlement"]["invoices"])
    assert "payouts" not in shipper["settlement"]

    status, insurer = await running.get(INSURER, SHIPMENT)
    assert status == 200 and insurer["insurance"]["policy"]["insurer"] == INSURER and "settlement" not in insurer

    status, rail = await running.get(RAIL, SHIPMENT)
    assert status == 200 and [leg["sequence"] for leg in rail["legs"]] == [2]

    status, refused = await running.get(BROKER, SHIPMENT)
    status_unknown, unknown = await running.get(BROKER, "/v1/shipments/SHP-2026-999999")
    assert (status, status_unknown) == (404, 404)
    assert refused == {**unknown, "reason": unknown["reason"].replace("SHP-2026-999999", JOURNEY_ID)}

    status, grant = await running.send("POST", SHIPPER, f"{SHIPMENT}/grants",
                                       {"grantee": BROKER, "grades": ["public", "operational"]})
    assert status == 201, grant
    status, broker = await running.get(BROKER, SHIPMENT)
    assert status == 200
    assert {POLICY.grade(p) for p in leaves(broker) if p != "policy_version"} == {"public", "operational"}
    status, revoked = await running.send("DELETE", SHIPPER, f"/v1/grants/{grant['grant_id']}")
    assert (status, revoked["state"]) == (200, "revoked")
    assert (await running.get(BROKER, SHIPMENT))[0] == 404

    # an operator's grant and revocation, straight into Postgres
    made = running.cli("grant", "--shipment", JOURNEY_ID, "--grantor", SHIPPER, "--grantee", BROKER, "--grades", "public")
    assert made.returncode == 0, made.stderr.decode()
    operator_grant = orjson.loads(made.stdout)
    assert (await running.get(BROKER, SHIPMENT))[0] == 200
    too_much = running.cli("grant", "--shipment", JOURNEY_ID, "--grantor", RAIL, "--grantee", BROKER, "--grades", "public,billing")
    assert too_much.returncode == 2 and b"billing" in too_much.stderr
    undone = running.cli("revoke", operator_grant["grant_id"])
    assert undone.returncode == 0, undone.stderr.decode()
    assert orjson.loads(undone.stdout)["revoked_at"] is not None
    assert (await running.get(BROKER, SHIPMENT))[0] == 404

    # (b) the live view: the current version at once, then the new one
    received = []
    async with running.http.get(running.base + f"{SHIPMENT}/live", headers=auth(SHIPPER)) as live:
        assert live.status == 200 and live.headers["Content-Type"] == "text/event-stream"
        now = await next_event(live.content, timeout=30)
        assert now is not None and (now.event, now.id) == ("status", str(first.version))
        received.append(int(now.id))
        started = time.monotonic()
        await publish(running.settings, [held_back])
        newer = await next_event(live.content, timeout=90)
        assert newer is not None and newer.event == "status" and newer.id is not None
        assert int(newer.id) > first.version and orjson.loads(newer.text)["version"] == int(newer.id)
        received.append(int(newer.id))
        print(f"new version reached the live view {time.monotonic() - started:.2f}s after it was published")
    running.reads[(SHIPPER, "status", "sse")] += len(received)

    # (c) every read and push has its audit row (and its copy on hub.audit); the shipper sees who read
    status, disclosures = await running.get(SHIPPER, f"{SHIPMENT}/disclosures")
    assert status == 200 and disclosures["recipients_scope"] == "all"
    listed = {(r["party"], r["kind"], r["channel"]): r for r in disclosures["recipients"]}
    assert {SHIPPER, INSURER, RAIL, BROKER} <= {party for party, _, _ in listed}
    assert listed[(SHIPPER, "status", "sse")]["record_versions"] == received
    assert listed[(BROKER, "status", "api")]["count"] == 2  # once through each grant
    assert all(r["last_shared_at"].endswith("Z") for r in disclosures["recipients"])

    await asyncio.sleep(1.0)  # a push audited just as the live view closed would show here
    rows = await audit_rows(running.settings)
    assert Counter((r["party"], r["kind"], r["channel"]) for r in rows) == running.reads
    assert sorted(r["record_version"] for r in rows if r["channel"] == "sse") == received
    assert all(r["fields"] for r in rows)
    on_topic = await read_topic(running.settings, running.settings.topics.audit, expected=len(rows))
    assert sorted(orjson.loads(m.value)["share_id"] for m in on_topic) == sorted(r["share_id"] for r in rows)
    assert {m.key.decode() for m in on_topic} == {r["party"] for r in rows}
