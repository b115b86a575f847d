"""What a new record version tells the shipper's accounts and the insurers: the settlement documents and claims
that are new or changed since the previous version, as `hub.settlement` and `hub.claims` messages.

Each document has a stable id, so a consumer that sees one twice (after a worker restart) can tell.
"""

from __future__ import annotations

from typing import Any, Sequence

import orjson
from pydantic import BaseModel

from schemas.messages import CLAIM_SCHEMA_VERSION
from schemas.record import ShipmentRecord
from streams.release import newly_issued


def _changed(before: Sequence[BaseModel], after: Sequence[BaseModel], id_field: str) -> list[BaseModel]:
    old = {getattr(item, id_field): item for item in before}
    return [item for item in after if old.get(getattr(item, id_field)) != item]


def settlement_messages(before: ShipmentRecord | None, after: ShipmentRecord) -> list[bytes]:
    """Invoice revisions, notes and payouts that `after` adds or changes."""
    if after.settlement is None:
        return []
    old = before.settlement if before is not None else None
    # an invoice revision is immutable once issued: the revision number identifies it
    pieces: list[tuple[str, str, Sequence[BaseModel], Sequence[BaseModel]]] = [
        ("invoice", "revision", old.invoices if old else [], after.settlement.invoices),
        ("note", "note_id", old.notes if old else [], after.settlement.notes),
        ("payout", "payout_id", old.payouts if old else [], after.settlement.payouts),
    ]
    out = []
    for kind, key, was, now in pieces:
        for item in _changed(was, now, key):
            status = {"settlement_status": after.settlement.status}
            out.append(_message(after, kind, item.model_dump(mode="json"), status))
    return out


def claim_messages(before: ShipmentRecord | None, after: ShipmentRecord) -> list[bytes]:
    """Claims that `after` opens or changes (a new report as evidence, an insurer's update), each with the policy's
    insured value at this version (schemas.messages.ClaimMessage)."""
    was = before.claims if before is not None else []
    policy = after.insurance.policy
    extra = {
        "schema_version": CLAIM_SCHEMA_VERSION,
        "insured_value": policy.insured_value.model_dump(mode="json") if policy is not None else None,
    }
    changed = _changed(was, after.claims, "claim_id")
    return [_message(after, "claim", claim.model_dump(mode="json"), extra) for claim in changed]


def release_messages(before: ShipmentRecord | None, after: ShipmentRecord) -> list[bytes]:
    """The release order, on the one version that first issues it (streams.release)."""
    if after.release is None or not newly_issued(before, after):
        return []
    return [_message(after, "release", after.release.model_dump(mode="json"), {})]


def _message(record: ShipmentRecord, kind: str, document: dict[str, Any], extra: dict[str, Any]) -> bytes:
    body: dict[str, Any] = {
        "kind": kind,
        "shipment_id": record.shipment_id,
        "record_version": record.version,
        "responsible_operator": record.responsible_operator,
        kind: document,
        **extra,
    }
    return orjson.dumps(body)
