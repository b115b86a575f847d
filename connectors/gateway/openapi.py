"""The gateway's OpenAPI 3.1 description (served at /openapi.json), with the canonical event schema embedded.

The event schema is the one `mmhub schema` exports (schemas.events.HUB_EVENT), with its definitions moved into
`components/schemas` so that every `$ref` resolves inside this one document.
"""

from __future__ import annotations

from typing import Any

from connectors.carriers import HTTP_CARRIER, HTTP_KEY_ID, HTTP_SIGNATURE
from connectors.formats import FORMATS
from connectors.gateway.reader_openapi import (
    READER_PATHS,
    READER_SCHEMAS,
    SECURITY_SCHEMES,
    SUBSCRIPTION_PATHS,
    SUBSCRIPTION_SCHEMAS,
)
from schemas.events import HUB_EVENT

REF = "#/components/schemas/{model}"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": REF.format(model=name)}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref("GatewayError")}}}


def _header(name: str, description: str) -> dict[str, Any]:
    return {"name": name, "in": "header", "required": True, "description": description, "schema": {"type": "string"}}


# The gateway's own schemas; the event schema's definitions are added beside them.
GATEWAY_SCHEMAS: dict[str, Any] = {
    "GatewayError": {
        "type": "object",
        "required": ["error", "reason"],
        "properties": {
            "error": {"type": "string", "description": "stable code, e.g. bad_signature, unknown_format, too_large"},
            "reason": {"type": "string", "description": "what is wrong, for the person who sent it"},
        },
    },
    "GatewayEventResult": {
        "type": "object",
        "required": ["index", "event_id", "result", "code", "reason", "routed_to", "shipment_id"],
        "properties": {
            "index": {"type": "integer", "minimum": 0, "description": "position of the event in the payload"},
            "event_id": {"type": ["string", "null"], "description": "null when the event could not be read"},
            "result": {"enum": ["accepted", "duplicate", "rejected"]},
            "code": {"type": ["string", "null"], "description": "rejection code (e.g. invalid_event, wrong_source)"},
            "reason": {"type": ["string", "null"], "description": "why it was rejected; null otherwise"},
            "routed_to": {
                "enum": ["shipment", "reference_resolution", None],
                "description": "shipment: sent to its shipment; reference_resolution: it names only carrier "
                "references, and the hub finds its shipment",
            },
            "shipment_id": {"type": ["string", "null"]},
        },
    },
    "GatewayReceipt": {
        "type": "object",
        "required": ["request_id", "format", "carrier", "accepted", "duplicates", "rejected", "results"],
        "properties": {
            "request_id": {"type": "string", "format": "uuid"},
            "format": {"enum": list(FORMATS)},
            "carrier": {"type": "string"},
            "accepted": {"type": "integer", "minimum": 0},
            "duplicates": {"type": "integer", "minimum": 0},
            "rejected": {"type": "integer", "minimum": 0},
            "results": {"type": "array", "items": _ref("GatewayEventResult")},
        },
    },
}


def openapi_document(max_body_bytes: int) -> dict[str, Any]:
    event_schema = HUB_EVENT.json_schema(mode="validation", ref_template=REF)
    definitions: dict[str, Any] = event_schema.pop("$defs")
    clash = set(definitions) & {*GATEWAY_SCHEMAS, *READER_SCHEMAS, *SUBSCRIPTION_SCHEMAS, "HubEvent"}
    assert not clash, f"gateway schema names clash with the event schema's: {clash}"
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "mmhub HTTP gateway",
            "version": "1",
            "description": "Carriers POST batches of events in any supported format. Each request is signed "
            "over its exact body; each event is answered accepted, duplicate or rejected. Parties read what they "
            "are entitled to (with a Bearer token), live, and delegate it.",
        },
        "paths": {
            "/v1/events/{format}": {
                "post": {
                    "operationId": "postEvents",
                    "summary": "Send a batch of events in one carrier format",
                    "description": "The body is the carrier's payload, untouched, in any content type. The event "
                    "identity is (source, event_id) plus the copy's fingerprint: a re-sent copy is a duplicate, a "
                    "revision (e.g. a later revised_at) is accepted. Events are published to Kafka only after "
                    "validation; rejected events and refused requests are kept in the dead-letter topic.",
                    "parameters": [
                        {"name": "format", "in": "path", "required": True, "schema": {"enum": list(FORMATS)}},
                        _header(HTTP_CARRIER, "the carrier's party id, e.g. carrier.oceanline"),
                        _header(HTTP_KEY_ID, "the id of the carrier key that signed the body"),
                        _header(
                            HTTP_SIGNATURE,
                            "t=<unix seconds>,v1=<base64 signature over 'v1\\n<format>\\n<t>\\n' + the exact body>;"
                            " refused more than 300 s from when the hub receives it",
                        ),
                    ],
                    "requestBody": {
                        "required": True,
                        "description": f"at most {max_body_bytes} bytes; canonical events follow HubEvent",
                        "content": {
                            "application/json": {
                                "schema": {"oneOf": [_ref("HubEvent"), {"type": "array", "items": _ref("HubEvent")}]}
                            },
                            "*/*": {"schema": {"type": "string", "format": "binary"}},
                        },
                    },
                    "responses": {
                        "202": {
                            "description": "read: one result per event, in payload order",
                            "content": {"application/json": {"schema": _ref("GatewayReceipt")}},
                        },
                        "401": _error(
                            "missing, invalid or stale signature; the body's first KiB, SHA-256 and size are kept in"
                            " the dead-letter topic"
                        ),
                        "404": _error("unknown format"),
                        "408": _error("the body did not arrive in time"),
                        "422": {
                            "description": "nothing accepted: every event was rejected (and dead-lettered); the"
                            " receipt, with error `nothing_accepted` and a reason",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "allOf": [
                                            _ref("GatewayReceipt"),
                                            {
                                                "required": ["error", "reason"],
                                                "properties": {
                                                    "error": {"const": "nothing_accepted"},
                                                    "reason": {"type": "string"},
                                                },
                                            },
                                        ]
                                    }
                                }
                            },
                        },
                        "413": _error(f"body larger than {max_body_bytes} bytes"),
                        "429": {
                            **_error("too many requests from this address, token or carrier"),
                            "headers": {"Retry-After": {"schema": {"type": "integer"}}},
                        },
                        "503": {
                            **_error("Kafka or Postgres unavailable; nothing unpublished was accepted, retry later"),
                            "headers": {"Retry-After": {"schema": {"type": "integer"}}},
                        },
                    },
                }
            },
            "/openapi.json": {
                "get": {
                    "operationId": "getOpenApi",
                    "summary": "This document",
                    "responses": {"200": {"description": "OpenAPI 3.1", "content": {"application/json": {}}}},
                }
            },
            "/healthz": {
                "get": {
                    "operationId": "getHealth",
                    "summary": "Whether the Kafka producer and the Postgres pool are up",
                    "responses": {
                        "200": {"description": "both up", "content": {"application/json": {}}},
                        "503": {"description": "one is down", "content": {"application/json": {}}},
                    },
                }
            },
            **READER_PATHS,
            **SUBSCRIPTION_PATHS,
        },
        "components": {
            "schemas": {
                **GATEWAY_SCHEMAS, **READER_SCHEMAS, **SUBSCRIPTION_SCHEMAS, **definitions, "HubEvent": event_schema
            },
            "securitySchemes": SECURITY_SCHEMES,
        },
    }
