"""A stage's state for one input partition: RocksDB underneath, the writes of the current checkpoint on top.

Layout: one RocksDB per (consumer group, input partition), `<data dir>/<group>/<partition>`, with one column family
per store and one (`mmhub.meta`) for each store's changelog position. A partition is the unit the group assigns,
restores and checkpoints, so one database per partition lets a checkpoint write every store of the partition and
their changelog positions in ONE atomic WriteBatch, and lets a worker close (and lock) exactly the partitions it holds.

The overlay has two levels: what the handler call now running wrote (dropped if the handler raises) and what the
checkpoint has taken in so far (dropped if its transaction aborts). A key written many times between two checkpoints
is one entry: one changelog record, the last value, or a tombstone for a delete.
"""

from __future__ import annotations

import fcntl
import functools
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Iterable, Iterator, Mapping, Protocol, Sequence

from rocksdict import Options, Rdict, WriteBatch, WriteBufferManager

from hubconf.settings import DEFAULT_STATE_MEMORY_MB

META = "mmhub.meta"  # the column family of the stores' changelog positions (key: the store's name)
# In META: when (ms since the epoch) the local copy last held everything its changelogs held (a checkpoint of this
# member, the end of a restore). A tombstone written since then stays in the changelog at least delete.retention.ms;
# a copy older than that may miss a delete the compaction has dropped since (runtime.loop._restore wipes it).
SYNCED_AT = b"\x00synced_at_ms"

Change = tuple[bytes, bytes | None]  # a key and its new value, None for a delete


class StoreLocked(RuntimeError):
    """Another process holds this data directory, or this partition's RocksDB."""


def hold_data_dir(path: Path) -> IO[bytes]:
    """Lock `path` (MMHUB_DATA_DIR) for this process until it exits (or the returned file is closed). A second
    worker on the same directory fails here, at once, whichever partitions the group would give it: each
    partition's RocksDB lock alone catches it only when both happen to be given the same partition."""
    path.mkdir(parents=True, exist_ok=True)
    handle = (path / ".lock").open("ab")
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise StoreLocked(
            f"{path} is locked by another process: give each worker its own MMHUB_DATA_DIR (a worker holds it)"
        ) from None
    return handle


class Readable(Protocol):
    """What the overlay reads underneath it: a RocksDB column family, or a MemoryStore in unit tests."""

    def get(self, key: bytes) -> bytes | None: ...

    def items(self) -> Iterable[tuple[bytes, bytes]]: ...


@dataclass
class OverlayStore:
    """A runtime.api.Store over `base`: reads see every write of the checkpoint so far at once."""

    base: Readable
    pending: dict[bytes, bytes | None] = field(default_factory=dict)  # the checkpoint's writes, coalesced
    call: dict[bytes, bytes | None] = field(default_factory=dict)  # the running handler call's writes

    def get(self, key: bytes) -> bytes | None:
        for layer in (self.call, self.pending):
            if key in layer:
                return layer[key]
        return self.base.get(key)

    def put(self, key: bytes, value: bytes) -> None:
        self.call[key] = value

    def delete(self, key: bytes) -> None:
        self.call[key] = None

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        merged: dict[bytes, bytes | None] = dict(self.base.items())
        merged.update(self.pending)
        merged.update(self.call)
        return iter(sorted((key, value) for key, value in merged.items() if value is not None))

    def keep_call(self) -> None:
        """The handler returned: its writes join the checkpoint."""
        self.pending.update(self.call)
        self.call.clear()

    def drop_call(self) -> None:
        """The handler raised: none of its writes happened."""
        self.call.clear()

    def changes(self) -> list[Change]:
        """The checkpoint's writes, one per key, in key order (the changelog records to send)."""
        return sorted(self.pending.items())

    def drop(self) -> None:
        self.pending.clear()
        self.call.clear()


@dataclass(frozen=True)
class _Family:
    """A RocksDB column family as the overlay reads it (raw mode: bytes keys and values)."""

    family: Rdict

    def get(self, key: bytes) -> bytes | None:
        value = self.family.get(key)
        return value if isinstance(value, bytes) else None

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        for key, value in self.family.items():
            if isinstance(key, bytes) and isinstance(value, bytes):
                yield key, value


WAL_BYTES = 64 << 20  # past this a database flushes its oldest memtables, so its write-ahead log stays short
MEMTABLE_BYTES = 16 << 20  # one column family's memtable


@functools.cache
def _memtables(budget_mb: int) -> WriteBufferManager:
    """The one budget all the databases of this process share for their memtables (a flush past it)."""
    return WriteBufferManager(budget_mb << 20, False)


def _options(budget_mb: int) -> Options:
    options = Options(raw_mode=True)
    options.create_if_missing(True)
    options.create_missing_column_families(True)
    options.set_write_buffer_manager(_memtables(budget_mb))
    options.set_max_total_wal_size(WAL_BYTES)
    return options


def _family_options(budget_mb: int) -> Options:
    options = Options(raw_mode=True)
    options.set_write_buffer_manager(_memtables(budget_mb))
    options.set_write_buffer_size(MEMTABLE_BYTES)
    return options


def partition_path(data_dir: Path, group: str, partition: int) -> Path:
    return data_dir / group / str(partition)


class PartitionState:
    """The stores of one input partition, open on their RocksDB (locked by this process until `close`)."""

    def __init__(self, path: Path, stores: Sequence[str], memory_mb: int = DEFAULT_STATE_MEMORY_MB) -> None:
        self.path = path
        self._names = tuple(stores)
        self._memory_mb = memory_mb
        self._db = self._open()
        self.stores = {name: OverlayStore(_Family(self._db.get_column_family(name))) for name in self._names}

    def _open(self) -> Rdict:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        families = {name: _family_options(self._memory_mb) for name in (*self._names, META)}
        try:
            return Rdict(str(self.path), options=_options(self._memory_mb), column_families=families)
        except Exception as error:  # rocksdict raises a bare Exception: tell a held lock from the rest
            if "lock" in str(error).lower():
                raise StoreLocked(
                    f"{self.path} is locked by another process: give each worker its own MMHUB_DATA_DIR ({error})"
                ) from None
            raise

    def position(self, store: str) -> int:
        """The next changelog offset this database has not seen (0: nothing restored or written yet)."""
        raw = self._db.get_column_family(META).get(store.encode())
        return int(raw) if raw is not None else 0

    def synced_at_ms(self) -> int | None:
        """When the local copy last held everything its changelogs held (None: not known)."""
        raw = self._db.get_column_family(META).get(SYNCED_AT)
        return int(raw) if raw is not None else None

    def has_positions(self) -> bool:
        """Whether anything was ever restored or written here."""
        return any(self.position(name) for name in self._names)

    def write(
        self, changes: Mapping[str, Iterable[Change]], positions: Mapping[str, int], synced_at_ms: int | None = None
    ) -> None:
        """Write changes to the stores and their new changelog positions, atomically (and, given, when the copy was
        last in step with its changelogs)."""
        batch = WriteBatch(raw_mode=True)
        meta = self._db.get_column_family_handle(META)
        for store, store_changes in changes.items():
            handle = self._db.get_column_family_handle(store)
            for key, value in store_changes:
                if value is None:
                    batch.delete(key, handle)
                else:
                    batch.put(key, value, handle)
        for store, offset in positions.items():
            batch.put(store.encode(), str(offset).encode(), meta)
        if synced_at_ms is not None:
            batch.put(SYNCED_AT, str(synced_at_ms).encode(), meta)
        self._db.write(batch)

    def checkpointed(self, positions: Mapping[str, int]) -> None:
        """The checkpoint's transaction committed: its writes go down to RocksDB with the changelog positions."""
        self.write(
            {name: store.changes() for name, store in self.stores.items()}, positions, int(time.time() * 1000)
        )
        for store in self.stores.values():
            store.drop()

    def drop(self) -> None:
        """Forget every write not checkpointed (an aborted transaction, a revocation)."""
        for store in self.stores.values():
            store.drop()

    def wipe(self) -> None:
        """Delete the local copy (its changelog was recreated or truncated below it): restore from the start."""
        self.close()
        shutil.rmtree(self.path)
        self._db = self._open()
        self.stores = {name: OverlayStore(_Family(self._db.get_column_family(name))) for name in self._names}

    def close(self) -> None:
        """Close the database (and release its lock: a column family's handle keeps it open, so they go first)."""
        self.stores = {}
        self._db.close()
