"""The whole sharing chain on real processes: carriers' events -> worker -> sharing stage -> webhooks -> a
shipper's endpoint, with every delivered share audited in Postgres and on hub.audit.

The webhook and sharing tests each check one stage with hand-made input; this one checks that the stages fit.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Awaitable, Callable

import orjson
import pytest

from connectors.kafka import publish
from connectors.postgres.migrate import migrate
from connectors.webhooks.delivery import SIGNATURE, verify
from hubconf.settings import Settings
from tests.integration.hub import HubProcess, drop_internal_topics, journey_lines, offline, read_topic
from tests.integration.test_webhooks import ENV, SHIPPER, Subscriber, cli, fetch, until

pytestmark = pytest.mark.integration

RATES = {"charges", "payouts", "margin", "carrier_charges", "ledger", "journey_charges", "charges_total"}


def _keys(node: object) -> set[str]:
    if isinstance(node, dict):
        return set(node) | {k for value in node.values() for k in _keys(value)}
    if isinstance(node, list):
        return {k for value in node for k in _keys(value)}
    return set()


async def test_a_shippers_webhook_gets_its_views_of_the_journey_from_the_real_stages(
    hub_settings: Callable[..., Awaitable[Settings]], tmp_path: Path
) -> None:
    settings = await hub_settings()
    await migrate(settings.pg_dsn, settings.pg_schema)
    endpoint = Subscriber()
    await endpoint.start()
    made = cli(settings, "subscribe", "--party", SHIPPER, "--url", endpoint.url, "--kinds", "status")
    assert made.returncode == 0, made.stderr
    secret = dict(line.split("\t") for line in made.stdout.splitlines())["secret"]

    procs = [
        HubProcess("worker", settings, tmp_path / "w", tmp_path / "worker.log"),
        HubProcess("share", settings, tmp_path / "s", tmp_path / "share.log"),
        HubProcess("webhooks", settings, tmp_path / "h", tmp_path / "webhooks.log", extra_env=ENV, args=["run"]),
    ]
    lines = journey_lines()
    final = offline(lines)["SHP-2026-000042"]
    try:
        for proc in procs:
            proc.start()
        # in three parts, each once the shipper has seen the one before, so it gets several versions
        third = len(lines) // 3
        for part in (lines[:third], lines[third : 2 * third], lines[2 * third :]):
            seen = len(endpoint.received)
            await publish(settings, part)
            await until(lambda: len(endpoint.received) > seen, "a view of the new part", timeout=120)

        def got_final() -> bool:
            return any(n["version"] == final.version for n in endpoint.received)

        await until(got_final, "the shipper's view of the final version", timeout=120)
        await asyncio.sleep(1.0)
        for proc in procs:
            assert proc.alive, proc.tail()
    finally:
        for proc in procs:
            proc.stop()
        await endpoint.stop()
        await drop_internal_topics(settings)

    received = endpoint.received
    versions = [n["version"] for n in received]
    assert versions == sorted(set(versions)) and len(versions) >= 2  # ordered, each version once
    assert all(verify(secret, call.body, call.headers[SIGNATURE]) for call in endpoint.calls)
    last = received[-1]["view"]
    assert last["status"] == "delivered" and last["settlement"]["invoices"]
    assert not _keys([n["view"] for n in received]) & RATES  # the shipper never sees carrier rates or margin

    audited = {row["share_id"] for row in await fetch(settings, "SELECT share_id FROM share_audit WHERE channel = 'webhook'")}
    assert audited == {f"webhook/{n['notification_id']}" for n in received}
    on_topic = await read_topic(settings, settings.topics.audit, expected=len(audited), timeout=30)
    assert audited <= {orjson.loads(m.value)["share_id"] for m in on_topic}  # published by the sharing stage
