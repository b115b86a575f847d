"""ONE Record LogisticsEvent codes and the canonical status each one maps to.

`eventCode` carries the IATA Cargo-IMP status codes (the FSU message's codes, also used by Cargo-XML XFSU). Codes not
in the table map to "unknown"; the parser keeps the raw code and this code list name beside the status.
"""

from __future__ import annotations

from typing import Mapping

from schemas.status import Classifier, TrackingStatus

STATUS_CODE_LIST = "IATA-CargoIMP-StatusCode"

STATUS: Mapping[str, TrackingStatus] = {
    # Booked: a booking status, not a movement. The booking itself reaches the hub through the MTO's booking.
    "BKD": "unknown",
    # Freight on hand: at the carrier's warehouse but not yet accepted for carriage (documents or checks missing).
    "FOH": "unknown",
    # Received from shipper (acceptance): the carrier takes custody; the air equivalent of a gate-in.
    "RCS": "received",
    # Received from / transferred to another airline at a transfer point: custody passes between carriers.
    "RCT": "received",
    "TFD": "handed_over",
    # Manifested and prepared for loading are paperwork and build-up: the cargo has not left yet.
    "MAN": "unknown",
    "PRE": "unknown",
    "DEP": "departed",
    "ARR": "arrived",
    # Received from flight: broken down from the aircraft and checked in at the arrival warehouse, the air
    # equivalent of an ocean discharge (DISC).
    "RCF": "discharged",
    # Notified for delivery: the consignee has been told the cargo is ready at destination. That proves arrival,
    # so it maps to "arrived" as a lower bound; its time is the notification's, not the arrival's, and precedence
    # keeps an earlier RCF ("discharged") from being undone.
    "NFD": "arrived",
    # Document events and customs status: not cargo movement.
    "AWR": "unknown",
    "AWD": "unknown",
    "CCD": "unknown",
    # A discrepancy report needs its discrepancy code (missing, found, offloaded...) to say which incident it is.
    "DIS": "unknown",
    "DLV": "delivered",
    "DDL": "delivered",
}

# eventTimeType (3.0: named individuals cargo:ACTUAL, cargo:ESTIMATED, cargo:PLANNED; 2.x examples: "Actual").
TIME_TYPES: Mapping[str, Classifier] = {
    "ACTUAL": "ACT",
    "ESTIMATED": "EST",
    "PLANNED": "PLN",
}
