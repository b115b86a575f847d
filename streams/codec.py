"""Bytes in and out of the hub: canonical events, shipment state and status messages, all as orjson.

Decoding never raises on bad input: it returns a Rejection whose reason tells the sender what to fix, and the
caller dead-letters the original bytes with it.
"""

from __future__ import annotations

from typing import Any, Iterable

import orjson
from pydantic import ValidationError

from schemas.events import HUB_EVENT, HubEvent
from schemas.record import ShipmentRecord
# Rejection and describe live in schemas.rejection; re-exported here for the callers that import them from the codec.
from schemas.rejection import Rejection as Rejection, describe as describe
from streams.copies import Copy
from streams.merge import ShipmentState

MAX_EVENT_BYTES = 256 * 1024


def decode_event(raw: bytes | None) -> HubEvent | Rejection:
    if raw is None or len(raw) == 0:
        return Rejection("empty", "message has no value")
    if len(raw) > MAX_EVENT_BYTES:
        return Rejection("too_large", f"event is {len(raw)} bytes; the limit is {MAX_EVENT_BYTES}")
    try:
        document = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        return Rejection("invalid_json", f"not valid UTF-8 JSON: {error}")
    if not isinstance(document, dict):
        return Rejection("invalid_json", f"an event must be a JSON object, got {type(document).__name__}")
    try:
        return HUB_EVENT.validate_python(document)
    except ValidationError as error:
        return Rejection("invalid_event", describe(error))


def encode_event(event: HubEvent) -> bytes:
    return orjson.dumps(HUB_EVENT.dump_python(event, mode="json"))


def encode_record(record: ShipmentRecord) -> bytes:
    return orjson.dumps(record.model_dump(mode="json"))


def encode_status(record: ShipmentRecord, applied: Iterable[Copy]) -> bytes:
    """A `hub.shipment.status` message: the new record version and the event copies taken in since the last one."""
    document: dict[str, Any] = {
        "record": record.model_dump(mode="json"),
        "applied": [
            {"fingerprint": copy.fingerprint, "event": HUB_EVENT.dump_python(copy.event, mode="json")}
            for copy in applied
        ],
    }
    return orjson.dumps(document)


def encode_state(state: ShipmentState) -> bytes:
    return orjson.dumps(
        {
            "shipment_id": state.shipment_id,
            "seen": sorted(state.seen),
            "copies": [_copy_document(copy) for _, copy in sorted(state.copies.items())],
            "superseded": [
                _copy_document(copy) for _, losers in sorted(state.superseded.items()) for copy in losers
            ],
        }
    )


def _copy_document(copy: Copy) -> dict[str, Any]:
    return {"fingerprint": copy.fingerprint, "event": HUB_EVENT.dump_python(copy.event, mode="json")}


def decode_state(raw: bytes) -> ShipmentState:
    """Inverse of encode_state. Stored state was written by the hub itself: a failure here is a hub bug and raises."""
    document = orjson.loads(raw)
    copies = {}
    for item in document["copies"]:
        event = HUB_EVENT.validate_python(item["event"])
        copies[event.key] = Copy(item["fingerprint"], event)
    superseded: dict[str, tuple[Copy, ...]] = {}
    for item in document["superseded"]:
        event = HUB_EVENT.validate_python(item["event"])
        superseded[event.key] = superseded.get(event.key, ()) + (Copy(item["fingerprint"], event),)  # stored in rank order
    return ShipmentState(document["shipment_id"], copies, frozenset(document["seen"]), superseded)
