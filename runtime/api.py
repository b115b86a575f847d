"""What a stage handler sees and returns. Pure data and protocols: no Kafka, no RocksDB, no I/O.

A stage is a declaration (`Stage`: its input topics, its state stores) and a handler. The runtime hands the handler
the records of ONE input partition at a time, with that partition's state stores, and takes back the messages to
produce. Everything the handler returns and every store write it makes is committed together with the input
offsets at the next checkpoint (one Kafka transaction per input partition under exactly-once), or not at all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterator, Mapping, Protocol, Sequence

from hubconf import topics as topic_names

Headers = tuple[tuple[str, bytes], ...]


@dataclass(frozen=True, slots=True)
class Record:
    """One consumed Kafka record, as the handler sees it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Headers = ()
    timestamp_ms: int = 0  # the record's timestamp; on intake topics the broker's (LogAppendTime)

    def header(self, name: str) -> bytes | None:
        return next((value for header, value in self.headers if header == name), None)

    @property
    def where(self) -> str:
        return f"{self.topic}[{self.partition}]@{self.offset}"

    def source_headers(self) -> Headers:
        """Where a dead letter of this record came from: its topic, partition and offset, and its origin if any."""
        origin = self.header(topic_names.ORIGIN)
        return (
            (topic_names.DLQ_SOURCE_TOPIC, self.topic.encode()),
            (topic_names.DLQ_SOURCE_PARTITION, str(self.partition).encode()),
            (topic_names.DLQ_SOURCE_OFFSET, str(self.offset).encode()),
            *(((topic_names.ORIGIN, origin),) if origin is not None else ()),
        )


@dataclass(frozen=True, slots=True)
class Out:
    """One message to produce: a full topic name (namespace included), its key, value and headers."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: Headers = ()


class Store(Protocol):
    """One state store's view for one partition. Writes are seen by later reads at once and are made durable
    (RocksDB and the store's changelog topic) at the next checkpoint."""

    def get(self, key: bytes) -> bytes | None: ...

    def put(self, key: bytes, value: bytes) -> None: ...

    def delete(self, key: bytes) -> None: ...

    def items(self) -> Iterator[tuple[bytes, bytes]]: ...


@dataclass
class MemoryStore:
    """A Store in a dict: for unit tests of handlers, and the reference the RocksDB store is tested against."""

    data: dict[bytes, bytes] = field(default_factory=dict)

    def get(self, key: bytes) -> bytes | None:
        return self.data.get(key)

    def put(self, key: bytes, value: bytes) -> None:
        self.data[key] = value

    def delete(self, key: bytes) -> None:
        self.data.pop(key, None)

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        return iter(sorted(self.data.items()))


@dataclass
class Staged:
    """A store's writes held back until `apply`, read at once: a part of a handler's work that must be stored whole or
    not at all (the merge's one shipment, which may fail after some of its writes)."""

    store: Store
    writes: dict[bytes, bytes | None] = field(default_factory=dict)  # None: a delete

    def get(self, key: bytes) -> bytes | None:
        return self.writes[key] if key in self.writes else self.store.get(key)

    def put(self, key: bytes, value: bytes) -> None:
        self.writes[key] = value

    def delete(self, key: bytes) -> None:
        self.writes[key] = None

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        merged: dict[bytes, bytes | None] = dict(self.store.items())
        merged.update(self.writes)
        return iter(sorted((key, value) for key, value in merged.items() if value is not None))

    def apply(self) -> None:
        """The writes held back go to the store underneath."""
        for key, value in self.writes.items():
            if value is None:
                self.store.delete(key)
            else:
                self.store.put(key, value)


class Handler(Protocol):
    """Turns the records of one input partition (in offset order) into messages to produce, reading and writing
    that partition's stores. It must not raise for one bad record: it dead-letters it (an `Out` to the DLQ with the
    original bytes and a reason) and goes on. An exception is a hub bug: the runtime dead-letters the batch."""

    def __call__(self, records: Sequence[Record], stores: Mapping[str, Store]) -> list[Out]: ...


@dataclass(frozen=True)
class Stage:
    """A stage's declaration. Its consumer group is `group`; its stores' changelog topics are `changelogs[store]`,
    co-partitioned with the inputs (store partition p holds what input partition p wrote)."""

    name: str
    group: str
    inputs: tuple[str, ...]
    handler: Handler
    changelogs: Mapping[str, str] = field(default_factory=dict)
    # called with the input partitions this worker loses (a rebalance, a fence): drop caches of them
    on_revoked: Callable[[set[int]], None] | None = None
    # A stage whose handler defers work to the checkpoint (the merge: one version per shipment per checkpoint, not
    # per handler call) gives both of these. `flush(partition, stores)` yields, chunk by chunk, the messages of the
    # work deferred for that input partition, writing its stores as a handler does; the runtime runs it before each
    # checkpoint of the partition, giving the event loop its turn between chunks, and its messages go into the same
    # checkpoint. `discard(partition)` forgets the deferred work whenever the runtime drops the partition's work not
    # checkpointed (a revocation, a restart from the committed position, a fence, an activation).
    flush: Callable[[int, Mapping[str, Store]], Iterator[list[Out]]] | None = None
    discard: Callable[[int], None] | None = None

    def __post_init__(self) -> None:
        if (self.flush is None) != (self.discard is None):
            raise ValueError(f"stage {self.name}: a stage that defers work needs both flush and discard")

    def checkpoint_batch(self, records: Sequence[Record], stores: Mapping[str, Store]) -> list[Out]:
        """What the runtime makes of `records` when they are all one checkpoint takes in, without Kafka: the
        handler's messages, then the flush of the records' partitions (bench.profile_merge, handler tests). The
        records must be of one input partition per call of the handler, as the runtime hands them: here, one
        partition."""
        return take_and_flush(self.handler, self.flush, records, stores)


def take_and_flush(
    handler: Callable[[Sequence[Record], Mapping[str, Store]], list[Out]],
    flush: Callable[[int, Mapping[str, Store]], Iterator[list[Out]]] | None,
    records: Sequence[Record],
    stores: Mapping[str, Store],
) -> list[Out]:
    """`handler`'s messages for `records`, then every chunk of `flush` for the records' partitions: what a deferring
    stage makes of records that one checkpoint takes in (`Stage.checkpoint_batch`, and a deferring handler called
    as a plain one)."""
    out = handler(records, stores)
    if flush is not None:
        for partition in sorted({record.partition for record in records}):
            for chunk in flush(partition, stores):
                out += chunk
    return out
