"""The hub's and the parties' ACLs as data: who may write the internal topics, and that no party's grant covers
another party's topics or groups (the broker test, tests/security/test_kafka_auth.py, checks them for real)."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from connectors.acl import Acl, Operation, Pattern, Resource, hub_acls, party_acls, scram_upsertion
from hubconf.settings import Settings
from hubconf.topics import SHARE_AUDIENCES

SETTINGS = Settings(
    kafka="unused:9092", pg_dsn="postgresql://unused", pg_schema="unused", namespace="ns", store="memory://",
    data_dir=Path("/nonexistent"),
    partitions=8, clock_interval_s=600, report_interval_s=30,
)
PARTY_IDS = st.from_regex(r"[a-z0-9][a-z0-9._-]{1,20}", fullmatch=True)


def covers(acl: Acl, resource: Resource, name: str) -> bool:
    """What the broker's matching does for our two pattern types."""
    if acl.resource != resource:
        return False
    return name == acl.name if acl.pattern == Pattern.LITERAL else name.startswith(acl.name)


def writers(topic: str) -> set[str]:
    return {a.user for a in hub_acls(SETTINGS) if a.operation == Operation.WRITE and covers(a, Resource.TOPIC, topic)}


def test_only_the_worker_the_verified_intake_and_the_operators_tools_write_hub_events() -> None:
    assert writers(SETTINGS.topics.events) == {"worker", "gateway", "tools"}
    assert writers(SETTINGS.topics.status) == {"worker"}
    assert writers(f"{SETTINGS.app_id}-shipments-changelog") == {"worker"}
    assert writers(SETTINGS.topics.share("carrier", "carrier.oceanline")) == {"share"}


@given(PARTY_IDS, PARTY_IDS, st.sampled_from(SHARE_AUDIENCES), st.text(max_size=8))
def test_no_party_grant_covers_another_partys_topics_or_groups(ours: str, theirs: str, audience: str, group: str) -> None:
    if ours == theirs:
        return
    for acl in party_acls(SETTINGS, ours, "carrier"):
        assert not covers(acl, Resource.TOPIC, SETTINGS.topics.share(audience, theirs))
        assert not covers(acl, Resource.GROUP, SETTINGS.topics.party_groups(theirs) + group)
        assert not covers(acl, Resource.TOPIC, SETTINGS.topics.events)


def test_a_carrier_writes_the_raw_topics_and_a_shipper_nothing() -> None:
    carrier = {a.name for a in party_acls(SETTINGS, "carrier.oceanline", "carrier") if a.operation == Operation.WRITE}
    assert carrier == {SETTINGS.topics.raw(name) for name in ("canonical", "dcsa", "edifact", "onerecord", "epcis", "ubl")}
    assert not [a for a in party_acls(SETTINGS, "shipper.acme", "shipper") if a.operation == Operation.WRITE]


def test_the_scram_credential_is_salted_per_call_and_never_the_password() -> None:
    first, second = scram_upsertion("carrier.oceanline", "pencil"), scram_upsertion("carrier.oceanline", "pencil")
    assert first[3] != second[3] and first[4] != second[4]  # a new salt each time
    assert b"pencil" not in first[4] and len(first[4]) == 32  # PBKDF2-HMAC-SHA-256 output


def test_the_worker_alone_holds_its_runtime_stages_groups_and_transactional_ids() -> None:
    """Each worker stage's group and its producers' ids (`<group>.<partition>`); not the sink's group, whose name
    shares the app id's prefix."""
    acls = hub_acls(SETTINGS)
    for stage in ("connect", "resolve", "merge"):
        group = SETTINGS.stage_group(stage)
        assert {a.user for a in acls if covers(a, Resource.GROUP, group)} == {"worker"}
        for partition in (0, 7):
            holders = {a.user for a in acls if covers(a, Resource.TRANSACTIONAL_ID, f"{group}.{partition}")}
            assert holders == {"worker"}
    assert {a.user for a in acls if covers(a, Resource.GROUP, SETTINGS.sink_group)} == {"sink"}
    assert not [a for a in acls if covers(a, Resource.TRANSACTIONAL_ID, f"{SETTINGS.sink_group}.0")]


def test_only_the_worker_reads_its_changelogs_configuration() -> None:
    # runtime.loop reads each changelog's delete.retention.ms (how long a delete stays in it) before a restore
    changelog = SETTINGS.changelog("shipments")
    readers = {a.user for a in hub_acls(SETTINGS) if a.operation == Operation.DESCRIBE_CONFIGS and covers(a, Resource.TOPIC, changelog)}
    assert readers == {"worker"}
    assert all(a.user == "worker" for a in hub_acls(SETTINGS) if a.operation == Operation.DESCRIBE_CONFIGS)
