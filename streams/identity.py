"""Verified identities of the parties to a shipment (经营主体身份核验).

A party's legal identifiers (USCC, LEI, EORI: their check characters are verified where the event is read,
schemas.identifiers) count only from a verifier the party registry trusts (role `identity_verifier`): a party's word
about itself, or anyone else's, is refused. A party's standing at a time is the latest trusted finding made at or
before it (event time, then event key), verified only while that time is before its `valid_until`. The record shows
each party's standing at the record's time (the latest actual event time, so the record stays a pure fold): a
verification past its `valid_until` then is `expired`.

With the MTO's `require_verified_parties` option (streams.authority.Operator.require_verified) the merge refuses a
booking naming a party not verified at the booking's time, holds a payout to a carrier not verified at the record's
time, and streams.release waits for the parties to the release.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Iterable, Literal, Mapping, Sequence

from schemas.events import HubEvent, IdentityEvent
from schemas.record import PartyVerification, Rejected, ShipmentRecord
from streams.authority import Authority
from streams.sharing import relations

Standing = Literal["unverified", "verified", "failed", "expired"]
Findings = Mapping[str, Sequence[IdentityEvent]]  # per party, the trusted findings in event order


def findings(events: Iterable[IdentityEvent], authority: Authority) -> tuple[Findings, list[Rejected]]:
    """Per party, the findings of verifiers the registry trusts, in event order; and the findings refused because
    their source is no trusted verifier."""
    rejected: list[Rejected] = []
    found: dict[str, list[IdentityEvent]] = defaultdict(list)
    for event in events:
        if not authority.has_role(event.source, "identity_verifier"):
            reason = f"{event.source} is not a verifier the registry trusts; it may not verify {event.payload.party_id}"
            rejected.append(Rejected(event=event.key, reason=reason, kind="not_entitled"))
        else:
            found[event.payload.party_id].append(event)
    for party in found:
        found[party].sort(key=lambda e: (e.occurred_at, e.key))
    return found, sorted(rejected, key=lambda r: r.event)


def record_time(live: Sequence[HubEvent]) -> datetime | None:
    """The record's time: the latest event time of the live events `live` (in event order) that are actual. Not a
    plan's or an estimate's: those date what is expected, up to a year past their receipt (streams.horizon), and any
    sender (one the record refuses too) would move the record's time there, expiring every verification: every
    payout held and the release blocked at a stranger's word."""
    return next((e.occurred_at for e in reversed(live) if e.classifier == "ACT"), None)


def standing(found: Findings, party: str, at: datetime | None) -> tuple[Standing, IdentityEvent | None]:
    """`party`'s standing at `at` (None: after every finding) and the finding it rests on."""
    made = [e for e in found.get(party, ()) if at is None or e.occurred_at <= at]
    if not made:
        return "unverified", None
    finding = made[-1]
    if at is not None and finding.payload.valid_until <= at:
        return "expired", finding
    return finding.payload.outcome, finding


def unverified(found: Findings, parties: Iterable[str], at: datetime | None) -> list[str]:
    """Each of `parties` not verified at `at`, as `party (standing)`, sorted."""
    out = []
    for party in sorted(set(parties)):
        state, _ = standing(found, party, at)
        if state != "verified":
            out.append(f"{party} ({state})")
    return out


def verifications(record: ShipmentRecord, found: Findings, now: datetime | None) -> list[PartyVerification]:
    """Each party's verification state at the record's time `now`."""
    out = []
    for party, roles in sorted(relations(record).items()):  # from the validated record and events: built as they are
        state, finding = standing(found, party, now)
        if finding is None:
            out.append(  # every field, in order: built's fastest path
                PartyVerification.built(party_id=party, relations=sorted(roles), state="unverified", finding=None, set_by=None)
            )
        else:
            out.append(
                PartyVerification.built(
                    party_id=party, relations=sorted(roles), state=state, finding=finding.payload, set_by=finding.key
                )
            )
    return out


def verified(record_verifications: list[PartyVerification], party: str | None) -> bool:
    return any(v.party_id == party and v.state == "verified" for v in record_verifications)
