"""The merged shipment record: what one booking, its legs, documents, tracking, charges and cover add up to.

Every part names the event that set it (`set_by`, an event key `source/event_id`), so a reader can always
ask "says who?". The record is derived; the events are the truth (see streams.merge).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal

from pydantic import Field

from schemas.base import Frozen, Money, MoneyTotal, MultilineText, PlainText, UtcDatetime
from schemas.events import (
    BookingPayload,
    CarrierReference,
    ClaimStatus,
    CreditDocument,
    CreditTermsPayload,
    CustomsDirection,
    CustomsStatus,
    DocumentKind,
    IdentityPayload,
    LeftOutWhenEmpty,
    ModeCode,
    Party,
    Remarks,
    ShortCode,
    Text,
)
from schemas.invoices import CarrierInvoiceRecord
from schemas.identifiers import ClaimId, ContainerNumber, DocumentNumber, PartyId, ShipmentId, Sscc, UnLocode
from schemas.status import Classifier, LegStatus, ShipmentStatus, TrackingStatus

EventKey = Annotated[PlainText, Field(min_length=3, max_length=200)]
BookingState = Literal["requested", "confirmed", "rejected", "cancelled"]


class Milestone(Frozen):
    """The report chosen for one (status, classifier) on a leg: the first actual, the newest plan or estimate."""

    status: TrackingStatus
    classifier: Classifier
    at: UtcDatetime
    location: UnLocode | None
    raw_code: ShortCode
    code_list: ShortCode
    set_by: EventKey
    # The business transactions the report names (a delivery order, despatch advice...), each with its raw type.
    transactions: Annotated[list[CarrierReference], LeftOutWhenEmpty] = []


class Times(Frozen):
    planned: UtcDatetime | None = None
    estimated: UtcDatetime | None = None
    actual: UtcDatetime | None = None


class Endorsement(Frozen):
    """One link of a document's chain of holders (DCSA eBL transfer)."""

    holder: PartyId
    at: UtcDatetime
    set_by: EventKey


class Amendment(Frozen):
    """One step of a document's amendment (DCSA eBL): surrendered for amendment, voided, or issued again amended."""

    action: Literal["surrendered_for_amendment", "voided", "amended"]
    at: UtcDatetime
    set_by: EventKey


class DocumentRecord(Frozen):
    kind: DocumentKind
    number: DocumentNumber
    issuer: PartyId
    containers: list[ContainerNumber] = []
    set_by: EventKey
    status: Literal["issued", "surrendered", "surrendered_for_amendment", "voided"] = "issued"
    holder: PartyId | None = None
    endorsements: list[Endorsement] = []
    surrendered_by: EventKey | None = None
    # Its amendments in time order; `set_by` stays the first issuance, the last `amended` step is the version in force.
    amendments: Annotated[list[Amendment], LeftOutWhenEmpty] = []


class Rejected(Frozen):
    """An event the record refuses to apply, and why.

    `not_entitled`: its source may not say it (a carrier reporting on another carrier's leg); such an event is also
    dead-lettered. `conflict`: it contradicts the events held now (a second issuance, a transfer of a document not
    yet issued, a surrender by a party the chain of holders does not show as the holder); that may be an
    arrival-order effect that a later event resolves, so it is only listed here.
    """

    event: EventKey
    reason: MultilineText
    kind: Literal["not_entitled", "conflict"] = "conflict"


class HandoverRecord(Frozen):
    from_leg: int | None
    to_leg: int | None
    from_party: PartyId
    to_party: PartyId
    location: UnLocode
    at: UtcDatetime
    packages: int
    gross_weight_kg: Decimal
    set_by: EventKey
    ssccs: Annotated[list[Sscc], LeftOutWhenEmpty] = []  # the packages handed over, when listed


class CustodyRecord(Frozen):
    """Who had the cargo, from when until when: the MTO is responsible throughout, this says who held it."""

    party: PartyId
    role: Literal["shipper", "carrier", "consignee"]
    leg: int | None
    since: UtcDatetime | None
    until: UtcDatetime | None
    set_by: EventKey | None


class Discrepancy(Frozen):
    """A handover that counted or weighed other than the booking or the previous handover."""

    kind: Literal["packages", "weight"]
    compared_with: Literal["booking", "previous_handover"]
    expected: Decimal
    found: Decimal
    leg: int | None
    location: UnLocode
    at: UtcDatetime
    set_by: EventKey


class InvoiceRevision(Frozen):
    """One issue of the shipper's single invoice. A correction makes a new revision, never an edit."""

    invoice_id: str
    revision: int
    issued_at: UtcDatetime
    carrier_charges: list[MoneyTotal]
    margin: list[MoneyTotal]
    total: list[MoneyTotal]
    caused_by: list[EventKey]


class Note(Frozen):
    """The credit or debit note that takes the shipper from one invoice revision to the next, per currency."""

    note_id: str
    kind: Literal["credit", "debit"]
    to_revision: int
    amount: MoneyTotal
    caused_by: list[EventKey]


class PaymentRecord(Frozen):
    payment_id: str
    payer: PartyId
    amount: Money
    applied: MoneyTotal | None
    rate: Decimal | None
    rate_set_by: EventKey | None
    status: Literal["applied", "unallocated"]
    reason: str | None
    set_by: EventKey


class BalanceLine(Frozen):
    currency: str
    invoiced: Decimal
    paid: Decimal
    outstanding: Decimal
    status: Literal["open", "partially_paid", "paid", "overpaid"]


class Payout(Frozen):
    payout_id: str
    carrier: PartyId
    legs: list[int]
    amount: MoneyTotal
    # held: paid for, but waiting for the carrier's invoice to be verified (streams.invoices) or, with the MTO's
    # require_verified_parties, for the carrier's identity to be verified (streams.identity); `held_reason` says which
    status: Literal["pending", "released", "held"]
    held_reason: PlainText | None = None


class LedgerEntry(Frozen):
    """One line of the double-entry ledger. Per currency, debits equal credits."""

    entry_id: str
    account: str
    currency: str
    debit: Decimal
    credit: Decimal
    memo: PlainText
    caused_by: list[EventKey]


SettlementStatus = Literal["draft", "issued", "partially_paid", "paid", "overpaid"]


class SettlementRecord(Frozen):
    """One invoice to the shipper, its revisions and notes, the payments against it and the carriers' payouts."""

    status: SettlementStatus
    missing_charges_for_legs: list[int]
    invoices: list[InvoiceRevision]
    notes: list[Note]
    payments: list[PaymentRecord]
    balance: list[BalanceLine]
    payouts: list[Payout]
    ledger: list[LedgerEntry]


class LiabilityLimit(Frozen):
    """The MTO's limit of liability under the network rule, from the versioned liability table."""

    regime: str
    basis: str
    sdr: Decimal
    converted: MoneyTotal | None
    sdr_rate_set_by: EventKey | None
    table_version: str


class ChargeRecord(Frozen):
    carrier: PartyId
    code: ShortCode
    description: Text | None
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
    carrier_response: Literal["pending", "accepted", "declined"] = "pending"
    carrier_response_set_by: EventKey | None = None
    cover: str | None = None


class PolicyRecord(Frozen):
    policy_number: DocumentNumber
    insurer: PartyId
    insured_value: Money
    conditions: Remarks
    set_by: EventKey


ExceptionKind = Literal[
    "damage", "loss", "shortage", "delay", "temperature_excursion", "handover_discrepancy", "presumed_loss"
]


class ClaimRecord(Frozen):
    """One claim per exception (kind and leg), however often it is reported, for the insurer and for recourse."""

    claim_id: ClaimId
    kind: ExceptionKind
    policy_number: str | None
    insurer: PartyId | None
    evidence: list[EventKey]
    occurred_at: UtcDatetime
    location: UnLocode | None
    leg: int | None
    custody_carrier: PartyId | None
    localised: bool
    liable_carrier: PartyId | None
    affected_packages: int
    affected_weight_kg: Decimal
    liability: LiabilityLimit | None
    status: ClaimStatus
    settled_amount: Money | None
    status_set_by: EventKey | None


class InsuranceRecord(Frozen):
    """The one cargo policy for the whole journey; every leg inherits it (LegRecord.cover)."""

    policy: PolicyRecord | None
    unmatched_updates: list[EventKey] = []


# --- trade (issue 16) ---------------------------------------------------------------------------------------------


class CustomsStep(Frozen):
    status: CustomsStatus
    raw_code: ShortCode
    code_list: ShortCode
    at: UtcDatetime
    set_by: EventKey


class CustomsHold(Frozen):
    """An exception: customs holds the goods (a hold, or an inspection) until a later status clears it."""

    kind: Literal["held", "under_inspection"]
    opened_at: UtcDatetime
    opened_by: EventKey
    cleared_at: UtcDatetime | None = None
    cleared_by: EventKey | None = None
    remarks: Remarks | None = None


class CustomsDeclaration(Frozen):
    """One declaration at one port or border crossing, its current status and its history."""

    declaration_number: DocumentNumber
    direction: CustomsDirection
    office: ShortCode
    location: UnLocode
    leg: int | None
    declarant: PartyId
    status: CustomsStatus
    status_set_by: EventKey
    history: list[CustomsStep]
    holds: list[CustomsHold]


class PartyVerification(Frozen):
    """A party of the shipment and what a registry-trusted verifier found of its legal identity (the latest
    finding, `None` while unverified)."""

    party_id: PartyId
    relations: list[str]
    state: Literal["unverified", "verified", "failed", "expired"]
    finding: IdentityPayload | None = None
    set_by: EventKey | None = None


ConditionName = Literal["transport_document", "customs", "freight", "verified_parties"]


class ReleaseCondition(Frozen):
    name: ConditionName
    met: bool
    reason: PlainText
    set_by: list[EventKey] = []


class ReleaseRecord(Frozen):
    """The electronic cargo release at destination: issued to the party named for delivery once every condition
    holds, and issued for good from then on (`conditions` are those it was issued on); `blocked` with the conditions
    that do not."""

    status: Literal["blocked", "issued"]
    release_id: str | None
    to: PartyId | None
    location: UnLocode
    issued_at: UtcDatetime | None
    conditions: list[ReleaseCondition]
    # once issued the release stands (the hub's own fact, kept in the shipment's state): a condition that no longer
    # holds since, e.g. a retracted customs release, is noted here and un-issues nothing
    since_issued: list[PlainText] = []


class CreditDiscrepancy(Frozen):
    code: str
    rule: str
    reason: PlainText


class Presentation(Frozen):
    """Documents presented under the credit, the figures the hub checked and the result."""

    presented_at: UtcDatetime
    presented_by: PartyId
    documents: list[CreditDocument]
    shipment_date: UtcDatetime | None
    invoice: Money | None
    invoice_set_by: EventKey | None
    insured: Money | None
    result: Literal["complying", "discrepant"]
    discrepancies: list[CreditDiscrepancy]
    set_by: EventKey


class LetterOfCreditRecord(Frozen):
    terms: CreditTermsPayload
    terms_set_by: EventKey
    presentation: Presentation | None
DataQuality = Literal["primary", "default"]
DistanceBasis = Literal["carrier_reported", "booked", "great_circle"]


class LegEmissions(Frozen):
    """One leg's emissions (ISO 14083:2023, GLEC Framework). Without a figure (`wtw_kg_co2e` None) `missing` says
    why: never a guess. Quantities are kg CO2e, km, tonnes and g CO2e per tonne-km."""

    leg: int
    mode: ModeCode
    carrier: PartyId
    origin: UnLocode
    destination: UnLocode
    distance_km: Decimal | None
    distance_basis: DistanceBasis | None
    cargo_tonnes: Decimal
    tonne_km: Decimal | None
    vehicle_type: str | None
    intensity_wtw_g_per_tkm: Decimal | None
    intensity_ttw_g_per_tkm: Decimal | None
    wtw_kg_co2e: Decimal | None
    ttw_kg_co2e: Decimal | None
    share: Decimal | None  # of the journey's well-to-wheel total, among the legs with a figure
    data_quality: DataQuality | None
    factor_source: str | None
    set_by: list[EventKey]
    missing: str | None


class EmissionsRecord(Frozen):
    """The journey's emissions statement: every leg, and the totals over the legs that have a figure."""

    methodology: str
    factors_version: str
    factors_verified: bool  # the default factors were checked against the published GLEC tables
    locations_source: str
    legs: list[LegEmissions]
    wtw_kg_co2e: Decimal
    ttw_kg_co2e: Decimal
    complete: bool  # every leg has a figure


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
    booking_status: BookingState | None
    booking_status_set_by: EventKey | None
    booking_revised_at: UtcDatetime | None
    through_document: DocumentRecord | None
    legs: list[LegRecord]
    current_location: UnLocode | None
    location_set_by: EventKey | None
    journey_charges: list[ChargeRecord]
    charges_total: list[MoneyTotal]
    insurance: InsuranceRecord
    claims: list[ClaimRecord]
    settlement: SettlementRecord | None
    custody: list[CustodyRecord]
    handovers: list[HandoverRecord]
    discrepancies: list[Discrepancy]
    rejected: list[Rejected]
    events_applied: int
    retracted_events: int
    awaiting_placement: list[EventKey]
    updated_at: UtcDatetime | None
    # issue 16, appended with defaults so records and states stored before them still decode
    customs: list[CustomsDeclaration] = []
    verifications: list[PartyVerification] = []
    letter_of_credit: LetterOfCreditRecord | None = None
    release: ReleaseRecord | None = None
    carrier_invoices: Annotated[list[CarrierInvoiceRecord], LeftOutWhenEmpty] = []
    emissions: EmissionsRecord | None = None
