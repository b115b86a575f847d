"""The merged shipment record: what one booking, its legs, documents, tracking, charges and cover add up to.

Every part names the event that set it (`set_by`, an event key `source/event_id`), so a reader can always
ask "says who?". The record is derived; the events are the truth (see streams.merge).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from schemas.base import Frozen, Money, MoneyTotal, UtcDatetime
from schemas.events import BookingPayload, ClaimStatus, DocumentKind, ModeCode, Party, ShortCode
from schemas.identifiers import ContainerNumber, DocumentNumber, PartyId, ShipmentId, UnLocode
from schemas.status import Classifier, LegStatus, ShipmentStatus, TrackingStatus

EventKey = Annotated[str, Field(min_length=3, max_length=200)]


class Milestone(Frozen):
    """The report chosen for one (status, classifier) on a leg: the first actual, the newest plan or estimate."""

    status: TrackingStatus
    classifier: Classifier
    at: UtcDatetime
    location: UnLocode | None
    raw_code: ShortCode
    code_list: ShortCode
    set_by: EventKey


class Times(Frozen):
    planned: UtcDatetime | None = None
    estimated: UtcDatetime | None = None
    actual: UtcDatetime | None = None


class DocumentRecord(Frozen):
    kind: DocumentKind
    number: DocumentNumber
    issuer: PartyId
    containers: list[ContainerNumber] = []
    set_by: EventKey


class ChargeRecord(Frozen):
    carrier: PartyId
    code: ShortCode
    description: str | None
    amount: Money
    set_by: EventKey


class LegRecord(Frozen):
    sequence: int
    mode: ModeCode
    carrier: PartyId
    origin: UnLocode
    destination: UnLocode
    status: LegStatus
    status_set_by: EventKey | None
    departure: Times
    arrival: Times
    milestones: list[Milestone]
    exceptions: list[Milestone]
    unmapped: list[Milestone]
    documents: list[DocumentRecord]
    charges: list[ChargeRecord]


class PolicyRecord(Frozen):
    policy_number: DocumentNumber
    insurer: PartyId
    insured_value: Money
    conditions: str
    set_by: EventKey


class ClaimRecord(Frozen):
    claim_id: DocumentNumber
    status: ClaimStatus
    amount: Money | None
    set_by: EventKey


class InsuranceRecord(Frozen):
    policy: PolicyRecord | None
    claims: list[ClaimRecord]


class ShipmentRecord(Frozen):
    """One shipment as the hub knows it. `version` counts the distinct event copies the hub has taken in."""

    shipment_id: ShipmentId
    version: int
    status: ShipmentStatus
    responsible_operator: PartyId | None
    shipper: Party | None
    consignee: Party | None
    booking: BookingPayload | None
    booking_set_by: EventKey | None
    through_document: DocumentRecord | None
    legs: list[LegRecord]
    current_location: UnLocode | None
    location_set_by: EventKey | None
    journey_charges: list[ChargeRecord]
    charges_total: list[MoneyTotal]
    insurance: InsuranceRecord
    events_applied: int
    retracted_events: int
    awaiting_placement: list[EventKey]
    updated_at: UtcDatetime | None
