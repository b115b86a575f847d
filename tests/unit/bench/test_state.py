"""The pure helpers of bench.state: log and /proc parsing, broker and RocksDB dir names, the restart probe."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import orjson
import pytest

from bench.pipeline import LogWatch, parse_log_time
from bench.state import (
    choose_probe,
    file_kind,
    log_dirs_from_properties,
    memory_from_status,
    partition_of,
    per_shipments,
    rocksdb_files,
    rocksdb_usage,
    milestones,
    stage_of,
)
from hubconf.settings import Settings
from bench.workload import TEMPLATE, _shipment_events, _template, generate
from streams.codec import decode_event
from streams.merge import fold

from ..builders import AUTHORITY


def test_a_worker_log_line_gives_its_local_timestamp_with_milliseconds() -> None:
    line = "[2026-11-28 15:52:51,313] [17471] [INFO] [^Worker]: Ready "
    assert parse_log_time(line) == pytest.approx(datetime(2026, 11, 28, 15, 52, 51).timestamp() + 0.313)
    assert parse_log_time("+Final Subscription-----+") is None
    assert parse_log_time("| topic name |") is None


def test_memory_comes_from_the_kb_lines_of_proc_status_in_bytes() -> None:
    text = "Name:\tmmhub\nVmPeak:\t  900 kB\nVmHWM:\t  2048 kB\nVmRSS:\t    1024 kB\nThreads:\t5\n"
    assert memory_from_status(text) == {"VmPeak": 900 * 1024, "VmHWM": 2048 * 1024, "VmRSS": 1024 * 1024}
    assert memory_from_status(Path("/proc/self/status").read_text())["VmRSS"] > 0


def test_the_broker_data_dirs_are_log_dirs_else_log_dir_else_kafkas_default() -> None:
    assert log_dirs_from_properties("# c\nlog.dirs=/a, /b\nlog.dir=/c\n") == ["/a", "/b"]
    assert log_dirs_from_properties("log.dir = /c\n") == ["/c"]
    assert log_dirs_from_properties("#log.dirs=/x\nnode.id=1\n") == ["/tmp/kafka-logs"]


def test_rocksdb_and_broker_directory_names() -> None:
    assert stage_of("ns.mmhub.merge", "3") == ("merge", 3)
    assert stage_of("state-1-2.mmhub.resolve", "12") == ("resolve", 12)
    assert stage_of("ns.mmhub.merge", "3.bak") is None
    assert stage_of("tables", "0") is None
    topic = "ns.mmhub-shipments-changelog"
    assert partition_of(f"{topic}-7", topic) == 7
    assert partition_of(f"{topic}-7.0f1e2d-delete", topic) is None  # a deleted topic's dir awaiting removal
    assert partition_of("ns.mmhub-deadlines-changelog-7", topic) is None
    assert partition_of(f"{topic}-extra-1", topic) is None


def test_files_in_a_rocksdb_dir_are_split_into_sst_wal_and_other(tmp_path: Path) -> None:
    assert [file_kind(n) for n in ("000009.sst", "000008.log", "LOG", "LOG.old.1", "MANIFEST-000005")] == [
        "SST", "WAL", "other", "other", "other"
    ]
    for group, partition, size in (("ns.mmhub.merge", "0", 8192), ("ns.mmhub.merge", "1", 4096), ("ns.mmhub.resolve", "0", 4096)):
        db = tmp_path / group / partition
        db.mkdir(parents=True)
        (db / "CURRENT").write_bytes(b"MANIFEST-000005\n")
        (db / "000009.sst").write_bytes(b"x" * size)
        (db / "000008.log").write_bytes(b"y" * 4096)
    (tmp_path / "ns.mmhub" / "v1").mkdir(parents=True)  # faust's own data dir: no RocksDB of a stage
    (tmp_path / "ns.mmhub" / "v1" / "000001.sst").write_bytes(b"z" * 65536)
    usage = rocksdb_usage(tmp_path)
    assert set(usage) == {"merge", "resolve"}
    assert usage["merge"] >= 8192 + 4096 + 2 * 4096 and usage["resolve"] >= 2 * 4096
    files = rocksdb_files(tmp_path)
    assert files["SST"] >= 8192 + 4096 + 4096 and files["WAL"] >= 3 * 4096
    assert sum(files.values()) == sum(usage.values())  # the 64 KiB outside a table dir is in neither


def test_figures_scale_linearly_to_100000_shipments() -> None:
    assert per_shipments(2_000, 2_000) == 100_000
    assert per_shipments(5.0, 100_000) == 5.0
    assert per_shipments(1, 1, per=10) == 10


def test_the_log_watch_times_each_milestone_of_the_merge_once_also_across_partial_writes(tmp_path: Path) -> None:
    settings = replace(Settings.from_env(), namespace="ns")
    log = tmp_path / "worker.log"
    log.write_text(
        "[2026-11-28 15:52:50,790] [1] [INFO] Joined group 'ns.mmhub.resolve' (generation 1)\n"
        "[2026-11-28 15:52:50,798] [1] [INFO] Joined group 'ns.mmhub.merge' (generation 1)\n"
        "[2026-11-28 15:52:50,799] [1] [INFO] Revoking previously assigned partitions set() for group ns.mmhub.merge\n"
        "[2026-11-28 15:52:51,000] [1] [INFO] resolve: partitions [0, 1] active\n[2026-11-28 15:52:51,3"
    )
    watch = LogWatch(log, milestones(settings))
    watch.poll()
    assert watch.seen == {"joined": pytest.approx(datetime(2026, 11, 28, 15, 52, 50).timestamp() + 0.798)}
    with log.open("a") as handle:
        handle.write(
            "13] [1] [INFO] merge: partitions [0, 1] active\n"
            "[2026-11-28 15:53:00,000] [1] [INFO] merge: partitions [0, 1] active\n"
        )
    watch.poll()
    assert watch.seen["active"] == pytest.approx(datetime(2026, 11, 28, 15, 52, 51).timestamp() + 0.313)
    with log.open("a") as handle:
        handle.write("no timestamp: Setting newly assigned partitions {TopicPartition(...)} for group ns.mmhub.merge\n")
    before = time.time()
    watch.poll()
    assert watch.seen["assigned"] >= before  # no timestamp of its own: the time it was read


def test_the_probe_adds_exactly_one_version_and_names_the_record_the_worker_must_emit() -> None:
    workload = generate(3, 3, "grouped", seed=42)
    key = workload.keys[3]
    existing = [line for k, line in zip(workload.keys, workload.lines) if k == key]
    journey, _ = _template(TEMPLATE)
    candidates = [orjson.dumps(e) for e in _shipment_events(1, len(journey) + 2, journey, 42)]
    line, version, record = choose_probe(existing, candidates)
    assert line not in existing
    assert orjson.loads(line)["shipment_id"] == key.decode()
    before = fold([decode_event(existing_line) for existing_line in existing], AUTHORITY)[key.decode()]
    assert version == before.version + 1  # exactly one version more than the shipment had
    assert record["version"] == version
    assert record["shipment_id"] == key.decode()
    with pytest.raises(ValueError, match="no candidate"):
        choose_probe(existing, existing)  # nothing new: no probe
