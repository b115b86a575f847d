"""The merge agent's batching: what is waiting goes in one batch, and nothing is acknowledged before it is merged.

A fake stream stands in for faust's: `arrivals` says, per event, how many more are already queued behind it.
"""

from __future__ import annotations

from typing import Any, AsyncIterator

import pytest

from worker.app import Gathering, natural_batches


class FakeQueue:
    def __init__(self) -> None:
        self.waiting = 0

    def empty(self) -> bool:
        return self.waiting == 0


class FakeChannel:
    def __init__(self) -> None:
        self.queue = FakeQueue()


class FakeStream:
    def __init__(self, arrivals: list[int]) -> None:
        self.arrivals = arrivals  # per event: how many more are queued behind it when it is taken
        self.channel = FakeChannel()
        self.enable_acks = True
        self.acked: list[int] = []

    async def events(self) -> AsyncIterator[int]:
        for number, behind in enumerate(self.arrivals):
            self.channel.queue.waiting = behind
            yield number

    async def ack(self, event: int) -> bool:
        self.acked.append(event)
        return True


async def collect(stream: Any, max_events: int) -> list[tuple[list[int], list[int]]]:
    """Each batch, with what had been acknowledged when the agent received it."""
    seen = []
    async for batch in natural_batches(stream, max_events):
        seen.append((list(batch), list(stream.acked)))
    return seen


async def test_a_trickle_is_merged_event_by_event() -> None:
    stream = FakeStream([0, 0, 0])
    assert [batch for batch, _ in await collect(stream, 100)] == [[0], [1], [2]]


async def test_a_backlog_goes_in_one_batch_up_to_the_maximum() -> None:
    stream = FakeStream([4, 3, 2, 1, 0, 0])
    assert [batch for batch, _ in await collect(stream, 100)] == [[0, 1, 2, 3, 4], [5]]
    stream = FakeStream([4, 3, 2, 1, 0])
    assert [batch for batch, _ in await collect(stream, 2)] == [[0, 1], [2, 3], [4]]


async def test_events_are_acknowledged_only_after_their_batch_was_merged() -> None:
    stream = FakeStream([1, 0, 1, 0])
    seen = await collect(stream, 100)
    assert seen == [([0, 1], []), ([2, 3], [0, 1])]  # the second batch arrives once the first is acknowledged
    assert stream.acked == [0, 1, 2, 3]
    assert stream.enable_acks is False  # faust's own ack-on-next-event is off


async def test_a_batch_that_fails_is_not_acknowledged_so_it_is_read_again() -> None:
    stream = FakeStream([1, 0, 0])
    with pytest.raises(RuntimeError):
        async for batch in natural_batches(stream, 100):  # type: ignore[arg-type]
            raise RuntimeError(f"merge failed on {batch}")
    assert stream.acked == []


class ClearingStream(FakeStream):
    """faust empties the queues when a rebalance begins: here, just before event `clear_before` is taken."""

    def __init__(self, arrivals: list[int], clear_before: int, gathering: Gathering) -> None:
        super().__init__(arrivals)
        self.clear_before, self.gathering = clear_before, gathering

    async def events(self) -> AsyncIterator[int]:
        for number, behind in enumerate(self.arrivals):
            if number == self.clear_before:
                self.gathering.drop()
            self.channel.queue.waiting = behind
            yield number


async def test_a_rebalance_drops_the_batch_being_gathered_unacknowledged_and_forgotten() -> None:
    forgotten: list[int] = []
    gathering = Gathering(forgotten.append)
    # events 0-2 are being gathered (more were queued behind them) when the rebalance empties the queue
    stream = ClearingStream([3, 2, 1, 0, 0], clear_before=3, gathering=gathering)
    seen = [batch async for batch in natural_batches(stream, 100, gathering)]  # type: ignore[arg-type]
    assert forgotten == [0, 1, 2]  # the consumer no longer waits for them: the revoke can go on
    assert seen == [[3], [4]]  # what is read after the rebalance starts a new batch
    assert stream.acked == [3, 4]  # the dropped events are never acknowledged, so their offsets are read again


async def test_a_batch_handed_out_is_not_dropped_while_it_is_merged() -> None:
    forgotten: list[int] = []
    gathering = Gathering(forgotten.append)
    stream = FakeStream([1, 0, 0])
    seen = []
    async for batch in natural_batches(stream, 100, gathering):  # type: ignore[arg-type]
        gathering.drop()  # a rebalance begins while the batch is merged: faust waits for its acknowledgements
        seen.append(list(batch))
    assert seen == [[0, 1], [2]]
    assert forgotten == []
    assert stream.acked == [0, 1, 2]
