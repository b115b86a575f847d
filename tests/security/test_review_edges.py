"""Attacker's tests of the HTTP edges (reader routes, grants, disclosures, webhook subscriptions), each by a party
registered with the hub against the in-memory gateway of tests/unit/connectors/test_reader.py: no services needed.

1. A carrier's view names only itself, the carriers it hands over with and the shipment's own parties: the
   provenance of the current location (`location_set_by`) named the carrier of a leg it has nothing to do with.
2. `/disclosures` showed a carrier every line of any party it granted to, so a grant of `[public]` to a guessed
   party id told it whether that party carries or insures the shipment, and how often it read it.
3. A party could pile up grants on a shipment without bound, and every read, every live view's poll and every
   version the share stage sends decides entitlements over all of them.
4. A party could make webhook subscriptions without bound, each one a copy of every notification it receives.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Iterator

import orjson
from aiohttp.test_utils import TestClient, TestServer

from connectors.carriers import CarrierRegistry
from connectors.gateway.app import create_gateway
from connectors.gateway.guards import RateLimits
from connectors.gateway.reader import Reader
from streams.sharing import entitlements, relations, view
from tests.unit.connectors.readers import BROKER, INSURER, PARTIES, RAIL, RECORD, SEA, SHIPMENT
from tests.unit.connectors.test_reader import (
    SETTINGS,
    Clock,
    Hub,
    MemoryGrants,
    MemoryPublisher,
    MemoryShareLog,
    MemoryShipments,
    _NoReceipts,
    auth,
)
from tests.unit.connectors.webhooks.test_routes import MemorySubscriptions


@asynccontextmanager
async def patient_hub(webhooks: Any = None) -> AsyncIterator[Hub]:
    """The unit tests' in-memory gateway without rate limits: an attacker with time makes as many requests as it
    likes, ten a second, for as long as it likes."""
    shipments, grants, shares = MemoryShipments(RECORD), MemoryGrants(), MemoryShareLog()
    publisher, clock = MemoryPublisher(), Clock()
    reader = Reader(SETTINGS, PARTIES, shipments, grants, shares, publisher, clock, poll_s=0.02)
    app = create_gateway(
        SETTINGS, CarrierRegistry(carriers=[]), publisher, _NoReceipts(), clock, reader=reader,
        webhooks=webhooks, parties=PARTIES if webhooks is not None else None, limits=RateLimits.unlimited(),
    )  # fmt: skip
    async with TestClient(TestServer(app)) as client:
        yield Hub(client, reader, shipments, grants, shares, publisher, clock)


def _strings(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for value in node.values():
            yield from _strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from _strings(value)
    elif isinstance(node, str):
        yield node


# --- 1. a carrier learns of a carrier it does not hand over with --------------------------------------------------


def test_a_carrier_view_names_no_carrier_it_does_not_hand_over_with() -> None:
    parties = relations(RECORD)
    entitled = entitlements(RECORD)
    for carrier in (p for p, held in parties.items() if held == {"carrier"}):
        mine = {leg.sequence for leg in RECORD.legs if leg.carrier == carrier}
        neighbours = {leg.carrier for leg in RECORD.legs if any(abs(leg.sequence - own) == 1 for own in mine)}
        strangers = {p for p, held in parties.items() if held & {"carrier", "insurer", "bank"}} - neighbours
        strangers.discard(carrier)
        shown = list(_strings(view(RECORD, entitled[carrier]).document))
        named = {p for p in strangers if any(p in text for text in shown)}
        assert not named, f"{carrier}'s view names {sorted(named)}"


async def test_the_api_view_of_a_middle_carrier_does_not_say_who_delivered() -> None:
    async with patient_hub() as hub:
        status, shown = await hub.get(RAIL, f"/v1/shipments/{SHIPMENT}")
        assert status == 200
        assert shown["current_location"] == RECORD.current_location  # public: where the cargo is stays shown
        assert RECORD.location_set_by is not None and RECORD.location_set_by.startswith("carrier.my-haulage/")
        assert not any("carrier.my-haulage" in text for text in _strings(shown))


def test_the_shipper_still_sees_who_set_the_location() -> None:
    shipper = entitlements(RECORD)["shipper.chengdu-elec"]
    assert view(RECORD, shipper).document["location_set_by"] == RECORD.location_set_by


# --- 2. the disclosures list as an oracle of who else holds the shipment ----------------------------------------


async def test_a_grant_does_not_show_a_carrier_what_the_grantee_received_in_its_own_right() -> None:
    async with patient_hub() as hub:
        await hub.get(INSURER, f"/v1/shipments/{SHIPMENT}")  # the insurer and another carrier read, as they do
        await hub.get(SEA, f"/v1/shipments/{SHIPMENT}")
        for guessed in (INSURER, SEA):  # the attacker guesses party ids and grants each of them [public]
            status, _ = await hub.grant(RAIL, guessed, ["public"])
            assert status == 201
        status, rail = await hub.get(RAIL, f"/v1/shipments/{SHIPMENT}/disclosures")
        assert status == 200 and rail["recipients_scope"] == "own_and_delegates"
        assert {line["party"] for line in rail["recipients"]} == {RAIL}, rail["recipients"]


async def test_a_carrier_still_sees_what_its_own_delegates_received_through_it() -> None:
    async with patient_hub() as hub:
        _, made = await hub.grant(RAIL, BROKER, ["public"])
        await hub.get(BROKER, f"/v1/shipments/{SHIPMENT}")
        await hub.revoke(RAIL, made["grant_id"])  # a revoked grant still explains what went out under it
        _, rail = await hub.get(RAIL, f"/v1/shipments/{SHIPMENT}/disclosures")
        lines = {(line["party"], line["kind"]): line for line in rail["recipients"]}
        assert set(lines) == {(RAIL, "disclosures"), (BROKER, "status")}
        assert lines[(BROKER, "status")]["count"] == 1


# --- 3. grants without bound -------------------------------------------------------------------------------------


async def test_a_party_cannot_pile_up_grants_on_a_shipment() -> None:
    async with patient_hub() as hub:
        answers = [await hub.grant(RAIL, BROKER if n % 2 else SEA, ["public"]) for n in range(80)]
        made = [body for status, body in answers if status == 201]
        refused = [body for status, body in answers if status != 201]
        assert len(made) <= 50, f"{len(made)} grants made by one party on one shipment"
        assert refused and {(body["error"]) for body in refused} == {"too_many_grants"}
        assert len(await hub.grants.for_shipment(SHIPMENT)) == len(made)
        # revoking does not make room: revoked grants are kept (the audit names them) and read with the rest
        await hub.revoke(RAIL, made[0]["grant_id"])
        status, body = await hub.grant(RAIL, BROKER, ["public"])
        assert (status, body["error"]) == (403, "too_many_grants")
        # another party's allowance is its own
        status, _ = await hub.grant("shipper.chengdu-elec", BROKER, ["public"])
        assert status == 201


# --- 4. webhook subscriptions without bound --------------------------------------------------------------------


async def test_a_party_cannot_multiply_its_notifications_with_subscriptions() -> None:
    store = MemorySubscriptions()
    async with patient_hub(webhooks=store) as hub:
        body = orjson.dumps({"url": "https://victim.example.com/hook"})
        statuses = []
        for _ in range(60):
            response = await hub.client.post("/v1/subscriptions", data=body, headers=auth(RAIL))
            statuses.append((response.status, orjson.loads(await response.read())))
        made = [doc for status, doc in statuses if status == 201]
        assert len(made) <= 20, f"{len(made)} subscriptions of one party, each a copy of every notification"
        assert {doc["error"] for status, doc in statuses if status != 201} == {"too_many_subscriptions"}
        # a deleted subscription makes room again: nothing more is queued or sent for it
        response = await hub.client.delete(f"/v1/subscriptions/{made[0]['subscription_id']}", headers=auth(RAIL))
        assert response.status == 204
        response = await hub.client.post("/v1/subscriptions", data=body, headers=auth(RAIL))
        assert response.status == 201
        # another party's allowance is its own
        response = await hub.client.post("/v1/subscriptions", data=body, headers=auth(SEA))
        assert response.status == 201


async def test_subscriptions_to_different_shipments_do_not_crowd_each_other() -> None:
    async with patient_hub(webhooks=MemorySubscriptions()) as hub:
        for n in range(12):
            body = orjson.dumps({"url": "https://hooks.example.com/a", "shipment_id": f"SHP-2026-{n:06d}"})
            response = await hub.client.post("/v1/subscriptions", data=body, headers=auth(RAIL))
            assert response.status == 201, await response.text()
