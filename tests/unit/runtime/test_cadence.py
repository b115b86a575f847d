"""When a partition's checkpoint begins (runtime.loop.begin_in): one at a time, at least the gap apart, at once
under a backlog."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from runtime.loop import begin_in

GAP = 0.05
MOST = 5000


def test_no_work_or_one_under_way_means_not_now() -> None:
    assert begin_in(0, False, 10.0, GAP, MOST) is None
    assert begin_in(3, True, 10.0, GAP, MOST) is None
    assert begin_in(MOST, True, 10.0, GAP, MOST) is None  # a backlog waits for the one under way too


def test_a_first_record_after_a_quiet_spell_begins_at_once() -> None:
    assert begin_in(1, False, 3.0, GAP, MOST) == 0.0
    assert begin_in(1, False, float("inf"), GAP, MOST) == 0.0


def test_within_the_gap_it_waits_for_the_rest_of_it_unless_a_backlog() -> None:
    assert begin_in(7, False, 0.02, GAP, MOST) == GAP - 0.02
    assert begin_in(MOST, False, 0.0, GAP, MOST) == 0.0


@given(
    arrivals=st.lists(st.floats(min_value=0, max_value=2, allow_nan=False), min_size=1, max_size=200),
    commit=st.floats(min_value=0.001, max_value=0.3, allow_nan=False),
)
def test_checkpoints_begin_at_least_the_gap_apart_and_no_record_waits_longer_than_gap_plus_two_commits(
    arrivals: list[float], commit: float
) -> None:
    """A small simulation of one partition: records arrive at the given times, each checkpoint takes `commit`
    seconds. Checkpoints begin at least GAP apart (so at most 1/GAP transactions per second), every record is in
    one, and none waits more than GAP plus two commits before its checkpoint is over."""
    arrivals = sorted(arrivals)
    now, begun, done_at = 0.0, float("-inf"), float("-inf")
    waiting: list[float] = []
    starts: list[float] = []
    longest = 0.0
    events = list(arrivals)
    while events or waiting:
        in_flight = now < done_at
        wait = begin_in(len(waiting), in_flight, now - begun, GAP, MOST)
        candidates = [t for t in (events[0] if events else None, done_at if in_flight else None) if t is not None]
        if wait is not None:
            candidates.append(now + wait)
        step = min(candidates)
        if wait is not None and step == now + wait:
            now, begun, done_at = step, step, step + commit
            starts.append(step)
            longest = max([longest] + [done_at - t for t in waiting])
            waiting = []
            continue
        now = step
        while events and events[0] <= now:
            waiting.append(events.pop(0))
    assert all(b - a >= GAP - 1e-9 for a, b in zip(starts, starts[1:]))
    assert longest <= GAP + 2 * commit + 1e-9
