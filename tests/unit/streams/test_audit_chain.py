"""The share audit's hash chain: what `verify` finds for each way a row can be removed, changed or moved."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from streams.audit_chain import GENESIS, Head, extend, link, verify
from streams.sharing import Share

AT = datetime(2026, 11, 28, 13, 54, tzinfo=timezone.utc)


def _share(n: int) -> dict[str, Any]:
    return Share(f"party.{n % 3}", "SHP-2026-000043", n, "status", "kafka", (f"field{n}", "status"), "2026-11-28.1",
                 ("carrier",), (), AT + timedelta(seconds=n)).document()


def _audit(count: int) -> tuple[list[dict[str, Any]], Head, list[dict[str, Any]]]:
    """`count` chained rows, the head after them, and their copies on hub.audit."""
    rows = extend(0, GENESIS, [_share(n) for n in range(count)])
    return [dict(r) for r in rows], Head(rows[-1]["seq"], rows[-1]["hash"]), [dict(r) for r in rows]


def _found(rows: list[dict[str, Any]], head: Head | None, published: list[dict[str, Any]]) -> set[tuple[str, int | None]]:
    return {(f.kind, f.seq) for f in verify(rows, head, published)}


def test_a_whole_chain_and_its_copy_agree() -> None:
    rows, head, published = _audit(6)
    assert rows[0]["prev_hash"] == GENESIS and [r["seq"] for r in rows] == [1, 2, 3, 4, 5, 6]
    assert all(later["prev_hash"] == earlier["hash"] for earlier, later in zip(rows, rows[1:]))
    assert verify(rows, head, published) == []
    assert verify(rows, head, published + published[:2]) == []  # a re-published copy is the same copy


def test_the_hash_covers_the_content_and_the_row_before() -> None:
    entry = _share(1)
    assert link(GENESIS, entry) != link("1" * 64, entry)
    assert link(GENESIS, entry) != link(GENESIS, {**entry, "fields": ["status"]})
    # the time reads the same whichever way it is written
    local = (AT + timedelta(seconds=1)).astimezone(timezone(timedelta(hours=8)))
    assert link(GENESIS, entry) == link(GENESIS, {**entry, "shared_at": local})


def test_a_deleted_row_is_named_from_its_copy_on_hub_audit() -> None:
    rows, head, published = _audit(6)
    del rows[2]
    (finding,) = verify(rows, head, published)
    assert (finding.kind, finding.seq, finding.share_id) == ("deleted", 3, published[2]["share_id"])


def test_a_deleted_last_row_shows_by_the_head_or_by_hub_audit() -> None:
    rows, head, published = _audit(6)
    assert _found(rows[:-1], head, published) == {("deleted", 6)}
    wound_back = Head(rows[-2]["seq"], rows[-2]["hash"])
    assert _found(rows[:-1], wound_back, published) == {("not_in_table", 6)}


def test_an_edited_row_breaks_its_hash_and_differs_from_its_copy() -> None:
    rows, head, published = _audit(6)
    rows[3]["fields"] = ["status"]
    assert _found(rows, head, published) == {("edited", 4), ("differs", 4)}


def test_a_rehashed_chain_still_differs_from_hub_audit() -> None:
    rows, _, published = _audit(6)
    forged = extend(0, GENESIS, [{**r, "party": "someone.else"} if r["seq"] == 2 else r for r in rows])
    head = Head(forged[-1]["seq"], forged[-1]["hash"])
    found = _found([dict(r) for r in forged], head, published)
    assert ("differs", 2) in found and {kind for kind, _ in found} <= {"differs", "reordered"}


def test_rows_that_swap_places_are_out_of_order() -> None:
    rows, head, published = _audit(6)
    rows[1]["seq"], rows[4]["seq"] = rows[4]["seq"], rows[1]["seq"]
    found = _found(rows, head, published)
    assert {("reordered", 2), ("reordered", 5)} <= found and not {kind for kind, _ in found} & {"edited", "deleted"}


def test_rows_and_messages_on_one_side_only() -> None:
    rows, head, published = _audit(6)
    assert _found(rows, head, published[:-1]) == {("not_on_topic", 6)}
    assert verify(rows, head, published[:-1], pending={rows[-1]["share_id"]}) == []  # still in the outbox
    stray = {**_share(99), "seq": None}
    assert _found(rows, head, published + [stray]) == {("not_in_table", None)}
    unchained = {**_share(7), "seq": None, "prev_hash": None, "hash": None}
    assert ("unchained", None) in _found(rows + [unchained], head, published + [_share(7)])


def test_copies_appended_after_the_table_was_read_are_not_missing_from_it() -> None:
    rows, head, published = _audit(6)
    earlier = Head(rows[-3]["seq"], rows[-3]["hash"])
    assert verify(rows[:-2], earlier, published, appended_since=2) == []


@given(st.integers(2, 12), st.data())
def test_any_single_deletion_or_edit_is_found(count: int, data: st.DataObject) -> None:
    rows, head, published = _audit(count)
    victim = data.draw(st.integers(0, count - 1))
    if data.draw(st.booleans()):
        del rows[victim]
    else:
        rows[victim]["kind"] = "claim"
    assert verify(rows, head, published) != []
