"""The release is one-shot in the worker's own step (streams.step.merge_step), whatever the order, the duplicates, the
batches and the retractions: at most one `hub.release` message per shipment, never before every condition holds, and
once issued the record keeps it issued (a condition lost since is noted, never un-issues it, and met again never
issues it a second time)."""

from __future__ import annotations

from unittest.mock import patch

import copy

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.events import HubEvent
from schemas.record import ShipmentRecord
from streams import step as step_module
from streams.codec import decode_state, encode_entry, encode_head, encode_state, entry_key, read_state
from streams.merge import ShipmentState, apply_all, project
from streams.step import StepResult, Stored, merge_step

from .test_trade import AUTHORITY, SHIPMENT, Doc, _extras, by_id, parsed, record, trade_docs


def _retraction(doc: Doc, at: str) -> Doc:
    out = copy.deepcopy(doc)
    out.update(retracted=True, revised_at=at)
    return out


def _again(doc: Doc, event_id: str, at: str) -> Doc:
    out = copy.deepcopy(doc)
    out.update(event_id=event_id, occurred_at=at, recorded_at=at)
    return out


def _churn() -> list[Doc]:
    """Customs withdraws its import release (a retraction) and releases the import again later; the consignee's
    surrender is retracted and made again: each condition lost and then met again."""
    docs = trade_docs()
    released, surrender = by_id(docs, "cus-im-released"), by_id(docs, "mtd-1-surrender")
    return [
        _retraction(released, "2026-04-13T18:00:00Z"),
        _again(released, "cus-im-released-2", "2026-04-13T19:00:00Z"),
        _retraction(surrender, "2026-04-12T11:00:00Z"),
        _again(surrender, "mtd-1-surrender-2", "2026-04-12T12:00:00Z"),
    ]


ALL = parsed(trade_docs() + _extras() + _churn())
Items = list[tuple[int, HubEvent]]


def _run(batches: list[Items], *, warm: bool, resend: bool) -> list[tuple[StepResult[int], ShipmentState]]:
    """Each step's result and the state it leaves (decoded from its stored bytes when not `warm`)."""
    stored: Stored | None = None
    store: dict[bytes, bytes] = {}  # the shipments store
    key = SHIPMENT.encode()
    out = []
    for batch in batches:
        result = merge_step(SHIPMENT, stored, batch, AUTHORITY, resend_on_replay=resend)
        if result.write is not None:
            w = result.write
            store.update(w.puts(key))
            stored = Stored(w.state, w.record, whole=w.whole) if warm else Stored.decode(store[key], lambda k: store.get(entry_key(key, k)))
        assert stored is not None or not batch
        if stored is not None:
            out.append((result, stored.state))
    return out


def _conditions_hold(folded: ShipmentRecord) -> bool:
    """The release conditions, read independently of streams.release: every import released, the eBL surrendered
    by the consignee it was transferred to, on a booked shipment (the shipper has credit terms: freight holds
    throughout)."""
    imports = [c for c in folded.customs if c.direction == "import"]
    through = folded.through_document
    return (
        folded.booking is not None
        and bool(imports)
        and all(c.status == "released" for c in imports)
        and through is not None
        and through.status == "surrendered"
        and (through.surrendered_by or "").startswith("consignee.johor-assembly/")
    )


def _unissued(state: ShipmentState) -> ShipmentRecord:
    """The record the state's events alone make, without the hub's fact: the conditions as they are now."""
    return project(ShipmentState(state.shipment_id, state.copies, state.seen, state.superseded), AUTHORITY)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_at_most_one_release_message_and_never_before_its_conditions_whatever_the_order(data: st.DataObject) -> None:
    extra = data.draw(st.lists(st.sampled_from(ALL), max_size=12), label="duplicates")
    items = list(enumerate(data.draw(st.permutations(ALL + extra), label="arrival order")))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(items)), max_size=8), label="cuts"))
    bounds = [0, *cuts, len(items)]
    batches = [items[a:b] for a, b in zip(bounds, bounds[1:])]
    warm = data.draw(st.booleans(), label="warm")
    # the state stored whole, or as a head and entries from the first version (the head keeps the release issued)
    split_at = data.draw(st.sampled_from([step_module.SPLIT_STATE_BYTES, 0]), label="split state bytes")

    sent: list[bytes] = []
    first: ShipmentRecord | None = None  # the record of the step that issued the release
    held_before = False  # whether the conditions held at the end of some earlier step
    with patch.object(step_module, "SPLIT_STATE_BYTES", split_at):
        steps = _run(batches, warm=warm, resend=False)
    for result, state in steps:
        current = project(state, AUTHORITY)
        holds = _conditions_hold(_unissued(state))
        if result.releases:
            assert first is None, "a second release message"
            assert holds and not held_before, "a release before its conditions held, or later than the step they did"
            first = current
        sent += result.releases
        if first is not None:
            # issued for good: the same release, whatever was retracted or met again since
            assert current.release is not None and current.release.status == "issued"
            assert current.release.model_copy(update={"since_issued": []}) == first.release
            assert [c.name for c in first.release.conditions if not c.met] == []  # type: ignore[union-attr]
            lapsed = not holds and not _unissued(state).release.status == "issued"  # type: ignore[union-attr]
            assert bool(current.release.since_issued) == lapsed
        else:
            assert current.release is None or current.release.status == "blocked"
        held_before = held_before or holds
    assert len(sent) <= 1
    assert (len(sent) == 1) == held_before, "the conditions held at a step's end, yet nothing was issued"
    if sent:
        body = orjson.loads(sent[0])
        assert first is not None and body["release"] == first.release.model_dump(mode="json")  # type: ignore[union-attr]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_under_at_least_once_a_release_sent_again_is_the_same_release(data: st.DataObject) -> None:
    # a replay after a crash may send the release again (same id); it is never a second, different release
    items = list(enumerate(data.draw(st.permutations(ALL + ALL[:8]), label="arrival order")))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(items)), max_size=8), label="cuts"))
    bounds = [0, *cuts, len(items)]
    sent = [m for result, _ in _run([items[a:b] for a, b in zip(bounds, bounds[1:])], warm=False, resend=True) for m in result.releases]
    releases = {orjson.dumps({k: v for k, v in orjson.loads(m)["release"].items() if k != "since_issued"}) for m in sent}
    assert len(releases) <= 1


def _steps(*groups: list[Doc]) -> list[StepResult[int]]:
    batches = [list(enumerate(parsed(group))) for group in groups]
    return [result for result, _ in _run(batches, warm=False, resend=False)]


def test_a_retracted_customs_release_leaves_the_release_issued_with_a_note_and_met_again_sends_nothing() -> None:
    docs = trade_docs()
    released = by_id(docs, "cus-im-released")
    issued, retracted, again = _steps(
        docs, [_retraction(released, "2026-04-13T18:00:00Z")], [_again(released, "cus-im-released-2", "2026-04-14T10:00:00Z")]
    )
    assert len(issued.releases) == 1 and retracted.releases == [] and again.releases == []
    assert issued.write is not None and retracted.write is not None and again.write is not None
    after = retracted.write.record.release
    assert after is not None and after.status == "issued" and after.release_id == f"{SHIPMENT}/release"
    assert after.since_issued == ["customs no longer holds: the import declaration at MYPKG is under_inspection"]
    assert after.model_copy(update={"since_issued": []}) == issued.write.record.release
    assert again.write.record.release == issued.write.record.release  # met again: the same release, nothing sent
    # the fact survives the state's bytes; the events alone (an offline fold) say only what holds now
    assert decode_state(encode_state(retracted.write.state)).release == issued.write.record.release
    key, state = SHIPMENT.encode(), retracted.write.state  # and a head's, when the state is stored split
    split = {key: encode_head(state), **{entry_key(key, event): encode_entry(state, event) for event in state.copies}}
    assert read_state(split.get, SHIPMENT) == state and state.release == issued.write.record.release
    assert record(docs + [_retraction(released, "2026-04-13T18:00:00Z")]).release.status == "blocked"  # type: ignore[union-attr]


def test_a_state_without_a_release_keeps_its_bytes() -> None:
    state = apply_all(ShipmentState(SHIPMENT), parsed(trade_docs()[:5]))
    assert b'"release"' not in encode_state(state) and decode_state(encode_state(state)) == state
