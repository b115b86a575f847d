"""GS1 EPCIS 2.0 JSON-LD to canonical tracking events, purely.

Reads an EPCISDocument (`epcisBody.eventList`; an EPCISQueryDocument's `queryResults.resultsBody.eventList` too) or
one bare event. One result per event, in order: a TrackingEvent, or a Rejection naming the event and what is wrong.
A payload that is not an EPCIS document or event at all is a single Rejection. Only the compact JSON-LD form the
EPCIS 2.0 context defines is read (keys such as "bizStep"), not expanded JSON-LD.

Mapping (tables in codes.py):
    bizStep                  -> status; raw_code is its CBV name in any spelling, code_list "GS1-CBV-bizStep";
                                a step without a canonical status (or a non-CBV one) -> "unknown", name kept
    eventTime                -> occurred_at in UTC; when eventTime has no offset, eventTimeZoneOffset supplies it
    recordTime               -> recorded_at; a capture document has none yet, so then the document's creationDate,
                                else eventTime
    bizLocation, readPoint   -> location, the first that is a UN/LOCODE, bizLocation first (CBV: where the objects
                                are after the event; readPoint is only where it was observed): the bare code, or an id
                                naming "locode" whose last part is one (urn:un:locode:DEHAM); other ids go to remarks;
                                site, the first that is an SGLN, in the same order (the projection tells a
                                `receiving` at the consignee's site, streams.merge)
    parentID, epcList, childEPCs
                             -> urn:epc:id:bic:<ISO 6346 number> is a container reference (check digit checked);
                                SSCCs, GRAIs and other EPCs cannot address a shipment and go to remarks;
                                packages, the number of distinct SSCCs (a parent SSCC holding the others: 1)
    bizTransactionList       -> references for the types in codes.REFERENCE_KINDS (bol, cmr, ...); the document
                                number is the id's last part (urn:epcglobal:cbv:bt:<GLN>:<number>); others to remarks
    disposition              -> remarks; a disposition that is an incident (damaged; stolen or destroyed: lost) is
                                the status instead, its raw_code the disposition (code_list "GS1-CBV-disposition")
                                and the bizStep in the remarks
    classifier               -> always ACT: EPCIS records what was observed
The leg is never set: reference resolution decides it later.

Identity: event_id is "epcis-hash:sha-256:" plus the hex digest of the event's CBV 2.0 Event Hash ID
(connectors.epcis.event_hash), whether or not the event has an eventID: CBV defines hash-identical events as one
event: an event and its copy without (or with another) eventID map to the same canonical event, which the hub drops
as a duplicate.

Corrections: an event carrying an errorDeclaration is the erroneous event restated. The event hash leaves the
errorDeclaration out, so it has the identity of the event it voids; it is not a duplicate of it but a declaration: a
retraction of that identity (retracted, revised_at = declarationTime). Corrective events are ordinary new events.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from pydantic import TypeAdapter, ValidationError

from connectors.epcis import codes
from connectors.epcis.digital_link import canonical_digital_link
from connectors.epcis.event_hash import event_hash, ignored_fields
from connectors.payload import Refused, event_or_rejection, first_message, fits, join_remarks, load_json
from schemas.events import HubEvent
from schemas.identifiers import ContainerNumber, DocumentNumber, SiteId, UnLocode
from schemas.rejection import Rejection

Result = HubEvent | Rejection

_OFFSET = re.compile(r"([+-])([0-9]{2}):([0-9]{2})")
_PARTS = re.compile(r"[:/#?=]")
_LOCODE: TypeAdapter[str] = TypeAdapter(UnLocode)
_CONTAINER: TypeAdapter[str] = TypeAdapter(ContainerNumber)
_DOCUMENT: TypeAdapter[str] = TypeAdapter(DocumentNumber)
_SITE: TypeAdapter[str] = TypeAdapter(SiteId)
_SHORT_CODE_MAX = 35


def _invalid(reason: str) -> Refused:
    return Refused("invalid_epcis", reason)


# --- document ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Document:
    """What an event's reading needs from its document: creationDate, and for the event hash the `@context` and the
    fields the document says the hash ignores."""

    created: Any = None
    context: Any = None
    ignored: frozenset[str] = frozenset()


def _events_of(document: Any) -> tuple[list[Any], _Document]:
    """The events of a document (or the one bare event), and what the document says about them."""
    if not isinstance(document, dict):
        raise _invalid(f"an EPCIS payload is a JSON object, got {type(document).__name__}")
    kind = _type_of(document)
    if kind in codes.EVENT_TYPES or kind in codes.NOT_TRACKING_TYPES:
        return [document], _Document(context=document.get("@context"))
    if kind not in codes.DOCUMENT_TYPES:
        raise _invalid(f"'type' is {kind!r}: expected an EPCISDocument or one EPCIS event (e.g. ObjectEvent)")
    if kind == "EPCISDocument":
        path = ["epcisBody", "eventList"]
    else:
        path = ["epcisBody", "queryResults", "resultsBody", "eventList"]
    node: Any = document
    ignored = ignored_fields(document)
    for step in path:
        node = node.get(step) if isinstance(node, dict) else None
        if step == "queryResults" and isinstance(node, dict):
            ignored |= ignored_fields(node)
    if not isinstance(node, list):
        raise _invalid(f"{'.'.join(path)} must be a list of events")
    return node, _Document(document.get("creationDate"), document.get("@context"), ignored)


def _type_of(node: dict[str, Any]) -> str | None:
    kind = node.get("type")
    return kind if isinstance(kind, str) else None


# --- one event to one canonical event ----------------------------------------------------------------------------


def _event_result(index: int, event: Any, document: _Document, source: str) -> Result:
    label = f"event {index}"
    if isinstance(event, dict) and isinstance(event.get("eventID"), str):
        label += f" ({event['eventID'][:80]})"
    return event_or_rejection(label, lambda: _event_document(event, document, source))


def _event_document(event: Any, context: _Document, source: str) -> dict[str, Any]:
    if not isinstance(event, dict):
        raise _invalid(f"is a JSON {type(event).__name__}, not an event object")
    if _depth(event) > codes.MAX_NESTING:
        raise _invalid(f"nests deeper than {codes.MAX_NESTING} levels")
    kind = _type_of(event)
    if kind in codes.NOT_TRACKING_TYPES:
        raise Refused("unsupported_event", f"a {kind} does not report transport status")
    if kind not in codes.EVENT_TYPES:
        raise _invalid(f"'type' is {kind!r}: expected one of {', '.join(sorted(codes.EVENT_TYPES))}")
    occurred_at = _event_time(event)
    if "recordTime" in event:
        recorded_at = _time(event["recordTime"], "recordTime")
    elif context.created is not None:
        recorded_at = _time(context.created, "the document's creationDate")
    else:
        recorded_at = occurred_at
    notes: list[str] = []
    status, raw_code = _status(event, notes)
    location = _location(event, notes)
    site = _site(event)
    packages = _packages(event)
    containers = _containers(event, notes)
    transaction_types: dict[str, str] = {}
    references = _transactions(event, notes, transaction_types) + [("container", number) for number in containers]
    references += _gs1_references(event, notes)
    if not references:
        raise Refused(
            "invalid_event",
            "names nothing the hub can find the shipment by: add the container as urn:epc:id:bic:<ISO 6346 number>, "
            "an SSCC, a site's SGLN, or a bizTransactionList entry (GRAIs and SGTINs are not enough)",
        )
    references = list(dict.fromkeys(references))
    if len(references) > codes.MAX_REFERENCES:
        notes.append(f"{len(references) - codes.MAX_REFERENCES} more references not kept")
        references = references[: codes.MAX_REFERENCES]
    code_list = codes.CODE_LIST
    disposition = event.get("disposition")
    if isinstance(disposition, str) and disposition:
        named = codes.short_name(disposition, codes.DISPOSITION_PREFIXES)
        incident = codes.DISPOSITION_INCIDENTS.get(named)
        if incident is None:
            notes.append(f"disposition {named}")
        else:  # the objects' condition matters more than the step that found it
            notes.append(f"bizStep {raw_code}")
            status, raw_code, code_list = incident, named, codes.DISPOSITION_CODE_LIST
    document: dict[str, Any] = {
        "event_type": "tracking",
        "event_id": _event_id(event, context),
        "source": source,
        "references": [_reference(name, value, transaction_types) for name, value in references],
        "occurred_at": occurred_at,
        "recorded_at": recorded_at,
        "classifier": "ACT",
    }
    if "errorDeclaration" in event:
        declared_at, note = _error_declaration(event["errorDeclaration"])
        document.update(retracted=True, revised_at=declared_at)
        notes.insert(0, note)
    payload: dict[str, Any] = {"status": status, "raw_code": raw_code, "code_list": code_list}
    optional = {
        "location": location,
        "container": containers[0] if containers else None,
        "site": site,
        "packages": len(packages) or None,
        "ssccs": packages or None,
        "remarks": join_remarks([note.strip() for note in notes if note.strip()], ellipsis="…"),
    }
    payload.update({key: value for key, value in optional.items() if value is not None})
    document["payload"] = payload
    return document


def _status(event: dict[str, Any], notes: list[str]) -> tuple[str, str]:
    step = event.get("bizStep")
    if not isinstance(step, str) or not step.strip():
        raise _invalid("has no bizStep: without one the hub cannot tell what happened")
    name = codes.short_name(step.strip(), codes.BIZ_STEP_PREFIXES)
    if len(name) <= _SHORT_CODE_MAX:
        return codes.BIZ_STEP.get(name, "unknown"), name
    # A user-defined step as a long URI: keep its last part as the code and the whole URI in the remarks.
    notes.append(f"bizStep {name}")
    tail = [part for part in _PARTS.split(name) if part] or [name]
    return "unknown", tail[-1][-_SHORT_CODE_MAX:]


def _event_time(event: dict[str, Any]) -> datetime:
    if "eventTime" not in event:
        raise _invalid("has no eventTime")
    value = event["eventTime"]
    if not isinstance(value, str):
        raise _invalid("eventTime must be an ISO 8601 timestamp string")
    stamp = _parse_time(value, "eventTime")
    if stamp.tzinfo is not None:
        return stamp
    offset = event.get("eventTimeZoneOffset")
    match = _OFFSET.fullmatch(offset) if isinstance(offset, str) else None
    if match is None:
        raise _invalid(
            f"eventTime {value!r} has no UTC offset and eventTimeZoneOffset does not give one (e.g. '+01:00')"
        )
    sign, hours, minutes = match.groups()
    try:
        if int(minutes) >= 60:
            raise ValueError(minutes)
        zone = timezone(timedelta(hours=int(hours), minutes=int(minutes)) * (-1 if sign == "-" else 1))
    except ValueError:
        raise _invalid(f"eventTimeZoneOffset {offset!r} is not an offset from UTC") from None
    return stamp.replace(tzinfo=zone)


def _time(value: Any, name: str) -> datetime:
    if not isinstance(value, str):
        raise _invalid(f"{name} must be an ISO 8601 timestamp string")
    stamp = _parse_time(value, name)
    if stamp.tzinfo is None:
        raise _invalid(f"{name} {value!r} has no UTC offset")
    return stamp


def _parse_time(value: str, name: str) -> datetime:
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise _invalid(f"{name} {value[:40]!r} is not an ISO 8601 timestamp") from None


def _location(event: dict[str, Any], notes: list[str]) -> str | None:
    location = None
    for field in ("bizLocation", "readPoint"):
        value = event.get(field)
        if value is None:
            continue
        ident = value.get("id") if isinstance(value, dict) else value
        if not isinstance(ident, str) or not ident:
            raise _invalid(f"{field} must be an object with an 'id'")
        code = _locode_in(ident)
        if code is None:
            notes.append(f"{field} {ident}")
        elif location is None:
            location = code
    return location


def _packages(event: dict[str, Any]) -> list[str]:
    """The packages the event names: its distinct SSCCs (GS1 logistic units), sorted; their number is its package
    count. A parentID that is an SSCC is the one package holding the children (a pallet and its cases): it alone."""

    def ssccs(values: Any) -> set[str]:
        items = values if isinstance(values, list) else [values]
        return {value for item in items if isinstance(item, str) for kind, value in _gs1_reference(item) if kind == "sscc"}

    return sorted(ssccs(event.get("parentID")) or ssccs(event.get("epcList")) | ssccs(event.get("childEPCs")))


def _site(event: dict[str, Any]) -> str | None:
    """The SGLN of bizLocation, else of readPoint: the GS1 site where the event leaves the objects (CBV), which the
    projection compares with the consignee's sites."""
    for field in ("bizLocation", "readPoint"):
        place = event.get(field)
        ident = place.get("id") if isinstance(place, dict) else None
        for kind, value in _gs1_reference(ident) if isinstance(ident, str) else []:
            if kind == "sgln" and fits(_SITE, value):
                return value
    return None


def _locode_in(ident: str) -> str | None:
    candidates = [ident]
    if "locode" in ident.lower():
        candidates.append(_PARTS.split(ident)[-1])
    for candidate in candidates:
        try:
            return _LOCODE.validate_python(candidate)
        except ValidationError:
            continue
    return None


def _containers(event: dict[str, Any], notes: list[str]) -> list[str]:
    epcs: list[str] = []
    for field in codes.OBJECT_FIELDS:
        value = event.get(field)
        if value is None:
            continue
        items = [value] if field == "parentID" else value
        if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
            raise _invalid(f"{field} must hold EPC URIs as strings")
        epcs.extend(items)
    containers: list[str] = []
    others: list[str] = []
    for epc in dict.fromkeys(epcs):
        if not epc.startswith(codes.CONTAINER_EPC_PREFIX):
            others.append(epc)
            continue
        number = epc[len(codes.CONTAINER_EPC_PREFIX) :]
        try:
            containers.append(_CONTAINER.validate_python(number))
        except ValidationError as error:
            raise Refused("invalid_event", f"{epc}: {first_message(error)}") from None
    if others:
        notes.append("objects " + ", ".join(others))
    return containers


def _reference(kind: str, value: str, transaction_types: dict[str, str]) -> dict[str, str]:
    typed = transaction_types.get(value) if kind == "business_transaction" else None
    return {"kind": kind, "value": value} | ({"type": typed} if typed else {})


def _transactions(event: dict[str, Any], notes: list[str], transaction_types: dict[str, str]) -> list[tuple[str, str]]:
    """The bizTransactionList: document kinds the hub resolves (codes.REFERENCE_KINDS), and every other business
    transaction as a `business_transaction` reference whose raw `type` (as sent) goes into `transaction_types`."""
    value = event.get("bizTransactionList")
    if value is None:
        return []
    if not isinstance(value, list):
        raise _invalid("bizTransactionList must be a list")
    references: list[tuple[str, str]] = []
    for item in value:
        if not isinstance(item, dict) or not isinstance(item.get("bizTransaction"), str):
            raise _invalid("each bizTransactionList entry needs a 'bizTransaction' id string")
        ident = item["bizTransaction"]
        kind_name = item.get("type")
        kind = codes.short_name(kind_name, codes.BIZ_TRANSACTION_TYPE_PREFIXES) if isinstance(kind_name, str) else ""
        parts = [part for part in _PARTS.split(ident.strip()) if part] or [ident]
        if kind in codes.REFERENCE_KINDS:
            references.append((codes.REFERENCE_KINDS[kind], parts[-1]))
            continue
        # Another business transaction (a delivery order, despatch advice, purchase order...): a reference too, with
        # its raw type; the whole id as sent stays in the remarks.
        notes.append(f"transaction {kind or '(untyped)'} {ident}")
        if not fits(_DOCUMENT, parts[-1]):
            continue
        references.append(("business_transaction", parts[-1]))
        if isinstance(kind_name, str) and kind_name.strip():
            if len(kind_name) > codes.MAX_TRANSACTION_TYPE:
                raise _invalid(f"bizTransactionList type is longer than {codes.MAX_TRANSACTION_TYPE} characters")
            transaction_types.setdefault(parts[-1], kind_name)
    return references


def _gs1_references(event: dict[str, Any], notes: list[str]) -> list[tuple[str, str]]:
    """SSCCs among the event's objects, the SGLNs of its readPoint and bizLocation, and the SGLNs of its source and
    destination lists (the other entries of those lists go to the remarks, with their type)."""
    found: list[tuple[str, str]] = []
    for field in codes.OBJECT_FIELDS:
        value = event.get(field)
        for epc in [value] if isinstance(value, str) else value if isinstance(value, list) else []:
            if isinstance(epc, str):
                found += _gs1_reference(epc)
    for field in ("readPoint", "bizLocation"):
        place = event.get(field)
        if isinstance(place, dict) and isinstance(place.get("id"), str):
            found += _gs1_reference(place["id"])
    for field, key in (("sourceList", "source"), ("destinationList", "destination")):
        entries = event.get(field)
        for entry in entries if isinstance(entries, list) else [entries] if isinstance(entries, dict) else []:
            ident = entry.get(key) if isinstance(entry, dict) else None
            if not isinstance(ident, str):
                raise _invalid(f"each {field} entry needs a '{key}' id string")
            kind = entry.get("type")
            named = codes.short_name(kind, codes.SOURCE_DESTINATION_TYPE_PREFIXES) if isinstance(kind, str) else ""
            notes.append(f"{key} {named or '(untyped)'} {ident}")
            found += _gs1_reference(ident)
    return found


def _gs1_reference(ident: str) -> list[tuple[str, str]]:
    """An SSCC (`sscc`, its 18 digits) or an SGLN (`sgln`, the GLN and `/` its extension) in any EPC or Digital Link
    spelling; nothing for other identifiers."""
    link = canonical_digital_link(ident.strip()) or ""
    key = link.removeprefix("https://id.gs1.org/").split("/")
    if key[0] == "00" and len(key) == 2:
        return [("sscc", key[1])]
    if key[0] == "414" and len(key) in (2, 4):
        value = key[1] + (f"/{key[3]}" if len(key) == 4 else "")
        return [("sgln", value)] if fits(_DOCUMENT, value) else []
    return []



def _error_declaration(value: Any) -> tuple[datetime, str]:
    if not isinstance(value, dict):
        raise _invalid("errorDeclaration must be an object with a declarationTime")
    declared_at = _time(value.get("declarationTime"), "errorDeclaration.declarationTime")
    reason = value.get("reason")
    why = "no reason given"
    if isinstance(reason, str) and reason:
        why = codes.short_name(reason, codes.ERROR_REASON_PREFIXES)
    corrective = value.get("correctiveEventIDs")
    note = f"error declared ({why})"
    if isinstance(corrective, list) and corrective:
        note += "; corrected by " + ", ".join(str(ident) for ident in corrective)
    return declared_at, note


# --- identity ----------------------------------------------------------------------------------------------------


def _event_id(event: dict[str, Any], document: _Document) -> str:
    given = event.get("eventID")
    if given is not None and (not isinstance(given, str) or not given):
        raise _invalid("eventID must be a non-empty string")
    digest = event_hash(event, document.context, document.ignored).removeprefix("ni:///sha-256;").split("?")[0]
    return "epcis-hash:sha-256:" + digest


def _depth(value: Any) -> int:
    """How deeply `value` nests, counted without recursion and only up to just past the limit."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack and deepest <= codes.MAX_NESTING:
        node, level = stack.pop()
        deepest = max(deepest, level)
        children = node.values() if isinstance(node, dict) else node
        stack.extend((child, level + 1) for child in children if isinstance(child, (dict, list)))
    return deepest


# --- entry point -------------------------------------------------------------------------------------------------


def event_hashes(document: Any) -> list[str]:
    """The CBV 2.0 Event Hash ID of every event object in an EPCIS document (or of the one bare event), in order."""
    events, context = _events_of(document)
    return [event_hash(event, context.context, context.ignored) for event in events if isinstance(event, dict)]


def parse(raw: bytes, source: str) -> list[HubEvent | Rejection]:
    """Every event in an EPCIS 2.0 JSON-LD payload as a canonical tracking event or a Rejection; never raises."""
    document = load_json(raw, codes.MAX_DOCUMENT_BYTES, "document", blank_is_empty=True)
    if isinstance(document, Rejection):
        return [document]
    try:
        events, context = _events_of(document)
    except Refused as refused:
        return [refused.rejection()]
    # Numbered from 0, as the payload's results are wherever a refusal is reported (schemas.rejection.for_event).
    return [_event_result(index, event, context, source) for index, event in enumerate(events)]
