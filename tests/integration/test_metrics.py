"""Each kind of hub process serves its Prometheus metrics at /metrics, and they move with what it does: the worker
and the sink on a journey, the gateway on its requests. Real processes on the real broker and database; scraped
with curl, as an operator would. The worker and the sink also log in JSON lines here (MMHUB_LOG_FORMAT=json)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Awaitable, Callable

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from connectors.kafka import publish
from connectors.postgres.migrate import migrate
from hubconf.settings import Settings
from tests.integration.hub import (
    JOURNEY_ID,
    HubProcess,
    caught_up,
    drop_internal_topics,
    journey_lines,
    offline,
    projected_record,
    wait_for,
    wait_for_gateway,
)
from tests.integration.test_webhooks import ENV, SHIPPER, Subscriber, free_port, journeys, produce, store_for, subscribe

pytestmark = pytest.mark.integration


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """`curl -s localhost:PORT/metrics`, parsed: (series name, sorted labels) -> value."""
    text = subprocess.run(
        ["curl", "-sf", "--max-time", "5", f"http://127.0.0.1:{port}/metrics"], capture_output=True, text=True
    ).stdout
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def series(scraped: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float | None:
    return scraped.get((name, tuple(sorted(labels.items()))))


async def test_worker_and_sink_metrics_move_with_a_journey(
    hub: tuple[Settings, HubProcess, HubProcess], tmp_path: Path
) -> None:
    settings, worker, sink = hub
    worker_port, sink_port = free_port(), free_port()
    worker.env.update(MMHUB_METRICS_PORT=str(worker_port), MMHUB_REPORT_INTERVAL_S="1", MMHUB_LOG_FORMAT="json")
    sink.env.update(MMHUB_METRICS_PORT=str(sink_port), MMHUB_LOG_FORMAT="json")
    lines = journey_lines()
    expected = offline(lines)
    worker.start()
    sink.start()

    async def serving() -> bool:
        return bool(scrape(sink_port)) and bool(scrape(worker_port))

    await wait_for(serving, 60, "both /metrics endpoints", worker, sink)
    status = settings.topics.status
    before = scrape(sink_port)
    assert series(before, "mmhub_records_in_total", stage="sink", topic=status) is None  # nothing consumed yet

    await publish(settings, lines)
    await wait_for(lambda: caught_up(settings, expected), 120, "the projection", worker, sink)
    record = await projected_record(settings, JOURNEY_ID)

    async def reported() -> bool:
        applied = series(scrape(worker_port), "mmhub_events_total", outcome="applied")
        return applied == record.version

    await wait_for(reported, 30, "the worker's report of the events applied", worker)
    worker_metrics = scrape(worker_port)
    assert series(worker_metrics, "mmhub_events_total", outcome="duplicate") == 0
    assert series(worker_metrics, "mmhub_parked_events") == 0

    sink_metrics = scrape(sink_port)
    consumed = series(sink_metrics, "mmhub_records_in_total", stage="sink", topic=status)
    assert consumed is not None and consumed >= 1
    assert series(sink_metrics, "mmhub_records_out_total", stage="sink", destination="postgres") == consumed
    assert series(sink_metrics, "mmhub_batch_records_sum", stage="sink") == consumed
    assert (series(sink_metrics, "mmhub_commit_seconds_count", stage="sink") or 0) >= 1
    assert (series(sink_metrics, "mmhub_publish_to_status_seconds_count") or 0) >= 1
    lags = {labels: v for (name, labels), v in sink_metrics.items() if name == "mmhub_consumer_lag"}
    assert len(lags) == settings.partitions and set(lags.values()) == {0.0}, lags  # caught up, every partition

    worker.stop()
    sink.stop()
    for process, expected_line in ((sink, "resuming at stored offsets"), (worker, "applied=")):
        logged = [json.loads(line) for line in process.log.read_text().splitlines() if line.strip()]
        assert logged and all(str(line["time"]).endswith("Z") and "level" in line for line in logged)
        assert any(expected_line in str(line["message"]) for line in logged)


@pytest.fixture
async def gateway(
    hub_settings: Callable[..., Awaitable[Settings]], tmp_path: Path
) -> tuple[HubProcess, str, int]:
    settings = await hub_settings()
    await migrate(settings.pg_dsn, settings.pg_schema)
    port, metrics_port = free_port(), free_port()
    process = HubProcess(
        "gateway", settings, tmp_path / "gw-data", tmp_path / "gateway.log",
        extra_env={"MMHUB_METRICS_PORT": str(metrics_port)}, args=["--port", str(port)],
    )
    process.start()
    yield process, f"http://127.0.0.1:{port}", metrics_port
    process.stop()
    await drop_internal_topics(settings)


async def test_gateway_counts_requests_by_route_and_status(gateway: tuple[HubProcess, str, int]) -> None:
    process, base, metrics_port = gateway
    async with aiohttp.ClientSession() as session:
        await wait_for_gateway(session, base, process)
        assert series(scrape(metrics_port), "mmhub_http_requests_total", route="/openapi.json", status="200") is None
        async with session.get(f"{base}/openapi.json") as response:
            assert response.status == 200
        async with session.get(f"{base}/no/such/path/{'x' * 20}") as response:
            assert response.status == 404
        async with session.post(f"{base}/v1/events/canonical", data=b"[]") as response:
            assert response.status == 401  # unsigned

    scraped = scrape(metrics_port)
    assert series(scraped, "mmhub_http_requests_total", route="/openapi.json", status="200") == 1
    assert series(scraped, "mmhub_http_requests_total", route="unmatched", status="404") == 1
    assert series(scraped, "mmhub_http_requests_total", route="/v1/events/{format}", status="401") == 1
    assert series(scraped, "mmhub_http_request_seconds_count", route="/openapi.json") == 1
    assert series(scraped, "mmhub_sse_streams_open") == 0
    assert not any("no/such/path" in str(labels) for _, labels in scraped)


async def test_webhooks_metrics_count_deliveries_retries_and_dead_per_subscription(
    hub_settings: Callable[..., Awaitable[Settings]], tmp_path: Path
) -> None:
    """`mmhub webhooks run` as a process: a subscriber refuses one notification every time (it ends dead after
    MMHUB_WEBHOOKS_MAX_ATTEMPTS=3) and takes the others; the filler's loop counts what it consumed."""
    settings = await hub_settings()
    poison = ("SHP-M-2", 3)

    def refuse_poison(notifications: list[dict[str, object]]) -> tuple[int, dict[str, str], str]:
        if any((n["shipment_id"], n["version"]) == poison for n in notifications):
            return 422, {}, "refused"
        return 204, {}, ""

    subscriber = Subscriber(refuse_poison)
    await subscriber.start()
    messages = journeys(SHIPPER, ["SHP-M-1", "SHP-M-2"], 4)
    good = len(messages) - 1
    metrics_port = free_port()
    service = HubProcess(
        "webhooks", settings, tmp_path, tmp_path / "webhooks.log",
        extra_env={**ENV, "MMHUB_METRICS_PORT": str(metrics_port)}, args=["run"],
    )
    try:
        async with store_for(settings) as store:
            made = await subscribe(store, SHIPPER, subscriber.url)
        sid = made.subscription_id
        service.start()
        await produce(settings, "shipper", messages)

        async def settled() -> bool:
            scraped = scrape(metrics_port)
            return (series(scraped, "mmhub_webhook_delivered_total", subscription=sid) == good
                    and series(scraped, "mmhub_webhook_dead_total", subscription=sid) == 1)

        await wait_for(settled, 90, "every notification delivered or dead", service)
        scraped = scrape(metrics_port)
    finally:
        service.stop()
        await subscriber.stop()
    # the poison was tried 3 times: twice to be tried again (alone or in a batch), then dead
    assert (series(scraped, "mmhub_webhook_retries_total", subscription=sid) or 0) >= 2
    consumed = sum(v for (name, labels), v in scraped.items()
                   if name == "mmhub_records_in_total" and ("stage", "webhooks") in labels)
    assert consumed == len(messages)
