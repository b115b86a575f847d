"""One emissions statement per journey (ISO 14083:2023, GLEC Framework): the hub holds every leg, so it can.

Per leg:
  distance   the carrier's reported distance (an `emissions` event of that leg's carrier), else the booked one
             (PlannedLeg.distance_km), else the great-circle distance between the leg's nodes times the mode's
             detour factor (plus the mode's fixed addition: air). A node without coordinates and no reported or
             booked distance: no figure, and `missing` says why (never a guess).
  tonne-km   distance x the booking's gross cargo weight.
  intensity  the carrier's primary data (its own intensity, or the fuel it burnt for this consignment times the
             fuel's emission factor), else the GLEC default for the mode and vehicle type (the reported one, the
             booked one, else the mode's default vehicle). Well-to-wheel and tank-to-wheel.
Per journey: the totals over the legs with a figure, each such leg's share of the well-to-wheel total, the data
quality per leg, and whether every leg has a figure.

Authority: only the carrier of a leg reports primary data for it; anyone else's `emissions` event is refused
(Rejected, not_entitled) and changes nothing. The latest report (event time, then key) sets each field.

Reference data (package data in streams/reference/, see its README.md): the default factors
(`glec_factors.json`, versioned; every statement names the version and whether it was verified) and node
coordinates (`unlocode-subset.csv`, rows of the UN/LOCODE code list; MMHUB_UNLOCODE_FILE may name a full copy of
the same file (hubconf.settings.unlocode_file), read once at import like the liability table). Pure otherwise: no I/O after import.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from decimal import Decimal
from importlib.resources import files
from typing import Iterable, Literal, Mapping

from pydantic import BaseModel, ConfigDict

from hubconf.settings import unlocode_file

from schemas.events import BookingPayload, EmissionsEvent, EmissionsPayload, FuelUse, HubEvent, PlannedLeg
from schemas.record import DistanceBasis, EmissionsRecord, LegEmissions, Rejected

METHODOLOGY = "ISO 14083:2023 / GLEC Framework v3.0"
EARTH_RADIUS_KM = 6371.0088  # the mean Earth radius (IUGG)
KM = Decimal("0.1")
KG = Decimal("0.001")
RATIO = Decimal("0.0001")


class _Data(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class VehicleFactor(_Data):
    wtw_g_per_tkm: Decimal
    ttw_g_per_tkm: Decimal
    table: str


class ModeFactors(_Data):
    name: str
    default_vehicle: str
    detour_factor: Decimal
    detour_plus_km: Decimal
    vehicles: dict[str, VehicleFactor]


class FuelFactor(_Data):
    unit: Literal["l", "kg"]
    wtw_kg_co2e: Decimal
    ttw_kg_co2e: Decimal
    table: str


class FactorTable(_Data):
    version: str
    framework: str
    verified_against_source: bool
    about: str
    modes: dict[int, ModeFactors]
    fuels: dict[str, FuelFactor]


@dataclass(frozen=True)
class Location:
    latitude: float
    longitude: float


@dataclass(frozen=True)
class Locations:
    source: str
    points: Mapping[str, Location]


def load_locations(text: str, source: str) -> Locations:
    """UN/LOCODE rows (the code-list-improved.csv layout: Country, Location, CoordinatesDecimal "lat,lon") with
    coordinates; rows marked removed ('X' in Change) and rows without coordinates are left out."""
    points: dict[str, Location] = {}
    for row in csv.DictReader(io.StringIO(text)):
        decimal = (row.get("CoordinatesDecimal") or "").strip()
        if row.get("Change", "").strip() == "X" or not decimal:
            continue
        latitude, longitude = (float(part) for part in decimal.split(","))
        points[f"{row['Country']}{row['Location']}"] = Location(latitude, longitude)
    return Locations(source, points)


def _reference(name: str) -> str:
    return files("streams").joinpath(f"reference/{name}").read_text(encoding="utf-8")


FACTORS = FactorTable.model_validate_json(_reference("glec_factors.json"))
_FULL_COPY = unlocode_file()
LOCATIONS = (
    load_locations(_FULL_COPY.read_text(encoding="utf-8"), f"UN/LOCODE code list ({_FULL_COPY.name})")
    if _FULL_COPY is not None
    else load_locations(_reference("unlocode-subset.csv"), "UN/LOCODE subset of cristan/improved-un-locodes (PDDL)")
)


def great_circle_km(a: Location, b: Location) -> float:
    """The haversine distance on a sphere of the mean Earth radius."""
    phi1, phi2 = math.radians(a.latitude), math.radians(b.latitude)
    d_phi, d_lambda = phi2 - phi1, math.radians(b.longitude - a.longitude)
    h = math.sin(d_phi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(d_lambda / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(math.sqrt(h))


@dataclass(frozen=True)
class Reported:
    """What a leg's carrier reported, field by field from its latest report that sets it."""

    distance_km: tuple[Decimal, str] | None = None
    vehicle_type: tuple[str, str] | None = None
    method: tuple[EmissionsPayload, str] | None = None  # an intensity or fuel


def _reports(plan: BookingPayload, live: Iterable[HubEvent]) -> tuple[dict[int, Reported], list[Rejected]]:
    reports: dict[int, Reported] = {}
    refused: list[Rejected] = []
    for event in sorted((e for e in live if isinstance(e, EmissionsEvent)), key=lambda e: (e.occurred_at, e.key)):
        payload = event.payload
        if payload.leg > len(plan.legs):
            refused.append(Rejected(event=event.key, reason=f"the booking has no leg {payload.leg}"))
            continue
        carrier = plan.legs[payload.leg - 1].carrier
        if event.source != carrier:
            reason = f"only {carrier}, the carrier of leg {payload.leg}, reports its emissions data, not {event.source}"
            refused.append(Rejected(event=event.key, reason=reason, kind="not_entitled"))
            continue
        held = reports.get(payload.leg, Reported())
        reports[payload.leg] = Reported(
            (payload.distance_km, event.key) if payload.distance_km is not None else held.distance_km,
            (payload.vehicle_type, event.key) if payload.vehicle_type is not None else held.vehicle_type,
            (payload, event.key)
            if payload.fuel is not None or payload.intensity_wtw_g_per_tkm is not None
            else held.method,
        )
    return reports, refused


def _distance(
    planned: PlannedLeg, reported: Reported, mode: ModeFactors | None, locations: Locations
) -> tuple[Decimal, DistanceBasis] | str:
    """The leg's distance and its basis, or why there is none."""
    if reported.distance_km is not None:
        return reported.distance_km[0], "carrier_reported"
    if planned.distance_km is not None:
        return planned.distance_km, "booked"
    unknown = [node for node in (planned.origin, planned.destination) if node not in locations.points]
    if unknown:
        return f"no coordinates for {', '.join(unknown)} in {locations.source}, and no reported or booked distance"
    if mode is None:
        return f"no detour factor for mode {int(planned.mode)}, and no reported or booked distance"
    crow = great_circle_km(locations.points[planned.origin], locations.points[planned.destination])
    return (Decimal(repr(crow)) * mode.detour_factor + mode.detour_plus_km).quantize(KM), "great_circle"


def _fuel(fuel: FuelUse, factors: FactorTable) -> tuple[Decimal, Decimal] | str:
    factor = factors.fuels.get(fuel.fuel)
    if factor is None:
        return f"fuel {fuel.fuel!r} is not in the factor table (known: {', '.join(sorted(factors.fuels))})"
    return fuel.quantity * factor.wtw_kg_co2e, fuel.quantity * factor.ttw_kg_co2e


def leg_emissions(
    planned: PlannedLeg,
    cargo_tonnes: Decimal,
    reported: Reported,
    factors: FactorTable = FACTORS,
    locations: Locations = LOCATIONS,
) -> LegEmissions:
    mode = factors.modes.get(int(planned.mode))
    distance = _distance(planned, reported, mode, locations)
    tonne_km = distance[0] * cargo_tonnes if isinstance(distance, tuple) else None
    vehicle = (reported.vehicle_type[0] if reported.vehicle_type else None) or planned.vehicle_type
    set_by = sorted({field[1] for field in (reported.distance_km, reported.vehicle_type, reported.method) if field})
    blank = LegEmissions(
        leg=planned.sequence, mode=planned.mode, carrier=planned.carrier, origin=planned.origin,
        destination=planned.destination, cargo_tonnes=cargo_tonnes, set_by=set_by, vehicle_type=vehicle,
        distance_km=distance[0] if isinstance(distance, tuple) else None,
        distance_basis=distance[1] if isinstance(distance, tuple) else None,
        tonne_km=tonne_km.quantize(KG) if tonne_km is not None else None,
        intensity_wtw_g_per_tkm=None, intensity_ttw_g_per_tkm=None, wtw_kg_co2e=None, ttw_kg_co2e=None,
        share=None, data_quality=None, factor_source=None, missing=None,
    )  # fmt: skip
    figures = _figures(planned, tonne_km, distance, reported, vehicle, mode, factors)
    if isinstance(figures, str):
        return blank.model_copy(update={"missing": figures})
    wtw_kg, ttw_kg, wtw_i, ttw_i, source, quality, used_vehicle = figures
    return blank.model_copy(
        update={
            "vehicle_type": used_vehicle,
            "intensity_wtw_g_per_tkm": wtw_i.quantize(KG) if wtw_i is not None else None,
            "intensity_ttw_g_per_tkm": ttw_i.quantize(KG) if ttw_i is not None else None,
            "wtw_kg_co2e": wtw_kg.quantize(KG),
            "ttw_kg_co2e": ttw_kg.quantize(KG),
            "data_quality": quality,
            "factor_source": source,
        }
    )


_Figures = tuple[Decimal, Decimal, Decimal | None, Decimal | None, str, Literal["primary", "default"], str | None]


def _figures(
    planned: PlannedLeg,
    tonne_km: Decimal | None,
    distance: tuple[Decimal, DistanceBasis] | str,
    reported: Reported,
    vehicle: str | None,
    mode: ModeFactors | None,
    factors: FactorTable,
) -> _Figures | str:
    """(WTW kg, TTW kg, WTW and TTW g per tonne-km, source, data quality, vehicle type), or why there are none."""
    if reported.method is not None:
        payload = reported.method[0]
        if payload.fuel is not None:
            burnt = _fuel(payload.fuel, factors)
            if isinstance(burnt, str):
                return burnt
            # no intensity over a tonne-km the statement shows as 0.000: the carrier names the distance (down to
            # 1E-40 km), and its fuel over so little would be an intensity past the fold's decimal precision, whose
            # quantize raised and failed the shipment's whole fold
            wtw_i, ttw_i = (kg * 1000 / tonne_km if tonne_km is not None and tonne_km.quantize(KG) else None for kg in burnt)
            source = (
                f"carrier's fuel: {payload.fuel.quantity} {payload.fuel.fuel}; {factors.fuels[payload.fuel.fuel].table}"
            )
            return burnt[0], burnt[1], wtw_i, ttw_i, source, "primary", vehicle
        if tonne_km is None:
            return str(distance)
        wtw, ttw = payload.intensity_wtw_g_per_tkm, payload.intensity_ttw_g_per_tkm
        assert wtw is not None and ttw is not None  # EmissionsPayload checks both or neither
        return tonne_km * wtw / 1000, tonne_km * ttw / 1000, wtw, ttw, "carrier's own intensity", "primary", vehicle
    if mode is None:
        return f"the factor table ({factors.version}) has no GLEC default for mode {int(planned.mode)}"
    chosen = vehicle or mode.default_vehicle
    factor = mode.vehicles.get(chosen)
    if factor is None:
        return f"vehicle type {chosen!r} is not among the {mode.name} defaults ({', '.join(sorted(mode.vehicles))})"
    if tonne_km is None:
        return str(distance)
    source = f"{factor.table} ({factors.version})"
    wtw_kg, ttw_kg = tonne_km * factor.wtw_g_per_tkm / 1000, tonne_km * factor.ttw_g_per_tkm / 1000
    return wtw_kg, ttw_kg, factor.wtw_g_per_tkm, factor.ttw_g_per_tkm, source, "default", chosen


def emissions_refused(plan: BookingPayload, live: Iterable[HubEvent]) -> list[Rejected]:
    """The emissions reports `journey_emissions` refuses, without the statement."""
    return _reports(plan, live)[1]


def journey_emissions(
    plan: BookingPayload, live: Iterable[HubEvent], factors: FactorTable = FACTORS, locations: Locations = LOCATIONS
) -> tuple[EmissionsRecord, list[Rejected]]:
    """The journey's statement from the booking and the live events, and the emissions reports it refuses."""
    reports, refused = _reports(plan, live)
    tonnes = plan.cargo.gross_weight_kg / 1000
    legs = [leg_emissions(p, tonnes, reports.get(p.sequence, Reported()), factors, locations) for p in plan.legs]
    wtw = sum((leg.wtw_kg_co2e for leg in legs if leg.wtw_kg_co2e is not None), Decimal(0))
    ttw = sum((leg.ttw_kg_co2e for leg in legs if leg.ttw_kg_co2e is not None), Decimal(0))
    shared = [
        leg.model_copy(update={"share": (leg.wtw_kg_co2e / wtw).quantize(RATIO)})
        if leg.wtw_kg_co2e is not None and wtw
        else leg
        for leg in legs
    ]
    record = EmissionsRecord(
        methodology=METHODOLOGY,
        factors_version=factors.version,
        factors_verified=factors.verified_against_source,
        locations_source=locations.source,
        legs=shared,
        wtw_kg_co2e=wtw.quantize(KG),
        ttw_kg_co2e=ttw.quantize(KG),
        complete=all(leg.wtw_kg_co2e is not None for leg in legs),
    )
    return record, refused
