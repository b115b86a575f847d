"""bench.crash's verdict: each check fails on the fault it names, and passes on a clean run."""

from __future__ import annotations

from collections import Counter

import orjson

from bench.crash import Observed, judge

RECORD = {"shipment_id": "S1", "version": 2}


def status(version: int, fingerprints: list[str], record: dict[str, object] | None = None) -> bytes:
    body = {"record": {**(record or RECORD), "version": version}, "applied": [{"fingerprint": f, "event": {}} for f in fingerprints]}
    return orjson.dumps(body)


def clean() -> Observed:
    observed = Observed()
    observed.take_status(b"S1", status(1, ["a"]))
    observed.take_status(b"S1", status(2, ["b"]))
    observed.claims[b"claim-1"] += 1
    return observed


EXPECTED = {b"S1": {**RECORD, "version": 2}}
FINALS = {b"S1": 2}


def test_a_clean_run_passes_and_balances_its_input() -> None:
    verdict = judge(clean(), EXPECTED, FINALS, ["a", "b", "a"])
    assert not verdict.failed, verdict.lines
    assert any("input 3 = applied 2 + duplicates 1 + dead-lettered 0" in line for line in verdict.lines)


def test_a_version_read_twice_fails() -> None:
    observed = clean()
    observed.take_status(b"S1", status(2, []))
    verdict = judge(observed, EXPECTED, FINALS, ["a", "b"])
    assert verdict.failed and any(line.startswith("FAIL versions") for line in verdict.lines)


def test_a_version_going_backwards_fails() -> None:
    observed = clean()
    observed.take_status(b"S1", status(1, []))
    verdict = judge(observed, EXPECTED, FINALS, ["a", "b"])
    assert verdict.failed and any(line.startswith("FAIL versions") for line in verdict.lines)


def test_an_event_carried_twice_or_lost_fails() -> None:
    twice = clean()
    twice.applied["a"] += 1
    assert judge(twice, EXPECTED, FINALS, ["a", "b"]).failed
    lost = clean()
    assert any(line.startswith("FAIL events") for line in judge(lost, EXPECTED, FINALS, ["a", "b", "c"]).lines)


def test_a_record_unlike_the_fold_fails() -> None:
    observed = Observed()
    observed.take_status(b"S1", status(2, ["a", "b"], {"shipment_id": "S1", "status": "wrong"}))
    verdict = judge(observed, EXPECTED, FINALS, ["a", "b"])
    assert verdict.failed and verdict.lines[0].startswith("FAIL records")


def test_a_doubled_claim_fails() -> None:
    observed = clean()
    observed.claims = Counter({b"claim-1": 2})
    verdict = judge(observed, EXPECTED, FINALS, ["a", "b"])
    assert verdict.failed and any(line.startswith("FAIL claims") for line in verdict.lines)
