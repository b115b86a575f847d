"""The parts of the gateway's OpenAPI document for the routes a party's reader token opens: reading, following and
delegating shipments, and its webhook subscriptions (connectors.gateway.openapi merges them in)."""

from __future__ import annotations

from typing import Any

from connectors.gateway.access import MAX_GRANTS_PER_GRANTOR
from connectors.webhooks.notifications import KINDS as WEBHOOK_KINDS
from connectors.webhooks.notifications import MAX_OVERLAPPING, MAX_SUBSCRIPTIONS, SubscriptionRequest
from streams.sharing import POLICY

BEARER = "bearerToken"
SECURITY_SCHEMES: dict[str, Any] = {
    BEARER: {
        "type": "http",
        "scheme": "bearer",
        "description": "the API token registered for your party (MMHUB_PARTIES holds only its SHA-256)",
    }
}
_SECURED: list[dict[str, list[str]]] = [{BEARER: []}]


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str) -> dict[str, Any]:
    return _json(description, _ref("GatewayError"))


_SHIPMENT = {"name": "shipment_id", "in": "path", "required": True, "schema": {"type": "string"}}
_UNAUTHENTICATED = _error("no Authorization: Bearer header, or a token no party holds")
_NOT_FOUND = _error("no such shipment, or one you are not entitled to: the two answers are identical")
_UNAVAILABLE = {
    **_error("Postgres or Kafka did not answer; nothing was disclosed"),
    "headers": {"Retry-After": {"schema": {"type": "integer"}}},
}
_GRADES = {"type": "array", "items": {"enum": list(POLICY.grades)}, "minItems": 1, "maxItems": 10}
_TIME = {"type": "string", "format": "date-time"}
_NULLABLE_TIME = {"type": ["string", "null"], "format": "date-time"}

READER_SCHEMAS: dict[str, Any] = {
    "ShipmentView": {
        "type": "object",
        "required": ["shipment_id", "policy_version"],
        "additionalProperties": True,
        "description": "The shipment record (see `mmhub schema`) with only the fields of the grades you hold, and "
        "only your legs' rows if you are a carrier. `policy_version` is the sharing policy that decided it.",
    },
    "Access": {
        "type": "object",
        "required": ["party", "relations", "grades", "legs", "via_grants", "lenses"],
        "properties": {
            "party": {"type": "string"},
            "relations": {
                "type": "array",
                "items": {"enum": ["mto", "shipper", "consignee", "carrier", "insurer", "delegate"]},
            },
            "grades": {"type": "array", "items": {"enum": list(POLICY.grades)}},
            "legs": {"type": ["array", "null"], "items": {"type": "integer"}, "description": "null: the whole journey"},
            "via_grants": {
                "type": "array",
                "items": {"type": "string"},
                "description": "for a delegate: the grant chain",
            },
            "lenses": {
                "type": "array",
                "description": "what you see is the union of what each lens shows alone: its grades on its legs "
                "(one per relation, and one per grant on each lens of its grantor)",
                "items": {
                    "type": "object",
                    "required": ["grades", "legs", "via_grants"],
                    "properties": {
                        "grades": {"type": "array", "items": {"enum": list(POLICY.grades)}},
                        "legs": {"type": ["array", "null"], "items": {"type": "integer"}},
                        "via_grants": {"type": "array", "items": {"type": "string"}},
                    },
                },
            },
        },
    },
    "GrantRequest": {
        "type": "object",
        "required": ["grantee", "grades"],
        "additionalProperties": False,
        "properties": {
            "grantee": {"type": "string", "description": "a registered party id"},
            "grades": _GRADES,
            "expires_at": {**_TIME, "description": "with a timezone offset; omitted: until revoked"},
        },
    },
    "Grant": {
        "type": "object",
        "required": [
            "grant_id",
            "shipment_id",
            "grantor",
            "grantee",
            "grades",
            "granted_at",
            "expires_at",
            "revoked_at",
            "state",
        ],
        "properties": {
            "grant_id": {"type": "string", "format": "uuid"},
            "shipment_id": {"type": "string"},
            "grantor": {"type": "string"},
            "grantee": {"type": "string"},
            "grades": _GRADES,
            "granted_at": _TIME,
            "expires_at": _NULLABLE_TIME,
            "revoked_at": _NULLABLE_TIME,
            "state": {
                "enum": ["active", "revoked", "expired", "cut"],
                "description": "cut: neither revoked nor expired, but its grantor no longer holds any of its grades",
            },
        },
    },
    "GrantList": {
        "type": "object",
        "required": ["shipment_id", "you", "grants"],
        "properties": {
            "shipment_id": {"type": "string"},
            "you": _ref("Access"),
            "grants": {
                "type": "array",
                "items": _ref("Grant"),
                "description": "those you made or received (all for the MTO)",
            },
        },
    },
    "DisclosureLine": {
        "type": "object",
        "required": ["party", "kind", "channel", "count", "last_shared_at", "record_versions"],
        "properties": {
            "party": {"type": "string"},
            "kind": {"type": "string", "description": "status, disclosures, invoice, note, payout, claim"},
            "channel": {"enum": ["kafka", "webhook", "sse", "api"]},
            "count": {"type": "integer", "minimum": 1},
            "last_shared_at": _TIME,
            "record_versions": {"type": "array", "items": {"type": "integer"}},
        },
    },
    "Disclosures": {
        "type": "object",
        "required": ["shipment_id", "record_version", "you", "held", "recipients_scope", "recipients", "grants"],
        "properties": {
            "shipment_id": {"type": "string"},
            "record_version": {"type": "integer"},
            "you": _ref("Access"),
            "held": _ref("ShipmentView"),
            "recipients_scope": {
                "enum": ["all", "own_and_delegates"],
                "description": "all: for a party entitled in its own right to the whole journey (MTO, shipper, "
                "consignee, insurer); own_and_delegates: for a carrier or a delegate, only its own lines and those of "
                "the parties it delegated to",
            },
            "recipients": {"type": "array", "items": _ref("DisclosureLine")},
            "grants": {"type": "array", "items": _ref("Grant")},
        },
    },
}

READER_PATHS: dict[str, Any] = {
    "/v1/datasets/performance": {
        "get": {
            "operationId": "getPerformanceDataset",
            "summary": "The carrier performance data set (per lane, mode, carrier and month)",
            "description": "By your registry role (the sharing policy's `datasets.readers`): an insurer reads for "
            "underwriting (cells with at least k shipments and m shippers, Laplace noise, and the lane/carrier risk "
            "view), a lender for lending (the same cells with noise), a carrier its own cells unaggregated. A noisy "
            "release debits epsilon from your privacy budget (`epsilon` in the answer); one that repeats earlier "
            "figures costs nothing. Every read is audited (share_audit and hub.audit, shipment id "
            "`dataset:performance`) and metered (`mmhub usage`).",
            "security": _SECURED,
            "parameters": [
                {
                    "name": "month",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}$"},
                },
                {"name": "lane", "in": "query", "required": False, "schema": {"type": "string"}},
            ],
            "responses": {
                "200": _json("the release", {"type": "object"}),
                "400": _error("a month or lane that is not well formed"),
                "401": _UNAUTHENTICATED,
                "403": _error("your role reads no data set, or your privacy budget cannot pay for this release"),
                "503": _UNAVAILABLE,
            },
        }
    },
    "/v1/datasets/performance/risk": {
        "get": {
            "operationId": "getClaimRisk",
            "summary": "The claims you insure on one shipment, next to their policy and their lane's risk",
            "description": "For an insurer that underwrites the shipment's policy: each claim it covers, with the "
            "policy number, the leg's lane and carrier, and that lane and carrier's risk (claim frequency and "
            "severity with 95 % intervals) from the cells the last underwriting release published (null where no "
            "released cell covers them). No new draw and no epsilon; the read is audited like a share.",
            "security": _SECURED,
            "parameters": [{"name": "shipment", "in": "query", "required": True, "schema": {"type": "string"}}],
            "responses": {
                "200": _json("the policy and the claims with their risk", {"type": "object"}),
                "401": _UNAUTHENTICATED,
                "403": _error("you do not underwrite (only an insurer reads the risk view)"),
                "404": _error("no such shipment with a policy you underwrite"),
                "503": _UNAVAILABLE,
            },
        }
    },
    "/v1/shipments/{shipment_id}": {
        "get": {
            "operationId": "getShipment",
            "summary": "Your view of a shipment",
            "description": "Each read is a disclosure, audited (share_audit row and hub.audit message, channel api) "
            "before it is answered; its share id is in the Mmhub-Share-Id header.",
            "security": _SECURED,
            "parameters": [_SHIPMENT],
            "responses": {
                "200": _json("your view", _ref("ShipmentView")),
                "401": _UNAUTHENTICATED,
                "404": _NOT_FOUND,
                "503": _UNAVAILABLE,
            },
        }
    },
    "/v1/shipments/{shipment_id}/disclosures": {
        "get": {
            "operationId": "getDisclosures",
            "summary": "What the hub holds about the shipment that you may see, and who received data of it",
            "description": "From the audit log, grouped by party, kind and channel; this read itself is audited "
            "(kind disclosures) and counted.",
            "security": _SECURED,
            "parameters": [_SHIPMENT],
            "responses": {
                "200": _json("your view, the recipients you may know of, your grants", _ref("Disclosures")),
                "401": _UNAUTHENTICATED,
                "404": _NOT_FOUND,
                "503": _UNAVAILABLE,
            },
        }
    },
    "/v1/shipments/{shipment_id}/live": {
        "get": {
            "operationId": "getShipmentLive",
            "summary": "Your view of a shipment, live (Server-Sent Events)",
            "description": "`event: status` with `id: <record version>` and your view as `data`, now and at each newer "
            "version; `: keepalive` comments every 15 s; `event: revoked` and the end of the stream when your "
            "entitlement ends. Every pushed version is audited (channel sse).",
            "security": _SECURED,
            "parameters": [
                _SHIPMENT,
                {
                    "name": "Last-Event-ID",
                    "in": "header",
                    "required": False,
                    "description": "the last record version you received: only newer versions are sent",
                    "schema": {"type": "string"},
                },
            ],
            "responses": {
                "200": {
                    "description": "an event stream",
                    "content": {"text/event-stream": {"schema": {"type": "string"}}},
                },
                "401": _UNAUTHENTICATED,
                "404": _NOT_FOUND,
                "429": {
                    **_error("you hold 5 live views already, or the gateway its 500: close one, or retry later"),
                    "headers": {"Retry-After": {"schema": {"type": "integer"}}},
                },
                "503": _UNAVAILABLE,
            },
        }
    },
    "/v1/shipments/{shipment_id}/grants": {
        "get": {
            "operationId": "getGrants",
            "summary": "The grants on the shipment you made or received (every grant, for its MTO)",
            "security": _SECURED,
            "parameters": [_SHIPMENT],
            "responses": {
                "200": _json("the grants", _ref("GrantList")),
                "401": _UNAUTHENTICATED,
                "404": _NOT_FOUND,
                "503": _UNAVAILABLE,
            },
        },
        "post": {
            "operationId": "postGrant",
            "summary": "Let a further party see some of your grades of the shipment (delegation)",
            "description": "The grantee sees the granted grades that you hold, over your legs if you are a carrier, "
            "while you are entitled and until the grant expires or is revoked; it may grant on in turn.",
            "security": _SECURED,
            "parameters": [_SHIPMENT],
            "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("GrantRequest")}}},
            "responses": {
                "201": _json("the grant", _ref("Grant")),
                "400": _error("not JSON, an unknown grantee or grade, yourself as grantee, or expires_at in the past"),
                "401": _UNAUTHENTICATED,
                "403": _error(
                    "grades_not_held: grades you do not hold (named in the reason); too_many_grants: you have made "
                    f"{MAX_GRANTS_PER_GRANTOR} grants on this shipment, revoked ones included"
                ),
                "404": _NOT_FOUND,
                "503": _UNAVAILABLE,
            },
        },
    },
    "/v1/grants/{grant_id}": {
        "delete": {
            "operationId": "revokeGrant",
            "summary": "Revoke a grant, and with it everything delegated from it",
            "security": _SECURED,
            "parameters": [{"name": "grant_id", "in": "path", "required": True, "schema": {"type": "string"}}],
            "responses": {
                "200": _json("the grant, revoked (revoking again changes nothing)", _ref("Grant")),
                "401": _UNAUTHENTICATED,
                "403": _error("you received the grant, but only its grantor or the shipment's MTO may revoke it"),
                "404": _error("no grant with this id that you made, received or (as MTO) oversee"),
                "503": _UNAVAILABLE,
            },
        }
    },
}


# --- webhook subscriptions (connectors.webhooks.routes), with the same reader token --------------------------------

_SUBSCRIPTION_ID = {"name": "subscription_id", "in": "path", "required": True, "schema": {"type": "string"}}
_UNKNOWN_SUBSCRIPTION = _error("no active subscription with this id of yours (another party's answers the same)")
_SUBSCRIPTION_FIELDS: dict[str, Any] = {
    "subscription_id": {"type": "string"},
    "party": {"type": "string", "description": "your party id, from your token"},
    "url": {"type": "string", "description": "where the hub POSTs your notifications, signed with the secret"},
    "shipment_id": {"type": ["string", "null"], "description": "null: every shipment of yours"},
    "kinds": {"type": ["array", "null"], "items": {"enum": list(WEBHOOK_KINDS)}, "description": "null: every kind"},
    "created_at": _TIME,
    "expires_at": _NULLABLE_TIME,
}

SUBSCRIPTION_SCHEMAS: dict[str, Any] = {
    "SubscriptionRequest": SubscriptionRequest.model_json_schema(mode="validation"),
    "Subscription": {
        "type": "object",
        "required": [*_SUBSCRIPTION_FIELDS, "secret", "previous_secret_valid_until"],
        "properties": {
            **_SUBSCRIPTION_FIELDS,
            "secret": {"type": "string", "description": "signs every delivery; shown only in this answer"},
            "previous_secret_valid_until": {
                **_NULLABLE_TIME,
                "description": "after a rotation: until then deliveries are signed with the old secret too",
            },
        },
    },
    "SubscriptionList": {
        "type": "object",
        "required": ["subscriptions"],
        "properties": {
            "subscriptions": {
                "type": "array",
                "items": {
                    "type": "object",
                    "description": "one subscription without its secrets, with its notifications by state",
                    "required": [*_SUBSCRIPTION_FIELDS, "active", "pending", "delivered", "dead"],
                    "properties": {
                        **_SUBSCRIPTION_FIELDS,
                        "active": {"type": "boolean"},
                        "previous_secret_until": _NULLABLE_TIME,
                        "pending": {"type": "integer", "minimum": 0},
                        "delivered": {"type": "integer", "minimum": 0},
                        "dead": {"type": "integer", "minimum": 0, "description": "given up after every retry"},
                        "last_error": {"type": ["string", "null"]},
                        "last_error_at": _NULLABLE_TIME,
                        "dead_reason": {"type": ["string", "null"]},
                    },
                },
            }
        },
    },
}

SUBSCRIPTION_PATHS: dict[str, Any] = {
    "/v1/subscriptions": {
        "post": {
            "operationId": "subscribe",
            "summary": "Have your share messages (status views, claims) POSTed to a URL of yours, signed",
            "description": "The answer carries the signing secret, once. The hub POSTs only to a public https URL.",
            "security": _SECURED,
            "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("SubscriptionRequest")}}},
            "responses": {
                "201": {
                    **_json("the subscription, with its secret", _ref("Subscription")),
                    "headers": {"Location": {"schema": {"type": "string"}}},
                },
                "401": _UNAUTHENTICATED,
                "403": _error(
                    f"too_many_subscriptions: you hold {MAX_SUBSCRIPTIONS} subscriptions, or {MAX_OVERLAPPING} that "
                    "would get the same notifications"
                ),
                "408": _error("the body did not arrive in time"),
                "413": _error("a body larger than 16 KiB"),
                "422": _error(
                    "invalid_subscription: not a valid request, a URL the hub will not POST to, or an "
                    "expiry in the past"
                ),
                "503": _UNAVAILABLE,
            },
        },
        "get": {
            "operationId": "listSubscriptions",
            "summary": "Your subscriptions, with their pending, delivered and dead notifications",
            "security": _SECURED,
            "responses": {
                "200": _json("your subscriptions, without their secrets", _ref("SubscriptionList")),
                "401": _UNAUTHENTICATED,
                "503": _UNAVAILABLE,
            },
        },
    },
    "/v1/subscriptions/{subscription_id}": {
        "delete": {
            "operationId": "unsubscribe",
            "summary": "End a subscription",
            "security": _SECURED,
            "parameters": [_SUBSCRIPTION_ID],
            "responses": {
                "204": {"description": "ended"},
                "401": _UNAUTHENTICATED,
                "404": _UNKNOWN_SUBSCRIPTION,
                "503": _UNAVAILABLE,
            },
        }
    },
    "/v1/subscriptions/{subscription_id}/rotate": {
        "post": {
            "operationId": "rotateSubscriptionSecret",
            "summary": "A new signing secret; the old one still signs for a grace period",
            "security": _SECURED,
            "parameters": [_SUBSCRIPTION_ID],
            "responses": {
                "200": _json("the subscription, with its new secret", _ref("Subscription")),
                "401": _UNAUTHENTICATED,
                "404": _UNKNOWN_SUBSCRIPTION,
                "503": _UNAVAILABLE,
            },
        }
    },
}
