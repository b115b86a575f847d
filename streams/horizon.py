"""How far past its receipt an event may be dated. An actual event cannot have happened after the hub received it,
and nobody records anything in the future, beyond clock skew; a plan or an estimate looks ahead, but only so far.

Pure: the caller says when the event was received. Every path uses the same deterministic time of receipt, so a
replay decides the same: the broker's timestamp of the Kafka record (`hub.events` and the raw carrier topics are
LogAppendTime), the gateway's clock when the request came in, or the time `mmhub fold` is told.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from hubconf.settings import DEFAULT_MAX_FUTURE_S, DEFAULT_MAX_PLAN_AHEAD_S, Settings
from schemas.events import HubEvent
from schemas.rejection import Rejection

FUTURE_DATED = "future_dated"


@dataclass(frozen=True)
class Horizon:
    """`skew` bounds an actual event's `occurred_at` and every event's `recorded_at` and `revised_at`; `ahead` bounds
    the `occurred_at` of a plan (PLN) or an estimate (EST)."""

    skew: timedelta = timedelta(seconds=DEFAULT_MAX_FUTURE_S)
    ahead: timedelta = timedelta(seconds=DEFAULT_MAX_PLAN_AHEAD_S)

    @classmethod
    def of(cls, settings: Settings) -> Horizon:
        """The horizon `settings` configure (MMHUB_MAX_FUTURE_S, MMHUB_MAX_PLAN_AHEAD_S)."""
        return cls(timedelta(seconds=settings.max_future_s), timedelta(seconds=settings.max_plan_ahead_s))

    def refusal(self, event: HubEvent, received_at: datetime) -> Rejection | None:
        """Why `event` is dated too far past `received_at` (aware UTC), if it is."""
        occurred_bound = self.skew if event.classifier == "ACT" else self.ahead
        stamps = [("occurred_at", event.occurred_at, occurred_bound), ("recorded_at", event.recorded_at, self.skew)]
        if event.revised_at is not None:
            stamps.append(("revised_at", event.revised_at, self.skew))
        for name, stamp, bound in stamps:
            if stamp > received_at + bound:
                return Rejection(
                    FUTURE_DATED,
                    f"event {event.key}: {name} {stamp.isoformat()} is more than {bound.total_seconds():.0f} s after "
                    f"it was received ({received_at.isoformat()})",
                )
        return None
