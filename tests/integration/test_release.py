"""The electronic release on the real broker: `hub.release` carries the trade journey's release exactly once, only
after the import inspection hold clears and the consignee has surrendered the eBL, whatever came before and after:
customs then withdrawing its release (a retraction) and releasing again leaves the release issued, noted, never sent
twice."""

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

    async def step(sent: list[bytes], published: list[bytes], *, same_release: bool = True) -> None:
        await publish(settings, published)
        expected = offline(sent)
        await wait_for(lambda: caught_up(settings, expected), 120, "the projection", worker, sink)
        found = await projected_record(settings, SHIPMENT)
        # the offline fold has no memory of an issued release: after a retraction only its release part differs
        assert found.model_copy(update={"release": None}) == expected[SHIPMENT].model_copy(update={"release": None})
        assert not same_release or found.release == expected[SHIPMENT].release

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

    # 5. customs withdraws its release (a retraction): the release stays issued, with a note, and nothing is sent
    withdrawn = orjson.loads(customs_release)
    withdrawn.update(retracted=True, revised_at="2026-04-14T12:00:00Z")
    sent.append(orjson.dumps(withdrawn))
    await step(sent, [sent[-1]], same_release=False)
    noted = await projected_record(settings, SHIPMENT)
    assert offline(sent)[SHIPMENT].release.status == "blocked"  # type: ignore[union-attr]  # the events alone
    assert noted.release is not None and noted.release.status == "issued"
    assert noted.release.model_copy(update={"since_issued": []}) == issued.release
    assert noted.release.since_issued == ["customs no longer holds: the import declaration at MYPKG is under_inspection"]

    # 6. customs releases the import again: the conditions hold again, the same release stands and is not re-sent
    again = orjson.loads(customs_release)
    again.update(event_id="cus-im-released-2", occurred_at="2026-04-14T13:00:00Z", recorded_at="2026-04-14T13:03:00Z")
    sent.append(orjson.dumps(again))
    await step(sent, [sent[-1]], same_release=False)  # offline, the release rests on the second customs release
    final = await projected_record(settings, SHIPMENT)
    assert final.release == issued.release and final.version == noted.version + 1
    # the status topic's version is committed in the transaction that would carry a release: reading up to the end
    # offsets after the projection reached it is the positive marker that nothing else was sent
    releases = await read_all(settings, settings.topics.release)
    assert [orjson.loads(m.value)["record_version"] for m in releases] == [issued.version]
