"""The gateway's subscription routes: a party manages its own webhooks, authenticated by its reader token.

    POST   /v1/subscriptions                  subscribe; the answer carries the secret, once
    GET    /v1/subscriptions                  the party's subscriptions, with pending and dead counts
    DELETE /v1/subscriptions/{id}             unsubscribe
    POST   /v1/subscriptions/{id}/rotate      a new secret; the old one still signs for a grace period

A party only ever sees and changes its own subscriptions; another party's id answers 404, like an unknown one.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Awaitable, Callable

import orjson
from aiohttp import web
from pydantic import ValidationError

from connectors.gateway.guards import BodyRefused, authorization, read_capped
from connectors.gateway.intake import error_document
from connectors.parties import PartyRegistry
from connectors.webhooks.notifications import (
    Refused,
    Subscription,
    SubscriptionRequest,
    Subscriptions,
    Unavailable,
    crowded,
)
from schemas.rejection import describe

Handler = Callable[[web.Request, str], Awaitable[web.Response]]  # with the authenticated party

MAX_BODY_BYTES = 16 * 1024
RETRY_AFTER_S = 5


def _json(document: Any, status: int, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=orjson.dumps(document), status=status, headers=headers, content_type="application/json")


def _error(status: int, code: str, reason: str, headers: dict[str, str] | None = None) -> web.Response:
    return _json(error_document(code, reason), status, headers)


def described(subscription: Subscription, secret: bool) -> dict[str, Any]:
    document: dict[str, Any] = {
        "subscription_id": subscription.subscription_id,
        "party": subscription.party,
        "url": subscription.url,
        "shipment_id": subscription.shipment_id,
        "kinds": list(subscription.kinds) if subscription.kinds is not None else None,
        "created_at": subscription.created_at,
        "expires_at": subscription.expires_at,
    }
    if secret:
        document["secret"] = subscription.secret
        document["previous_secret_valid_until"] = subscription.previous_secret_until
    return document


class SubscriptionRoutes:
    def __init__(self, store: Subscriptions, parties: PartyRegistry, clock: Callable[[], datetime]) -> None:
        self.store = store
        self.parties = parties
        self.clock = clock

    def guarded(self, handler: Handler) -> Callable[[web.Request], Awaitable[web.Response]]:
        """`handler` behind the checks every route makes: a known token (whose party the handler is given), and a
        database that answers (else 503, worth a retry)."""

        async def guard(request: web.Request) -> web.Response:
            party = self.parties.authenticate(authorization(request))
            if party is None:
                reason = "send a party's reader token as `Authorization: Bearer <token>`"
                return _error(401, "unauthenticated", reason, {"WWW-Authenticate": 'Bearer realm="mmhub"'})
            try:
                return await handler(request, party)
            except Unavailable:
                reason = "the hub cannot reach its database right now; try again later"
                return _error(503, "unavailable", reason, {"Retry-After": str(RETRY_AFTER_S)})

        return guard

    async def create(self, request: web.Request, party: str) -> web.Response:
        try:
            raw = await read_capped(request, MAX_BODY_BYTES)
        except BodyRefused as refused:
            return refused.response
        try:
            wanted = SubscriptionRequest.model_validate_json(raw)
        except ValidationError as error:
            return _error(422, "invalid_subscription", describe(error))
        problem = crowded(await self.store.overview(party), wanted)
        if problem is not None:
            return _error(403, "too_many_subscriptions", problem)
        try:
            made = await self.store.subscribe(party, wanted, self.clock())
        except Refused as error:
            return _error(422, "invalid_subscription", str(error))
        location = f"/v1/subscriptions/{made.subscription_id}"
        return _json(described(made, secret=True), 201, {"Location": location})

    async def listing(self, request: web.Request, party: str) -> web.Response:
        rows = await self.store.overview(party)
        return _json({"subscriptions": rows}, 200)

    async def delete(self, request: web.Request, party: str) -> web.Response:
        if await self.store.unsubscribe(request.match_info["subscription_id"], party):
            return web.Response(status=204)
        return _unknown(request)

    async def rotate(self, request: web.Request, party: str) -> web.Response:
        rotated = await self.store.rotate(request.match_info["subscription_id"], self.clock(), party)
        if rotated is None:
            return _unknown(request)
        return _json(described(rotated, secret=True), 200)


def _unknown(request: web.Request) -> web.Response:
    return _error(404, "unknown_subscription", f"no active subscription {request.match_info['subscription_id']!r}")


def add_subscription_routes(
    app: web.Application,
    store: Subscriptions,
    parties: PartyRegistry,
    clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
) -> None:
    """Mount the routes on `app` (before it starts). Opening and closing `store` is the caller's business."""
    routes = SubscriptionRoutes(store, parties, clock)
    app.router.add_post("/v1/subscriptions", routes.guarded(routes.create))
    app.router.add_get("/v1/subscriptions", routes.guarded(routes.listing))
    app.router.add_delete("/v1/subscriptions/{subscription_id}", routes.guarded(routes.delete))
    app.router.add_post("/v1/subscriptions/{subscription_id}/rotate", routes.guarded(routes.rotate))
