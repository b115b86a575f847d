"""How much of a shipment's state a source that does not answer for it may fill.

The state keeps every copy the hub takes in, also those the record refuses: another carrier's report on a leg it
does not carry is kept so the record can say why it refused it, and so that an amended booking naming that carrier
counts it after all, whatever the order. Kept without bound, that let a carrier fill a shipment it does not serve:
a few large reports took the state near what one message may hold (hubconf.topics.MAX_OUTPUT_BYTES), after which
the shipment's own events no longer fit and were set aside (tests/security/test_stranger_quota.py). Sent before
the booking, they left no room for the booking itself.

So a source holds at most `QUOTA_BYTES` of a shipment's state (its copies' canonical JSON, superseded ones too) in
what does not count in the record. Counted for a party to the booking (its shipper, its consignee, a carrier of a
leg) are only its copies the record refuses or leaves awaiting placement; for any other source (an insurer, a
customs authority, a bank, a stranger, anyone before there is a booking) every copy. The MTO that owns the shipment
id in the registry and the hub's own clock have no quota: they answer for the whole journey. A new copy that would
take its source past the quota is set aside, dead-lettered with its original bytes and the reason (`OVER_QUOTA`),
and the step goes on without it.

Not counted: a party's revisions of its own events that the record counts. The state keeps an earlier copy only of
a money event (streams.merge.apply: an invoice says what a corrected charge used to be); of any other event, such as
an estimate a DCSA carrier updates many times, only the winner and every copy's fingerprint. So a party to the
booking can still fill its own shipment's state with revisions of its charges, up to where a version would no
longer fit (worker.stages sets that event aside as `too_large`).

What is set aside depends on what the state held when it came, so past the quota arrival order matters: the
merge's order-insensitivity holds for every source within its quota. A party that sent more than its quota before
the booking arrived sends what was set aside again once it is booked (`mmhub dlq --code over_quota` lists it).

Pure: no I/O.
"""

from __future__ import annotations

from typing import Sequence

from schemas.record import ShipmentRecord
from streams.authority import Authority
from streams.clock import CLOCK_SOURCE
from streams.copies import Copy
from streams.merge import ShipmentState

QUOTA_BYTES = 64 * 1024
OVER_QUOTA = "over_quota"


def over_quota(
    state: ShipmentState, record: ShipmentRecord, new_copies: Sequence[Copy], authority: Authority
) -> dict[str, str]:
    """The new copies (of `new_copies`, which `state` took in and `record` projects) that take their source past its
    quota, by fingerprint, each with the reason. In the order of `new_copies`: a copy that fits after one that did
    not still goes in."""
    plan = record.booking
    parties = {plan.mto, plan.shipper.party_id, plan.consignee.party_id, *(leg.carrier for leg in plan.legs)} if plan else set()
    if not record.rejected and not record.awaiting_placement and all(copy.event.source in parties for copy in new_copies):
        return {}  # the bulk of the steps: the parties' events, all of which the record counts
    operator = authority.operator(state.shipment_id)
    exempt = {CLOCK_SOURCE, operator.mto} if operator is not None else {CLOCK_SOURCE}
    doubtful: set[str] = set(record.awaiting_placement)
    doubtful.update(refusal.event for refusal in record.rejected)

    def counted(copy: Copy) -> bool:
        source = copy.event.source
        return source not in exempt and (source not in parties or copy.event.key in doubtful)

    suspects = {copy.event.source for copy in new_copies if counted(copy)}
    if not suspects:
        return {}
    new = {copy.fingerprint for copy in new_copies}
    used = dict.fromkeys(suspects, 0)
    for held in state.copies.values():
        for copy in state.history(held.event.key):
            source = copy.event.source
            if source in used and copy.fingerprint not in new and counted(copy):
                used[source] += len(copy.json())
    aside: dict[str, str] = {}
    for copy in new_copies:
        source = copy.event.source
        if source not in used or not counted(copy):
            continue
        size = len(copy.json())
        if used[source] + size > QUOTA_BYTES:
            aside[copy.fingerprint] = (
                f"{source} already holds {used[source]} bytes of shipment {state.shipment_id}'s state in events its "
                f"record does not count; this one ({size} bytes) would take it past {QUOTA_BYTES}, the most a source "
                "holds unless it is the MTO or a party to the booking reporting on its part"
            )
        else:
            used[source] += size
    return aside
