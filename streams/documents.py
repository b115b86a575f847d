"""The lifecycle of transport documents, like a DCSA eBL: issued once, transferred along a chain of holders,
surrendered for delivery exactly once. Pure: decided from event time and key, never from arrival order."""

from __future__ import annotations

from collections import defaultdict
from typing import Iterable

from schemas.events import WaybillEvent
from schemas.record import DocumentRecord, Endorsement, Rejected


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
        for event in sorted(group, key=lambda e: (e.occurred_at, e.key)):
            action = event.payload.action
            name = f"{kind} {number}"
            if action == "issued":
                if document is None:
                    issued_by = event
                    document = DocumentRecord(
                        kind=event.payload.document_kind,
                        number=event.payload.document_number,
                        issuer=event.payload.issuer,
                        containers=event.payload.containers,
                        set_by=event.key,
                        holder=event.payload.holder or default_holder,
                    )
                else:
                    rejected.append(
                        Rejected(event=event.key, reason=f"{name} was already issued by {document.set_by}; a document is issued once")
                    )
            elif document is None:
                rejected.append(Rejected(event=event.key, reason=f"{name} has not been issued, so it cannot be {action}"))
            elif document.status == "surrendered":
                rejected.append(
                    Rejected(
                        event=event.key,
                        reason=f"{name} was surrendered by {document.surrendered_by}; after surrender it cannot be {action}",
                    )
                )
            elif action == "transferred":
                assert event.payload.holder is not None  # the payload validator requires it for a transfer
                link = Endorsement(holder=event.payload.holder, at=event.occurred_at, set_by=event.key)
                document = document.model_copy(
                    update={"holder": event.payload.holder, "endorsements": [*document.endorsements, link]}
                )
            elif not _by_its_holder(event, document):
                reason = f"only its holder {document.holder} surrenders {name} (or its issuer records it), not {event.source}"
                rejected.append(Rejected(event=event.key, reason=reason, kind="not_entitled"))
            else:
                document = document.model_copy(update={"status": "surrendered", "surrendered_by": event.key})
        if document is not None and issued_by is not None:
            issued.append(((issued_by.occurred_at, issued_by.key), document))
    return [document for _, document in sorted(issued, key=lambda pair: pair[0])], sorted(
        rejected, key=lambda r: r.event
    )


def _by_its_holder(event: WaybillEvent, document: DocumentRecord) -> bool:
    """A surrender releases the cargo: its current holder makes it, or the issuer records one made to it (naming, if
    it names one, that holder). Nobody else: authority from the chain of holders and the issuer, never the sender."""
    if event.source == document.holder:
        return True
    return event.source == document.issuer and event.payload.holder in (None, document.holder)
