"""Carrier performance data sets: what the hub learns from every leg of every journey, released without exposing
any one shipment or shipper.

A *cell* is one lane (the leg's origin and destination UN/LOCODE), mode, carrier and month (of the leg's planned
departure, else its actual one). Each leg of each record counts in exactly one cell. Per cell:

  shipments, legs, shippers (distinct; used only for the m rule, never released)
  on_time_planned   legs that arrived no later than planned, of the legs with both times
  on_time_promised  last legs delivered no later than the booking's requested delivery, of those with both
  transit_h_p50/p90 hours from actual departure to actual arrival
  dwell_h_p50       hours from the leg's actual arrival to the handover out of it
  discrepancy_rate  legs with a handover discrepancy on them
  damage_rate, loss_rate, claim_rate   legs with a claim of that kind on them (loss counts presumed loss and
                    shortage too), and with any claim
  claims_sdr        the claimed legs' liability in SDR (each leg's claims' limits computed for the affected weight)
  avg_claim_sdr     claims_sdr per claimed leg: the severity
  co2e_wtw_g_per_tkm  well-to-wheel g CO2e per tonne-km over the legs with an emissions figure (the record's
                    `emissions` part): total kg CO2e x 1000 / total tonne-km, so shippers can compare routes

Protection (the policy's `datasets` part, see DatasetPolicy):
  - k/m: a cell is released only with at least k shipments and m distinct shippers; otherwise it is left out
    entirely (not even its key is released).
  - no margins: only cells are released, never totals over lanes, months, modes or carriers, so no released figure
    is the sum of others and a suppressed cell is never the difference of released ones (the subtraction rule;
    tests/unit/streams/test_datasets.py checks it with hypothesis).
  - sticky cells: against a differencing attack (two releases that differ by one shipment), a cell whose shipment
    set differs from the set it was last released with by fewer than k shipments is released with its previous
    figures (`Published`): a release changes only once k shipments have come or gone.
  - noise (optional, differential privacy per shipment): each shipment's contribution is bounded to its first
    `max_cells_per_shipment` legs (cells(..., bound=...)); each of the cell's underlying counts (NOISY: legs,
    shipments, and each rate's numerator and denominator; with the claims' sum, F queries) gets Laplace noise of scale
    F*B/epsilon, where B is the bound (a shipment moves at most
    B cells and each count of a cell by at most 1), and the cell's claims_sdr, each claimed leg's amount capped at
    `max_claim_sdr` C, gets Laplace noise of scale F*B*C/epsilon (a shipment moves the sums by at most B*C): F+1
    queries of epsilon/(F+1) each, so one release spends epsilon in all (noise_scales). Rates and the severity
    (avg_claim_sdr, clipped to [0, C]) are then computed from the noisy counts and sum (post-processing, no further
    cost). Quantiles have no bounded sensitivity here: a noisy release leaves them out (None). The caller debits
    epsilon from the party's budget before it serves the release.
  - own figures: a carrier's own cells are released to it unaggregated by these rules (k = m = 1, no noise).

Pure: the caller reads the records (the live projection or an offline fold) and keeps the Published state.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import datetime
from decimal import Decimal
from hashlib import sha256
from typing import Iterable, Mapping, Sequence

from schemas.record import LegRecord, ShipmentRecord

LOSS_KINDS = frozenset({"loss", "presumed_loss", "shortage"})
RATES = ("on_time_planned", "on_time_promised", "discrepancy_rate", "damage_rate", "loss_rate", "claim_rate")
COUNTS = ("shipments", "legs")
FIGURES = COUNTS + RATES + (
    "transit_h_p50", "transit_h_p90", "dwell_h_p50", "claims_sdr", "avg_claim_sdr", "co2e_wtw_g_per_tkm"
)  # fmt: skip
# each rate as (numerator, denominator) of the cell's counts
RATE_PARTS = {
    "on_time_planned": ("on_time_planned_n", "on_time_planned_of"),
    "on_time_promised": ("on_time_promised_n", "on_time_promised_of"),
    "discrepancy_rate": ("discrepancies", "legs"),
    "damage_rate": ("damaged", "legs"),
    "loss_rate": ("lost", "legs"),
    "claim_rate": ("claimed", "legs"),
}
NOISY = tuple(sorted(set(COUNTS) | {part for parts in RATE_PARTS.values() for part in parts}))


@dataclass(frozen=True, order=True)
class CellKey:
    origin: str
    destination: str
    mode: int
    carrier: str
    month: str  # YYYY-MM

    @property
    def lane(self) -> str:
        return f"{self.origin}-{self.destination}"

    def label(self) -> str:
        return f"{self.lane}/{self.mode}/{self.carrier}/{self.month}"


@dataclass(frozen=True)
class DatasetPolicy:
    k: int = 10
    m: int = 3
    # the privacy budget each party starts with, and what one noisy release costs
    epsilon_budget: float = 10.0
    epsilon_per_release: float = 1.0
    # contribution bound of a noisy release: a shipment counts in at most this many cells (its first legs), and a
    # claimed leg's amount in at most this many SDR
    max_cells_per_shipment: int = 4
    max_claim_sdr: float = 10_000.0

    def __post_init__(self) -> None:
        if self.k < 1 or self.m < 1:
            raise ValueError("k and m must be at least 1")
        if self.max_cells_per_shipment < 1 or self.max_claim_sdr <= 0:
            raise ValueError("max_cells_per_shipment must be at least 1 and max_claim_sdr positive")
        if self.epsilon_budget < 0 or self.epsilon_per_release <= 0:
            raise ValueError("the privacy budget must be >= 0 and a release must cost > 0")


@dataclass
class _Tally:
    shipments: set[str] = field(default_factory=set)
    shippers: set[str] = field(default_factory=set)
    legs: int = 0
    on_time_planned: list[bool] = field(default_factory=list)
    on_time_promised: list[bool] = field(default_factory=list)
    transit_h: list[float] = field(default_factory=list)
    dwell_h: list[float] = field(default_factory=list)
    discrepancies: int = 0
    damage: int = 0
    loss: int = 0
    claimed: int = 0
    claim_sdr: list[Decimal] = field(default_factory=list)  # per claimed leg, the liability of its claims
    co2e_kg: Decimal = Decimal(0)
    tonne_km: Decimal = Decimal(0)


@dataclass(frozen=True)
class Cell:
    """One cell's figures as computed (before suppression and noise)."""

    key: CellKey
    shipments: frozenset[str]
    shippers: int
    figures: Mapping[str, float | None]
    counts: Mapping[str, int]  # NOISY: what the figures are computed from
    bound: int | None = None  # computed with each shipment's contribution bounded to this many legs
    claim_sdr: tuple[Decimal, ...] = ()  # each claimed leg's liability in SDR (a noisy release caps and sums them)

    def fingerprint(self) -> str:
        """Names the exact set of shipments behind the figures (never released; kept by Published)."""
        return sha256("\n".join(sorted(self.shipments)).encode()).hexdigest()


def _hours(a: datetime | None, b: datetime | None) -> float | None:
    if a is None or b is None:
        return None
    return (b - a).total_seconds() / 3600


def _quantile(values: Sequence[float], q: float) -> float | None:
    """The q-quantile by linear interpolation between closest ranks (numpy's default)."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low = math.floor(position)
    high = math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _share(flags: Sequence[bool]) -> float | None:
    return sum(flags) / len(flags) if flags else None


def cell_of(leg: LegRecord) -> CellKey | None:
    when = leg.departure.planned or leg.departure.actual
    if when is None:
        return None
    return CellKey(leg.origin, leg.destination, int(leg.mode), leg.carrier, when.strftime("%Y-%m"))


def cells(records: Iterable[ShipmentRecord], bound: int | None = None) -> dict[CellKey, Cell]:
    """Every cell the records' legs fall in, with its figures (nothing suppressed yet). With `bound`, only each
    shipment's first `bound` legs count (the contribution bound a noisy release needs)."""
    tallies: dict[CellKey, _Tally] = defaultdict(_Tally)
    for record in records:
        if record.booking is None or record.status in ("cancelled", "rejected"):
            continue
        shipper = record.booking.shipper.party_id
        last = len(record.legs)
        for leg in record.legs[:bound]:
            key = cell_of(leg)
            if key is None:
                continue
            tally = tallies[key]
            tally.shipments.add(record.shipment_id)
            tally.shippers.add(shipper)
            tally.legs += 1
            arrived = leg.arrival.actual
            if arrived is not None and leg.arrival.planned is not None:
                tally.on_time_planned.append(arrived <= leg.arrival.planned)
            if leg.sequence == last and arrived is not None and record.booking.requested_delivery is not None:
                tally.on_time_promised.append(arrived <= record.booking.requested_delivery)
            transit = _hours(leg.departure.actual, arrived)
            if transit is not None and transit >= 0:
                tally.transit_h.append(transit)
            for handover in record.handovers:
                if handover.from_leg == leg.sequence:
                    dwell = _hours(arrived, handover.at)
                    if dwell is not None and dwell >= 0:
                        tally.dwell_h.append(dwell)
            if any(d.leg == leg.sequence for d in record.discrepancies):
                tally.discrepancies += 1
            claims = [c for c in record.claims if c.leg == leg.sequence]
            tally.damage += any(c.kind == "damage" for c in claims)
            tally.loss += any(c.kind in LOSS_KINDS for c in claims)
            tally.claimed += bool(claims)
            if claims:
                tally.claim_sdr.append(sum((c.liability.sdr for c in claims if c.liability is not None), Decimal(0)))
            emitted = record.emissions.legs[leg.sequence - 1] if record.emissions is not None else None
            if emitted is not None and emitted.wtw_kg_co2e is not None and emitted.tonne_km:
                tally.co2e_kg += emitted.wtw_kg_co2e
                tally.tonne_km += emitted.tonne_km
    out = {}
    for key, t in tallies.items():
        figures: dict[str, float | None] = {
            "shipments": float(len(t.shipments)),
            "legs": float(t.legs),
            "on_time_planned": _share(t.on_time_planned),
            "on_time_promised": _share(t.on_time_promised),
            "transit_h_p50": _quantile(t.transit_h, 0.5),
            "transit_h_p90": _quantile(t.transit_h, 0.9),
            "dwell_h_p50": _quantile(t.dwell_h, 0.5),
            "discrepancy_rate": t.discrepancies / t.legs,
            "damage_rate": t.damage / t.legs,
            "loss_rate": t.loss / t.legs,
            "claim_rate": t.claimed / t.legs,
            "claims_sdr": float(sum(t.claim_sdr, Decimal(0))),
            "avg_claim_sdr": float(sum(t.claim_sdr) / len(t.claim_sdr)) if t.claim_sdr else None,
            "co2e_wtw_g_per_tkm": float(t.co2e_kg * 1000 / t.tonne_km) if t.tonne_km else None,
        }
        counts = {
            "shipments": len(t.shipments),
            "legs": t.legs,
            "on_time_planned_n": sum(t.on_time_planned),
            "on_time_planned_of": len(t.on_time_planned),
            "on_time_promised_n": sum(t.on_time_promised),
            "on_time_promised_of": len(t.on_time_promised),
            "discrepancies": t.discrepancies,
            "damaged": t.damage,
            "lost": t.loss,
            "claimed": t.claimed,
        }
        out[key] = Cell(key, frozenset(t.shipments), len(t.shippers), figures, counts, bound, tuple(t.claim_sdr))
    return out


@dataclass(frozen=True)
class Published:
    """What a cell was last released with: its shipment set (as a sorted tuple, to measure the next change) and
    the figures released then."""

    shipments: tuple[str, ...]
    figures: Mapping[str, float | None]


@dataclass(frozen=True)
class Released:
    key: CellKey
    figures: Mapping[str, float | None]
    stale: bool  # the figures of an earlier release: fewer than k shipments changed since


@dataclass(frozen=True)
class Release:
    cells: list[Released]
    suppressed: int  # cells left out by k/m (their keys are not released)
    epsilon: float  # privacy budget this release spent (0 without noise)
    published: dict[CellKey, Published]  # the state to keep for the next release


def release(
    computed: Mapping[CellKey, Cell],
    policy: DatasetPolicy,
    previous: Mapping[CellKey, Published] | None = None,
    *,
    noise: random.Random | None = None,
    own_carrier: str | None = None,
    k: int | None = None,
) -> Release:
    """The cells a party may see: k/m-suppressed, sticky against differencing, optionally noised.

    `previous` is what earlier releases of the same kind (noisy or not) published; the result's `published` is it
    updated. `own_carrier`: the party is that carrier and this is a release of its own cells (no k/m, no noise, no
    stickiness: they are its own figures). `k` may raise (never lower) the policy's k for one release.
    """
    published = dict(previous or {})
    if own_carrier is not None:
        mine = [
            Released(key, cell.figures, False) for key, cell in sorted(computed.items()) if key.carrier == own_carrier
        ]
        return Release(mine, 0, 0.0, published)
    if noise is not None:
        unbounded = [key for key, cell in computed.items() if cell.bound != policy.max_cells_per_shipment]
        if unbounded:
            raise ValueError(
                f"a noisy release needs cells computed with bound={policy.max_cells_per_shipment}; {len(unbounded)} are not"
            )
    threshold = max(policy.k, k or 0)
    out: list[Released] = []
    suppressed = 0
    for key, cell in sorted(computed.items()):
        if len(cell.shipments) < threshold or cell.shippers < policy.m:
            suppressed += 1
            continue
        before = published.get(key)
        if before is not None and len(set(before.shipments) ^ cell.shipments) < threshold:
            # repeats what was released before (noised then, if noisy): nothing new is learnt, nothing new is drawn
            out.append(Released(key, before.figures, True))
            continue
        figures = cell.figures if noise is None else _noised(cell, policy, noise)
        published[key] = Published(tuple(sorted(cell.shipments)), figures)
        out.append(Released(key, figures, False))
    drawn = any(not r.stale for r in out)
    spent = policy.epsilon_per_release if noise is not None and drawn else 0.0
    return Release(out, suppressed, spent, published)


def laplace(scale: float, rng: random.Random) -> float:
    """A draw from Laplace(0, scale), by inverse transform."""
    u = rng.random() - 0.5
    return -scale * math.copysign(1.0, u) * math.log(1 - 2 * abs(u))


def noise_scales(policy: DatasetPolicy) -> dict[str, float]:
    """The Laplace scale of each noisy count (`count`) and of a cell's capped claims sum (`claims_sdr`): epsilon is
    split evenly over the NOISY counts and the sum, each query's sensitivity being B (counts) or B*C (the sum)."""
    count = (len(NOISY) + 1) * policy.max_cells_per_shipment / policy.epsilon_per_release
    return {"count": count, "claims_sdr": count * policy.max_claim_sdr}


def _noised(cell: Cell, policy: DatasetPolicy, rng: random.Random) -> dict[str, float | None]:
    """The cell's figures from its counts and capped claims sum, each noised (noise_scales): counts and the sum
    rounded and kept >= 0, rates computed from the noisy counts and clipped to [0, 1], the severity from the noisy
    sum and claimed legs and clipped to [0, C]; quantiles left out."""
    scales = noise_scales(policy)
    noisy = {name: max(0.0, round(cell.counts[name] + laplace(scales["count"], rng))) for name in NOISY}
    capped = sum(min(float(amount), policy.max_claim_sdr) for amount in cell.claim_sdr)
    total = max(0.0, round(capped + laplace(scales["claims_sdr"], rng), 2))
    out: dict[str, float | None] = {name: None for name in FIGURES}
    for name in COUNTS:
        out[name] = noisy[name]
    for name, (numerator, denominator) in RATE_PARTS.items():
        out[name] = min(1.0, noisy[numerator] / noisy[denominator]) if noisy[denominator] > 0 else None
    out["claims_sdr"] = total
    out["avg_claim_sdr"] = min(policy.max_claim_sdr, total / noisy["claimed"]) if noisy["claimed"] > 0 else None
    return out


# --- the insurer's risk view -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Risk:
    """Per lane and carrier: expected claim frequency per leg and severity (SDR), each with a 95 % interval."""

    lane: str
    carrier: str
    legs: int
    claims: int
    frequency: float
    frequency_ci: tuple[float, float]
    severity_sdr: float | None
    severity_ci: tuple[float, float] | None


Z95 = 1.959964


def wilson(successes: int, trials: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a proportion."""
    if trials == 0:
        return (0.0, 1.0)
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return (max(0.0, centre - half), min(1.0, centre + half))


def risk_view(released: Sequence[Released], scales: Mapping[str, float] | None = None) -> list[Risk]:
    """Lane and carrier risk over every month, computed from a release's own cells only (post-processing: it tells
    a reader nothing the cells it was given do not, so it is as safe as they are against differencing, and as noisy
    as they are under noise). Frequency: claimed legs per leg, with a Wilson interval (widened by the noise's under
    `scales`). Severity: the cells' claims
    (claims_sdr) per claimed leg in SDR, with a normal interval whose variance is the spread of the cells' averages
    (with two or more) plus, for a noisy release (`scales`: its noise_scales), the variance the Laplace noise of the
    cells' sums and claimed-leg counts adds (delta method: (Var sum + severity^2 Var count) / claimed^2)."""
    groups: dict[tuple[str, str], list[Released]] = defaultdict(list)
    for cell in released:
        groups[(cell.key.lane, cell.key.carrier)].append(cell)
    out = []
    for (lane, carrier), members in sorted(groups.items()):
        legs = int(sum(c.figures.get("legs") or 0 for c in members))
        if legs <= 0:
            continue
        claimed = int(round(sum((c.figures.get("claim_rate") or 0) * (c.figures.get("legs") or 0) for c in members)))
        claimed = min(claimed, legs)
        severity, interval = _severity(members, claimed, scales)
        out.append(
            Risk(lane, carrier, legs, claimed, claimed / legs, _frequency(claimed, legs, len(members), scales),
                 severity, interval)
        )  # fmt: skip
    return out


def _frequency(claimed: int, legs: int, cells: int, scales: Mapping[str, float] | None) -> tuple[float, float]:
    """The Wilson interval of claimed legs per leg, each end moved out by the noise's own 95 % half-width when the
    counts are noisy (delta method over the `cells` cells' claimed and leg counts: (1 + f^2) Var count / legs^2)."""
    low, high = wilson(claimed, legs)
    if scales is None:
        return low, high
    f = claimed / legs
    half = Z95 * math.sqrt(cells * 2 * scales["count"] ** 2 * (1 + f * f)) / legs
    return max(0.0, low - half), min(1.0, high + half)


def _severity(
    members: Sequence[Released], claimed: int, scales: Mapping[str, float] | None
) -> tuple[float | None, tuple[float, float] | None]:
    sums = [c.figures["claims_sdr"] for c in members if c.figures.get("claims_sdr") is not None]
    if claimed <= 0 or not sums:
        return None, None
    severity = sum(float(v or 0) for v in sums) / claimed
    variance = 0.0
    averages = [float(c.figures["avg_claim_sdr"] or 0) for c in members if c.figures.get("avg_claim_sdr") is not None]
    if len(averages) > 1:
        mean = sum(averages) / len(averages)
        variance += sum((v - mean) ** 2 for v in averages) / (len(averages) - 1) / len(averages)
    if scales is not None:  # Var Laplace(b) = 2 b^2, per cell, for its sum and its claimed-leg count
        noise = len(sums) * 2 * scales["claims_sdr"] ** 2 + severity**2 * len(members) * 2 * scales["count"] ** 2
        variance += noise / claimed**2
    if variance <= 0:
        return severity, None
    half = Z95 * math.sqrt(variance)
    return severity, (max(0.0, severity - half), severity + half)


def claim_risks(record: ShipmentRecord, insurer: str, risks: Sequence[Risk]) -> list[dict[str, object]]:
    """Each claim `insurer` covers on the record, with its policy number, next to the risk of its leg's lane and
    carrier (None where the release behind `risks` has no cell of them)."""
    by_lane = {(r.lane, r.carrier): r for r in risks}
    out: list[dict[str, object]] = []
    for claim in record.claims:
        if claim.insurer != insurer:
            continue
        leg = next((leg for leg in record.legs if leg.sequence == claim.leg), None)
        lane = f"{leg.origin}-{leg.destination}" if leg is not None else None
        risk = by_lane.get((lane, leg.carrier)) if leg is not None and lane is not None else None
        out.append(
            {
                "claim_id": claim.claim_id,
                "kind": claim.kind,
                "status": claim.status,
                "policy_number": claim.policy_number,
                "leg": claim.leg,
                "lane": lane,
                "carrier": leg.carrier if leg is not None else None,
                "risk": asdict(risk) if risk is not None else None,
            }
        )
    return out


# --- what a release looks like to its reader -------------------------------------------------------------------


def select(computed: Mapping[CellKey, Cell], month: str | None = None, lane: str | None = None) -> dict[CellKey, Cell]:
    """The cells of one month and/or one lane (`ORIGIN-DESTINATION`): a selection of cells, never a margin."""
    return {
        key: cell
        for key, cell in computed.items()
        if (month is None or key.month == month) and (lane is None or key.lane == lane)
    }


def release_document(
    released: Release,
    policy: DatasetPolicy,
    purpose: str,
    month: str | None,
    lane: str | None,
    *,
    noisy: bool,
    k: int | None = None,
) -> dict[str, object]:
    """A release as JSON: the rule it was cut with, its cells (key and figures) and how many cells it left out."""
    return {
        "dataset": "performance",
        "purpose": purpose,
        "month": month,
        "lane": lane,
        "k": max(policy.k, k or 0) if purpose != "own_figures" else 1,
        "m": policy.m if purpose != "own_figures" else 1,
        "noise": noisy,
        "epsilon_spent": released.epsilon,
        "suppressed": released.suppressed,
        "cells": [
            {
                "lane": r.key.lane,
                "origin": r.key.origin,
                "destination": r.key.destination,
                "mode": r.key.mode,
                "carrier": r.key.carrier,
                "month": r.key.month,
                "stale": r.stale,
                "figures": dict(r.figures),
            }
            for r in released.cells
        ],
    }
