"""Who may see what: a party's relations to a shipment, the grants it holds, and the view of the record it gets.

Every field of the record has a sensitivity grade (`sharing_policy.json`: the most specific path wins, unlisted
paths have the default grade, deny by default). Each relation of a party is a lens: the grades the relation
allows, on its rows (a carrier: its own legs, the handovers into and out of them, its own custody and payouts,
and the shipper's (consignee's) contact only when it picks up (delivers)). A party sees the union of what each of
its lenses shows alone, leaf by leaf: never one lens's grades on another lens's rows.

Delegation, as in ONE Record: a party entitled to a shipment may grant a further party some of its grades for
that shipment; the delegate may grant on in turn. A grant gives, on each lens of its grantor, the granted grades
that lens holds, on that lens's rows. A grant counts only while its grantor is entitled, so revoking a grant
revokes everything delegated from it.

Pure: no I/O. The stages that deliver views (Kafka, webhooks, the gateway) and the audit log live in connectors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import accumulate
from datetime import datetime
from importlib import resources
from typing import Any, Callable, Iterable, Literal, Mapping, NamedTuple, Sequence

from pydantic import Field, PrivateAttr

from schemas.base import Frozen, UtcDatetime
from schemas.identifiers import PartyId, ShipmentId
from streams.datasets import DatasetPolicy
from schemas.record import ShipmentRecord
from hubconf.topics import SHARE_AUDIENCES

Grade = str
RelationName = Literal["mto", "shipper", "consignee", "carrier", "insurer", "bank"]
WITHHELD = "withheld"


class RelationPolicy(Frozen):
    grades: list[Grade]
    scope: Literal["own_legs"] | None = None


DatasetPurpose = Literal["underwriting", "lending", "own_figures"]


class DatasetRules(Frozen):
    """The policy's `datasets` part: the k/m rule, the privacy budget and who reads which release."""

    about: str
    k: int
    m: int
    epsilon_budget: float
    epsilon_per_release: float
    max_cells_per_shipment: int
    max_claim_sdr: float
    readers: dict[str, DatasetPurpose]

    def policy(self) -> DatasetPolicy:
        return DatasetPolicy(
            self.k, self.m, self.epsilon_budget, self.epsilon_per_release, self.max_cells_per_shipment,
            self.max_claim_sdr,
        )  # fmt: skip


class Policy(Frozen):
    version: str
    about: str
    grades: dict[Grade, str]
    default_grade: Grade
    fields: dict[str, Grade]
    relations: dict[RelationName, RelationPolicy]
    datasets: DatasetRules
    outbound: dict[str, Grade]
    # the grade of each normalised record path a view met (the record's schema bounds them): not a field
    _grades: dict[str, Grade] = PrivateAttr(default_factory=dict)

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Policy:
        """A copy, with grades of its own to look up again (an update may change the fields or the default)."""
        copied = super().model_copy(update=update, deep=deep)
        copied._grades = {}
        return copied

    def grade(self, path: str) -> Grade:
        """The grade of a field path (`legs[].charges[].amount`): the most specific listed prefix wins."""
        probe = path
        while probe:
            if probe in self.fields:
                return self.fields[probe]
            cut = max(probe.rfind("."), probe.rfind("[]"))
            probe = probe[:cut] if cut > 0 else ""
        return self.default_grade


def load_policy(raw: bytes | None = None) -> Policy:
    """The packaged policy, or one given as JSON; every grade it names must be declared."""
    text = raw if raw is not None else resources.files("streams").joinpath("sharing_policy.json").read_bytes()
    policy = Policy.model_validate_json(text)
    used = set(policy.fields.values()) | {policy.default_grade} | set(policy.outbound.values())
    used |= {g for relation in policy.relations.values() for g in relation.grades}
    unknown = used - set(policy.grades)
    if unknown:
        raise ValueError(f"sharing policy {policy.version} uses undeclared grades: {sorted(unknown)}")
    return policy


POLICY = load_policy()


# --- relations and grants ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Lens:
    """One reason a party may see a shipment, on its own: these grades, on these rows.

    A relation is one lens (a carrier's: its grades on its own legs), and so is each grant a party holds, taken
    on one lens of its grantor. A party's view is the union of what each of its lenses shows alone, never its
    grades from one lens applied to the rows of another.
    """

    grades: frozenset[Grade]
    legs: frozenset[int] | None = None  # None: the whole journey; a set: only these legs (a carrier's own)
    carrier: str | None = None  # whose payouts a leg-scoped lens sees: the carrier it was cut for
    extra: frozenset[str] = frozenset()  # paths shown beyond the grades: the contact a carrier picks up from or delivers to
    via: tuple[str, ...] = ()  # grant ids from the entitled party down to this lens, for a delegated one

    @property
    def rows(self) -> tuple[frozenset[Grade], frozenset[int] | None, str | None, frozenset[str]]:
        """What the lens shows, whatever grant chain it came by."""
        return self.grades, self.legs, self.carrier, self.extra


@dataclass(frozen=True)
class Entitlement:
    """What one party may see of one shipment: the union of its lenses, each taken alone."""

    party: str
    relations: frozenset[str]
    lenses: tuple[Lens, ...]

    @property
    def grades(self) -> frozenset[Grade]:
        """Every grade the party holds on some rows (what it may pass on, each on the rows it holds it for)."""
        return frozenset(g for lens in self.lenses for g in lens.grades)

    @property
    def legs(self) -> frozenset[int] | None:
        """None when some lens covers the whole journey, else the legs its lenses cover."""
        if any(lens.legs is None for lens in self.lenses):
            return None
        return frozenset(leg for lens in self.lenses for leg in lens.legs or ())

    @property
    def via(self) -> tuple[str, ...]:
        """The grant chain the party sees the shipment by: none when it has a relation of its own, else the
        shortest (then smallest) of its lenses' chains."""
        if self.relations - {"delegate"}:
            return ()
        return min((lens.via for lens in self.lenses), key=lambda via: (len(via), via), default=())


def relations(record: ShipmentRecord) -> dict[str, set[str]]:
    """Each party's relations to the shipment, from the record itself."""
    found: dict[str, set[str]] = {}

    def add(party: str | None, relation: str) -> None:
        if party:
            found.setdefault(party, set()).add(relation)

    add(record.responsible_operator, "mto")
    add(record.shipper.party_id if record.shipper else None, "shipper")
    add(record.consignee.party_id if record.consignee else None, "consignee")
    for leg in record.legs:
        add(leg.carrier, "carrier")
    add(record.insurance.policy.insurer if record.insurance.policy else None, "insurer")
    add(record.letter_of_credit.terms.issuing_bank if record.letter_of_credit else None, "bank")
    return found


def entitlements(record: ShipmentRecord, policy: Policy = POLICY) -> dict[str, Entitlement]:
    """Every party the record itself entitles, with one lens per relation."""
    out: dict[str, Entitlement] = {}
    for party, held in relations(record).items():
        lenses = [_relation_lens(record, party, policy.relations[name]) for name in sorted(held)]  # type: ignore[index]
        out[party] = Entitlement(party, frozenset(held), _distinct(lenses))
    return out


def _relation_lens(record: ShipmentRecord, party: str, rule: RelationPolicy) -> Lens:
    grades = frozenset(rule.grades)
    if rule.scope is None:
        return Lens(grades)
    legs = frozenset(leg.sequence for leg in record.legs if leg.carrier == party)
    return Lens(grades, legs, party, _contacts_for_carrier(record, legs, grades))


def _contacts_for_carrier(record: ShipmentRecord, legs: frozenset[int], grades: frozenset[Grade]) -> frozenset[str]:
    """The carrier that picks up needs the shipper's contact; the one that delivers, the consignee's."""
    if not record.legs or "personal" in grades:
        return frozenset()
    extra: set[str] = set()
    if record.legs[0].sequence in legs:
        extra |= {"shipper.contact", "booking.shipper.contact"}
    if record.legs[-1].sequence in legs:
        extra |= {"consignee.contact", "booking.consignee.contact"}
    return frozenset(extra)


def _distinct(lenses: Iterable[Lens]) -> tuple[Lens, ...]:
    """One lens per set of rows shown, by its shortest (then smallest) grant chain, in a stable order."""
    best: dict[tuple[Any, ...], Lens] = {}
    for lens in lenses:
        held = best.get(lens.rows)
        if held is None or (len(lens.via), lens.via) < (len(held.via), held.via):
            best[lens.rows] = lens
    return tuple(sorted(best.values(), key=_lens_order))


def _lens_order(lens: Lens) -> tuple[Any, ...]:
    legs = (0, ()) if lens.legs is None else (1, tuple(sorted(lens.legs)))
    return sorted(lens.grades), legs, lens.carrier or "", sorted(lens.extra), len(lens.via), lens.via


class Grant(Frozen):
    """`grantor` lets `grantee` see `grades` of one shipment until `expires_at` or until revoked."""

    grant_id: str = Field(min_length=1, max_length=80)
    shipment_id: ShipmentId
    grantor: PartyId
    grantee: PartyId
    grades: list[Grade] = Field(min_length=1, max_length=10)
    granted_at: UtcDatetime
    expires_at: UtcDatetime | None = None
    revoked_at: UtcDatetime | None = None

    def live(self, now: datetime) -> bool:
        return (self.revoked_at is None or now < self.revoked_at) and (self.expires_at is None or now < self.expires_at)


def delegated(grant: Grant, lens: Lens) -> Lens | None:
    """The lens `grant` gives on one lens of its grantor: the granted grades it holds there, on its rows; the
    contacts a carrier needs only when `personal` is granted. None when that lens holds none of them, or when the
    grant is already in the lens's chain (a cycle of grants widens nothing)."""
    grades = lens.grades & frozenset(grant.grades)
    if not grades or grant.grant_id in lens.via:
        return None
    extra = lens.extra if "personal" in grant.grades else frozenset()
    return Lens(grades, lens.legs, lens.carrier, extra, lens.via + (grant.grant_id,))


def with_grants(
    base: Mapping[str, Entitlement], grants: Iterable[Grant], shipment_id: str, now: datetime
) -> dict[str, Entitlement]:
    """`base` plus what live grants for the shipment delegate. A grant gives a lens on each lens of its grantor,
    and only while the grantor is entitled: a revoked or expired link cuts the chain below it."""
    out = dict(base)
    pending = sorted((g for g in grants if g.shipment_id == shipment_id and g.live(now)), key=lambda g: g.grant_id)
    changed = True
    while changed:
        changed = False
        for grant in pending:
            grantor = out.get(grant.grantor)
            if grantor is None or grant.grantee == grant.grantor:
                continue
            offered = [lens for lens in (delegated(grant, held) for held in grantor.lenses) if lens is not None]
            if not offered:
                continue
            held = out.get(grant.grantee)
            merged = (
                Entitlement(grant.grantee, frozenset({"delegate"}), _distinct(offered))
                if held is None
                else Entitlement(held.party, held.relations | {"delegate"}, _distinct([*held.lenses, *offered]))
            )
            if held != merged:
                out[grant.grantee] = merged
                changed = True
    return out


# --- the view ------------------------------------------------------------------------------------------------------

# A record location: the keys and list positions from the record's root down to one value.
Location = tuple[str | int, ...]


@dataclass
class View:
    """What one party receives: the filtered document, which field paths it discloses and which it withholds
    everywhere, and the record locations it discloses (the union of what each of the party's lenses shows)."""

    document: dict[str, Any]
    disclosed: set[str] = field(default_factory=set)
    withheld: set[str] = field(default_factory=set)
    shown: bytes | bytearray = b""  # shown[i]: the record's leaf at located[i] is shown
    located: Sequence[Location] = ()

    @property
    def leaves(self) -> set[Location]:
        """The record locations the view discloses (made when asked: the stages never ask)."""
        return {at for at, held in zip(self.located, self.shown) if held}


def view(record: ShipmentRecord, who: Entitlement, policy: Policy = POLICY) -> View:
    """The record as `who` may see it: each leaf of the record that at least one of its lenses shows on its own.
    List items are told apart by their place in the record, so a leg one lens shows and a leg another lens shows
    stay two legs, each with what its own lens allows. Paths are normalised (`legs[].charges`) for the audit."""
    return view_of(Leaves.of(record, policy), who, policy)


# Per leaf, the rows above it that a lens covering only some legs must hold: each a test and the value it tests (a
# list item of `_ROWS`, or the leaf itself for `_OWN_VALUES`).
Rows = tuple[tuple[Callable[[Any, Lens], bool], Any], ...]


class _Node(NamedTuple):
    """An object of a record's document, or a list of objects (or lists) filtered item by item: the leaves under it
    are `lo` to `hi` (document order); each child, by key or place, is such a node or a leaf's number."""

    value: Any
    lo: int
    hi: int
    children: tuple[tuple[str | int, _Node | int], ...]


@dataclass
class Leaves:
    """A record's document leaf by leaf, in the document's order, and as a tree over those leaves: made once per
    record version and read by the view of every party (the sharing stage views each version for every party).
    Per leaf: where it is, its normalised path (`legs[].charges[].amount`) and grade, its value, and the rows above
    it that a lens covering only some legs must hold (each list item of `_ROWS` with its test; the leaves under one
    item share one tuple)."""

    at: list[Location] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    grades: list[Grade] = field(default_factory=list)
    values: list[Any] = field(default_factory=list)
    rows: list[Rows] = field(default_factory=list)
    root: _Node | int = 0

    @classmethod
    def of(cls, record: ShipmentRecord, policy: Policy = POLICY) -> Leaves:
        leaves = cls()
        leaves.root = _flatten(record.model_dump(mode="json"), (), "", (), policy._grades, policy, leaves)
        return leaves


def view_of(leaves: Leaves, who: Entitlement, policy: Policy = POLICY) -> View:
    """`view`, of a record's leaves (`Leaves.of`): each leaf any one of `who`'s lenses shows on its own. The
    document shares with the record's what it shows whole: read it, never change it below its top level."""
    out = View({})
    disclosed, withheld = out.disclosed, out.withheld
    shown = bytearray(len(leaves.paths))
    for lens in who.lenses:
        scoped, grades, extra = lens.legs is not None, lens.grades, lens.extra
        held: dict[int, bool] = {}  # per item's rows (the tuple its leaves share): whether this lens holds them
        for index, (path, grade, rows) in enumerate(zip(leaves.paths, leaves.grades, leaves.rows)):
            if scoped and rows:
                holds = held.get(id(rows))
                if holds is None:
                    holds = held[id(rows)] = all(in_rows(item, lens) for in_rows, item in rows)
                if not holds:
                    continue  # a row of another carrier's: neither shown nor withheld by this lens
            if grade in grades or extra and any(path == p or path.startswith(p + ".") for p in extra):
                disclosed.add(path)
                shown[index] = 1
            else:
                withheld.add(path)
    out.withheld -= out.disclosed
    out.shown, out.located = shown, leaves.at
    if isinstance(leaves.root, _Node):
        before = [0, *accumulate(shown)]  # before[i]: the leaves shown among the first i
        kept = _kept(leaves.root, before, shown, leaves.values)
        out.document = dict(kept) if isinstance(kept, dict) else {}
    out.document["policy_version"] = policy.version
    return out


def _flatten(
    node: Any, at: Location, path: str, rows: Rows, grades: dict[str, Grade], policy: Policy, out: Leaves
) -> _Node | int:
    """Add the leaves under `node` to `out` (a non-empty object key by key, a list of objects or lists item by
    item, anything else whole: `_is_branch`); the node over them, or the leaf's number."""
    lo = len(out.paths)
    children: list[tuple[str | int, _Node | int]] = []
    if isinstance(node, dict) and node:
        prefix = f"{path}." if path else ""
        for key, value in node.items():
            children.append((key, _flatten(value, (*at, key), prefix + key, rows, grades, policy, out)))
        return _Node(node, lo, len(out.paths), tuple(children))
    if _is_branch(node):
        in_rows = _ROWS.get(path)
        items = f"{path}[]"
        for index, item in enumerate(node):
            below = rows if in_rows is None else (*rows, (in_rows, item))
            children.append((index, _flatten(item, (*at, index), items, below, grades, policy, out)))
        return _Node(node, lo, len(out.paths), tuple(children))
    grade = grades.get(path)
    if grade is None:
        grade = grades[path] = policy.grade(path)
    own = _OWN_VALUES.get(path)
    if own is not None:
        rows = (*rows, (own, node))
    out.at.append(at)
    out.paths.append(path)
    out.grades.append(grade)
    out.values.append(node)
    out.rows.append(rows)
    return lo


def _kept(node: _Node, before: list[int], shown: bytearray, values: list[Any]) -> Any:
    """`node` with only the leaves shown (`before`: see view_of), in the record's order; _GONE when none is. A node
    whose every leaf is shown is the record's own."""
    count = before[node.hi] - before[node.lo]
    if count == 0:
        return _GONE
    if count == node.hi - node.lo:
        return node.value
    kept = []
    for key, child in node.children:
        if isinstance(child, int):
            if shown[child]:
                kept.append((key, values[child]))
        elif (value := _kept(child, before, shown, values)) is not _GONE:
            kept.append((key, value))
    return dict(kept) if isinstance(node.value, dict) else [value for _, value in kept]


class _Gone:
    def __repr__(self) -> str:
        return "<withheld>"


_GONE: Any = _Gone()


def _is_branch(node: Any) -> bool:
    """A non-empty object, or a non-empty list of objects or lists: filtered item by item. Anything else (a
    scalar, an empty container, a list of scalars) is one leaf."""
    if isinstance(node, dict):
        return bool(node)
    return isinstance(node, list) and bool(node) and isinstance(node[0], (dict, list))


def _own_leg(key: str) -> Callable[[Mapping[str, Any], Lens], bool]:
    return lambda item, lens: item[key] in (lens.legs or ())


# The rows a lens covering only some legs may see, by list: its legs, the handovers into and out of them, its
# custody and discrepancies, its part of the plan, its carrier's payouts. Claims are about one leg too, but a
# carrier holds no `cover` grade.
_OTHERS = frozenset({"carrier", "insurer", "bank"})
_ROWS: dict[str, Callable[[Mapping[str, Any], Lens], bool]] = {
    "legs": _own_leg("sequence"),
    "booking.legs": _own_leg("sequence"),
    "handovers": lambda item, lens: item["from_leg"] in (lens.legs or ()) or item["to_leg"] in (lens.legs or ()),
    "custody": _own_leg("leg"),
    "discrepancies": _own_leg("leg"),
    "emissions.legs": _own_leg("leg"),
    "settlement.payouts": lambda item, lens: item["carrier"] == lens.carrier,
    "carrier_invoices": lambda item, lens: item["carrier"] == lens.carrier,
    # who else carries, insures or finances the shipment is not a carrier's to learn: only its own verification
    # and those of the shipment's own parties (the shipper, the consignee, the MTO)
    "verifications": lambda item, lens: item["party_id"] == lens.carrier or not set(item["relations"]) & _OTHERS,
}


def _set_by_own_carrier(key: Any, lens: Lens) -> bool:
    """Whether an event key (`<source>/<event id>`) is of an event the lens's own carrier sent."""
    return isinstance(key, str) and key.partition("/")[0] == lens.carrier


# Single values outside those lists that a lens covering only some legs sees only when they are its own. The
# provenance of the current location names the carrier whose event last moved the cargo: that may be the carrier
# of a leg this one neither carries nor hands over with, which is not a carrier's to learn (the location itself is
# public and stays shown).
_OWN_VALUES: dict[str, Callable[[Any, Lens], bool]] = {
    "location_set_by": _set_by_own_carrier,
}


# --- outbound messages -------------------------------------------------------------------------------------------


def may_receive(kind: str, message: Mapping[str, Any], who: Entitlement, policy: Policy = POLICY) -> bool:
    """Whether a hub.settlement or hub.claims message (`kind` invoice, note, payout, claim) may go to `who`: some
    one lens of it must allow it (a payout, to a leg-scoped lens, only its carrier's). Deny by default: a kind the
    policy does not grade goes to no one."""
    grade = policy.outbound.get(kind)
    if grade is None:
        return False
    for lens in who.lenses:
        if grade not in lens.grades:
            continue
        if kind == "payout" and lens.legs is not None:
            if message.get("payout", {}).get("carrier") == lens.carrier:
                return True
            continue
        return True
    return False


def policy_table(policy: Policy = POLICY) -> str:
    """The README's table of what each relation sees, generated from the policy."""
    grades = list(policy.grades)
    header = "| relation | " + " | ".join(grades) + " | rows |"
    lines = [header, "| --- | " + " | ".join("---" for _ in grades) + " | --- |"]
    for name, rule in policy.relations.items():
        marks = " | ".join("yes" if g in rule.grades else "" for g in grades)
        rows = "own legs, their handovers, custody and payouts" if rule.scope == "own_legs" else "whole journey"
        lines.append(f"| {name} | {marks} | {rows} |")
    lines.append("| delegate | " + " | ".join("if granted" for _ in grades) + " | as its grantor |")
    return "\n".join(lines)


# --- the audit of a share -------------------------------------------------------------------------------------------

Channel = Literal["kafka", "webhook", "sse", "api"]


@dataclass(frozen=True)
class Share:
    """One disclosure: `party` got `fields` of `shipment_id` version `version` as a `kind` message via `channel`.

    `ref` tells apart several messages of one kind for one version (a document id, a claim id; empty for a status
    view), so `share_id` is the same whenever the same disclosure is replayed, and it is audited once.
    """

    party: str
    shipment_id: str
    version: int | None
    kind: str
    channel: Channel
    fields: tuple[str, ...]
    policy_version: str
    relations: tuple[str, ...]
    via_grants: tuple[str, ...]
    shared_at: datetime
    ref: str = ""

    @property
    def share_id(self) -> str:
        version = "" if self.version is None else str(self.version)
        return "/".join((self.channel, self.party, self.shipment_id, version, self.kind, self.ref))

    def document(self) -> dict[str, Any]:
        """As a JSON object, for the `hub.audit` topic."""
        return {
            "share_id": self.share_id,
            "party": self.party,
            "shipment_id": self.shipment_id,
            "record_version": self.version,
            "kind": self.kind,
            "channel": self.channel,
            "fields": list(self.fields),
            "policy_version": self.policy_version,
            "relations": list(self.relations),
            "via_grants": list(self.via_grants),
            "shared_at": self.shared_at.isoformat(),
        }


def share_of(
    shown: View, who: Entitlement, record: ShipmentRecord, kind: str, channel: Channel, at: datetime, ref: str = "",
    policy: Policy = POLICY,
) -> Share:
    return Share(
        party=who.party,
        shipment_id=record.shipment_id,
        version=record.version,
        kind=kind,
        channel=channel,
        fields=tuple(sorted(shown.disclosed)),
        policy_version=policy.version,
        relations=tuple(sorted(who.relations)),
        via_grants=who.via,
        shared_at=at,
        ref=ref,
    )


# Which per-audience topic (`hub.share.<audience>`, keyed by party id) a party's views go to: its first relation
# in this order. The MTO runs the hub and reads the hub's own topics.
AUDIENCES = SHARE_AUDIENCES


def audience(who: Entitlement) -> str | None:
    return next((name for name in AUDIENCES if name in who.relations), None)
