"""The gateway's reader routes against in-memory shipments, grants, audit log and Kafka: who reads what, delegation
and its revocation, one audit record per disclosure, and the live view's framing, resumption and end."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, AsyncIterator, Awaitable, Callable, Iterator, Sequence

import orjson
import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient, TestServer

from connectors.carriers import CarrierRegistry
from connectors.gateway.access import DisclosureLine
from connectors.gateway.app import create_gateway
from connectors.gateway.intake import Headers, Message, Unavailable
from connectors.gateway.reader import SHARE_ID_HEADER, Reader
from hubconf.settings import Settings
from schemas.record import ShipmentRecord
from streams.sharing import POLICY, Entitlement, Grant, Lens, Share, entitlements, view

from .readers import BROKER, INSURER, MTO, NOW, PARTIES, RAIL, RECORD, SEA, SG_BROKER, SHIPMENT, SHIPPER, TOKENS
from .sse_client import next_event, next_frame, parse

SETTINGS = Settings(
    kafka="unused:9092", pg_dsn="postgresql://unused", pg_schema="unused", namespace="unit", store="memory://",
    data_dir=Path("/nonexistent"), partitions=1, clock_interval_s=600.0, report_interval_s=30.0,
)


# --- fakes ------------------------------------------------------------------------------------------------------


class MemoryShipments:
    def __init__(self, *records: ShipmentRecord) -> None:
        self.held = {r.shipment_id: r for r in records}
        self.version_polls = 0

    async def record(self, shipment_id: str) -> ShipmentRecord | None:
        return self.held.get(shipment_id)

    async def records(self, shipment_ids: Sequence[str]) -> dict[str, ShipmentRecord]:
        return {sid: self.held[sid] for sid in shipment_ids if sid in self.held}

    async def versions(self, shipment_ids: Sequence[str]) -> dict[str, int]:
        self.version_polls += 1
        return {sid: self.held[sid].version for sid in shipment_ids if sid in self.held}

    def bump(self, shipment_id: str = SHIPMENT) -> int:
        """A new version of the record, as the projection would write it after one more event."""
        record = self.held[shipment_id]
        self.held[shipment_id] = record.model_copy(update={"version": record.version + 1})
        return record.version + 1


class MemoryGrants:
    def __init__(self) -> None:
        self.rows: dict[str, Grant] = {}

    async def for_shipment(self, shipment_id: str) -> list[Grant]:
        return [g for g in self.rows.values() if g.shipment_id == shipment_id]

    async def for_shipments(self, shipment_ids: Sequence[str]) -> dict[str, list[Grant]]:
        return {sid: found for sid in shipment_ids if (found := await self.for_shipment(sid))}

    async def get(self, grant_id: str) -> Grant | None:
        return self.rows.get(grant_id)

    async def add(self, grant: Grant) -> None:
        assert grant.grant_id not in self.rows
        self.rows[grant.grant_id] = grant

    async def revoke(self, grant_id: str, at: datetime) -> Grant | None:
        grant = self.rows.get(grant_id)
        if grant is not None and grant.revoked_at is None:
            grant = self.rows[grant_id] = grant.model_copy(update={"revoked_at": at})
        return grant


class MemoryShareLog:
    def __init__(self) -> None:
        self.rows: dict[str, Share] = {}

    async def write(self, share: Share, publish: Callable[[dict[str, Any]], Awaitable[None]]) -> None:
        await publish(share.document())  # as the real one: a failed publish leaves no row (the chain is Postgres's)
        self.rows.setdefault(share.share_id, share)

    async def summary(self, shipment_id: str) -> list[DisclosureLine]:
        groups: dict[tuple[str, str, str, tuple[str, ...]], list[Share]] = defaultdict(list)
        for share in self.rows.values():
            if share.shipment_id == shipment_id:
                groups[(share.party, share.kind, share.channel, share.via_grants)].append(share)
        return [
            DisclosureLine(party, kind, channel, len(shares), max(s.shared_at for s in shares),
                           tuple(sorted({s.version for s in shares if s.version is not None})), via)
            for (party, kind, channel, via), shares in groups.items()
        ]


class MemoryPublisher:
    def __init__(self) -> None:
        self.sent: list[Message] = []
        self.down = False

    async def send(self, topic: str, key: bytes | None, value: bytes, headers: Headers) -> None:
        if self.down:
            raise Unavailable("kafka is down")
        self.sent.append(Message(topic, key, value, headers))

    async def ready(self) -> bool:
        return not self.down


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


class Hub:
    def __init__(self, client: TestClient[Any, Any], reader: Reader, shipments: MemoryShipments, grants: MemoryGrants,
                 shares: MemoryShareLog, publisher: MemoryPublisher, clock: Clock) -> None:
        self.client, self.reader, self.shipments, self.grants = client, reader, shipments, grants
        self.shares, self.publisher, self.clock = shares, publisher, clock

    async def get(self, party: str | None, path: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
        response = await self.client.get(path, headers={**auth(party), **(headers or {})})
        return response.status, orjson.loads(await response.read())

    async def grant(self, party: str, grantee: str, grades: list[str], **extra: Any) -> tuple[int, Any]:
        body = orjson.dumps({"grantee": grantee, "grades": grades, **extra})
        response = await self.client.post(f"/v1/shipments/{SHIPMENT}/grants", data=body, headers=auth(party))
        return response.status, orjson.loads(await response.read())

    async def revoke(self, party: str, grant_id: str) -> tuple[int, Any]:
        response = await self.client.delete(f"/v1/grants/{grant_id}", headers=auth(party))
        return response.status, orjson.loads(await response.read())

    async def live(self, party: str, headers: dict[str, str] | None = None) -> ClientResponse:
        response = await self.client.get(f"/v1/shipments/{SHIPMENT}/live", headers={**auth(party), **(headers or {})})
        assert response.status == 200, await response.text()
        assert response.headers["Content-Type"] == "text/event-stream"
        return response


def auth(party: str | None) -> dict[str, str]:
    return {} if party is None else {"Authorization": f"Bearer {TOKENS[party]}"}


@asynccontextmanager
async def running_hub(*records: ShipmentRecord, keepalive_s: float = 15.0) -> AsyncIterator[Hub]:
    shipments, grants, shares = MemoryShipments(*records), MemoryGrants(), MemoryShareLog()
    publisher, clock = MemoryPublisher(), Clock()
    reader = Reader(SETTINGS, PARTIES, shipments, grants, shares, publisher, clock, poll_s=0.02, keepalive_s=keepalive_s)
    app = create_gateway(SETTINGS, CarrierRegistry(carriers=[]), publisher, _NoReceipts(), clock, reader=reader)
    async with TestClient(TestServer(app)) as client:
        yield Hub(client, reader, shipments, grants, shares, publisher, clock)


class _NoReceipts:
    async def seen(self, identities: Any) -> set[Any]:
        return set()

    async def record(self, receipts: Any) -> list[bool]:
        return []

    async def ready(self) -> bool:
        return True


@pytest.fixture
async def hub() -> AsyncIterator[Hub]:
    async with running_hub(RECORD) as running:
        yield running


def leaves(node: Any, path: str = "") -> Iterator[str]:
    if isinstance(node, dict) and node:
        for key, value in node.items():
            yield from leaves(value, f"{path}.{key}" if path else key)
    elif isinstance(node, list) and node and isinstance(node[0], (dict, list)):
        for item in node:
            yield from leaves(item, f"{path}[]")
    else:
        yield path


def grades_in(document: dict[str, Any]) -> set[str]:
    return {POLICY.grade(path) for path in leaves(document) if path != "policy_version"}


# --- authentication and the 404 rule ---------------------------------------------------------------------------


@pytest.mark.parametrize("authorization", [None, "Bearer not-a-token", f"Basic {TOKENS[SHIPPER]}", "Bearer "])
async def test_a_read_without_a_valid_bearer_token_is_401_and_discloses_nothing(hub: Hub, authorization: str | None) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    for path in (f"/v1/shipments/{SHIPMENT}", f"/v1/shipments/{SHIPMENT}/live", f"/v1/shipments/{SHIPMENT}/disclosures"):
        response = await hub.client.get(path, headers=headers)
        assert response.status == 401
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert (await response.json())["error"] == "unauthenticated"
    assert hub.shares.rows == {} and hub.publisher.sent == []


async def test_two_authorization_headers_are_401_even_if_one_is_valid(hub: Hub) -> None:
    headers = [("Authorization", f"Bearer {TOKENS[SHIPPER]}"), ("Authorization", "Bearer nope")]
    response = await hub.client.get(f"/v1/shipments/{SHIPMENT}", headers=headers)
    assert response.status == 401


async def test_a_party_with_no_relation_gets_the_very_404_of_a_shipment_that_does_not_exist(hub: Hub) -> None:
    stranger = await hub.client.get(f"/v1/shipments/{SHIPMENT}", headers=auth(BROKER))
    async with running_hub() as empty:
        unknown = await empty.client.get(f"/v1/shipments/{SHIPMENT}", headers=auth(BROKER))
        unknown_body = await unknown.read()
    assert (stranger.status, unknown.status) == (404, 404)
    assert await stranger.read() == unknown_body
    ignored = {"Date", "Server"}
    assert {k: v for k, v in stranger.headers.items() if k not in ignored} == {
        k: v for k, v in unknown.headers.items() if k not in ignored
    }
    for path in ("disclosures", "grants", "live"):
        status, body = await hub.get(BROKER, f"/v1/shipments/{SHIPMENT}/{path}")
        assert (status, body) == (404, orjson.loads(unknown_body))
    assert hub.shares.rows == {}


# --- views -------------------------------------------------------------------------------------------------------


async def test_the_shipper_reads_its_view_without_carrier_charges_or_margin(hub: Hub) -> None:
    status, document = await hub.get(SHIPPER, f"/v1/shipments/{SHIPMENT}")

    assert status == 200
    assert document == view(RECORD, entitlements(RECORD)[SHIPPER]).document
    assert document["settlement"]["invoices"] and "payouts" not in document["settlement"]
    assert all("carrier_charges" not in i and "margin" not in i for i in document["settlement"]["invoices"])
    assert all("charges" not in leg for leg in document["legs"]) and "journey_charges" not in document
    assert grades_in(document) <= {
        "public", "operational", "billing", "cover", "personal", "customs", "trade_finance", "emissions", "footprint"
    }


async def test_a_carrier_reads_only_its_own_leg(hub: Hub) -> None:
    status, document = await hub.get(RAIL, f"/v1/shipments/{SHIPMENT}")

    assert status == 200
    assert [leg["sequence"] for leg in document["legs"]] == [2]
    assert all(2 in (h["from_leg"], h["to_leg"]) for h in document["handovers"])
    assert {p["carrier"] for p in document.get("settlement", {}).get("payouts", [])} <= {RAIL}
    assert "insurance" not in document and "journey_charges" not in document


async def test_the_insurer_reads_the_policy_and_no_settlement(hub: Hub) -> None:
    status, document = await hub.get(INSURER, f"/v1/shipments/{SHIPMENT}")
    assert status == 200
    assert document["insurance"]["policy"]["insurer"] == INSURER
    assert "settlement" not in document


# --- the audit -----------------------------------------------------------------------------------------------------


async def test_each_read_writes_exactly_one_audit_record_in_postgres_and_on_hub_audit(hub: Hub) -> None:
    response = await hub.client.get(f"/v1/shipments/{SHIPMENT}", headers=auth(SHIPPER))
    document = await response.json()
    (share,) = hub.shares.rows.values()
    (message,) = hub.publisher.sent

    assert response.headers[SHARE_ID_HEADER] == share.share_id
    assert (share.party, share.shipment_id, share.version, share.kind, share.channel) == (
        SHIPPER, SHIPMENT, RECORD.version, "status", "api"
    )
    assert set(share.fields) == view(RECORD, entitlements(RECORD)[SHIPPER]).disclosed
    assert "legs[].charges[].amount" not in share.fields and document["shipment_id"] == SHIPMENT
    assert (message.topic, message.key, orjson.loads(message.value)) == (SETTINGS.topics.audit, SHIPPER.encode(), share.document())

    await hub.get(SHIPPER, f"/v1/shipments/{SHIPMENT}")
    assert len(hub.shares.rows) == 2 and len(hub.publisher.sent) == 2  # a second read is a second disclosure


async def test_when_the_audit_cannot_be_written_nothing_is_disclosed(hub: Hub) -> None:
    hub.publisher.down = True
    status, body = await hub.get(SHIPPER, f"/v1/shipments/{SHIPMENT}")
    assert (status, body["error"]) == (503, "unavailable")
    assert "shipment_id" not in body and hub.shares.rows == {}


# --- delegation ------------------------------------------------------------------------------------------------------


async def test_a_grant_gives_the_grantee_a_view_limited_to_the_granted_grades(hub: Hub) -> None:
    status, grant = await hub.grant(SHIPPER, BROKER, ["public", "operational"])
    assert status == 201, grant
    assert (grant["grantor"], grant["grantee"], grant["grades"], grant["state"]) == (
        SHIPPER, BROKER, ["public", "operational"], "active"
    )

    status, document = await hub.get(BROKER, f"/v1/shipments/{SHIPMENT}")
    assert status == 200
    delegate = Entitlement(BROKER, frozenset({"delegate"}), (Lens(frozenset({"public", "operational"}), via=(grant["grant_id"],)),))
    assert document == view(RECORD, delegate).document
    assert grades_in(document) == {"public", "operational"}
    assert "settlement" not in document and "contact" not in document["shipper"]
    (share,) = [s for s in hub.shares.rows.values() if s.party == BROKER]
    assert (share.relations, share.via_grants) == (("delegate",), (grant["grant_id"],))


async def test_a_carriers_delegate_sees_only_the_carriers_leg(hub: Hub) -> None:
    status, _ = await hub.grant(RAIL, BROKER, ["public", "operational"])
    assert status == 201
    _, document = await hub.get(BROKER, f"/v1/shipments/{SHIPMENT}")
    assert [leg["sequence"] for leg in document["legs"]] == [2]


async def test_revoking_a_grant_cuts_the_delegate_and_the_delegates_own_delegate(hub: Hub) -> None:
    _, first = await hub.grant(SHIPPER, BROKER, ["public", "operational"])
    status, second = await hub.grant(BROKER, SG_BROKER, ["public"])
    assert status == 201, second
    assert (await hub.get(SG_BROKER, f"/v1/shipments/{SHIPMENT}"))[0] == 200

    status, revoked = await hub.revoke(SHIPPER, first["grant_id"])
    assert (status, revoked["state"], revoked["revoked_at"]) == (200, "revoked", NOW.isoformat().replace("+00:00", "Z"))

    for party in (BROKER, SG_BROKER):
        assert (await hub.get(party, f"/v1/shipments/{SHIPMENT}"))[0] == 404
    _, listed = await hub.get(MTO, f"/v1/shipments/{SHIPMENT}/grants")
    states = {g["grant_id"]: g["state"] for g in listed["grants"]}
    assert states == {first["grant_id"]: "revoked", second["grant_id"]: "cut"}


async def test_granting_grades_you_do_not_hold_is_403_naming_them(hub: Hub) -> None:
    status, body = await hub.grant(RAIL, BROKER, ["public", "billing", "commercial"])

    assert (status, body["error"]) == (403, "grades_not_held")
    assert "billing" in body["reason"] and "commercial" in body["reason"] and "public" not in body["reason"]
    assert hub.grants.rows == {}


@pytest.mark.parametrize(
    ("grantee", "grades", "extra", "code"),
    [
        ("nobody.unknown", ["public"], {}, "unknown_party"),
        (SHIPPER, ["public"], {}, "invalid_request"),  # to itself
        (BROKER, ["public", "gossip"], {}, "unknown_grade"),
        (BROKER, [], {}, "invalid_request"),
        (BROKER, ["public"], {"expires_at": "2026-03-01T00:00:00Z"}, "invalid_request"),
        (BROKER, ["public"], {"expires_at": "2026-04-01T00:00:00"}, "invalid_request"),  # no offset
        (BROKER, ["public"], {"note": "hi"}, "invalid_request"),
    ],
)
async def test_a_malformed_grant_is_400_and_stores_nothing(
    hub: Hub, grantee: str, grades: list[str], extra: dict[str, Any], code: str
) -> None:
    status, body = await hub.grant(SHIPPER, grantee, grades, **extra)
    assert (status, body["error"]) == (400, code), body
    assert hub.grants.rows == {}


async def test_a_party_not_entitled_cannot_grant_and_learns_nothing(hub: Hub) -> None:
    status, body = await hub.grant(BROKER, SG_BROKER, ["public"])
    assert (status, body["error"]) == (404, "not_found")


async def test_an_expired_grant_gives_nothing(hub: Hub) -> None:
    _, grant = await hub.grant(SHIPPER, BROKER, ["public"], expires_at=(NOW + timedelta(hours=1)).isoformat())
    assert (await hub.get(BROKER, f"/v1/shipments/{SHIPMENT}"))[0] == 200
    hub.clock.now = NOW + timedelta(hours=1)
    assert (await hub.get(BROKER, f"/v1/shipments/{SHIPMENT}"))[0] == 404
    _, listed = await hub.get(SHIPPER, f"/v1/shipments/{SHIPMENT}/grants")
    assert [g["state"] for g in listed["grants"]] == ["expired"]


async def test_only_the_grantor_or_the_mto_may_revoke(hub: Hub) -> None:
    _, grant = await hub.grant(SHIPPER, BROKER, ["public"])
    assert (await hub.revoke(BROKER, grant["grant_id"]))[0] == 403  # the grantee sees it, may not revoke it
    assert (await hub.revoke(RAIL, grant["grant_id"]))[0] == 404  # a party it does not concern
    assert (await hub.revoke(SHIPPER, "no-such-grant"))[0] == 404
    assert hub.grants.rows[grant["grant_id"]].revoked_at is None
    status, revoked = await hub.revoke(MTO, grant["grant_id"])
    assert (status, revoked["state"]) == (200, "revoked")
    hub.clock.now = NOW + timedelta(minutes=5)
    status, again = await hub.revoke(SHIPPER, grant["grant_id"])
    assert (status, again["revoked_at"]) == (200, revoked["revoked_at"])  # the first revocation stands


async def test_the_grants_list_shows_what_the_caller_made_or_received(hub: Hub) -> None:
    _, made = await hub.grant(SHIPPER, BROKER, ["public"])
    _, other = await hub.grant(RAIL, SG_BROKER, ["public"])
    _, shipper_list = await hub.get(SHIPPER, f"/v1/shipments/{SHIPMENT}/grants")
    _, broker_list = await hub.get(BROKER, f"/v1/shipments/{SHIPMENT}/grants")
    _, mto_list = await hub.get(MTO, f"/v1/shipments/{SHIPMENT}/grants")
    assert [g["grant_id"] for g in shipper_list["grants"]] == [made["grant_id"]]
    assert [g["grant_id"] for g in broker_list["grants"]] == [made["grant_id"]]
    assert {g["grant_id"] for g in mto_list["grants"]} == {made["grant_id"], other["grant_id"]}
    assert broker_list["you"]["relations"] == ["delegate"]


# --- disclosures -------------------------------------------------------------------------------------------------------


async def test_disclosures_list_every_recipient_for_the_shipper_and_only_its_own_for_a_carrier(hub: Hub) -> None:
    await hub.get(MTO, f"/v1/shipments/{SHIPMENT}")
    await hub.get(RAIL, f"/v1/shipments/{SHIPMENT}")
    await hub.get(SEA, f"/v1/shipments/{SHIPMENT}")
    _, grant = await hub.grant(RAIL, BROKER, ["public"])
    await hub.get(BROKER, f"/v1/shipments/{SHIPMENT}")

    status, shipper = await hub.get(SHIPPER, f"/v1/shipments/{SHIPMENT}/disclosures")
    assert status == 200
    assert shipper["recipients_scope"] == "all"
    assert shipper["held"] == view(RECORD, entitlements(RECORD)[SHIPPER]).document
    lines = {(r["party"], r["kind"], r["channel"]): r for r in shipper["recipients"]}
    assert set(lines) == {
        (MTO, "status", "api"), (RAIL, "status", "api"), (SEA, "status", "api"), (BROKER, "status", "api"),
        (SHIPPER, "disclosures", "api"),  # this very read, audited before it was answered
    }
    assert lines[(MTO, "status", "api")]["count"] == 1
    assert lines[(MTO, "status", "api")]["record_versions"] == [RECORD.version]
    assert shipper["grants"] == []  # the shipper made or received none

    _, rail = await hub.get(RAIL, f"/v1/shipments/{SHIPMENT}/disclosures")
    assert rail["recipients_scope"] == "own_and_delegates"
    assert {r["party"] for r in rail["recipients"]} == {RAIL, BROKER}
    assert [g["grant_id"] for g in rail["grants"]] == [grant["grant_id"]]
    assert [leg["sequence"] for leg in rail["held"]["legs"]] == [2]

    _, broker = await hub.get(BROKER, f"/v1/shipments/{SHIPMENT}/disclosures")
    assert {r["party"] for r in broker["recipients"]} == {BROKER}


# --- the live view ---------------------------------------------------------------------------------------------------


async def test_the_live_view_sends_the_current_version_then_each_new_one(hub: Hub) -> None:
    response = await hub.live(SHIPPER)
    first = await next_event(response.content)
    assert first is not None and (first.event, first.id) == ("status", str(RECORD.version))
    assert orjson.loads(first.text) == view(RECORD, entitlements(RECORD)[SHIPPER]).document

    newer = hub.shipments.bump()
    second = await next_event(response.content)
    assert second is not None and (second.event, second.id) == ("status", str(newer))
    assert orjson.loads(second.text)["version"] == newer
    response.close()

    pushed = sorted((s.version, s.channel, s.party) for s in hub.shares.rows.values())
    assert pushed == [(RECORD.version, "sse", SHIPPER), (newer, "sse", SHIPPER)]
    assert len(hub.publisher.sent) == 2


async def test_the_stream_is_made_of_blank_line_terminated_frames(hub: Hub) -> None:
    response = await hub.live(SHIPPER)
    raw = b""
    while b"event: status" not in raw:
        raw += await asyncio.wait_for(response.content.readany(), 5)
    while not raw.endswith(b"\n\n"):
        raw += await asyncio.wait_for(response.content.readany(), 5)
    response.close()
    retry, status = parse(raw)
    assert retry.retry == "3000" and retry.event is None
    assert raw.startswith(b"retry: 3000\n\n")
    assert raw[len(b"retry: 3000\n\n"):].startswith(f"id: {RECORD.version}\nevent: status\ndata: {{".encode())
    assert (status.id, status.event, len(status.data)) == (str(RECORD.version), "status", 1)


async def test_last_event_id_resumes_without_resending_what_the_client_has(hub: Hub) -> None:
    response = await hub.live(SHIPPER, {"Last-Event-ID": str(RECORD.version)})
    with pytest.raises(TimeoutError):
        await next_event(response.content, timeout=0.3)
    assert hub.shares.rows == {}

    newer = hub.shipments.bump()
    pushed = await next_event(response.content)
    assert pushed is not None and pushed.id == str(newer)
    response.close()

    older = await hub.live(SHIPPER, {"Last-Event-ID": str(RECORD.version)})
    caught_up = await next_event(older.content)
    assert caught_up is not None and caught_up.id == str(newer)  # only the latest, at once
    older.close()


async def test_a_last_event_id_that_is_not_a_version_is_ignored(hub: Hub) -> None:
    response = await hub.live(SHIPPER, {"Last-Event-ID": "abc"})
    first = await next_event(response.content)
    assert first is not None and first.id == str(RECORD.version)
    response.close()


async def test_revoking_a_grant_ends_the_delegates_live_view(hub: Hub) -> None:
    _, grant = await hub.grant(SHIPPER, BROKER, ["public"])
    response = await hub.live(BROKER)
    first = await next_event(response.content)
    assert first is not None and first.event == "status"

    await hub.revoke(SHIPPER, grant["grant_id"])
    ended = await next_event(response.content)
    assert ended is not None and ended.event == "revoked" and ended.id is None
    assert orjson.loads(ended.text)["shipment_id"] == SHIPMENT
    assert await next_frame(response.content) is None  # and the stream is over


async def test_keepalive_comments_flow_while_nothing_changes() -> None:
    async with running_hub(RECORD, keepalive_s=0.05) as hub:
        response = await hub.live(SHIPPER, {"Last-Event-ID": str(RECORD.version)})
        comments: list[str] = []
        while not comments:
            frame = await next_frame(response.content)
            assert frame is not None and frame.event is None
            comments = frame.comments
        assert comments == ["keepalive"]
        response.close()


async def test_the_live_view_stops_polling_once_the_client_has_gone(hub: Hub) -> None:
    response = await hub.live(SHIPPER)
    assert await next_event(response.content) is not None
    response.close()
    await asyncio.sleep(0.2)
    polls = hub.shipments.version_polls
    await asyncio.sleep(0.2)
    assert hub.shipments.version_polls == polls


async def test_the_live_view_ends_when_the_gateway_shuts_down() -> None:
    async with running_hub(RECORD) as hub:
        response = await hub.live(SHIPPER)
        assert await next_event(response.content) is not None
        await hub.client.app.shutdown()  # what runner.cleanup() calls first: on_shutdown
        assert hub.reader.closing.is_set()
        assert await next_frame(response.content) is None


async def test_an_open_live_view_is_counted_until_the_client_leaves(hub: Hub) -> None:
    from prometheus_client import REGISTRY

    def open_now() -> float | None:
        return REGISTRY.get_sample_value("mmhub_sse_streams_open")

    before = open_now()
    assert before is not None
    response = await hub.live(SHIPPER)
    assert await next_event(response.content) is not None
    assert open_now() == before + 1
    response.close()
    for _ in range(50):
        if open_now() == before:
            break
        await asyncio.sleep(0.02)
    assert open_now() == before
