"""The scale-out benchmark's bookkeeping: stalls, double effects and the worker's log lines, without Kafka."""

from __future__ import annotations

from bench.scaleout import (
    LogMark,
    Seen,
    audit_versions,
    compress,
    last_report,
    longest_gap,
    parse_partition_set,
    parse_worker_log,
    partition_gaps,
    partition_of,
    processing,
)


def seen(key: str, version: int, created: float, partition: int = 0) -> Seen:
    return Seen(key.encode(), version, partition, created, created + 0.01)


def test_a_resent_version_is_a_repeat_and_an_older_one_goes_backwards() -> None:
    messages = [
        seen("A", 1, 0.0),
        seen("A", 2, 1.0),
        seen("A", 2, 2.0),  # a replay re-sends the current version
        seen("A", 1, 3.0),  # an older version after a newer one: a consumer would go back
        seen("A", 3, 4.0),
        seen("B", 1, 0.5),
    ]
    audit = audit_versions(messages, {b"A": 3, b"B": 1})
    assert audit.messages == 6
    assert audit.distinct == 4
    assert audit.repeated == {(b"A", 2): 2, (b"A", 1): 2}
    assert audit.extra_messages == 2
    assert audit.backwards == [(b"A", 1, 2)]
    assert audit.above_final == []


def test_a_version_above_the_final_one_is_a_double_effect() -> None:
    audit = audit_versions([seen("A", 1, 0.0), seen("A", 4, 1.0)], {b"A": 3})
    assert audit.above_final == [(b"A", 4, 3)]
    assert audit.backwards == [] and audit.repeated == {}


def test_longest_gap_counts_the_window_edges_and_ignores_instants_outside() -> None:
    assert longest_gap([1.0, 2.0, 2.5], start=0.0, end=6.0) == (3.5, 2.5)  # silent from 2.5 to the end
    assert longest_gap([4.0, 5.0], start=0.0, end=5.0) == (4.0, 0.0)  # nothing until 4.0
    assert longest_gap([-3.0, 1.0, 9.0], start=0.0, end=2.0) == (1.0, 0.0)
    assert longest_gap([], start=1.0, end=1.0) == (0.0, 1.0)


def test_a_partition_is_measured_only_while_it_had_work_left() -> None:
    partitions = 4
    keys = [f"SHP-{i}".encode() for i in range(40)]
    by_partition: dict[int, list[bytes]] = {}
    for key in keys:
        by_partition.setdefault(partition_of(key, partitions), []).append(key)
    p, (a, b) = next((p, ks[:2]) for p, ks in sorted(by_partition.items()) if len(ks) >= 2)
    finals = {a: 2, b: 1}
    messages = [
        Seen(a, 1, p, 1.0, 1.0),
        Seen(b, 1, p, 1.5, 1.5),  # b is final
        Seen(a, 2, p, 5.0, 5.0),  # a is final: the partition is done at 5.0, after a 3.5 s silence
        Seen(a, 2, p, 30.0, 30.0),  # a late re-send: the silence before it is not a stall
    ]
    gaps = partition_gaps(messages, finals, partitions, start=0.0)
    assert gaps[p] == (3.5, 1.5)
    assert set(gaps) == set(range(partitions))


def test_keys_land_where_aiokafkas_default_partitioner_puts_them() -> None:
    from aiokafka.partitioner import DefaultPartitioner

    partitioner = DefaultPartitioner()
    for i in range(200):
        key = f"SHP-BENCH-{i:06d}".encode()
        assert partition_of(key, 8) == partitioner(key, list(range(8)), list(range(8)))


def test_partition_sets_and_their_short_form() -> None:
    assert parse_partition_set("{0-3, 5, 7}") == {0, 1, 2, 3, 5, 7}
    assert parse_partition_set("{4}") == {4}
    assert parse_partition_set("{}") == set()
    assert compress({0, 1, 2, 5, 7, 8}) == "0-2,5,7-8"
    assert compress([]) == "-"


TP = "TopicPartition(topic='{}', partition={})"
LOG = f"""\
[2026-11-28 15:52:50,790] [17471] [INFO] (Re-)joining group ns.mmhub.connect
[2026-11-28 15:52:50,794] [17471] [INFO] (Re-)joining group ns.mmhub.merge
[2026-11-28 15:52:50,800] [17471] [INFO] Setting newly assigned partitions {{{TP.format("ns.carrier.dcsa.raw", 2)}}} for group ns.mmhub.connect
[2026-11-28 15:52:50,805] [17471] [INFO] Setting newly assigned partitions {{{TP.format("ns.hub.events", 6)}, {TP.format("ns.hub.events", 0)}, {TP.format("ns.hub.events", 2)}, {TP.format("ns.hub.events", 1)}}} for group ns.mmhub.merge
[2026-11-28 15:52:51,100] [17471] [INFO] connect: partitions [2] active
[2026-11-28 15:52:51,280] [17471] [INFO] merge: partitions [0, 1, 2, 6] active
[2026-11-28 15:52:56,000] [17471] [INFO] applied=10 duplicates=0 dead_lettered=0 {{}} refused=0 connected=0 forwarded=0 resolved=0 parked_now=0 oldest_parked_s=- versions_emitted=7 batches=3 largest_batch=5 warm_hits=1 warm_misses=0
[2026-11-28 15:52:58,000] [17471] [INFO] Revoking previously assigned partitions {{{TP.format("ns.hub.events", 6)}}} for group ns.mmhub.merge
[2026-11-28 15:53:01,000] [17471] [INFO] applied=20 duplicates=3 dead_lettered=0 {{}} refused=0 connected=0 forwarded=0 resolved=0 parked_now=0 oldest_parked_s=- versions_emitted=15 batches=6 largest_batch=5 warm_hits=1 warm_misses=0
[2026-11-28 15:53:02,876] [17471] [INFO] [^Worker]: Signal received: 15 (15)
[2026-11-28 15:53:02,876] [17471] [INFO] [^Worker]: Stopping...
[2026-11-28 15:53:04,908] [17471] [INFO] LeaveGroup request succeeded
[2026-11-28 15:53:04,910] [17471] [INFO] LeaveGroup request succeeded
"""


def test_the_worker_log_gives_the_merge_stages_milestones_and_assignment() -> None:
    marks = parse_worker_log(LOG, "ns.hub.events", "ns.mmhub.merge")
    assert [m.kind for m in marks] == ["join", "assigned", "ready", "revoked", "signal", "stopping", "left"]
    assert marks[1].detail == "0,1,2,6"
    assert marks[2].detail == "0,1,2,6"
    assert marks[3].detail == "6"
    assert round(marks[2].at - marks[0].at, 3) == 0.486
    assert last_report(LOG) == (20, 3, 15)
    assert last_report("nothing here") is None


def test_a_worker_processes_once_active_on_its_last_assignment() -> None:
    marks = parse_worker_log(LOG, "ns.hub.events", "ns.mmhub.merge")
    assert processing(marks[:3])  # assigned {0-2, 6}, then active on them
    assert not processing(marks[:2])  # assigned, still restoring
    reassigned = [*marks[:3], LogMark(marks[2].at + 1, "assigned", "4,5")]
    assert not processing(reassigned)  # active before the last assignment does not count
    assert processing([*reassigned, LogMark(marks[2].at + 2, "ready", "4,5")])
    assert not processing([LogMark(0.0, "assigned", ""), LogMark(1.0, "ready", "")])  # given nothing
