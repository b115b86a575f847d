"""Bytes in and out of the hub: canonical events, shipment state and status messages, all as orjson.

Decoding never raises on bad input: it returns a Rejection whose reason tells the sender what to fix, and the
caller dead-letters the original bytes with it.
"""

from __future__ import annotations

import typing
from typing import Any, Callable, Iterable

import orjson
from pydantic import BaseModel, PlainSerializer, TypeAdapter, ValidationError, WrapSerializer

from schemas.base import Frozen
from schemas.events import HUB_EVENT, HubEvent
from schemas.record import ReleaseRecord, ShipmentRecord
# Rejection and describe live in schemas.rejection; re-exported here for the callers that import them from the codec.
from schemas.rejection import Rejection as Rejection, describe as describe
from streams.copies import Copy
from streams.merge import MONEY_EVENTS, ShipmentState

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
        return _VALIDATE_EVENT(document)
    except ValidationError as error:
        return Rejection("invalid_event", describe(error))


# HUB_EVENT.validate_python without TypeAdapter's Python wrapper around pydantic-core's call: the same call, with
# the same (default) arguments, once per event the hub takes in.
_VALIDATE_EVENT: Callable[[object], HubEvent] = HUB_EVENT.validator.validate_python


def encode_event(event: HubEvent) -> bytes:
    return orjson.dumps(HUB_EVENT.dump_python(event, mode="json"))


def encode_record(record: ShipmentRecord) -> bytes:
    return orjson.dumps(record.model_dump(mode="json"))


def encode_status(record: ShipmentRecord, applied: Iterable[Copy]) -> bytes:
    """A `hub.shipment.status` message: the new record version and the event copies taken in since the last one
    (plus, under at-least-once only, copies taken in before whose message a crash may have lost: consumers keep the
    first; under exactly-once a copy is carried once, by the version that took it in).
    Assembled from the record's JSON (`record_json`: pydantic's bytes, reusing those of the parts it shares with the
    version before) and each copy's kept canonical JSON, joined once: no second pass through Python dicts."""
    pieces = [b'{"record":']
    _write_record(record, pieces)
    pieces.append(b',"applied":[')
    _write_copies(applied, pieces)
    pieces.append(b"]}")
    return b"".join(pieces)


def record_json(record: Frozen) -> bytes:
    """Exactly pydantic's JSON of `record` (`record.__pydantic_serializer__.to_json(record)`), written once per
    version: the record's own fields here, in the order pydantic writes them (its `__dict__`), and each of its parts
    that is a model, alone or in a list, by pydantic once and then kept on the part (Frozen's slot). A new version
    holds most parts of the one before as the very same objects (streams.projection.advance: the legs no copy
    touched, the money, the claims, the custody, the parties...), so only what changed is serialised again. The
    record itself keeps nothing: the next version is another object. A field or a model this does not know how
    pydantic writes (`_plan`) falls back to pydantic for the whole record."""
    pieces: list[bytes] = []
    _write_record(record, pieces)
    return b"".join(pieces)


def _write_record(record: Frozen, out: list[bytes]) -> None:
    """Append `record_json(record)` to `out` in pieces, for the caller to join once."""
    plan = _PLANS[type(record)] if type(record) in _PLANS else _plan(type(record))
    values = record.__dict__
    if plan is None or len(values) != len(plan) or not values:
        out.append(record.__pydantic_serializer__.to_json(record))
        return
    start = len(out)
    add = out.append
    try:
        for name, value in values.items():
            key, left_out, models = plan[name]
            if left_out is not None and left_out(value):
                continue
            add(key)
            if value is None:
                add(b"null")
            elif type(value) in models:
                add(_part_json(value))
            else:
                add(_value_json(value, models))
    except (KeyError, ValueError, _Unplanned, orjson.JSONEncodeError):
        del out[start:]
        out.append(record.__pydantic_serializer__.to_json(record))  # pydantic's own bytes, warnings or error
        return
    if len(out) > start:
        out[start] = b"{" + out[start][1:]  # each key is written after a comma: the first one's becomes the brace
    else:
        add(b"{")
    add(b"}")


def _part_json(part: Frozen) -> bytes:
    """pydantic's JSON of `part`, made once and kept on it."""
    try:
        kept = part._json
    except AttributeError:  # validated or copied, not built (Frozen.built sets the slot to None)
        kept = None
    if kept is None:
        kept = part.__pydantic_serializer__.to_json(part)
        _keep(part, kept)
    return kept


class _Unplanned(Exception):
    """A value of a type its field does not declare: pydantic's own rules (a warning, inference) apply."""


def _value_json(value: Any, models: frozenset[type]) -> bytes:
    """pydantic's JSON of a field's value, the models it holds (`models`: those the field's type names) kept."""
    kind = type(value)
    if kind in models:
        return _part_json(value)
    if kind is str:
        return orjson.dumps(value)  # escapes as pydantic does, every code point (tests/unit/streams/test_status_encoding.py)
    if kind is list:
        if not value:
            return b"[]"
        if models.issuperset(map(type, value)):
            return b"[%b]" % b",".join(map(_part_json, value))
        return b"[%b]" % b",".join([_value_json(item, models) for item in value])
    if value is None:
        return b"null"
    if kind is bool:
        return b"true" if value else b"false"
    if kind is int:
        return str(value).encode()  # as pydantic writes any int (a ValueError past Python's digit limit: pydantic's)
    if isinstance(value, (BaseModel, dict, tuple, set, frozenset)):
        raise _Unplanned(kind)  # a model its field does not declare (pydantic writes the declared type), containers
    return _ANY.to_json(value)  # Decimal, times, enums: the same bytes as the field's own serializer


_ANY = TypeAdapter(Any).serializer  # pydantic's serializer of a value by its own type
_keep: Callable[[Frozen, bytes], None] = Frozen.__dict__["_json"].__set__  # past the frozen model's __setattr__
_Plan = dict[str, tuple[bytes, Callable[[Any], bool] | None, frozenset[type]]]
_PLANS: dict[type, _Plan | None] = {}
_PLAIN_CONFIG = {"strict", "frozen", "extra", "use_enum_values"}  # settings that do not change how pydantic writes JSON


def _plan(model: type[Frozen]) -> _Plan | None:
    """Per field of `model`: its key as pydantic writes it (after a comma), its `exclude_if`, and the model classes
    its type names (whose instances keep their JSON). None when pydantic would write the model in a way
    `record_json` does not: serializers, computed fields, aliases, exclusions, serialisation settings."""
    decorators = model.__pydantic_decorators__
    plain = not (
        decorators.field_serializers
        or decorators.model_serializers
        or model.__pydantic_computed_fields__
        or model.model_config.keys() - _PLAIN_CONFIG
    )
    plan: _Plan = {}
    for name, info in model.model_fields.items():
        found = _types_in(info.annotation) | {type(metadata) for metadata in info.metadata}
        plain &= not (info.alias or info.serialization_alias or info.exclude or found & {PlainSerializer, WrapSerializer})
        models = frozenset(kind for kind in found if issubclass(kind, Frozen))
        plan[name] = (b"," + orjson.dumps(name) + b":", info.exclude_if, models)
    _PLANS[model] = plan if plain else None
    return _PLANS[model]


def _types_in(annotation: object) -> set[type]:
    """Every class an annotation names, at any depth, and the class of every Annotated metadata."""
    found: set[type] = {annotation} if isinstance(annotation, type) else set()
    for metadata in getattr(annotation, "__metadata__", ()):
        found.add(type(metadata))
    for argument in typing.get_args(annotation):
        found |= _types_in(argument)
    return found


# --- a shipment's state in its store -----------------------------------------------------------------------------
#
# A shipment's state is stored under the shipment's key either whole (`encode_state`: while it is small) or as a head
# there and one entry per event under `entry_key` (once it has passed streams.step.SPLIT_STATE_BYTES, for good): the
# head holds the shipment id, the fingerprints of every copy seen, the events' keys and the release the hub issued;
# an entry holds an event's winning copy and the money's copies it superseded. A split shipment's version writes its
# head and the entries of the events whose copies it changed, not the whole state again: what it writes grows with
# the events only by their fingerprints and keys in the head (about 72 bytes an event against about 590 whole), and
# no single stored value holds every event (a message is limited to MAX_OUTPUT_BYTES; the state whole passed it at
# about 1,700 tracking reports, bench.long_shipment). `decode_stored` reads either.

ENTRY_SEPARATOR = b"\x00"  # never in a shipment id (schemas.identifiers.ShipmentId), so no entry is another's head


def entry_key(shipment_key: bytes, event_key: str) -> bytes:
    """The store key of one event's entry in the shipment stored under `shipment_key`."""
    return shipment_key + ENTRY_SEPARATOR + event_key.encode()


def encode_head(state: ShipmentState) -> bytes:
    """The state's head: its id, the fingerprints seen, the keys of its entries and the release the hub issued."""
    keys = sorted(state.copies.keys() | state.superseded.keys())
    head = orjson.dumps({"shipment_id": state.shipment_id, "seen": sorted(state.seen), "keys": keys})
    if state.release is None:
        return head
    return b"".join((head[:-1], b',"release":', _part_json(state.release), b"}"))


def encode_entry(state: ShipmentState, event_key: str) -> bytes:
    """One event's entry: its winning copy (null if none) and the copies of it that lost (the money's), by rank."""
    pieces = [b'{"copy":']
    winner = state.copies.get(event_key)
    if winner is None:
        pieces.append(b"null")
    else:
        _write_copies((winner,), pieces)
    pieces.append(b',"superseded":[')
    _write_copies(state.superseded.get(event_key, ()), pieces)
    pieces.append(b"]}")
    return b"".join(pieces)


def is_whole(raw: bytes) -> bool:
    """Whether stored bytes hold a state whole (`encode_state`) rather than a head (`encode_head`): both begin with
    the shipment id and the fingerprints seen (hex digits), and the next key tells them apart."""
    end = raw.index(b"]", raw.index(b'"seen":['))
    return raw.startswith(b',"copies":', end + 1)


def decode_stored(raw: bytes, entry: Callable[[str], bytes | None]) -> ShipmentState:
    """The state stored as `raw` under a shipment's key: a head, its entries read with `entry` (an event key to the
    bytes of its entry), or a state stored whole. Stored state was written by the hub itself: a missing entry or a
    failure here is a hub bug and raises."""
    if is_whole(raw):
        return decode_state(raw)
    document = orjson.loads(raw)
    copies: dict[str, Copy] = {}
    superseded: dict[str, tuple[Copy, ...]] = {}
    for key in document["keys"]:
        stored = entry(key)
        if stored is None:
            raise LookupError(f"shipment {document['shipment_id']}: the entry of event {key} is missing from its store")
        item = orjson.loads(stored)
        if item["copy"] is not None:
            copies[key] = _stored_copy(item["copy"])
        if item["superseded"]:
            superseded[key] = tuple(_stored_copy(loser) for loser in item["superseded"])
    return ShipmentState(document["shipment_id"], copies, frozenset(document["seen"]), superseded, _release(document))


def read_state(get: Callable[[bytes], bytes | None], shipment_id: str) -> ShipmentState | None:
    """The state of `shipment_id` from a store's `get` (None: the store holds none)."""
    key = shipment_id.encode()
    raw = get(key)
    if raw is None:
        return None
    return decode_stored(raw, lambda event_key: get(entry_key(key, event_key)))


def encode_state(state: ShipmentState) -> bytes:
    """The state whole, in one value: the store's layout before 2026-12-05 (still read by `decode_stored`), and the
    form tools and tests compare states in."""
    head = orjson.dumps({"shipment_id": state.shipment_id, "seen": sorted(state.seen)})
    pieces = [head[:-1], b',"copies":[']
    _write_copies((copy for _, copy in sorted(state.copies.items())), pieces)
    pieces.append(b'],"superseded":[')
    _write_copies((copy for _, losers in sorted(state.superseded.items()) for copy in losers), pieces)
    pieces.append(b"]")
    if state.release is not None:
        # the release the hub issued (its own fact) only once there is one: the state of every other shipment keeps its bytes
        pieces += (b',"release":', _part_json(state.release))
    pieces.append(b"}")
    return b"".join(pieces)


def _write_copies(copies: Iterable[Copy], out: list[bytes]) -> None:
    """Append each copy's entry to `out`, comma-separated, for the caller to join once."""
    start = len(out)
    for copy in copies:
        out += (b'{"fingerprint":"', copy.fingerprint.encode(), b'","event":', copy.json(), b"},")
    if len(out) > start:
        out[-1] = b"}"  # no comma after the last


def decode_state(raw: bytes) -> ShipmentState:
    """Inverse of encode_state. Stored state was written by the hub itself: a failure here is a hub bug and raises."""
    return _whole_state(orjson.loads(raw))


def _whole_state(document: dict[str, Any]) -> ShipmentState:
    copies = {}
    for item in document["copies"]:
        copy = _stored_copy(item)
        copies[copy.event.key] = copy
    superseded: dict[str, tuple[Copy, ...]] = {}
    for item in document["superseded"]:
        copy = _stored_copy(item)
        if isinstance(copy.event, MONEY_EVENTS):  # a state stored before 2026-12-05 may hold earlier copies of other
            # events: nothing reads them (streams.merge.apply), and they would count against their source's quota
            superseded[copy.event.key] = superseded.get(copy.event.key, ()) + (copy,)  # stored in rank order
    return ShipmentState(document["shipment_id"], copies, frozenset(document["seen"]), superseded, _release(document))


def _release(document: dict[str, Any]) -> ReleaseRecord | None:
    issued = document.get("release")
    return ReleaseRecord.model_validate_json(orjson.dumps(issued)) if issued is not None else None


def _stored_copy(item: dict[str, Any]) -> Copy:
    return Copy(item["fingerprint"], HUB_EVENT.validate_python(item["event"]), orjson.dumps(item["event"], option=orjson.OPT_SORT_KEYS))
