"""Identifiers validated by the rules of the bodies that define them: ISO 6346, IATA, UN/LOCODE, ISO 4217, Rec 19."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from schemas.identifiers import (
    ISO_4217,
    AirWaybillNumber,
    ContainerNumber,
    CurrencyCode,
    TransportMode,
    UnLocode,
    iso6346_check_digit,
)

CONTAINER = TypeAdapter(ContainerNumber)
AWB = TypeAdapter(AirWaybillNumber)
LOCODE = TypeAdapter(UnLocode)
CURRENCY = TypeAdapter(CurrencyCode)

# ISO 6346 letter values as printed in the standard (multiples of 11 skipped), written out independently of the
# code under test so the two can disagree.
ISO6346_TABLE = dict(zip("ABCDEFGHIJKLMNOPQRSTUVWXYZ", [10, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 34, 35, 36, 37, 38]))
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def reference_check_digit(first_ten: str) -> int:
    values = [ISO6346_TABLE[c] if c.isalpha() else int(c) for c in first_ten]
    return sum(v << i for i, v in enumerate(values)) % 11 % 10


def rejection(adapter: TypeAdapter[str], value: object) -> str:
    with pytest.raises(ValidationError) as caught:
        adapter.validate_python(value)
    return str(caught.value)


# --- ISO 6346 container numbers ---------------------------------------------------------------------------------


@pytest.mark.parametrize("number", ["CSQU3054383", "MSKU9070323", "HLXU1234561", "MAEU1234567"])
def test_container_number_with_correct_check_digit_is_accepted(number: str) -> None:
    assert reference_check_digit(number[:10]) == int(number[10]), "test data must itself be valid"
    assert CONTAINER.validate_python(number) == number


def test_container_number_with_wrong_check_digit_is_rejected_naming_the_check_digit() -> None:
    reason = rejection(CONTAINER, "CSQU3054384")
    assert "check digit" in reason
    assert "expected 3" in reason


@pytest.mark.parametrize("category", ["A", "X", "R", "0"])
def test_container_number_with_unknown_equipment_category_is_rejected(category: str) -> None:
    reason = rejection(CONTAINER, f"CSQ{category}3054383")
    assert "ISO 6346" in reason
    assert "category U/J/Z" in reason


@pytest.mark.parametrize("number", ["csqu3054383", "CSQU305438", "CSQU30543833", "CS1U3054383", "CSQU305438X", ""])
def test_malformed_container_number_is_rejected(number: str) -> None:
    with pytest.raises(ValidationError):
        CONTAINER.validate_python(number)


@given(
    owner=st.text(alphabet=LETTERS, min_size=3, max_size=3),
    category=st.sampled_from("UJZ"),
    serial=st.integers(0, 999_999),
)
def test_container_number_is_accepted_with_exactly_its_own_check_digit(owner: str, category: str, serial: int) -> None:
    first_ten = f"{owner}{category}{serial:06d}"
    expected = reference_check_digit(first_ten)
    assert iso6346_check_digit(first_ten) == expected
    for digit in range(10):
        number = f"{first_ten}{digit}"
        if digit == expected:
            assert CONTAINER.validate_python(number) == number
        else:
            with pytest.raises(ValidationError, match="check digit"):
                CONTAINER.validate_python(number)


def test_container_number_must_be_a_string() -> None:
    with pytest.raises(ValidationError):
        CONTAINER.validate_python(30543830)


# --- IATA air waybill numbers -------------------------------------------------------------------------------------


@pytest.mark.parametrize("number", ["020-12345675", "02012345675"])
def test_air_waybill_number_with_correct_mod7_digit_is_accepted_and_hyphenated(number: str) -> None:
    assert AWB.validate_python(number) == "020-12345675"


def test_air_waybill_number_with_wrong_check_digit_is_rejected_naming_the_check_digit() -> None:
    reason = rejection(AWB, "020-12345676")
    assert "mod-7 check digit" in reason
    assert "expected 5" in reason


@pytest.mark.parametrize("number", ["20-12345675", "020-1234567", "020 12345675", "ABC-12345675", "020--12345675"])
def test_malformed_air_waybill_number_is_rejected(number: str) -> None:
    with pytest.raises(ValidationError):
        AWB.validate_python(number)


@given(prefix=st.integers(0, 999), serial=st.integers(0, 9_999_999), digit=st.integers(0, 9))
def test_air_waybill_check_digit_is_the_serial_modulo_seven(prefix: int, serial: int, digit: int) -> None:
    number = f"{prefix:03d}-{serial:07d}{digit}"
    if digit == serial % 7:
        assert AWB.validate_python(number) == number
    else:
        with pytest.raises(ValidationError, match="mod-7"):
            AWB.validate_python(number)


# --- UN/LOCODE ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("code", ["DEHAM", "CNQZH", "SGSIN", "MYJHB", "USNYC", "GB2AB", "FR9ZZ"])
def test_well_formed_unlocode_is_accepted(code: str) -> None:
    assert LOCODE.validate_python(code) == code


@pytest.mark.parametrize(
    "code",
    [
        "deham",  # lower case
        "DEHA",  # too short
        "DEHAMB",  # too long
        "DE0AB",  # 0 is excluded (confused with O)
        "DE1AB",  # 1 is excluded (confused with I)
        "D3HAM",  # the country part is letters only
        "DE-HA",
    ],
)
def test_malformed_unlocode_is_rejected_with_an_example(code: str) -> None:
    reason = rejection(LOCODE, code)
    if len(code) == 5:
        assert "UN/LOCODE" in reason


# --- ISO 4217 -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("code", ["USD", "EUR", "CNY", "MYR", "SGD", "JPY", "XDR", "ZWG", "XCG", "SLE"])
def test_active_currency_code_is_accepted(code: str) -> None:
    assert CURRENCY.validate_python(code) == code


@pytest.mark.parametrize("code", ["usd", "US", "USDD", "ABC", "HRK", "VEF", "XXX"])
def test_unknown_lowercase_or_withdrawn_currency_code_is_rejected(code: str) -> None:
    rejection(CURRENCY, code)


def test_currency_rejection_names_the_standard() -> None:
    assert "ISO 4217" in rejection(CURRENCY, "ABC")


def test_every_listed_currency_code_is_three_upper_case_letters() -> None:
    assert all(len(code) == 3 and code.isascii() and code.isupper() for code in ISO_4217)


def test_venezuelan_digital_bolivar_is_an_active_currency_code() -> None:
    # VED (numeric 926) is on ISO 4217 list one since October 2021, beside VES.
    assert CURRENCY.validate_python("VED") == "VED"


# --- UN/ECE Recommendation 19 modes --------------------------------------------------------------------------------


def test_transport_modes_are_the_rec19_codes_one_to_eight() -> None:
    assert [int(mode) for mode in TransportMode] == list(range(1, 9))
    assert TransportMode(1) is TransportMode.MARITIME
    assert TransportMode(2) is TransportMode.RAIL
    assert TransportMode(3) is TransportMode.ROAD
    assert TransportMode(4) is TransportMode.AIR
    assert TransportMode(8) is TransportMode.INLAND_WATER
