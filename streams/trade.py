"""The trade parts of a shipment record (issue 16): customs, the letter of credit, each party's verification and the
electronic release, derived from the live events after the rest of the record, in that order (the release reads the
others). One call from streams.merge.project; every rule is in its own pure module.

With an earlier record of the same booking and authority and what changed since (`streams.merge.Reusable`), each part
is taken as it was unless one of its inputs changed:

- customs: its own events (and the registry);
- the letter of credit: its own events, the documents (waybill events, with their event times) and the cover;
- the verifications: the identity findings, the parties (the cover's insurer, the credit's bank) and, for a party
  with a finding, whether it has expired at the record's time (the latest actual event time);
- the release, while the hub has not issued it: the transport documents, customs, the freight's settlement status
  and applied payments, the verifications (with the verified-parties option) and the event times of what its
  conditions rest on.

The refusals of a kept part are the earlier record's refusals of its events.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Mapping, Sequence, cast

from schemas.events import (
    CommercialInvoiceEvent,
    CreditTermsEvent,
    CustomsEvent,
    HubEvent,
    IdentityEvent,
    InsuranceEvent,
    PresentationEvent,
    WaybillEvent,
)
from schemas.record import InsuranceRecord, LetterOfCreditRecord, PartyVerification, Rejected, ReleaseRecord, SettlementRecord, ShipmentRecord
from streams.authority import Authority, Operator
from streams.credit import letter_of_credit
from streams.customs import customs
from streams.identity import findings, record_time, verifications
from streams.release import release

if TYPE_CHECKING:  # streams.merge imports this module to project the trade parts
    from streams.merge import Reusable

Kinds = Mapping[type[object], Sequence[HubEvent]]  # the live events of each kind, in their order
_CREDIT = (CreditTermsEvent, CommercialInvoiceEvent, PresentationEvent)


def with_trade_parts(
    fields: Mapping[str, Any],
    live: Sequence[HubEvent],
    kinds: Kinds,
    authority: Authority,
    operator: Operator | None,
    issued: ReleaseRecord | None = None,
    reuse: Reusable | None = None,
) -> ShipmentRecord:
    """The record of `fields` (every field of a ShipmentRecord, in order) with its trade parts, and the trade events
    they refuse added to its refusals; `live` are the live events in event order, `kinds` the same by kind,
    `operator` the shipment's MTO in `authority`; `issued` is the release the hub has issued (the state's own fact),
    which stands. `reuse` names an earlier record and what changed since: the parts whose inputs did not change are
    taken from it (see the module's docstring)."""
    previous = reuse.record if reuse is not None else None
    changed = reuse.kinds if reuse is not None else frozenset()
    times: dict[str, datetime] = {}

    def occurred() -> Mapping[str, datetime]:
        if not times:
            times.update((e.key, e.occurred_at) for e in live)
        return times

    parts: dict[str, Any] = {}

    def staged() -> ShipmentRecord:  # the record with the parts so far, for a part that reads them (and the last)
        return ShipmentRecord.built(**{**fields, **parts})  # the parts keep their places in `fields`

    kept_from: list[type[HubEvent]] = []  # the kinds of event whose refusals are the previous record's
    refused: list[Rejected] = []
    if previous is not None and CustomsEvent not in changed:
        parts["customs"], kept_from = previous.customs, [CustomsEvent]
    else:
        parts["customs"], customs_refused = customs(_of(kinds, CustomsEvent), authority)
        refused += customs_refused
    # the credit reads the documents (waybill events, their dates of issue) and the cover besides its own events
    credit_inputs = (*_CREDIT, WaybillEvent, InsuranceEvent) if previous is not None and previous.letter_of_credit else _CREDIT
    if previous is not None and not any(kind in changed for kind in credit_inputs):
        parts["letter_of_credit"], kept_from = previous.letter_of_credit, [*kept_from, *_CREDIT]
    else:
        parts["letter_of_credit"], credit_refused = letter_of_credit(
            staged(), _of(kinds, CreditTermsEvent), _of(kinds, CommercialInvoiceEvent), _of(kinds, PresentationEvent),
            authority, occurred(),
        )
        refused += credit_refused
    now = record_time(live)
    if previous is not None and IdentityEvent not in changed and _same_parties(previous, parts["letter_of_credit"], fields["insurance"]):
        kept_from.append(IdentityEvent)
        parties = previous.verifications
        # a finding lapsed or came back in force since, or one may be dated past the record's time: made again
        if not _standing_holds(parties, now, _of(kinds, IdentityEvent)):
            parties = verifications(staged(), findings(_of(kinds, IdentityEvent), authority)[0], now)
    else:
        found, identity_refused = findings(_of(kinds, IdentityEvent), authority)
        parties = verifications(staged(), found, now)
        refused += identity_refused
    parts["verifications"] = parties
    strict = operator is not None and operator.require_verified
    if reuse is not None and _release_holds(reuse, fields["settlement"], parts, issued, strict):
        parts["release"] = reuse.record.release
    else:
        parts["release"] = release(staged(), operator, occurred(), issued)
    refused += _refusals_of(previous, kinds, kept_from)
    if refused:
        parts["rejected"] = sorted(fields["rejected"] + refused, key=lambda r: r.event)
    return staged()


def _of(kinds: Kinds, kind: type[Any]) -> list[Any]:
    return cast(list[Any], kinds.get(kind, []))


def _same_parties(previous: ShipmentRecord, credit: LetterOfCreditRecord | None, insurance: InsuranceRecord) -> bool:
    """Whether a record of the same booking as `previous` with the letter of credit `credit` and the `insurance` names
    the same parties in the same relations (streams.sharing.relations): the cover's insurer and the credit's bank are
    all that may differ."""
    def insurer(cover: InsuranceRecord) -> str | None:
        return cover.policy.insurer if cover.policy else None

    def bank(c: LetterOfCreditRecord | None) -> str | None:
        return c.terms.issuing_bank if c else None

    return insurer(previous.insurance) == insurer(insurance) and bank(previous.letter_of_credit) == bank(credit)


def _standing_holds(kept: list[PartyVerification], now: datetime | None, found: Sequence[IdentityEvent]) -> bool:
    """With the same findings `found` live, whether each party's standing at `now` is the one it had
    (streams.identity.standing: a finding lapses at its `valid_until`). Only while every finding is actual, so at or
    before `now`, the latest actual event time, in this version and the one kept: one classed as an estimate may be
    dated past it, and counts once `now` reaches it, so it is made again."""
    if any(event.classifier != "ACT" for event in found):
        return False
    for party in kept:
        if party.finding is not None:
            lapsed = now is not None and party.finding.valid_until <= now
            if party.state != ("expired" if lapsed else party.finding.outcome):
                return False
    return True


def _release_holds(
    reuse: Reusable, settlement: SettlementRecord | None, parts: Mapping[str, Any], issued: ReleaseRecord | None, strict: bool
) -> bool:
    """Whether the release of `reuse.record` is that of a record with `settlement` and the trade `parts`: not yet
    issued by the hub (an issued release carries the conditions that lapsed since), and nothing changed that its
    conditions read (streams.release)."""
    previous = reuse.record
    kept = previous.release
    if issued is not None or kept is None or WaybillEvent in reuse.kinds:
        return False  # a waybill event: the transport documents (and their holders) again
    if parts["customs"] is not previous.customs or strict and parts["verifications"] is not previous.verifications:
        return False
    if _freight(settlement) != _freight(previous.settlement):
        return False
    # the release's time is the latest event time of what its conditions rest on
    return not any(key in reuse.keys for condition in kept.conditions for key in condition.set_by)


def _freight(settlement: SettlementRecord | None) -> tuple[str, list[str]] | None:
    """What the release's freight condition reads of the settlement: its status and the payments applied."""
    if settlement is None:
        return None
    return settlement.status, [p.set_by for p in settlement.payments if p.status == "applied"]


def _refusals_of(previous: ShipmentRecord | None, kinds: Kinds, kept_from: list[type[HubEvent]]) -> list[Rejected]:
    """The previous record's refusals of the live events of `kept_from`'s kinds (only the trade parts refuse them)."""
    if previous is None or not previous.rejected:
        return []
    keys = {event.key for kind in kept_from for event in kinds.get(kind, ())}
    return [r for r in previous.rejected if r.event in keys] if keys else []
