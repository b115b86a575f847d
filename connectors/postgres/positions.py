"""Which consumed messages the sink may write: only those read from the positions Postgres chose, in order.

aiokafka starts fetching a newly assigned partition (from Kafka's committed offset) before the rebalance
listener has seeked it to the offset stored in Postgres (aio-libs/aiokafka#738). A batch polled across that
moment can hold records from the wrong position: written, they could move the stored offset past a gap. So a
partition's records count only once the listener has settled it, and only from a poll that began after that.
Pure bookkeeping: the sink calls it under the lock it shares with the listener.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from connectors.postgres.rows import Message


@dataclass(frozen=True)
class Admitted:
    messages: list[Message]
    reseek: dict[int, int]  # partition -> offset to fetch again from


@dataclass
class Positions:
    """Per settled partition: the next offset to write and when (in settle ticks) it was settled."""

    _next: dict[int, int] = field(default_factory=dict)
    _settled_at: dict[int, int] = field(default_factory=dict)
    _clock: int = 0

    @property
    def clock(self) -> int:
        """Read before each poll and hand to `admit`, so it can tell what was fetched before a settle."""
        return self._clock

    def settle(self, partition: int, next_offset: int) -> None:
        """The listener has seeked `partition` to `next_offset`: records from there on may be written."""
        self._clock += 1
        self._next[partition] = next_offset
        self._settled_at[partition] = self._clock

    def forget(self, partitions: Sequence[int]) -> None:
        """Revoked partitions: nothing more of theirs is written until they are assigned and settled again."""
        for partition in partitions:
            self._next.pop(partition, None)
            self._settled_at.pop(partition, None)

    def admit(self, polled_at: int, messages: Sequence[Message]) -> Admitted:
        """The messages to write, and the partitions to seek back because this poll straddled their settle.

        Dropped: unsettled partitions (their settle will position them), partitions settled during the poll
        (fetched maybe before the seek; fetched again from the settled offset), and anything before the next
        offset to write (already written).
        """
        keep: list[Message] = []
        reseek: dict[int, int] = {}
        for message in messages:
            partition = message.partition
            if partition not in self._next:
                continue
            if self._settled_at[partition] > polled_at:
                reseek[partition] = self._next[partition]
            elif message.offset >= self._next[partition]:
                keep.append(message)
        return Admitted(keep, reseek)

    def advance(self, next_offsets: dict[int, int]) -> None:
        """After a batch is committed: its partitions continue from where it ended."""
        for partition, offset in next_offsets.items():
            if partition in self._next:
                self._next[partition] = max(self._next[partition], offset)
