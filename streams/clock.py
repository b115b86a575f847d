"""The hub's own clock: cargo not delivered 90 days after the agreed date is presumed lost.

The fold cannot read a clock (replays must give the same record), so the clock speaks through an event: the
worker asks `presumed_loss` for shipments past their deadline and publishes the report it returns to
`hub.events` like any carrier's. The report is the same bytes every time, so sending it twice changes nothing.
(1980 UN Multimodal Convention art. 16; not in force, but common in contracts.)
"""

from __future__ import annotations

from datetime import datetime, timedelta

from schemas.events import TrackingEvent, TrackingPayload
from schemas.record import ShipmentRecord
from streams.claims import PRESUMED_LOSS_CODE_LIST

PRESUMED_LOSS_AFTER = timedelta(days=90)
CLOCK_SOURCE = "mmhub.clock"


def deadline(record: ShipmentRecord) -> datetime | None:
    """When the cargo will be presumed lost; None once that can no longer happen (or has been reported)."""
    if record.booking is None or record.booking.requested_delivery is None:
        return None
    if record.status in ("delivered", "cancelled", "rejected"):
        return None
    if any(claim.kind == "presumed_loss" for claim in record.claims):
        return None
    return record.booking.requested_delivery + PRESUMED_LOSS_AFTER


def presumed_loss(record: ShipmentRecord, now: datetime) -> TrackingEvent | None:
    """The presumed-loss report for `record` if its deadline has passed at `now`, else None."""
    due = deadline(record)
    if due is None or now < due:
        return None
    return TrackingEvent(
        event_type="tracking",
        event_id=f"presumed-loss-{record.shipment_id}",
        source=CLOCK_SOURCE,
        shipment_id=record.shipment_id,
        occurred_at=due,
        recorded_at=due,
        classifier="ACT",
        payload=TrackingPayload(
            status="lost",
            raw_code="NOT_DELIVERED_90_DAYS",
            code_list=PRESUMED_LOSS_CODE_LIST,
            remarks=f"not delivered within {PRESUMED_LOSS_AFTER.days} days of the agreed date",
        ),
    )
