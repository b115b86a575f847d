"""The lifecycle of transport documents, like a DCSA eBL: issued once, transferred along a chain of holders,
surrendered for delivery exactly once. Pure: decided from event time and key, never from arrival order.

Amendment (DCSA eBL 3.0): a document to be amended is surrendered for amendment (a negotiable bill goes back to its
issuer) or voided, and then issued again under the same number; that issuance is the amended document, in force from
then on. An issuance while the document is in force is a second issuance and is refused.

Who may say what: the issuance, a surrender for amendment and a void are the issuer's word, which the merge checks
against the registry (only the owning MTO says them of the through document: `not_entitled` otherwise). A transfer
(endorsement) is the issuer's or the current holder's, and a surrender for delivery the current holder's (or the
issuer's record of one made by that holder), checked here against the chain of holders the events held so far make.
That chain can still change (a transfer dated earlier may arrive later), so what this module refuses is a `conflict`:
listed in the record and applied nowhere, but never dead-lettered, whose dead letter would depend on arrival order.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Iterable

from schemas.events import WaybillEvent
from schemas.record import Amendment, DocumentRecord, Endorsement, Rejected

# Where an issuance is the amended document: the original was surrendered for amendment or voided.
_AMENDABLE = ("surrendered_for_amendment", "voided")


def documents(events: Iterable[WaybillEvent], default_holder: str | None) -> tuple[list[DocumentRecord], list[Rejected]]:
    """Every document's current state, in the order they were issued, and the events refused on the way."""
    groups: dict[tuple[str, str], list[WaybillEvent]] = defaultdict(list)
    for event in events:
        groups[(event.payload.document_kind, event.payload.document_number)].append(event)

    issued: list[tuple[tuple[object, ...], DocumentRecord]] = []
    rejected: list[Rejected] = []
    for (kind, number), group in groups.items():
        document: DocumentRecord | None = None
        issued_by: WaybillEvent | None = None
        # who gave up its holding (endorsed the document on, or surrendered it): the document as it was then, how,
        # and to whom. A holder endorses or surrenders once per holding, whatever it dates its words, so a different
        # act from a holding already given up (an endorsement to someone else, a surrender after an endorsement, an
        # endorsement after a surrender: a backdated one would otherwise re-route the chain past the real endorsee)
        # is a double endorsement: the document goes back to that holding and takes nothing more. The same act sent
        # again (a retransmission under a new id) is only refused, as before.
        given_up: dict[str, tuple[DocumentRecord, str, str | None]] = {}
        disputed: str | None = None
        for event in sorted(group, key=lambda e: (e.occurred_at, e.key)):
            if document is None:
                if event.payload.action == "issued":
                    issued_by = event
                    document = DocumentRecord.built(  # every field, in order: built's fastest path
                        kind=event.payload.document_kind,
                        number=event.payload.document_number,
                        issuer=event.payload.issuer,
                        containers=event.payload.containers,
                        set_by=event.key,
                        status="issued",
                        holder=event.payload.holder or default_holder,
                        endorsements=[],
                        surrendered_by=None,
                        amendments=[],
                    )
                else:
                    reason = f"{kind} {number} has not been issued, so it cannot be {event.payload.action}"
                    rejected.append(Rejected(event=event.key, reason=reason))
                continue
            if disputed is not None:
                rejected.append(Rejected(event=event.key, reason=disputed, kind="conflict"))
                continue
            source, action = event.source, event.payload.action
            gave = given_up.get(source) if source != document.issuer else None
            to = event.payload.holder if action == "transferred" else None
            if gave is not None and action in ("transferred", "surrendered") and (action, to) != gave[1:]:
                document = gave[0]
                disputed = f"{kind} {number} is disputed: {source} gave it up and then endorsed or surrendered it again ({event.key})"
                rejected.append(Rejected(event=event.key, reason=disputed, kind="conflict"))
                continue
            before = document
            document, refusal = _step(document, event)
            if refusal is not None:
                rejected.append(refusal)
                continue
            if before.holder is not None and (action == "surrendered" or action == "transferred" and source == before.holder):
                given_up[before.holder] = before, action, to
            if document.holder is not None and document.status != "surrendered":
                given_up.pop(document.holder, None)  # it holds again: endorsed back to it, or named by a re-issue
        if document is not None and issued_by is not None:
            issued.append(((issued_by.occurred_at, issued_by.key), document))
    return [document for _, document in sorted(issued, key=lambda pair: pair[0])], sorted(
        rejected, key=lambda r: r.event
    )


def _step(document: DocumentRecord, event: WaybillEvent) -> tuple[DocumentRecord, Rejected | None]:
    """`document` after `event`, or unchanged and the reason it refuses `event`."""
    payload = event.payload
    action = payload.action
    name = f"{document.kind} {document.number}"

    def refused(reason: str) -> tuple[DocumentRecord, Rejected]:
        # Always a conflict: each refusal here rests on the document's chain as the events held so far make it (its
        # status, its holder), and an event still on its way (a transfer dated earlier) may change that chain. An
        # entitlement refusal (`not_entitled`, dead-lettered) rests on the registry alone (who is the MTO: see
        # streams.merge), or the dead letter would depend on arrival order. The refused event is applied nowhere.
        return document, Rejected(event=event.key, reason=reason, kind="conflict")

    def amended(step: str, **update: object) -> DocumentRecord:
        record = Amendment(action=step, at=event.occurred_at, set_by=event.key)  # type: ignore[arg-type]
        return document.model_copy(update={**update, "amendments": [*document.amendments, record]})

    if document.status == "surrendered":
        return refused(f"{name} was surrendered by {document.surrendered_by}; after surrender it cannot be {action}")
    if action == "issued":
        if document.status not in _AMENDABLE:
            return refused(
                f"{name} was already issued by {document.set_by}; a document is issued once, and again only as its "
                "amendment, after it was surrendered for amendment or voided"
            )
        # what the amended issuance does not name (a light DCSA notification names no containers, no holder) stays
        containers = payload.containers or document.containers
        holder = payload.holder or document.holder
        return amended("amended", status="issued", containers=containers, holder=holder), None
    if action == "voided":
        if document.status == "voided":
            return refused(f"{name} is already voided")
        return amended("voided", status="voided"), None
    if document.status != "issued":
        return refused(f"{name} is {document.status.replace('_', ' ')}; only a document in force can be {action}")
    if action == "transferred":
        assert payload.holder is not None  # the payload validator requires it for a transfer
        if event.source not in (document.issuer, document.holder):
            return refused(
                f"only the issuer {document.issuer} or the holder {document.holder} transfers {name}, not {event.source}"
            )
        link = Endorsement(holder=payload.holder, at=event.occurred_at, set_by=event.key)
        return document.model_copy(update={"holder": payload.holder, "endorsements": [*document.endorsements, link]}), None
    if action == "surrendered_for_amendment":
        return amended("surrendered_for_amendment", status="surrendered_for_amendment"), None
    if not _by_its_holder(event, document):
        return refused(
            f"only its holder {document.holder} surrenders {name} (or its issuer records it), not {event.source}"
        )
    return document.model_copy(update={"status": "surrendered", "surrendered_by": event.key}), None


def _by_its_holder(event: WaybillEvent, document: DocumentRecord) -> bool:
    """A surrender releases the cargo: its current holder makes it, or the issuer records one made to it (naming, if
    it names one, that holder). Nobody else: authority from the chain of holders and the issuer, never the sender."""
    if event.source == document.holder:
        return True
    return event.source == document.issuer and event.payload.holder in (None, document.holder)
