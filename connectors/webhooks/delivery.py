"""How the dispatcher talks to a subscriber: the signed body of a batch, and what to do with each kind of answer.

Pure: the decisions (deliver, shrink the batch, try the head alone, wait and retry, give up) are made here from
the answer, the rows and the clock; connectors.webhooks.dispatcher does the HTTP and the Postgres writes.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from typing import Any, Mapping, Sequence

import orjson

from connectors.webhooks.addresses import AddressPolicy
from connectors.webhooks.notifications import Subscription

SIGNATURE = "Notification-Signature"
# While a rotated-out secret is still in its grace period: the same body signed with it too, so a subscriber can
# switch secrets on its own schedule.
SIGNATURE_PREVIOUS = "Notification-Signature-Previous"
SUBSCRIPTION_ID = "Notification-Subscription-Id"
SCHEME = "sha256="
ERROR_BODY_CHARS = 200  # of a subscriber's error answer, kept as the reason


@dataclass(frozen=True)
class WebhookConfig:
    """Delivery knobs. Production defaults; tests shrink the waits."""

    batch_size: int = 50  # notifications per POST, at most
    max_attempts: int = 8  # a notification the subscriber refuses (4xx) is dead after this many attempts
    retry_for_s: float = 24 * 3600.0  # an unreachable or failing (5xx) subscriber is retried this long
    backoff_base_s: float = 1.0
    backoff_cap_s: float = 60.0
    max_retry_after_s: float = 3600.0  # a longer Retry-After is honoured only this far
    timeout_s: float = 10.0  # per POST
    poll_s: float = 0.5  # how often the dispatcher looks for due notifications
    rotation_grace_s: float = 24 * 3600.0  # how long a rotated-out secret still signs (as the previous signature)
    allow_http: bool = False  # http:// URLs, for tests and closed networks
    # Host names, addresses or networks (CIDR) the address rules let through (connectors.webhooks.addresses)
    allow_hosts: tuple[str, ...] = ()

    def policy(self) -> AddressPolicy:
        """The address rules with these exceptions; ValueError on a bad allow-list entry."""
        return AddressPolicy.of(self.allow_hosts, self.allow_http)


# --- the request --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pending:
    """One queued notification of a subscription, as the dispatcher reads it from the outbox."""

    seq: int
    key: str
    payload: Mapping[str, Any]
    attempts: int = 0
    first_failed_at: datetime | None = None


def signature(secret: str, body: bytes) -> str:
    """`sha256=<hex HMAC-SHA256 of the exact body, keyed with the secret's UTF-8 bytes>`."""
    return SCHEME + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, header: str | None) -> bool:
    """What a subscriber does with the header (constant-time comparison)."""
    return header is not None and hmac.compare_digest(signature(secret, body), header)


def body(subscription_id: str, batch: Sequence[Pending]) -> bytes:
    """`{"subscription_id", "notifications": [...]}`: each notification is the share message as the sharing stage
    wrote it, with its stable `notification_id` (to deduplicate on) and its `seq` (increasing per subscription)."""
    notifications = [{"notification_id": row.key, "seq": row.seq, **row.payload} for row in batch]
    return orjson.dumps({"subscription_id": subscription_id, "notifications": notifications})


def headers(subscription: Subscription, raw: bytes, now: datetime) -> dict[str, str]:
    signed = {
        "Content-Type": "application/json",
        SUBSCRIPTION_ID: subscription.subscription_id,
        SIGNATURE: signature(subscription.secret, raw),
    }
    previous = subscription.previous(now)
    if previous is not None:
        signed[SIGNATURE_PREVIOUS] = signature(previous, raw)
    return signed


# --- the answer ---------------------------------------------------------------------------------------------------

_SECONDS = re.compile(r"[0-9]{1,10}")


def retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a `Retry-After` header: delta-seconds or an HTTP-date (RFC 9110 10.2.3); None if absent
    or unreadable. A date in the past means now."""
    if value is None:
        return None
    text = value.strip()
    if _SECONDS.fullmatch(text):
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000" parses naive; an HTTP-date is always GMT
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - now).total_seconds())


def backoff(failures: int, base_s: float, cap_s: float, unit: float) -> float:
    """Seconds to wait after the `failures`-th failure in a row: the ceiling doubles from `base_s` up to `cap_s`, and
    `unit` (uniform in [0, 1)) places the wait in [ceiling/2, ceiling], so retries spread out but never come early."""
    ceiling = min(cap_s, base_s * 2.0 ** min(max(failures, 1) - 1, 60))
    return ceiling / 2 + ceiling / 2 * unit


def halve(size: int) -> int:
    """The next batch size after a 413 for a batch of `size`."""
    return max(1, size // 2)


@dataclass(frozen=True)
class Answer:
    """What came back from one POST: an HTTP status, or None when there was no answer (refused, reset, timed out,
    or not attempted: a blocked address)."""

    status: int | None
    failure: str  # its class, for last_error, which the party sees: http_<status>, refused, tls, blocked_address…
    detail: str  # for the operator's log only: the status with the start of the body, or the raw error
    retry_after_s: float | None = None


@dataclass(frozen=True)
class Delivered:
    pass


@dataclass(frozen=True)
class Shrink:
    """413: send at most `limit` at a time to this subscriber from now on, starting again at once."""

    limit: int


@dataclass(frozen=True)
class Isolate:
    """A batch was refused: send its head notification (`seq`) alone next, at once, to find the one refused."""

    seq: int


@dataclass(frozen=True)
class RowFailed:
    seq: int
    dead: bool
    next_attempt_at: datetime
    error: str


@dataclass(frozen=True)
class Failed:
    """Every row of the batch failed this attempt: each waits until `next_attempt_at`, or is dead."""

    rows: tuple[RowFailed, ...]
    wait_s: float


Decision = Delivered | Shrink | Isolate | Failed


def transient(status: int | None) -> bool:
    """The subscriber is away or busy, not refusing the notifications: retry for `retry_for_s`."""
    return status is None or status >= 500 or status in (408, 429)


def decide(answer: Answer, batch: Sequence[Pending], now: datetime, config: WebhookConfig, unit: float) -> Decision:
    """What to do after POSTing `batch` (in seq order, not empty). `unit` is the jitter draw in [0, 1)."""
    status = answer.status
    if status is not None and 200 <= status < 300:
        return Delivered()
    if status == 413 and len(batch) > 1:
        return Shrink(halve(len(batch)))
    if status == 413:
        reason = f"{answer.failure} (refused as too large even alone)"
        return Failed((RowFailed(batch[0].seq, True, now, reason),), 0.0)
    if not transient(status) and len(batch) > 1:
        return Isolate(batch[0].seq)
    failures = batch[0].attempts + 1
    wait = backoff(failures, config.backoff_base_s, config.backoff_cap_s, unit)
    if status in (429, 503) and answer.retry_after_s is not None:
        wait = min(answer.retry_after_s, config.max_retry_after_s)
    at = now + timedelta(seconds=wait)
    rows = []
    for row in batch:
        if transient(status):
            since = row.first_failed_at or now
            dead = (now - since).total_seconds() >= config.retry_for_s
            reason = f"{answer.failure} (failing since {since.isoformat()}; gave up)" if dead else answer.failure
        else:
            dead = row.attempts + 1 >= config.max_attempts
            reason = f"{answer.failure} (refused {row.attempts + 1} times; gave up)" if dead else answer.failure
        rows.append(RowFailed(row.seq, dead, at, reason))
    return Failed(tuple(rows), wait)


def detail(status: int, text: str) -> str:
    """`HTTP 422: <the start of the subscriber's answer>`."""
    text = " ".join(text.split())
    return f"HTTP {status}: {text[:ERROR_BODY_CHARS]}" if text else f"HTTP {status}"
