"""`mmhub asyncapi`: an AsyncAPI 3.0 document of every topic the hub reads or writes, valid against the AsyncAPI 3.0.0
JSON Schema (vendored, vendor/asyncapi/), whose channels are the topics the hub creates, whose operations are the ACLs
it grants, and whose payload schemas hold for the messages the hub really writes."""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest

from connectors.acl import hub_acls
from connectors.asyncapi import asyncapi_document
from connectors.kafka import read_jsonl
from hubconf.settings import Settings
from hubconf.topics import CHANGELOG_CONFIG, SHARE_AUDIENCES, TABLES
from mmhub.cli import main

from ..schemas.test_messages import outbound

REPO = Path(__file__).resolve().parents[3]
ASYNCAPI = json.loads((REPO / "vendor" / "asyncapi" / "3.0.0-without-$id.json").read_text())
SETTINGS = replace(Settings.from_env(), namespace="")


def spec_errors(document: dict[str, Any]) -> list[str]:
    return [f"{e.json_path}: {e.message[:200]}" for e in jsonschema.Draft7Validator(ASYNCAPI).iter_errors(document)]


def payload_errors(document: dict[str, Any], message: str, value: Any) -> list[str]:
    """`value` checked against a message's payload schema, its $refs resolved inside the document."""
    schema = {**document, "$ref": f"#/components/messages/{message}/payload"}
    return [f"{e.json_path}: {e.message[:200]}" for e in jsonschema.Draft202012Validator(schema).iter_errors(value)]


@pytest.fixture(scope="module")
def printed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """What `mmhub asyncapi --out` writes."""
    out = tmp_path_factory.mktemp("asyncapi") / "asyncapi.json"
    assert main(["asyncapi", "--out", str(out)]) == 0
    document: dict[str, Any] = orjson.loads(out.read_bytes())
    return document


def test_the_document_is_valid_asyncapi_3(printed: dict[str, Any]) -> None:
    assert printed["asyncapi"] == "3.0.0"
    assert spec_errors(printed) == []


def test_the_vendored_schema_finds_what_is_wrong(printed: dict[str, Any]) -> None:
    """The validation above can fail: a wrong version, an unknown action and pydantic's own (OpenAPI) discriminator
    object, which an AsyncAPI schema does not take, are each refused."""
    for path, value in [
        (("asyncapi",), "3.0.1"),
        (("operations", "sink.receive.status", "action"), "consume"),
        (("components", "schemas", "ShipmentRecord", "discriminator"), {"propertyName": "kind"}),
    ]:
        broken = copy.deepcopy(printed)
        node = broken
        for name in path[:-1]:
            node = node[name]
        node[path[-1]] = value
        assert spec_errors(broken), path


def test_every_ref_resolves_inside_the_document(printed: dict[str, Any]) -> None:
    def refs(node: Any) -> list[str]:
        if isinstance(node, dict):
            own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
            return own + [r for value in node.values() for r in refs(value)]
        return [r for value in node for r in refs(value)] if isinstance(node, list) else []

    found = refs(printed)
    assert len(found) > 100
    for ref in found:
        node: Any = printed
        for part in ref.removeprefix("#/").split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]


def test_there_is_a_channel_for_every_topic_the_hub_creates() -> None:
    settings = replace(SETTINGS, namespace="acme")
    document = asyncapi_document(settings)
    addresses = {channel["address"] for channel in document["channels"].values()}
    created = {*settings.topics.all(), *(f"{settings.app_id}-{table}-changelog" for table in TABLES)}
    assert created <= addresses
    (share,) = addresses - created
    assert share == "acme.hub.share.{audience}.{party}"
    assert document["channels"]["share"]["parameters"]["audience"]["enum"] == list(SHARE_AUDIENCES)
    for audience in SHARE_AUDIENCES:
        topic = settings.topics.share(audience, "insurer.picc")
        assert share.format(audience=audience, party="insurer.picc") == topic
    changelog = document["channels"]["shipmentsChangelog"]["bindings"]["kafka"]["topicConfiguration"]
    assert changelog == {"cleanup.policy": [CHANGELOG_CONFIG["cleanup.policy"]]}
    events = document["channels"]["events"]["bindings"]["kafka"]["topicConfiguration"]
    assert events["retention.ms"] == 30 * 24 * 3600 * 1000 and events["cleanup.policy"] == ["delete"]


def test_who_sends_and_who_receives_is_what_the_acls_allow() -> None:
    document = asyncapi_document(SETTINGS)
    operations = document["operations"]
    senders = {op.split(".")[0] for op in operations if op.endswith(".send.status")}
    readers = {op.split(".")[0] for op in operations if op.endswith(".receive.status")}
    assert (senders, readers) == ({"worker"}, {"sink", "share"})
    assert {op for op in operations if ".receive.share" in op} == {
        f"{role}.receive.share" for role in ("webhooks", "carrier", "shipper", "consignee", "insurer", "delegate")
    }
    assert {op for op in operations if op.startswith("carrier.send.")} == {
        f"carrier.send.raw{name}" for name in ("Canonical", "Dcsa", "Edifact", "Onerecord", "Epcis", "Ubl")
    }
    # claims go only to a relation that holds the cover grade
    shared = {role: [m["$ref"].rsplit("/", 1)[1] for m in operations[f"{role}.receive.share"]["messages"]]
              for role in ("insurer", "shipper", "consignee", "carrier")}
    assert shared == {"insurer": ["shareStatus", "shareClaim"], "shipper": ["shareStatus", "shareClaim"],
                      "consignee": ["shareStatus"], "carrier": ["shareStatus"]}
    # every grant of a hub process to read or write one topic is an operation, and no other operation on it is
    channel_of = {channel["address"]: cid for cid, channel in document["channels"].items()}
    actions = {"READ": "receive", "WRITE": "send"}
    granted = {
        f"{acl.user}.{actions[acl.operation.name]}.{channel_of[acl.name]}"
        for acl in hub_acls(SETTINGS)
        if acl.resource.name == "TOPIC" and acl.pattern.name == "LITERAL" and acl.operation.name in actions
    }
    literal = {cid for cid in channel_of.values() if cid != "share" and not cid.endswith("Changelog")}
    hub_roles = {"worker", "sink", "share", "gateway", "webhooks", "tools"}
    documented = {op for op in operations if op.split(".")[0] in hub_roles and op.split(".")[2] in literal}
    assert "worker.send.claims" in granted and not any(op.startswith("sink.send") for op in granted)
    assert documented == granted


def test_the_headers_name_the_signature_and_the_dead_letter_reasons(printed: dict[str, Any]) -> None:
    messages = printed["components"]["messages"]
    assert messages["rawEdifact"]["headers"]["required"] == ["mmhub.carrier", "mmhub.key-id", "mmhub.signature"]
    dead = messages["deadLetter"]["headers"]
    reasons = {"mmhub.reason", "mmhub.code", "mmhub.source.topic", "mmhub.source.offset", "mmhub.origin"}
    assert reasons <= set(dead["properties"]) and dead["required"] == ["mmhub.reason", "mmhub.code", "mmhub.source.topic"]
    assert "mmhub.origin" in messages["hubEvent"]["headers"]["properties"]
    assert messages["claimMessage"]["bindings"]["kafka"]["key"]["description"] == "shipment id"


def test_the_payload_schemas_hold_for_what_the_hub_sends(printed: dict[str, Any]) -> None:
    events = [orjson.loads(line) for line in read_jsonl(REPO / "examples" / "journey.jsonl")]
    assert [e for event in events for e in payload_errors(printed, "hubEvent", event)] == []
    assert payload_errors(printed, "rawCanonical", events[:3]) == []
    settlement, claims = outbound()
    assert claims and all(claim["insured_value"] for claim in claims)
    assert [e for claim in claims for e in payload_errors(printed, "claimMessage", claim)] == []
    assert [e for note in settlement for e in payload_errors(printed, "settlementMessage", note)] == []
    assert payload_errors(printed, "claimMessage", {**claims[0], "record_version": "7"})
