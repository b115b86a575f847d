"""The sink writes a partition's records only from where Postgres put it, never from a poll that straddled a seek."""

from __future__ import annotations

from dataclasses import dataclass

from connectors.postgres.positions import Positions
from connectors.postgres.rows import Message


@dataclass(frozen=True)
class Msg:
    partition: int
    offset: int
    key: bytes | None = None
    value: bytes | None = None


def offsets(messages: list[Message]) -> list[tuple[int, int]]:
    return [(m.partition, m.offset) for m in messages]


def test_records_of_a_partition_not_yet_seeked_are_not_written() -> None:
    positions = Positions()
    admitted = positions.admit(positions.clock, [Msg(0, 40), Msg(0, 41)])
    assert (admitted.messages, admitted.reseek) == ([], {})


def test_a_poll_that_began_before_the_seek_is_fetched_again_from_the_stored_offset() -> None:
    positions = Positions()
    polled_at = positions.clock
    positions.settle(0, 12)  # the listener ran while the poll was waiting; it may hold records from Kafka's offset
    admitted = positions.admit(polled_at, [Msg(0, 40), Msg(0, 41)])
    assert (admitted.messages, admitted.reseek) == ([], {0: 12})


def test_after_the_seek_records_from_the_stored_offset_on_are_written() -> None:
    positions = Positions()
    positions.settle(0, 12)
    positions.settle(1, 0)
    admitted = positions.admit(positions.clock, [Msg(0, 12), Msg(0, 13), Msg(1, 0)])
    assert offsets(admitted.messages) == [(0, 12), (0, 13), (1, 0)]
    assert admitted.reseek == {}


def test_records_already_written_are_not_written_again() -> None:
    positions = Positions()
    positions.settle(0, 0)
    positions.advance({0: 5})
    admitted = positions.admit(positions.clock, [Msg(0, 3), Msg(0, 4), Msg(0, 5)])
    assert offsets(admitted.messages) == [(0, 5)]


def test_a_revoked_partition_is_not_written_until_settled_again() -> None:
    positions = Positions()
    positions.settle(2, 7)
    positions.forget([2])
    positions.advance({2: 9})
    assert positions.admit(positions.clock, [Msg(2, 9)]).messages == []
    positions.settle(2, 9)
    assert offsets(positions.admit(positions.clock, [Msg(2, 9)]).messages) == [(2, 9)]
