"""What the Kafka share stage sends for record versions: each party's view on its audience topic, and each claim
that changed for a party since the last version it was sent. Every message is a Share, audited once.

Pure: no I/O. The stage (connectors.sharing.stage) loads what was shared before, sends what this plans, and
stores the plan's new state with the audit rows and the consumed offsets.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Iterable, Mapping, Sequence

import orjson

from schemas.messages import CLAIM_SCHEMA_VERSION
from schemas.record import ShipmentRecord
from streams.sharing import (
    POLICY,
    Channel,
    Grant,
    Leaves,
    Policy,
    Share,
    View,
    audience,
    entitlements,
    may_receive,
    share_of,
    view_of,
    with_grants,
)

CHANNEL: Channel = "kafka"
# The operator of the hub reads the hub's own topics; its parties' topics are for everyone else.
OPERATOR = "mto"

ClaimSlot = tuple[str, str]  # (party, claim_id)
# Where a claim message's `insured_value` sits in the shipment record (its grade, `cover`, is what lets a party
# receive claims at all), so that the audit of a claim names it among the fields disclosed.
INSURED_VALUE = ("insurance", "policy", "insured_value")


@dataclass(frozen=True)
class Outgoing:
    """One message for `hub.share.<audience>.<party>`, keyed by `party`, and the Share that audits it."""

    audience: str
    party: str
    document: dict[str, Any]
    share: Share

    @property
    def key(self) -> bytes:
        return self.party.encode()

    @property
    def value(self) -> bytes:
        return orjson.dumps(self.document)


@dataclass(frozen=True)
class SentClaim:
    shipment_id: str
    version: int
    digest: str


@dataclass
class Planned:
    """A batch's messages, and what was shared afterwards: newest version per shipment, changed claim digests."""

    messages: list[Outgoing] = field(default_factory=list)
    versions: dict[str, int] = field(default_factory=dict)
    claims: dict[ClaimSlot, SentClaim] = field(default_factory=dict)
    skipped: int = 0  # versions not newer than one already shared


def plan_batch(
    records: Iterable[ShipmentRecord],
    grants: Mapping[str, Sequence[Grant]],
    versions: Mapping[str, int],
    claim_digests: Mapping[ClaimSlot, str],
    now: datetime,
    policy: Policy = POLICY,
) -> Planned:
    """The messages for `records` (several versions of a shipment are shared oldest first), given the grants per
    shipment, the newest version already shared per shipment and the claim digests each party last received."""
    out = Planned()
    digests = dict(claim_digests)
    for record in sorted(records, key=lambda r: (r.shipment_id, r.version)):
        if record.version <= out.versions.get(record.shipment_id, versions.get(record.shipment_id, 0)):
            out.skipped += 1
            continue
        messages, changed = plan_version(record, grants.get(record.shipment_id, ()), digests, now, policy)
        out.messages.extend(messages)
        out.versions[record.shipment_id] = record.version
        for slot, sent in changed.items():
            digests[slot] = sent.digest
            out.claims[slot] = sent
    return out


def plan_version(
    record: ShipmentRecord,
    grants: Iterable[Grant],
    claim_digests: Mapping[ClaimSlot, str],
    now: datetime,
    policy: Policy = POLICY,
) -> tuple[list[Outgoing], dict[ClaimSlot, SentClaim]]:
    """For one record version: a status view for every party but the operator, and for each party that may
    receive claims, the claims whose content (as that party sees it) differs from what it was sent last."""
    parties = with_grants(entitlements(record, policy), grants, record.shipment_id, now)
    messages: list[Outgoing] = []
    changed: dict[ClaimSlot, SentClaim] = {}
    leaves: Leaves | None = None  # the record leaf by leaf, once for every party's view
    for party in sorted(parties):
        who = parties[party]
        topic = audience(who)
        if OPERATOR in who.relations or topic is None:
            continue
        leaves = leaves or Leaves.of(record, policy)
        shown = view_of(leaves, who, policy)
        status = share_of(shown, who, record, "status", CHANNEL, now, policy=policy)
        messages.append(Outgoing(topic, party, _status_document(status, shown), status))
        for claim in shown.document.get("claims", []):
            claim_id = claim["claim_id"]
            document = {"kind": "claim", "party": party, "shipment_id": record.shipment_id, "version": record.version,
                        "claim": claim}
            if not may_receive("claim", document, who, policy):
                continue
            digest = claim_digest(claim)
            if claim_digests.get((party, claim_id)) == digest:
                continue
            insured = insured_value(shown.document)
            disclosed = View(claim, disclosed={*leaf_paths(claim, "claims[]"), *insured_value_fields(insured)})
            share = share_of(disclosed, who, record, "claim", CHANNEL, now, ref=claim_id, policy=policy)
            claim_document = {
                "kind": "claim",
                "share_id": share.share_id,
                **document,
                "relations": list(share.relations),
                "via_grants": list(share.via_grants),
                "policy_version": share.policy_version,
                "schema_version": CLAIM_SCHEMA_VERSION,
                "insured_value": insured,
            }
            messages.append(Outgoing(topic, party, claim_document, share))
            changed[(party, claim_id)] = SentClaim(record.shipment_id, record.version, digest)
    return messages, changed


def _status_document(share: Share, shown: View) -> dict[str, Any]:
    return {
        "kind": "status",
        "share_id": share.share_id,
        "party": share.party,
        "shipment_id": share.shipment_id,
        "version": share.version,
        "relations": list(share.relations),
        "via_grants": list(share.via_grants),
        "policy_version": share.policy_version,
        "view": shown.document,
    }


def insured_value(shown: Mapping[str, Any]) -> Any:
    """The policy's insured value as the party's view shows it (None if it shows none)."""
    node: Any = shown
    for name in INSURED_VALUE:
        node = node.get(name) if isinstance(node, Mapping) else None
    return node


def insured_value_fields(insured: Any) -> Iterable[str]:
    """The record paths a claim message's `insured_value` discloses."""
    return leaf_paths(insured, ".".join(INSURED_VALUE)) if isinstance(insured, dict) else ()


def claim_digest(claim: Mapping[str, Any]) -> str:
    """A claim's content as a party received it, in 32 hex digits: the same content gives the same digest."""
    return hashlib.sha256(orjson.dumps(claim, option=orjson.OPT_SORT_KEYS)).hexdigest()[:32]


def leaf_paths(node: Any, path: str = "") -> Iterable[str]:
    """The normalised field paths (`claims[].liability.sdr`) of a document, as streams.sharing.view audits them."""
    if isinstance(node, dict) and node:
        for key, value in node.items():
            yield from leaf_paths(value, f"{path}.{key}" if path else key)
    elif isinstance(node, list) and node and isinstance(node[0], (dict, list)):
        for item in node:
            yield from leaf_paths(item, f"{path}[]")
    else:
        yield path
