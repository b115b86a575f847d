"""What the HTTP gateway decides for each event of a carrier's request, and the messages that carry it on.

Pure: parse results in, decisions, per-event results and Kafka messages out. The receipts lookup and the sends
happen in connectors.gateway.app, through the `Publisher` and `Receipts` protocols defined here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol, Sequence

from schemas.events import HubEvent
from schemas.rejection import Rejection, combine, for_event
from streams.copies import fingerprint
from streams.horizon import Horizon
from streams.routing import Outbound, route
from hubconf.topics import (
    DLQ_CODE,
    DLQ_REASON,
    DLQ_SOURCE_TOPIC,
    ORIGIN,
    SIGNATURE,
    SIGNATURE_CARRIER,
    SIGNATURE_KEY_ID,
    UNAUTHENTICATED_KEPT_BYTES,
    Topics,
    body_digest,
)

Outcome = Literal["accepted", "duplicate", "rejected"]
RoutedTo = Literal["shipment", "reference_resolution"]
Headers = list[tuple[str, bytes]]
# What the receipts key an event copy by: (source, event_id, fingerprint).
Identity = tuple[str, str, str]

# Where an outbound stream goes, and what the response calls that destination.
ROUTED_TO: dict[str, RoutedTo] = {"events": "shipment", "references": "reference_resolution"}


class Unavailable(Exception):
    """Kafka or Postgres did not answer in time: the request is refused with 503 and may be retried as it is."""


class Publisher(Protocol):
    async def send(self, topic: str, key: bytes | None, value: bytes, headers: Headers) -> None:
        """Send one message and return once the broker has acknowledged it; raise Unavailable otherwise."""

    async def ready(self) -> bool: ...


@dataclass(frozen=True)
class Receipt:
    """One event copy the gateway has published: its identity, and when, in which request and where it went."""

    source: str
    event_id: str
    fingerprint: str
    received_at: datetime
    request_id: str
    routed_to: RoutedTo


class Receipts(Protocol):
    async def seen(self, identities: Sequence[Identity]) -> set[Identity]:
        """Which of these exact copies were published before? Raise Unavailable when that cannot be known."""

    async def record(self, receipts: Sequence[Receipt]) -> list[bool]:
        """Store the receipts; for each, whether it is new (False: another request got in first). Raise Unavailable
        when they cannot be stored."""

    async def ready(self) -> bool: ...


@dataclass(frozen=True)
class Message:
    topic: str
    key: bytes | None
    value: bytes
    headers: Headers


@dataclass(frozen=True)
class Refused:
    """An event of the request that goes no further: the parser's or the router's rejection."""

    index: int
    event_id: str | None
    rejection: Rejection


@dataclass(frozen=True)
class Admitted:
    """An event that passed parsing and routing; whether it is new depends on the receipts."""

    index: int
    event: HubEvent
    fingerprint: str
    outbounds: tuple[Outbound, ...]

    @property
    def routed_to(self) -> RoutedTo:
        # route() sends an event either to its shipment or, when it names only references, to resolution.
        return ROUTED_TO[self.outbounds[0].stream]

    def receipt(self, received_at: datetime, request_id: str) -> Receipt:
        return Receipt(self.event.source, self.event_id, self.fingerprint, received_at, request_id, self.routed_to)

    @property
    def event_id(self) -> str:
        return self.event.event_id

    @property
    def identity(self) -> Identity:
        return (self.event.source, self.event.event_id, self.fingerprint)


def admit(
    results: list[HubEvent | Rejection], sender: str, origin: str, received_at: datetime, horizon: Horizon
) -> list[Admitted | Refused]:
    """Each parse result, in order, as refused (with why) or admitted (with its fingerprint and messages)."""
    decided: list[Admitted | Refused] = []
    for index, result in enumerate(results):
        if isinstance(result, Rejection):
            decided.append(Refused(index, None, result))
            continue
        routed = route(result, sender, received_at, horizon, origin)
        if isinstance(routed, Rejection):
            decided.append(Refused(index, result.event_id, routed))
        else:
            decided.append(Admitted(index, result, fingerprint(result), tuple(routed)))
    return decided


@dataclass(frozen=True)
class Plan:
    """A request's events sorted by what happens next. Refused ones are dead-lettered; fresh ones are published,
    then recorded; repeated ones (received before, or earlier in this same request) go nowhere."""

    refused: list[Refused]
    fresh: list[Admitted]
    repeated: list[Admitted]


def plan(decided: list[Admitted | Refused], already: set[Identity]) -> Plan:
    """Sort the decided events, given the identities the receipts already hold."""
    refused: list[Refused] = []
    fresh: list[Admitted] = []
    repeated: list[Admitted] = []
    taken = set(already)
    for item in decided:
        if isinstance(item, Refused):
            refused.append(item)
        elif item.identity in taken:
            repeated.append(item)
        else:
            taken.add(item.identity)
            fresh.append(item)
    return Plan(refused, fresh, repeated)


def outbound_messages(admitted: Admitted, topics: Topics, origin: str) -> list[Message]:
    """The admitted event's messages, on `hub.events` or `hub.references`, each naming where it came from."""
    names = {"events": topics.events, "references": topics.references}
    return [Message(names[o.stream], o.key, o.value, [(ORIGIN, origin.encode())]) for o in admitted.outbounds]


@dataclass(frozen=True)
class Signed:
    """The signature headers as the carrier sent them (any may be missing), kept on dead letters for replay."""

    carrier: str | None
    key_id: str | None
    signature: str | None

    def headers(self) -> Headers:
        named = ((SIGNATURE_CARRIER, self.carrier), (SIGNATURE_KEY_ID, self.key_id), (SIGNATURE, self.signature))
        return [(name, _raw(value)) for name, value in named if value is not None]


def _raw(header_value: str) -> bytes:
    # aiohttp decodes header bytes as UTF-8 with surrogateescape; this gives back the bytes that were sent.
    return header_value.encode("utf-8", "surrogateescape")


def source_topic(format_name: str) -> str:
    """What a dead letter from the gateway names as its source topic: the HTTP path it was posted to."""
    return f"http:/v1/events/{format_name}"


def dead_letter(
    body: bytes, rejection: Rejection, *, topics: Topics, format_name: str, signed: Signed, origin: str
) -> Message:
    """The request body, untouched, on the DLQ with why it was refused, where it came from and how it was signed."""
    key = _raw(signed.carrier) if signed.carrier is not None else None
    headers: Headers = [
        (DLQ_REASON, rejection.reason_header()),
        (DLQ_CODE, rejection.code.encode()),
        (DLQ_SOURCE_TOPIC, source_topic(format_name).encode()),
        (ORIGIN, origin.encode()),
        *signed.headers(),
    ]
    return Message(topics.dlq, key, body, headers)


def unauthenticated_letter(
    body: bytes, rejection: Rejection, *, topics: Topics, format_name: str, signed: Signed, origin: str
) -> Message:
    """A refused signature's dead letter: the body's first KiB, its SHA-256 and size, why, and the headers as sent.
    Anyone can post a body nobody signed, so it is not kept whole (4 MiB a request for 90 days otherwise)."""
    kept = body[:UNAUTHENTICATED_KEPT_BYTES]
    letter = dead_letter(kept, rejection, topics=topics, format_name=format_name, signed=signed, origin=origin)
    return Message(letter.topic, letter.key, letter.value, [*letter.headers, *body_digest(body)])


def messages(
    planned: Plan, body: bytes, *, topics: Topics, format_name: str, signed: Signed, origin: str
) -> list[Message]:
    """What a request sends: the body dead-lettered once with every refused event's reason (not once per refused
    event: a 4 MiB batch of bad events must not become thousands of 4 MiB dead letters), and every fresh event's
    messages."""
    dead = (
        [
            dead_letter(
                body,
                combine([labelled(item) for item in planned.refused]),
                topics=topics,
                format_name=format_name,
                signed=signed,
                origin=origin,
            )
        ]
        if planned.refused
        else []
    )
    return dead + [message for item in planned.fresh for message in outbound_messages(item, topics, origin)]


def labelled(refused: Refused) -> Rejection:
    """The refusal with its reason prefixed by `event <index>:`, unless the parser already said exactly that."""
    return for_event(refused.index, refused.rejection)


@dataclass(frozen=True)
class EventResult:
    index: int
    event_id: str | None
    result: Outcome
    code: str | None = None
    reason: str | None = None
    routed_to: RoutedTo | None = None
    shipment_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "event_id": self.event_id,
            "result": self.result,
            "code": self.code,
            "reason": self.reason,
            "routed_to": self.routed_to,
            "shipment_id": self.shipment_id,
        }


def rejected(refused: Refused) -> EventResult:
    return EventResult(refused.index, refused.event_id, "rejected", refused.rejection.code, refused.rejection.reason)


def results(planned: Plan, recorded: list[bool]) -> list[EventResult]:
    """Every event's result in payload order, once `recorded` says which fresh receipts were new (a receipt that
    another request wrote first makes that copy a duplicate here)."""
    assert len(recorded) == len(planned.fresh)
    out = [rejected(item) for item in planned.refused]
    out += [passed(item, "duplicate") for item in planned.repeated]
    out += [passed(item, "accepted" if new else "duplicate") for item, new in zip(planned.fresh, recorded)]
    return sorted(out, key=lambda result: result.index)


def passed(admitted: Admitted, outcome: Literal["accepted", "duplicate"]) -> EventResult:
    return EventResult(
        admitted.index,
        admitted.event_id,
        outcome,
        routed_to=admitted.routed_to,
        shipment_id=admitted.event.shipment_id,
    )


def receipt_document(request_id: str, format_name: str, carrier: str, results: list[EventResult]) -> dict[str, Any]:
    """The 202 response body: the counts, then one result per event in the order the payload gave them."""
    return {
        "request_id": request_id,
        "format": format_name,
        "carrier": carrier,
        "accepted": sum(r.result == "accepted" for r in results),
        "duplicates": sum(r.result == "duplicate" for r in results),
        "rejected": sum(r.result == "rejected" for r in results),
        "results": [r.to_json() for r in results],
    }


def nothing_accepted(rejected: int) -> dict[str, str]:
    """What a 422 adds to the receipt when no event of the request was taken (each refused one is dead-lettered)."""
    return error_document(
        "nothing_accepted",
        f"nothing accepted: all {rejected} event(s) of the request were rejected; see results for each one's reason",
    )


def error_document(code: str, reason: str) -> dict[str, str]:
    return {"error": code, "reason": reason}
