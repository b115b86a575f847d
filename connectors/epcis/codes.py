"""The GS1 EPCIS 2.0 / CBV 2.0 values the EPCIS parser reads, each table in one place.

CBV values arrive in three spellings, all meaning the same code: the bare name the EPCIS 2.0 JSON-LD context
defines ("shipping"), the CBV 1.x URN ("urn:epcglobal:cbv:bizstep:shipping") and the CBV 2.0 Web URI
("https://ref.gs1.org/cbv/BizStep-shipping"), plus the compact "cbv:"/"gs1:" prefixes. `short_name` reduces them all
to the bare name, which is the code kept as raw_code.
"""

from __future__ import annotations

from typing import Final

from schemas.status import TrackingStatus

CODE_LIST: Final = "GS1-CBV-bizStep"

# CBV business step -> canonical status. Any other step (transporting, inspecting, staging_outbound, storing, ...)
# maps to "unknown" with its name kept. CBV has no "delivering" step: a receipt at the consignee's is `receiving`,
# which the parser cannot tell from a carrier's own receipt at its origin, so it is `received` with its site kept;
# the projection reads it against the booking's sites and legs (streams.merge._against_the_plan).
BIZ_STEP: Final[dict[str, TrackingStatus]] = {
    "shipping": "departed",  # sent from the location: staged, loaded and gone
    "departing": "departed",
    "arriving": "arrived",
    "loading": "loaded",
    "unloading": "discharged",
    "receiving": "received",  # taken into the receiver's custody
    "accepting": "received",  # possession changes to the accepting party
    "holding": "held",  # held at a location, e.g. by customs or quarantine
}

# CBV dispositions that are an incident to the cargo: the event's status is then the incident, whatever the step.
DISPOSITION_CODE_LIST: Final = "GS1-CBV-disposition"
DISPOSITION_INCIDENTS: Final[dict[str, TrackingStatus]] = {
    "damaged": "damaged",
    "stolen": "lost",
    "destroyed": "lost",
}

# Prefixes of the spellings of one CBV vocabulary, per vocabulary; matched case-sensitively as CBV writes them.
BIZ_STEP_PREFIXES: Final = (
    "urn:epcglobal:cbv:bizstep:",
    "https://ref.gs1.org/cbv/BizStep-",
    "http://ref.gs1.org/cbv/BizStep-",
    "cbv:BizStep-",
    "gs1:BizStep-",
)
DISPOSITION_PREFIXES: Final = (
    "urn:epcglobal:cbv:disp:",
    "https://ref.gs1.org/cbv/Disp-",
    "http://ref.gs1.org/cbv/Disp-",
    "cbv:Disp-",
    "gs1:Disp-",
)
BIZ_TRANSACTION_TYPE_PREFIXES: Final = (
    "urn:epcglobal:cbv:btt:",
    "https://ref.gs1.org/cbv/BTT-",
    "http://ref.gs1.org/cbv/BTT-",
    "cbv:BTT-",
    "gs1:BTT-",
)
SOURCE_DESTINATION_TYPE_PREFIXES: Final = (
    "urn:epcglobal:cbv:sdt:",
    "https://ref.gs1.org/cbv/SDT-",
    "http://ref.gs1.org/cbv/SDT-",
    "cbv:SDT-",
    "gs1:SDT-",
)
ERROR_REASON_PREFIXES: Final = (
    "urn:epcglobal:cbv:er:",
    "https://ref.gs1.org/cbv/ER-",
    "http://ref.gs1.org/cbv/ER-",
    "cbv:ER-",
    "gs1:ER-",
)

# bizTransactionList type -> CarrierReference kind. CBV defines only `bol` among transport documents; the others are
# the names the hub asks carriers to use for their own documents (CBV allows user-defined transaction types).
REFERENCE_KINDS: Final[dict[str, str]] = {
    "bol": "bill_of_lading",
    "sea_waybill": "sea_waybill",
    "cmr": "cmr",
    "cim": "rail_waybill",
    "smgs": "rail_waybill",
    "rail_waybill": "rail_waybill",
    "awb": "air_waybill",
    "booking": "carrier_booking",
}

# An ISO 6346 container number as an EPC: the Tag Data Standard's BIC scheme, e.g. urn:epc:id:bic:CSQU3054383.
# The longest business transaction type kept as sent (schemas.events.TransactionType).
MAX_TRANSACTION_TYPE: Final = 200

CONTAINER_EPC_PREFIX: Final = "urn:epc:id:bic:"

EVENT_TYPES: Final = frozenset({"ObjectEvent", "AggregationEvent", "TransactionEvent"})
NOT_TRACKING_TYPES: Final = frozenset({"TransformationEvent", "AssociationEvent"})
DOCUMENT_TYPES: Final = frozenset({"EPCISDocument", "EPCISQueryDocument"})

# Where an event names its objects, by event type: these become references (containers) or remarks (SSCC, GRAI, ...).
OBJECT_FIELDS: Final = ("parentID", "epcList", "childEPCs")

MAX_DOCUMENT_BYTES: Final = 4 * 1024 * 1024
MAX_REFERENCES: Final = 20  # the canonical envelope's limit: an event naming more keeps the first, says how many not
MAX_NESTING: Final = 32  # an EPCIS event is a handful of levels deep; deeper is not an event


def short_name(value: str, prefixes: tuple[str, ...]) -> str:
    """The bare CBV name of `value` in any of its spellings; `value` itself when it is not a CBV spelling."""
    for prefix in prefixes:
        if value.startswith(prefix):
            return value[len(prefix) :]
    return value
