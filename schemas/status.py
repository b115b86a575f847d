"""The canonical tracking vocabulary and the precedence that orders a leg's progress.

A small normalised set (as Karrio does); carriers' own codes are mapped onto it by the connectors and kept raw
beside it. Incidents are separate from progress: a damage report never moves a leg forward or back.
"""

from __future__ import annotations

from typing import Literal, get_args

Classifier = Literal["PLN", "EST", "ACT"]

ProgressStatus = Literal["received", "loaded", "departed", "arrived", "discharged", "handed_over", "delivered"]
IncidentStatus = Literal["damaged", "lost", "shortage", "delayed", "held", "temperature_excursion"]
TrackingStatus = Literal[ProgressStatus, IncidentStatus, "unknown"]

# Later in the list = further along. A leg's status is the furthest actual milestone, whatever order reports come in.
PROGRESS_ORDER: tuple[ProgressStatus, ...] = get_args(ProgressStatus)
PRECEDENCE: dict[str, int] = {status: rank for rank, status in enumerate(PROGRESS_ORDER, start=1)}
INCIDENTS: frozenset[str] = frozenset(get_args(IncidentStatus))

# Milestones reached at the leg's start; the others happen at its end. Used when a report names no location.
AT_ORIGIN: frozenset[str] = frozenset({"received", "loaded", "departed"})

LegStatus = Literal["planned", ProgressStatus]
ShipmentStatus = Literal["awaiting_booking", "booked", "in_transit", "delivered", "cancelled", "rejected"]
