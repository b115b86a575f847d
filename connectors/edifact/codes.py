"""The UN/EDIFACT code values the IFTSTA parser reads, each table in one place, with where its numbers come from.

Sources (public copies read while writing this):
- STS status codes (data element 9011/4405, "for transport status, use UN/ECE Recommendation 24"): numbers and
  names of codes 1-46 from the UN/ECE Rec 24 list as published in the OASIS UBL TransportationStatusCode code list;
  codes 47-103 from the UN/EDIFACT D.96B directory's 9011 "Status event, coded" list, which is Rec 24's list.
- DTM qualifiers (2005) from the UNTDID 2005 code list; RFF qualifiers (1153) from the UNTDID 1153 code list.
"""

from __future__ import annotations

from typing import Final

from schemas.status import Classifier, TrackingStatus

CODE_LIST: Final = "UNECE-Rec24"

# UN/ECE Rec 24 status code -> canonical status. Any code not listed maps to "unknown", its raw code kept.
# Left out on purpose, because no canonical status says what they say: 6 booked, 12 cleared by customs (a release,
# not a hold), 16 crossed border, 31 en route, 46 into bond, and the equipment housekeeping codes.
STATUS: Final[dict[str, TrackingStatus]] = {
    "1": "arrived",  # Arrived / Arrival, completed
    "3": "damaged",  # Arrived in defective condition: the incident matters more than the arrival
    "13": "received",  # Collected / Collection (pick-up), completed
    "17": "held",  # Customs refusal / Customs clearance, refused
    "18": "damaged",  # Damaged (in the course of transport)
    "20": "delayed",  # Delayed (in the course of transport)
    "21": "delivered",  # Delivered / Delivery, completed
    "22": "delivered",  # Delivery completed (as per instruction)
    "24": "departed",  # Departed / Departure, completed
    "25": "delayed",  # Departure delay(ed)
    "26": "discharged",  # Deramped: taken off a rail wagon
    "27": "departed",  # Despatched / Despatch, completed
    "29": "discharged",  # Discharged / Unloaded
    "40": "arrived",  # (Arrival) at port
    "41": "handed_over",  # Handover / Handed over under continued responsibility
    "42": "handed_over",  # Handover delivered
    "43": "handed_over",  # Handover received
    "48": "loaded",  # Loaded
    "49": "lost",  # Lost
    "59": "discharged",  # Off loaded
    "74": "received",  # Received
    "79": "loaded",  # Reloaded
    "85": "shortage",  # Short landed
    "90": "held",  # Stopped
    "101": "delayed",  # Transit delay
}

# DTM qualifiers (2005) that give a status its event time, and the classifier each implies. When a status group
# carries several, an actual time wins over an estimate, an estimate over a plan (a departure report may also
# carry the estimated arrival at the next stop).
EVENT_TIME: Final[dict[str, Classifier]] = {
    "334": "ACT",  # Status change date/time
    "78": "ACT",  # Event date/time/period, actual
    "136": "ACT",  # Transport means departure date/time, actual
    "186": "ACT",  # Transport means departure date/time, actual
    "178": "ACT",  # Transport means arrival date/time, actual
    "35": "ACT",  # Delivery date/time, actual
    "143": "ACT",  # Consignment acceptance date/time, actual
    "132": "EST",  # Transport means arrival date/time, estimated
    "133": "EST",  # Transport means departure date/time, estimated
    "17": "EST",  # Delivery date/time, estimated
    "191": "EST",  # Delivery date/time, expected
    "189": "PLN",  # Transport means departure date/time, scheduled
    "232": "PLN",  # Transport means arrival date/time, scheduled
    "76": "PLN",  # Delivery date/time, scheduled for
}
CLASSIFIER_PRECEDENCE: Final[dict[Classifier, int]] = {"ACT": 0, "EST": 1, "PLN": 2}

DOCUMENT_TIME: Final = "137"  # Document issue date/time: when the carrier wrote the report -> recorded_at

# DTM format codes (2379) the parser reads. 203 and 204 carry no time zone: the parser reads them as UTC.
# Why UTC and not a rejection: many senders use 203 only, and the hub cannot know a sender's local zone from
# the message (it has no time-zone table per UN/LOCODE). Reading them as UTC keeps the traffic flowing; a sender whose
# 203/204 times are local must be told, when onboarded, to send 205, which carries its own offset.
FORMAT_MINUTES: Final = "203"  # CCYYMMDDHHMM
FORMAT_SECONDS: Final = "204"  # CCYYMMDDHHMMSS
# CCYYMMDDHHMMZHHMM, Z the sign of the offset from UTC; a "+" arrives released ("?+") where it is the element separator
FORMAT_ZONED: Final = "205"

# RFF qualifiers (1153) naming a document the carrier knows the consignment by -> CarrierReference kind. Other
# qualifiers (e.g. AAM generic waybill, CU consignor's reference) are not carrier references the hub can resolve.
REFERENCE_KINDS: Final[dict[str, str]] = {
    "BM": "bill_of_lading",  # Bill of lading number (1001 = 705)
    "AEX": "sea_waybill",  # Non-negotiable maritime transport document number (sea waybill, 1001 = 712)
    "CMR": "cmr",  # Road consignment note number (1001 = 730)
    "RCN": "rail_waybill",  # Railway consignment note number (1001 = 720)
    "AWB": "air_waybill",  # Air waybill number (1001 = 740)
    "BN": "carrier_booking",  # Consignment identifier, carrier assigned (booking reference)
    "FF": "forwarder_reference",  # Freight forwarder's reference number: the MTO's own
}

# RFF qualifiers (1153) naming another business transaction (an order, a delivery order or note, a despatch advice): a
# `business_transaction` reference whose `type` is the qualifier as sent. A party's own reference (CU) is not one.
TRANSACTION_QUALIFIERS: Final = frozenset(
    {
        "ON",  # Order number (buyer)
        "VN",  # Order number (supplier)
        "AAJ",  # Delivery order number
        "DQ",  # Delivery note number
        "AAK",  # Despatch advice number
    }
)

CONTAINER_EQUIPMENT: Final = "CN"  # EQD equipment type qualifier (8053) for a container

MESSAGE_TYPE: Final = "IFTSTA"
# BGM message function (1225): only originals are read. A replacement, change or cancellation would need the
# statuses it replaces, which the message does not identify; accepting one as new statuses would duplicate them.
ORIGINAL: Final = "9"
ORIGINAL_FUNCTIONS: Final = frozenset({"", ORIGINAL})  # absent means original: it is part of an event id as "9"

# Syntax level defaults when the interchange has no UNA service string advice.
DEFAULT_SEPARATORS: Final = ":+.? '"  # component, element, decimal mark, release, reserved, segment terminator

MAX_INTERCHANGE_BYTES: Final = 1024 * 1024
MAX_REFERENCES: Final = 20  # the canonical envelope's limit: a message header naming more is refused once, not per status
