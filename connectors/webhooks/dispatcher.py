"""The dispatcher: POST each subscription's queued notifications to its URL, signed, in batches, in seq order.

One worker per subscription whose next notification is due, one request in flight per subscription, so a
subscriber receives its notifications in the order they were queued; subscriptions do not wait for each other.
What each answer means (deliver, shrink the batch, wait, give up) is decided in connectors.webhooks.delivery.
A delivered batch is marked delivered and audited (`share_audit`, channel `webhook`, on the audit's hash chain) in
one transaction.

Ordering needs a single dispatcher per schema: each holds a Postgres advisory lock while it dispatches, and a
second one started beside it waits as a standby until the lock is free.
"""

from __future__ import annotations

import asyncio
import logging
import random
from datetime import datetime
from typing import Callable, Sequence

import aiohttp
import asyncpg

from connectors.postgres.db import connect
from connectors.sharing.chain import append_with_outbox
from connectors.webhooks.delivery import (
    Delivered,
    Failed,
    Isolate,
    Pending,
    RowFailed,
    Shrink,
    WebhookConfig,
    body,
    decide,
    headers,
)
from connectors.webhooks.egress import post
from connectors.webhooks.notifications import audit, shared
from connectors.webhooks.store import SELECT, WebhookStore, subscription_of
from hubconf.settings import Settings
from runtime.metrics import WEBHOOK_DEAD, WEBHOOK_DELIVERED, WEBHOOK_RETRIES
from runtime.stored_offsets import FIRST_BACKOFF_S, MAX_BACKOFF_S, Stopped, transient

log = logging.getLogger(__name__)

LEAD = "SELECT pg_try_advisory_lock(hashtextextended('mmhub.webhooks.dispatcher:' || current_schema(), 0))"
# Each active subscription's next notification and when it is due.
HEADS = """
SELECT s.subscription_id, h.next_attempt_at
FROM webhook_subscriptions s
CROSS JOIN LATERAL (
    SELECT o.next_attempt_at FROM webhook_outbox o
    WHERE o.subscription_id = s.subscription_id AND o.state = 'pending' ORDER BY o.seq LIMIT 1
) h
WHERE s.active
"""
PENDING = """
SELECT seq, message_key, payload, attempts, first_failed_at, next_attempt_at FROM webhook_outbox
WHERE subscription_id = $1 AND state = 'pending' ORDER BY seq LIMIT $2
"""
DELIVERED = """
UPDATE webhook_outbox SET state = 'delivered', delivered_at = $2, last_attempt_at = $2, attempts = attempts + 1
WHERE seq = ANY($1::bigint[]) AND state = 'pending'
RETURNING seq
"""
FAILED = """
UPDATE webhook_outbox o SET
    attempts = o.attempts + 1, first_failed_at = coalesce(o.first_failed_at, $2), last_attempt_at = $2,
    state = u.state, next_attempt_at = u.next_attempt_at, last_error = u.error
FROM unnest($1::bigint[], $3::text[], $4::timestamptz[], $5::text[]) AS u(seq, state, next_attempt_at, error)
WHERE o.seq = u.seq AND o.state = 'pending'
"""
STANDBY_S = 5.0


async def mark_delivered(conn: asyncpg.Connection, batch: Sequence[Pending], now: datetime) -> None:
    """One transaction: the batch is delivered, and each notification's share is in the audit log once."""
    async with conn.transaction():
        done = {row["seq"] for row in await conn.fetch(DELIVERED, [p.seq for p in batch], now)}
        shares = []
        for pending in batch:
            found = shared(pending.payload) if pending.seq in done else None
            if found is not None:
                shares.append(audit(found, now))
        if shares:
            await append_with_outbox(conn, shares)  # chained; the sharing stage publishes the outbox


async def mark_failed(conn: asyncpg.Connection, rows: Sequence[RowFailed], now: datetime) -> None:
    await conn.execute(
        FAILED,
        [r.seq for r in rows],
        now,
        ["dead" if r.dead else "pending" for r in rows],
        [r.next_attempt_at for r in rows],
        [r.error for r in rows],
    )


class Dispatcher:
    """Spawns a worker for each subscription whose next notification is due, while it holds the lead."""

    def __init__(
        self,
        settings: Settings,
        store: WebhookStore,
        session: aiohttp.ClientSession,
        clock: Callable[[], datetime],
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self._settings = settings
        self._store = store
        self._config: WebhookConfig = store.config
        self._policy = store.policy
        self._session = session
        self._clock = clock
        self._jitter = jitter
        self._workers: dict[str, asyncio.Task[None]] = {}
        self.limits: dict[str, int] = {}  # per subscription, the batch size a 413 taught
        self._alone: dict[str, int] = {}  # per subscription, the seq to send alone next (after a refused batch)

    async def run(self, stop: asyncio.Event) -> None:
        """Dispatch while holding the lead, until `stop`; a lost database pauses everything until it is back."""
        lead: asyncpg.Connection | None = None
        leading = standing_by = False
        delay = FIRST_BACKOFF_S
        try:
            while not stop.is_set():
                wait = self._config.poll_s
                try:
                    if lead is None or lead.is_closed():
                        lead = await connect(self._settings, "mmhub-webhooks-dispatcher")
                    if leading:
                        await lead.fetchval("SELECT 1")  # still connected, so still holding the lock
                    elif await lead.fetchval(LEAD):
                        leading = True
                        log.info("dispatching webhooks for schema %s", self._settings.pg_schema)
                    else:
                        if not standing_by:
                            log.info("another dispatcher leads for schema %s; standing by", self._settings.pg_schema)
                        standing_by, wait = True, STANDBY_S
                    if leading:
                        await self._spawn(stop)
                    delay = FIRST_BACKOFF_S
                except Exception as error:
                    if not transient(error):
                        raise
                    log.warning("Postgres unavailable (%s: %s); deliveries paused", type(error).__name__, error)
                    await self._halt(0.0)  # the lock went with the connection: another dispatcher may lead now
                    if lead is not None:
                        lead.terminate()
                    lead, leading = None, False
                    wait, delay = delay, min(delay * 2, MAX_BACKOFF_S)
                try:
                    await asyncio.wait_for(stop.wait(), wait)
                except TimeoutError:
                    pass
        finally:
            await self._halt(self._config.timeout_s + 1.0)
            if lead is not None and not lead.is_closed():
                lead.terminate()  # the session's end releases the lock

    async def _spawn(self, stop: asyncio.Event) -> None:
        heads = await self._store.run(lambda conn: conn.fetch(HEADS))
        now = self._clock()
        for head in heads:
            subscription_id = head["subscription_id"]
            running = self._workers.get(subscription_id)
            if head["next_attempt_at"] <= now and (running is None or running.done()):
                self._workers[subscription_id] = asyncio.create_task(self._deliver(subscription_id, stop))
        for subscription_id, task in list(self._workers.items()):
            if task.done():
                del self._workers[subscription_id]
                if not task.cancelled() and task.exception() is not None:
                    log.error("webhook worker for %s failed", subscription_id, exc_info=task.exception())

    async def _halt(self, grace_s: float) -> None:
        """Let the workers finish the request in hand (they stop between requests), then cancel what remains."""
        tasks = [task for task in self._workers.values() if not task.done()]
        if tasks and grace_s > 0:
            await asyncio.wait(tasks, timeout=grace_s)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._workers.clear()

    async def _deliver(self, subscription_id: str, stop: asyncio.Event) -> None:
        """Send the subscription's due notifications, batch after batch, until none is due (or `stop`)."""
        store = self._store
        try:
            while not stop.is_set():
                # read afresh for every batch: a rotation or an unsubscribe takes effect at the next request
                found = await store.patiently(lambda conn: conn.fetchrow(SELECT, subscription_id), stop)
                if found is None or not found["active"]:
                    return
                subscription = subscription_of(found, store.keys)
                limit = self.limits.get(subscription_id, self._config.batch_size)
                rows = await store.patiently(lambda conn: conn.fetch(PENDING, subscription_id, limit), stop)
                if not rows or rows[0]["next_attempt_at"] > self._clock():
                    return
                batch = [
                    Pending(r["seq"], r["message_key"], r["payload"], r["attempts"], r["first_failed_at"]) for r in rows
                ]
                if self._alone.get(subscription_id) == batch[0].seq:
                    batch = batch[:1]
                raw = body(subscription_id, batch)
                signed = headers(subscription, raw, self._clock())
                answer = await post(self._session, self._policy, subscription.url, raw, signed, self._clock)
                now = self._clock()
                decision = decide(answer, batch, now, self._config, self._jitter())
                if isinstance(decision, Delivered):
                    await store.patiently(lambda conn: mark_delivered(conn, batch, now), stop)
                    WEBHOOK_DELIVERED.labels(subscription_id).inc(len(batch))
                    self._alone.pop(subscription_id, None)
                elif isinstance(decision, Shrink):
                    log.warning("%s: %s for %d notifications; now at most %d a batch",
                                subscription_id, answer.detail, len(batch), decision.limit)
                    self.limits[subscription_id] = decision.limit
                    WEBHOOK_RETRIES.labels(subscription_id).inc(len(batch))
                elif isinstance(decision, Isolate):
                    log.warning("%s: %s for %d notifications; sending seq %d alone",
                                subscription_id, answer.detail, len(batch), decision.seq)
                    self._alone[subscription_id] = decision.seq
                    WEBHOOK_RETRIES.labels(subscription_id).inc(len(batch))
                elif isinstance(decision, Failed):
                    await store.patiently(lambda conn: mark_failed(conn, decision.rows, now), stop)
                    dead = [r for r in decision.rows if r.dead]
                    WEBHOOK_DEAD.labels(subscription_id).inc(len(dead))
                    WEBHOOK_RETRIES.labels(subscription_id).inc(len(decision.rows) - len(dead))
                    if dead:
                        log.error("%s: %d notification(s) dead from seq %d: %s (%s)",
                                  subscription_id, len(dead), dead[0].seq, dead[0].error, answer.detail)
                    if len(dead) < len(decision.rows):
                        log.warning("%s: %s; %d notification(s) wait %.1fs",
                                    subscription_id, answer.detail, len(decision.rows) - len(dead), decision.wait_s)
        except Stopped:
            return
