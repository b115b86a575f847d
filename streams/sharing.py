"""Who may see what: a party's relations to a shipment, the grants it holds, and the view of the record it gets.

Every field of the record has a sensitivity grade (`sharing_policy.json`: the most specific path wins, unlisted
paths have the default grade, deny by default). A party sees the grades its relations allow, with rows scoped
where a relation covers only part of the shipment: a carrier sees its own legs, the handovers into and out of
them, its own custody and payouts, and the shipper's (consignee's) contact only when it picks up (delivers).

Delegation, as in ONE Record: a party entitled to a shipment may grant a further party some of its grades for
that shipment; the delegate may grant on in turn. A grant counts only while its grantor is entitled, so revoking
a grant revokes everything delegated from it.

Pure: no I/O. The stages that deliver views (Kafka, webhooks, the gateway) and the audit log live in connectors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from importlib import resources
from typing import Any, Iterable, Literal, Mapping

from pydantic import Field

from schemas.base import Frozen, UtcDatetime
from schemas.identifiers import PartyId, ShipmentId
from schemas.record import ShipmentRecord
from streams.topics import SHARE_AUDIENCES

Grade = str
RelationName = Literal["mto", "shipper", "consignee", "carrier", "insurer"]
WITHHELD = "withheld"


class RelationPolicy(Frozen):
    grades: list[Grade]
    scope: Literal["own_legs"] | None = None


class Policy(Frozen):
    version: str
    about: str
    grades: dict[Grade, str]
    default_grade: Grade
    fields: dict[str, Grade]
    relations: dict[RelationName, RelationPolicy]
    outbound: dict[str, Grade]

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
class Entitlement:
    """What one party may see of one shipment: grades, and the legs that bound them when it is a carrier only."""

    party: str
    relations: frozenset[str]
    grades: frozenset[Grade]
    legs: frozenset[int] | None = None  # None: the whole journey; a set: only these legs (a carrier's own)
    via: tuple[str, ...] = ()  # grant ids from the entitled party down to this one, for a delegate


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
    return found


def entitlements(record: ShipmentRecord, policy: Policy = POLICY) -> dict[str, Entitlement]:
    """Every party the record itself entitles, with the union of its relations' grades."""
    out: dict[str, Entitlement] = {}
    for party, held in relations(record).items():
        grades: set[Grade] = set()
        whole = False
        for relation in held:
            rule = policy.relations[relation]  # type: ignore[index]
            grades |= set(rule.grades)
            whole = whole or rule.scope is None
        legs = None if whole else frozenset(leg.sequence for leg in record.legs if leg.carrier == party)
        out[party] = Entitlement(party, frozenset(held), frozenset(grades), legs)
    return out


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


def with_grants(
    base: Mapping[str, Entitlement], grants: Iterable[Grant], shipment_id: str, now: datetime
) -> dict[str, Entitlement]:
    """`base` plus what live grants for the shipment delegate. A grant gives at most what its grantor holds (its
    grades, its legs), and only while the grantor is entitled: a revoked or expired link cuts the chain below it."""
    out = dict(base)
    pending = sorted((g for g in grants if g.shipment_id == shipment_id and g.live(now)), key=lambda g: g.grant_id)
    changed = True
    while changed:
        changed = False
        for grant in pending:
            grantor = out.get(grant.grantor)
            if grantor is None or grant.grantee == grant.grantor:
                continue
            grades = grantor.grades & frozenset(grant.grades)
            if not grades:
                continue
            offered = Entitlement(grant.grantee, frozenset({"delegate"}), grades, grantor.legs, grantor.via + (grant.grant_id,))
            held = out.get(grant.grantee)
            merged = offered if held is None else _union(held, offered)
            if held != merged:
                out[grant.grantee] = merged
                changed = True
    return out


def _union(a: Entitlement, b: Entitlement) -> Entitlement:
    legs = None if a.legs is None or b.legs is None else a.legs | b.legs
    via = a.via if a.relations - {"delegate"} else min(a.via, b.via) if a.via and b.via else a.via or b.via
    return Entitlement(a.party, a.relations | b.relations, a.grades | b.grades, legs, via)


# --- the view ------------------------------------------------------------------------------------------------------


@dataclass
class View:
    """What one party receives: the filtered document, and which field paths it discloses and withholds."""

    document: dict[str, Any]
    disclosed: set[str] = field(default_factory=set)
    withheld: set[str] = field(default_factory=set)


def view(record: ShipmentRecord, who: Entitlement, policy: Policy = POLICY) -> View:
    """The record as `who` may see it. Paths are normalised (`legs[].charges`), so they can be audited."""
    document = record.model_dump(mode="json")
    scoped = _scope(document, record, who)
    extra = _personal_for_carrier(record, who)
    out = View({})
    filtered = _filter(scoped, "", who.grades, extra, policy, out)
    out.document = filtered if isinstance(filtered, dict) else {}
    out.document["policy_version"] = policy.version
    return out


def view_json(record: ShipmentRecord, who: Entitlement, policy: Policy = POLICY) -> dict[str, Any]:
    return view(record, who, policy).document


def _filter(node: Any, path: str, grades: frozenset[Grade], extra: set[str], policy: Policy, out: View) -> Any:
    if isinstance(node, dict) and node:
        kept: dict[str, Any] = {}
        for key, value in node.items():
            child = f"{path}.{key}" if path else key
            filtered = _filter(value, child, grades, extra, policy, out)
            if filtered is not _GONE:
                kept[key] = filtered
        return kept if kept else _GONE
    if isinstance(node, list) and node and isinstance(node[0], (dict, list)):
        items = [_filter(item, f"{path}[]", grades, extra, policy, out) for item in node]
        kept_items = [item for item in items if item is not _GONE]
        return kept_items if kept_items else _GONE
    if _allowed(path, grades, extra, policy):
        out.disclosed.add(path)
        return node
    out.withheld.add(path)
    return _GONE


def _allowed(path: str, grades: frozenset[Grade], extra: set[str], policy: Policy) -> bool:
    return policy.grade(path) in grades or any(path == p or path.startswith(p + ".") for p in extra)


class _Gone:
    def __repr__(self) -> str:
        return "<withheld>"


_GONE: Any = _Gone()


def _scope(document: dict[str, Any], record: ShipmentRecord, who: Entitlement) -> dict[str, Any]:
    """Rows a party covering only some legs may see: its legs, the handovers into and out of them, its custody,
    its payouts, its part of the plan. Claims are about one leg too, but a carrier holds no `cover` grade."""
    if who.legs is None:
        return document
    own = who.legs
    scoped = dict(document)
    scoped["legs"] = [leg for leg in document["legs"] if leg["sequence"] in own]
    scoped["handovers"] = [h for h in document["handovers"] if h["from_leg"] in own or h["to_leg"] in own]
    scoped["custody"] = [c for c in document["custody"] if c["leg"] in own]
    scoped["discrepancies"] = [d for d in document["discrepancies"] if d["leg"] in own]
    if document.get("booking"):
        scoped["booking"] = {**document["booking"], "legs": [leg for leg in document["booking"]["legs"] if leg["sequence"] in own]}
    if document.get("settlement"):
        payouts = [p for p in document["settlement"]["payouts"] if p["carrier"] == who.party]
        scoped["settlement"] = {**document["settlement"], "payouts": payouts}
    return scoped


def _personal_for_carrier(record: ShipmentRecord, who: Entitlement) -> set[str]:
    """The carrier that picks up needs the shipper's contact; the one that delivers, the consignee's."""
    if who.legs is None or not record.legs or "personal" in who.grades:
        return set()
    extra = set()
    if record.legs[0].sequence in who.legs:
        extra |= {"shipper.contact", "booking.shipper.contact"}
    if record.legs[-1].sequence in who.legs:
        extra |= {"consignee.contact", "booking.consignee.contact"}
    return extra


# --- outbound messages -------------------------------------------------------------------------------------------


def may_receive(kind: str, message: Mapping[str, Any], who: Entitlement, policy: Policy = POLICY) -> bool:
    """Whether a hub.settlement or hub.claims message (`kind` invoice, note, payout, claim) may go to `who`.
    Deny by default: a kind the policy does not grade goes to no one."""
    grade = policy.outbound.get(kind)
    if grade is None or grade not in who.grades:
        return False
    if kind == "payout" and who.legs is not None:
        return bool(message.get("payout", {}).get("carrier") == who.party)
    return True


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
