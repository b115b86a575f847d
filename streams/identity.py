"""Verified identities of the parties to a shipment (经营主体身份核验).

A party's legal identifiers (USCC, LEI, EORI: their check characters are verified where the event is read,
schemas.identifiers) count only from a verifier the party registry trusts (role `identity_verifier`). Per party the
latest finding by event time wins; a verification past its `valid_until` at the record's time (the latest event time,
so the record stays a pure fold) is `expired`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Iterable

from schemas.events import IdentityEvent
from schemas.record import PartyVerification, Rejected, ShipmentRecord
from streams.authority import Authority
from streams.sharing import relations


def verifications(
    record: ShipmentRecord, events: Iterable[IdentityEvent], authority: Authority, now: datetime | None
) -> tuple[list[PartyVerification], list[Rejected]]:
    """Each party's verification state, and the findings refused because their source is no trusted verifier."""
    rejected: list[Rejected] = []
    latest: dict[str, IdentityEvent] = {}
    for event in events:
        if not authority.has_role(event.source, "identity_verifier"):
            reason = f"{event.source} is not a verifier the registry trusts; it may not verify {event.payload.party_id}"
            rejected.append(Rejected(event=event.key, reason=reason, kind="not_entitled"))
            continue
        held = latest.get(event.payload.party_id)
        if held is None or (event.occurred_at, event.key) > (held.occurred_at, held.key):
            latest[event.payload.party_id] = event
    out = []
    for party, roles in sorted(relations(record).items()):  # from the validated record and events: built as they are
        finding = latest.get(party)
        if finding is None:
            out.append(PartyVerification.built(party_id=party, relations=sorted(roles), state="unverified"))
            continue
        payload = finding.payload
        state = payload.outcome if now is None or payload.valid_until > now else "expired"
        out.append(
            PartyVerification.built(party_id=party, relations=sorted(roles), state=state, finding=payload, set_by=finding.key)
        )
    return out, sorted(rejected, key=lambda r: r.event)


def verified(record_verifications: list[PartyVerification], party: str | None) -> bool:
    return any(v.party_id == party and v.state == "verified" for v in record_verifications)
