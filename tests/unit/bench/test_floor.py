"""bench.floor's summary: each mode is compared with the passthrough of its own repetition, not a pooled one."""

from __future__ import annotations

import pytest

from bench.floor import MODES, decode_cost_ms, report
from bench.pipeline import CpuShare, Measurement


def measured(kind: str, repetition: int, seconds: float) -> Measurement:
    return Measurement(kind, repetition, 1000, seconds, CpuShare(broker=0.2, sut=0.5, observer=None, other=0.0))


def test_ratios_pair_each_mode_with_the_passthrough_of_the_same_repetition(capsys: pytest.CaptureFixture[str]) -> None:
    results = [
        # r1: a fast passthrough (10,000/s) and faust at 1,000/s; r2: a slow passthrough (2,000/s), faust at 500/s
        measured("passthrough", 1, 0.1),
        measured("passthrough", 2, 0.5),
        *(measured(mode, 1, 1.0) for mode in MODES),
        *(measured(mode, 2, 2.0) for mode in MODES),
    ]
    report(results, decode_ms=0.02)
    out = capsys.readouterr().out
    faust_row = next(line for line in out.splitlines() if line.strip().startswith("faust "))
    # ratios 0.1 (r1) and 0.25 (r2): the median of the pairs, not 750/6,000 from pooled medians
    assert "0.175 [0.100 .. 0.250]" in faust_row
    assert "750 [500 .. 1,000]" in faust_row
    # CPU per event: 0.5 cores x 1 s / 1,000 events = 0.5 ms (r1), 0.5 x 2 s / 1,000 = 1.0 ms (r2)
    assert "0.750 [0.500 .. 1.000] ms" in faust_row
    assert "at most 50,000 events/s" in out


def test_decode_cost_refuses_a_workload_with_an_invalid_event() -> None:
    with pytest.raises(ValueError, match="invalid event"):
        decode_cost_ms([b'{"not": "an event"}'], rounds=1)
