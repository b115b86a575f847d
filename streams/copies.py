"""One copy of an event as the hub holds it, and how copies of the same event are ranked.

A copy's rank is (retracted, revised_at, fingerprint): a retraction discards the event whatever revision it or any
other copy carries (DCSA T&T 3.0: "the data in this and all previously transmitted events with the same eventID must
be discarded"), a later revision wins among the rest, and the fingerprint settles ties, so the winner never depends
on arrival order.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timezone

import orjson

from schemas.events import HUB_EVENT, HubEvent

NEVER = datetime.min.replace(tzinfo=timezone.utc)


def canonical_json(event: HubEvent) -> bytes:
    """The event as the hub writes it: JSON with sorted keys, so one copy always gives the same bytes."""
    return orjson.dumps(_EVENT_SERIALIZER.to_python(event, mode="json"), option=orjson.OPT_SORT_KEYS)


# HUB_EVENT.dump_python(event, mode="json") without TypeAdapter's Python wrapper: the same pydantic-core call with
# the same (default) arguments, for every copy of an event the merge takes in.
_EVENT_SERIALIZER = HUB_EVENT.serializer


def fingerprint(event: HubEvent) -> str:
    """Identity of one exact copy of an event: a hash of its canonical JSON."""
    return _digest(canonical_json(event))


def _digest(canonical: bytes) -> str:
    return hashlib.blake2b(canonical, digest_size=16).hexdigest()


@dataclass(frozen=True)
class Copy:
    fingerprint: str
    event: HubEvent
    # The canonical JSON the fingerprint was taken of, kept so that writing the state or a status message does
    # not serialise the event again; empty when the caller did not have it (then `json()` computes it).
    canonical: bytes = field(default=b"", compare=False, repr=False)

    @classmethod
    def of(cls, event: HubEvent) -> Copy:
        canonical = canonical_json(event)
        return cls(_digest(canonical), event, canonical)

    def json(self) -> bytes:
        return self.canonical or canonical_json(self.event)

    @property
    def rank(self) -> tuple[bool, datetime, str]:
        return (self.event.retracted, self.event.revised_at or NEVER, self.fingerprint)
