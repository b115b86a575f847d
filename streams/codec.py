"""Bytes in and out of the hub: canonical events, shipment state and status messages, all as orjson.

Decoding never raises on bad input: it returns a Rejection whose reason tells the sender what to fix, and the
caller dead-letters the original bytes with it.
"""

from __future__ import annotations

from typing import Any, Iterable

import orjson
from pydantic import ValidationError

from schemas.events import HUB_EVENT, HubEvent
from schemas.record import ReleaseRecord, ShipmentRecord
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
    """A `hub.shipment.status` message: the new record version and the event copies taken in since the last one
    (plus, under at-least-once only, copies taken in before whose message a crash may have lost: consumers keep the
    first; under exactly-once a copy is carried once, by the version that took it in).
    Assembled from pydantic's own JSON of the record (the bytes `model_dump_json` decodes to text) and each copy's
    kept canonical JSON: no second pass through Python dicts."""
    record_json = record.__pydantic_serializer__.to_json(record)
    return b'{"record":' + record_json + b',"applied":[' + _copies_json(applied) + b"]}"


def encode_state(state: ShipmentState) -> bytes:
    head = orjson.dumps({"shipment_id": state.shipment_id, "seen": sorted(state.seen)})
    copies = _copies_json(copy for _, copy in sorted(state.copies.items()))
    superseded = _copies_json(copy for _, losers in sorted(state.superseded.items()) for copy in losers)
    # the release the hub issued (its own fact) only once there is one: the state of every other shipment keeps its bytes
    issued = b',"release":' + state.release.model_dump_json().encode() if state.release is not None else b""
    return head[:-1] + b',"copies":[' + copies + b'],"superseded":[' + superseded + b"]" + issued + b"}"


def _copies_json(copies: Iterable[Copy]) -> bytes:
    return b",".join(b'{"fingerprint":"' + copy.fingerprint.encode() + b'","event":' + copy.json() + b"}" for copy in copies)


def decode_state(raw: bytes) -> ShipmentState:
    """Inverse of encode_state. Stored state was written by the hub itself: a failure here is a hub bug and raises."""
    document = orjson.loads(raw)
    copies = {}
    for item in document["copies"]:
        copy = _stored_copy(item)
        copies[copy.event.key] = copy
    superseded: dict[str, tuple[Copy, ...]] = {}
    for item in document["superseded"]:
        copy = _stored_copy(item)
        superseded[copy.event.key] = superseded.get(copy.event.key, ()) + (copy,)  # stored in rank order
    issued = document.get("release")
    release = ReleaseRecord.model_validate_json(orjson.dumps(issued)) if issued is not None else None
    return ShipmentState(document["shipment_id"], copies, frozenset(document["seen"]), superseded, release)


def _stored_copy(item: dict[str, Any]) -> Copy:
    return Copy(item["fingerprint"], HUB_EVENT.validate_python(item["event"]), orjson.dumps(item["event"], option=orjson.OPT_SORT_KEYS))
