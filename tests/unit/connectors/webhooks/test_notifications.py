"""Which share messages a webhook carries, which subscriptions they match, and how a delivery is audited."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from connectors.kafka import read_jsonl
from connectors.webhooks.delivery import WebhookConfig
from connectors.webhooks.notifications import (
    MalformedShare,
    Shared,
    Subscription,
    SubscriptionRequest,
    audit,
    shared,
)
from connectors.webhooks.run import config_from_env
from streams.codec import decode_event
from streams.merge import fold
from streams.sharing import POLICY, entitlements, view

from ...builders import AUTHORITY

REPO = Path(__file__).resolve().parents[4]
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)
PARTY = "shipper.chengdu-elec"


def status_message(party: str = PARTY, shipment: str = "SHP-1", version: int = 3, **extra: Any) -> dict[str, Any]:
    return {
        "kind": "status", "party": party, "shipment_id": shipment, "version": version, "relations": ["shipper"],
        "via_grants": [], "policy_version": POLICY.version,
        "view": {"shipment_id": shipment, "version": version, "status": "in_transit", "policy_version": POLICY.version},
        **extra,
    }


def claim_message(claim_id: str = "CLM-SHP-1-damage-L2") -> dict[str, Any]:
    message = status_message(version=5)
    del message["view"]
    return {**message, "kind": "claim", "claim": {"claim_id": claim_id, "status": "open", "liability": {"sdr": "2.0"}}}


def share(message: dict[str, Any]) -> Shared:
    found = shared(message)
    assert found is not None
    return found


# --- share messages -------------------------------------------------------------------------------------------------


def test_a_status_message_is_keyed_by_party_shipment_version_and_kind() -> None:
    found = share(status_message())
    assert (found.party, found.shipment_id, found.version, found.kind, found.ref) == (PARTY, "SHP-1", 3, "status", "")
    assert found.key == f"{PARTY}/SHP-1/3/status/"


def test_a_claim_message_is_told_apart_by_its_claim_id() -> None:
    found = share(claim_message())
    assert found.key == f"{PARTY}/SHP-1/5/claim/CLM-SHP-1-damage-L2"


def test_kinds_webhooks_do_not_carry_are_left_out() -> None:
    assert shared({**status_message(), "kind": "invoice"}) is None


@pytest.mark.parametrize(
    "broken",
    [
        {"kind": None},
        {"view": None},
        {"party": ""},
        {"shipment_id": 7},
        {"version": True},
        {"version": "3"},
        {"policy_version": None},
        {"relations": "shipper"},
        {"relations": None},
        {"via_grants": [1]},
    ],
)
def test_a_malformed_message_is_refused(broken: dict[str, Any]) -> None:
    with pytest.raises(MalformedShare):
        shared({**status_message(), **broken})


def test_a_claim_without_an_id_is_refused() -> None:
    message = claim_message()
    message["claim"] = {"status": "open"}
    with pytest.raises(MalformedShare):
        shared(message)


# --- subscriptions ---------------------------------------------------------------------------------------------------


def subscription(**fields: Any) -> Subscription:
    return Subscription(**{"subscription_id": "whs_1", "party": PARTY, "url": "https://example.com/h",
                           "secret": "whsec_s", "created_at": NOW, **fields})


def test_a_subscription_gets_only_its_own_partys_messages() -> None:
    assert subscription().matches(share(status_message()), NOW)
    assert not subscription().matches(share(status_message(party="consignee.johor-assembly")), NOW)


def test_filters_by_shipment_and_kind() -> None:
    status, claim = share(status_message()), share(claim_message())
    assert subscription(shipment_id="SHP-1").matches(status, NOW)
    assert not subscription(shipment_id="SHP-2").matches(status, NOW)
    assert subscription(kinds=("claim",)).matches(claim, NOW)
    assert not subscription(kinds=("claim",)).matches(status, NOW)
    assert subscription(kinds=("status", "claim")).matches(status, NOW)


def test_a_subscription_matches_what_is_shared_from_its_creation_until_its_expiry() -> None:
    message = share(status_message())
    expiring = subscription(expires_at=NOW + timedelta(hours=1))
    assert not expiring.matches(message, NOW - timedelta(seconds=1))
    assert expiring.matches(message, NOW)
    assert expiring.matches(message, NOW + timedelta(minutes=59))
    assert not expiring.matches(message, NOW + timedelta(hours=1))
    assert not subscription(active=False).matches(message, NOW)


def test_the_previous_secret_lasts_only_its_grace() -> None:
    rotated = subscription(previous_secret="whsec_old", previous_secret_until=NOW + timedelta(hours=1))
    assert rotated.previous(NOW) == "whsec_old"
    assert rotated.previous(NOW + timedelta(hours=1)) is None
    assert subscription().previous(NOW) is None


def test_a_subscription_request_is_strict() -> None:
    SubscriptionRequest.model_validate_json(b'{"url": "https://e.com/h", "kinds": ["claim"], "expires_at": "2026-07-01T00:00:00Z"}')
    for bad in (b'{"url": "https://e.com/h", "kinds": []}', b'{"url": "https://e.com/h", "kinds": ["invoice"]}',
                b'{"url": "https://e.com/h", "party": "someone.else"}', b'{"url": "https://e.com/h", "expires_at": "tomorrow"}',
                b'{"url": "https://e.com/h", "shipment_id": "no spaces"}', b'{}'):
        with pytest.raises(ValidationError):
            SubscriptionRequest.model_validate_json(bad)
    past = SubscriptionRequest(url="https://e.com/h", expires_at=NOW - timedelta(seconds=1))
    assert past.problem(NOW) == "expires_at is in the past"


# --- the audit ------------------------------------------------------------------------------------------------------


def test_the_audit_of_a_status_view_lists_exactly_the_fields_the_sharing_policy_disclosed() -> None:
    record = fold((decode_event(line) for line in read_jsonl(REPO / "examples" / "journey-claim.jsonl")), AUTHORITY)["SHP-2026-000043"]
    for party, who in entitlements(record).items():
        shown = view(record, who)
        message = {"kind": "status", "party": party, "shipment_id": record.shipment_id, "version": record.version,
                   "relations": sorted(who.relations), "via_grants": list(who.via), "policy_version": POLICY.version,
                   "view": shown.document}
        audited = audit(share(message), NOW)
        assert set(audited.fields) == shown.disclosed, party
        assert audited.share_id == f"webhook/{party}/{record.shipment_id}/{record.version}/status/"
        assert (audited.channel, audited.policy_version, audited.shared_at) == ("webhook", POLICY.version, NOW)


def test_the_audit_of_a_claim_names_record_paths() -> None:
    audited = audit(share(claim_message()), NOW)
    assert audited.fields == ("claims[].claim_id", "claims[].liability.sdr", "claims[].status")
    assert audited.share_id == f"webhook/{PARTY}/SHP-1/5/claim/CLM-SHP-1-damage-L2"


def test_the_audit_of_a_claim_names_the_insured_value_its_envelope_carries() -> None:
    message = {**claim_message(), "schema_version": 2, "insured_value": {"amount": "500000.00", "currency": "CNY"}}
    audited = audit(share(message), NOW)
    assert audited.fields == (
        "claims[].claim_id", "claims[].liability.sdr", "claims[].status",
        "insurance.policy.insured_value.amount", "insurance.policy.insured_value.currency",
    )
    assert audit(share({**message, "insured_value": None}), NOW).fields == audited.fields[:3]


def test_config_from_the_environment() -> None:
    config = config_from_env({"MMHUB_WEBHOOKS_BATCH_SIZE": "5", "MMHUB_WEBHOOKS_BACKOFF_CAP_S": "0.5",
                              "MMHUB_WEBHOOKS_ALLOW_HTTP": "true", "OTHER": "x",
                              "MMHUB_WEBHOOKS_ALLOW_HOSTS": " hooks.internal, 10.20.0.0/16 ,"})
    assert config == WebhookConfig(batch_size=5, backoff_cap_s=0.5, allow_http=True,
                                   allow_hosts=("hooks.internal", "10.20.0.0/16"))
    assert config_from_env({}) == WebhookConfig()
