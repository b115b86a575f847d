"""The worker's warm caches (of shipment states, of reference books) may only ever save work, never serve a value
the table no longer holds."""

from __future__ import annotations

from worker.stages import Warm, WarmStates
from streams.merge import ShipmentState, project

from ..builders import AUTHORITY


def warm(shipment_id: str) -> Warm:
    state = ShipmentState(shipment_id)
    return Warm(state, project(state, AUTHORITY), [], True)


def test_a_cached_state_is_served_only_while_the_table_holds_the_bytes_it_came_from() -> None:
    cache = WarmStates()
    entry = warm("SHP-1")
    cache.put(b"SHP-1", b"v1", entry)
    assert cache.get(b"SHP-1", b"v1") is entry
    assert cache.get(b"SHP-1", bytes(b"v1")) is entry  # equal bytes from the store, not the same object
    assert cache.get(b"SHP-1", b"v2") is None  # another worker wrote it after a rebalance: the table wins
    assert cache.get(b"SHP-1", None) is None  # the table lost it (e.g. a reset): nothing stale is served
    assert cache.get(b"SHP-2", b"v1") is None


def test_the_least_recently_used_shipment_leaves_first_when_full() -> None:
    cache = WarmStates(capacity=2)
    cache.put(b"A", b"a", warm("A"))
    cache.put(b"B", b"b", warm("B"))
    assert cache.get(b"A", b"a") is not None  # A is now the most recently used
    cache.put(b"C", b"c", warm("C"))
    assert cache.get(b"B", b"b") is None
    assert cache.get(b"A", b"a") is not None and cache.get(b"C", b"c") is not None
