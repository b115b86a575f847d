"""The hub's Kafka contract as an AsyncAPI 3.0 document (`mmhub asyncapi`): every topic it reads or writes, the
messages on each with their keys, headers and payload schemas, and who sends and who receives them.

Generated, never written by hand: the topics and their configs come from hubconf.topics, the payload schemas from
the models (schemas.messages, the event model, streams.references), and the operations from the ACLs the hub grants
(connectors.acl): a principal that may write a topic sends on its channel, one that may read it receives. So the
document cannot promise a topic, a field or a permission the hub does not have.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import TypeAdapter

from connectors.acl import PARTY_KINDS, Acl, Operation, Pattern, Resource, hub_acls, party_acls
from connectors.carriers import SCHEME, SIGNATURE_WINDOW_S
from hubconf import topics as names
from hubconf.settings import Settings
from schemas.events import HUB_EVENT
from schemas.messages import (
    AuditEntry,
    ClaimMessage,
    ParkedSummary,
    ReleaseMessage,
    SettlementMessage,
    ShareClaimMessage,
)
from schemas.messages import ShareStatusMessage, StatusMessage
from streams.references import REFERENCE_MESSAGE
from streams.sharing import POLICY

VERSION = "3.0.0"
BINDING = "0.5.0"  # the Kafka bindings' version
SCHEMAS = "#/components/schemas/{model}"
SHARE_CHANNEL = "share"
# A stand-in party for the per-party grants (connectors.acl.party_acls), which name one party's topics.
SOME_PARTY = "party.x"

# Who each principal is (hubconf.settings.PRINCIPALS; admin creates topics and ACLs and moves no data).
ROLES = {
    "worker": "the merge worker and its connector stage (`mmhub worker`)",
    "sink": "the Postgres projection (`mmhub sink`)",
    "share": "the sharing stage (`mmhub share`)",
    "gateway": "the HTTP gateway: signed carrier intake, readers, audit of reads (`mmhub gateway`)",
    "webhooks": "the webhook filler and dispatcher (`mmhub webhooks run`)",
    "tools": "the operator's commands (`mmhub publish`, `ingest`, `parked`, `audit verify`)",
    "carrier": "a carrier, with its own Kafka user (`mmhub parties onboard --kind carrier`)",
    "shipper": "a shipper, with its own Kafka user",
    "consignee": "a consignee, with its own Kafka user",
    "insurer": "an insurer, with its own Kafka user",
    "delegate": "a party a grant delegates to, with its own Kafka user",
}

_TEXT = {"type": "string"}


def _headers(described: dict[str, str], required: tuple[str, ...] = ()) -> dict[str, Any]:
    """A message's headers: each a UTF-8 string, with what it says."""
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {name: {**_TEXT, "description": f"{about} (UTF-8)"} for name, about in described.items()},
    }
    return {**schema, "required": list(required)} if required else schema


ORIGIN = {
    names.ORIGIN: "where the event came from: the raw message as `<topic>[<partition>]@<offset>`, or `http:<receipt>`"
}
SIGNATURE = {
    names.SIGNATURE_CARRIER: "the sending carrier's party id, as registered with the hub",
    names.SIGNATURE_KEY_ID: "the id of the carrier's key that signed the value",
    names.SIGNATURE: f"`t=<unix seconds>,{SCHEME}=<base64>`: Ed25519 (or HMAC-SHA256) over "
    f"`{SCHEME}\\n<format>\\n<t>\\n` and the exact value; refused more than {SIGNATURE_WINDOW_S} s from the broker's append time",
}
DEAD_LETTER = {
    names.DLQ_REASON: "why the hub refused it, for a person",
    names.DLQ_CODE: "stable code(s), comma-separated: invalid_json, invalid_event, unsigned, ...",
    names.DLQ_SOURCE_TOPIC: "the topic it was read from; `mmhub.state` for an event refused later",
    names.DLQ_SOURCE_PARTITION: "its partition there",
    names.DLQ_SOURCE_OFFSET: "its offset there",
    names.DLQ_TRIGGERED_BY: "for source `mmhub.state`: the message whose arrival refused the event",
    names.DLQ_BODY_SHA256: "for a refused unauthenticated request: SHA-256 (hex) of the whole body",
    names.DLQ_BODY_SIZE: "for a refused unauthenticated request: the whole body's size in bytes",
    **ORIGIN,
}
RAW_CONTENT = {
    "canonical": ("application/json", "canonical events (the HubEvent schema), one or an array"),
    "dcsa": ("application/json", "DCSA Track & Trace 2.2 or 3.0 events"),
    "edifact": ("application/EDIFACT", "a UN/EDIFACT IFTSTA interchange"),
    "onerecord": ("application/ld+json", "IATA ONE Record LogisticsEvent(s)"),
    "epcis": ("application/ld+json", "a GS1 EPCIS 2.0 document or events"),
    "ubl": ("application/xml", "an EN 16931 invoice in OASIS UBL 2.1 syntax (Peppol BIS Billing 3.0), one per payload"),
}


@dataclass
class _Message:
    name: str
    summary: str
    key: str
    payload: dict[str, Any]
    headers: dict[str, Any] | None = None
    content_type: str = "application/json"

    def document(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "summary": self.summary,
            "contentType": self.content_type,
            "payload": self.payload,
            "bindings": {"kafka": {"key": {**_TEXT, "description": self.key}, "bindingVersion": BINDING}},
        }
        if self.headers is not None:
            out["headers"] = self.headers
        return out


@dataclass
class _Channel:
    address: str
    description: str
    messages: list[_Message]
    config: dict[str, str] = field(default_factory=dict)
    partitions: int | None = None
    parameters: dict[str, Any] | None = None

    def document(self) -> dict[str, Any]:
        kafka: dict[str, Any] = {"bindingVersion": BINDING, "topicConfiguration": _configuration(self.config)}
        if self.partitions is not None:
            kafka["partitions"] = self.partitions
        out: dict[str, Any] = {
            "address": self.address,
            "description": self.description,
            "messages": {m.name: {"$ref": f"#/components/messages/{m.name}"} for m in self.messages},
            "bindings": {"kafka": kafka},
        }
        if self.parameters is not None:
            out["parameters"] = self.parameters
        return out


def _configuration(config: dict[str, str]) -> dict[str, Any]:
    """A topic's config in the Kafka binding's terms: the cleanup policy as a list, numbers as numbers."""
    out: dict[str, Any] = {}
    for name, value in config.items():
        out[name] = value.split(",") if name == "cleanup.policy" else int(value) if value.isdigit() else value
    return out


def _payload_schemas() -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """Each payload's JSON Schema (as it is read: validation for what the hub takes in, serialization for what it
    writes), with the definitions they share under components/schemas."""
    adapters: list[tuple[str, Any, Any]] = [
        ("event", "validation", HUB_EVENT),
        ("status", "serialization", TypeAdapter(StatusMessage)),
        ("settlement", "serialization", TypeAdapter(SettlementMessage)),
        ("claim", "serialization", TypeAdapter(ClaimMessage)),
        ("release", "serialization", TypeAdapter(ReleaseMessage)),
        ("share_status", "serialization", TypeAdapter(ShareStatusMessage)),
        ("share_claim", "serialization", TypeAdapter(ShareClaimMessage)),
        ("audit", "serialization", TypeAdapter(AuditEntry)),
        ("parked", "serialization", TypeAdapter(ParkedSummary)),
        ("reference", "serialization", REFERENCE_MESSAGE),
    ]
    keyed, definitions = TypeAdapter.json_schemas(
        [(name, mode, adapter) for name, mode, adapter in adapters], ref_template=SCHEMAS
    )
    payloads = {name: _asyncapi_schema(keyed[(name, mode)]) for name, mode, _ in adapters}
    return payloads, _asyncapi_schema(definitions.get("$defs", {}))


def _asyncapi_schema(node: Any) -> Any:
    """pydantic's JSON Schema in the AsyncAPI Schema Object's terms: its `discriminator` names the property (a
    string), where pydantic writes OpenAPI's object (`propertyName` and a mapping)."""
    if isinstance(node, dict):
        out = {key: _asyncapi_schema(value) for key, value in node.items()}
        if isinstance(out.get("discriminator"), dict):
            out["discriminator"] = out["discriminator"]["propertyName"]
        return out
    if isinstance(node, list):
        return [_asyncapi_schema(value) for value in node]
    return node


def _channels(settings: Settings, payloads: dict[str, dict[str, Any]]) -> dict[str, _Channel]:
    t = settings.topics
    shipment, reference = "shipment id", "carrier reference, `<kind>:<value>`"
    binary = {"type": "string", "format": "binary"}
    # the hub's own topics, one kind of message each: (channel, topic, what it carries, its message)
    own: list[tuple[str, str, str, _Message]] = [
        ("events", names.EVENTS, "Canonical events, each to its shipment (see `mmhub schema`, hub-event).",
         _Message("hubEvent", "A canonical event", shipment, payloads["event"], _headers(ORIGIN))),
        ("deadLetters", names.EVENTS_DLQ,
         "What the hub refused, with the original bytes untouched (an unauthenticated HTTP body: its first KiB) and "
         "the reason in the headers.",
         _Message("deadLetter", "A refused message", "the refused message's key, as received",
                  {**binary, "description": "the original value"},
                  _headers(DEAD_LETTER, (names.DLQ_REASON, names.DLQ_CODE, names.DLQ_SOURCE_TOPIC)),
                  "application/octet-stream")),
        ("status", names.SHIPMENT_STATUS,
         "Each new record version and the event copies that made it. Compacted, after 7 days.",
         _Message("statusMessage", "A record version", shipment, payloads["status"])),
        ("settlement", names.SETTLEMENT,
         "Each invoice revision, credit or debit note and payout a record version adds or changes.",
         _Message("settlementMessage", "An invoice, a note or a payout", shipment, payloads["settlement"])),
        ("claims", names.CLAIMS,
         "Each claim when it opens or changes, with the policy's insured value (schema_version 2).",
         _Message("claimMessage", "A claim", shipment, payloads["claim"])),
        ("release", names.RELEASE,
         "The electronic cargo release at destination, on the version that first issues it (release_id fixed).",
         _Message("releaseMessage", "A release order", shipment, payloads["release"])),
        ("audit", names.AUDIT,
         "Every share (message, webhook, read) as one link of the audit's hash chain (`mmhub audit verify`).",
         _Message("auditEntry", "One share, chained", "party id", payloads["audit"])),
        ("datasetsPerformance", names.DATASETS_PERFORMANCE,
         "The carrier performance data set of each closed month: the cells with at least k shipments and m shippers "
         "(no noise), released once per month by `mmhub dataset monthly` (or `mmhub dataset publish`), audited like "
         "every share. Compacted.",
         _Message("performanceRelease", "One month's release", "month (YYYY-MM)",
                  {"type": "object", "description": "streams.datasets.release_document"})),
        ("references", names.REFERENCES,
         "Reference resolution: events naming only carrier references, registrations, settled notices.",
         _Message("referenceMessage", "A request, a registration or a settled notice", reference,
                  payloads["reference"], _headers(ORIGIN))),
        ("parked", names.PARKED,
         "What waits on each carrier reference now; an empty value (a tombstone) once nothing does. Compacted.",
         _Message("parkedSummary", "The events parked on a reference", reference, payloads["parked"])),
    ]
    for format_name in names.RAW_FORMATS:
        content_type, what = RAW_CONTENT[format_name]
        payload = (
            {"oneOf": [payloads["event"], {"type": "array", "items": payloads["event"]}]}
            if format_name == "canonical"
            else {**binary, "description": what}
        )
        name = f"raw{format_name.capitalize()}"
        own.append((
            name, names.raw_topic(format_name),
            f"What carriers send in the {format_name} format, untouched and signed: {what}. The worker's connector "
            "stage checks the signature against the carrier registry and parses it into hub.events.",
            _Message(name, f"A signed {format_name} payload", "carrier party id", payload,
                     _headers(SIGNATURE, tuple(SIGNATURE)), content_type),
        ))
    channels = {
        cid: _Channel(t.name(base), about, [message], names.TOPIC_CONFIGS[base], settings.partitions)
        for cid, base, about, message in own
    }
    channels[SHARE_CHANNEL] = _Channel(
        t.name(f"{names.SHARE}.{{audience}}.{{party}}"),
        "One party's views, as one audience: what the sharing policy lets it see of each record version, and the "
        "claims it may see. One partition per topic, created by the sharing stage when the party appears; a party's "
        "read grant covers its own topics only.",
        [
            _Message("shareStatus", "A party's view of a record version", "party id", payloads["share_status"]),
            _Message("shareClaim", "A claim, for a party that may see claims", "party id", payloads["share_claim"]),
        ],
        names.SHARE_CONFIG,
        names.SHARE_PARTITIONS,
        {
            "audience": {
                "enum": list(names.SHARE_AUDIENCES),
                "description": "the party's first relation to the shipment in this order",
            },
            "party": {"description": "the party id, such as insurer.picc"},
        },
    )
    for table in names.TABLES:
        name = f"{table}Changelog"
        channels[name] = _Channel(
            f"{settings.app_id}-{table}-changelog",
            f"The worker's `{table}` state, from which a worker rebuilds it (internal: its layout is the worker's).",
            [_Message(name, f"A {table} table entry", "the table's key", binary, None, "application/octet-stream")],
            names.CHANGELOG_CONFIG,
            settings.partitions,
        )
    return channels


def _channel_of(acl: Acl, settings: Settings, channels: dict[str, _Channel]) -> list[str]:
    """The channels one topic grant covers."""
    if acl.pattern is Pattern.PREFIXED:
        if acl.name == settings.topics.share_prefix:
            return [SHARE_CHANNEL]
        return [cid for cid, channel in channels.items() if channel.address.startswith(acl.name)]
    if acl.name.startswith(settings.topics.share_prefix):
        return [SHARE_CHANNEL]
    return [cid for cid, channel in channels.items() if channel.address == acl.name]


def _operations(settings: Settings, channels: dict[str, _Channel]) -> dict[str, Any]:
    """One operation per role, action and channel, from the grants: WRITE sends, READ receives."""
    grants = [(acl.user, acl) for acl in hub_acls(settings)]
    grants += [(kind, acl) for kind in PARTY_KINDS for acl in party_acls(settings, SOME_PARTY, kind)]
    actions = {Operation.WRITE: "send", Operation.READ: "receive"}
    claim_grade = POLICY.outbound["claim"]
    grades = {str(relation): rule.grades for relation, rule in POLICY.relations.items()}
    operations: dict[str, Any] = {}
    for role, acl in grants:
        if acl.resource is not Resource.TOPIC or acl.operation not in actions:
            continue
        action = actions[acl.operation]
        for cid in _channel_of(acl, settings, channels):
            messages = [message.name for message in channels[cid].messages]
            if cid == SHARE_CHANNEL and role in grades and claim_grade not in grades[role]:
                messages.remove("shareClaim")  # the policy sends claims only to those who may see them
            operations[f"{role}.{action}.{cid}"] = {
                "action": action,
                "channel": {"$ref": f"#/channels/{cid}"},
                "summary": f"{ROLES[role]}: {action}s",
                "messages": [{"$ref": f"#/channels/{cid}/messages/{m}"} for m in messages],
                "tags": [{"name": role}],
            }
    return dict(sorted(operations.items()))


def asyncapi_document(settings: Settings) -> dict[str, Any]:
    payloads, definitions = _payload_schemas()
    channels = _channels(settings, payloads)
    return {
        "asyncapi": VERSION,
        "info": {
            "title": "mmhub Kafka topics",
            "version": "1",
            "description": "Every topic the multimodal freight hub reads or writes: carriers send signed raw "
            "payloads, the worker folds events into one record per shipment, the sink, the sharing stage and the "
            "webhooks read the record versions, and each party reads only its own share topics. Topic names carry "
            "the deployment's namespace (MMHUB_NAMESPACE). Delivery is at least once: the payloads carry ids to "
            "drop a copy already seen.",
            "tags": [{"name": role, "description": about} for role, about in ROLES.items()],
        },
        "defaultContentType": "application/json",
        "servers": {
            "kafka": {
                "host": settings.kafka,
                "protocol": "kafka",
                "description": "every client logs in with its own SCRAM user; ACLs allow each only its operations",
                "security": [{"$ref": "#/components/securitySchemes/scram"}],
            }
        },
        "channels": {cid: channel.document() for cid, channel in channels.items()},
        "operations": _operations(settings, channels),
        "components": {
            "schemas": definitions,
            "messages": {
                message.name: message.document() for channel in channels.values() for message in channel.messages
            },
            "securitySchemes": {
                "scram": {"type": "scramSha256", "description": "SASL/SCRAM-SHA-256 (hubconf.settings)"}
            },
        },
    }
