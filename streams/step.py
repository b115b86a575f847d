"""The merge step: one shipment as its store holds it, plus the events a batch brought for it, gives the new state
and everything the worker must store and send for it. Every rule of the merge stage lives here, as data in and data
out: which copies are new, the record version, its status message, the settlement documents and claims it adds, the
references it registers, the deadline it sets or clears, and the events it newly refuses.

The caller (worker.stages.MergeHandler) moves bytes: it reads the store, calls `merge_step`, writes `StepResult.write`
and produces the outputs. Pure: no I/O.

Replays. An item whose exact copy the state already holds changes nothing. Under at-least-once delivery the stored
state may be ahead of what reached Kafka (the state was written, the worker died before its outputs were), so a step
that takes in nothing new sends the current version again (`resend_on_replay=True`), and a new version carries the
replayed copies beside the new ones: the sink skips versions it has and keeps the first row of a copy, and documents
have stable ids. Under exactly-once the state and the outputs are committed together, so either would only emit a
version or a copy twice: `resend_on_replay=False`, a step with nothing new sends nothing, and a version carries only
the copies it took in.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable, Generic, Iterable, Sequence, TypeVar

from hubconf import topics as topic_names
from schemas.events import HubEvent
from schemas.record import ShipmentRecord
from schemas.rejection import Rejection
from streams.authority import Authority
from streams.clock import deadline
from streams.codec import decode_stored, encode_entry, encode_event, encode_head, encode_state, encode_status, entry_key, is_whole
from streams.copies import Copy
from streams.projection import advance
from streams.quota import OVER_QUOTA, over_quota
from streams.merge import ShipmentState, absorb_copies, project
from streams.outbound import claim_messages, release_messages, settlement_messages
from streams.release import completed_by, issue
from streams.references import Keyed, Registered, changed, register_messages, registered

S = TypeVar("S")  # where an item came from (the worker's consumed record): what a refusal dead-letters

NOT_ENTITLED = "not_entitled"


@dataclass(frozen=True, slots=True)
class Stored:
    """A shipment as its store holds it: the state, and the record it projects to and the references that record
    registers when the caller already has them (a warm cache: a previous step's `Write`); without them the step
    projects the state and works out its registrations when it needs them."""

    state: ShipmentState
    record: ShipmentRecord | None = None
    registrations: Registered | None = None
    # the store holds the state whole (streams.codec.encode_state) under the shipment's key, rather than a head and
    # an entry per event: the next version stores it whole again while it is small, else writes the head and every
    # event's entry (see SPLIT_STATE_BYTES). True when unknown: that is always right, at worst it writes more.
    whole: bool = True

    @classmethod
    def decode(cls, raw: bytes, entry: Callable[[str], bytes | None]) -> Stored:
        """The shipment whose store holds `raw` under its key, its entries read with `entry` (streams.codec)."""
        return cls(decode_stored(raw, entry), whole=is_whole(raw))


@dataclass(frozen=True, slots=True)
class Write:
    """What a step that took in something new stores under the shipment's key (`encoded`): the state whole (`whole`),
    or its head with the entries of the events whose copies changed (`entries`: each event's key and its entry, under
    `streams.codec.entry_key`); see SPLIT_STATE_BYTES. And the deadline (ISO 8601 bytes; None: the shipment has none,
    clear it). `state` and `record` are what the store then holds and projects to, and `registrations` what that
    record registers, for a warm cache (with `whole`: streams.step.Stored)."""

    encoded: bytes
    deadline: bytes | None
    state: ShipmentState
    record: ShipmentRecord
    registrations: Registered
    entries: tuple[tuple[str, bytes], ...] = ()
    whole: bool = True  # `encoded` is the state whole (and `entries` empty), not its head

    def puts(self, shipment_key: bytes) -> list[tuple[bytes, bytes]]:
        """Every store write of this step, as (key, value): the entries, then the head."""
        return [(entry_key(shipment_key, key), value) for key, value in self.entries] + [(shipment_key, self.encoded)]


@dataclass(frozen=True, slots=True)
class Refusal(Generic[S]):
    """An event the record newly refuses because its source may not say it, to dead-letter once: `source`'s original
    bytes when it came in this step, else `held` (the canonical event the state holds, refused now that a later
    event, such as the booking, shows it), dead-lettered as triggered by `source`."""

    rejection: Rejection
    source: S
    held: bytes | None = None


@dataclass(frozen=True, slots=True)
class StepResult(Generic[S]):
    """The step's state change and outputs, in the order they are produced: the status message, then the
    settlement documents and claims (all keyed by the shipment id), the hub.references messages, the refusals."""

    write: Write | None  # None: nothing new, nothing to store
    status: bytes | None  # the hub.shipment.status message; None: no version to send
    documents: list[bytes] = field(default_factory=list)
    claims: list[bytes] = field(default_factory=list)
    references: list[Keyed] = field(default_factory=list)
    refusals: list[Refusal[S]] = field(default_factory=list)
    # the hub.release order, on the one version that first issues it (or again on a replay of what it rests on)
    releases: list[bytes] = field(default_factory=list)
    # items not taken in: their source's quota of the shipment's state is full (streams.quota), to dead-letter
    set_aside: list[Refusal[S]] = field(default_factory=list)
    applied: int = 0  # items that were new copies
    duplicates: int = 0  # items whose copy the state already held (applied + duplicates + set aside = items)


def merge_step(
    shipment_id: str,
    stored: Stored | None,
    items: Sequence[tuple[S, HubEvent]],
    authority: Authority,
    *,
    resend_on_replay: bool,
) -> StepResult[S]:
    """Take `items` (each event with where it came from, all for `shipment_id`) into the shipment `stored` holds
    (None: the store has none yet). Raises streams.merge.MisroutedEvent for an event of another shipment (a hub bug)."""
    before = stored.state if stored is not None else ShipmentState(shipment_id)
    arrived = [Copy.of(event) for _, event in items]
    state, new_copies = absorb_copies(before, arrived)
    # A copy the state already holds may be a replay after a crash: the state was written, the worker died before the
    # status message that carried the copy reached Kafka. It goes out again with this version (the sink keeps the
    # first row it has of a copy), so Postgres never misses an event the record counts.
    taken = {copy.fingerprint for copy in new_copies}
    resent = list({copy.fingerprint: copy for copy in arrived if copy.fingerprint not in taken}.values())
    if state is before:
        if stored is None or not items or not resend_on_replay:
            return StepResult(None, None, duplicates=len(items))
        # Nothing new, but the stored state may be ahead of what reached Kafka: send the current version, its
        # documents and its registrations again (see the module's docstring).
        held = _record_of(stored, authority)
        # the release again only if a copy it rests on came back (a replay), never for any duplicate
        again = bool(completed_by(held) & {event.key for _, event in items})
        return StepResult(
            None,
            encode_status(held, resent),
            settlement_messages(None, held),
            claim_messages(None, held),
            register_messages(_registered_of(stored, held).all()),
            releases=release_messages(None, held) if again else [],
            duplicates=len(items),
        )
    # The one projection of a new state: incremental from the previous record when the caller holds it (a warm
    # shipment), else from scratch (streams.projection.advance equals project, proven by its hypothesis property).
    record = advance(stored.record if stored is not None else None, before, state, new_copies, authority)
    aside = over_quota(state, record, new_copies, authority)
    if aside:  # a source past its quota (an attack, or a party's backlog before the booking): the step without them
        kept = [item for item, copy in zip(items, arrived) if copy.fingerprint not in aside]
        result = merge_step(shipment_id, stored, kept, authority, resend_on_replay=resend_on_replay)
        refused = [
            Refusal(Rejection(OVER_QUOTA, aside[copy.fingerprint]), source)
            for (source, _), copy in zip(items, arrived)
            if copy.fingerprint in aside
        ]
        return replace(result, set_aside=refused + result.set_aside)
    state = issue(state, record)  # the release it first issues is the hub's fact from now on: it is never issued again
    previous: ShipmentRecord | None = None
    documents: list[bytes] = []
    claims: list[bytes] = []
    releases: list[bytes] = []
    if record.settlement is not None or record.claims or record.rejected or record.booking is not None:
        # only then does anything depend on what the previous version said
        previous = _record_of(stored, authority) if stored is not None else None
        documents = settlement_messages(previous, record)
        claims = claim_messages(previous, record)
        releases = release_messages(previous, record)
    # What the previous version registered (when the new one may register anything); the new version works out
    # again only the identities of the events it took in, and sends only what says something new.
    said = stored.registrations if stored is not None else None
    if said is None and stored is not None and previous is not None:
        said = _registered_of(stored, previous)
    registers = registered(state, record, said, {copy.event.key for copy in new_copies})
    references: list[Keyed] = register_messages(changed(said, registers)) if record.booking is not None else []
    due = deadline(record)
    return StepResult(
        # under at-least-once (resend_on_replay) a checkpoint's writes are not atomic: see stored_values
        _write(stored, before, state, new_copies, due.isoformat().encode() if due is not None else None, record, registers, not resend_on_replay),
        # under exactly-once a copy that came again was carried by the version that took it in, committed with the
        # state: carrying it once more would only count it twice downstream
        encode_status(record, new_copies + resent if resend_on_replay else new_copies),
        documents,
        claims,
        references,
        _refusals(state, previous, record, items),
        releases=releases,
        applied=len(new_copies),
        duplicates=len(items) - len(new_copies),
    )


# The state is stored whole (streams.codec.encode_state) while it is at most this many bytes, and from then on as a
# head and one entry per event, of which a version writes the head and the entries it changed (streams.codec). Whole,
# a version writes one value, one changelog record: at the bench's shapes (3 to 15 events a shipment, 3 to 10 KiB)
# that is cheaper than a head and its entries (bench.state: 1,041 changelog records per 1,000 events against 2,040,
# a cold restore 3.7 s against 5.1; 2026-12-05). Split, what a version writes grows by about 72 bytes an event the
# shipment holds (its head) instead of about 590 (bench.long_shipment: 72 KiB a version at 1,020 events against 588),
# and no stored value holds every event, so one message (MAX_OUTPUT_BYTES) bounds the head and the record (which
# lists every refused event), not the state. Only under exactly-once: see stored_values.
SPLIT_STATE_BYTES = 64 * 1024


def _write(
    stored: Stored | None,
    before: ShipmentState,
    state: ShipmentState,
    new_copies: Sequence[Copy],
    deadline: bytes | None,
    record: ShipmentRecord,
    registers: Registered,
    atomic: bool,
) -> Write:
    encoded, entries, whole = stored_values(stored is None or stored.whole, before, state, new_copies, atomic=atomic)
    return Write(encoded, deadline, state, record, registers, entries, whole)


def stored_values(
    was_whole: bool, before: ShipmentState, state: ShipmentState, new_copies: Sequence[Copy], *, atomic: bool = True
) -> tuple[bytes, tuple[tuple[str, bytes], ...], bool]:
    """What a version stores of `state` (which took `new_copies` in since `before`, stored whole if `was_whole`): the
    value under the shipment's key, the entries (event key, bytes) it writes, and whether that value is the state
    whole. Whole while it was whole and is small; else the head and the entries of the events whose copies changed
    (every entry, the first time it is split). Once split, a shipment stays split.

    `atomic`: the store's writes reach its changelog all or none (exactly-once checkpoints). Without it (at least
    once) a failed checkpoint may leave part of its records in the changelog, where a head without the entries it
    names would make the shipment unreadable after a restore: a state that was whole stays whole up to what one
    message may hold (the bound before 2026-12-05); only one split under exactly-once stays split."""
    if was_whole:
        whole = encode_state(state)
        bound = min(SPLIT_STATE_BYTES, topic_names.MAX_OUTPUT_BYTES) if atomic else topic_names.MAX_OUTPUT_BYTES
        if len(whole) <= bound or not atomic:  # never split without atomic writes (too large: set aside by the caller)
            return whole, (), True
        rewritten: Iterable[str] = sorted(state.copies.keys() | state.superseded.keys())
    else:  # the events whose winning copy or superseded copies changed
        rewritten = sorted(
            key
            for key in {copy.event.key for copy in new_copies}
            if state.copies.get(key) is not before.copies.get(key)
            or state.superseded.get(key) is not before.superseded.get(key)
        )
    return encode_head(state), tuple((key, encode_entry(state, key)) for key in rewritten), False


def _record_of(stored: Stored, authority: Authority) -> ShipmentRecord:
    """The record of a stored state: the caller's when it has it, else projected."""
    return stored.record if stored.record is not None else project(stored.state, authority)


def _registered_of(stored: Stored, record: ShipmentRecord) -> Registered:
    """What a stored state (whose record is `record`) registers: the caller's when it has it, else worked out."""
    return stored.registrations if stored.registrations is not None else registered(stored.state, record)


def _refusals(
    state: ShipmentState, previous: ShipmentRecord | None, record: ShipmentRecord, items: Sequence[tuple[S, HubEvent]]
) -> list[Refusal[S]]:
    """An event the record newly refuses because its source may not say it (a carrier reporting on another carrier's
    leg) is kept in the state, so the record can say why, and dead-lettered once: with its original bytes when it
    came in this step, else (the booking that shows the refusal came later) as the canonical event the hub holds. A
    conflict (a document transferred before it was issued) is only listed in the record: with events in any order it
    may be the next event that resolves it."""
    known = {r.event for r in previous.rejected if r.kind == NOT_ENTITLED} if previous is not None else set()
    arrived = {event.key: source for source, event in items}
    refusals: list[Refusal[S]] = []
    for refusal in record.rejected:
        if refusal.kind != NOT_ENTITLED or refusal.event in known:
            continue
        rejection = Rejection(refusal.kind, f"{refusal.event}: {refusal.reason}")
        if refusal.event in arrived:
            refusals.append(Refusal(rejection, arrived[refusal.event]))
        else:
            refusals.append(Refusal(rejection, items[-1][0], encode_event(state.copies[refusal.event].event)))
    return refusals
