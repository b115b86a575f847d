"""What the gateway decides for a reader: who it is entitled as, what it may grant or revoke, what it may learn of
the other recipients of a shipment, and the shares it must audit.

Pure: records, grants and audit summaries in, decisions and documents out. The reads and writes happen in
connectors.gateway.reader through the `Shipments`, `Grants` and `ShareLog` protocols defined here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Awaitable, Callable, Iterable, Literal, Mapping, Protocol, Sequence

import orjson
from pydantic import Field, ValidationError

from connectors.parties import PartyRegistry
from schemas.base import Frozen, UtcDatetime
from schemas.identifiers import PartyId
from schemas.record import ShipmentRecord
from schemas.rejection import describe
from streams.sharing import POLICY, Entitlement, Grade, Grant, Policy, Share, entitlements, with_grants

GrantState = Literal["active", "revoked", "expired", "cut"]
RecipientScope = Literal["all", "own_and_delegates"]


@dataclass(frozen=True)
class Refusal:
    """An answer other than the one asked for: the HTTP status, a stable code, and the reason for a person."""

    status: int
    code: str
    reason: str


@dataclass(frozen=True)
class DisclosureLine:
    """What the audit log says one party received of one shipment, per kind, channel and the grant chain the shares
    were made through (the audit's `via_grants`; empty for a party's own relations). The chain decides who else may
    see the line (`visible_recipients`); the document does not carry it."""

    party: str
    kind: str
    channel: str
    count: int
    last_shared_at: datetime
    record_versions: tuple[int, ...]
    via_grants: tuple[str, ...] = ()

    def document(self) -> dict[str, Any]:
        return {
            "party": self.party,
            "kind": self.kind,
            "channel": self.channel,
            "count": self.count,
            "last_shared_at": self.last_shared_at.astimezone(timezone.utc).isoformat().replace("+00:00", "Z"),
            "record_versions": list(self.record_versions),
        }


class Shipments(Protocol):
    async def record(self, shipment_id: str) -> ShipmentRecord | None:
        """The latest projected record; None when the projection does not hold the shipment. A miss costs what a hit
        does: it reads and parses the last record a hit read, so timing does not tell the two apart."""

    async def records(self, shipment_ids: Sequence[str]) -> dict[str, ShipmentRecord]:
        """The latest projected records of those the projection holds, in one query (the live views' change feed)."""

    async def versions(self, shipment_ids: Sequence[str]) -> dict[str, int]:
        """Only the projected versions, in one query: what the change feed polls."""


class Grants(Protocol):
    async def for_shipment(self, shipment_id: str) -> list[Grant]:
        """Every grant ever made on the shipment, revoked and expired ones included."""

    async def for_shipments(self, shipment_ids: Sequence[str]) -> dict[str, list[Grant]]:
        """`for_shipment` of each, in one query (the live views' change feed); a shipment without grants is absent."""

    async def get(self, grant_id: str) -> Grant | None: ...

    async def add(self, grant: Grant) -> None: ...

    async def revoke(self, grant_id: str, at: datetime) -> Grant | None:
        """Set `revoked_at` unless it is set already; the grant as it now stands (None if unknown)."""


class ShareLog(Protocol):
    async def write(self, share: Share, publish: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
        """One `share_audit` row on the audit's hash chain (a share id already there is left as it is, and not
        published again), committed only once `publish` (its copy on hub.audit: the document given, the share's
        with its place in the chain) has succeeded, so a refused publish leaves no row for a share that never went
        out."""

    async def summary(self, shipment_id: str) -> list[DisclosureLine]:
        """The audit log of a shipment, grouped by party, kind, channel and grant chain."""


# --- entitlement -----------------------------------------------------------------------------------------------------


def entitled(
    record: ShipmentRecord, grants: Sequence[Grant], now: datetime, policy: Policy = POLICY
) -> dict[str, Entitlement]:
    """Every party the record and the live grants entitle now."""
    return with_grants(entitlements(record, policy), grants, record.shipment_id, now)


def not_found(shipment_id: str) -> Refusal:
    """The one answer for a shipment the caller may not read, whether it exists or not: the two must not differ."""
    return Refusal(404, "not_found", f"no shipment {shipment_id} that you may read")


UNAUTHENTICATED = Refusal(401, "unauthenticated", "send Authorization: Bearer <your party's API token>")


# --- grants --------------------------------------------------------------------------------------------------------


class GrantRequest(Frozen):
    """The body of `POST /v1/shipments/{id}/grants`."""

    grantee: PartyId
    grades: list[Grade] = Field(min_length=1, max_length=10)
    expires_at: UtcDatetime | None = None


def read_grant_request(body: bytes) -> GrantRequest | Refusal:
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        return Refusal(400, "invalid_json", f"the body is not JSON: {error}")
    try:
        return GrantRequest.model_validate(document)
    except ValidationError as error:
        return Refusal(400, "invalid_request", describe(error))


# The most grants one party makes on one shipment, revoked and expired ones included. Grants are never deleted, and
# every read, every live view's poll and every version the share stage sends decides entitlements over all of them:
# without a bound, one party granting ten a second would soon make each of those take seconds of the event loop.
MAX_GRANTS_PER_GRANTOR = 50


def refuse_grant(
    grantor: Entitlement,
    request: GrantRequest,
    parties: PartyRegistry,
    now: datetime,
    policy: Policy = POLICY,
    *,
    grants: Sequence[Grant],
) -> Refusal | None:
    """Why `grantor` may not make this grant, or None. A grant passes on at most what its grantor holds, and a party
    makes at most MAX_GRANTS_PER_GRANTOR grants on a shipment (`grants`: every grant ever made on it)."""
    if parties.party(request.grantee) is None:
        return Refusal(400, "unknown_party", f"grantee {request.grantee} is not a registered party")
    if request.grantee == grantor.party:
        return Refusal(400, "invalid_request", "a party cannot grant to itself")
    unknown = sorted(set(request.grades) - set(policy.grades))
    if unknown:
        return Refusal(400, "unknown_grade", f"unknown grades: {', '.join(unknown)}; known: {', '.join(policy.grades)}")
    if request.expires_at is not None and request.expires_at <= now:
        return Refusal(400, "invalid_request", f"expires_at {request.expires_at.isoformat()} is not in the future")
    missing = [grade for grade in policy.grades if grade in request.grades and grade not in grantor.grades]
    if missing:
        return Refusal(403, "grades_not_held", f"you do not hold these grades of the shipment: {', '.join(missing)}")
    if sum(grant.grantor == grantor.party for grant in grants) >= MAX_GRANTS_PER_GRANTOR:
        limit = MAX_GRANTS_PER_GRANTOR
        reason = f"you have made {limit} grants on this shipment, the most a party may (revoked ones count)"
        return Refusal(403, "too_many_grants", reason)
    return None


def new_grant(grant_id: str, shipment_id: str, grantor: str, request: GrantRequest, now: datetime) -> Grant:
    grades = list(dict.fromkeys(request.grades))
    return Grant(
        grant_id=grant_id, shipment_id=shipment_id, grantor=grantor, grantee=request.grantee, grades=grades,
        granted_at=now, expires_at=request.expires_at,
    )


def may_see_grant(grant: Grant, caller: str, record: ShipmentRecord | None) -> bool:
    return caller in (grant.grantor, grant.grantee) or _is_mto(caller, record)


def may_revoke(grant: Grant, caller: str, record: ShipmentRecord | None) -> bool:
    """The grantor may revoke its grant, and the MTO, which answers for the whole shipment, any grant on it."""
    return caller == grant.grantor or _is_mto(caller, record)


def _is_mto(caller: str, record: ShipmentRecord | None) -> bool:
    return record is not None and record.responsible_operator == caller


def grant_state(grant: Grant, now_entitled: Mapping[str, Entitlement], now: datetime) -> GrantState:
    """`cut`: not revoked and not expired, but its grantor no longer holds any of its grades (a link above it went)."""
    if grant.revoked_at is not None and now >= grant.revoked_at:
        return "revoked"
    if grant.expires_at is not None and now >= grant.expires_at:
        return "expired"
    grantor = now_entitled.get(grant.grantor)
    return "active" if grantor is not None and grantor.grades & set(grant.grades) else "cut"


def grant_document(grant: Grant, now_entitled: Mapping[str, Entitlement], now: datetime) -> dict[str, Any]:
    return {**grant.model_dump(mode="json"), "state": grant_state(grant, now_entitled, now)}


def visible_grants(caller: str, record: ShipmentRecord, grants: Sequence[Grant]) -> list[Grant]:
    """The grants the caller made or received; every grant on the shipment for its MTO."""
    return sorted((g for g in grants if may_see_grant(g, caller, record)), key=lambda g: (g.granted_at, g.grant_id))


# --- who else received it --------------------------------------------------------------------------------------------


def delegates_of(party: str, grants: Sequence[Grant]) -> set[str]:
    """Every party `party` delegated to, directly or through its delegates, by any grant ever made (revoked ones
    too: what a former delegate received was received on the party's word)."""
    found: set[str] = set()
    frontier = {party}
    while frontier:
        reached = {g.grantee for g in grants if g.grantor in frontier} - found - {party}
        found |= reached
        frontier = reached
    return found


def recipient_scope(who: Entitlement) -> RecipientScope:
    """Who may see the whole list of recipients: a party entitled in its own right to the whole journey (MTO,
    shipper, consignee, insurer). A carrier sees only its legs, so it learns only of itself and its delegates; a
    delegate received grades of the record, not the knowledge of who else holds it, so it too sees only itself
    and its own delegates. Only a lens of the party's own (no grant in its chain) counts: a carrier the consignee
    granted `[public]` sees the whole journey's public fields, but it is still a carrier."""
    own_whole = any(lens.legs is None and not lens.via for lens in who.lenses)
    return "all" if own_whole else "own_and_delegates"


def visible_recipients(
    who: Entitlement, lines: Sequence[DisclosureLine], grants: Sequence[Grant]
) -> tuple[RecipientScope, list[DisclosureLine]]:
    """The lines the caller may see, one per party, kind and channel. With scope `own_and_delegates`: its own, and
    of its delegates' only the shares made through one of its grants (their chain runs from the entitled party
    down, so a delegate's delegate's chain holds the caller's grant too). Not the party's whole line: a grant to
    a party that holds the shipment in its own right (another carrier, the insurer), or by someone else's grant,
    would otherwise tell the grantor who that party is and what it received."""
    scope = recipient_scope(who)
    if scope == "all":
        return scope, _merged(lines)
    made = {g.grant_id for g in grants if g.grantor == who.party}
    mine = {who.party} | delegates_of(who.party, grants)
    return scope, _merged([
        line for line in lines
        if line.party == who.party or (line.party in mine and not made.isdisjoint(line.via_grants))
    ])  # fmt: skip


def _merged(lines: Iterable[DisclosureLine]) -> list[DisclosureLine]:
    """One line per party, kind and channel, over every grant chain."""
    groups: dict[tuple[str, str, str], list[DisclosureLine]] = {}
    for line in lines:
        groups.setdefault((line.party, line.kind, line.channel), []).append(line)
    return [
        DisclosureLine(
            party, kind, channel, sum(line.count for line in group), max(line.last_shared_at for line in group),
            tuple(sorted({version for line in group for version in line.record_versions})),
        )
        for (party, kind, channel), group in groups.items()
    ]


def disclosures_document(
    record: ShipmentRecord,
    who: Entitlement,
    held: Mapping[str, Any],
    lines: Sequence[DisclosureLine],
    grants: Sequence[Grant],
    now_entitled: Mapping[str, Entitlement],
    now: datetime,
) -> dict[str, Any]:
    """What mmhub holds about the shipment that the caller may see, and who received data of it."""
    scope, shown = visible_recipients(who, lines, grants)
    return {
        "shipment_id": record.shipment_id,
        "record_version": record.version,
        "you": access_document(who),
        "held": dict(held),
        "recipients_scope": scope,
        "recipients": [line.document() for line in sorted(shown, key=lambda r: (r.party, r.kind, r.channel))],
        "grants": [grant_document(g, now_entitled, now) for g in visible_grants(who.party, record, grants)],
    }


def access_document(who: Entitlement) -> dict[str, Any]:
    return {
        "party": who.party,
        "relations": sorted(who.relations),
        "grades": sorted(who.grades),
        "legs": None if who.legs is None else sorted(who.legs),
        "via_grants": list(who.via),
        "lenses": [
            {"grades": sorted(lens.grades), "legs": None if lens.legs is None else sorted(lens.legs), "via_grants": list(lens.via)}
            for lens in who.lenses
        ],
    }
