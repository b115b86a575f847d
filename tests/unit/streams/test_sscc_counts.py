"""SSCCs are package counts (issue 14): a handover or report that lists its packages by SSCC (GS1 check digit checked)
counts them, and an EPCIS delivery in parts (several `receiving` events, each with some of the SSCCs) is compared with
the whole once, on the distinct SSCCs of all its parts, whatever order the parts arrive in.

On eeb4899 a handover had no SSCCs, and each partial delivery was compared with the whole on its own: two halves of a
four-pallet delivery were two shortages of two."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from schemas.events import HandoverPayload
from schemas.identifiers import gs1_check_digit

from ..builders import hub_event
from .test_custody import BOOKED_KG, handover_doc
from .test_epcis_receiving import PALLETS, SITE, SITE_EPC, booking, epcis, place, record


def sscc(serial: int) -> str:
    body = f"0690123400{serial:07d}"
    return body + gs1_check_digit(body)


SSCCS = [sscc(n) for n in range(6)]


def test_a_handover_listing_ssccs_counts_them_once_each() -> None:
    payload = HandoverPayload.model_validate(
        {"from_leg": 1, "to_leg": 2, "location": "CNCKG", "gross_weight_kg": "1", "ssccs": [SSCCS[1], SSCCS[0], SSCCS[1]]}
    )
    assert (payload.packages, payload.ssccs) == (2, [SSCCS[0], SSCCS[1]])


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"ssccs": [SSCCS[0][:-1] + str((int(SSCCS[0][-1]) + 1) % 10)]}, "fails its GS1 check digit"),
        ({"ssccs": ["12345"]}, "SSCC"),
        ({"ssccs": SSCCS[:2], "packages": 3}, "packages 3 disagrees with the 2 distinct SSCCs listed"),
    ],
)
def test_a_handover_with_a_wrong_sscc_or_count_is_refused(fields: dict[str, object], reason: str) -> None:
    with pytest.raises(ValidationError, match=reason):
        HandoverPayload.model_validate({"from_leg": 1, "to_leg": 2, "location": "CNCKG", "gross_weight_kg": "1", **fields})


def test_the_ssccs_of_a_handover_are_its_count_in_the_record_and_its_discrepancies() -> None:
    listed = handover_doc(1, 2, occurred=30)
    del listed["payload"]["packages"]
    listed["payload"]["ssccs"] = SSCCS[:3]  # the booking has 4 packages
    shipment = record(booking(), listed)
    [handover] = shipment.handovers
    assert (handover.packages, handover.ssccs) == (3, SSCCS[:3])
    [found] = shipment.discrepancies
    assert (found.kind, found.expected, found.found, found.set_by) == ("packages", 4, 3, hub_event(listed).key)


def test_a_delivery_in_two_parts_is_compared_once_as_a_whole() -> None:
    first = epcis(3, 70, bizLocation=place(SITE_EPC), epcList=PALLETS[:2])
    second = epcis(3, 71, bizLocation=place(SITE_EPC), epcList=PALLETS[2:4])
    assert record(booking(sites=[SITE]), first, second).discrepancies == []
    # the first part alone: the shortfall so far, at that part
    [so_far] = record(booking(sites=[SITE]), first).discrepancies
    assert (so_far.expected, so_far.found, so_far.set_by) == (4, 2, first.key)
    # a part repeating a pallet already delivered adds nothing; one more than the booking's is still one too many
    again = epcis(3, 72, bizLocation=place(SITE_EPC), epcList=PALLETS[1:3])
    assert record(booking(sites=[SITE]), first, second, again).discrepancies == []
    extra = epcis(3, 73, bizLocation=place(SITE_EPC), epcList=PALLETS[4:5])
    [over] = record(booking(sites=[SITE]), first, second, extra).discrepancies
    assert (over.expected, over.found, over.set_by) == (4, 5, extra.key)


def test_a_handover_into_the_last_leg_is_what_the_parts_are_compared_with() -> None:
    into_sea = handover_doc(2, 3, occurred=50, packages=3, weight=BOOKED_KG)
    first = epcis(3, 70, bizLocation=place(SITE_EPC), epcList=PALLETS[:1])
    second = epcis(3, 71, bizLocation=place(SITE_EPC), epcList=PALLETS[1:3])
    shipment = record(booking(sites=[SITE]), into_sea, first, second)
    assert [(d.set_by, d.compared_with) for d in shipment.discrepancies] == [(hub_event(into_sea).key, "booking")]


PARTS = st.lists(st.lists(st.sampled_from(range(5)), min_size=1, max_size=5), min_size=1, max_size=5)


@settings(max_examples=60, deadline=None)
@given(parts=PARTS, data=st.data())
def test_parts_in_any_order_and_repeated_give_the_same_comparison(parts: list[list[int]], data: st.DataObject) -> None:
    events = [
        epcis(3, 60 + index, bizLocation=place(SITE_EPC), epcList=[PALLETS[n] for n in part])
        for index, part in enumerate(parts)
    ]
    shuffled = data.draw(st.permutations(events + data.draw(st.lists(st.sampled_from(events), max_size=3))))
    shipment = record(booking(sites=[SITE]), *shuffled)
    delivered = {n for part in parts for n in part}
    latest = max(events, key=lambda e: (e.occurred_at, e.key))
    expected = [] if len(delivered) == 4 else [(4, len(delivered), latest.key)]
    assert [(d.expected, d.found, d.set_by) for d in shipment.discrepancies] == expected
    assert shipment == record(booking(sites=[SITE]), *events)
