"""Webhook subscriptions in Postgres (`webhook_subscriptions`), and the pool every webhook process works through.

Used by `mmhub webhooks` and by the gateway's subscription routes, and by the filler and the dispatcher, whose
long-running loops go through `patiently`: a lost database is waited out, never a crash.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import uuid
from datetime import datetime, timedelta
from typing import Any, Awaitable, Callable, TypeVar, cast

import asyncpg
import orjson

from connectors.postgres.db import connect as connect_to_schema
from connectors.postgres.db import connect_options
from connectors.webhooks.delivery import WebhookConfig
from connectors.webhooks.notifications import Refused, Subscription, SubscriptionRequest, Unavailable
from connectors.webhooks.sealing import Keyring, key_id, load_keyring
from hubconf.settings import Settings
from runtime.stored_offsets import patiently, transient

log = logging.getLogger(__name__)

T = TypeVar("T")

QUERY_TIMEOUT_S = 10.0
SECRET_PREFIX = "whsec_"

INSERT = """
INSERT INTO webhook_subscriptions (subscription_id, party, url, secret_sealed, shipment_id, kinds, created_at,
    expires_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
RETURNING *
"""
SELECT = "SELECT * FROM webhook_subscriptions WHERE subscription_id = $1"
ROTATE = """
UPDATE webhook_subscriptions SET previous_secret_sealed = secret_sealed, previous_secret_until = $3, secret_sealed = $2
WHERE subscription_id = $1 AND active AND ($4::text IS NULL OR party = $4)
RETURNING *
"""
DEACTIVATE = """
UPDATE webhook_subscriptions SET active = false
WHERE subscription_id = $1 AND active AND ($2::text IS NULL OR party = $2)
RETURNING subscription_id
"""
# Per subscription: its notifications by state, the latest error of any attempt and the latest dead letter's reason.
OVERVIEW = """
SELECT s.subscription_id, s.party, s.url, s.shipment_id, s.kinds, s.created_at, s.expires_at, s.active,
    s.previous_secret_until,
    count(o.seq) FILTER (WHERE o.state = 'pending') AS pending,
    count(o.seq) FILTER (WHERE o.state = 'delivered') AS delivered,
    count(o.seq) FILTER (WHERE o.state = 'dead') AS dead,
    (SELECT e.last_error FROM webhook_outbox e WHERE e.subscription_id = s.subscription_id
        AND e.last_error IS NOT NULL ORDER BY e.last_attempt_at DESC, e.seq DESC LIMIT 1) AS last_error,
    (SELECT max(e.last_attempt_at) FROM webhook_outbox e WHERE e.subscription_id = s.subscription_id
        AND e.last_error IS NOT NULL) AS last_error_at,
    (SELECT e.last_error FROM webhook_outbox e WHERE e.subscription_id = s.subscription_id
        AND e.state = 'dead' ORDER BY e.seq DESC LIMIT 1) AS dead_reason
FROM webhook_subscriptions s
LEFT JOIN webhook_outbox o ON o.subscription_id = s.subscription_id
WHERE $1::text IS NULL OR s.party = $1
GROUP BY s.subscription_id
ORDER BY s.party, s.created_at, s.subscription_id
"""


# Every subscription's secrets, locked: clear-text ones left from before migration 0009, and sealed ones.
SECRETS = """
SELECT subscription_id, legacy_clear_secret, legacy_clear_previous_secret, secret_sealed, previous_secret_sealed
FROM webhook_subscriptions ORDER BY subscription_id FOR UPDATE
"""
SEAL = """
UPDATE webhook_subscriptions
SET secret_sealed = $2, previous_secret_sealed = $3, legacy_clear_secret = NULL, legacy_clear_previous_secret = NULL
WHERE subscription_id = $1
"""


def subscription_of(row: asyncpg.Record, keys: Keyring) -> Subscription:
    """The subscription in a `webhook_subscriptions` row, its secrets opened (KeyProblem if `keys` cannot)."""
    subscription_id = row["subscription_id"]
    previous = row["previous_secret_sealed"]
    return Subscription(
        subscription_id=subscription_id,
        party=row["party"],
        url=row["url"],
        secret=keys.open(row["secret_sealed"], subscription_id),
        created_at=row["created_at"],
        shipment_id=row["shipment_id"],
        kinds=tuple(row["kinds"]) if row["kinds"] is not None else None,
        expires_at=row["expires_at"],
        active=row["active"],
        previous_secret=None if previous is None else keys.open(previous, subscription_id),
        previous_secret_until=row["previous_secret_until"],
    )


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


async def _init(conn: asyncpg.Connection) -> None:
    # Outbox payloads are JSON objects both ways, not strings.
    await conn.set_type_codec(
        "jsonb", schema="pg_catalog", encoder=lambda value: orjson.dumps(value).decode(), decoder=orjson.loads
    )


async def connect(settings: Settings, application_name: str) -> asyncpg.Connection:
    """One session outside the pool (the filler's), seeing the outbox as the pool's sessions do."""
    conn = await connect_to_schema(settings, application_name)
    await _init(conn)
    return conn


class WebhookStore:
    """Subscriptions and the outbox, through a small pool in the settings' schema (migrated by the caller).
    Implements connectors.webhooks.notifications.Subscriptions for the gateway."""

    def __init__(self, pool: asyncpg.Pool, config: WebhookConfig, keys: Keyring) -> None:
        self._pool = pool
        self.config = config
        self.policy = config.policy()
        self.keys = keys

    @classmethod
    async def open(
        cls,
        settings: Settings,
        config: WebhookConfig,
        application_name: str = "mmhub-webhooks",
        max_size: int = 10,
        keys: Keyring | None = None,
    ) -> WebhookStore:
        """With `keys`, or the keyring the environment names (connectors.webhooks.sealing.load_keyring): KeyProblem
        if there is none."""
        keyring = load_keyring(os.environ) if keys is None else keys
        pool = await asyncpg.create_pool(
            settings.pg_dsn,
            min_size=0,  # connect on first use: a database down at start is just another outage
            max_size=max_size,
            command_timeout=QUERY_TIMEOUT_S,
            init=_init,
            **connect_options(settings, application_name),
        )
        return cls(pool, config, keyring)

    async def close(self) -> None:
        await self._pool.close()

    async def run(self, operation: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        async with self._pool.acquire() as conn:
            return await operation(cast(asyncpg.Connection, conn))  # a pool's proxy of its connection

    async def patiently(self, operation: Callable[[asyncpg.Connection], Awaitable[T]], stop: asyncio.Event) -> T:
        """`run`, retried with capped exponential backoff while Postgres is unreachable; Stopped if `stop` is set
        meanwhile (runtime.stored_offsets.patiently)."""
        return await patiently(lambda: self.run(operation), stop)

    async def answer(self, operation: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        """`run` for a caller that answers someone (the gateway, the CLI): a lost database raises Unavailable."""
        try:
            return await self.run(operation)
        except Exception as error:
            if transient(error):  # TimeoutError (pool or command timeout) is an OSError
                raise Unavailable(f"Postgres did not answer: {error!r}") from error
            raise

    async def subscribe(self, party: str, request: SubscriptionRequest, now: datetime) -> Subscription:
        """A new subscription with a fresh secret (the only time the secret leaves the hub, besides rotation). Its
        URL is stored as the hub reads it: the host normalised. Refused if the hub will not POST there."""
        problem = request.problem(now)
        if problem is not None:
            raise Refused(problem)
        url = str(self.policy.target(request.url).url)
        subscription_id = "whs_" + uuid.uuid4().hex
        row = await self.answer(
            lambda conn: conn.fetchrow(
                INSERT,
                subscription_id,
                party,
                url,
                self.keys.seal(new_secret(), subscription_id),
                request.shipment_id,
                request.kinds,
                now,
                request.expires_at,
            )
        )
        assert row is not None
        return subscription_of(row, self.keys)

    async def subscription(self, subscription_id: str) -> Subscription | None:
        row = await self.answer(lambda conn: conn.fetchrow(SELECT, subscription_id))
        return None if row is None else subscription_of(row, self.keys)

    async def rotate(self, subscription_id: str, now: datetime, party: str | None = None) -> Subscription | None:
        """A new secret; the current one keeps signing, as the previous signature, for the grace period. None if
        there is no such active subscription (of `party`, when given)."""
        until = now + timedelta(seconds=self.config.rotation_grace_s)
        sealed = self.keys.seal(new_secret(), subscription_id)
        row = await self.answer(lambda conn: conn.fetchrow(ROTATE, subscription_id, sealed, until, party))
        return None if row is None else subscription_of(row, self.keys)

    async def unsubscribe(self, subscription_id: str, party: str | None = None) -> bool:
        """Deactivate: nothing more is queued or sent. Its pending notifications stay, visible in `overview`."""
        return await self.answer(lambda conn: conn.fetchval(DEACTIVATE, subscription_id, party)) is not None

    async def overview(self, party: str | None = None) -> list[dict[str, Any]]:
        """Every subscription (of `party`) without its secrets, with its notification counts and latest errors."""
        rows = await self.answer(lambda conn: conn.fetch(OVERVIEW, party))
        return [{**dict(row), "kinds": list(row["kinds"]) if row["kinds"] is not None else None} for row in rows]

    async def seal(self, conn: asyncpg.Connection, rotate: bool = False) -> int:
        """One transaction, at start-up: seal the clear-text secrets left from before migration 0009 (and forget the
        clear text), and open every sealed one, so a keyring that lacks a key, or has a wrong one, stops the process
        now with KeyProblem rather than at its first delivery. With `rotate`, also re-seal under the current key
        every secret sealed with another (`mmhub webhooks rotate-key`). Returns how many rows were written."""
        keys = self.keys
        written = 0
        async with conn.transaction():
            for row in await conn.fetch(SECRETS):
                sid = row["subscription_id"]
                secret, previous = row["legacy_clear_secret"], row["legacy_clear_previous_secret"]
                sealed = row["secret_sealed"], row["previous_secret_sealed"]
                if secret is None:
                    secret = keys.open(sealed[0], sid)
                    previous = None if sealed[1] is None else keys.open(sealed[1], sid)
                    if not rotate or all(value is None or key_id(value) == keys.current for value in sealed):
                        continue
                resealed = None if previous is None else keys.seal(previous, sid)
                await conn.execute(SEAL, sid, keys.seal(secret, sid), resealed)
                written += 1
        return written
