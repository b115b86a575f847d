"""A shipment whose state outgrows one stored value, on the real broker and RocksDB: past
streams.step.SPLIT_STATE_BYTES the worker stores it as a head and one entry per event (streams.codec). Killed, its
RocksDB directory emptied and started again, the worker restores head and entries from the changelog, and the
shipment goes on: Postgres equals the offline fold of everything published."""

from __future__ import annotations

import shutil

import pytest

from connectors.kafka import publish
from streams.codec import ENTRY_SEPARATOR, Rejection, decode_event, entry_key
from streams.merge import ShipmentState, apply_all
from streams.step import SPLIT_STATE_BYTES
from tests.integration.hub import JOURNEY_ID, caught_up, journey_lines, offline, packed_report, projected_record, read_all, wait_for
from worker.stages import SHIPMENTS

pytestmark = pytest.mark.integration


def _report(number: int) -> bytes:
    """A report of the journey's first leg by its own carrier, listing 500 packages: about 11 KB."""
    return packed_report(f"packages-{number}", 500, number * 100_000)


async def test_a_split_shipment_is_restored_from_the_changelog_and_goes_on(hub, tmp_path) -> None:
    settings, worker, sink = hub
    journey = journey_lines()
    first, later = [_report(n) for n in range(8)], [_report(n) for n in range(8, 10)]
    assert sum(map(len, first)) > SPLIT_STATE_BYTES  # the state passes the bound with the first reports
    worker.start()
    sink.start()
    await publish(settings, journey + first)
    expected = offline(journey + first)
    await wait_for(lambda: caught_up(settings, expected), 120, "the first reports", worker, sink)

    # split: the changelog holds an entry for every event the state holds
    events = [decode_event(line) for line in journey + first]
    state = apply_all(ShipmentState(JOURNEY_ID), [e for e in events if not isinstance(e, Rejection)])
    entries = {
        m.key for m in await read_all(settings, settings.changelog(SHIPMENTS))
        if m.key.startswith(JOURNEY_ID.encode() + ENTRY_SEPARATOR)
    }
    assert entries == {entry_key(JOURNEY_ID.encode(), key) for key in state.copies}

    worker.kill()
    shutil.rmtree(tmp_path / "worker-data")  # cold: every store rebuilt from its changelog
    worker.start()
    await publish(settings, later)
    expected = offline(journey + first + later)
    await wait_for(lambda: caught_up(settings, expected), 120, "the reports after the restore", worker, sink)
    assert await projected_record(settings, JOURNEY_ID) == expected[JOURNEY_ID]
    assert worker.alive, worker.tail()
