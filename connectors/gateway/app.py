"""The HTTP gateway: carriers POST signed batches in any supported format; the hub answers per event.

`POST /v1/events/{format}` verifies the signature over the exact body, parses it with the format's parser, routes
each event and publishes the new ones to Kafka; `GET /openapi.json` describes it; `GET /healthz` says whether
Kafka and Postgres are reachable. The decisions are pure (connectors.gateway.intake); this module does the I/O.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import datetime, timezone
from typing import Any, Callable

import orjson
from aiohttp import web

from connectors.carriers import HTTP_CARRIER, HTTP_KEY_ID, HTTP_SIGNATURE, CarrierRegistry, verify
from connectors.formats import FORMATS, parser
from connectors.gateway.intake import (
    Admitted,
    EventResult,
    Message,
    Publisher,
    Receipts,
    Refused,
    Signed,
    Unavailable,
    admit,
    messages,
    nothing_accepted,
    plan,
    receipt_document,
    results,
    unauthenticated_letter,
)
from connectors.gateway.datasets import DatasetReader
from connectors.gateway.guards import (
    BodyRefused,
    RateLimiter,
    RateLimits,
    guard_middleware,
    json_error,
    read_capped,
    too_many,
)
from connectors.gateway.metered import metered
from connectors.gateway.openapi import openapi_document
from connectors.gateway.reader import Reader
from connectors.gateway.tracking import TrackingPage
from connectors.parties import PartyRegistry
from connectors.webhooks.notifications import Subscriptions
from connectors.webhooks.routes import add_subscription_routes
from hubconf.settings import Settings
from streams.horizon import Horizon
from schemas.rejection import Rejection

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 4 * 1024 * 1024
RETRY_AFTER_S = 5


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def _json(document: Any, status: int, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=orjson.dumps(document), status=status, headers=headers, content_type="application/json")


def _signed(request: web.Request) -> tuple[Signed, Rejection | None]:
    """The three signature headers; a refusal when one is repeated (which copy was signed is anyone's guess)."""
    values: dict[str, str | None] = {}
    for name in (HTTP_CARRIER, HTTP_KEY_ID, HTTP_SIGNATURE):
        found = request.headers.getall(name, [])
        if len(found) > 1:
            signed = Signed(*(request.headers.get(n) for n in (HTTP_CARRIER, HTTP_KEY_ID, HTTP_SIGNATURE)))
            return signed, Rejection("bad_signature", f"header {name} appears {len(found)} times; send it once")
        values[name] = found[0] if found else None
    return Signed(values[HTTP_CARRIER], values[HTTP_KEY_ID], values[HTTP_SIGNATURE]), None


async def publish_all(publisher: Publisher, outgoing: list[Message]) -> None:
    """Send every message and wait for every acknowledgement; Unavailable if any was not acknowledged.

    Sent together, not one by one, so a batch costs about one round trip. Their relative order does not matter:
    the merge is order-insensitive. All sends finish (or fail) before this returns, so a 503 never races a
    publish still in flight.
    """
    outcomes = await asyncio.gather(
        *(publisher.send(m.topic, m.key, m.value, m.headers) for m in outgoing), return_exceptions=True
    )
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome


async def ingest(
    decided: list[Admitted | Refused],
    body: bytes,
    *,
    settings: Settings,
    format_name: str,
    signed: Signed,
    request_id: str,
    received_at: datetime,
    publisher: Publisher,
    receipts: Receipts,
) -> list[EventResult]:
    """Dead-letter the refused events, publish the new ones, then record their receipts.

    Publish before recording: a receipt exists only for a copy Kafka has acknowledged, so a duplicate answer never
    hides an event that was lost. A crash (or an Unavailable) between the two leaves copies published but not
    recorded; the carrier's retry publishes them again, and the hub's merge recognises the second copy by its
    fingerprint as a duplicate. At worst a re-publish, never a loss.
    """
    origin = f"http:{request_id}"
    already = await receipts.seen([item.identity for item in decided if isinstance(item, Admitted)])
    planned = plan(decided, already)
    await publish_all(
        publisher,
        messages(planned, body, topics=settings.topics, format_name=format_name, signed=signed, origin=origin),
    )
    recorded = await receipts.record([item.receipt(received_at, request_id) for item in planned.fresh])
    return results(planned, recorded)


class Gateway:
    """The handlers, with what they need; thin: read the request, call the pure parts and `ingest`, answer."""

    def __init__(
        self,
        settings: Settings,
        registry: CarrierRegistry,
        publisher: Publisher,
        receipts: Receipts,
        clock: Callable[[], datetime],
        limits: RateLimits,
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.publisher = publisher
        self.receipts = receipts
        self.clock = clock
        self.by_carrier = RateLimiter(limits.per_carrier)
        self.openapi = orjson.dumps(openapi_document(MAX_BODY_BYTES))

    async def post_events(self, request: web.Request) -> web.Response:
        format_name = request.match_info["format"]
        if format_name not in FORMATS:
            return json_error(404, "unknown_format", f"unknown format {format_name!r}; known: {', '.join(FORMATS)}")
        try:
            body = await read_capped(request, MAX_BODY_BYTES)
        except BodyRefused as refused:
            return refused.response
        request_id = str(uuid.uuid4())
        received_at = self.clock()
        signed, refusal = _signed(request)
        try:
            if refusal is None:
                s = signed
                refusal = verify(self.registry, s.carrier, s.key_id, s.signature, body, received_at, format_name)
            if refusal is not None:
                return await self._unauthenticated(body, refusal, format_name, signed, request_id)
            assert signed.carrier is not None  # verify() refuses a request without one
            carrier = signed.carrier
            wait = self.by_carrier.take(carrier)
            if wait is not None:
                return too_many("carrier", wait)
            read = parser(format_name)
            # Parsing a few MiB takes a while: off the event loop, so health checks and other requests still run.
            decided = await asyncio.to_thread(
                lambda: admit(read(body, carrier), carrier, f"http:{request_id}", received_at, Horizon.of(self.settings))
            )
            answered = await ingest(
                decided,
                body,
                settings=self.settings,
                format_name=format_name,
                signed=signed,
                request_id=request_id,
                received_at=received_at,
                publisher=self.publisher,
                receipts=self.receipts,
            )
        except Unavailable as error:
            log.warning("request %s (%s) refused with 503: %s", request_id, format_name, error)
            reason = "the hub cannot take events right now; send the same request again later"
            return json_error(503, "unavailable", reason, {"Retry-After": str(RETRY_AFTER_S)})
        document = receipt_document(request_id, format_name, carrier, answered)
        counts = (document["accepted"], document["duplicates"], document["rejected"])
        summary = "request %s from %s (%s): %d accepted, %d duplicate, %d rejected"
        log.info(summary, request_id, carrier, format_name, *counts)
        if document["accepted"] == document["duplicates"] == 0:
            # every event refused (and dead-lettered): not "Accepted", so a client that checks only the status sees it
            return _json({**document, **nothing_accepted(document["rejected"])}, 422)
        return _json(document, 202)

    async def _unauthenticated(
        self, body: bytes, refusal: Rejection, format_name: str, signed: Signed, request_id: str
    ) -> web.Response:
        """401, once the body's first KiB, digest and size are in the dead-letter topic (connectors.gateway.intake's
        unauthenticated_letter)."""
        topics, origin = self.settings.topics, f"http:{request_id}"
        letter = unauthenticated_letter(
            body, refusal, topics=topics, format_name=format_name, signed=signed, origin=origin
        )
        await self.publisher.send(letter.topic, letter.key, letter.value, letter.headers)
        log.warning("request %s (%s) refused with 401: %s", request_id, format_name, refusal.reason)
        return json_error(401, refusal.code, refusal.reason)

    async def get_openapi(self, request: web.Request) -> web.Response:
        return web.Response(body=self.openapi, content_type="application/json")

    async def healthz(self, request: web.Request) -> web.Response:
        kafka, postgres = await asyncio.gather(self.publisher.ready(), self.receipts.ready())
        document = {"kafka": "up" if kafka else "down", "postgres": "up" if postgres else "down"}
        return _json(document, 200 if kafka and postgres else 503)


def create_gateway(
    settings: Settings,
    registry: CarrierRegistry,
    publisher: Publisher,
    receipts: Receipts,
    clock: Callable[[], datetime] = utc_now,
    reader: Reader | None = None,
    webhooks: Subscriptions | None = None,
    parties: PartyRegistry | None = None,
    limits: RateLimits = RateLimits(),
    datasets: DatasetReader | None = None,
) -> web.Application:
    """The aiohttp application. Starting and stopping `publisher` and `receipts` is the caller's business.
    With a `reader`, parties can also read shipments, follow them live and delegate (connectors.gateway.reader),
    and look at them on the tracking page (connectors.gateway.tracking).
    With `webhooks` (and the `parties` whose tokens it accepts), parties manage their webhook subscriptions
    (connectors.webhooks.routes)."""
    gateway = Gateway(settings, registry, publisher, receipts, clock, limits)
    app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=[metered, guard_middleware(limits)])
    app.router.add_post("/v1/events/{format}", gateway.post_events)
    app.router.add_get("/openapi.json", gateway.get_openapi)
    app.router.add_get("/healthz", gateway.healthz)
    if reader is not None:
        reader.add_routes(app)
        TrackingPage().add_routes(app)  # the page reads the reader routes in the browser
    if datasets is not None:
        datasets.add_routes(app)  # GET /v1/datasets/performance (connectors.gateway.datasets)
    if webhooks is not None:
        if parties is None:
            raise ValueError("the webhook subscription routes need the party registry")
        add_subscription_routes(app, webhooks, parties, clock)
    return app
