"""The electronic release on the real broker: `hub.release` carries the trade journey's release exactly once, only
after the import inspection hold clears and the consignee has surrendered the eBL, whatever came before and after."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from connectors.kafka import publish, read_jsonl, scramble
from tests.integration.hub import caught_up, offline, projected_record, read_all, read_topic, wait_for

pytestmark = pytest.mark.integration

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SHIPMENT = "SHP-2026-000046"
CUSTOMS_RELEASE, SURRENDER, LAST = b'"cus-im-released"', b'"mtd-1-surrender"', b'"t2-gtot"'


async def test_the_release_reaches_hub_release_once_after_the_hold_clears_and_the_ebl_is_surrendered(hub) -> None:
    settings, worker, sink = hub
    lines = read_jsonl(EXAMPLES / "journey-trade.jsonl")
    held_back = (CUSTOMS_RELEASE, SURRENDER, LAST)
    before = [line for line in lines if not any(marker in line for marker in held_back)]
    [customs_release] = [line for line in lines if CUSTOMS_RELEASE in line]
    [surrender] = [line for line in lines if SURRENDER in line]
    [last] = [line for line in lines if LAST in line]
    worker.start()
    sink.start()

    async def step(sent: list[bytes], published: list[bytes]) -> None:
        await publish(settings, published)
        expected = offline(sent)
        await wait_for(lambda: caught_up(settings, expected), 120, "the projection", worker, sink)
        assert await projected_record(settings, SHIPMENT) == expected[SHIPMENT]

    # 1. everything but the customs release and the surrender, shuffled and duplicated: the inspection hold is open
    sent = list(before)
    await step(sent, scramble(before, duplicates=10, seed=16))
    held = await projected_record(settings, SHIPMENT)
    assert held.release is not None and held.release.status == "blocked"
    assert held.customs[1].holds[0].cleared_by is None

    # 2. the consignee surrenders the eBL: still held by customs
    sent.append(surrender)
    await step(sent, [surrender])
    assert (await projected_record(settings, SHIPMENT)).release.status == "blocked"  # type: ignore[union-attr]

    # 3. customs releases the import: the release is issued, at this version
    sent.append(customs_release)
    await step(sent, [customs_release])
    issued = await projected_record(settings, SHIPMENT)
    assert issued.release is not None and issued.release.status == "issued"
    [message] = await read_topic(settings, settings.topics.release, expected=1)
    body = orjson.loads(message.value)
    assert message.key == SHIPMENT.encode()
    assert (body["kind"], body["record_version"]) == ("release", issued.version)
    assert body["release"] == issued.release.model_dump(mode="json")

    # 4. duplicates of events the release does not rest on, then the delivery: a later version, no second release
    repeats = [line for line in before if b'"tracking"' in line or b'"identity"' in line]
    sent.append(last)
    await step(sent, repeats + [last])
    final = await projected_record(settings, SHIPMENT)
    assert final.version > issued.version and final.release == issued.release
    releases = await read_all(settings, settings.topics.release)
    assert [orjson.loads(m.value)["record_version"] for m in releases] == [issued.version]
