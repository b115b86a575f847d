"""The stored-offsets loop writes a partition's records only from where Postgres put it, never from a poll that
straddled a seek, and stores for each partition of a batch the offset after its last record."""

from __future__ import annotations

import asyncio
import logging

import pytest

from runtime.api import Record
from runtime.stored_offsets import MIRROR_EVERY_S, Positions, mirror_due, next_offsets, patiently

STATUS, SHARE = "hub.shipment.status", "hub.share.shipper.P1"


def msg(partition: int, offset: int, topic: str = STATUS) -> Record:
    return Record(topic, partition, offset, None, None)


def offsets(records: list[Record]) -> list[tuple[str, int, int]]:
    return [(r.topic, r.partition, r.offset) for r in records]


def test_records_of_a_partition_not_yet_seeked_are_not_written() -> None:
    positions = Positions()
    admitted = positions.admit(positions.clock, [msg(0, 40), msg(0, 41)])
    assert (admitted.records, admitted.reseek) == ([], {})


def test_a_poll_that_began_before_the_seek_is_fetched_again_from_the_stored_offset() -> None:
    positions = Positions()
    polled_at = positions.clock
    positions.settle((STATUS, 0), 12)  # the listener ran while the poll was waiting; it may hold Kafka's offset
    admitted = positions.admit(polled_at, [msg(0, 40), msg(0, 41)])
    assert (admitted.records, admitted.reseek) == ([], {(STATUS, 0): 12})


def test_after_the_seek_records_from_the_stored_offset_on_are_written() -> None:
    positions = Positions()
    positions.settle((STATUS, 0), 12)
    positions.settle((STATUS, 1), 0)
    admitted = positions.admit(positions.clock, [msg(0, 12), msg(0, 13), msg(1, 0)])
    assert offsets(admitted.records) == [(STATUS, 0, 12), (STATUS, 0, 13), (STATUS, 1, 0)]
    assert admitted.reseek == {}


def test_records_already_written_are_not_written_again() -> None:
    positions = Positions()
    positions.settle((STATUS, 0), 0)
    positions.advance({(STATUS, 0): 5})
    admitted = positions.admit(positions.clock, [msg(0, 3), msg(0, 4), msg(0, 5)])
    assert offsets(admitted.records) == [(STATUS, 0, 5)]


def test_a_revoked_partition_is_not_written_until_settled_again() -> None:
    positions = Positions()
    positions.settle((STATUS, 2), 7)
    positions.forget([(STATUS, 2)])
    positions.advance({(STATUS, 2): 9})
    assert positions.admit(positions.clock, [msg(2, 9)]).records == []
    positions.settle((STATUS, 2), 9)
    assert offsets(positions.admit(positions.clock, [msg(2, 9)]).records) == [(STATUS, 2, 9)]


def test_the_same_partition_number_of_two_topics_is_two_partitions() -> None:
    positions = Positions()
    positions.settle((STATUS, 0), 5)
    polled_at = positions.clock
    positions.settle((SHARE, 0), 3)  # a new share topic assigned during the poll: its records are fetched again
    admitted = positions.admit(polled_at, [msg(0, 5), msg(0, 1, SHARE)])
    assert offsets(admitted.records) == [(STATUS, 0, 5)]
    assert admitted.reseek == {(SHARE, 0): 3}


def test_each_partition_resumes_one_past_its_last_record() -> None:
    records = [msg(5, 7), msg(2, 40), msg(5, 8), msg(5, 2, SHARE)]
    assert next_offsets(records) == {(STATUS, 2): 41, (STATUS, 5): 9, (SHARE, 5): 3}


def test_the_kafka_mirror_waits_a_second_while_batches_keep_coming_and_catches_up_when_idle() -> None:
    assert not mirror_due(True, False, MIRROR_EVERY_S / 2)  # a batch a few ms after the last mirror: no round trip
    assert mirror_due(True, False, MIRROR_EVERY_S)
    assert mirror_due(True, True, 0.0)  # nothing more came: lag tools see the stage caught up at once
    assert not mirror_due(False, True, 10 * MIRROR_EVERY_S)  # nothing new to mirror


async def test_a_connect_timeout_is_retried_with_a_reason_that_says_what_it_was(caplog: pytest.LogCaptureFixture) -> None:
    """A Postgres that never answers fails asyncpg's connect with a bare TimeoutError, whose text is empty: the
    warning said "Postgres unavailable (TimeoutError: )"."""
    calls = []

    async def attempt() -> str:
        calls.append(1)
        if len(calls) == 1:
            raise TimeoutError()
        return "written"

    with caplog.at_level(logging.WARNING, logger="runtime.stored_offsets"):
        assert await patiently(attempt, asyncio.Event()) == "written"
    [warning] = [r.getMessage() for r in caplog.records if "Postgres unavailable" in r.getMessage()]
    assert "TimeoutError: no answer within MMHUB_PG_CONNECT_TIMEOUT_S" in warning
