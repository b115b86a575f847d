"""The gateway's pure reader decisions: what may be granted and revoked, which recipients a party may learn of, the
state of a grant, and Server-Sent Events framing (checked against an independent parser)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.gateway.access import (
    DisclosureLine,
    GrantRequest,
    Refusal,
    delegates_of,
    entitled,
    grant_state,
    may_revoke,
    may_see_grant,
    read_grant_request,
    recipient_scope,
    refuse_grant,
    visible_recipients,
)
from connectors.gateway.openapi import openapi_document
from connectors.gateway.reader_openapi import BEARER, READER_PATHS
from connectors.gateway.sse import comment, due, frame, last_event_id, revoked_frame, status_frame
from streams.sharing import Entitlement, Grant, Lens

from .sse_client import parse
from .readers import BROKER, MTO, NOW, PARTIES, RAIL, RECORD, SEA, SG_BROKER, SHIPMENT, SHIPPER


def grant(grant_id: str, grantor: str, grantee: str, grades: list[str], **extra: datetime) -> Grant:
    return Grant(
        grant_id=grant_id, shipment_id=SHIPMENT, grantor=grantor, grantee=grantee, grades=grades,
        granted_at=NOW - timedelta(days=1), **extra,
    )


def line(party: str, via: tuple[str, ...] = ()) -> DisclosureLine:
    return DisclosureLine(party, "status", "api", 1, NOW, (RECORD.version,), via)


# --- grants --------------------------------------------------------------------------------------------------------


def test_a_grant_within_what_the_grantor_holds_is_allowed() -> None:
    shipper = entitled(RECORD, [], NOW)[SHIPPER]
    asked = GrantRequest(grantee=BROKER, grades=["public", "billing"])
    assert refuse_grant(shipper, asked, PARTIES, NOW, grants=[]) is None


def test_grades_the_grantor_lacks_are_refused_by_name_in_policy_order() -> None:
    rail = entitled(RECORD, [], NOW)[RAIL]
    asked = GrantRequest(grantee=BROKER, grades=["personal", "public", "billing"])
    refusal = refuse_grant(rail, asked, PARTIES, NOW, grants=[])
    assert refusal == Refusal(403, "grades_not_held", "you do not hold these grades of the shipment: billing, personal")


def test_a_delegate_may_grant_on_only_what_it_was_granted() -> None:
    delegated = entitled(RECORD, [grant("g1", SHIPPER, BROKER, ["public"])], NOW)[BROKER]
    assert refuse_grant(delegated, GrantRequest(grantee=SG_BROKER, grades=["public"]), PARTIES, NOW, grants=[]) is None
    refusal = refuse_grant(delegated, GrantRequest(grantee=SG_BROKER, grades=["operational"]), PARTIES, NOW, grants=[])
    assert refusal is not None and refusal.status == 403


def test_a_grant_request_that_is_not_json_or_not_the_shape_is_400() -> None:
    not_json = read_grant_request(b"{")
    assert isinstance(not_json, Refusal) and (not_json.status, not_json.code) == (400, "invalid_json")
    refused = read_grant_request(b'{"grantee": "Not A Party", "grades": ["public"]}')
    assert isinstance(refused, Refusal) and (refused.status, refused.code) == (400, "invalid_request")
    assert read_grant_request(b'{"grantee": "broker.x", "grades": ["public"]}') == GrantRequest(grantee="broker.x", grades=["public"])


def test_the_grantor_and_the_mto_may_revoke_the_grantee_only_sees() -> None:
    g = grant("g1", SHIPPER, BROKER, ["public"])
    assert may_revoke(g, SHIPPER, RECORD) and may_revoke(g, MTO, RECORD)
    assert not may_revoke(g, BROKER, RECORD) and may_see_grant(g, BROKER, RECORD)
    assert not may_see_grant(g, RAIL, RECORD)
    assert not may_revoke(g, MTO, None)  # without the record, no one is known to be its MTO


def test_a_grant_is_active_revoked_expired_or_cut() -> None:
    first = grant("g1", SHIPPER, BROKER, ["public"])
    onward = grant("g2", BROKER, SG_BROKER, ["public"])
    expired = grant("g3", SHIPPER, SG_BROKER, ["public"], expires_at=NOW)
    assert grant_state(onward, entitled(RECORD, [first, onward], NOW), NOW) == "active"
    revoked = first.model_copy(update={"revoked_at": NOW})
    after = entitled(RECORD, [revoked, onward, expired], NOW)
    assert [grant_state(g, after, NOW) for g in (revoked, onward, expired)] == ["revoked", "cut", "expired"]


def test_a_grant_of_grades_its_grantor_no_longer_holds_is_cut() -> None:
    # granted by a carrier of a grade carriers never hold (as the CLI or an old policy might have stored it)
    g = grant("g1", RAIL, BROKER, ["billing"])
    assert grant_state(g, entitled(RECORD, [g], NOW), NOW) == "cut"


# --- who else received it --------------------------------------------------------------------------------------------


def test_delegates_are_found_through_chains_including_revoked_links() -> None:
    grants = [
        grant("g1", RAIL, BROKER, ["public"], revoked_at=NOW),
        grant("g2", BROKER, SG_BROKER, ["public"]),
        grant("g3", SEA, "broker.other", ["public"]),
        grant("g4", SG_BROKER, RAIL, ["public"]),  # a loop back to the carrier ends the search
    ]
    assert delegates_of(RAIL, grants) == {BROKER, SG_BROKER}


def test_whole_journey_parties_see_every_recipient_carriers_and_delegates_only_their_own() -> None:
    grants = [grant("g1", RAIL, BROKER, ["public"]), grant("g2", SHIPPER, SG_BROKER, ["public"])]
    now_entitled = entitled(RECORD, grants, NOW)
    lines = [line(p) for p in (MTO, SHIPPER, RAIL, SEA)] + [line(BROKER, ("g1",)), line(SG_BROKER, ("g2",))]

    every = [replace(line, via_grants=()) for line in lines]  # the document does not carry the chains
    for party in (MTO, SHIPPER, "consignee.johor-assembly", "insurer.picc"):
        assert visible_recipients(now_entitled[party], lines, grants) == ("all", every)
    scope, shown = visible_recipients(now_entitled[RAIL], lines, grants)
    assert (scope, [line.party for line in shown]) == ("own_and_delegates", [RAIL, BROKER])
    # a delegate of the shipper sees the whole journey's grades it was given, not who else holds the shipment
    assert recipient_scope(now_entitled[SG_BROKER]) == "own_and_delegates"
    assert [line.party for line in visible_recipients(now_entitled[SG_BROKER], lines, grants)[1]] == [SG_BROKER]


def test_a_delegate_line_shows_only_what_went_through_the_grantors_own_grants() -> None:
    # the broker holds grants of the carrier and of the shipper; the carrier granted the insurer too
    grants = [
        grant("g1", RAIL, BROKER, ["public"]), grant("g2", SHIPPER, BROKER, ["public"]),
        grant("g3", RAIL, "insurer.picc", ["public"]), grant("g4", BROKER, SG_BROKER, ["public"]),
    ]
    rail = entitled(RECORD, grants, NOW)[RAIL]
    lines = [
        line(BROKER, ("g1",)), line(BROKER, ("g2",)), line(BROKER, ("g1",)), line("insurer.picc"),
        line(SG_BROKER, ("g1", "g4")), line(SG_BROKER, ("g2", "g4")), line(RAIL),
    ]
    scope, shown = visible_recipients(rail, lines, grants)
    # one line per party, kind and channel, counting only the shares made through the carrier's grants
    assert sorted((line.party, line.count, line.via_grants) for line in shown) == [
        (BROKER, 2, ()), (SG_BROKER, 1, ()), (RAIL, 1, ()),
    ]


def test_a_party_with_its_own_relation_and_a_grant_keeps_its_own_scope() -> None:
    # the insurer also holds a grant from a carrier: still entitled in its own right to the whole journey
    grants = [grant("g1", RAIL, "insurer.picc", ["rates"])]
    insurer = entitled(RECORD, grants, NOW)["insurer.picc"]
    assert insurer.relations == {"insurer", "delegate"} and recipient_scope(insurer) == "all"
    carrier_only = Entitlement(BROKER, frozenset({"carrier", "delegate"}), (Lens(frozenset({"public"}), frozenset({2}), RAIL),))
    assert recipient_scope(carrier_only) == "own_and_delegates"


# --- SSE framing ---------------------------------------------------------------------------------------------------


def test_a_status_frame_has_id_event_and_data_lines_and_ends_with_a_blank_line() -> None:
    raw = status_frame(7, {"status": "in_transit"})
    assert raw == b'id: 7\nevent: status\ndata: {"status":"in_transit"}\n\n'
    (parsed,) = parse(raw)
    assert (parsed.id, parsed.event, parsed.text) == ("7", "status", '{"status":"in_transit"}')


def test_multi_line_data_becomes_several_data_lines() -> None:
    assert frame(data="a\nb\r\nc\rd") == b"data: a\ndata: b\ndata: c\ndata: d\n\n"


def test_comments_retry_and_revoked_frames() -> None:
    assert comment("keepalive") == b": keepalive\n\n"
    assert frame(retry_ms=3000) == b"retry: 3000\n\n"
    (revoked,) = parse(revoked_frame(SHIPMENT))
    assert (revoked.event, revoked.id) == ("revoked", None) and SHIPMENT in revoked.text


@pytest.mark.parametrize("field", ["event", "event_id"])
def test_a_line_break_in_a_single_line_field_is_refused(field: str) -> None:
    with pytest.raises(ValueError):
        frame(**{field: "a\nb"})


@given(st.text(), st.sampled_from(["status", "revoked"]), st.integers(min_value=0, max_value=10**12))
def test_any_data_round_trips_through_a_spec_parser(data: str, event: str, version: int) -> None:
    (parsed,) = parse(frame(event=event, data=data, event_id=str(version)))
    normalised = data.replace("\r\n", "\n").replace("\r", "\n")
    assert (parsed.event, parsed.id, parsed.text) == (event, str(version), normalised)


@pytest.mark.parametrize(
    ("header", "expected"),
    [(None, None), ("", None), ("12", 12), (" 12 ", 12), ("-1", None), ("1.5", None), ("abc", None), ("١٢", None),
     ("9" * 19, None)],
)
def test_last_event_id_is_a_version_or_ignored(header: str | None, expected: int | None) -> None:
    assert last_event_id(header) == expected


def test_a_version_is_due_only_when_newer_than_the_last_sent() -> None:
    assert due(5, None) and due(6, 5)
    assert not due(5, 5) and not due(4, 5)


# --- OpenAPI ---------------------------------------------------------------------------------------------------------


def test_every_reader_operation_is_in_the_openapi_document_behind_the_bearer_scheme() -> None:
    document = openapi_document(1024)
    assert document["components"]["securitySchemes"][BEARER]["scheme"] == "bearer"
    for path, operations in READER_PATHS.items():
        assert document["paths"][path] == operations
        for operation in operations.values():
            assert operation["security"] == [{BEARER: []}]
            assert "401" in operation["responses"]
