"""bench.pipeline's window opens when the stage the workload waits for takes its partitions: the time of that
stage's "partitions [...] active" line in the worker's log (bench.pipeline.LogWatch, also bench.state's)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from bench.pipeline import LogWatch, active_marker


def test_the_window_opens_at_the_time_its_own_stage_says_it_is_active(tmp_path: Path) -> None:
    log = tmp_path / "worker.log"
    watch = LogWatch(log, {"active": active_marker("merge")})
    watch.poll()  # no log yet
    assert watch.seen == {}
    log.write_bytes(
        b"[2026-12-04 20:19:25,101] [1] [INFO] connect: partitions [3] active\n"
        b"[2026-12-04 20:19:25,102] [1] [INFO] remerge: partitions [3] active\n"
        b"[2026-12-04 20:19:25,313] [1] [INFO] merge: partitions [0, 1"
    )
    watch.poll()
    assert watch.seen == {}  # other stages' lines, and the merge's half written
    with log.open("ab") as handle:
        handle.write(b", 2] active\n[2026-12-04 20:19:26,000] [1] [INFO] merge: partitions [] active\n")
    watch.poll()
    assert watch.seen == {"active": pytest.approx(datetime(2026, 12, 4, 20, 19, 25).timestamp() + 0.313)}  # the first
