"""Where a parsed carrier event goes next: straight to its shipment, or to reference resolution.

The connector stage (raw topics), the HTTP gateway and `mmhub ingest` all route through `route`, so an event is
treated the same whichever path it took. Pure: it returns messages, the caller sends them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from schemas.events import HubEvent
from schemas.rejection import Rejection
from streams.codec import encode_event
from streams.horizon import Horizon
from streams.references import request_messages


@dataclass(frozen=True)
class Outbound:
    """One message to send: to `hub.events` (keyed by shipment id) or `hub.references` (keyed by reference)."""

    stream: Literal["events", "references"]
    key: bytes
    value: bytes


def route(
    event: HubEvent, sender: str, received_at: datetime, horizon: Horizon, origin: str | None = None
) -> list[Outbound] | Rejection:
    """The messages that carry `event` on; a Rejection when `sender` (who signed it) may not say it, or when it is
    dated too far past `received_at`.

    A carrier speaks only for itself: an event naming another source is refused, never rewritten.
    """
    if event.source != sender:
        return Rejection(
            "wrong_source", f"event {event.key} names source {event.source!r} but was signed by {sender!r}"
        )
    late = horizon.refusal(event, received_at)
    if late is not None:
        return late
    if event.shipment_id is not None:
        return [Outbound("events", event.shipment_id.encode(), encode_event(event))]
    return [Outbound("references", m.key, m.value) for m in request_messages(event, origin)]
