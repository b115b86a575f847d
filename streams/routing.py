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
from streams.codec import MAX_EVENT_BYTES, encode_event
from streams.horizon import Horizon
from streams.references import request_messages, requested_event_bytes


@dataclass(frozen=True)
class Outbound:
    """One message to send: to `hub.events` (keyed by shipment id) or `hub.references` (keyed by reference)."""

    stream: Literal["events", "references"]
    key: bytes
    value: bytes


def route(
    event: HubEvent, sender: str, received_at: datetime, horizon: Horizon, origin: str | None = None
) -> list[Outbound] | Rejection:
    """The messages that carry `event` on; a Rejection when `sender` (who signed it) may not say it, when it is
    dated too far past `received_at`, or when it is larger than the merge takes.

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
        encoded = encode_event(event)
        if len(encoded) > MAX_EVENT_BYTES:
            return _too_large(event, len(encoded))
        return [Outbound("events", event.shipment_id.encode(), encoded)]
    requests = request_messages(event, origin)
    # once resolved, the event goes to the merge with its shipment id: it must fit with the longest one
    if requests:
        size = requested_event_bytes(requests[0], origin) + SHIPMENT_ID_ROOM
        if size > MAX_EVENT_BYTES:
            return _too_large(event, size)
    return [Outbound("references", m.key, m.value) for m in requests]


SHIPMENT_ID_ROOM = len(b',"shipment_id":""') + 64  # schemas.identifiers.ShipmentId: at most 64 characters


def _too_large(event: HubEvent, size: int) -> Rejection:
    """An event larger than the merge takes (streams.codec.MAX_EVENT_BYTES): a raw payload may be 4 MiB, and one of
    its events sent on as it is would be a message the broker refuses (hub.events keeps the default 1 MiB)."""
    return Rejection("too_large", f"event {event.key} is {size} bytes as the hub writes it; the limit is {MAX_EVENT_BYTES}")
