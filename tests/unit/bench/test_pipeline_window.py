"""bench.pipeline's window: it opens when the worker's first stage takes its partitions, read from the worker's log."""

from __future__ import annotations

from pathlib import Path

from bench.pipeline import ActiveWatch


def test_the_pipeline_window_opens_when_a_stage_says_it_holds_its_partitions(tmp_path: Path) -> None:
    log = tmp_path / "worker.log"
    watch = ActiveWatch(log, "merge")
    assert not watch.seen()  # no log yet
    log.write_bytes(b"[2026-12-04 20:19:25,101] [1] [INFO] [^Worker]: Starting...\n[x] merge: partitions [0, 1")
    assert not watch.seen()  # the line is half written
    with log.open("ab") as handle:
        handle.write(b", 2] active\n")
    assert watch.seen()
    assert not watch.seen()  # said once: nothing new since
    with log.open("ab") as handle:
        handle.write(b"[x] connect: partitions [3] active\n[x] remerge: partitions [3] active\n")
    assert not watch.seen()  # another stage's
    with log.open("ab") as handle:
        handle.write(b"[x] merge: partitions [] active\n")
    assert watch.seen()
