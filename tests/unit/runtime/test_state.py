"""The overlay's reads, its two levels (a handler call, a checkpoint) and the coalescing of its changelog; the
partition database's atomic write, its positions, and its lock (a real RocksDB in a temporary directory)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runtime.api import MemoryStore, Staged
from runtime.state import OverlayStore, PartitionState, StoreLocked, hold_data_dir

keys = st.binary(min_size=1, max_size=3)
# one operation: put a value, or delete (None)
operations = st.lists(st.tuples(keys, st.one_of(st.none(), st.binary(max_size=4))), max_size=40)


def apply(store: MemoryStore | OverlayStore, ops: list[tuple[bytes, bytes | None]]) -> None:
    for key, value in ops:
        if value is None:
            store.delete(key)
        else:
            store.put(key, value)


@given(base=st.dictionaries(keys, st.binary(max_size=4), max_size=10), calls=st.lists(operations, max_size=5))
def test_the_overlay_reads_as_the_reference_store_and_its_changes_bring_the_base_there(
    base: dict[bytes, bytes], calls: list[list[tuple[bytes, bytes | None]]]
) -> None:
    """Over any base, after any handler calls: every read equals a MemoryStore given the same writes, and the
    coalesced changes (one per key) applied to the base give that same store."""
    reference = MemoryStore(dict(base))
    overlay = OverlayStore(MemoryStore(dict(base)))
    for ops in calls:
        apply(reference, ops)
        apply(overlay, ops)
        overlay.keep_call()
        assert list(overlay.items()) == list(reference.items())
        assert all(overlay.get(key) == reference.get(key) for key, _ in ops)
    changes = overlay.changes()
    assert len({key for key, _ in changes}) == len(changes)
    assert {key for key, _ in changes} == {key for ops in calls for key, _ in ops}
    after = MemoryStore(dict(base))
    apply(after, changes)
    assert after.data == reference.data


def test_a_handler_call_that_raises_leaves_no_write_behind() -> None:
    overlay = OverlayStore(MemoryStore({b"a": b"1"}))
    overlay.put(b"a", b"2")
    overlay.keep_call()
    overlay.put(b"a", b"3")
    overlay.delete(b"b")
    assert overlay.get(b"a") == b"3"
    overlay.drop_call()
    assert overlay.get(b"a") == b"2"
    assert overlay.changes() == [(b"a", b"2")]


def test_writes_coalesce_to_the_last_value_or_a_tombstone() -> None:
    overlay = OverlayStore(MemoryStore({b"gone": b"x"}))
    for value in (b"1", b"2", b"3"):
        overlay.put(b"k", value)
    overlay.put(b"gone", b"y")
    overlay.delete(b"gone")
    overlay.keep_call()
    assert overlay.changes() == [(b"gone", None), (b"k", b"3")]
    assert list(overlay.items()) == [(b"k", b"3")]


def test_a_checkpoint_writes_the_stores_and_their_positions_and_survives_a_reopen(tmp_path: Path) -> None:
    state = PartitionState(tmp_path / "g" / "0", ["a", "b"])
    assert state.position("a") == 0
    state.stores["a"].put(b"k", b"v")
    state.stores["b"].put(b"x", b"y")
    state.stores["b"].keep_call()
    state.stores["a"].keep_call()
    state.checkpointed({"a": 7})
    assert state.stores["a"].changes() == []
    state.stores["b"].put(b"x", b"uncommitted")
    state.stores["b"].keep_call()
    state.close()
    again = PartitionState(tmp_path / "g" / "0", ["a", "b"])
    assert (again.position("a"), again.position("b")) == (7, 0)
    assert list(again.stores["a"].items()) == [(b"k", b"v")]
    assert again.stores["b"].get(b"x") == b"y"
    again.wipe()
    assert list(again.stores["a"].items()) == [] and again.position("a") == 0
    again.close()


def test_a_database_held_by_another_process_fails_fast_naming_the_setting(tmp_path: Path) -> None:
    path = tmp_path / "g" / "3"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import sys, time
                from runtime.state import PartitionState
                state = PartitionState(__import__("pathlib").Path({str(path)!r}), ["a"])
                print("held", flush=True)
                sys.stdin.read()
                """
            ),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"held\n"
        with pytest.raises(StoreLocked) as raised:
            PartitionState(path, ["a"])
        message = str(raised.value)
        assert "MMHUB_DATA_DIR" in message and str(path) in message and "\n" not in message
    finally:
        holder.communicate(b"")


def test_the_memtables_share_one_budget_and_flush_to_disk_past_it(tmp_path: Path) -> None:
    """bench.state: 24 databases on RocksDB's defaults held 317 MiB in memtables and their write-ahead logs, none
    flushed, and the worker grew by 1.1 GiB. With a 1 MiB budget, 8 MiB of writes must reach table files."""
    state = PartitionState(tmp_path / "p0", ["shipments"], memory_mb=1)
    value = b"x" * 4096
    for batch in range(64):
        state.write({"shipments": [(f"{batch}-{n}".encode(), value) for n in range(32)]}, {"shipments": batch})
    deadline = time.monotonic() + 10  # a flush runs on RocksDB's background thread
    while not (tables := list((tmp_path / "p0").glob("*.sst"))) and time.monotonic() < deadline:
        time.sleep(0.05)  # while it is open: closing flushes anyway
    state.close()
    assert tables, "nothing was flushed: the memtables are not bounded"
    reopened = PartitionState(tmp_path / "p0", ["shipments"], memory_mb=1)
    assert reopened.stores["shipments"].get(b"63-31") == value and reopened.position("shipments") == 63
    reopened.close()


def test_a_data_dir_held_by_another_worker_fails_at_once_and_is_free_once_it_exits(tmp_path: Path) -> None:
    """Fresh-clone CI at 4fc2522: a second worker on the first one's MMHUB_DATA_DIR was given partitions the first no
    longer held, so no RocksDB lock stopped it. The directory itself is locked, for the life of the process."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import sys; from pathlib import Path; from runtime.state import hold_data_dir; "
            f"held = hold_data_dir(Path({str(tmp_path)!r})); print('held', flush=True); sys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"held\n"
        with pytest.raises(StoreLocked) as raised:
            hold_data_dir(tmp_path)
        assert str(raised.value) == (
            f"{tmp_path} is locked by another process: give each worker its own MMHUB_DATA_DIR (a worker holds it)"
        )
    finally:
        holder.communicate(b"")
    hold_data_dir(tmp_path).close()  # the holder exited: free again


def test_staged_writes_are_read_at_once_and_reach_the_store_only_when_applied() -> None:
    under = MemoryStore({b"a": b"1", b"b": b"2"})
    staged = Staged(under)
    staged.put(b"c", b"3")
    staged.delete(b"a")
    assert (staged.get(b"a"), staged.get(b"b"), staged.get(b"c")) == (None, b"2", b"3")
    assert list(staged.items()) == [(b"b", b"2"), (b"c", b"3")]
    assert under.data == {b"a": b"1", b"b": b"2"}  # nothing written underneath yet
    staged.apply()
    assert under.data == {b"b": b"2", b"c": b"3"}
