"""Claims derived from exceptions: one per exception, localised or not, limited under the network rule, with the
insurer's updates folded back. The booking (builders) is road, rail, sea: 4 packages, 1,200.5 kg."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Sequence

from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.base import Money, MoneyTotal
from schemas.events import BookingPayload, InsuranceEvent, RateEvent, TrackingEvent
from schemas.record import ClaimRecord, Discrepancy, PolicyRecord
from streams.claims import PRESUMED_LOSS_CODE_LIST, derive_claims

from ..builders import LEGS, SHIPMENT, Doc, at, booking_doc, claim_doc, envelope, hub_event, when

Incident = tuple[int | None, TrackingEvent]
POLICY = PolicyRecord(
    policy_number="POL-2026-0001",
    insurer="insurer.test",
    insured_value=Money(amount=Decimal("55000.00"), currency="USD"),
    conditions="ICC (A), warehouse to warehouse",
    set_by="insurer.test/pol-1",
)


def booking(doc: Doc | None = None, *, requested_delivery: float | None = None) -> BookingPayload:
    doc = doc or booking_doc()
    if requested_delivery is not None:
        doc["payload"]["requested_delivery"] = at(requested_delivery)
    payload = hub_event(doc).payload
    assert isinstance(payload, BookingPayload)
    return payload


def reported(
    status: str,
    placed: int | None,
    *,
    event_id: str,
    hours: float,
    source: str = "carrier.sea",
    location: str | None = None,
    packages: int | None = None,
    kg: str | None = None,
    code_list: str = "test-codes",
) -> Incident:
    """An actual incident report, as the merge hands it over: with the leg it was placed on."""
    doc = envelope("tracking", {"status": status, "raw_code": status.upper(), "code_list": code_list}, event_id=event_id, source=source, occurred=hours)
    if placed is not None:
        doc["payload"]["leg"] = placed
    if location is not None:
        doc["payload"]["location"] = location
    if packages is not None:
        doc["payload"]["affected_packages"] = packages
    if kg is not None:
        doc["payload"]["affected_weight_kg"] = kg
    event = hub_event(doc)
    assert isinstance(event, TrackingEvent)
    return placed, event


def discrepancy(kind: str, expected: str, found: str, leg: int | None, *, set_by: str = "carrier.rail/ho-1") -> Discrepancy:
    return Discrepancy.model_validate(
        {"kind": kind, "compared_with": "booking", "expected": Decimal(expected), "found": Decimal(found), "leg": leg,
         "location": "CNCKG", "at": when(40), "set_by": set_by}
    )


def rate(base: str, quote: str, value: str, *, as_of: float, event_id: str) -> RateEvent:
    payload = {"base": base, "quote": quote, "rate": value, "rate_source": "IMF SDR valuation", "as_of": at(as_of)}
    event = hub_event(envelope("rate", payload, event_id=event_id, source="imf.rates", occurred=as_of))
    assert isinstance(event, RateEvent)
    return event


def update(claim_id: str, status: str, *, event_id: str, hours: float, amount: str | None = None) -> InsuranceEvent:
    event = hub_event(claim_doc(claim_id, status, event_id=event_id, amount=amount, occurred=hours))
    assert isinstance(event, InsuranceEvent)
    return event


XDR_USD = rate("XDR", "USD", "1.365", as_of=0, event_id="xdr-usd-0")


def claims_for(
    incidents: Sequence[Incident] = (),
    discrepancies: Sequence[Discrepancy] = (),
    *,
    plan: BookingPayload | None = None,
    delivered: tuple[datetime, str] | None = None,
    policy: PolicyRecord | None = POLICY,
    updates: Sequence[InsuranceEvent] = (),
    rates: Sequence[RateEvent] = (XDR_USD,),
) -> tuple[list[ClaimRecord], list[str]]:
    return derive_claims(SHIPMENT, plan or booking(), incidents, discrepancies, delivered, policy, updates, rates)


def only(result: tuple[list[ClaimRecord], list[str]]) -> ClaimRecord:
    claims, _ = result
    assert len(claims) == 1, [c.claim_id for c in claims]
    return claims[0]


# --- one exception, one claim -----------------------------------------------------------------------------------------


def test_damage_on_the_sea_leg_reported_three_times_opens_one_claim_against_the_sea_carrier() -> None:
    sea_damage = [
        reported("damaged", 3, event_id="dmg-a", hours=80, location="SGSIN"),
        reported("damaged", 3, event_id="dmg-b", hours=81, packages=1),
        reported("damaged", 3, event_id="svy-1", hours=79, source="surveyor.test", location="CNQZH", packages=2),
    ]
    claim = only(claims_for(sea_damage))
    assert claim.claim_id == f"CLM-{SHIPMENT}-damage-L3"
    assert claim.evidence == ["carrier.sea/dmg-a", "carrier.sea/dmg-b", "surveyor.test/svy-1"]
    assert (claim.occurred_at, claim.location) == (when(79), "CNQZH")  # the earliest report
    assert (claim.leg, claim.localised, claim.custody_carrier, claim.liable_carrier) == (3, True, "carrier.sea", "carrier.sea")
    assert (claim.policy_number, claim.insurer, claim.status) == ("POL-2026-0001", "insurer.test", "opened")
    # the largest count reported (2 of 4 packages), its weight pro rata: 600.25 kg
    assert (claim.affected_packages, claim.affected_weight_kg) == (2, Decimal("600.250"))
    assert claim.liability is not None
    assert claim.liability.regime == "Hague-Visby Rules"
    assert claim.liability.sdr == Decimal("1333.34")  # max(2 × 666.67, 600.25 × 2)
    assert claim.liability.converted == MoneyTotal(amount=Decimal("1820.01"), currency="USD")  # × 1.365
    assert claim.liability.sdr_rate_set_by == "imf.rates/xdr-usd-0"


def test_loss_reported_without_a_leg_is_not_localised_and_limited_by_the_unlocalised_rule() -> None:
    claim = only(claims_for([reported("lost", None, event_id="lost-1", hours=60, source="mto.test")]))
    assert claim.claim_id == f"CLM-{SHIPMENT}-loss-NL"
    assert (claim.leg, claim.localised, claim.custody_carrier, claim.liable_carrier) == (None, False, None, None)
    assert (claim.affected_packages, claim.affected_weight_kg) == (4, Decimal("1200.500"))  # the whole cargo
    assert claim.liability is not None
    assert claim.liability.regime == "UNCTAD/ICC Rules"
    assert claim.liability.sdr == Decimal("2666.68")  # max(4 × 666.67, 1,200.5 × 2): the journey has a sea leg


def test_unlocalised_loss_on_a_dry_journey_is_limited_per_kg() -> None:
    claim = only(claims_for([reported("lost", None, event_id="lost-1", hours=60)], plan=booking(booking_doc(LEGS[:2]))))
    assert claim.liability is not None
    assert claim.liability.sdr == Decimal("10000.17")  # 1,200.5 × 8.33 = 10,000.165


def test_each_exception_kind_on_its_own_leg_gets_its_own_claim_and_held_is_none() -> None:
    claims, _ = claims_for(
        [
            reported("held", 2, event_id="held-1", hours=30, source="carrier.rail"),
            reported("shortage", 2, event_id="short-1", hours=31, source="carrier.rail", kg="50"),
            reported("temperature_excursion", 3, event_id="temp-1", hours=70),
            reported("damaged", 1, event_id="dmg-1", hours=5, source="carrier.road"),
            reported("damaged", 3, event_id="dmg-3", hours=75),
        ]
    )
    assert [c.claim_id for c in claims] == [
        f"CLM-{SHIPMENT}-damage-L1",
        f"CLM-{SHIPMENT}-damage-L3",
        f"CLM-{SHIPMENT}-shortage-L2",
        f"CLM-{SHIPMENT}-temperature_excursion-L3",
    ]
    shortage = claims[2]
    assert (shortage.custody_carrier, shortage.affected_packages, shortage.affected_weight_kg) == ("carrier.rail", 1, Decimal("50"))
    assert shortage.liability is not None
    assert (shortage.liability.regime, shortage.liability.sdr) == ("CIM", Decimal("850.00"))  # 50 kg × 17
    assert claims[0].liability is not None and claims[0].liability.regime == "CMR"


# --- handover discrepancies --------------------------------------------------------------------------------------------


def test_handover_discrepancy_is_localised_to_the_leg_that_handed_over() -> None:
    claim = only(claims_for(discrepancies=[discrepancy("packages", "4", "3", 1)]))
    assert claim.claim_id == f"CLM-{SHIPMENT}-handover_discrepancy-L1"
    assert (claim.leg, claim.custody_carrier, claim.liable_carrier, claim.localised) == (1, "carrier.road", "carrier.road", True)
    assert (claim.evidence, claim.occurred_at, claim.location) == (["carrier.rail/ho-1"], when(40), "CNCKG")
    assert (claim.affected_packages, claim.affected_weight_kg) == (1, Decimal("300.125"))  # one package, pro rata
    assert claim.liability is not None
    assert (claim.liability.regime, claim.liability.sdr) == ("CMR", Decimal("2500.04"))  # 300.125 × 8.33


def test_count_and_weight_short_at_one_handover_make_one_claim_with_both_shortfalls() -> None:
    claim = only(claims_for(discrepancies=[discrepancy("packages", "4", "3", 1), discrepancy("weight", "1200.5", "1100.5", 1)]))
    assert (claim.evidence, claim.affected_packages, claim.affected_weight_kg) == (["carrier.rail/ho-1"], 1, Decimal("100.0"))
    assert claim.liability is not None and claim.liability.sdr == Decimal("833.00")


def test_weight_short_alone_affects_the_packages_that_weight_amounts_to_rounded_up() -> None:
    claim = only(claims_for(discrepancies=[discrepancy("weight", "1200.5", "1100.5", 2, set_by="carrier.sea/ho-2")]))
    assert (claim.leg, claim.affected_packages, claim.affected_weight_kg) == (2, 1, Decimal("100.0"))


def test_discrepancy_at_pickup_from_the_shipper_is_not_a_claim() -> None:
    assert claims_for(discrepancies=[discrepancy("packages", "4", "3", None, set_by="carrier.road/ho-0")]) == ([], [])


# --- delay and presumed loss -----------------------------------------------------------------------------------------


def test_delivery_after_the_requested_date_opens_an_unlocalised_delay_claim_without_a_limit() -> None:
    claim = only(claims_for(plan=booking(requested_delivery=100), delivered=(when(130), "carrier.last/pod")))
    assert claim.claim_id == f"CLM-{SHIPMENT}-delay-NL"
    assert (claim.occurred_at, claim.location, claim.leg, claim.evidence) == (when(130), "SGSIN", None, ["carrier.last/pod"])
    assert claim.liability is None


def test_delivery_on_the_requested_date_opens_no_claim() -> None:
    assert claims_for(plan=booking(requested_delivery=100), delivered=(when(100), "carrier.last/pod")) == ([], [])


def test_a_delayed_report_localises_the_late_delivery() -> None:
    late = [reported("delayed", 2, event_id="dly-1", hours=50, source="carrier.rail", location="CNCKG")]
    claim = only(claims_for(late, plan=booking(requested_delivery=100), delivered=(when(130), "carrier.last/pod")))
    assert (claim.claim_id, claim.custody_carrier, claim.evidence) == (f"CLM-{SHIPMENT}-delay-L2", "carrier.rail", ["carrier.rail/dly-1"])
    assert claim.liability is None


def test_presumed_loss_clock_report_opens_an_unlocalised_presumed_loss_claim_beside_a_carriers_loss() -> None:
    claims, _ = claims_for(
        [
            reported("lost", 3, event_id="clock-90d", hours=2400, source="mto.test", code_list=PRESUMED_LOSS_CODE_LIST),
            reported("lost", 3, event_id="lost-3", hours=90),
        ]
    )
    assert [c.claim_id for c in claims] == [f"CLM-{SHIPMENT}-loss-L3", f"CLM-{SHIPMENT}-presumed_loss-NL"]
    presumed = claims[1]
    assert (presumed.leg, presumed.localised, presumed.liable_carrier, presumed.evidence) == (None, False, None, ["mto.test/clock-90d"])
    assert presumed.liability is not None and presumed.liability.regime == "UNCTAD/ICC Rules"


def test_exception_on_a_leg_the_booking_no_longer_has_is_not_localised() -> None:
    claim = only(claims_for([reported("damaged", 3, event_id="dmg-1", hours=80)], plan=booking(booking_doc(LEGS[:2]))))
    assert (claim.claim_id, claim.localised) == (f"CLM-{SHIPMENT}-damage-NL", False)


# --- currency and SDR rate -------------------------------------------------------------------------------------------


def test_limit_is_converted_into_the_policy_currency_with_the_latest_rate_as_of_the_exception() -> None:
    eur_policy = POLICY.model_copy(update={"insured_value": Money(amount=Decimal("50000"), currency="EUR")})
    rates = [
        XDR_USD,
        rate("XDR", "EUR", "1.20", as_of=0, event_id="xdr-eur-0"),
        rate("EUR", "XDR", "0.80", as_of=50, event_id="eur-xdr-50"),  # inverse quote: 1 XDR = 1.25 EUR
        rate("XDR", "EUR", "1.30", as_of=61, event_id="xdr-eur-61"),  # after the loss
    ]
    claim = only(claims_for([reported("lost", None, event_id="lost-1", hours=60)], policy=eur_policy, rates=rates))
    assert claim.liability is not None
    assert claim.liability.converted == MoneyTotal(amount=Decimal("3333.35"), currency="EUR")  # 2,666.68 × 1.25
    assert claim.liability.sdr_rate_set_by == "imf.rates/eur-xdr-50"


def test_without_a_policy_the_declared_value_currency_is_used_and_no_rate_means_sdr_only() -> None:
    claim = only(claims_for([reported("lost", None, event_id="lost-1", hours=60)], policy=None, rates=[]))
    assert (claim.policy_number, claim.insurer) == (None, None)
    assert claim.liability is not None
    assert (claim.liability.sdr, claim.liability.converted, claim.liability.sdr_rate_set_by) == (Decimal("2666.68"), None, None)


# --- insurer updates -------------------------------------------------------------------------------------------------

DAMAGE_L3 = f"CLM-{SHIPMENT}-damage-L3"


def test_insurer_updates_fold_back_the_latest_wins_and_unmatched_ones_are_returned() -> None:
    updates = [
        update(DAMAGE_L3, "settled", event_id="stl-1", hours=200, amount="1400.00"),
        update(f"CLM-{SHIPMENT}-loss-L9", "rejected", event_id="x-1", hours=150),
        update(DAMAGE_L3, "acknowledged", event_id="ack-1", hours=90),
        update(DAMAGE_L3, "assessed", event_id="asm-1", hours=120, amount="1500.00"),
    ]
    claims, unmatched = claims_for([reported("damaged", 3, event_id="dmg-1", hours=80)], updates=updates)
    assert (claims[0].status, claims[0].settled_amount, claims[0].status_set_by) == (
        "settled",
        Money(amount=Decimal("1400.00"), currency="USD"),
        "insurer.test/stl-1",
    )
    assert unmatched == ["insurer.test/x-1"]


def test_updates_at_the_same_time_are_ordered_by_key() -> None:
    updates = [
        update(DAMAGE_L3, "rejected", event_id="b-2", hours=90),
        update(DAMAGE_L3, "assessed", event_id="a-1", hours=90, amount="10"),
    ]
    claim = only(claims_for([reported("damaged", 3, event_id="dmg-1", hours=80)], updates=updates))
    assert (claim.status, claim.settled_amount, claim.status_set_by) == ("rejected", None, "insurer.test/b-2")


# --- order does not matter -------------------------------------------------------------------------------------------

INCIDENTS = [
    reported("damaged", 3, event_id="dmg-a", hours=80, location="SGSIN"),
    reported("damaged", 3, event_id="dmg-b", hours=80, packages=1),
    reported("damaged", 3, event_id="dmg-c", hours=80, source="surveyor.test", packages=2, location="CNQZH"),
    reported("lost", None, event_id="lost-1", hours=60, source="mto.test"),
    reported("delayed", 2, event_id="dly-1", hours=50, source="carrier.rail"),
    reported("lost", 1, event_id="clock", hours=2400, source="mto.test", code_list=PRESUMED_LOSS_CODE_LIST),
]
DISCREPANCIES = [discrepancy("packages", "4", "3", 1), discrepancy("weight", "1200.5", "1000", 1, set_by="carrier.rail/ho-9")]
UPDATES = [
    update(DAMAGE_L3, "acknowledged", event_id="ack-1", hours=90),
    update(DAMAGE_L3, "settled", event_id="stl-1", hours=90, amount="99"),
    update("CLM-OTHER-loss-NL", "opened", event_id="x-1", hours=90),
]
RATES = [XDR_USD, rate("USD", "XDR", "0.75", as_of=80, event_id="usd-xdr-80"), rate("XDR", "USD", "1.40", as_of=80, event_id="xdr-usd-80")]
PLAN = booking(requested_delivery=100)


@settings(max_examples=60, deadline=None)
@given(
    st.permutations(INCIDENTS + INCIDENTS[:2]),
    st.permutations(DISCREPANCIES),
    st.permutations(UPDATES),
    st.permutations(RATES),
)
def test_same_claims_for_any_order_and_repetition_of_the_inputs(
    incidents: list[Incident], discrepancies: list[Discrepancy], updates: list[InsuranceEvent], rates: list[RateEvent]
) -> None:
    expected = derive_claims(SHIPMENT, PLAN, INCIDENTS, DISCREPANCIES, (when(130), "carrier.last/pod"), POLICY, UPDATES, RATES)
    assert derive_claims(SHIPMENT, PLAN, incidents, discrepancies, (when(130), "carrier.last/pod"), POLICY, updates, rates) == expected
    assert len(expected[0]) == 5 and expected[1] == ["insurer.test/x-1"]
