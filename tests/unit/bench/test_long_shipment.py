"""bench.long_shipment reads the shipment back from a real RocksDB at each mark, whole and split, and stops if what it
reads is not the state the last version made."""

from __future__ import annotations

import pytest

import bench.long_shipment as long_shipment
from typing import Callable

from streams import codec
from streams.merge import ShipmentState


def _rows(out: str) -> list[list[str]]:
    return [line.split() for line in out.splitlines() if line.strip()[:1].isdigit()]


def test_the_cold_read_of_a_whole_and_of_a_split_shipment(capsys: pytest.CaptureFixture[str]) -> None:
    assert long_shipment.main(["--reports", "120", "--marks", "20"]) == 0
    rows = _rows(capsys.readouterr().out)
    assert [row[0] for row in rows] == ["20", "120"]
    whole_kib, at_key_kib = float(rows[0][2]), float(rows[0][3])
    assert at_key_kib == whole_kib  # 40 events: stored whole
    whole_kib, at_key_kib = float(rows[1][2]), float(rows[1][3])
    assert at_key_kib < whole_kib / 2  # 140 events, past SPLIT_STATE_BYTES: a head and entries
    assert all(float(row[-2]) > 0 for row in rows)  # the cold read was timed


def test_a_store_that_reads_back_another_state_stops_the_bench(monkeypatch: pytest.MonkeyPatch) -> None:
    real = codec.read_state

    def short_one_copy(get: Callable[[bytes], bytes | None], shipment_id: str) -> ShipmentState | None:
        state = real(get, shipment_id)
        assert state is not None
        return ShipmentState(state.shipment_id, dict(list(state.copies.items())[1:]), state.seen, state.superseded)

    monkeypatch.setattr(long_shipment, "read_state", short_one_copy)
    with pytest.raises(SystemExit, match="is not the one the last version made"):
        long_shipment.main(["--reports", "5", "--marks", "5"])
