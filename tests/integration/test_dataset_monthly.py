"""The monthly duty (`mmhub dataset monthly`, the compose file's `datasets` service) on the real broker and database:
it publishes the previous month once, and neither a restart nor a second run nor new data in the projection makes
it publish a different release of that month; a run that died between keeping a month and sending it sends the
kept document, not a new cut. Each month is audited once and debits no privacy budget (the monthly release is the
k/m release, without noise)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Awaitable, Callable, Iterable

import asyncpg
import orjson
import pytest

from bench.datasets import performance_log
from bench.workload import AUTHORITY
from connectors.postgres.db import server_settings
from connectors.postgres.migrate import migrate
from hubconf.settings import Settings
from mmhub.dataset import monthly, performance_release, publish_month
from schemas.record import ShipmentRecord
from streams.codec import Rejection, decode_event
from streams.merge import fold
from tests.integration.hub import read_topic

pytestmark = pytest.mark.integration

MARCH = datetime(2026, 3, 4, 6, tzinfo=timezone.utc)  # the duty's clock: February is the previous month


def _records(lines: list[bytes]) -> list[ShipmentRecord]:
    events = [decode_event(line) for line in lines]
    assert not any(isinstance(e, Rejection) for e in events)
    return list(fold(events, AUTHORITY).values())  # type: ignore[arg-type]


async def _connect(settings: Settings) -> asyncpg.Connection:
    return await asyncpg.connect(settings.pg_dsn, server_settings=server_settings(settings, "test-dataset-monthly"))


async def _project(settings: Settings, records: Iterable[ShipmentRecord]) -> None:
    """The records as the sink keeps them (the `shipments` table the data set is read from)."""
    conn = await _connect(settings)
    try:
        await conn.executemany(
            "INSERT INTO shipments (shipment_id, status, shipper, mto, version, updated_at, record)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb)",
            [
                (r.shipment_id, r.status, r.booking.shipper.party_id if r.booking else None, r.responsible_operator,
                 r.version, r.updated_at, r.model_dump_json())
                for r in records
            ],
        )  # fmt: skip
    finally:
        await conn.close()


async def _rows(settings: Settings, query: str) -> list[asyncpg.Record]:
    conn = await _connect(settings)
    try:
        return list(await conn.fetch(query))
    finally:
        await conn.close()


async def test_the_monthly_duty_publishes_a_month_once_across_restarts_and_new_data(
    hub_settings: Callable[..., Awaitable[Settings]],
) -> None:
    settings = await hub_settings()
    await migrate(settings.pg_dsn, settings.pg_schema)
    first_records = _records(performance_log(300, seed=5))
    await _project(settings, first_records)

    # the duty's first tick in March publishes February
    await monthly(settings, 3600, True, lambda: MARCH)
    (sent,) = await _rows(settings, "SELECT month, document, sent_at FROM dataset_monthly")
    february = orjson.loads(sent["document"])
    assert sent["month"] == "2026-02" and sent["sent_at"] is not None
    assert february["month"] == "2026-02" and february["cells"] and february["noise"] is False

    # more February shipments reach the projection; a fresh cut of February would now differ...
    late = _records(performance_log(300, seed=6, first=50_000))
    await _project(settings, late)
    fresh = performance_release([*first_records, *late], "2026-02", None, None)
    assert [c["figures"] for c in fresh["cells"]] != [c["figures"] for c in february["cells"]]
    # ...but a restart of the duty, a second tick and an operator's `publish` of the month send nothing
    await monthly(settings, 3600, True, lambda: MARCH + timedelta(hours=1))
    document, sent_now = await publish_month(settings, "2026-02", MARCH + timedelta(days=1))
    assert document == february and not sent_now

    # a run that kept a month and died before sending it: the next run sends the kept document, not a new cut
    conn = await _connect(settings)
    try:
        await conn.execute("UPDATE dataset_monthly SET sent_at = NULL WHERE month = '2026-02'")
    finally:
        await conn.close()
    document, sent_now = await publish_month(settings, "2026-02", MARCH + timedelta(days=2))
    assert document == february and sent_now

    # the positive marker: April's first tick publishes March, after every February run above
    await monthly(settings, 3600, True, lambda: datetime(2026, 4, 1, 0, 5, tzinfo=timezone.utc))
    messages = await read_topic(settings, settings.topics.datasets_performance, 3)
    by_month: dict[bytes, list[dict[str, object]]] = {}
    for message in messages:  # the months' partitions differ: order only within a month
        by_month.setdefault(message.key, []).append(orjson.loads(message.value))
    assert sorted(by_month) == [b"2026-02", b"2026-03"]
    assert by_month[b"2026-02"] == [february, february]  # the kept document, sent again after the lost send only
    assert [d["month"] for d in by_month[b"2026-03"]] == ["2026-03"]

    # audited once per month as the hub's own publication; no privacy budget spent
    audited = await _rows(
        settings,
        "SELECT party, kind, channel FROM share_audit WHERE shipment_id = 'dataset:performance' ORDER BY shared_at",
    )
    assert [(r["party"], r["kind"], r["channel"]) for r in audited] == [
        ("hub.datasets", "dataset.performance.monthly", "kafka")
    ] * 2
    assert await _rows(settings, "SELECT * FROM dataset_debits") == []
    budgets = await _rows(settings, "SELECT party, spent FROM dataset_budget")
    assert [(r["party"], r["spent"]) for r in budgets] == [("hub.datasets", 0.0)]
    kept = await _rows(settings, "SELECT month FROM dataset_monthly WHERE sent_at IS NOT NULL ORDER BY month")
    assert [r["month"] for r in kept] == ["2026-02", "2026-03"]
