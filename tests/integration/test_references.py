"""Reference resolution and who-may-say-what on the real broker: carriers that know only their container."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from connectors.kafka import publish
from hubconf import topics
from tests.integration.hub import (
    JOURNEY_ID,
    caught_up,
    journey_lines,
    offline,
    projected_record,
    read_topic,
    wait_for,
)

pytestmark = pytest.mark.integration

CONTAINER = {"kind": "container", "value": "CSQU3054383"}  # the journey's container, registered by its booking
UNKNOWN = {"kind": "container", "value": "MSKU9070323"}  # no booking names it


def _carriers_know_only_the_container(lines: list[bytes]) -> tuple[list[bytes], list[bytes]]:
    """(what is sent, what resolution must make of it): the carriers' events lose the hub id and name the container."""
    sent, resolved = [], []
    for line in lines:
        doc = orjson.loads(line)
        if doc["source"].startswith("carrier."):
            doc["references"] = [CONTAINER]
            resolved.append(orjson.dumps(doc))
            del doc["shipment_id"]
            sent.append(orjson.dumps(doc))
        else:
            sent.append(line)
            resolved.append(line)
    return sent, resolved


async def test_reference_only_events_sent_before_the_booking_are_parked_then_resolved(hub) -> None:
    settings, worker, sink = hub
    sent, resolved = _carriers_know_only_the_container(journey_lines())
    # The ocean carrier reports on the road leg: refused (with a reason in the record and the DLQ), never applied.
    forged = orjson.loads(next(line for line in journey_lines() if b'"t1-arr"' in line))
    forged.update(source="carrier.oceanline", event_id="oceanline-says-road-arrived")
    forged_line = orjson.dumps(forged)
    # A carrier naming a container no booking has: parked, visible, never dropped.
    stray = orjson.loads(next(line for line in sent if b'"t4-dep"' in line))
    stray.update(event_id="stray-container", references=[UNKNOWN])
    expected = offline(resolved + [forged_line])
    assert expected[JOURNEY_ID].rejected and expected[JOURNEY_ID].status == "delivered"

    reference_only = [line for line in sent if b'"shipment_id"' not in line]
    addressed = [line for line in sent if b'"shipment_id"' in line]
    rng = random.Random(4)
    rng.shuffle(reference_only)
    rng.shuffle(addressed)
    worker.start()
    sink.start()
    # every reference-only event (duplicated) goes out before the booking that registers its container
    await publish(settings, reference_only + reference_only[:5] + [orjson.dumps(stray)])

    async def parked_all() -> bool:
        summaries = await read_topic(settings, settings.topics.parked, expected=1, timeout=2)
        latest = {m.key: m.value for m in summaries}
        return sum(orjson.loads(v)["parked"] for v in latest.values() if v) == len(reference_only) + 1

    await wait_for(parked_all, 90, "every reference-only event parked", worker)
    await publish(settings, addressed + [forged_line])

    await wait_for(lambda: caught_up(settings, expected), 120, "the projection", worker, sink)
    record = await projected_record(settings, JOURNEY_ID)
    assert record == expected[JOURNEY_ID]
    assert [leg.status for leg in record.legs] == ["handed_over", "handed_over", "handed_over", "delivered"]
    assert record.version == len(resolved) + 1  # every event once, the parked duplicates recognised

    [dead] = await read_topic(settings, settings.topics.dlq, expected=1)
    headers = {name: value.decode() for name, value in dead.headers}
    assert dead.value == forged_line
    assert headers[topics.DLQ_CODE] == "not_entitled"
    assert "leg 1 is carried by carrier.sc-road, not carrier.oceanline" in headers[topics.DLQ_REASON]

    summaries = await read_topic(settings, settings.topics.parked, expected=1)
    latest = {m.key.decode(): m.value for m in summaries}
    still = {key: orjson.loads(value) for key, value in latest.items() if value}
    assert list(still) == ["container:MSKU9070323"]
    assert still["container:MSKU9070323"]["events"] == ["carrier.my-haulage/stray-container"]
    assert latest["container:CSQU3054383"] == b""  # released: nothing waits on the journey's container
    # and what an operator sees
    shown = subprocess.run(
        [str(Path(sys.executable).parent / "mmhub"), "parked", "--json"], env=worker.env, capture_output=True, check=True
    )
    [row] = orjson.loads(shown.stdout)
    assert (row["reference"], row["parked"], row["registered_shipments"]) == ("container:MSKU9070323", 1, [])
    assert row["oldest_age_s"] >= 0
    assert worker.alive, worker.tail()


async def test_an_event_whose_reference_nobody_registers_is_dead_lettered_after_the_time_to_live(hub) -> None:
    """On the real broker and worker: the event is parked by one worker process; the next one, started with a short
    time to live, finds it in the book it restored (its report timer looks through a partition's books once), sends
    the book an expire message, and the resolve stage dead-letters the event in its own checkpoint, with its bytes
    and why."""
    settings, worker, _ = hub
    worker.env.update(MMHUB_REPORT_INTERVAL_S="1")
    stray = orjson.loads(next(line for line in _carriers_know_only_the_container(journey_lines())[0] if b'"t4-dep"' in line))
    stray.update(event_id="stray-container", references=[UNKNOWN])
    worker.start()
    await publish(settings, [orjson.dumps(stray)])

    async def latest_summary() -> bytes | None:
        summaries = await read_topic(settings, settings.topics.parked, expected=1, timeout=2)
        return {m.key.decode(): m.value for m in summaries}.get("container:MSKU9070323")

    async def parked() -> bool:
        return bool(await latest_summary())

    await wait_for(parked, 60, "the event parked", worker)  # under the default time to live: 30 days
    worker.stop()
    worker.env.update(MMHUB_PARKED_TTL_S="3")
    worker.start()

    [dead] = await read_topic(settings, settings.topics.dlq, expected=1, timeout=90)
    headers = {name: value.decode() for name, value in dead.headers}
    assert headers[topics.DLQ_CODE] == "parked_expired", headers
    assert "no booking or document registered container:MSKU9070323 within" in headers[topics.DLQ_REASON]
    assert orjson.loads(dead.value)["event_id"] == "stray-container"
    assert headers[topics.ORIGIN].startswith(settings.topics.events + "[")  # the record it came in by

    async def nothing_waits() -> bool:
        return await latest_summary() == b""

    await wait_for(nothing_waits, 30, "the book emptied", worker)
    assert worker.alive, worker.tail()
