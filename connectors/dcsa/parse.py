"""DCSA Track & Trace events to canonical tracking events: the 2.2 flat shape and the 3.0 classified shape.

Pure: bytes in, one HubEvent or Rejection per DCSA event out, never an exception. Events carry the carrier's own
references (container, bill of lading or sea waybill, carrier booking), never a hub shipment id, and no leg: the
hub's reference resolution decides both later.

Shapes read (field names as DCSA publishes them):
- 2.2: `eventType`, `eventClassifierCode`, `<type>EventTypeCode`, `eventDateTime`, `eventCreatedDateTime`,
  `transportCall` (`UNLocationCode`, `vessel.vesselIMONumber`), `eventLocation.UNLocationCode`,
  `equipmentReference`, `emptyIndicatorCode`, `documentReferences`, `references` (type EQ), and for shipment events
  `documentTypeCode` + `documentID`.
- 3.0 (the 2025 design snapshots with code fields): `eventClassification.{eventTypeCode, eventClassifierCode,
  <type>EventTypeCode}`, `eventRouting.originatingParty`, `eventUpdatedDateTime`, `isRetracted`,
  `equipmentDetails`, `shipmentDetails.documentReference(s)`, `transportDetails.transportCall` (with its
  `vesselTransport` and voyage numbers), `eventLocation`.
  The later snapshot spelling with long enum names (`eventClassifier: ACTUAL`, `equipmentEventType: LOADED`) is
  not read: such an event is rejected with a reason naming the missing code field. Nor is 3.0.0-Beta-1's
  `{metadata, payload}` envelope: it is rejected as such.
A payload is one event, a JSON array of events, or 3.0's `{"events": [...]}` body.

3.0 identity and revisions, as the standard states them: an event is identified by its originating party
(`partyCode`, `codeListProvider`, `codeListName`) plus `eventID`; the copy with the latest `eventUpdatedDateTime`
wins; `isRetracted: true` discards the identity, and "any event data other than the eventID is irrelevant". A
retraction is therefore read from its identity and update time alone, and names the retracted event by its
identity reference (`schemas.events.identity_reference`), which the shipment holding that event registers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Mapping, NoReturn

import orjson
from pydantic import TypeAdapter, ValidationError

from connectors.dcsa import codes
from connectors.payload import clip, digest, first_message, fits, join_remarks, kind_of, load_json
from schemas.base import UtcDatetime
from schemas.events import (
    BookingStatusEvent,
    BookingStatusPayload,
    CarrierReference,
    HubEvent,
    TrackingEvent,
    TrackingPayload,
    WaybillEvent,
    WaybillPayload,
    identity_reference,
)
from schemas.identifiers import ContainerNumber, DocumentNumber, EventId, ShipmentId, UnLocode
from schemas.rejection import Rejection, describe

MAX_PAYLOAD_BYTES = 4 * 1024 * 1024
INVALID = "invalid_dcsa"
# Identity is (source, event_id); the prefix keeps a carrier's DCSA ids apart from its ids in other formats.
EVENT_ID_PREFIX = "dcsa:"
# The code list a retraction's placeholder status names: a retraction reports no status of its own.
RETRACTION_CODE_LIST = "DCSA-isRetracted"

Doc = dict[str, Any]
ReferenceKind = Literal["container", "bill_of_lading", "sea_waybill", "carrier_booking"]

_TIME: TypeAdapter[datetime] = TypeAdapter(UtcDatetime)
_CONTAINER: TypeAdapter[str] = TypeAdapter(ContainerNumber)
_DOCUMENT: TypeAdapter[str] = TypeAdapter(DocumentNumber)
_EVENT_ID: TypeAdapter[str] = TypeAdapter(EventId)
_LOCODE: TypeAdapter[str] = TypeAdapter(UnLocode)
_SHIPMENT: TypeAdapter[str] = TypeAdapter(ShipmentId)


class _Invalid(Exception):
    """Why one event cannot be mapped; it becomes that event's Rejection (code `invalid_dcsa` unless given)."""

    def __init__(self, reason: str, code: str = INVALID) -> None:
        super().__init__(reason)
        self.code = code


def parse(raw: bytes, source: str) -> list[HubEvent | Rejection]:
    """One result per DCSA event in `raw`, in order; a single Rejection when `raw` is not a DCSA payload at all."""
    loaded = _load(raw)
    if isinstance(loaded, Rejection):
        return [loaded]
    results: list[HubEvent | Rejection] = []
    for index, item in enumerate(loaded):
        try:
            if isinstance(item, dict) and _retracts(item):
                results.append(_retraction(item, source))
            elif isinstance(item, dict) and _is_document_message(item):
                results.append(_notification(item, source))
            else:
                results.append(_event(item, source))
        except _Invalid as problem:
            results.append(Rejection(problem.code, f"event {index}{_named(item)}: {problem}"))
    return results


def _load(raw: bytes) -> list[object] | Rejection:
    if not isinstance(raw, (bytes, bytearray, memoryview)):
        return Rejection(INVALID, f"a DCSA payload is bytes, got {type(raw).__name__}")
    document = load_json(raw, MAX_PAYLOAD_BYTES)
    if isinstance(document, Rejection):
        return document
    if isinstance(document, list):
        return document
    if isinstance(document, dict):
        events = document.get("events")  # 3.0 POST /events body
        if "events" in document and isinstance(events, list):
            return events
        return [document]
    return Rejection(INVALID, f"a DCSA payload is an event object or an array of events, got {kind_of(document)}")


@dataclass(frozen=True)
class _Located:
    """A JSON object and the path it was found at, so reasons can name the field."""

    value: Doc
    where: str


@dataclass(frozen=True)
class _Parts:
    """What both DCSA versions say about one event, before validation against the canonical schema."""

    event_id: str
    family: codes.EventFamily
    type_code: str
    classifier: str
    occurred_at: datetime
    recorded_at: datetime
    revised_at: datetime | None
    retracted: bool
    equipment: str | None
    empty: bool
    location: str | None
    vessel: _Located | None
    references: list[CarrierReference]
    remarks: list[str]


def _retracts(item: Doc) -> bool:
    return item.get("isRetracted") is True


def _retraction(event: Doc, source: str) -> HubEvent:
    """A 3.0 retraction: the identity it discards, when it was sent, and nothing else (the standard says the rest
    of its data is irrelevant, so a retraction is never refused for it)."""
    updated = _optional_time(event, "eventUpdatedDateTime", "")
    if updated is None:
        raise _Invalid("a retraction needs eventUpdatedDateTime: it says when the event was discarded")
    event_id = _event_id(_required(event, "eventID", ""), _originator(event))
    try:
        return TrackingEvent(
            event_type="tracking",
            event_id=event_id,
            source=source,
            references=[identity_reference(source, event_id)],
            occurred_at=updated,
            recorded_at=updated,
            revised_at=updated,
            retracted=True,
            payload=TrackingPayload(status="unknown", raw_code="isRetracted", code_list=RETRACTION_CODE_LIST),
        )
    except ValidationError as error:
        raise _Invalid(describe(error)) from None


def _event(item: object, source: str) -> HubEvent:
    if not isinstance(item, dict):
        raise _Invalid(f"an event is a JSON object, got {kind_of(item)}")
    if "eventClassification" in item:
        parts = _v3(item)
    elif "eventType" in item:
        parts = _v22(item)
    elif "metadata" in item:
        raise _Invalid(
            "a DCSA T&T 3.0.0-Beta-1 event ({metadata, payload}) is not read: send 3.0 (`eventClassification`) or 2.2"
        )
    else:
        raise _Invalid("not a DCSA event: a 2.2 event has `eventType`, a 3.0 event `eventClassification`")
    classifier = codes.CLASSIFIERS.get(parts.classifier)
    if classifier is None:
        raise _Invalid(f"eventClassifierCode {clip(parts.classifier)!r} is not PLN, EST or ACT")
    if not parts.references:
        raise _Invalid(
            "the event names no equipment, booking or transport document reference: the hub cannot tell which "
            "shipment it is about"
        )
    try:
        return TrackingEvent(
            event_type="tracking",
            event_id=parts.event_id,
            source=source,
            references=parts.references,
            occurred_at=parts.occurred_at,
            recorded_at=parts.recorded_at,
            classifier=classifier,
            revised_at=parts.revised_at,
            retracted=parts.retracted,
            payload=TrackingPayload(
                status="unknown" if parts.empty else parts.family.statuses.get(parts.type_code, "unknown"),
                raw_code=parts.type_code,
                code_list=parts.family.code_list,
                location=parts.location,
                container=parts.equipment,
                transport_means=_imo(parts.vessel),
                remarks=join_remarks(parts.remarks + (["empty container"] if parts.empty else [])),
            ),
        )
    except ValidationError as error:
        raise _Invalid(describe(error)) from None


# --- 2.2: one flat object per event ---------------------------------------------------------------------------------


def _v22(event: Doc) -> _Parts:
    event_type, family = _family(event, "eventType", "")
    type_code = _required(event, family.code_field, "")
    transport_call = _object(event, "transportCall", "")
    equipment = _container(event, "equipmentReference", "")
    references = _container_references(equipment)
    for index, item in enumerate(_list(event, "documentReferences", "")):
        where = f"documentReferences.{index}."
        document = _as_object(item, where)
        kind_code = _required(document, "documentReferenceType", where)
        references += _document_reference(kind_code, document, "documentReferenceValue", where, event)
    remarks: list[str] = []
    for item, where in _items(event, "references", ""):
        references += _shipment_reference(_as_object(item, where), "referenceType", "referenceValue", where, remarks)
    vessel = _vessel(transport_call, "transportCall.", event, "")
    remarks = _transport_remarks(event, vessel, _voyages(transport_call, "transportCall.")) + remarks
    if event_type == "SHIPMENT":
        document_type = _optional(event, "documentTypeCode", "")
        if document_type is not None:
            references += _document_reference(document_type, event, "documentID", "", event)
            remarks.insert(0, _document_remark(document_type, _optional(event, "documentID", ""), type_code))
        remarks += _labelled("reason", _optional(event, "reason", ""))
    return _Parts(
        event_id=_event_id(_required(event, "eventID", ""), None),
        family=family,
        type_code=type_code,
        classifier=_required(event, "eventClassifierCode", ""),
        occurred_at=_time(event, "eventDateTime", ""),
        recorded_at=_time(event, "eventCreatedDateTime", ""),
        revised_at=None,
        retracted=False,
        equipment=equipment,
        empty=_empty(event, ""),
        location=_location(event, transport_call, "transportCall."),
        vessel=vessel,
        references=_distinct(references),
        remarks=remarks,
    )


# --- 3.0: classification, routing and per-type detail objects -------------------------------------------------------


def _v3(event: Doc) -> _Parts:
    classification = _object(event, "eventClassification", "", required=True) or {}
    where = "eventClassification."
    event_type, family = _family(classification, "eventTypeCode", where)
    type_code = _required(classification, family.code_field, where)
    equipment_details = _object(event, "equipmentDetails", "")
    equipment = _container(equipment_details, "equipmentReference", "equipmentDetails.")
    empty = _empty(equipment_details, "equipmentDetails.")

    references = _container_references(equipment)
    shipment_details = _object(event, "shipmentDetails", "")
    documents: list[tuple[object, str]] = []
    if shipment_details:
        if "documentReference" in shipment_details:
            documents.append((shipment_details["documentReference"], "shipmentDetails.documentReference."))
        documents += _items(shipment_details, "additionalDocumentReferences", "shipmentDetails.")
    documents += _items(event, "relatedDocumentReferences", "")
    reference_remarks: list[str] = []
    for item, item_where in _items(shipment_details or {}, "shipmentReferences", "shipmentDetails."):
        reference = _as_object(item, item_where)
        references += _shipment_reference(reference, "typeCode", "reference", item_where, reference_remarks)
    primary: tuple[str, str | None] | None = None
    for item, item_where in documents:
        document = _as_object(item, item_where)
        kind_code = _required(document, "typeCode", item_where)
        references += _document_reference(kind_code, document, "reference", item_where, event)
        primary = primary or (kind_code, _optional(document, "reference", item_where))

    transport_details = _object(event, "transportDetails", "")
    transport_call = _object(transport_details, "transportCall", "transportDetails.")
    call_where = "transportDetails.transportCall."
    vessel = _vessel(transport_call, call_where, transport_details, "transportDetails.")
    remarks = _transport_remarks(transport_details or {}, vessel, _voyages(transport_call, call_where)) + reference_remarks
    if event_type == "SHIPMENT":
        if primary is not None:
            remarks.insert(0, _document_remark(primary[0], primary[1], type_code))
        remarks += _labelled("reason", _optional(shipment_details, "reason", "shipmentDetails."))

    updated = _optional_time(event, "eventUpdatedDateTime", "")
    created = _optional_time(event, "eventCreatedDateTime", "")
    recorded = created or updated
    if recorded is None:
        raise _Invalid("eventUpdatedDateTime is required: it says when the event was recorded and which copy is newest")
    return _Parts(
        event_id=_event_id(_required(event, "eventID", ""), _originator(event)),
        family=family,
        type_code=type_code,
        classifier=_required(classification, "eventClassifierCode", where),
        occurred_at=_time(event, "eventDateTime", ""),
        recorded_at=recorded,
        revised_at=updated,
        retracted=_flag(event, "isRetracted", ""),
        equipment=equipment,
        empty=empty,
        location=_location(event, transport_call, call_where),
        vessel=vessel,
        references=_distinct(references),
        remarks=remarks,
    )


# --- pieces shared by both versions ---------------------------------------------------------------------------------


def _family(container: Doc, key: str, where: str) -> tuple[str, codes.EventFamily]:
    value = _required(container, key, where)
    family = codes.FAMILIES.get(value)
    if family is None:
        raise _Invalid(f"{where}{key} {clip(value)!r} is not one of {', '.join(codes.FAMILIES)}")
    return value, family


def _originator(event: Doc) -> tuple[str, str, str] | None:
    """3.0's originating party as (codeListProvider, codeListName, partyCode): with eventID, the event's identity."""
    where = "eventRouting.originatingParty."
    party = _object(_object(event, "eventRouting", ""), "originatingParty", "eventRouting.")
    code = _optional(party, "partyCode", where)
    if code is None:
        return None
    return (_optional(party, "codeListProvider", where) or "", _optional(party, "codeListName", where) or "", code)


def _event_id(event_id: str, originator: tuple[str, str, str] | None) -> str:
    """The hub event id of a DCSA identity: `dcsa:[provider/list/party:]eventID`, or, when that does not fit the hub's
    id syntax (3.0 allows 500 characters of anything), `dcsa:h:` and a digest of the identity, so a re-sent or
    updated copy gets the same id."""
    candidate = EVENT_ID_PREFIX + ("/".join(originator) + ":" if originator else "") + event_id
    try:
        return _EVENT_ID.validate_python(candidate)
    except ValidationError:
        return f"{EVENT_ID_PREFIX}h:" + digest(orjson.dumps([originator, event_id]).decode(), 40)


def _container(container: Doc | None, key: str, where: str, required: bool = False) -> str | None:
    value = _required(container or {}, key, where) if required else _optional(container, key, where)
    if value is None:
        return None
    return _checked(_CONTAINER, value, f"{where}{key}")


def _container_references(number: str | None) -> list[CarrierReference]:
    return [] if number is None else [CarrierReference(kind="container", value=number)]


def _document_reference(kind_code: str, document: Doc, key: str, where: str, event: Doc) -> list[CarrierReference]:
    kind: ReferenceKind
    if kind_code == codes.BOOKING_DOCUMENT:
        kind = "carrier_booking"
    elif kind_code == codes.TRANSPORT_DOCUMENT:
        # T&T does not say whether the transport document is a bill of lading or a sea waybill; a carrier may add
        # DCSA eBL's transportDocumentTypeCode (on the reference or the event) to say so.
        typed = _optional(document, "transportDocumentTypeCode", where) or _optional(event, "transportDocumentTypeCode", "")
        kind = "sea_waybill" if typed == codes.SEA_WAYBILL_TYPE else "bill_of_lading"
    else:
        return []  # shipping instructions, VGM, customs... are not references the carrier knows the shipment by
    value = _required(document, key, where)
    try:
        return [CarrierReference(kind=kind, value=_DOCUMENT.validate_python(value))]
    except ValidationError:
        raise _Invalid(
            f"{where}{key} {clip(value)!r} is not a document reference the hub accepts "
            "(letters, digits, '.', '/', '-'; starting with a letter or digit; at most 35 characters)"
        ) from None


def _shipment_reference(reference: Doc, type_key: str, value_key: str, where: str, remarks: list[str]) -> list[CarrierReference]:
    """A shipment reference (2.2 `references`, 3.0 `shipmentReferences`): `EQ` is a container, `FF` the forwarder's
    (or MTO's) own reference, `SI`, `PO`, `CR` and `AAO` business transactions typed by their code; a reference the
    hub's reference syntax cannot carry goes to the remarks."""
    type_code = _required(reference, type_key, where)
    if type_code == codes.EQUIPMENT_REFERENCE:
        return _container_references(_container(reference, value_key, where, required=True))
    if type_code == codes.FORWARDER_REFERENCE:
        kind: Literal["forwarder_reference", "business_transaction"] = "forwarder_reference"
        typed, label = None, "forwarder reference"
    elif type_code in codes.TRANSACTION_REFERENCES:
        kind, typed, label = "business_transaction", type_code, f"reference {type_code}"
    else:
        return []
    value = _required(reference, value_key, where)
    if not fits(_DOCUMENT, value):
        remarks.append(f"{label} {clip(value)}")
        return []
    return [CarrierReference(kind=kind, value=value, type=typed)]


def _distinct(references: list[CarrierReference]) -> list[CarrierReference]:
    # A dict, not a search of the ones already kept: an event within the payload limit can name 60,000 references
    # (the schema refuses more than 20 only after this), and a list search cost that about an hour of CPU.
    return list(dict.fromkeys(references))


def _empty(container: Doc | None, where: str) -> bool:
    indicator = _optional(container, "emptyIndicatorCode", where)
    if indicator not in (None, "EMPTY", "LADEN"):
        raise _Invalid(f"{where}emptyIndicatorCode {clip(indicator)!r} is not EMPTY or LADEN")
    return indicator == "EMPTY"


def _location(event: Doc, transport_call: Doc | None, call_where: str) -> str | None:
    """The event's own location first, else the transport call's (DCSA puts the call's UN/LOCODE on the call)."""
    candidates: list[tuple[Doc | None, str]] = [(_object(event, "eventLocation", ""), "eventLocation.")]
    if transport_call:
        candidates.append((transport_call, call_where))
        candidates.append((_object(transport_call, "location", call_where), f"{call_where}location."))
    for container, where in candidates:
        code = _optional(container, "UNLocationCode", where) if container else None
        if code is not None:
            return _checked(_LOCODE, code, f"{where}UNLocationCode")
    return None


def _vessel(transport_call: Doc | None, call_where: str, details: Doc | None, details_where: str) -> _Located | None:
    """The vessel: on the transport call (2.2 `vessel`, 3.0 `vesselTransport`), or as `vesselTransport` beside it."""
    for container, key, where in (
        (transport_call, "vessel", call_where),
        (transport_call, "vesselTransport", call_where),
        (details, "vesselTransport", details_where),
    ):
        vessel = _object(container, key, where)
        if vessel is not None:
            return _Located(vessel, f"{where}{key}.")
    return None


def _imo(vessel: _Located | None) -> str | None:
    number = _optional(vessel.value, "vesselIMONumber", vessel.where) if vessel else None
    if vessel is None or number is None:
        return None
    # IMO ship identification number: 7 digits, the last a check digit (weights 7..2 over the first six, mod 10).
    if len(number) != 7 or not number.isascii() or not number.isdigit():
        raise _Invalid(f"{vessel.where}vesselIMONumber {clip(number)!r} is not a 7-digit IMO number")
    expected = sum(int(digit) * weight for digit, weight in zip(number, range(7, 1, -1))) % 10
    if int(number[6]) != expected:
        raise _Invalid(f"{vessel.where}vesselIMONumber {number!r} fails its IMO check digit (expected {expected})")
    return f"IMO{number}"


def _voyages(transport_call: Doc | None, where: str) -> list[str]:
    """The call's export and import voyages: 2.2's `exportVoyageNumber`, 3.0's `exportVoyageNumberOrReference`
    (`carrierVoyageNumber` or `universalVoyageReference`); likewise for import."""
    found: list[str] = []
    for direction in ("export", "import"):
        number = _optional(transport_call, f"{direction}VoyageNumber", where)
        either = _object(transport_call, f"{direction}VoyageNumberOrReference", where)
        either_where = f"{where}{direction}VoyageNumberOrReference."
        number = number or _optional(either, "carrierVoyageNumber", either_where)
        number = number or _optional(either, "universalVoyageReference", either_where)
        found += _labelled(f"{direction} voyage", number)
    return found


def _transport_remarks(details: Doc, vessel: _Located | None, voyages: list[str]) -> list[str]:
    remarks: list[str] = []
    if vessel:
        remarks += _labelled("vessel", _optional(vessel.value, "vesselName", vessel.where))
    remarks += voyages
    delay = _optional(details, "delayReasonCode", "")
    change = _optional(details, "changeRemark", "")
    if delay or change:
        remarks.append("delay " + ": ".join(text for text in (delay, change) if text))
    return remarks


def _document_remark(document_type: str, reference: str | None, type_code: str) -> str:
    described = codes.SHIPMENT_DESCRIPTIONS.get(type_code, type_code)
    return " ".join(text for text in (document_type, reference, described) if text)


def _labelled(label: str, text: str | None) -> list[str]:
    return [] if text is None else [f"{label} {text}"]


# --- DCSA eBL 3.0 and Booking 2.0 notifications: the MTO's through document and its booking decisions --------------


def _is_document_message(item: Doc) -> bool:
    """A CloudEvents notification (eBL, Booking), or a bare transport document, booking or surrender request: the
    shapes of the DCSA documentation standards, which a T&T event (`eventClassification`/`eventType`) never has."""
    return "specversion" in item or any(key in item for key in codes.DOCUMENT_SHAPES)


def _notification(item: Doc, source: str) -> HubEvent:
    """A DCSA eBL 3.0 transport document notification or a Booking 2.0 notification, from the MTO.

    The hub reads them as the MTO's word about its own contract: the transport document is the journey's through
    document (its issuer the authenticated sender), and the booking decisions are the MTO's on the hub booking.
    Whether the sender may say it is the merge's decision (the registry's owner of the shipment id), not the parser's.
    """
    for key, why in codes.DOCUMENT_SHAPES.items():
        if key in item and "specversion" not in item:
            raise _Invalid(why)
    if item.get("specversion") != "1.0":
        raise _Invalid(f"specversion {clip(item.get('specversion'))!r} is not the CloudEvents version DCSA uses, '1.0'")
    kind = _required(item, "type", "")
    reader = _NOTIFICATIONS.get(kind)
    if reader is None:
        raise _Invalid(f"type {clip(kind)!r} is not a notification the hub reads ({', '.join(_NOTIFICATIONS)})")
    for key in ("source", "subscriptionReference"):
        _required(item, key, "")
    if item.get("datacontenttype") != "application/json":
        raise _Invalid(f"datacontenttype {clip(item.get('datacontenttype'))!r} is not 'application/json'")
    # CloudEvents: `source` + `id` identify the notification, and a re-sent duplicate may keep them.
    event_id = f"{EVENT_ID_PREFIX}ce:" + digest(orjson.dumps([item["source"], _required(item, "id", "")]).decode(), 40)
    at = _time(item, "time", "")
    data = _object(item, "data", "", required=True) or {}
    try:
        return reader(data, source, event_id, at)
    except ValidationError as error:
        raise _Invalid(describe(error)) from None


def _transport_document(data: Doc, source: str, event_id: str, at: datetime) -> HubEvent:
    """`data` of an `org.dcsa.transport-document.v3` notification: its status is the step of the through document."""
    status = _required(data, "transportDocumentStatus", "data.")
    action = codes.DOCUMENT_ACTIONS.get(status)
    if action is None:
        _unrecorded(status, "data.transportDocumentStatus", codes.DOCUMENT_STATUSES, codes.DOCUMENT_ACTIONS)
    number = _checked(_DOCUMENT, _required(data, "transportDocumentReference", "data."), "data.transportDocumentReference")
    document = _object(data, "transportDocument", "data.") or {}
    where = "data.transportDocument."
    if document and document.get("transportDocumentReference", number) != number:
        raise _Invalid(f"{where}transportDocumentReference differs from data.transportDocumentReference {number!r}")
    remarks: list[str] = []
    references = [CarrierReference(kind="transport_document", value=number)]
    for item, item_where in _items(document, "references", where):
        references += _shipment_reference(_as_object(item, item_where), "type", "value", item_where, remarks)
    containers: dict[str, None] = {}  # distinct, in the order sent (a dict: see _distinct)
    for item, item_where in _items(document, "utilizedTransportEquipments", where):
        equipment = _object(_as_object(item, item_where), "equipment", item_where, required=True)
        number_found = _container(equipment, "equipmentReference", f"{item_where}equipment.", required=True)
        if number_found is not None:
            containers[number_found] = None
    bookings = {
        _required(_as_object(item, item_where), "carrierBookingReference", item_where)
        for item, item_where in _items(document, "consignmentItems", where)
    }
    return WaybillEvent(
        event_type="waybill",
        event_id=event_id,
        source=source,
        shipment_id=_booking_shipment(bookings, f"{where}consignmentItems.*.carrierBookingReference"),
        references=_distinct(references),
        occurred_at=at,
        recorded_at=at,
        payload=WaybillPayload(
            document_kind="multimodal_transport_document",
            document_number=number,
            issuer=source,
            containers=list(containers),
            action=action,
        ),
    )


def _booking(data: Doc, source: str, event_id: str, at: datetime) -> HubEvent:
    """`data` of an `org.dcsa.booking.v2` notification: the MTO's decision on the booking, if it is one."""
    cancellation = _optional(data, "bookingCancellationStatus", "data.")
    status = _required(data, "bookingStatus", "data.")
    action = "cancelled" if cancellation == codes.CANCELLATION_CONFIRMED else codes.BOOKING_ACTIONS.get(status)
    if action is None:
        _unrecorded(status, "data.bookingStatus", codes.BOOKING_STATUSES, codes.BOOKING_ACTIONS)
    # before confirmation only the request reference may be known (the standard requires one of the two)
    field = next((f for f in ("carrierBookingReference", "carrierBookingRequestReference") if f in data), None)
    if field is None:
        raise _Invalid("data.carrierBookingReference or data.carrierBookingRequestReference is required")
    shipment_id = _booking_shipment({_required(data, field, "data.")}, f"data.{field}")
    return BookingStatusEvent(
        event_type="booking_status",
        event_id=event_id,
        source=source,
        shipment_id=shipment_id,
        occurred_at=at,
        recorded_at=at,
        payload=BookingStatusPayload(action=action),
    )


_NOTIFICATIONS = {codes.TRANSPORT_DOCUMENT_NOTIFICATION: _transport_document, codes.BOOKING_NOTIFICATION: _booking}


def _booking_shipment(references: set[str], field: str) -> str | None:
    """The hub shipment id the MTO's booking reference is: the MTO books under the ids the registry gives it, so its
    DCSA `carrierBookingReference` is the hub shipment id. One transport document covers one shipment here."""
    if len(references) > 1:
        raise _Invalid(f"{field}: one through document covers one booking, got {', '.join(sorted(references))}")
    return _checked(_SHIPMENT, next(iter(references)), field) if references else None


def _unrecorded(status: str, field: str, known: frozenset[str], recorded: Mapping[str, object]) -> NoReturn:
    if status not in known:
        raise _Invalid(f"{field} {clip(status)!r} is not a status the standard defines ({', '.join(sorted(known))})")
    raise _Invalid(
        f"{field} {status} changes nothing the hub records: it records {', '.join(recorded)}",
        code=codes.NOT_RECORDED,
    )


# --- typed access to untrusted JSON ---------------------------------------------------------------------------------


def _optional(container: Doc | None, key: str, where: str) -> str | None:
    value = None if container is None else container.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise _Invalid(f"{where}{key} must be a non-empty string, got {kind_of(value)}")
    return value


def _required(container: Doc, key: str, where: str) -> str:
    value = _optional(container, key, where)
    if value is None:
        raise _Invalid(f"{where}{key} is required")
    return value


def _object(container: Doc | None, key: str, where: str, required: bool = False) -> Doc | None:
    value = None if container is None else container.get(key)
    if value is None:
        if required:
            raise _Invalid(f"{where}{key} is required")
        return None
    return _as_object(value, f"{where}{key}")


def _as_object(value: object, where: str) -> Doc:
    if not isinstance(value, dict):
        raise _Invalid(f"{where.rstrip('.')} must be a JSON object, got {kind_of(value)}")
    return value


def _list(container: Doc, key: str, where: str) -> list[object]:
    value = container.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise _Invalid(f"{where}{key} must be a JSON array, got {kind_of(value)}")
    return value


def _items(container: Doc, key: str, where: str) -> list[tuple[object, str]]:
    return [(item, f"{where}{key}.{index}.") for index, item in enumerate(_list(container, key, where))]


def _flag(container: Doc, key: str, where: str) -> bool:
    value = container.get(key, False)
    if not isinstance(value, bool):
        raise _Invalid(f"{where}{key} must be true or false, got {kind_of(value)}")
    return value


def _optional_time(container: Doc, key: str, where: str) -> datetime | None:
    value = container.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise _Invalid(f"{where}{key} must be an ISO 8601 timestamp string, got {kind_of(value)}")
    try:
        return _TIME.validate_python(value)
    except ValidationError as error:
        raise _Invalid(f"{where}{key}: {first_message(error)}") from None


def _time(container: Doc, key: str, where: str) -> datetime:
    value = _optional_time(container, key, where)
    if value is None:
        raise _Invalid(f"{where}{key} is required")
    return value


def _checked(adapter: TypeAdapter[str], value: str, field: str) -> str:
    """`value` validated by the schema's own identifier type; the reason names the field and the value."""
    try:
        return adapter.validate_python(value)
    except ValidationError as error:
        message = first_message(error)
        shown = repr(clip(value))
        raise _Invalid(f"{field}: {message}" if shown in message else f"{field} {shown}: {message}") from None


def _named(item: object) -> str:
    if not isinstance(item, dict):
        return ""
    for key in ("eventID", "id"):
        if isinstance(item.get(key), str):
            return f" ({key} {clip(item[key])!r})"
    return ""
