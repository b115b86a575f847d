"""A reference's book past what the broker takes, on the real broker (tests/security/test_reference_books.py has the
handler's side): five carriers each leave one valid 220 KB report waiting on a container nobody has booked. Written
as it grew, the book would be a 1.1 MB changelog record: the broker refuses it and every checkpoint of that
references partition fails. The worker refuses the report that would take the book past MAX_OUTPUT_BYTES (its
bytes to the DLQ, `too_large`), and the journey whose container shares the partition still resolves and projects."""

from __future__ import annotations

import random

import orjson
import pytest
from aiokafka.partitioner import DefaultPartitioner
from stdnum import iso6346

from connectors.kafka import publish
from hubconf import topics
from tests.integration.hub import JOURNEY_ID, caught_up, offline, projected_record, read_topic, wait_for
from tests.integration.test_references import _carriers_know_only_the_container
from tests.integration.hub import journey_lines
from tests.security.merging import sscc

pytestmark = pytest.mark.integration

JOURNEY_BOOK = b"container:CSQU3054383"  # the journey's container, registered by its booking


def _container_beside(book: bytes, partitions: int) -> str:
    """A valid container number nobody books whose book is on the same references partition as `book`'s."""
    partitioner = DefaultPartitioner()
    every = list(range(partitions))
    target = partitioner(book, every, every)
    for serial in range(1_000_000):
        body = f"MSKU{serial:06d}"
        number = body + iso6346.calc_check_digit(body)
        if partitioner(f"container:{number}".encode(), every, every) == target:
            return number
    raise AssertionError("no container number on that partition")


def _bloated(number: int, container: str) -> bytes:
    """A valid reference-only tracking report of `container` from its own carrier, listing 10,500 packages."""
    line = next(line for line in journey_lines() if b'"t1-arr"' in line)
    doc = orjson.loads(line)
    del doc["shipment_id"]
    doc.update(source=f"carrier.filler{number}", event_id=f"fill-{number}", references=[{"kind": "container", "value": container}])
    doc["payload"]["ssccs"] = [sscc(number * 100_000 + serial) for serial in range(10_500)]
    return orjson.dumps(doc)


async def test_a_full_book_is_refused_and_its_partition_goes_on(hub) -> None:
    settings, worker, sink = hub
    container = _container_beside(JOURNEY_BOOK, settings.partitions)
    bloated = [_bloated(number, container) for number in range(5)]
    assert all(200_000 < len(line) < 256 * 1024 for line in bloated)
    sent, resolved = _carriers_know_only_the_container(journey_lines())
    expected = offline(resolved)
    worker.start()
    sink.start()

    await publish(settings, bloated)
    [dead] = await read_topic(settings, settings.topics.dlq, expected=1, timeout=120)
    headers = {name: value.decode() for name, value in dead.headers}
    assert headers[topics.DLQ_CODE] == "too_large"
    assert f"container:{container}" in headers[topics.DLQ_REASON]
    assert orjson.loads(dead.value or b"")["event"]["event_id"] in {f"fill-{n}" for n in range(5)}  # as it came in

    # the journey's carriers know only their container, whose book is on the same partition: it still resolves
    reference_only = [line for line in sent if b'"shipment_id"' not in line]
    addressed = [line for line in sent if b'"shipment_id"' in line]
    random.Random(7).shuffle(reference_only)
    await publish(settings, reference_only + addressed)
    await wait_for(lambda: caught_up(settings, expected), 120, "the projection", worker, sink)
    assert await projected_record(settings, JOURNEY_ID) == expected[JOURNEY_ID]

    summaries = await read_topic(settings, settings.topics.parked, expected=1)
    latest = {m.key.decode(): m.value for m in summaries}
    waiting = orjson.loads(latest[f"container:{container}"] or b"{}")
    assert waiting["parked"] == 4  # four of the five wait; the book is under the bound
    assert worker.alive, worker.tail()
