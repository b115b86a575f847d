"""Liability limits under the network rule: each regime with worked figures, the unlocalised rule, conversion."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from decimal import Decimal, localcontext
from importlib.resources import files
from typing import Any

import pytest
from pydantic import ValidationError

from schemas.events import BookingPayload
from schemas.identifiers import TransportMode
from schemas.record import LiabilityLimit
from streams.liability import TABLE, TABLE_RESOURCE, liability_limit, load_table

from ..builders import booking_doc, hub_event

NOW = datetime(2026, 3, 1, tzinfo=timezone.utc)
ROAD = (3, "carrier.road", "CNCTU", "CNCKG")
RAIL = (2, "carrier.rail", "CNCKG", "CNQZH")
SEA = (1, "carrier.sea", "CNQZH", "SGSIN")
AIR = (4, "carrier.air", "CNQZH", "SGSIN")
BARGE = (8, "carrier.barge", "CNCKG", "CNSHA")
POST = (5, "carrier.post", "CNCKG", "CNSHA")


def booking(*legs: tuple[int, str, str, str]) -> BookingPayload:
    payload = hub_event(booking_doc(list(legs))).payload
    assert isinstance(payload, BookingPayload)
    return payload


def limit(
    plan: BookingPayload,
    leg: int | None,
    packages: int,
    kg: str,
    *,
    at: datetime = NOW,
    rate: tuple[Decimal, str] | None = None,
    currency: str = "USD",
) -> LiabilityLimit:
    return liability_limit(plan, leg, packages, Decimal(kg), at, rate, currency)


# --- localised: the leg's own regime --------------------------------------------------------------------------------


def test_road_leg_is_limited_by_cmr_per_kg() -> None:
    result = limit(booking(ROAD, RAIL, SEA), 1, 10, "1000")
    assert (result.regime, result.sdr) == ("CMR", Decimal("8330.00"))
    assert result.basis == "localised to leg 1 (road): 1000 kg × 8.33 SDR = 8330.00 SDR"


def test_rail_leg_is_limited_by_cim_per_kg() -> None:
    result = limit(booking(ROAD, RAIL, SEA), 2, 10, "1000")
    assert (result.regime, result.sdr) == ("CIM", Decimal("17000.00"))
    assert result.basis.endswith("1000 kg × 17 SDR = 17000.00 SDR")


@pytest.mark.parametrize(
    ("at", "sdr"),
    [
        (datetime(2025, 1, 15, tzinfo=timezone.utc), Decimal("26000.00")),
        (datetime(2024, 12, 28, tzinfo=timezone.utc), Decimal("26000.00")),  # the revision's first day
        (datetime(2024, 12, 28, tzinfo=timezone.utc) - timedelta(microseconds=1), Decimal("22000.00")),
        (datetime(2024, 6, 1, tzinfo=timezone.utc), Decimal("22000.00")),
        # 01:00 in Shanghai on the 28th is still the 27th in UTC, where the table's dates are read
        (datetime(2024, 12, 28, 1, tzinfo=timezone(timedelta(hours=8))), Decimal("22000.00")),
        (datetime(2015, 6, 1, tzinfo=timezone.utc), Decimal("19000.00")),  # ICAO's 2009 revision
    ],
)
def test_air_leg_is_limited_by_montreal_at_the_date_of_loss(at: datetime, sdr: Decimal) -> None:
    result = limit(booking(ROAD, RAIL, AIR), 3, 10, "1000", at=at)
    assert (result.regime, result.sdr) == ("Montreal Convention", sdr)


def test_sea_leg_hague_visby_package_limit_when_higher() -> None:
    result = limit(booking(ROAD, RAIL, SEA), 3, 10, "1000")
    assert (result.regime, result.sdr) == ("Hague-Visby Rules", Decimal("6666.70"))
    assert result.basis == "localised to leg 3 (maritime): max(10 packages × 666.67 SDR, 1000 kg × 2 SDR) = 6666.70 SDR"


def test_sea_leg_hague_visby_weight_limit_when_higher() -> None:
    result = limit(booking(ROAD, RAIL, SEA), 3, 1, "20000")
    assert result.sdr == Decimal("40000.00")  # max(666.67, 40,000)
    assert result.basis.endswith("max(1 package × 666.67 SDR, 20000 kg × 2 SDR) = 40000.00 SDR")


@pytest.mark.parametrize(("packages", "kg", "sdr"), [(3, "200", "2000.01"), (2, "1000", "2000.00")])
def test_inland_water_leg_is_limited_by_cmni(packages: int, kg: str, sdr: str) -> None:
    result = limit(booking(BARGE), 1, packages, kg)
    assert (result.regime, result.sdr) == ("CMNI", Decimal(sdr))


# --- not localised: the MTO's own terms (UNCTAD/ICC Rules) ----------------------------------------------------------


def test_unlocalised_loss_on_a_journey_with_a_sea_leg_is_the_issue_example() -> None:
    result = limit(booking(ROAD, RAIL, SEA), None, 10, "1000")
    assert result.sdr == Decimal("6666.70")
    assert result.regime == "UNCTAD/ICC Rules"
    assert result.basis == (
        "not localised; the journey includes sea or inland water: "
        "max(10 packages × 666.67 SDR, 1000 kg × 2 SDR) = 6666.70 SDR"
    )


def test_unlocalised_loss_with_only_an_inland_water_leg_uses_the_package_or_kg_limit() -> None:
    assert limit(booking(ROAD, BARGE), None, 10, "1000").sdr == Decimal("6666.70")


def test_unlocalised_loss_on_a_dry_journey_is_limited_per_kg() -> None:
    result = limit(booking(ROAD, RAIL, AIR), None, 10, "1000")
    assert result.sdr == Decimal("8330.00")
    assert result.basis == "not localised; the journey has no sea or inland water leg: 1000 kg × 8.33 SDR = 8330.00 SDR"


def test_leg_of_a_mode_outside_the_table_falls_back_to_the_unlocalised_rule_and_says_so() -> None:
    result = limit(booking(ROAD, POST), 2, 10, "1000")
    assert (result.regime, result.sdr) == ("UNCTAD/ICC Rules (no carriage by sea or inland waterway)", Decimal("8330.00"))
    assert result.basis.startswith("leg 2 (mail) has no regime in the table, so the unlocalised rule applies")


def test_sdr_is_rounded_half_up_to_cents() -> None:
    assert limit(booking(ROAD), 1, 4, "1200.5").sdr == Decimal("10000.17")  # 10,000.165


def test_result_does_not_depend_on_the_callers_decimal_context() -> None:
    with localcontext() as context:
        context.prec = 3
        assert limit(booking(ROAD), 1, 4, "1200.5").sdr == Decimal("10000.17")


# --- conversion -------------------------------------------------------------------------------------------------------


def test_limit_is_converted_with_the_given_sdr_rate() -> None:
    result = limit(booking(ROAD, RAIL, SEA), None, 10, "1000", rate=(Decimal("1.365"), "ecb/xdr-usd-1"))
    assert result.converted is not None
    assert (result.converted.amount, result.converted.currency) == (Decimal("9100.05"), "USD")  # 6,666.70 × 1.365
    assert result.sdr_rate_set_by == "ecb/xdr-usd-1"
    assert result.basis.endswith("= 6666.70 SDR; at 1 SDR = 1.365 USD: 9100.05 USD")


def test_without_a_rate_the_limit_stays_in_sdr() -> None:
    result = limit(booking(ROAD), 1, 1, "10")
    assert (result.converted, result.sdr_rate_set_by) == (None, None)


def test_limit_asked_in_sdr_needs_no_rate() -> None:
    result = limit(booking(ROAD), 1, 1, "10", currency="XDR")
    assert result.converted is not None
    assert (result.converted.amount, result.converted.currency, result.sdr_rate_set_by) == (Decimal("83.30"), "XDR", None)


# --- refusals ---------------------------------------------------------------------------------------------------------


def test_a_leg_the_booking_does_not_have_is_refused() -> None:
    with pytest.raises(ValueError, match="no leg 4"):
        limit(booking(ROAD, RAIL, SEA), 4, 1, "10")


def test_a_time_without_timezone_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone"):
        limit(booking(ROAD), 1, 1, "10", at=datetime(2026, 3, 1))


# --- the table --------------------------------------------------------------------------------------------------------


def table_doc() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(files("streams").joinpath(TABLE_RESOURCE).read_text(encoding="utf-8"))
    return loaded


def test_the_table_loads_with_a_version_and_every_limit_as_a_decimal_string() -> None:
    assert TABLE.version == table_doc()["version"] and TABLE.version
    for regime in table_doc()["regimes"]:
        for period in regime["limits"]:
            assert isinstance(period["per_kg_sdr"], str)
            assert period["per_package_sdr"] is None or isinstance(period["per_package_sdr"], str)


def test_every_mode_has_a_regime_or_falls_back_explicitly() -> None:
    covered = {mode for regime in TABLE.regimes for mode in regime.modes}
    assert covered == {TransportMode.MARITIME, TransportMode.RAIL, TransportMode.ROAD, TransportMode.AIR, TransportMode.INLAND_WATER}


def _float_limit(doc: dict[str, Any]) -> None:
    doc["regimes"][0]["limits"][0]["per_kg_sdr"] = 8.33


def _gap_between_periods(doc: dict[str, Any]) -> None:
    doc["regimes"][2]["limits"][1]["valid_from"] = "2010-01-01"


def _empty_period(doc: dict[str, Any]) -> None:
    doc["regimes"][2]["limits"][1]["valid_until"] = "2009-12-30"
    doc["regimes"][2]["limits"][2]["valid_from"] = "2009-12-30"


def _mode_in_two_regimes(doc: dict[str, Any]) -> None:
    doc["regimes"][1]["modes"] = [2, 3]


def _unknown_unlocalised_regime(doc: dict[str, Any]) -> None:
    doc["unlocalised"]["with_wet_leg"] = "fbl_2031"


def _no_version(doc: dict[str, Any]) -> None:
    del doc["version"]


@pytest.mark.parametrize("breakage", [_float_limit, _gap_between_periods, _empty_period, _mode_in_two_regimes, _unknown_unlocalised_regime, _no_version])
def test_a_broken_table_is_refused(breakage: Any) -> None:
    doc = table_doc()
    load_table(json.dumps(doc).encode())  # intact, it loads
    breakage(doc)
    with pytest.raises(ValidationError):
        load_table(json.dumps(doc).encode())
