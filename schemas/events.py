"""Canonical hub events: one envelope shared by every event, and a typed payload per family.

Families: booking, waybill (documents), tracking, settlement (charges) and insurance. Every carrier format
is mapped into these before anything else in the hub sees it.
"""

from __future__ import annotations

import hashlib
from decimal import Decimal
from typing import Annotated, Any, Literal, Union

from pydantic import (
    BeforeValidator,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from schemas.base import (
    Frozen,
    Money,
    MultilineText,
    NonNegativeDecimal,
    PlainText,
    StrictDecimal,
    UtcDatetime,
    empty_list,
)
from schemas.identifiers import (
    AirWaybillNumber,
    ClaimId,
    ContainerNumber,
    CurrencyCode,
    DocumentNumber,
    Eori,
    EventId,
    Lei,
    PartyId,
    ShipmentId,
    SiteId,
    Sscc,
    TransportMode,
    UnLocode,
    Uscc,
)
from schemas.invoices import CarrierInvoicePayload, InvoiceVerificationPayload
from schemas.status import Classifier, TrackingStatus

# Every free-text field is one of these: the text rule (schemas.base) refuses control characters and lone
# surrogates with a reason, so nothing the hub accepts is refused later by Postgres or a terminal.
Text = Annotated[PlainText, StringConstraints(min_length=1, max_length=500)]
Remarks = Annotated[MultilineText, StringConstraints(min_length=1, max_length=500)]
ShortCode = Annotated[PlainText, StringConstraints(min_length=1, max_length=35)]
LegNumber = Annotated[int, Field(ge=1, le=16)]
DistanceKm = Annotated[StrictDecimal, Field(gt=0, le=40_000)]
# A mass or a volume of cargo: a billion kg (m3) is beyond any shipment, so the liability limits, emissions and
# pro-rata shares worked out of it stay within the fold's decimal precision. Unbounded (up to 1E80 by the decimal
# rule), a carrier's damage report with an absurd weight made the shipment's merge raise.
Kilograms = Annotated[NonNegativeDecimal, Field(le=1_000_000_000)]
CubicMetres = Annotated[NonNegativeDecimal, Field(le=1_000_000_000)]
# An exchange rate within 1E-12..1E12 either way (the hub inverts rates): the same reason.
ExchangeRate = Annotated[StrictDecimal, Field(ge=Decimal("1E-12"), le=Decimal("1E12"))]


def _mode_from_code(value: Any) -> Any:
    # JSON carries the Rec 19 code as an integer; strict mode would otherwise demand the enum object.
    if isinstance(value, TransportMode):
        return value
    if isinstance(value, int) and not isinstance(value, bool) and value in TransportMode._value2member_map_:
        return TransportMode(value)
    raise ValueError(f"{value!r} is not a UN/ECE Rec 19 mode code (1-8), sent as an integer")


ModeCode = Annotated[TransportMode, BeforeValidator(_mode_from_code)]


def _empty(value: object) -> bool:
    return value is None or value == []


def _packages_from_ssccs(data: Any) -> Any:
    """The packages a report lists one by one (`ssccs`) are its count: `packages` becomes the number of distinct
    SSCCs, and a `packages` sent beside them must agree. The list is kept sorted and without repeats, so two reports of
    the same packages are the same whatever order they name them in."""
    if not isinstance(data, dict):
        return data
    listed = data.get("ssccs")
    if not isinstance(listed, list) or not listed or not all(isinstance(item, str) for item in listed):
        return data  # absent or empty: the count stands alone; anything else: the field's own validation says why
    distinct = sorted(set(listed))
    count = data.get("packages")
    if count is not None and count != len(distinct):
        raise ValueError(f"packages {count!r} disagrees with the {len(distinct)} distinct SSCCs listed, which are the count")
    return {**data, "ssccs": distinct, "packages": len(distinct)}


# The packages listed by SSCC (a report or handover naming each logistic unit): at most one per package of a cargo.
SsccList = Annotated[list[Sscc], Field(max_length=1_000_000)]


# A field added later that the JSON leaves out when it is empty, so an event that does not use it serialises (and
# fingerprints) as it did before the field existed.
LeftOutWhenEmpty = Field(exclude_if=_empty)


class Party(Frozen):
    """A party to the shipment. `contact` is personal data and is graded as such when shared."""

    party_id: PartyId
    name: Text
    contact: Text | None = None


class DangerousGoods(Frozen):
    un_number: Annotated[str, StringConstraints(pattern=r"^UN[0-9]{4}$")]
    hazard_class: Annotated[str, StringConstraints(pattern=r"^[1-9](\.[1-6])?[A-Z]?$")]


class Cargo(Frozen):
    description: Remarks
    pieces: Annotated[int, Field(ge=1, le=1_000_000)]
    packages: Annotated[int, Field(ge=1, le=1_000_000)]
    gross_weight_kg: Kilograms
    volume_m3: CubicMetres | None = None
    containers: Annotated[list[ContainerNumber], Field(max_length=200)] = empty_list()
    dangerous_goods: Annotated[list[DangerousGoods], Field(max_length=50)] = empty_list()


ReferenceKind = Literal[
    "container",
    "air_waybill",
    "bill_of_lading",
    "sea_waybill",
    "cmr",
    "rail_waybill",
    "carrier_booking",
    "event",
    "forwarder_reference",
    "business_transaction",
    "sscc",
    "sgln",
    "transport_document",
]
# A business transaction's type as sent: a CBV short name or URI, a DCSA code, an UNTDID 1153 qualifier.
TransactionType = Annotated[PlainText, StringConstraints(min_length=1, max_length=200)]


class CarrierReference(Frozen):
    """How a carrier knows the shipment when it does not know the hub's id.

    `event` names one event identity (see `identity_reference`): a retraction that carries nothing but the
    identity it discards (DCSA T&T 3.0) reaches the shipment holding that event through it. `forwarder_reference` is
    the forwarder's or MTO's own reference (DCSA `FF`, IFTSTA `RFF+FF`); `business_transaction` another business
    transaction's id (an EPCIS delivery order, despatch advice, purchase order...), with `type`, the transaction's
    type as its standard names it (EPCIS bizTransactionList `type`, the DCSA reference type code, the IFTSTA RFF
    qualifier); `sscc` a package's Serial Shipping Container Code (18 digits); `sgln` a site's GLN, with `/` and its
    extension when it has one; `transport_document` the number of the MTO's through document (a DCSA eBL
    `transportDocumentReference`), which the through document registers once issued.
    The type does not take part in resolution: a reference is its kind and value.
    """

    kind: ReferenceKind
    value: DocumentNumber
    type: Annotated[TransactionType | None, LeftOutWhenEmpty] = None

    @model_validator(mode="after")
    def _typed_transactions_only(self) -> CarrierReference:
        if self.type is not None and self.kind != "business_transaction":
            raise ValueError(f"only a business transaction carries its raw `type`, not a {self.kind} reference")
        return self


def identity_reference(source: str, event_id: str) -> CarrierReference:
    """The reference of the event identity (source, event_id): a digest, as identities are longer than references."""
    return CarrierReference(kind="event", value=hashlib.sha256(f"{source}/{event_id}".encode()).hexdigest()[:32])


class PlannedLeg(Frozen):
    """One leg the MTO has planned and subcontracted to a carrier."""

    sequence: LegNumber
    mode: ModeCode
    carrier: PartyId
    origin: UnLocode
    destination: UnLocode
    planned_departure: UtcDatetime | None = None
    planned_arrival: UtcDatetime | None = None
    # The leg carrier's own booking reference, when it gave one: its events may name only that.
    carrier_booking: DocumentNumber | None = None
    # Other references the MTO already knows for the leg (its B/L, rail waybill or AWB number, the packages' SSCCs,
    # the sites' GLNs): they name the shipment from the booking on, before any document event.
    references: Annotated[list[CarrierReference], Field(max_length=50), LeftOutWhenEmpty] = empty_list()
    # For the emissions statement (streams.emissions): the distance the MTO booked the leg for, and the vehicle
    # type (a key of the mode's GLEC defaults in streams/reference/glec_factors.json).
    distance_km: Annotated[DistanceKm | None, LeftOutWhenEmpty] = None
    vehicle_type: Annotated[ShortCode | None, LeftOutWhenEmpty] = None

    @model_validator(mode="after")
    def _distinct_ends(self) -> PlannedLeg:
        if self.origin == self.destination:
            raise ValueError(f"leg {self.sequence} starts and ends at {self.origin}")
        return self


class BookingPayload(Frozen):
    """The shipper's one booking with the MTO, with the legs the MTO planned for it."""

    shipper: Party
    consignee: Party
    mto: PartyId
    cargo: Cargo
    declared_value: Money
    legs: Annotated[list[PlannedLeg], Field(min_length=1, max_length=16)]
    requested_delivery: UtcDatetime | None = None
    insurance_requested: bool = False
    # The consignee's sites (GLN, or GLN/extension for a part of one; a bare GLN covers its parts): a carrier's CBV
    # `receiving` there delivers the last leg, whatever UN/LOCODE the event gives.
    consignee_sites: Annotated[list[SiteId], Field(max_length=20), LeftOutWhenEmpty] = empty_list()

    @model_validator(mode="after")
    def _legs_form_a_chain(self) -> BookingPayload:
        sequences = [leg.sequence for leg in self.legs]
        if sequences != list(range(1, len(self.legs) + 1)):
            raise ValueError(f"legs must be numbered 1..{len(self.legs)} in order, got {sequences}")
        for before, after in zip(self.legs, self.legs[1:]):
            if before.destination != after.origin:
                raise ValueError(
                    f"leg {after.sequence} starts at {after.origin} but leg {before.sequence} ends at {before.destination}"
                )
        return self


DocumentKind = Literal[
    "multimodal_transport_document",
    "cmr",
    "cim",
    "smgs",
    "rail_waybill",
    "road_consignment_note",
    "sea_waybill",
    "bill_of_lading",
    "air_waybill",
    "inland_waybill",
]
_AWB = TypeAdapter(AirWaybillNumber)


DocumentAction = Literal["issued", "transferred", "surrendered", "surrendered_for_amendment", "voided"]


class WaybillPayload(Frozen):
    """A transport document: a carrier's own for one leg, or the MTO's through document (no leg).

    Like a DCSA eBL it is `issued` once, may be `transferred` to a new `holder` (endorsement), and is
    `surrendered` for delivery exactly once. To be amended it is `surrendered_for_amendment` (a negotiable one) or
    `voided`, then `issued` again: that second issuance is the amended document (streams.documents).
    """

    document_kind: DocumentKind
    document_number: DocumentNumber
    issuer: PartyId
    leg: LegNumber | None = None
    containers: Annotated[list[ContainerNumber], Field(max_length=200)] = empty_list()
    action: DocumentAction = "issued"
    holder: PartyId | None = None

    @model_validator(mode="before")
    @classmethod
    def _normalise_air_waybill(cls, data: Any) -> Any:
        # "02012345675" and "020-12345675" are one air waybill: keep the hyphenated form, so they group as one.
        if isinstance(data, dict) and data.get("document_kind") == "air_waybill":
            number = data.get("document_number")
            if isinstance(number, str):
                try:
                    data = {**data, "document_number": _AWB.validate_python(number)}
                except ValidationError:
                    pass  # left as sent: the check below reports what is wrong with it
        return data

    @model_validator(mode="after")
    def _leg_matches_kind(self) -> WaybillPayload:
        through = self.document_kind == "multimodal_transport_document"
        if through and self.leg is not None:
            raise ValueError("the multimodal transport document covers the whole journey and names no leg")
        if not through and self.leg is None:
            raise ValueError(f"a {self.document_kind} document belongs to one leg: set `leg`")
        if self.document_kind == "air_waybill":
            _AWB.validate_python(self.document_number)
        if self.action == "transferred" and self.holder is None:
            raise ValueError("a transfer names the new `holder`")
        return self


class TrackingPayload(Frozen):
    """A status report. The carrier's raw code and its code list stay beside the canonical status."""

    status: TrackingStatus
    raw_code: ShortCode
    code_list: ShortCode
    leg: LegNumber | None = None
    location: UnLocode | None = None
    container: ContainerNumber | None = None
    transport_means: ShortCode | None = None
    remarks: Remarks | None = None
    affected_packages: Annotated[int, Field(ge=0, le=1_000_000)] | None = None
    affected_weight_kg: Kilograms | None = None
    # The GS1 site where it happened (EPCIS: the SGLN of bizLocation, else of readPoint), beside the UN/LOCODE.
    site: Annotated[SiteId | None, LeftOutWhenEmpty] = None
    # How many packages the report names one by one (EPCIS: its SSCCs), a count of what was there like a handover's.
    packages: Annotated[int | None, Field(ge=1, le=1_000_000), LeftOutWhenEmpty] = None
    # Those packages' SSCCs, when the report lists them: then they are `packages` (see _packages_from_ssccs).
    ssccs: Annotated[SsccList, LeftOutWhenEmpty] = empty_list()

    _count = model_validator(mode="before")(_packages_from_ssccs)


class ChargeLine(Frozen):
    code: ShortCode
    description: Text | None = None
    amount: Money


class SettlementPayload(Frozen):
    """A carrier's charges for one leg (or the MTO's for the journey when `leg` is absent)."""

    carrier: PartyId
    leg: LegNumber | None = None
    charges: Annotated[list[ChargeLine], Field(min_length=1, max_length=100)]


class PolicyBound(Frozen):
    action: Literal["policy_bound"]
    policy_number: DocumentNumber
    insurer: PartyId
    insured_value: Money
    conditions: Remarks


ClaimStatus = Literal["opened", "acknowledged", "assessed", "settled", "rejected"]


class ClaimUpdate(Frozen):
    action: Literal["claim_update"]
    claim_id: ClaimId
    status: ClaimStatus
    amount: Money | None = None
    remarks: Remarks | None = None


InsurancePayload = Annotated[Union[PolicyBound, ClaimUpdate], Field(discriminator="action")]


BookingAction = Literal["confirmed", "rejected", "cancelled", "leg_accepted", "leg_declined"]


class BookingStatusPayload(Frozen):
    """The booking's lifecycle: the MTO confirms, rejects or cancels it; a carrier accepts or declines its leg.

    An amendment is not a status: it is a new revision (same event id, later `revised_at`) of the booking.
    """

    action: BookingAction
    leg: LegNumber | None = None
    reason: Remarks | None = None

    @model_validator(mode="after")
    def _leg_for_leg_actions(self) -> BookingStatusPayload:
        if self.action.startswith("leg_") and self.leg is None:
            raise ValueError(f"`{self.action}` answers for one leg: set `leg`")
        if not self.action.startswith("leg_") and self.leg is not None:
            raise ValueError(f"`{self.action}` is about the whole booking and names no leg")
        return self


class HandoverPayload(Frozen):
    """Custody passing from one leg's carrier to the next (no `from_leg`: from the shipper; no `to_leg`: to the
    consignee), with what was counted and weighed at that moment."""

    from_leg: LegNumber | None
    to_leg: LegNumber | None
    location: UnLocode
    packages: Annotated[int, Field(ge=0, le=1_000_000)]
    gross_weight_kg: Kilograms
    seals: Annotated[list[ShortCode], Field(max_length=20)] = empty_list()
    remarks: Remarks | None = None
    # The packages handed over, by SSCC: when listed, their number is `packages` (see _packages_from_ssccs).
    ssccs: Annotated[SsccList, LeftOutWhenEmpty] = empty_list()

    _count = model_validator(mode="before")(_packages_from_ssccs)

    @model_validator(mode="after")
    def _between_legs(self) -> HandoverPayload:
        if self.from_leg is None and self.to_leg is None:
            raise ValueError("a handover names the leg handing over (`from_leg`), taking over (`to_leg`), or both")
        if self.from_leg is not None and self.to_leg is not None and self.to_leg != self.from_leg + 1:
            raise ValueError(f"a handover goes from leg {self.from_leg} to leg {self.from_leg + 1}, not {self.to_leg}")
        return self


class MarginPayload(Frozen):
    """The MTO's margin on top of the carriers' charges: a percentage per currency and/or fixed amounts."""

    percent: Annotated[StrictDecimal, Field(ge=0, le=100)] = Decimal(0)
    fixed: Annotated[list[Money], Field(max_length=20)] = empty_list()


class PaymentPayload(Frozen):
    """The shipper paying the invoice. `settles_currency` says which invoice currency a payment in another
    currency pays; it is converted with an explicit rate event, never an implied one."""

    payment_id: DocumentNumber
    payer: PartyId
    amount: Money
    settles_currency: CurrencyCode | None = None


class RatePayload(Frozen):
    """An exchange rate stated by a named source at a time: 1 `base` = `rate` `quote`. XDR is the SDR."""

    base: CurrencyCode
    quote: CurrencyCode
    rate: ExchangeRate
    rate_source: Text
    as_of: UtcDatetime

    @model_validator(mode="after")
    def _two_currencies(self) -> RatePayload:
        if self.base == self.quote:
            raise ValueError("a rate converts between two different currencies")
        return self


# --- trade (issue 16): customs, verified identities, letters of credit ------------------------------------------

CustomsDirection = Literal["export", "import", "transit"]
CustomsStatus = Literal["lodged", "accepted", "under_inspection", "held", "released", "rejected"]


class CustomsPayload(Frozen):
    """A customs declaration's status at one port or border crossing. The customs authority (or the declarant, for a
    lodging) says it; the raw code and its code list (China's single window, the WCO data model) stay beside it."""

    declaration_number: DocumentNumber
    direction: CustomsDirection
    office: ShortCode
    location: UnLocode
    declarant: PartyId
    status: CustomsStatus
    raw_code: ShortCode
    code_list: ShortCode
    leg: LegNumber | None = None
    remarks: Remarks | None = None


class IdentityPayload(Frozen):
    """A verifier's finding on one party's legal identity: its identifiers, where they were checked, until when."""

    party_id: PartyId
    legal_name: Text
    outcome: Literal["verified", "failed"]
    verification_source: Text
    valid_until: UtcDatetime
    uscc: Uscc | None = None
    lei: Lei | None = None
    eori: Eori | None = None

    @model_validator(mode="after")
    def _identified(self) -> IdentityPayload:
        if self.uscc is None and self.lei is None and self.eori is None:
            raise ValueError("a verification names at least one legal identifier (uscc, lei or eori)")
        return self


CreditDocument = Literal[
    "transport_document", "commercial_invoice", "insurance_certificate", "packing_list", "certificate_of_origin"
]


class CreditTermsPayload(Frozen):
    """A documentary credit's terms (UCP 600), as the issuing bank states them."""

    credit_number: DocumentNumber
    applicant: PartyId
    beneficiary: PartyId
    issuing_bank: PartyId
    amount: Money
    tolerance_percent: Annotated[StrictDecimal, Field(ge=0, le=100)] = Decimal(0)
    latest_shipment: UtcDatetime
    expiry: UtcDatetime
    presentation_days: Annotated[int, Field(ge=1, le=365)] = 21  # UCP 600 art. 14 c
    port_of_loading: UnLocode
    port_of_discharge: UnLocode
    insurance_percent: Annotated[StrictDecimal, Field(ge=100, le=200)] = Decimal(110)  # UCP 600 art. 28 f ii
    documents_required: Annotated[list[CreditDocument], Field(min_length=1, max_length=10)]


class CommercialInvoicePayload(Frozen):
    """The seller's commercial invoice for the goods (not a carrier's freight invoice): what an L/C presentation
    shows as the invoice amount, and the CIF value insurance is measured against."""

    invoice_number: DocumentNumber
    seller: PartyId
    buyer: PartyId
    amount: Money
    incoterm: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")] = "CIF"


class PresentationPayload(Frozen):
    """The beneficiary presenting documents under a credit; `occurred_at` is the day of presentation."""

    credit_number: DocumentNumber
    documents: Annotated[list[CreditDocument], Field(min_length=1, max_length=10)]


class FuelUse(Frozen):
    """Fuel burnt for this consignment on the leg (already allocated to it by the carrier), of a fuel the factor
    table names (streams/reference/glec_factors.json `fuels`), in that fuel's unit."""

    fuel: ShortCode
    quantity: Annotated[NonNegativeDecimal, Field(le=10_000_000)]


class EmissionsPayload(Frozen):
    """A leg carrier's primary data for its leg (ISO 14083): the distance it ran, its vehicle type, and either its
    own emission intensity (g CO2e per tonne-km, well-to-wheel and tank-to-wheel) or the fuel it burnt. Only the
    carrier of that leg may report it (streams.emissions checks it)."""

    leg: LegNumber
    distance_km: DistanceKm | None = None
    vehicle_type: ShortCode | None = None
    intensity_wtw_g_per_tkm: Annotated[NonNegativeDecimal, Field(le=100_000)] | None = None
    intensity_ttw_g_per_tkm: Annotated[NonNegativeDecimal, Field(le=100_000)] | None = None
    fuel: FuelUse | None = None

    @model_validator(mode="after")
    def _one_method(self) -> EmissionsPayload:
        intensities = (self.intensity_wtw_g_per_tkm, self.intensity_ttw_g_per_tkm)
        if (intensities[0] is None) != (intensities[1] is None):
            raise ValueError("an intensity gives both well-to-wheel and tank-to-wheel")
        if intensities[0] is not None and self.fuel is not None:
            raise ValueError("report either an intensity or the fuel burnt, not both")
        if intensities[0] is not None and intensities[1] is not None and intensities[1] > intensities[0]:
            raise ValueError("tank-to-wheel cannot exceed well-to-wheel")
        if self.distance_km is None and self.vehicle_type is None and intensities[0] is None and self.fuel is None:
            raise ValueError("an emissions report carries a distance, a vehicle type, an intensity or fuel")
        return self


class Envelope(Frozen):
    """What every event carries. Identity is (source, event_id); a later `revised_at` replaces a copy."""

    event_id: EventId
    source: PartyId
    shipment_id: ShipmentId | None = None
    references: Annotated[list[CarrierReference], Field(max_length=20)] = empty_list()
    occurred_at: UtcDatetime
    recorded_at: UtcDatetime
    classifier: Classifier = "ACT"
    revised_at: UtcDatetime | None = None
    retracted: bool = False

    @model_validator(mode="after")
    def _addressed(self) -> Envelope:
        if self.shipment_id is None and not self.references:
            raise ValueError("an event must name the hub shipment_id or at least one carrier reference")
        return self

    @property
    def key(self) -> str:
        return f"{self.source}/{self.event_id}"


class BookingEvent(Envelope):
    event_type: Literal["booking"]
    payload: BookingPayload


class WaybillEvent(Envelope):
    event_type: Literal["waybill"]
    payload: WaybillPayload


class TrackingEvent(Envelope):
    event_type: Literal["tracking"]
    payload: TrackingPayload


class SettlementEvent(Envelope):
    event_type: Literal["settlement"]
    payload: SettlementPayload


class InsuranceEvent(Envelope):
    event_type: Literal["insurance"]
    payload: InsurancePayload


class BookingStatusEvent(Envelope):
    event_type: Literal["booking_status"]
    payload: BookingStatusPayload


class HandoverEvent(Envelope):
    event_type: Literal["handover"]
    payload: HandoverPayload


class MarginEvent(Envelope):
    event_type: Literal["margin"]
    payload: MarginPayload


class PaymentEvent(Envelope):
    event_type: Literal["payment"]
    payload: PaymentPayload


class RateEvent(Envelope):
    event_type: Literal["rate"]
    payload: RatePayload


class CarrierInvoiceEvent(Envelope):
    event_type: Literal["carrier_invoice"]
    payload: CarrierInvoicePayload


class InvoiceVerificationEvent(Envelope):
    event_type: Literal["invoice_verification"]
    payload: InvoiceVerificationPayload


class CustomsEvent(Envelope):
    event_type: Literal["customs"]
    payload: CustomsPayload


class IdentityEvent(Envelope):
    event_type: Literal["identity"]
    payload: IdentityPayload


class CreditTermsEvent(Envelope):
    event_type: Literal["credit_terms"]
    payload: CreditTermsPayload


class CommercialInvoiceEvent(Envelope):
    event_type: Literal["commercial_invoice"]
    payload: CommercialInvoicePayload


class PresentationEvent(Envelope):
    event_type: Literal["presentation"]
    payload: PresentationPayload


TRADE_EVENTS = (CustomsEvent, IdentityEvent, CreditTermsEvent, CommercialInvoiceEvent, PresentationEvent)


class EmissionsEvent(Envelope):
    event_type: Literal["emissions"]
    payload: EmissionsPayload


HubEvent = Annotated[
    Union[
        BookingEvent,
        BookingStatusEvent,
        WaybillEvent,
        TrackingEvent,
        HandoverEvent,
        SettlementEvent,
        MarginEvent,
        PaymentEvent,
        RateEvent,
        InsuranceEvent,
        CustomsEvent,
        IdentityEvent,
        CreditTermsEvent,
        CommercialInvoiceEvent,
        PresentationEvent,
        CarrierInvoiceEvent,
        InvoiceVerificationEvent,
        EmissionsEvent,
    ],
    Field(discriminator="event_type"),
]
HUB_EVENT: TypeAdapter[HubEvent] = TypeAdapter(HubEvent)
