"""Who may surrender, amend or transfer the journey's through document (issue 14, DCSA eBL as an input format).

The through document is the owning MTO's: only it issues it, takes its surrender for amendment, voids it and issues
its amendment; a surrender for delivery is its current holder's (or the issuer's record of one made to that holder),
whichever format the message came in and whenever it arrives. A transfer
(endorsement) is the issuer's or the current holder's. A refusal that rests on the registry (the MTO's word) is
`not_entitled` and dead-lettered; one that rests on the chain of holders is a `conflict` (refused, listed in the
record, not dead-lettered: a transfer dated earlier may still arrive and change the chain). On eeb4899 only the issuance was checked: any signer could
surrender the document or hand it to itself."""

from __future__ import annotations

from typing import Any

import orjson

from connectors.dcsa.parse import parse
from schemas.events import HubEvent
from schemas.rejection import Rejection
from streams.merge import fold
from streams.references import resolve_offline
from tests.unit.builders import AUTHORITY, MTO, SHIPMENT, at, booking_doc, hub_event, waybill_doc

NUMBER = "MTD-1"


def through(action: str, *, source: str, event_id: str, occurred: float, holder: str | None = None) -> dict[str, Any]:
    doc = waybill_doc("multimodal_transport_document", NUMBER, source=source, event_id=event_id, occurred=occurred)
    doc["payload"]["issuer"] = MTO
    if action != "issued":
        doc["payload"]["action"] = action
    if holder is not None:
        doc["payload"]["holder"] = holder
    return doc


def dcsa_notification(status: str, *, source: str, ident: str, occurred: float) -> list[HubEvent]:
    body = {
        "specversion": "1.0",
        "id": ident,
        "source": f"https://{source}/dcsa",
        "type": "org.dcsa.transport-document.v3",
        "time": at(occurred),
        "datacontenttype": "application/json",
        "subscriptionReference": "sub-1",
        "data": {"transportDocumentStatus": status, "transportDocumentReference": NUMBER},
    }
    parsed = parse(orjson.dumps(body), source)
    assert not any(isinstance(e, Rejection) for e in parsed), parsed
    return [e for e in parsed if not isinstance(e, Rejection)]


def record(events: list[HubEvent]) -> Any:
    placed, waiting = resolve_offline([hub_event(booking_doc()), *events], AUTHORITY)
    assert waiting == []
    return fold(placed, AUTHORITY)[SHIPMENT]


ISSUED = [hub_event(through("issued", source=MTO, event_id="mtd-issue", occurred=10))]


def test_a_carrier_cannot_surrender_the_through_document_for_delivery() -> None:
    attack = hub_event(through("surrendered", source="carrier.sea", event_id="steal", occurred=20))
    result = record(ISSUED + [attack])
    assert result.through_document is not None and result.through_document.status == "issued"
    assert [(r.event, r.kind) for r in result.rejected] == [("carrier.sea/steal", "conflict")]
    # a surrender for delivery is its holder's (or its issuer's record of one): the carrier is neither
    assert result.rejected[0].reason.startswith("only its holder ") and result.rejected[0].reason.endswith(
        ", not carrier.sea"
    )


def test_a_carrier_cannot_surrender_it_through_a_dcsa_ebl_notification() -> None:
    attack = dcsa_notification("SURRENDERED_FOR_DELIVERY", source="carrier.sea", ident="x-1", occurred=20)
    result = record(ISSUED + attack)
    assert result.through_document is not None and result.through_document.status == "issued"
    assert [r.kind for r in result.rejected] == ["conflict"]


def test_a_carrier_cannot_amend_it_through_dcsa_ebl_notifications() -> None:
    attack = dcsa_notification("SURRENDERED_FOR_AMENDMENT", source="carrier.sea", ident="x-1", occurred=20)
    attack += dcsa_notification("VOIDED", source="carrier.sea", ident="x-2", occurred=21)
    reissue = hub_event(through("issued", source="carrier.sea", event_id="x-3", occurred=22))
    result = record(ISSUED + attack + [reissue])
    document = result.through_document
    assert document is not None
    assert (document.status, document.amendments, document.set_by) == ("issued", [], f"{MTO}/mtd-issue")
    assert sorted(r.kind for r in result.rejected) == ["not_entitled"] * 3


def test_the_mto_itself_still_amends_and_takes_the_surrender() -> None:
    own = dcsa_notification("SURRENDERED_FOR_AMENDMENT", source=MTO, ident="m-1", occurred=20)
    own += [hub_event(through("issued", source=MTO, event_id="mtd-amended", occurred=21))]
    own += dcsa_notification("SURRENDERED_FOR_DELIVERY", source=MTO, ident="m-2", occurred=30)
    result = record(ISSUED + own)
    document = result.through_document
    assert document is not None and result.rejected == []
    assert (document.status, [a.action for a in document.amendments]) == (
        "surrendered",
        ["surrendered_for_amendment", "amended"],
    )


def test_only_the_issuer_or_the_holder_transfers_it() -> None:
    stranger = hub_event(through("transferred", source="carrier.sea", event_id="grab", occurred=20, holder="carrier.sea"))
    to_bank = hub_event(through("transferred", source=MTO, event_id="to-bank", occurred=30, holder="bank.test"))
    onwards = hub_event(
        through("transferred", source="bank.test", event_id="to-consignee", occurred=40, holder="consignee.test")
    )
    result = record(ISSUED + [stranger, to_bank, onwards])
    document = result.through_document
    assert document is not None
    assert [e.holder for e in document.endorsements] == ["bank.test", "consignee.test"]
    assert [(r.event, r.kind) for r in result.rejected] == [("carrier.sea/grab", "conflict")]
