"""The emissions statement: worked figures per mode, the order of distance sources, primary data and who may give
it, and a leg without coordinates that gets no figure and says why."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from schemas.events import EmissionsPayload
from streams.emissions import FACTORS, LOCATIONS, great_circle_km, load_locations

from ..builders import MTO, booking_doc, envelope, record_of

Doc = dict[str, Any]
TONNES = Decimal("1.2005")  # the builders' cargo: 1200.500 kg


def _booked(legs: list[tuple[int, str, str, str, str | None]]) -> Doc:
    """A booking whose legs carry a booked distance (km) where one is given."""
    doc = booking_doc([leg[:4] for leg in legs])
    for planned, (_, _, _, _, km) in zip(doc["payload"]["legs"], legs):
        if km is not None:
            planned["distance_km"] = km
    return doc


def _report(leg: int, source: str, event_id: str = "em-1", occurred: float = 30, **payload: Any) -> Doc:
    return envelope("emissions", {"leg": leg, **payload}, event_id=event_id, source=source, occurred=occurred)


# mode, UN/LOCODE pair, booked km, and the worked figures: tonne-km = km x 1.2005 t; kg = tonne-km x g/tkm / 1000
WORKED = [
    # road, articulated truck 40 t (default): 100 km x 1.2005 t = 120.05 tkm; x 87 g = 10.444 kg WTW, x 70 g = 8.404 TTW
    (3, "CNCTU", "CNCKG", "100", "120.050", "10.444", "8.404"),
    # rail, average traction (default): 1000 km -> 1200.5 tkm; x 18 g = 21.609 kg, x 9 g = 10.805 (10.8045, half-even)
    (2, "CNCKG", "CNQZH", "1000", "1200.500", "21.609", "10.804"),
    # sea, intra-Asia container: 2000 km -> 2401 tkm; x 14.5 g = 34.8145 -> 34.814 (half-even), x 13 g = 31.213
    (1, "CNQZH", "SGSIN", "2000", "2401.000", "34.814", "31.213"),
    # air, long-haul freighter: 1000 km -> 1200.5 tkm; x 800 g = 960.4 kg, x 660 g = 792.33
    (4, "SGSIN", "CNSHA", "1000", "1200.500", "960.400", "792.330"),
    # inland waterway, container barge: 100 km -> 120.05 tkm; x 31 g = 3.72155 -> 3.722, x 26 g = 3.1213 -> 3.121
    (8, "CNSHA", "CNSGH", "100", "120.050", "3.722", "3.121"),
]


@pytest.mark.parametrize("mode,origin,destination,km,tkm,wtw,ttw", WORKED)
def test_worked_figures_per_mode_with_the_default_factors(
    mode: int, origin: str, destination: str, km: str, tkm: str, wtw: str, ttw: str
) -> None:
    record = record_of(_booked([(mode, "carrier.road", origin, destination, km)]))
    assert record.emissions is not None
    leg = record.emissions.legs[0]
    assert (leg.distance_km, leg.distance_basis, leg.cargo_tonnes) == (Decimal(km), "booked", TONNES)
    assert leg.tonne_km == Decimal(tkm)
    assert (leg.wtw_kg_co2e, leg.ttw_kg_co2e) == (Decimal(wtw), Decimal(ttw))
    assert leg.data_quality == "default" and leg.share == Decimal(1) and leg.missing is None
    assert leg.vehicle_type == FACTORS.modes[mode].default_vehicle and FACTORS.version in (leg.factor_source or "")
    assert record.emissions.wtw_kg_co2e == Decimal(wtw) and record.emissions.complete
    assert record.emissions.factors_verified is FACTORS.verified_against_source


def test_without_a_booked_distance_the_great_circle_times_the_detour_factor_is_used() -> None:
    singapore, johor = LOCATIONS.points["SGSIN"], LOCATIONS.points["MYJHB"]
    crow = great_circle_km(singapore, johor)
    assert 21.0 < crow < 22.5  # the causeway is about 21-22 km from the city centre point
    record = record_of(_booked([(3, "carrier.road", "SGSIN", "MYJHB", None)]))
    assert record.emissions is not None
    leg = record.emissions.legs[0]
    assert leg.distance_basis == "great_circle"
    assert leg.distance_km == (Decimal(repr(crow)) * Decimal("1.2")).quantize(Decimal("0.1")) == Decimal("25.9")


def test_a_journey_has_totals_and_shares_over_its_legs() -> None:
    record = record_of(
        _booked([(3, "carrier.road", "CNCTU", "CNCKG", "100"), (1, "carrier.sea", "CNCKG", "SGSIN", "2000")])
    )
    assert record.emissions is not None
    road, sea = record.emissions.legs
    assert record.emissions.wtw_kg_co2e == Decimal("10.444") + Decimal("34.814")
    assert road.share == (Decimal("10.444") / Decimal("45.258")).quantize(Decimal("0.0001")) == Decimal("0.2308")
    assert sea.share == Decimal("0.7692")


def test_the_carriers_reported_distance_comes_before_the_booked_one_and_primary_data_before_defaults() -> None:
    record = record_of(
        _booked([(3, "carrier.road", "CNCTU", "CNCKG", "100")]),
        _report(1, "carrier.road", distance_km="120", event_id="em-distance"),
        _report(
            1,
            "carrier.road",
            intensity_wtw_g_per_tkm="60",
            intensity_ttw_g_per_tkm="50",
            event_id="em-intensity",
            occurred=31,
        ),
    )
    assert record.emissions is not None
    leg = record.emissions.legs[0]
    assert (leg.distance_km, leg.distance_basis) == (Decimal("120"), "carrier_reported")
    assert leg.tonne_km == Decimal("144.060")  # 120 km x 1.2005 t
    assert (leg.wtw_kg_co2e, leg.ttw_kg_co2e) == (Decimal("8.644"), Decimal("7.203"))  # x 60 g, x 50 g
    assert leg.data_quality == "primary" and leg.set_by == ["carrier.road/em-distance", "carrier.road/em-intensity"]


def test_fuel_reported_by_the_carrier_gives_primary_figures_and_the_implied_intensity() -> None:
    record = record_of(
        _booked([(3, "carrier.road", "CNCTU", "CNCKG", "100")]),
        _report(1, "carrier.road", fuel={"fuel": "diesel", "quantity": "4"}),
    )
    assert record.emissions is not None
    leg = record.emissions.legs[0]
    diesel = FACTORS.fuels["diesel"]
    assert leg.wtw_kg_co2e == (4 * diesel.wtw_kg_co2e).quantize(Decimal("0.001")) == Decimal("12.960")
    assert leg.ttw_kg_co2e == Decimal("10.640") and leg.data_quality == "primary"
    assert leg.intensity_wtw_g_per_tkm == (Decimal("12.96") * 1000 / Decimal("120.05")).quantize(Decimal("0.001"))


def test_only_the_legs_carrier_may_report_its_primary_data() -> None:
    record = record_of(
        _booked([(3, "carrier.road", "CNCTU", "CNCKG", "100"), (1, "carrier.sea", "CNCKG", "SGSIN", "2000")]),
        _report(1, "carrier.sea", intensity_wtw_g_per_tkm="1", intensity_ttw_g_per_tkm="1", event_id="em-forged"),
        _report(2, MTO, distance_km="1", event_id="em-mto"),
    )
    assert record.emissions is not None
    road, sea = record.emissions.legs
    assert road.data_quality == "default" and road.wtw_kg_co2e == Decimal("10.444") and road.set_by == []
    assert sea.distance_basis == "booked" and sea.distance_km == Decimal("2000")
    refused = {r.event: r for r in record.rejected}
    assert (
        refused["carrier.sea/em-forged"].kind == "not_entitled"
        and "carrier.road" in refused["carrier.sea/em-forged"].reason
    )
    assert refused[f"{MTO}/em-mto"].kind == "not_entitled"


def test_a_leg_with_an_unknown_node_and_no_distance_gets_no_figure_and_says_why() -> None:
    record = record_of(
        _booked([(3, "carrier.road", "CNCTU", "CNCKG", "100"), (3, "carrier.road", "CNCKG", "DEHAM", None)])
    )
    assert record.emissions is not None
    known, unknown = record.emissions.legs
    assert unknown.wtw_kg_co2e is None and unknown.distance_km is None and unknown.share is None
    assert (
        unknown.missing is not None
        and "DEHAM" in unknown.missing
        and "no reported or booked distance" in unknown.missing
    )
    assert not record.emissions.complete and record.emissions.wtw_kg_co2e == known.wtw_kg_co2e
    assert known.share == Decimal(1)


def test_a_mode_without_defaults_gets_no_figure() -> None:
    record = record_of(_booked([(5, "carrier.road", "CNCTU", "CNCKG", "100")]))  # 5: mail
    assert record.emissions is not None and record.emissions.legs[0].missing == (
        f"the factor table ({FACTORS.version}) has no GLEC default for mode 5"
    )


def test_a_report_must_carry_one_consistent_method() -> None:
    with pytest.raises(ValidationError, match="both well-to-wheel and tank-to-wheel"):
        EmissionsPayload.model_validate({"leg": 1, "intensity_wtw_g_per_tkm": "1"}, strict=False)
    with pytest.raises(ValidationError, match="either an intensity or the fuel"):
        EmissionsPayload.model_validate(
            {
                "leg": 1,
                "intensity_wtw_g_per_tkm": "2",
                "intensity_ttw_g_per_tkm": "1",
                "fuel": {"fuel": "diesel", "quantity": "1"},
            },
            strict=False,
        )
    with pytest.raises(ValidationError, match="carries a distance"):
        EmissionsPayload.model_validate({"leg": 1}, strict=False)


def test_a_full_copy_of_the_code_list_is_read_the_same_way() -> None:
    text = (
        "Change,Country,Location,Name,NameWoDiacritics,Subdivision,Status,Function,Date,IATA,Coordinates,Remarks,"
        "CoordinatesDecimal,Distance,Source\n"
        ',DE,HAM,Hamburg,Hamburg,HH,AI,12345---,0307,,5333N 00958E,,"53.55000,9.96667",1,UN/LOCODE\n'
        ",DE,XXX,Nowhere,Nowhere,,RL,--3-----,0307,,,,,N/A,N/A\n"
        'X,DE,OLD,Gone,Gone,,RL,--3-----,0307,,,,"1.0,1.0",N/A,N/A\n'
    )
    locations = load_locations(text, "test")
    assert set(locations.points) == {"DEHAM"} and locations.points["DEHAM"].latitude == 53.55


@pytest.mark.parametrize("name", ["journey.jsonl", "journey-claim.jsonl"])
def test_every_example_journey_folds_into_a_record_with_an_emissions_part(name: str) -> None:
    from pathlib import Path

    from connectors.kafka import read_jsonl
    from streams.codec import decode_event
    from streams.merge import fold

    from ..builders import AUTHORITY

    examples = Path(__file__).resolve().parents[3] / "examples"
    for record in fold((decode_event(line) for line in read_jsonl(examples / name)), AUTHORITY).values():  # type: ignore[misc]
        assert record.emissions is not None and record.emissions.complete
        assert [leg.mode for leg in record.emissions.legs] == [leg.mode for leg in record.legs]
        assert all(leg.wtw_kg_co2e and leg.distance_basis == "great_circle" for leg in record.emissions.legs)
        assert record.emissions.wtw_kg_co2e == sum(leg.wtw_kg_co2e or 0 for leg in record.emissions.legs)


def test_the_shipper_and_the_mto_see_the_whole_statement_and_a_carrier_only_its_legs_figures() -> None:
    from pathlib import Path

    from connectors.kafka import read_jsonl
    from streams.codec import decode_event
    from streams.merge import fold
    from streams.sharing import entitlements, view

    from ..builders import AUTHORITY

    journey = Path(__file__).resolve().parents[3] / "examples" / "journey.jsonl"
    (record,) = fold((decode_event(line) for line in read_jsonl(journey)), AUTHORITY).values()  # type: ignore[misc]
    parties = entitlements(record)
    for whole in ("shipper.chengdu-elec", "mto.westcorridor"):
        statement = view(record, parties[whole]).document["emissions"]
        assert (
            statement["wtw_kg_co2e"]
            and len(statement["legs"]) == 4
            and all("share" in leg for leg in statement["legs"])
        )
    rail = view(record, parties["carrier.cr-rail"]).document["emissions"]
    assert set(rail) == {"legs"} and [leg["leg"] for leg in rail["legs"]] == [2]  # no totals, no other leg
    assert rail["legs"][0]["wtw_kg_co2e"] and "share" not in rail["legs"][0]
    for other in ("consignee.johor-assembly", "insurer.picc"):
        assert "emissions" not in view(record, parties[other]).document
