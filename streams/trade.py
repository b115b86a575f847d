"""The trade parts of a shipment record (issue 16): customs, the letter of credit, each party's verification and the
electronic release, derived from the live events after the rest of the record, in that order (the release reads the
others). One call from streams.merge.project; every rule is in its own pure module."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Sequence, cast

from schemas.events import CommercialInvoiceEvent, CreditTermsEvent, CustomsEvent, HubEvent, IdentityEvent, PresentationEvent
from schemas.record import PartyVerification, ReleaseRecord, ShipmentRecord
from streams.authority import Authority
from streams.credit import letter_of_credit
from streams.customs import customs
from streams.identity import Findings, findings, verifications
from streams.sharing import relations
from streams.release import release

_TRADE = (CustomsEvent, CreditTermsEvent, CommercialInvoiceEvent, PresentationEvent, IdentityEvent)


def with_trade_parts(
    record: ShipmentRecord,
    live: Sequence[HubEvent],
    authority: Authority,
    issued: ReleaseRecord | None = None,
    previous: ShipmentRecord | None = None,
) -> ShipmentRecord:
    """`record` with its trade parts, and the trade events they refuse added to its refusals; `issued` is the release
    the hub has issued (the state's own fact), which stands. `previous`, an earlier record of the same shipment and
    authority, lends its verifications when they cannot differ (`_verifications`)."""
    occurred = {e.key: e.occurred_at for e in live}
    of: dict[type[HubEvent], list[HubEvent]] = {kind: [] for kind in _TRADE}
    for event in live:  # one pass over the live events, not one per kind
        if isinstance(event, _TRADE):
            of[next(kind for kind in _TRADE if isinstance(event, kind))].append(event)
    declarations, refused = customs(cast(list[CustomsEvent], of[CustomsEvent]), authority)
    credit, credit_refused = letter_of_credit(
        record,
        cast(list[CreditTermsEvent], of[CreditTermsEvent]),
        cast(list[CommercialInvoiceEvent], of[CommercialInvoiceEvent]),
        cast(list[PresentationEvent], of[PresentationEvent]),
        authority,
        occurred,
    )
    record = _with(record, customs=declarations, letter_of_credit=credit)
    now = max(occurred.values(), default=None)
    found, identity_refused = findings(cast(list[IdentityEvent], of[IdentityEvent]), authority)
    record = _with(record, verifications=_verifications(record, found, now, previous))
    record = _with(record, release=release(record, authority.operator(record.shipment_id), occurred, issued))
    rejected = refused + credit_refused + identity_refused
    if not rejected:
        return record
    return _with(record, rejected=sorted(record.rejected + rejected, key=lambda r: r.event))


def _verifications(
    record: ShipmentRecord, found: Findings, now: datetime | None, previous: ShipmentRecord | None
) -> list[PartyVerification]:
    """`verifications(record, found, now)`. With no finding live, each party is unverified whatever the time, so
    `previous`'s verifications are the same list when they too hold no finding and name the same parties with
    the same relations."""
    if found or previous is None:
        return verifications(record, found, now)
    parties = [(party, sorted(roles)) for party, roles in sorted(relations(record).items())]
    kept = previous.verifications
    if len(kept) == len(parties) and all(
        v.finding is None and v.state == "unverified" and v.set_by is None and (v.party_id, v.relations) == party
        for v, party in zip(kept, parties)
    ):
        return kept
    return verifications(record, found, now)


def _with(record: ShipmentRecord, **parts: Any) -> ShipmentRecord:
    """`record` with `parts` replaced, built as it is (every part is hub-built from validated data), in the field
    order of `record` (pydantic's `model_copy` costs several times as much on the hot path)."""
    return ShipmentRecord.built(**{**record.__dict__, **parts})
