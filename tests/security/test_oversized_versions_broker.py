"""A carrier blows a shipment's version past what the broker takes, on the real broker
(tests/security/test_oversized_versions.py has the handler's side). Six valid reports of about 231 KB from the leg's
own carrier, published together, would make a status message over the status topic's max.message.bytes (1,048,588),
and when the state was stored whole, a state over the changelog's. The merge takes the reports that do not fit
together one at a time (a version each), stores each in its own entry (streams.codec), writes no message over
MAX_OUTPUT_BYTES, and the shipment takes later events: Postgres equals the offline fold of everything published.
(An event that cannot fit even alone is set aside, `too_large`: the handler's test shows it at a lowered bound.)"""

from __future__ import annotations

import orjson
import pytest

from connectors.kafka import publish
from hubconf import topics
from tests.integration.hub import JOURNEY_ID, caught_up, journey_lines, offline, packed_report, projected_record, read_all, wait_for

pytestmark = pytest.mark.integration


def _bloated(number: int) -> bytes:
    """A valid report of the journey's first leg by its own carrier, listing 11,000 packages: about 231 KB."""
    return packed_report(f"bloat-{number}", 11_000, number * 100_000)


async def test_a_version_past_the_broker_s_limit_is_never_written_and_the_shipment_goes_on(hub) -> None:
    settings, worker, sink = hub
    journey = journey_lines()
    bloated = [_bloated(number) for number in range(6)]
    assert all(200_000 < len(line) < 256 * 1024 for line in bloated)
    worker.start()
    sink.start()

    await publish(settings, journey + bloated)
    # the shipment goes on: a later event of its own, and Postgres equals the fold of everything published
    final = orjson.loads(next(line for line in journey if b'"t1-arr"' in line))
    final.update(event_id="after-the-bloat", occurred_at="2026-04-30T00:00:00Z", recorded_at="2026-04-30T00:00:00Z")
    await publish(settings, [orjson.dumps(final)])
    expected = offline(journey + bloated + [orjson.dumps(final)])
    await wait_for(lambda: caught_up(settings, expected), 120, "the projection", worker, sink)
    assert await projected_record(settings, JOURNEY_ID) == expected[JOURNEY_ID]

    statuses = await read_all(settings, settings.topics.status)
    assert statuses and max(len(m.value or b"") for m in statuses) <= topics.MAX_OUTPUT_BYTES
    # a bloated report's own version: the status carries it alone
    assert max(len(m.value or b"") for m in statuses) > 200_000
    # the final event is in Postgres, after the bloated reports on the same partition: the DLQ up to its end now
    # holds whatever they caused, which is nothing
    assert await read_all(settings, settings.topics.dlq) == []
    assert worker.alive, worker.tail()
    assert "MessageSizeTooLargeError" not in worker.log.read_text(errors="replace")
