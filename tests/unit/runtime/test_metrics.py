"""runtime.metrics: what each call moves, the port each process serves on, and the /metrics it serves."""

from __future__ import annotations

import gc
import os
import socket
import subprocess
import sys
import urllib.request

import pytest
from prometheus_client import REGISTRY

from runtime import metrics


def value(name: str, **labels: str) -> float:
    found = REGISTRY.get_sample_value(name, labels)
    return 0.0 if found is None else found


def test_a_checkpoint_counts_records_per_topic_its_batch_and_its_duration() -> None:
    before_in = value("mmhub_records_in_total", stage="t-ck", topic="a")
    metrics.observe_checkpoint("t-ck", 0.02, {"a": 3, "b": 2}, {"postgres": 4})
    assert value("mmhub_records_in_total", stage="t-ck", topic="a") == before_in + 3
    assert value("mmhub_records_in_total", stage="t-ck", topic="b") == 2
    assert value("mmhub_records_out_total", stage="t-ck", destination="postgres") == 4
    assert value("mmhub_batch_records_sum", stage="t-ck") == 5
    assert value("mmhub_batch_records_bucket", stage="t-ck", le="5.0") == 1
    assert value("mmhub_batch_records_bucket", stage="t-ck", le="2.0") == 0
    assert value("mmhub_commit_seconds_count", stage="t-ck") == 1


def test_events_and_dead_letters_by_reason() -> None:
    applied = value("mmhub_events_total", outcome="applied")
    metrics.count_events(5, 2, {"bad_json": 1, "t-reason": 3})
    assert value("mmhub_events_total", outcome="applied") == applied + 5
    assert value("mmhub_dead_lettered_total", reason="t-reason") == 3


def test_lag_per_partition_never_negative_and_forgotten_on_revoke() -> None:
    metrics.observe_lag("t-group", {("t", 0): 7, ("t", 1): -2})
    assert value("mmhub_consumer_lag", group="t-group", topic="t", partition="0") == 7
    assert value("mmhub_consumer_lag", group="t-group", topic="t", partition="1") == 0
    metrics.forget_lag("t-group", [("t", 0), ("t", 9)])
    assert REGISTRY.get_sample_value("mmhub_consumer_lag", {"group": "t-group", "topic": "t", "partition": "0"}) is None


def test_parked() -> None:
    metrics.observe_parked(4, 120.5)
    assert value("mmhub_parked_events") == 4 and value("mmhub_parked_oldest_age_seconds") == 120.5
    metrics.observe_parked(0, None)
    assert value("mmhub_parked_oldest_age_seconds") == 0


def test_each_process_has_its_own_default_port_and_zero_turns_metrics_off() -> None:
    assert len(set(metrics.DEFAULT_PORTS.values())) == len(metrics.DEFAULT_PORTS)
    assert metrics.port_for("sink", {}) == metrics.DEFAULT_PORTS["sink"]
    assert metrics.port_for("sink", {"MMHUB_METRICS_PORT": "19000"}) == 19000
    assert metrics.port_for("gateway", {"MMHUB_METRICS_PORT": "0"}) == 0
    with pytest.raises(ValueError, match="MMHUB_METRICS_PORT"):
        metrics.port_for("sink", {"MMHUB_METRICS_PORT": "70000"})


def test_serve_exposes_the_registry_at_slash_metrics() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    metrics.serve(port)
    metrics.quarantined("t-serve", ["topic-x"])
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    assert 'mmhub_quarantined_total{stage="t-serve",topic="topic-x"} 1.0' in text
    assert "_created" not in text


def test_a_process_whose_metrics_port_is_taken_stops_at_once_naming_the_setting() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "mmhub.cli", "sink"],
            env={**os.environ, "MMHUB_METRICS_PORT": str(port), "MMHUB_KAFKA": "127.0.0.1:1"},
            capture_output=True, text=True, timeout=60,
        )
    assert done.returncode == 1
    assert done.stderr.strip() == (
        f"mmhub sink: cannot serve metrics on MMHUB_METRICS_PORT={port}: [Errno 98] Address already in use"
    )


def test_the_collector_watch_times_each_collection_by_generation() -> None:
    watch = metrics.CollectorWatch()
    before = value("mmhub_gc_pause_seconds_count", generation="2")
    gc.callbacks.append(watch)
    try:
        garbage: list[object] = []
        garbage.append(garbage)  # a cycle only the collector frees
        del garbage
        gc.collect()
    finally:
        gc.callbacks.remove(watch)
    assert watch.runs[2] >= 1 and watch.collected[2] >= 1
    assert watch.seconds[2] >= watch.longest[2] > 0
    assert value("mmhub_gc_pause_seconds_count", generation="2") >= before + watch.runs[2]
    assert "gen2: " in watch.summary()


def test_watch_collector_registers_one_callback_per_process() -> None:
    first = metrics.watch_collector()
    assert metrics.watch_collector() is first
    assert sum(1 for callback in gc.callbacks if callback is first) == 1
