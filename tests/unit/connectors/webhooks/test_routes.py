"""The gateway's subscription routes against in-memory subscriptions: a party manages its own webhooks, only."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, AsyncIterator

import jsonschema
import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from connectors.gateway.app import create_gateway
from connectors.parties import load_parties
from connectors.webhooks.addresses import AddressPolicy
from connectors.webhooks.notifications import (
    Refused,
    Subscription,
    SubscriptionRequest,
    Unavailable,
)

from ..test_gateway import REGISTRY, SETTINGS, FakePublisher, MemoryReceipts

REPO = Path(__file__).resolve().parents[4]
PARTIES = load_parties(REPO / "examples" / "parties.json")
TOKENS = json.loads((REPO / "examples" / "keys" / "tokens.json").read_text())["tokens"]
SHIPPER, CONSIGNEE = "shipper.chengdu-elec", "consignee.johor-assembly"
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)


def bearer(party: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[party]}"}


class MemorySubscriptions:
    """connectors.webhooks.notifications.Subscriptions in a dict; `down` answers as a lost database would."""

    def __init__(self) -> None:
        self.rows: dict[str, Subscription] = {}
        self.down = False

    def _check(self) -> None:
        if self.down:
            raise Unavailable("postgres is down")

    async def subscribe(self, party: str, request: SubscriptionRequest, now: datetime) -> Subscription:
        self._check()
        problem = request.problem(now)
        if problem is not None:
            raise Refused(problem)
        url = str(AddressPolicy().target(request.url).url)
        made = Subscription(f"whs_{len(self.rows) + 1}", party, url, f"whsec_{len(self.rows) + 1}", now,
                            request.shipment_id, tuple(request.kinds) if request.kinds else None, request.expires_at)
        self.rows[made.subscription_id] = made
        return made

    async def rotate(self, subscription_id: str, now: datetime, party: str | None = None) -> Subscription | None:
        self._check()
        found = self.rows.get(subscription_id)
        if found is None or not found.active or party not in (None, found.party):
            return None
        rotated = dataclasses.replace(found, secret=found.secret + "+", previous_secret=found.secret,
                                      previous_secret_until=now + timedelta(days=1))
        self.rows[subscription_id] = rotated
        return rotated

    async def unsubscribe(self, subscription_id: str, party: str | None = None) -> bool:
        self._check()
        found = self.rows.get(subscription_id)
        if found is None or not found.active or party not in (None, found.party):
            return False
        self.rows[subscription_id] = dataclasses.replace(found, active=False)
        return True

    async def overview(self, party: str | None = None) -> list[dict[str, Any]]:
        self._check()
        return [{"subscription_id": s.subscription_id, "party": s.party, "shipment_id": s.shipment_id,
                 "active": s.active, "pending": 0}
                for s in self.rows.values() if party in (None, s.party)]


@pytest.fixture
async def api() -> AsyncIterator[tuple[TestClient[Any, Any], MemorySubscriptions]]:
    store = MemorySubscriptions()
    app = create_gateway(SETTINGS, REGISTRY, FakePublisher(), MemoryReceipts(), clock=lambda: NOW,
                         webhooks=store, parties=PARTIES)
    async with TestClient(TestServer(app)) as client:
        yield client, store


async def subscribe(client: TestClient[Any, Any], as_party: str, **body: Any) -> tuple[int, Any]:
    response = await client.post("/v1/subscriptions", data=orjson.dumps(body), headers=bearer(as_party))
    return response.status, orjson.loads(await response.read())


async def test_a_party_subscribes_and_gets_its_secret_once(api: tuple[TestClient[Any, Any], MemorySubscriptions]) -> None:
    client, store = api
    status, made = await subscribe(client, SHIPPER, url="https://hooks.example.com/a", kinds=["status"],
                                   expires_at="2026-07-01T00:00:00+08:00")
    assert status == 201, made
    assert made["party"] == SHIPPER and made["secret"] == store.rows[made["subscription_id"]].secret
    assert made["kinds"] == ["status"] and made["expires_at"] == "2026-06-30T16:00:00+00:00"
    response = await client.get("/v1/subscriptions", headers=bearer(SHIPPER))
    listed = orjson.loads(await response.read())["subscriptions"]
    assert [row["subscription_id"] for row in listed] == [made["subscription_id"]]
    assert "secret" not in listed[0]


async def test_the_party_comes_from_the_token_never_from_the_body(api: tuple[TestClient[Any, Any], MemorySubscriptions]) -> None:
    client, _ = api
    status, answer = await subscribe(client, SHIPPER, url="https://hooks.example.com/a", party=CONSIGNEE)
    assert (status, answer["error"]) == (422, "invalid_subscription")


async def test_without_a_known_token_every_route_is_401(api: tuple[TestClient[Any, Any], MemorySubscriptions]) -> None:
    client, _ = api
    for method, path in [("POST", "/v1/subscriptions"), ("GET", "/v1/subscriptions"),
                         ("DELETE", "/v1/subscriptions/whs_1"), ("POST", "/v1/subscriptions/whs_1/rotate")]:
        for headers in ({}, {"Authorization": "Bearer mmh_not_a_token"}, {"Authorization": TOKENS[SHIPPER]}):
            response = await client.request(method, path, headers=headers, data=b"{}")
            assert response.status == 401, (method, path, headers)
            assert response.headers["WWW-Authenticate"].startswith("Bearer")


async def test_a_party_cannot_see_rotate_or_delete_another_partys_subscription(
    api: tuple[TestClient[Any, Any], MemorySubscriptions],
) -> None:
    client, store = api
    _, made = await subscribe(client, SHIPPER, url="https://hooks.example.com/a")
    sid = made["subscription_id"]
    listed = orjson.loads(await (await client.get("/v1/subscriptions", headers=bearer(CONSIGNEE))).read())
    assert listed == {"subscriptions": []}
    for method, path in [("DELETE", f"/v1/subscriptions/{sid}"), ("POST", f"/v1/subscriptions/{sid}/rotate")]:
        response = await client.request(method, path, headers=bearer(CONSIGNEE))
        assert response.status == 404
        assert orjson.loads(await response.read())["error"] == "unknown_subscription"
    assert store.rows[sid].active and store.rows[sid].secret == made["secret"]


async def test_rotate_gives_a_new_secret_and_delete_deactivates(api: tuple[TestClient[Any, Any], MemorySubscriptions]) -> None:
    client, store = api
    _, made = await subscribe(client, SHIPPER, url="https://hooks.example.com/a")
    sid = made["subscription_id"]
    response = await client.post(f"/v1/subscriptions/{sid}/rotate", headers=bearer(SHIPPER))
    rotated = orjson.loads(await response.read())
    assert response.status == 200
    assert rotated["secret"] != made["secret"] and rotated["previous_secret_valid_until"] == "2026-06-02T12:00:00+00:00"
    assert (await client.delete(f"/v1/subscriptions/{sid}", headers=bearer(SHIPPER))).status == 204
    assert not store.rows[sid].active
    assert (await client.delete(f"/v1/subscriptions/{sid}", headers=bearer(SHIPPER))).status == 404


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not json", "Invalid JSON"),
        (b'{"url": "http://hooks.example.com/a"}', "https"),
        (b'{"url": "https://10.0.0.7/a"}', "non-public"),
        (b'{"url": "https://hooks.example.com/a", "kinds": ["invoice"]}', "kinds"),
        (b'{"url": "https://hooks.example.com/a", "expires_at": "2026-05-01T00:00:00Z"}', "past"),
    ],
)
async def test_a_bad_subscription_is_422_with_the_reason(
    api: tuple[TestClient[Any, Any], MemorySubscriptions], body: bytes, reason: str
) -> None:
    client, store = api
    response = await client.post("/v1/subscriptions", data=body, headers=bearer(SHIPPER))
    answer = orjson.loads(await response.read())
    assert response.status == 422 and answer["error"] == "invalid_subscription"
    assert reason in answer["reason"], answer
    assert not store.rows


async def test_a_lost_database_is_503_with_retry_after(api: tuple[TestClient[Any, Any], MemorySubscriptions]) -> None:
    client, store = api
    store.down = True
    response = await client.get("/v1/subscriptions", headers=bearer(SHIPPER))
    assert response.status == 503 and response.headers["Retry-After"].isdigit()


async def test_every_subscription_route_is_in_the_openapi_document(
    api: tuple[TestClient[Any, Any], MemorySubscriptions],
) -> None:
    """/openapi.json documents every route the gateway mounts with each of its methods (it lacked /v1/subscriptions),
    and what POST /v1/subscriptions answers follows the documented schema."""
    client, _ = api
    document = orjson.loads(await (await client.get("/openapi.json")).read())
    mounted = {
        (route.method.lower(), route.resource.canonical)
        for route in client.app.router.routes()
        if route.resource is not None and route.method != "HEAD"
    }
    assert ("post", "/v1/subscriptions") in mounted
    assert sorted(m for m in mounted if m[0] not in document["paths"].get(m[1], {})) == []
    status, made = await subscribe(client, SHIPPER, url="https://hooks.example.com/a")
    assert status == 201
    schema = {**document, "$ref": "#/components/schemas/Subscription"}
    assert [error.message for error in jsonschema.Draft202012Validator(schema).iter_errors(made)] == []
    assert list(jsonschema.Draft202012Validator(schema).iter_errors({**made, "secret": None}))
