"""The JSON Schemas `mmhub schema` exports for what the hub writes (schemas.messages) hold for the messages the
stages really build: every status, settlement and claim message and every share of the claim journey, an audit chain
and a parked summary validate against them with an independent validator (jsonschema). And the claim messages carry
the insured value and its currency, with a schema version, without breaking a reader of the old layout."""

from __future__ import annotations

from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest

from connectors.kafka import read_jsonl
from connectors.sharing.plan import plan_batch
from schemas.export import json_schemas
from schemas.messages import CLAIM_SCHEMA_VERSION, ClaimMessage, ShareClaimMessage
from schemas.record import ShipmentRecord
from streams.audit_chain import GENESIS, extend
from streams.codec import decode_event, encode_status
from streams.merge import ShipmentState, apply, project
from streams.outbound import claim_messages, settlement_messages
from streams.references import Book, Parked, parked_summary

from ..builders import AUTHORITY, booking_doc, record_of, tracking_doc

REPO = Path(__file__).resolve().parents[3]
NOW = datetime(2026, 6, 1, tzinfo=timezone.utc)


@lru_cache(maxsize=1)
def journey() -> tuple[tuple[ShipmentState, ShipmentRecord], ...]:
    """Every (state, record) of the claim journey, in the order the worker would emit them."""
    state = ShipmentState("SHP-2026-000043")
    out = []
    for line in read_jsonl(REPO / "examples" / "journey-claim.jsonl"):
        after = apply(state, decode_event(line))  # type: ignore[arg-type]
        if after is not state:
            out.append((after, project(after, AUTHORITY)))
        state = after
    return tuple(out)


def validator(name: str) -> jsonschema.Draft202012Validator:
    schema = json_schemas()[name]
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def problems(name: str, messages: list[Any]) -> list[str]:
    check = validator(name)
    return [f"{error.json_path}: {error.message}" for message in messages for error in check.iter_errors(message)]


def outbound() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    records = [record for _, record in journey()]
    settlement, claims = [], []
    for before, after in zip([None, *records], records):
        settlement += [orjson.loads(m) for m in settlement_messages(before, after)]
        claims += [orjson.loads(m) for m in claim_messages(before, after)]
    return settlement, claims


def test_mmhub_schema_exports_every_envelope() -> None:
    assert set(json_schemas()) == {
        "hub-event", "shipment-record", "status-message", "settlement-message", "claim-message", "share-message",
        "audit-entry", "parked-summary",
    }


def test_every_status_message_of_the_journey_follows_its_schema() -> None:
    messages = [orjson.loads(encode_status(record, state.copies.values())) for state, record in journey()]
    assert len(messages) > 30 and all(message["applied"] for message in messages)
    assert problems("status-message", messages) == []


def test_every_settlement_and_claim_message_follows_its_schema() -> None:
    settlement, claims = outbound()
    assert {m["kind"] for m in settlement} == {"invoice", "note", "payout"} and claims
    assert problems("settlement-message", settlement) == []
    assert problems("claim-message", claims) == []


def test_every_share_of_the_journey_follows_its_schema_and_a_claim_share_is_a_whole_claim() -> None:
    planned = plan_batch([record for _, record in journey()], {}, {}, {}, NOW)
    documents = [m.document for m in planned.messages]
    assert {d["kind"] for d in documents} == {"status", "claim"}
    assert problems("share-message", documents) == []
    for document in documents:
        if document["kind"] == "claim":
            ShareClaimMessage.model_validate_json(orjson.dumps(document), strict=False)


def test_an_audit_chain_follows_its_schema() -> None:
    planned = plan_batch([record for _, record in journey()], {}, {}, {}, NOW)
    entries = extend(0, GENESIS, [m.share.document() for m in planned.messages])
    assert len(entries) == len(planned.messages) > 5
    assert problems("audit-entry", entries) == []


def test_a_parked_summary_follows_its_schema() -> None:
    event = {"source": "carrier.oceanline", "event_id": "ev-1"}
    book = Book(parked=[Parked(event=event, since=datetime(2026, 5, 31, tzinfo=timezone.utc))])
    assert problems("parked-summary", [orjson.loads(parked_summary("container:MSKU9070323", book, NOW))]) == []


def test_a_schema_refuses_what_it_does_not_describe() -> None:
    """The checks above can fail: a claim message without its claim, or with a float for money, is refused."""
    _, claims = outbound()
    broken = {key: value for key, value in claims[0].items() if key != "claim"}
    assert problems("claim-message", [broken]) == ["$: 'claim' is a required property"]
    assert problems("claim-message", [{**claims[0], "insured_value": {"amount": 1.5, "currency": "CNY"}}])


def test_a_claim_message_carries_the_insured_value_and_currency_and_its_schema_version() -> None:
    _, claims = outbound()
    record = journey()[-1][1]
    assert record.insurance.policy is not None
    insured = record.insurance.policy.insured_value
    assert claims and all(m["schema_version"] == CLAIM_SCHEMA_VERSION == 2 for m in claims)
    assert all(m["insured_value"] == {"amount": str(insured.amount), "currency": insured.currency} for m in claims)
    assert ClaimMessage.model_validate_json(orjson.dumps(claims[-1]), strict=False).insured_value == insured


def test_a_claim_without_a_policy_says_so() -> None:
    docs = [booking_doc(), tracking_doc("damaged", leg=3, occurred=70, event_id="dmg-1")]
    record = record_of(*docs)
    assert record.insurance.policy is None and record.claims
    (message,) = [orjson.loads(m) for m in claim_messages(None, record)]
    assert message["insured_value"] is None and message["schema_version"] == 2
    assert problems("claim-message", [message]) == []


@pytest.mark.parametrize("name", ["claim-message", "share-message"])
def test_the_change_is_additive_an_old_claim_message_still_follows_the_schema(name: str) -> None:
    """A message written before schema version 2 (no schema_version, no insured_value) is still valid, and a reader
    of the old layout finds every field it knew, unchanged."""
    _, claims = outbound()
    planned = plan_batch([record for _, record in journey()], {}, {}, {}, NOW)
    shares = [m.document for m in planned.messages if m.document["kind"] == "claim"]
    new = claims[0] if name == "claim-message" else shares[0]
    old = {key: value for key, value in new.items() if key not in ("schema_version", "insured_value")}
    assert problems(name, [old]) == []
    assert set(new) - set(old) == {"schema_version", "insured_value"}
