"""The trade parts of a shipment record (issue 16): customs, the letter of credit, each party's verification and the
electronic release, derived from the live events after the rest of the record, in that order (the release reads the
others). One call from streams.merge.project; every rule is in its own pure module."""

from __future__ import annotations

from typing import Sequence

from schemas.events import CommercialInvoiceEvent, CreditTermsEvent, CustomsEvent, HubEvent, IdentityEvent, PresentationEvent
from schemas.record import ReleaseRecord, ShipmentRecord
from streams.authority import Authority
from streams.credit import letter_of_credit
from streams.customs import customs
from streams.identity import findings, verifications
from streams.release import release


def with_trade_parts(
    record: ShipmentRecord, live: Sequence[HubEvent], authority: Authority, issued: ReleaseRecord | None = None
) -> ShipmentRecord:
    """`record` with its trade parts, and the trade events they refuse added to its refusals; `issued` is the release
    the hub has issued (the state's own fact), which stands."""
    occurred = {e.key: e.occurred_at for e in live}
    declarations, refused = customs((e for e in live if isinstance(e, CustomsEvent)), authority)
    credit, credit_refused = letter_of_credit(
        record,
        (e for e in live if isinstance(e, CreditTermsEvent)),
        [e for e in live if isinstance(e, CommercialInvoiceEvent)],
        (e for e in live if isinstance(e, PresentationEvent)),
        authority,
        occurred,
    )
    record = record.model_copy(update={"customs": declarations, "letter_of_credit": credit})
    now = max(occurred.values(), default=None)
    found, identity_refused = findings((e for e in live if isinstance(e, IdentityEvent)), authority)
    record = record.model_copy(update={"verifications": verifications(record, found, now)})
    record = record.model_copy(update={"release": release(record, authority.operator(record.shipment_id), occurred, issued)})
    rejected = refused + credit_refused + identity_refused
    if not rejected:
        return record
    return record.model_copy(update={"rejected": sorted(record.rejected + rejected, key=lambda r: r.event)})
