"""IATA ONE Record LogisticsEvents (JSON-LD) to canonical tracking events.

Pure: bytes in, one HubEvent or Rejection per LogisticsEvent out, never an exception. Events carry the air waybill
as a carrier reference, never a hub shipment id, and no leg: the hub's reference resolution decides both later.

What is read:
- 3.0 ontology terms (`eventCode` as a CodeListElement, `eventTimeType` as cargo:ACTUAL / ESTIMATED / PLANNED,
  `eventDate`, `creationDate`, `eventFor`, `eventLocation.locationCodes`, `eventName`) and the 2.x draft spellings
  still seen in examples (`eventCode` as a plain string, "Actual", `linkedObject`, `eventLocation.code`).
- JSON-LD compacted with the `cargo:` prefix, with any prefix or `@vocab` an inline `@context` binds to the cargo
  namespace, or with bare terms; and expanded JSON-LD (full IRIs, values in arrays, `@value` objects). A remote
  `@context` is not fetched: its terms are read only if they are `cargo:`-prefixed or bare.
- A payload is one LogisticsEvent node, an array of nodes, or an object with `@graph` or `@set`. Other nodes in the
  payload (Waybill, Shipment, Piece) are not events: they resolve `eventFor` references by `@id`.
The shipment is found through `eventFor`: a Waybill (`waybillPrefix` + `waybillNumber`), or a Shipment / Piece that
links to one (`waybill`, `ofShipment`). A bare `@id` the payload does not describe cannot be resolved here (that
needs a GET on the ONE Record server) and is rejected with a reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterator

from pydantic import TypeAdapter, ValidationError

from connectors.onerecord import codes
from connectors.payload import clip, event_id_or_digest, first_message, is_locode, join_remarks, kind_of, load_json
from schemas.base import UtcDatetime
from schemas.events import CarrierReference, HubEvent, TrackingEvent, TrackingPayload
from schemas.identifiers import AirWaybillNumber
from schemas.rejection import Rejection, describe
from schemas.status import Classifier

MAX_PAYLOAD_BYTES = 4 * 1024 * 1024
INVALID = "invalid_onerecord"
# Identity is (source, event_id). The event's IRI without its scheme, prefixed, when it fits the hub's id pattern;
# otherwise a digest of the IRI (stable, so a re-sent event is the same event).
EVENT_ID_PREFIX = "1r:"
CARGO_NAMESPACE = "https://onerecord.iata.org/ns/cargo"
_DEFAULT_NAMESPACES = (f"{CARGO_NAMESPACE}#", f"{CARGO_NAMESPACE}/3.0.0#")
_MAX_LINK_DEPTH = 4  # eventFor -> Piece -> Shipment -> Waybill, with one step to spare
# How many prefixes, and how many namespace IRIs, an @context (the payload's and an event's own, together) may bind to
# the cargo namespace. Every term of every event is looked up under each of them: a real payload binds one or two,
# and 8,000 (537 KB) cost 8.7 s, a 4 MiB payload many minutes.
MAX_CARGO_BINDINGS = 16

Doc = dict[str, Any]

_TIME: TypeAdapter[datetime] = TypeAdapter(UtcDatetime)
_AWB: TypeAdapter[str] = TypeAdapter(AirWaybillNumber)


class _Invalid(Exception):
    """Why one event cannot be mapped; it becomes that event's Rejection."""


@dataclass(frozen=True)
class _Vocabulary:
    """The keys under which a cargo term may appear: prefixed, as a full IRI, or bare."""

    prefixes: tuple[str, ...] = ("cargo",)
    namespaces: tuple[str, ...] = _DEFAULT_NAMESPACES

    def keys(self, term: str) -> Iterator[str]:
        for prefix in self.prefixes:
            yield f"{prefix}:{term}"
        for namespace in self.namespaces:
            yield f"{namespace}{term}"
        yield term

    def extended(self, context: object) -> _Vocabulary:
        """This vocabulary plus the prefixes an inline `@context` binds to the cargo namespace; _Invalid past
        MAX_CARGO_BINDINGS."""
        prefixes, namespaces = list(self.prefixes), list(self.namespaces)
        for item in context if isinstance(context, list) else [context]:
            if not isinstance(item, dict):
                continue  # a remote context IRI: not fetched
            for term, iri in item.items():
                if isinstance(term, str) and isinstance(iri, str) and iri.startswith(CARGO_NAMESPACE) and iri.endswith("#"):
                    if term != "@vocab" and term not in prefixes:
                        prefixes.append(term)
                    if iri not in namespaces:
                        namespaces.append(iri)
                    if len(prefixes) > MAX_CARGO_BINDINGS or len(namespaces) > MAX_CARGO_BINDINGS:
                        raise _Invalid(
                            f"@context binds more than {MAX_CARGO_BINDINGS} prefixes or namespace IRIs to the cargo "
                            "namespace; one is enough"
                        )
        return _Vocabulary(tuple(prefixes), tuple(namespaces))


@dataclass(frozen=True)
class _Payload:
    """The payload's nodes, the vocabulary its top-level @context sets, and its nodes by @id."""

    vocabulary: _Vocabulary
    nodes: list[object]
    index: dict[str, Doc]


def parse(raw: bytes, source: str) -> list[HubEvent | Rejection]:
    """One result per LogisticsEvent in `raw`, in order; a single Rejection when `raw` holds no LogisticsEvent."""
    payload = _load(raw)
    if isinstance(payload, Rejection):
        return [payload]
    results: list[HubEvent | Rejection] = []
    for position, node in enumerate(payload.nodes):
        if isinstance(node, dict) and "@type" in node and not _is_event(node):
            continue  # a Waybill, Shipment, Piece... described beside the events: only used to resolve references
        try:
            results.append(_event(node, source, payload))
        except _Invalid as problem:
            results.append(Rejection(INVALID, f"node {position}{_named(node)}: {problem}"))
    if not results:
        return [Rejection(INVALID, f"the payload holds no LogisticsEvent (node types: {_types(payload.nodes)})")]
    return results


def _load(raw: bytes) -> _Payload | Rejection:
    if not isinstance(raw, (bytes, bytearray, memoryview)):
        return Rejection(INVALID, f"a ONE Record payload is bytes, got {type(raw).__name__}")
    document = load_json(raw, MAX_PAYLOAD_BYTES)
    if isinstance(document, Rejection):
        return document
    vocabulary = _Vocabulary()
    if isinstance(document, dict):
        try:
            vocabulary = vocabulary.extended(document.get("@context"))
        except _Invalid as problem:
            return Rejection(INVALID, str(problem))
        listed = document.get("@graph", document.get("@set"))
        nodes = listed if isinstance(listed, list) else [document]
    elif isinstance(document, list):
        nodes = document
    else:
        return Rejection(INVALID, f"a ONE Record payload is a JSON-LD object or array, got {kind_of(document)}")
    index = {node["@id"]: node for node in nodes if isinstance(node, dict) and isinstance(node.get("@id"), str)}
    return _Payload(vocabulary, nodes, index)


def _event(node: object, source: str, payload: _Payload) -> HubEvent:
    if not isinstance(node, dict):
        raise _Invalid(f"a LogisticsEvent is a JSON object, got {kind_of(node)}")
    if "@type" not in node:
        raise _Invalid("@type is required (a LogisticsEvent says `\"@type\": \"cargo:LogisticsEvent\"`)")
    terms = payload.vocabulary.extended(node.get("@context"))
    read = _Reader(terms, payload.index)
    code = read.code(node)
    awbs = read.waybills(node)
    location, location_remarks = read.location(node)
    try:
        return TrackingEvent(
            event_type="tracking",
            event_id=_event_id(node),
            source=source,
            references=[CarrierReference(kind="air_waybill", value=awb) for awb in awbs],
            occurred_at=read.time(node, "eventDate"),
            recorded_at=read.time(node, "creationDate"),
            classifier=read.classifier(node),
            payload=TrackingPayload(
                status=codes.STATUS.get(code, "unknown"),
                raw_code=code,
                code_list=codes.STATUS_CODE_LIST,
                location=location,
                remarks=join_remarks(read.texts(node, "eventName") + location_remarks),
            ),
        )
    except ValidationError as error:
        raise _Invalid(describe(error)) from None


def _event_id(node: Doc) -> str:
    iri = node.get("@id")
    if not isinstance(iri, str) or not iri:
        raise _Invalid("@id is required: the IRI the event's ONE Record server gave it is its identity")
    if iri.startswith("_:"):
        raise _Invalid(f"@id {clip(iri)!r} is a blank node, which names nothing outside this payload")
    return event_id_or_digest(EVENT_ID_PREFIX + iri.split("://", 1)[-1], iri, f"{EVENT_ID_PREFIX}sha256:")


class _Reader:
    """Reads cargo terms from JSON-LD nodes of one payload, whatever the compaction."""

    def __init__(self, vocabulary: _Vocabulary, index: dict[str, Doc]) -> None:
        self.vocabulary = vocabulary
        self.index = index

    def value(self, node: Doc, term: str) -> object:
        for key in self.vocabulary.keys(term):
            if key in node:
                return _single(node[key], term)
        return None

    def text(self, node: Doc, term: str) -> str | None:
        value = self.value(node, term)
        if value is None:
            return None
        if not isinstance(value, str) or not value:
            raise _Invalid(f"{term} must be a non-empty string, got {kind_of(value)}")
        return value

    def texts(self, node: Doc, term: str) -> list[str]:
        text = self.text(node, term)
        return [] if text is None else [text]

    def node(self, node: Doc, term: str) -> Doc | None:
        value = self.value(node, term)
        if value is None:
            return None
        if not isinstance(value, dict):
            raise _Invalid(f"{term} must be a JSON-LD node (an object), got {kind_of(value)}")
        reference = value.get("@id")
        described = set(value) - {"@id", "@type"}
        if isinstance(reference, str) and not described:
            return self.index.get(reference, value)  # a reference to a node described elsewhere in the payload
        return value

    def code(self, node: Doc) -> str:
        value = self.value(node, "eventCode")
        if isinstance(value, dict):
            # 3.0: a CodeListElement with `code`; or a named individual referenced by @id.
            inner = self.value(value, "code")
            reference = value.get("@id")
            value = inner if inner is not None else _local(reference) if isinstance(reference, str) else None
        if value is None:
            raise _Invalid("eventCode is required (e.g. a CodeListElement with `code` \"DEP\")")
        if not isinstance(value, str) or not value:
            raise _Invalid(f"eventCode must be a status code string, got {kind_of(value)}")
        if len(value) > 35:
            raise _Invalid(f"eventCode {clip(value)!r} is longer than 35 characters")
        return value

    def classifier(self, node: Doc) -> Classifier:
        value = self.value(node, "eventTimeType")
        if value is None:
            # The time type is optional in the ontology; an event without one reports what happened (as FSU did).
            return "ACT"
        if isinstance(value, dict) and isinstance(value.get("@id"), str):
            value = value["@id"]
        if not isinstance(value, str):
            raise _Invalid(f"eventTimeType must be ACTUAL, ESTIMATED or PLANNED, got {kind_of(value)}")
        classifier = codes.TIME_TYPES.get(_local(value).upper())
        if classifier is None:
            raise _Invalid(f"eventTimeType {clip(value)!r} is not ACTUAL, ESTIMATED or PLANNED")
        return classifier

    def time(self, node: Doc, term: str) -> datetime:
        value = self.value(node, term)
        if value is None:
            raise _Invalid(f"{term} is required")
        if not isinstance(value, str):
            raise _Invalid(f"{term} must be an xsd:dateTime string, got {kind_of(value)}")
        try:
            return _TIME.validate_python(value)
        except ValidationError as error:
            raise _Invalid(f"{term}: {first_message(error)}") from None

    def waybills(self, event: Doc) -> list[str]:
        subject = self.node(event, "eventFor")
        term = "eventFor"
        if subject is None:
            subject, term = self.node(event, "linkedObject"), "linkedObject"
        if subject is None:
            raise _Invalid("eventFor is required: the logistics object (waybill, shipment, piece) the event is about")
        masters: list[str] = []
        houses: list[str] = []
        self._collect(subject, term, 0, masters, houses)
        if masters:
            return list(dict.fromkeys(masters))
        if houses:
            raise _Invalid(
                f"{term} names only house waybill {houses[0]!r}; the hub addresses air cargo by the master air "
                "waybill (add the master Waybill to the payload)"
            )
        reference = subject.get("@id")
        named = f" (its @id {clip(reference)!r} is not described in the payload)" if isinstance(reference, str) else ""
        raise _Invalid(
            f"{term} does not carry an air waybill{named}: describe the Waybill (waybillPrefix, waybillNumber), or "
            "the Shipment or Piece linking to it, in the payload"
        )

    def _collect(self, subject: Doc, field: str, depth: int, masters: list[str], houses: list[str]) -> None:
        if depth > _MAX_LINK_DEPTH:
            return
        number = self.text(subject, "waybillNumber")
        if number is not None:
            prefix = self.text(subject, "waybillPrefix")
            kind = self.value(subject, "waybillType")
            kind_name = _local(kind["@id"]) if isinstance(kind, dict) and isinstance(kind.get("@id"), str) else kind
            full = number if prefix is None else f"{prefix}-{number}"
            if isinstance(kind_name, str) and kind_name.upper() == "HOUSE":
                houses.append(full)
                return
            try:
                masters.append(_AWB.validate_python(full))
            except ValidationError as error:
                raise _Invalid(f"{field}: {first_message(error)}") from None
            return
        for link in ("waybill", "ofShipment"):
            linked = self.node(subject, link)
            if linked is not None:
                self._collect(linked, f"{field}.{link}", depth + 1, masters, houses)

    def location(self, event: Doc) -> tuple[str | None, list[str]]:
        """A UN/LOCODE if the location has one; every other code (IATA airport, company codes) goes to remarks."""
        place = self.node(event, "eventLocation")
        if place is None:
            return None, []
        entries: list[object] = []
        for key in self.vocabulary.keys("locationCodes"):
            entries += _many(place.get(key))
        entries += [self.value(place, term) for term in ("code", "locationCode")]
        found = list(dict.fromkeys(code for code in map(_code_text, entries) if code))
        location: str | None = None
        remarks: list[str] = []
        for code in found:
            if location is None and is_locode(code):
                location = code
            elif len(code) == 3 and code.isascii() and code.isalpha() and code.isupper():
                remarks.append(f"airport {code}")  # IATA airport code: not a UN/LOCODE, and no table maps it here
            else:
                remarks.append(f"location {clip(code)}")
        if not found:
            remarks += [f"location {clip(name)}" for name in self.texts(place, "locationName")]
        return location, remarks


def _code_text(item: object) -> str | None:
    """The code of a location code entry: a string, a CodeListElement (`code`, prefixed or not), or `@value`."""
    value = _single_or_none(item)
    if isinstance(value, dict):
        for key, entry in value.items():
            if isinstance(key, str) and (key == "code" or key.endswith((":code", "#code"))):
                value = _single_or_none(entry)
                break
    return value if isinstance(value, str) and value else None


def _single(value: object, term: str) -> object:
    """The one value of a term: expanded JSON-LD wraps values in arrays and literals in `@value` objects."""
    if isinstance(value, list):
        if not value:
            return None
        if len(value) > 1:
            raise _Invalid(f"{term} has {len(value)} values; one is expected")
        value = value[0]
    if isinstance(value, dict) and "@value" in value:
        return value["@value"]
    return value


def _single_or_none(value: object) -> object:
    try:
        return _single(value, "")
    except _Invalid:
        return None


def _many(value: object) -> list[object]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _is_event(node: Doc) -> bool:
    return any(_local(kind) == "LogisticsEvent" for kind in _many(node.get("@type")) if isinstance(kind, str))


def _local(iri: str) -> str:
    """The local name of an IRI or compact IRI: cargo:ACTUAL, https://...cargo#ACTUAL and ACTUAL all give ACTUAL."""
    return iri.rsplit("#", 1)[-1].rsplit(":", 1)[-1]


def _types(nodes: list[object]) -> str:
    kinds = [kind for node in nodes if isinstance(node, dict) for kind in _many(node.get("@type")) if isinstance(kind, str)]
    return ", ".join(str(clip(kind)) for kind in dict.fromkeys(kinds)) or "none"


def _named(node: object) -> str:
    iri = node.get("@id") if isinstance(node, dict) else None
    if not isinstance(iri, str):
        return ""
    return f" (@id {iri!r})" if len(iri) <= 80 else f" (@id '...{iri[-77:]}')"  # an IRI's tail tells events apart
