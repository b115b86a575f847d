"""Status messages to projection rows, per consumed batch: pure, so replay and tests use the same code.

A status message is the hub's own output, so anything unexpected in one is a hub bug, or a message someone else
put on the topic: it is set aside with the reason (runtime.stored_offsets), never guessed at, and the
batch's other messages go on.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterable

import orjson
from pydantic import ValidationError

from runtime.api import Record
from runtime.stored_offsets import SetAside
from schemas.events import HUB_EVENT
from streams.codec import describe


class MalformedStatus(ValueError):
    """A `hub.shipment.status` message the hub could not have written: set aside, never guessed at."""


@dataclass(frozen=True)
class ShipmentRow:
    shipment_id: str
    status: str
    shipper: str | None
    mto: str | None
    version: int
    updated_at: datetime | None
    record: str


@dataclass(frozen=True)
class EventRow:
    shipment_id: str
    event_key: str
    fingerprint: str
    event_type: str
    occurred_at: datetime
    recorded_at: datetime
    record_version: int
    event: str


@dataclass(frozen=True)
class Batch:
    """What one consumed batch writes: the newest version per shipment, each event copy once, and the messages set
    aside (malformed)."""

    shipments: list[ShipmentRow]
    events: list[EventRow]
    set_aside: list[SetAside]


def parse_status(key: bytes | None, value: bytes | None) -> tuple[ShipmentRow, list[EventRow]]:
    """One status message as its shipment row and event rows. Raises MalformedStatus on anything unexpected."""
    if value is None:
        raise MalformedStatus("tombstone (no value): the hub never deletes a shipment's status")
    try:
        document = orjson.loads(value)
    except orjson.JSONDecodeError as error:
        raise MalformedStatus(f"not JSON: {error}") from None
    record = _field(document, "record", dict)
    shipment_id = _field(record, "shipment_id", str)
    if key != shipment_id.encode():
        raise MalformedStatus(f"key {key!r} is not the record's shipment_id {shipment_id!r}")
    version = _field(record, "version", int)
    shipper = _field(record, "shipper", dict, optional=True)
    row = ShipmentRow(
        shipment_id=shipment_id,
        status=_field(record, "status", str),
        shipper=_field(shipper, "party_id", str) if shipper is not None else None,
        mto=_field(record, "responsible_operator", str, optional=True),
        version=version,
        updated_at=_timestamp(_field(record, "updated_at", str, optional=True)),
        record=orjson.dumps(record).decode(),
    )
    events = []
    for item in _field(document, "applied", list):
        fingerprint = _field(item, "fingerprint", str)
        raw_event = _field(item, "event", dict)
        try:
            event = HUB_EVENT.validate_python(raw_event)
        except ValidationError as error:
            raise MalformedStatus(f"applied event {fingerprint}: {describe(error)}") from None
        if event.shipment_id != shipment_id:
            raise MalformedStatus(f"applied event {event.key} belongs to {event.shipment_id!r}, not {shipment_id!r}")
        events.append(
            EventRow(
                shipment_id=shipment_id,
                event_key=event.key,
                fingerprint=fingerprint,
                event_type=event.event_type,
                occurred_at=event.occurred_at,
                recorded_at=event.recorded_at,
                record_version=version,
                event=orjson.dumps(raw_event).decode(),
            )
        )
    return row, events


def collect(messages: Iterable[Record]) -> Batch:
    """Fold consumed messages into one batch's writes.

    Several versions of one shipment collapse to the highest (one upsert per row per statement); an event
    copy seen twice keeps its first version; a malformed message is set aside. Rows are sorted by key so
    concurrent writers lock in one order.
    """
    latest: dict[str, ShipmentRow] = {}
    events: dict[tuple[str, str, str], EventRow] = {}
    set_aside: list[SetAside] = []
    for message in messages:
        try:
            row, applied = parse_status(message.key, message.value)
        except MalformedStatus as error:
            set_aside.append(SetAside(message, f"malformed status message: {error}"))
            continue
        held = latest.get(row.shipment_id)
        if held is None or row.version >= held.version:
            latest[row.shipment_id] = row
        for event in applied:
            slot = (event.shipment_id, event.event_key, event.fingerprint)
            if slot not in events or event.record_version < events[slot].record_version:
                events[slot] = event
    return Batch(
        shipments=[latest[shipment_id] for shipment_id in sorted(latest)],
        events=[events[slot] for slot in sorted(events)],
        set_aside=set_aside,
    )


def _field(document: Any, name: str, kind: type, optional: bool = False) -> Any:
    if not isinstance(document, dict):
        raise MalformedStatus(f"expected an object holding {name!r}, got {type(document).__name__}")
    value = document.get(name)
    if value is None and optional:
        return None
    # bool is an int to Python, never a version to the hub.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise MalformedStatus(f"{name!r} should be {kind.__name__}, got {value!r:.80}")
    return value


def _timestamp(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise MalformedStatus(f"{value!r} is not an ISO 8601 timestamp") from None
    if parsed.tzinfo is None:
        raise MalformedStatus(f"timestamp {value!r} has no timezone")
    return parsed
