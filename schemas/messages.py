"""The messages the hub writes to its own topics, as models: `mmhub schema` exports their JSON Schemas and
`mmhub asyncapi` describes each topic with them.

The stages build these messages as JSON (streams.codec, streams.outbound, streams.references,
connectors.sharing.plan, connectors.sharing.chain); tests/unit/schemas/test_messages.py validates what they build
against these schemas, so a field added there and not here fails a test. A field is only ever added to an envelope,
never renamed or removed, and a reader that ignores fields it does not know keeps working.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import Field

from schemas.base import Frozen, Money, UtcDatetime
from schemas.events import HubEvent
from schemas.identifiers import PartyId, ShipmentId
from schemas.record import ClaimRecord, InvoiceRevision, Note, Payout, ReleaseRecord, SettlementStatus, ShipmentRecord

CLAIM_SCHEMA_VERSION = 2
"""`schema_version` of a claim message (`hub.claims` and a party's claim shares). Absent, or 1: a message from before
`insured_value`. 2: it carries `insured_value`."""


class AppliedCopy(Frozen):
    fingerprint: str = Field(description="canonical-JSON fingerprint of the copy: the same bytes, the same copy")
    event: HubEvent


class StatusMessage(Frozen):
    """`hub.shipment.status`, keyed by shipment id: a new record version and the event copies that made it (after a
    crash also copies re-sent because their first message may have been lost: keep the first)."""

    record: ShipmentRecord
    applied: list[AppliedCopy]


class _Outbound(Frozen):
    shipment_id: ShipmentId
    record_version: int = Field(description="the record version that added or changed the document")
    responsible_operator: PartyId | None = Field(description="the MTO responsible for the whole journey")


class InvoiceMessage(_Outbound):
    """An invoice revision to the shipper; `(invoice_id, revision)` identifies it and never changes."""

    kind: Literal["invoice"]
    invoice: InvoiceRevision
    settlement_status: SettlementStatus


class NoteMessage(_Outbound):
    """A credit or debit note between two invoice revisions; `note_id` identifies it."""

    kind: Literal["note"]
    note: Note
    settlement_status: SettlementStatus


class PayoutMessage(_Outbound):
    """A carrier's payout, pending until the invoice is paid; `payout_id` identifies it, the latest message wins."""

    kind: Literal["payout"]
    payout: Payout
    settlement_status: SettlementStatus


SettlementMessage = Annotated[Union[InvoiceMessage, NoteMessage, PayoutMessage], Field(discriminator="kind")]

_SCHEMA_VERSION = Field(
    default=1,
    ge=1,
    description=f"the claim message's layout: {CLAIM_SCHEMA_VERSION} carries insured_value; absent or 1 is older",
)
_INSURED_VALUE = Field(
    default=None,
    description="the cargo policy's insured value and its ISO 4217 currency at this record version (null: no "
    "policy). A later change of the policy alone does not send the claim again; the status view holds the policy.",
)


class ClaimMessage(_Outbound):
    """`hub.claims`, keyed by shipment id: a claim when it opens or changes. `claim_id` is stable; the latest
    message for a claim id is the current word."""

    kind: Literal["claim"]
    schema_version: int = _SCHEMA_VERSION
    claim: ClaimRecord
    insured_value: Money | None = _INSURED_VALUE


class ReleaseMessage(_Outbound):
    """`hub.release`, keyed by shipment id: the electronic cargo release, for the terminal or the delivering carrier.
    Sent on the version that first issues it; `release_id` is fixed per shipment, so a re-sent copy is the same."""

    kind: Literal["release"]
    release: ReleaseRecord


class _Shared(Frozen):
    share_id: str = Field(
        description="`<channel>/<party>/<shipment>/<version>/<kind>/<ref>`: the same for a re-sent copy, so a "
        "consumer drops one it has seen"
    )
    party: PartyId
    shipment_id: ShipmentId
    version: int = Field(description="the record version shared")
    relations: list[str] = Field(description="the party's relations to the shipment (shipper, insurer, ...)")
    via_grants: list[str] = Field(description="the grants the party sees the shipment through, if any")
    policy_version: str = Field(description="the sharing policy that decided what the message shows")


class ShareStatusMessage(_Shared):
    """A party's view of one record version on `hub.share.<audience>.<party>`."""

    kind: Literal["status"]
    view: dict[str, Any] = Field(
        description="the shipment record (`shipment-record` schema) with only the fields of the grades the party "
        "holds, and only its own legs' rows for a carrier; `policy_version` added"
    )


class ShareClaimMessage(_Shared):
    """A claim on `hub.share.<audience>.<party>`, for a party that may see claims (the `cover` grade): sent when it
    first appears in the party's view and again whenever its content changes."""

    kind: Literal["claim"]
    schema_version: int = _SCHEMA_VERSION
    claim: ClaimRecord
    insured_value: Money | None = _INSURED_VALUE


ShareMessage = Annotated[Union[ShareStatusMessage, ShareClaimMessage], Field(discriminator="kind")]


class AuditEntry(Frozen):
    """`hub.audit`, keyed by party: one share (a message or a response that disclosed record fields), one link of
    the audit's hash chain (`mmhub audit verify`)."""

    share_id: str
    party: PartyId
    shipment_id: ShipmentId
    record_version: int | None
    kind: str = Field(description="status, claim, disclosures, ...")
    channel: str = Field(description="kafka, api or webhook")
    fields: list[str] = Field(description="the record field paths disclosed (`legs[].status`)")
    policy_version: str
    relations: list[str]
    via_grants: list[str]
    shared_at: UtcDatetime
    seq: int = Field(ge=1, description="place in the chain")
    prev_hash: str = Field(pattern="^[0-9a-f]{64}$", description="the previous entry's hash (64 zeros first)")
    hash: str = Field(
        pattern="^[0-9a-f]{64}$",
        description="SHA-256 of prev_hash, a newline and this entry without seq, prev_hash and hash as canonical JSON",
    )


class ParkedSummary(Frozen):
    """`hub.references.parked` (compacted), keyed by carrier reference: what waits on it now. An empty value (a
    tombstone) once nothing does."""

    reference: str = Field(description="`<kind>:<value>`, such as container:MSKU9070323")
    parked: int = Field(ge=1)
    oldest_since: UtcDatetime
    oldest_age_s: float = Field(ge=0)
    events: list[str] = Field(description="`<source>/<event_id>` of each event waiting, oldest first")
    registered_shipments: list[ShipmentId]
