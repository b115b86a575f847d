"""The carrier performance data set: worked figures, k/m suppression, the differencing attack, the subtraction
rule, noise and its budget, a carrier's own figures and the insurer's risk view."""

from __future__ import annotations

import random
from dataclasses import asdict
from datetime import datetime, timedelta, timezone
from functools import lru_cache

import pytest
from hypothesis import given, settings, strategies as st

from bench.datasets import MTO, PACKAGES, container_number, event, performance_log
from bench.workload import AUTHORITY
from schemas.record import LegRecord, ShipmentRecord, Times
from streams.codec import Rejection, decode_event
from streams.datasets import (
    NOISY,
    Cell,
    CellKey,
    DatasetPolicy,
    cell_of,
    cells,
    claim_risks,
    laplace,
    noise_scales,
    release,
    risk_view,
    wilson,
)
from streams.merge import fold


def _fold(lines: list[bytes]) -> dict[str, ShipmentRecord]:
    events = [decode_event(line) for line in lines]
    assert not any(isinstance(e, Rejection) for e in events)
    return fold(events, AUTHORITY)  # type: ignore[arg-type]


@lru_cache(maxsize=1)
def records() -> tuple[ShipmentRecord, ...]:
    return tuple(_fold(performance_log(400, seed=3)).values())


def test_worked_figures_of_one_cell() -> None:
    """Two shipments on one lane, by hand: one leg on time, one 10 h late; transit 8 h and 18 h."""
    lines = []
    for index, late in ((0, False), (1, True)):
        shipment = f"SHP-2027-00000{index}"
        start = datetime(2026, 2, 2, 0, tzinfo=timezone.utc)
        planned_arrival = start + timedelta(hours=8)
        arrived = planned_arrival + timedelta(hours=10) if late else planned_arrival
        lines.append(event("bkg", MTO, "booking", shipment, start - timedelta(days=1), {
            "shipper": {"party_id": f"shipper.hand-{index}", "name": "Hand"},
            "consignee": {"party_id": "consignee.johor-assembly", "name": "Johor"},
            "mto": MTO,
            "cargo": {"description": "Boxes", "pieces": PACKAGES, "packages": PACKAGES, "gross_weight_kg": "1000.000",
                      "volume_m3": "10.000", "containers": [container_number(900 + index)]},
            "declared_value": {"amount": "1000.00", "currency": "USD"},
            "legs": [{"sequence": 1, "mode": 3, "carrier": "carrier.sc-road", "origin": "CNCTU",
                      "destination": "CNCKG", "planned_departure": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
                      "planned_arrival": planned_arrival.strftime("%Y-%m-%dT%H:%M:%SZ")}],
            "requested_delivery": (planned_arrival + timedelta(hours=5)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }))  # fmt: skip
        status = {"raw_code": "X", "code_list": "sc-road", "leg": 1, "container": container_number(900 + index)}
        lines.append(event("dep", "carrier.sc-road", "tracking", shipment, start, {**status, "status": "departed",
                                                                                  "location": "CNCTU"}))
        lines.append(event("arr", "carrier.sc-road", "tracking", shipment, arrived, {**status, "status": "delivered",
                                                                                    "location": "CNCKG"}))
        lines.append(event("ho", "carrier.sc-road", "handover", shipment, arrived + timedelta(hours=2 + 2 * index), {
            "from_leg": 1, "to_leg": None, "location": "CNCKG", "packages": PACKAGES - index,
            "gross_weight_kg": "1000.000"}))  # fmt: skip
    computed = cells(_fold(lines).values())
    key = CellKey("CNCTU", "CNCKG", 3, "carrier.sc-road", "2026-02")
    assert list(computed) == [key]
    figures = computed[key].figures
    assert figures["shipments"] == 2 and figures["legs"] == 2
    assert figures["on_time_planned"] == 0.5  # one of two arrived by the planned time
    assert figures["on_time_promised"] == 0.5  # requested delivery = planned + 5 h: the 10 h late one misses it
    assert figures["transit_h_p50"] == 13.0 and figures["transit_h_p90"] == pytest.approx(17.0)  # 8 h and 18 h
    assert figures["dwell_h_p50"] == 3.0  # 2 h and 4 h from arrival to handover
    assert figures["discrepancy_rate"] == 0.5  # the second handover is one package short
    # the short package opens a handover-discrepancy claim on the leg: CMR's 8.33 SDR/kg x 50 kg (1 of 20 packages
    # of 1,000 kg)
    assert figures["damage_rate"] == 0.0 and figures["claim_rate"] == 0.5
    assert figures["avg_claim_sdr"] == pytest.approx(416.5)


def test_cells_under_k_or_m_are_left_out_and_k_above_the_data_releases_nothing() -> None:
    computed = cells(records())
    policy = DatasetPolicy(k=10, m=3)
    result = release(computed, policy)
    assert result.cells and result.suppressed
    by_key = {c.key: c for c in computed.values()}
    for released in result.cells:
        cell = by_key[released.key]
        assert len(cell.shipments) >= 10 and cell.shippers >= 3
    # the rare route has two shippers only: suppressed by m whatever its size
    rare = [k for k in computed if (k.origin, k.destination) == ("CNSHA", "CNQZH")]
    assert rare and not any(r.key in rare for r in result.cells)
    assert release(computed, policy, k=len(records()) + 1).cells == []


def test_differencing_attack_two_releases_one_shipment_apart() -> None:
    """An attacker sees a release, adds (or waits for) one shipment, sees the next and subtracts. Without the
    sticky rule the difference is exactly the new shipment's leg; with it the cell does not move."""
    base = list(records())
    policy = DatasetPolicy(k=10, m=3)
    first = release(cells(base), policy)
    target = first.cells[0].key
    newcomers = list(_fold(performance_log(300, seed=4, first=10_000)).values())
    victim = next(r for r in newcomers if any(_key(leg) == target for leg in r.legs))
    after = cells([*base, victim])
    naive = release(after, policy)  # no memory of what was released: the attack works
    before_figures = {c.key: c.figures for c in first.cells}
    naive_figures = {c.key: c.figures for c in naive.cells}
    assert naive_figures[target]["shipments"] == before_figures[target]["shipments"] + 1  # type: ignore[operator]
    sticky = release(after, policy, first.published)
    sticky_figures = {c.key: c for c in sticky.cells}
    assert sticky_figures[target].figures == before_figures[target] and sticky_figures[target].stale
    # once k shipments have changed, the cell moves on
    more = [r for r in newcomers if any(_key(leg) == target for leg in r.legs)][: policy.k]
    assert len(more) == policy.k
    moved = {c.key: c for c in release(cells([*base, *more]), policy, first.published).cells}
    assert not moved[target].stale and moved[target].figures["shipments"] == before_figures[target]["shipments"] + len(more)  # type: ignore[operator]


def _key(leg: LegRecord) -> CellKey | None:
    return cell_of(leg)


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(2, 30))
def test_suppressed_cells_never_move_a_released_figure(seed: int, k: int) -> None:
    """The subtraction rule: only cells are released, never margins, so what happens on a leg in a suppressed
    cell (its times, its claims) changes no released figure, and no difference of released figures shows it."""
    policy = DatasetPolicy(k=k, m=3)
    base = list(records())
    computed = cells(base)
    first = release(computed, policy)
    shown = {c.key for c in first.cells}
    rng = random.Random(seed)
    changed = []
    for record in base:
        legs = []
        for leg in record.legs:
            key = _key(leg)
            if key is not None and key not in shown and leg.arrival.actual is not None:
                shift = timedelta(hours=rng.uniform(-50, 50))
                leg = leg.model_copy(update={"arrival": Times(planned=leg.arrival.planned, actual=leg.arrival.actual + shift)})
            legs.append(leg)
        changed.append(record.model_copy(update={"legs": legs}))
    again = release(cells(changed), policy)
    assert [(c.key, c.figures) for c in again.cells] == [(c.key, c.figures) for c in first.cells]


def test_noise_spends_epsilon_once_and_rates_come_from_noisy_counts() -> None:
    policy = DatasetPolicy(k=10, m=3, epsilon_per_release=2.0, max_cells_per_shipment=4)
    with pytest.raises(ValueError, match="bound=4"):
        release(cells(records()), policy, noise=random.Random(1))
    computed = cells(records(), bound=4)
    noisy = release(computed, policy, noise=random.Random(1))
    assert noisy.epsilon == 2.0 and noisy.cells
    exact = {c.key: c.figures for c in release(computed, policy).cells}
    assert any(c.figures["legs"] != exact[c.key]["legs"] for c in noisy.cells)
    for cell in noisy.cells:
        assert cell.figures["transit_h_p50"] is None  # no bounded sensitivity: left out
        for name in ("on_time_planned", "claim_rate"):
            value = cell.figures[name]
            assert value is None or 0.0 <= value <= 1.0
    # the same data again: every cell is stale, nothing new is drawn, nothing is spent
    repeat = release(computed, policy, noisy.published, noise=random.Random(2))
    assert repeat.epsilon == 0.0 and all(c.stale for c in repeat.cells)
    assert [c.figures for c in repeat.cells] == [c.figures for c in noisy.cells]


def test_laplace_has_the_scale_it_claims() -> None:
    rng = random.Random(7)
    draws = [laplace(3.0, rng) for _ in range(40_000)]
    mean_abs = sum(abs(d) for d in draws) / len(draws)  # E|X| = b for Laplace(0, b)
    assert abs(sum(draws) / len(draws)) < 0.1 and 2.9 < mean_abs < 3.1
    assert len(NOISY) == 10


def test_a_carrier_sees_its_own_figures_unaggregated() -> None:
    computed = cells(records())
    policy = DatasetPolicy(k=1000, m=50)
    assert release(computed, policy).cells == []
    own = release(computed, policy, own_carrier="carrier.oceanline")
    assert own.cells and {c.key.carrier for c in own.cells} == {"carrier.oceanline"}
    assert {c.key for c in own.cells} == {k for k in computed if k.carrier == "carrier.oceanline"}


def test_wilson_interval_known_values() -> None:
    low, high = wilson(5, 10)
    assert low == pytest.approx(0.2366, abs=1e-4) and high == pytest.approx(0.7634, abs=1e-4)
    assert wilson(0, 10)[0] == 0.0 and wilson(0, 10)[1] == pytest.approx(0.2775, abs=1e-4)


def test_risk_view_per_lane_and_carrier_comes_from_the_released_cells_only() -> None:
    policy = DatasetPolicy(k=10, m=3)
    first = release(cells(records()), policy)
    view = risk_view(first.cells)
    # differencing: one more shipment in a released cell does not move the view while the cell stays sticky
    newcomers = list(_fold(performance_log(300, seed=4, first=10_000)).values())
    target = first.cells[0].key
    victim = next(r for r in newcomers if any(_key(leg) == target for leg in r.legs))
    again = release(cells([*records(), victim]), policy, first.published)
    assert [r for r in risk_view(again.cells) if r.lane == target.lane and r.carrier == target.carrier] == [
        r for r in view if r.lane == target.lane and r.carrier == target.carrier
    ]
    assert view
    for risk in view:
        assert risk.frequency_ci[0] <= risk.frequency <= risk.frequency_ci[1]
        if risk.severity_sdr is not None and risk.severity_ci is not None:
            assert risk.severity_ci[0] <= risk.severity_sdr <= risk.severity_ci[1]
    assert not any(r.lane == "CNSHA-CNQZH" for r in view)  # two shippers: under m


# --- severity under noise: the contribution bound on amounts, the noise it needs, the risk view's interval -------


def _claimed(bound: int | None = None) -> dict[CellKey, Cell]:
    computed = cells(records(), bound=bound)
    assert any(cell.claim_sdr for cell in computed.values())
    return computed


def _vectors(computed: dict[CellKey, Cell], cap: float) -> dict[str, dict[CellKey, float]]:
    out = {name: {k: float(c.counts[name]) for k, c in computed.items()} for name in NOISY}
    out["claims_sdr"] = {k: sum(min(float(a), cap) for a in c.claim_sdr) for k, c in computed.items()}
    return out


@settings(max_examples=25, deadline=None)
@given(st.data(), st.integers(1, 4), st.sampled_from([500.0, 5_000.0, 10_000.0]))
def test_one_shipment_moves_each_count_by_at_most_b_and_the_capped_claims_by_at_most_b_times_c(
    data: st.DataObject, bound: int, cap: float
) -> None:
    """The sensitivity noise_scales rests on: with the contribution bound B and the cap C, adding or removing one
    shipment changes each noisy count's vector over all cells by at most B (L1) and the capped claims sums by at
    most B*C. Shipments with a claim are drawn half the time, so the sums are really exercised."""
    base = list(records())
    with_claims = [i for i, r in enumerate(base) if r.claims]
    assert with_claims
    index = data.draw(st.sampled_from(with_claims) if data.draw(st.booleans()) else st.integers(0, len(base) - 1))
    before = _vectors(cells(base, bound=bound), cap)
    after = _vectors(cells(base[:index] + base[index + 1 :], bound=bound), cap)
    for name, vector in before.items():
        moved = sum(abs(vector.get(k, 0.0) - after[name].get(k, 0.0)) for k in set(vector) | set(after[name]))
        assert moved <= bound * (cap if name == "claims_sdr" else 1) + 1e-6, (name, moved)


def test_a_noisy_release_carries_the_severity_with_the_noise_it_claims() -> None:
    """The noisy claims sum has the Laplace scale noise_scales names (E|X| = b), and the severity is the noisy sum
    per noisy claimed leg, clipped to [0, C]."""
    policy = DatasetPolicy(k=10, m=3, epsilon_per_release=1000.0, max_claim_sdr=5_000.0)
    computed = _claimed(bound=policy.max_cells_per_shipment)
    target = max((c for c in computed.values() if c.claim_sdr), key=lambda c: len(c.claim_sdr))
    capped = sum(min(float(a), policy.max_claim_sdr) for a in target.claim_sdr)
    scale = noise_scales(policy)["claims_sdr"]
    assert scale == (len(NOISY) + 1) * 4 / 1000.0 * 5_000.0 and capped > 5 * scale  # clipping at 0 plays no part
    draws = []
    for seed in range(3000):
        (cell,) = release({target.key: target}, policy, noise=random.Random(seed)).cells
        total, severity = cell.figures["claims_sdr"], cell.figures["avg_claim_sdr"]
        assert total is not None and severity is not None and 0.0 <= severity <= policy.max_claim_sdr
        legs = cell.figures["claim_rate"] * cell.figures["legs"]  # type: ignore[operator]
        assert severity == pytest.approx(min(policy.max_claim_sdr, total / round(legs)), rel=1e-6)
        draws.append(total - capped)
    assert abs(sum(draws) / len(draws)) < 0.1 * scale
    assert 0.93 * scale < sum(abs(d) for d in draws) / len(draws) < 1.07 * scale


def test_the_risk_view_keeps_severity_under_noise_with_an_interval_that_counts_the_noise() -> None:
    policy = DatasetPolicy(k=10, m=3)
    computed = _claimed(bound=policy.max_cells_per_shipment)
    noisy = release(computed, policy, noise=random.Random(5))
    with_scales = risk_view(noisy.cells, noise_scales(policy))
    without = {(r.lane, r.carrier): r for r in risk_view(noisy.cells)}
    severe = [r for r in with_scales if r.severity_sdr is not None]
    assert severe  # the risk view has severity under noise
    for risk in severe:
        assert risk.severity_ci is not None and risk.severity_ci[0] <= risk.severity_sdr <= risk.severity_ci[1]
        plain = without[(risk.lane, risk.carrier)].severity_ci
        # the noise's variance is added: wider than the spread of the cells' averages alone
        assert plain is None or risk.severity_ci[1] - risk.severity_ci[0] > plain[1] - plain[0]
    for risk in with_scales:  # and the frequency's interval counts the noise of the counts too
        low, high = without[(risk.lane, risk.carrier)].frequency_ci
        assert risk.frequency_ci[0] <= low and risk.frequency_ci[1] >= high
        assert risk.frequency_ci[1] - risk.frequency_ci[0] > high - low or (low, high) == (0.0, 1.0)
        assert risk.frequency_ci[0] <= risk.frequency <= risk.frequency_ci[1]
    # exact: the claims per claimed leg, summed over the group's cells
    exact = release(cells(records()), policy).cells
    for risk in risk_view(exact):
        members = [c for c in exact if (c.key.lane, c.key.carrier) == (risk.lane, risk.carrier)]
        total = sum(c.figures["claims_sdr"] or 0 for c in members)
        assert risk.severity_sdr == (pytest.approx(total / risk.claims) if risk.claims else None)


def test_a_claim_is_shown_next_to_its_policy_with_its_lane_and_carriers_risk() -> None:
    from pathlib import Path

    from connectors.kafka import read_jsonl

    journey = Path(__file__).resolve().parents[3] / "examples" / "journey-claim.jsonl"
    (record,) = fold((decode_event(line) for line in read_jsonl(journey)), AUTHORITY).values()  # type: ignore[misc]
    view = risk_view(release(cells(records()), DatasetPolicy(k=10, m=3)).cells)
    lane = next(r for r in view if (r.lane, r.carrier) == ("CNQZH-SGSIN", "carrier.oceanline"))
    (claim,) = claim_risks(record, "insurer.picc", view)
    assert (claim["kind"], claim["leg"], claim["lane"], claim["carrier"]) == (
        "damage", 3, "CNQZH-SGSIN", "carrier.oceanline"
    )
    assert claim["policy_number"] == "PICC-CG-2026-55821" and claim["risk"] == asdict(lane)
    assert claim_risks(record, "insurer.other", view) == []  # not its claim
    (uncovered,) = claim_risks(record, "insurer.picc", [r for r in view if r is not lane])
    assert uncovered["risk"] is None  # no released cell of that lane and carrier: no figure, not a guess
