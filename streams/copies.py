"""One copy of an event as the hub holds it, and how copies of the same event are ranked.

A copy's rank is (revised_at, retracted, fingerprint): a later revision wins, a retraction beats a plain copy of
the same revision, and the fingerprint settles the rest, so the winner never depends on arrival order.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timezone

import orjson

from schemas.events import HUB_EVENT, HubEvent

NEVER = datetime.min.replace(tzinfo=timezone.utc)


def fingerprint(event: HubEvent) -> str:
    """Identity of one exact copy of an event: a hash of its canonical JSON (sorted keys)."""
    canonical = orjson.dumps(HUB_EVENT.dump_python(event, mode="json"), option=orjson.OPT_SORT_KEYS)
    return hashlib.blake2b(canonical, digest_size=16).hexdigest()


@dataclass(frozen=True)
class Copy:
    fingerprint: str
    event: HubEvent

    @property
    def rank(self) -> tuple[datetime, bool, str]:
        return (self.event.revised_at or NEVER, self.event.retracted, self.fingerprint)
