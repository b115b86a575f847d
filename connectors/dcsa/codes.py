"""DCSA Track & Trace codes and the canonical status each one maps to, with the names of their code lists.

Codes not in a table map to "unknown"; the parser always keeps the raw code and its list beside the status.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Mapping

from schemas.status import Classifier, TrackingStatus

# eventClassifierCode passes through unchanged: an estimate (EST) or a plan (PLN) never becomes an actual (ACT).
CLASSIFIERS: Mapping[str, Classifier] = {"PLN": "PLN", "EST": "EST", "ACT": "ACT"}

# A transport event is about the vessel (or barge, train, truck) calling at a place; the shipment travels with it.
TRANSPORT: Mapping[str, TrackingStatus] = {
    "ARRI": "arrived",
    "DEPA": "departed",
}

# Equipment events of a laden container. An EMPTY container's moves (empty pick-up for stuffing, empty return,
# repositioning) are equipment logistics, not the cargo's progress: the parser reports any event whose equipment is
# EMPTY as "unknown".
EQUIPMENT: Mapping[str, TrackingStatus] = {
    # Gate-in: the terminal operator is legally in possession of the container, i.e. the carrier has the cargo.
    "GTIN": "received",
    # Carrier haulage collecting the container at the shipper's premises: custody starts there.
    "PICK": "received",
    "LOAD": "loaded",
    "DISC": "discharged",
    # Gate-out: possession passes from the terminal to whoever picks the container up (the consignee's haulier or
    # the next leg's carrier). That is a hand-over of custody, not delivery to the consignee's door.
    "GTOT": "handed_over",
    # Carrier haulage dropping the container at the consignee's premises: the end of the carriage.
    "DROP": "delivered",
    # Stuffing and stripping happen at the shipper's or consignee's premises or at a CFS, often outside the carrier's
    # custody; they say nothing reliable about the carriage's progress, so they stay "unknown" (raw code kept).
    "STUF": "unknown",
    "STRP": "unknown",
}

# Shipment events are the lifecycle of a document (booking, shipping instruction, transport document), not cargo
# movement: every one maps to "unknown". The descriptions (2.2's eleven codes and 3.0's longer list) make the
# remarks readable; a code not listed is still kept raw.
SHIPMENT_DESCRIPTIONS: Mapping[str, str] = {
    "AMCF": "amendment confirmed",
    "AMCN": "amendment cancelled",
    "AMDC": "amendment declined",
    "AMPR": "amendment in progress",
    "AMRE": "amendment received",
    "APPR": "approved",
    "CACF": "cancellation confirmed",
    "CADC": "cancellation declined",
    "CARE": "cancellation received",
    "CMPL": "completed",
    "CONF": "confirmed",
    "DECL": "declined",
    "DRFT": "drafted",
    "HOLD": "on hold",
    "ISSU": "issued",
    "PENA": "pending approval",
    "PENM": "pending amendment",
    "PENU": "pending update",
    "PSAM": "pending surrender for amendment",
    "PSDL": "pending surrender for delivery",
    "RECE": "received",
    "REJE": "rejected",
    "RELS": "released",
    "REQS": "requested",
    "SUAM": "surrendered for amendment",
    "SUBM": "submitted",
    "SUDL": "surrendered for delivery",
    "SURR": "surrendered",
    "UPCF": "update confirmed",
    "UPCN": "update cancelled",
    "UPDC": "update declined",
    "UPDT": "update in progress",
    "UPRE": "update received",
    "VOID": "voided",
}


@dataclass(frozen=True)
class EventFamily:
    """One DCSA event type: the field holding its type code, that code list's name, and the code -> status table."""

    code_field: str
    code_list: str
    statuses: Mapping[str, TrackingStatus]


# Keyed by eventType (2.2) / eventClassification.eventTypeCode (3.0). IOT and REEFER are 3.0 only: sensor readings
# and reefer settings are not milestones, so all their codes are "unknown" (raw code kept).
FAMILIES: Mapping[str, EventFamily] = {
    "TRANSPORT": EventFamily("transportEventTypeCode", "DCSA-TransportEventTypeCode", TRANSPORT),
    "EQUIPMENT": EventFamily("equipmentEventTypeCode", "DCSA-EquipmentEventTypeCode", EQUIPMENT),
    "SHIPMENT": EventFamily("shipmentEventTypeCode", "DCSA-ShipmentEventTypeCode", {}),
    "IOT": EventFamily("iotEventTypeCode", "DCSA-IotEventTypeCode", {}),
    "REEFER": EventFamily("reeferEventTypeCode", "DCSA-ReeferEventTypeCode", {}),
}

# Document type codes that carry one of the carrier's own references to the shipment.
BOOKING_DOCUMENT = "BKG"
# Shipment reference types (2.2 `referenceType`, 3.0 `ShipmentReference.typeCode`) the hub resolves.
EQUIPMENT_REFERENCE = "EQ"
FORWARDER_REFERENCE = "FF"  # Freight Forwarder's Reference: the MTO's own
# Reference types naming another business transaction: a `business_transaction` reference with this code as its type.
TRANSACTION_REFERENCES = frozenset(
    {
        "SI",  # Shipper's Reference
        "PO",  # Purchase Order Reference
        "CR",  # Customer's Reference
        "AAO",  # Consignee's Reference
    }
)
TRANSPORT_DOCUMENT = "TRD"
# DCSA eBL's transportDocumentTypeCode: a sea waybill is not a bill of lading (it is not a document of title).
SEA_WAYBILL_TYPE = "SWB"


# --- DCSA eBL 3.0 and Booking 2.0 notifications (CloudEvents `type`, and the status codes as the standards list them)

TRANSPORT_DOCUMENT_NOTIFICATION = "org.dcsa.transport-document.v3"
BOOKING_NOTIFICATION = "org.dcsa.booking.v2"
# A rejection code for a message the standard defines whose status the hub has nothing to record for.
NOT_RECORDED = "not_recorded"

# eBL 3.0 `transportDocumentStatus`. The TransportDocument schema spells SURRENDERED_FOR_AMENDMENT, VOIDED and
# SURRENDERED_FOR_DELIVERY; the notification's own description spells SURRENDER_FOR_AMENDMENT, VOID and
# SURRENDER_FOR_DELIVERY. Both spellings are the standard's text, and both are read.
DOCUMENT_ACTIONS: Mapping[str, Literal["issued", "surrendered", "surrendered_for_amendment", "voided"]] = {
    "ISSUED": "issued",  # again after a surrender for amendment or a void: the amended document
    "SURRENDERED_FOR_DELIVERY": "surrendered",
    "SURRENDER_FOR_DELIVERY": "surrendered",
    "SURRENDERED_FOR_AMENDMENT": "surrendered_for_amendment",
    "SURRENDER_FOR_AMENDMENT": "surrendered_for_amendment",
    "VOIDED": "voided",
    "VOID": "voided",
}
# Before issuance (a draft, its approval) and while a surrender is pending, nothing about the document has changed.
DOCUMENT_STATUSES = frozenset(
    {*DOCUMENT_ACTIONS, "DRAFT", "APPROVED", "PENDING_SURRENDER_FOR_AMENDMENT", "PENDING_SURRENDER_FOR_DELIVERY"}
)

# Booking 2.0 `bookingStatus`: the provider's decisions. REJECTED discontinues a booking before confirmation,
# DECLINED after it (the hub's cancellation: final), CANCELLED is the consumer's own discontinuation.
BOOKING_ACTIONS: Mapping[str, Literal["confirmed", "rejected", "cancelled"]] = {
    "CONFIRMED": "confirmed",
    "REJECTED": "rejected",
    "DECLINED": "cancelled",
    "CANCELLED": "cancelled",
}
# The request's own progress and the document's completion are not decisions on the booking.
BOOKING_STATUSES = frozenset({*BOOKING_ACTIONS, "RECEIVED", "PENDING_UPDATE", "UPDATE_RECEIVED", "PENDING_AMENDMENT", "COMPLETED"})
# `bookingCancellationStatus`: a confirmed booking's cancellation, once the provider confirms it.
CANCELLATION_CONFIRMED = "CANCELLATION_CONFIRMED"

# Bare documents of the DCSA documentation standards, with why each is not read on its own.
DOCUMENT_SHAPES: Mapping[str, str] = {
    "surrenderRequestCode": (
        "an eBL surrender request (SREQ/AREQ) is the holder's request to the issuer, not the surrender: the issuer's "
        "transport document notification (SURRENDERED_FOR_DELIVERY, SURRENDERED_FOR_AMENDMENT) records it"
    ),
    "transportDocumentStatus": (
        "a bare eBL transport document has no event identity or time: send its notification "
        f"(CloudEvents type {TRANSPORT_DOCUMENT_NOTIFICATION})"
    ),
    "bookingStatus": (
        f"a bare booking has no event identity or time: send its notification (CloudEvents type {BOOKING_NOTIFICATION})"
    ),
}
