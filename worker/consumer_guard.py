"""Hold the worker's input partitions in the Kafka client until faust has made its final seek.

Why: after a rebalance faust (0.15.x) restores the tables first, and to read the changelogs it resumes its
fetcher and its flow. Only afterwards does it seek the input partitions to the group's committed offsets
(`Recovery.on_recovery_completed`, or `_resume_streams` when there is nothing to restore) and then, with
`flow_control.resume()`, drops whatever its agents' queues still hold, counting on that seek to bring it back.
Input records read in between are therefore delivered early: some are processed, the rest are thrown away
with the queues, and faust's read offset and the client's fetch position have moved past them. When the group
has committed an offset the seek rewinds both; when it has not (a worker killed before its first commit, so
its replacement starts on a group with no offsets) `seek_to_committed` leaves the position alone, and the
records that were thrown away are never read again: a band of offsets on every partition is skipped, and the
next commit goes past it. faust makes the input partitions active before it has sought them (what a replacement
worker's log shows); its fetch for the changelogs is also handed the live set of active partitions, which becomes
empty, and so "every partition" to aiokafka, when the changelogs are paused again.

What: every non-changelog partition the worker is assigned is paused in aiokafka itself from the assignment
until faust's final seek is done. aiokafka neither fetches nor returns records of a paused partition (and
drops what it had buffered without moving the position), so no input record can reach faust, or move a
position, before that seek; the first record after it is the one at the committed offset, or at the start of
the partition when nothing is committed. Changelog partitions are left alone: recovery reads them as before.
"""

from __future__ import annotations

import logging
from typing import Any, Set, cast

from faust.tables import TableManager
from faust.tables.recovery import Recovery
from faust.types import TP

log = logging.getLogger("mmhub.worker")

# faust methods this relies on; fail at import, not silently at the first rebalance, if an upgrade renames them.
for _name in ("on_rebalance", "on_recovery_completed", "_resume_streams"):
    assert hasattr(Recovery, _name), f"faust Recovery has no {_name}: review worker.consumer_guard"


class GatedRecovery(Recovery):
    """faust's table recovery, with the input partitions held in the client until the final seek."""

    async def on_rebalance(
        self, assigned: Set[TP], revoked: Set[TP], newly_assigned: Set[TP], generation_id: int = 0
    ) -> None:
        # Runs inside the rebalance listener, before recovery (and so the fetcher) can start for this generation.
        await self._hold_inputs()
        await super().on_rebalance(assigned, revoked, newly_assigned, generation_id)

    async def on_recovery_completed(self, generation_id: int = 0) -> None:
        await super().on_recovery_completed(generation_id)  # ... perform_seek(), flow resumed
        await self._release_inputs(generation_id)

    async def _resume_streams(self, generation_id: int = 0) -> None:
        await super()._resume_streams(generation_id)  # the same final seek, when there are no tables
        await self._release_inputs(generation_id)

    async def _hold_inputs(self) -> None:
        changelogs = self.app.tables.changelog_topics

        async def pause() -> Set[Any]:
            client = self._client()
            held = {tp for tp in client.assignment() if tp.topic not in changelogs}
            client.pause(*held)
            return held

        held = await self._consumer_thread().call_thread(pause)
        if held:
            log.info("holding %d input partitions until the stream seek", len(held))

    async def _release_inputs(self, generation_id: int) -> None:
        app = self.app

        async def resume() -> Set[Any]:
            # Checked in the consumer thread, where rebalances happen: if a newer generation has begun, its own
            # recovery holds and releases its partitions, and these must stay held until then.
            if app.consumer_generation_id != generation_id:
                return set()
            client = self._client()
            released: Set[Any] = client.paused() & client.assignment()
            client.resume(*released)
            return released

        released = await self._consumer_thread().call_thread(resume)
        if released:
            log.info("released %d input partitions after the stream seek (generation %s)", len(released), generation_id)

    def _consumer_thread(self) -> Any:
        """faust's consumer thread: aiokafka's consumer belongs to its event loop and is only touched there."""
        return cast(Any, self.app.consumer)._thread

    def _client(self) -> Any:
        return self._consumer_thread()._ensure_consumer()


class GatedTableManager(TableManager):
    """faust's TableManager with `GatedRecovery` (configured as faust's `TableManager` setting)."""

    @property
    def recovery(self) -> Recovery:
        if self._recovery is None:
            self._recovery = GatedRecovery(self.app, self, beacon=self.beacon, loop=self.loop)
        return self._recovery
