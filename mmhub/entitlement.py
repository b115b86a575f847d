"""What the hub will refuse as `not_entitled` in a log of events (a carrier reporting on another carrier's leg, a
stranger booking an MTO's shipment), said before the log is sent or once the hub has projected it.

Before: the log folded offline with the registry's authority through the merge itself (streams.merge.fold), and the
refusals the stream dead-letters (streams.step: the record's `not_entitled` entries), so the rule is the stream's,
never a copy. That judges the journey as the log has it; what the hub already holds of a shipment (a booking sent
earlier) is known only from the projected record, which `mmhub publish --wait` reads with `refused_by_the_hub`.
"""

from __future__ import annotations

from typing import Any, Collection, Iterable, Mapping, Sequence

from schemas.events import HubEvent
from schemas.rejection import Rejection
from streams.authority import Authority
from streams.merge import fold
from streams.references import resolve_offline
from streams.step import NOT_ENTITLED


def refused_lines(checked: Sequence[HubEvent | Rejection], authority: Authority) -> list[tuple[int, Rejection]]:
    """(line number from 1, the refusal) for each line of a decoded log (mmhub.dataset.checked) whose event the hub's
    merge refuses as not entitled when it holds these events (and only these) of their shipments."""
    events = [item for item in checked if not isinstance(item, Rejection)]
    placed, _ = resolve_offline(events, authority)
    refused = {
        refusal.event: refusal.reason
        for record in fold(placed, authority).values()
        for refusal in record.rejected
        if refusal.kind == NOT_ENTITLED
    }
    return [
        (number, Rejection(NOT_ENTITLED, f"{item.key}: {refused[item.key]}"))  # as streams.step dead-letters it
        for number, item in enumerate(checked, start=1)
        if not isinstance(item, Rejection) and item.key in refused
    ]


def refused_by_the_hub(records: Iterable[Mapping[str, Any]], keys: Collection[str]) -> dict[str, str]:
    """Event key -> reason, for each of `keys` that projected `records` (as Postgres holds them) refuse as not
    entitled: the hub's own answer, with everything it holds of those shipments."""
    return {
        refusal["event"]: refusal["reason"]
        for record in records
        for refusal in record.get("rejected", [])
        if refusal["kind"] == NOT_ENTITLED and refusal["event"] in keys
    }
