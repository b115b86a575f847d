"""Customs declarations and inspections at each port or border crossing of a journey (报关报检状态).

Who may say a status comes from the party registry, never from the event: the customs authority (registry role
`customs`) says every status; a declarant registered as a `customs_broker` may only lodge its own declaration.
`released` and `rejected` close a declaration: a later status on it is a conflict, so what customs released stays
released whatever the order of arrival. `held` and `under_inspection` open a hold (an exception that blocks the cargo
release) that the next status clears. A declaration's particulars (direction, office, location, leg, declarant) are
the customs authority's, from its first status on it (before any, the first lodging's): an event naming others is a
conflict, else a broker "lodging" a backdated copy could turn a held import into an export and a released export into
an import, and the release would go out uninspected. A lodging comes before customs speaks: one after it is a
conflict, else the declarant would clear customs' hold (and set the status back) by lodging again. Pure: decided from
event time and key.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Iterable

from schemas.events import CustomsEvent
from schemas.record import CustomsDeclaration, CustomsHold, CustomsStep, Rejected
from streams.authority import Authority

CLOSING = ("released", "rejected")
HOLDING = ("held", "under_inspection")


def not_entitled(event: CustomsEvent, authority: Authority) -> str | None:
    """Why `event`'s source may not say this status, if it may not."""
    source, payload = event.source, event.payload
    if authority.has_role(source, "customs"):
        return None
    if authority.has_role(source, "customs_broker") and source == payload.declarant:
        if payload.status == "lodged":
            return None
        return f"only the customs authority says a declaration is {payload.status}; its declarant {source} lodges it"
    return f"{source} is neither a customs authority nor the declarant {payload.declarant} registered as a customs broker"


def customs(events: Iterable[CustomsEvent], authority: Authority) -> tuple[list[CustomsDeclaration], list[Rejected]]:
    """Every declaration's state and history, in the order they were first reported, and the refused events."""
    rejected: list[Rejected] = []
    groups: dict[str, list[CustomsEvent]] = defaultdict(list)
    for event in events:
        refusal = not_entitled(event, authority)
        if refusal is not None:
            rejected.append(Rejected(event=event.key, reason=refusal, kind="not_entitled"))
        else:
            groups[event.payload.declaration_number].append(event)
    declarations = []
    for number, group in groups.items():
        ordered = sorted(group, key=lambda e: (e.occurred_at, e.key))
        said = next((e for e in ordered if authority.has_role(e.source, "customs")), None)
        first = said or ordered[0]  # always taken: nothing before it closes the declaration or differs from it
        taken: list[CustomsEvent] = []
        for event in ordered:
            closed = next((e for e in taken if e.payload.status in CLOSING), None)
            if closed is not None:
                reason = f"declaration {number} was {closed.payload.status} by {closed.key}; it takes no later status"
                rejected.append(Rejected(event=event.key, reason=reason))
            elif _particulars(event) != _particulars(first):
                reason = f"declaration {number} is {_described(first)} by {first.key}; {event.key} names another"
                rejected.append(Rejected(event=event.key, reason=reason))
            elif said is not None and not authority.has_role(event.source, "customs") and (
                (event.occurred_at, event.key) > (said.occurred_at, said.key)
            ):
                reason = f"customs spoke of declaration {number} in {said.key}; its declarant lodges it only before"
                rejected.append(Rejected(event=event.key, reason=reason))
            else:
                taken.append(event)
        declarations.append(_declaration(taken))
    declarations.sort(key=lambda d: (d.history[0].at, d.history[0].set_by))
    return declarations, sorted(rejected, key=lambda r: r.event)


def _particulars(event: CustomsEvent) -> tuple[object, ...]:
    """What a declaration is, as opposed to its status: the same in every event taken on it."""
    p = event.payload
    return p.direction, p.office, p.location, p.leg, p.declarant


def _described(event: CustomsEvent) -> str:
    p = event.payload
    leg = f", leg {p.leg}" if p.leg is not None else ""
    return f"{p.direction}, at {p.location} (office {p.office}{leg}, declarant {p.declarant})"


def _declaration(taken: list[CustomsEvent]) -> CustomsDeclaration:
    first, last = taken[0].payload, taken[-1]
    holds: list[CustomsHold] = []
    for event in taken:
        open_hold = holds[-1] if holds and holds[-1].cleared_by is None else None
        if event.payload.status in HOLDING and open_hold is None:
            holds.append(
                CustomsHold(
                    kind=event.payload.status,  # type: ignore[arg-type]  # narrowed by HOLDING
                    opened_at=event.occurred_at,
                    opened_by=event.key,
                    remarks=event.payload.remarks,
                )
            )
        elif event.payload.status not in HOLDING and open_hold is not None:
            holds[-1] = open_hold.model_copy(update={"cleared_at": event.occurred_at, "cleared_by": event.key})
    return CustomsDeclaration(
        declaration_number=first.declaration_number,
        direction=first.direction,
        office=first.office,
        location=first.location,
        leg=first.leg,
        declarant=first.declarant,
        status=last.payload.status,
        status_set_by=last.key,
        history=[
            CustomsStep(
                status=e.payload.status, raw_code=e.payload.raw_code, code_list=e.payload.code_list, at=e.occurred_at, set_by=e.key
            )
            for e in taken
        ],
        holds=holds,
    )
