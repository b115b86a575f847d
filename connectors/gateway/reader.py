"""The gateway's reader routes: a party reads its view of a shipment, follows it live, delegates, and asks who else
received it. Every route needs `Authorization: Bearer <token>` (connectors.parties).

A shipment the caller may not read is answered exactly as one that does not exist (404), so the routes never tell
a party that a shipment exists. Every view that goes out is first audited: a `share_audit` row and its copy on
hub.audit (keyed by party). The decisions are pure (connectors.gateway.access, .sse); this module does the I/O.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from functools import wraps
from typing import Any, Awaitable, Callable

import orjson
from aiohttp import web

from connectors.gateway.access import (
    UNAUTHENTICATED,
    Grants,
    Refusal,
    ShareLog,
    Shipments,
    access_document,
    disclosures_document,
    entitled,
    grant_document,
    may_revoke,
    may_see_grant,
    new_grant,
    not_found,
    read_grant_request,
    refuse_grant,
    visible_grants,
)
from connectors.gateway.feed import ChangeFeed, StreamCaps
from connectors.gateway.guards import BodyRefused, authorization, read_capped
from connectors.gateway.intake import Publisher, Unavailable, error_document
from connectors.gateway.sse import CONTENT_TYPE, comment, due, frame, last_event_id, revoked_frame, status_frame
from connectors.parties import PartyRegistry
from hubconf.settings import Settings
from runtime.metrics import SSE_STREAMS_OPEN
from schemas.record import ShipmentRecord
from streams.sharing import POLICY, Channel, Entitlement, Grant, Policy, Share, share_of, view

log = logging.getLogger(__name__)

POLL_S = 0.5
KEEPALIVE_S = 15.0
RETRY_MS = 3000  # how long an EventSource waits before it reconnects (with Last-Event-ID) after a drop
RETRY_AFTER_S = 5
MAX_GRANT_BODY_BYTES = 16 * 1024
SHARE_ID_HEADER = "Mmhub-Share-Id"

Handler = Callable[["Reader", web.Request], Awaitable[web.StreamResponse]]


def _json(document: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=orjson.dumps(document), status=status, content_type="application/json",
        headers={"Cache-Control": "no-store", **(headers or {})},
    )


class _Refused(Exception):
    def __init__(self, refusal: Refusal) -> None:
        super().__init__(refusal.reason)
        self.refusal = refusal


def _answering(handler: Handler) -> Handler:
    """Refusals become their JSON error; a database or broker that does not answer becomes 503."""

    @wraps(handler)
    async def answer(reader: Reader, request: web.Request) -> web.StreamResponse:
        try:
            return await handler(reader, request)
        except _Refused as refused:
            r = refused.refusal
            headers = {
                401: {"WWW-Authenticate": 'Bearer realm="mmhub"'}, 429: {"Retry-After": str(RETRY_AFTER_S)}
            }.get(r.status)
            return _json(error_document(r.code, r.reason), r.status, headers)
        except Unavailable as error:
            log.warning("%s %s refused with 503: %s", request.method, request.path, error)
            reason = "the hub cannot answer right now; try again later"
            return _json(error_document("unavailable", reason), 503, {"Retry-After": str(RETRY_AFTER_S)})

    return answer


@dataclass(frozen=True)
class Access:
    """An authenticated caller entitled to a shipment, and what that was decided from."""

    caller: str
    record: ShipmentRecord
    grants: list[Grant]
    entitled: dict[str, Entitlement]
    who: Entitlement


class Reader:
    """The reader handlers with what they need. `closing` ends every live stream (set when the app shuts down)."""

    def __init__(
        self,
        settings: Settings,
        parties: PartyRegistry,
        shipments: Shipments,
        grants: Grants,
        shares: ShareLog,
        publisher: Publisher,
        clock: Callable[[], datetime],
        poll_s: float = POLL_S,
        keepalive_s: float = KEEPALIVE_S,
        policy: Policy = POLICY,
        caps: StreamCaps = StreamCaps(),
    ) -> None:
        self.settings = settings
        self.parties = parties
        self.shipments = shipments
        self.grants = grants
        self.shares = shares
        self.publisher = publisher
        self.clock = clock
        self.poll_s = poll_s
        self.keepalive_s = keepalive_s
        self.policy = policy
        self.closing = asyncio.Event()
        self.feed = ChangeFeed(shipments, grants, poll_s, caps)
        self._stand_in: ShipmentRecord | None = None  # the last record read: what an unknown shipment is decided on

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/v1/shipments/{shipment_id}", self.get_shipment)
        app.router.add_get("/v1/shipments/{shipment_id}/disclosures", self.get_disclosures)
        app.router.add_get("/v1/shipments/{shipment_id}/live", self.live)
        app.router.add_get("/v1/shipments/{shipment_id}/grants", self.get_grants)
        app.router.add_post("/v1/shipments/{shipment_id}/grants", self.post_grant)
        app.router.add_delete("/v1/grants/{grant_id}", self.delete_grant)
        app.on_shutdown.append(self._shutdown)

    async def _shutdown(self, app: web.Application) -> None:
        self.closing.set()

    # --- who is asking, and may it ----------------------------------------------------------------------------

    def _caller(self, request: web.Request) -> str:
        caller = self.parties.authenticate(authorization(request))
        if caller is None:
            raise _Refused(UNAUTHENTICATED)
        return caller

    async def _access(self, request: web.Request) -> Access:
        """The caller's entitlement to the shipment, or the one 404. An unknown shipment costs what one the caller may
        not read does (the median 404s took 1.7 ms and 4.6 ms): the store reads and parses the last record a hit read
        (reader_store's RECORD_OR_STAND_IN), the grants are read, and the entitlements are decided on that record,
        then dropped."""
        caller = self._caller(request)
        shipment_id = request.match_info["shipment_id"]
        record = await self.shipments.record(shipment_id)
        grants = await self.grants.for_shipment(shipment_id)
        subject = self._stand_in = record or self._stand_in
        now_entitled = {} if subject is None else entitled(subject, grants, self.clock(), self.policy)
        who = None if record is None else now_entitled.get(caller)
        if record is None or who is None:
            raise _Refused(not_found(shipment_id))
        return Access(caller, record, grants, now_entitled, who)

    async def _audit(self, share: Share) -> None:
        """Log the share in Postgres and on hub.audit before it goes out; if either fails, it does not go out."""
        await self.shares.write(
            share,
            lambda entry: self.publisher.send(self.settings.topics.audit, share.party.encode(), orjson.dumps(entry), []),
        )

    async def _shown(
        self, record: ShipmentRecord, who: Entitlement, kind: str, channel: Channel, ref: str
    ) -> tuple[dict[str, Any], Share]:
        """The caller's view, audited."""
        shown = view(record, who, self.policy)
        share = share_of(shown, who, record, kind, channel, self.clock(), ref=ref, policy=self.policy)
        await self._audit(share)
        return shown.document, share

    # --- reading ----------------------------------------------------------------------------------------------------

    @_answering
    async def get_shipment(self, request: web.Request) -> web.StreamResponse:
        access = await self._access(request)
        document, share = await self._shown(access.record, access.who, "status", "api", str(uuid.uuid4()))
        return _json(document, 200, {SHARE_ID_HEADER: share.share_id})

    @_answering
    async def get_disclosures(self, request: web.Request) -> web.StreamResponse:
        access = await self._access(request)
        held, share = await self._shown(access.record, access.who, "disclosures", "api", str(uuid.uuid4()))
        lines = await self.shares.summary(access.record.shipment_id)
        document = disclosures_document(
            access.record, access.who, held, lines, access.grants, access.entitled, self.clock()
        )
        return _json(document, 200, {SHARE_ID_HEADER: share.share_id})

    @_answering
    async def live(self, request: web.Request) -> web.StreamResponse:
        """The caller's view now (unless Last-Event-ID says it has it), then each newer version, until the client
        leaves, the gateway stops, or the caller's entitlement ends (`event: revoked`)."""
        access = await self._access(request)
        refusal = self.feed.refuse(access.caller)
        if refusal is not None:
            raise _Refused(refusal)
        response = web.StreamResponse(
            headers={"Content-Type": CONTENT_TYPE, "Cache-Control": "no-store", "X-Accel-Buffering": "no"}
        )
        stream_id = str(uuid.uuid4())
        shipment_id, caller = access.record.shipment_id, access.caller
        sent = last_event_id(request.headers.get("Last-Event-ID"))
        async with self.feed.follow(caller, access.record, access.grants):
            await response.prepare(request)
            log.info("live view %s of %s opened by %s (has version %s)", stream_id, shipment_id, caller, sent)
            try:
                with SSE_STREAMS_OPEN.track_inprogress():
                    await self._stream(response, request, access, sent, stream_id)
            except ConnectionResetError:
                pass  # the client left while we wrote
            except Unavailable as error:
                log.warning("live view %s of %s ends: %s", stream_id, shipment_id, error)
        log.info("live view %s of %s closed", stream_id, shipment_id)
        return response

    async def _stream(
        self, response: web.StreamResponse, request: web.Request, access: Access, sent: int | None, stream_id: str
    ) -> None:
        record, who = access.record, access.who
        await response.write(frame(retry_ms=RETRY_MS))
        last_write = time.monotonic()
        while True:
            if due(record.version, sent):
                document, _ = await self._shown(record, who, "status", "sse", stream_id)
                await response.write(status_frame(record.version, document))
                sent, last_write = record.version, time.monotonic()
            if await self._closing_before_next_round() or _gone(request):
                return
            latest = self.feed.latest(record.shipment_id)
            if latest.failed is not None:
                raise latest.failed
            if latest.record is not None and latest.record.version > record.version:
                record = latest.record
            still = entitled(record, latest.grants, self.clock(), self.policy).get(access.caller)
            if latest.record is None or still is None:
                await response.write(revoked_frame(record.shipment_id))
                return
            who = still
            if time.monotonic() - last_write >= self.keepalive_s:
                await response.write(comment("keepalive"))
                last_write = time.monotonic()

    async def _closing_before_next_round(self) -> bool:
        """Wait for the change feed's next round; True if the gateway began to stop first."""
        waits = {asyncio.ensure_future(self.closing.wait()), asyncio.ensure_future(self.feed.next_round())}
        _, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for wait in pending:
            wait.cancel()
        return self.closing.is_set()

    # --- delegation -----------------------------------------------------------------------------------------------

    @_answering
    async def get_grants(self, request: web.Request) -> web.StreamResponse:
        access = await self._access(request)
        now = self.clock()
        shown = visible_grants(access.caller, access.record, access.grants)
        return _json({
            "shipment_id": access.record.shipment_id,
            "you": access_document(access.who),
            "grants": [grant_document(g, access.entitled, now) for g in shown],
        })

    @_answering
    async def post_grant(self, request: web.Request) -> web.StreamResponse:
        access = await self._access(request)
        try:
            body = await read_capped(request, MAX_GRANT_BODY_BYTES)
        except BodyRefused as refused:
            return refused.response
        asked = read_grant_request(body)
        if isinstance(asked, Refusal):
            raise _Refused(asked)
        now = self.clock()
        refusal = refuse_grant(access.who, asked, self.parties, now, self.policy, grants=access.grants)
        if refusal is not None:
            raise _Refused(refusal)
        grant = new_grant(str(uuid.uuid4()), access.record.shipment_id, access.caller, asked, now)
        await self.grants.add(grant)
        g = grant
        log.info("%s granted %s %s of %s (%s)", g.grantor, g.grantee, g.grades, g.shipment_id, g.grant_id)
        after = entitled(access.record, [*access.grants, grant], now, self.policy)
        return _json(grant_document(grant, after, now), 201)

    @_answering
    async def delete_grant(self, request: web.Request) -> web.StreamResponse:
        caller = self._caller(request)
        grant_id = request.match_info["grant_id"]
        grant = await self.grants.get(grant_id)
        record = None if grant is None else await self.shipments.record(grant.shipment_id)
        if grant is None or not may_see_grant(grant, caller, record):
            raise _Refused(Refusal(404, "not_found", f"no grant {grant_id} that you may see"))
        if not may_revoke(grant, caller, record):
            reason = "only the party that made a grant, or the shipment's MTO, may revoke it"
            raise _Refused(Refusal(403, "not_grantor", reason))
        now = self.clock()
        revoked = await self.grants.revoke(grant_id, now) or grant
        g = grant
        log.info("%s revoked grant %s (%s -> %s of %s)", caller, grant_id, g.grantor, g.grantee, g.shipment_id)
        grants = await self.grants.for_shipment(grant.shipment_id)
        after = {} if record is None else entitled(record, grants, now, self.policy)
        return _json(grant_document(revoked, after, now))


def _gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()
