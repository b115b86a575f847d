"""What a webhook carries: the share messages of `hub.share.<audience>`, which subscriptions they match, and the
audit of a delivery. The sharing stage has already filtered each message to what its party may see; webhooks
only ever hand a party's own messages to that party's subscriptions.

Pure: the filler and the dispatcher (same package) do the I/O.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Mapping, Protocol, Sequence, get_args

from pydantic import Field

from connectors.sharing.plan import insured_value_fields, leaf_paths
from schemas.base import Frozen, UtcDatetime
from schemas.identifiers import ShipmentId
from streams.sharing import Share

# The kinds of share message a webhook delivers. Per kind: the key of its document in the message, and where that
# document's fields sit in the shipment record (the audit names record paths, as streams.sharing does).
Kind = Literal["status", "claim"]
DOCUMENTS: dict[str, tuple[str, str]] = {"status": ("view", ""), "claim": ("claim", "claims[]")}
KINDS: tuple[str, ...] = get_args(Kind)


class MalformedShare(ValueError):
    """A share message the sharing stage could not have written."""


@dataclass(frozen=True)
class Shared:
    """One share message: `party` may see `document` (a status view or a claim) of `shipment_id` at `version`."""

    party: str
    shipment_id: str
    version: int | None
    kind: str
    ref: str
    policy_version: str
    relations: tuple[str, ...]
    via_grants: tuple[str, ...]
    document: Mapping[str, Any]
    message: Mapping[str, Any]

    @property
    def key(self) -> str:
        """`<party>/<shipment>/<version>/<kind>/<ref>`: the same for every copy of one share, so it is queued once
        per subscription; also the notification id a subscriber can deduplicate on."""
        version = "" if self.version is None else str(self.version)
        return "/".join((self.party, self.shipment_id, version, self.kind, self.ref))


def shared(message: Mapping[str, Any]) -> Shared | None:
    """The share message as `Shared`; None for a kind webhooks do not carry. Raises MalformedShare."""
    kind = message.get("kind")
    if kind not in DOCUMENTS:
        if isinstance(kind, str):
            return None
        raise MalformedShare(f"no kind: {kind!r}")
    document = message.get(DOCUMENTS[kind][0])
    if not isinstance(document, dict):
        raise MalformedShare(f"a {kind} message without its {DOCUMENTS[kind][0]!r} object")
    party, shipment_id, version = message.get("party"), message.get("shipment_id"), message.get("version")
    if not isinstance(party, str) or not party or not isinstance(shipment_id, str) or not shipment_id:
        raise MalformedShare(f"party {party!r} or shipment_id {shipment_id!r} missing")
    if version is not None and (isinstance(version, bool) or not isinstance(version, int)):
        raise MalformedShare(f"version {version!r} is not an integer")
    # A status view is one per version; a claim message is told apart by its claim id.
    ref = document.get("claim_id") if kind == "claim" else ""
    if not isinstance(ref, str) or (kind == "claim" and not ref):
        raise MalformedShare("a claim message without a claim_id")
    policy_version = message.get("policy_version")
    if not isinstance(policy_version, str):
        raise MalformedShare(f"policy_version {policy_version!r} is not a string")
    return Shared(
        party=party,
        shipment_id=shipment_id,
        version=version,
        kind=kind,
        ref=ref,
        policy_version=policy_version,
        relations=_strings(message, "relations"),
        via_grants=_strings(message, "via_grants"),
        document=document,
        message=message,
    )


def _strings(message: Mapping[str, Any], name: str) -> tuple[str, ...]:
    value = message.get(name)
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise MalformedShare(f"{name} {value!r} is not a list of strings")
    return tuple(value)


def audit(share: Shared, at: datetime) -> Share:
    """The audit of delivering `share` by webhook at `at`: the record fields the delivered document discloses."""
    prefix = DOCUMENTS[share.kind][1]
    fields = set(leaf_paths(dict(share.document), prefix))
    if share.kind == "status":
        fields.discard("policy_version")  # added to every view by streams.sharing.view; not a record field
    else:
        fields.update(insured_value_fields(share.message.get("insured_value")))  # the claim's envelope carries it
    return Share(
        party=share.party,
        shipment_id=share.shipment_id,
        version=share.version,
        kind=share.kind,
        channel="webhook",
        fields=tuple(sorted(fields)),
        policy_version=share.policy_version,
        relations=share.relations,
        via_grants=share.via_grants,
        shared_at=at,
        ref=share.ref,
    )


# --- subscriptions -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Subscription:
    """A party's webhook: where to POST, the secret to sign with, and which of its share messages it wants."""

    subscription_id: str
    party: str
    url: str
    secret: str
    created_at: datetime
    shipment_id: str | None = None
    kinds: tuple[str, ...] | None = None
    expires_at: datetime | None = None
    active: bool = True
    previous_secret: str | None = None
    previous_secret_until: datetime | None = None

    def matches(self, share: Shared, shared_at: datetime) -> bool:
        """Whether a message shared at `shared_at` goes to this subscription. Judged by when it was shared, not when
        the filler reads it, so a filler that lags (or replays) queues exactly what it would have queued on time."""
        return (
            self.active
            and share.party == self.party
            and (self.shipment_id is None or share.shipment_id == self.shipment_id)
            and (self.kinds is None or share.kind in self.kinds)
            and self.created_at <= shared_at
            and (self.expires_at is None or shared_at < self.expires_at)
        )

    def previous(self, now: datetime) -> str | None:
        """The secret before the last rotation, while its grace period lasts."""
        if self.previous_secret is None or self.previous_secret_until is None or now >= self.previous_secret_until:
            return None
        return self.previous_secret


class Refused(ValueError):
    """A subscription the hub will not make (a URL it will not POST to, an expiry in the past)."""


class Unavailable(Exception):
    """The subscriptions' database did not answer; worth a retry later."""


class Subscriptions(Protocol):
    """Managing subscriptions (connectors.webhooks.store.WebhookStore), as the gateway's routes need it."""

    async def subscribe(self, party: str, request: SubscriptionRequest, now: datetime) -> Subscription: ...

    async def rotate(self, subscription_id: str, now: datetime, party: str | None = None) -> Subscription | None: ...

    async def unsubscribe(self, subscription_id: str, party: str | None = None) -> bool: ...

    async def overview(self, party: str | None = None) -> list[dict[str, Any]]: ...


class SubscriptionRequest(Frozen):
    """What a party asks for (gateway `POST /v1/subscriptions`, `mmhub webhooks subscribe`); its party comes from
    the token (or the operator), never from the body."""

    url: str = Field(min_length=1, max_length=2048)
    shipment_id: ShipmentId | None = None
    kinds: list[Kind] | None = Field(default=None, min_length=1)
    expires_at: UtcDatetime | None = None

    def problem(self, now: datetime) -> str | None:
        """Why the hub refuses this subscription, besides its URL (connectors.webhooks.addresses), or None."""
        if self.expires_at is not None and self.expires_at <= now:
            return "expires_at is in the past"
        return None


# What a party may hold over HTTP (connectors.webhooks.routes): active subscriptions in all, and of those, how many
# one share message may go to (every one for all shipments, plus those for its shipment). Each subscription is a
# copy of every message it matches: outbox rows, POSTs and secrets the filler opens, so without a bound one party
# would turn each of its notifications into as many requests as it liked, at an address of its choosing.
MAX_SUBSCRIPTIONS = 100
MAX_OVERLAPPING = 5


def crowded(held: Sequence[Mapping[str, Any]], request: SubscriptionRequest) -> str | None:
    """Why a party may not add `request` to the subscriptions it holds (`held`: its `overview` rows, with `active`
    and `shipment_id`), or None. A deleted subscription is no longer counted; an expired one is, until deleted,
    since the filler still reads it."""
    active = [row for row in held if row["active"]]
    if len(active) >= MAX_SUBSCRIPTIONS:
        return f"you hold {MAX_SUBSCRIPTIONS} subscriptions, the most a party may; delete one first"
    every = sum(row["shipment_id"] is None for row in active)
    per_shipment = Counter(row["shipment_id"] for row in active if row["shipment_id"] is not None)
    same = max(per_shipment.values(), default=0) if request.shipment_id is None else per_shipment[request.shipment_id]
    if every + same >= MAX_OVERLAPPING:
        return (
            f"{MAX_OVERLAPPING} of your subscriptions would already get the same notifications, the most a party may;"
            " delete one first"
        )
    return None
