"""Identifiers the outside world defines, validated by their own rules (UN/LOCODE, ISO 6346, IATA AWB, ISO 4217, GS1
GLN)."""

from __future__ import annotations

import re
from enum import IntEnum
from typing import Annotated

from pydantic import AfterValidator, StringConstraints
from stdnum import lei as _lei
from stdnum.cn import uscc as _uscc

# ISO 4217 active alphabetic codes (2025 list) plus XDR, the IMF Special Drawing Right used for liability limits.
ISO_4217: frozenset[str] = frozenset(
    """
    AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN BWP BYN BZD CAD CDF
    CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD
    HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD
    MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN
    PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY
    TTD TWD TZS UAH UGX USD UYU UZS VED VES VND VUV WST XAF XCD XCG XOF XPF YER ZAR ZMW ZWG XDR
    """.split()
)

_LOCODE = re.compile(r"^[A-Z]{2}[A-Z2-9]{3}$")
_CONTAINER = re.compile(r"^[A-Z]{3}[UJZ][0-9]{7}$")
_AWB = re.compile(r"^([0-9]{3})-?([0-9]{8})$")
_SITE = re.compile(r"^([0-9]{13})(/[A-Za-z0-9.-]{1,21})?$")


def _check_currency(code: str) -> str:
    if code not in ISO_4217:
        raise ValueError(f"{code!r} is not an ISO 4217 currency code")
    return code


def _check_locode(code: str) -> str:
    if not _LOCODE.fullmatch(code):
        raise ValueError(
            f"{code!r} is not a UN/LOCODE (2-letter country code + 3 characters from A-Z and 2-9, e.g. 'DEHAM')"
        )
    return code


def iso6346_check_digit(first_ten: str) -> int:
    """Check digit of an ISO 6346 container number from its owner code, category and serial."""
    total = 0
    for position, char in enumerate(first_ten):
        total += _ISO6346_VALUES[char] * (2**position)
    return total % 11 % 10


def _iso6346_letter_values() -> dict[str, int]:
    # Letters count from A=10 upwards, skipping multiples of 11 (which would collide with the mod-11 step).
    values = {str(d): d for d in range(10)}
    value = 10
    for char in "ABCDEFGHIJKLMNOPQRSTUVWXYZ":
        if value % 11 == 0:
            value += 1
        values[char] = value
        value += 1
    return values


_ISO6346_VALUES = _iso6346_letter_values()


def _check_container(number: str) -> str:
    if not _CONTAINER.fullmatch(number):
        raise ValueError(
            f"{number!r} is not an ISO 6346 container number (owner code, category U/J/Z, 6-digit serial, check digit)"
        )
    expected = iso6346_check_digit(number[:10])
    if int(number[10]) != expected:
        raise ValueError(f"container number {number!r} fails its ISO 6346 check digit (expected {expected})")
    return number


def _check_awb(number: str) -> str:
    match = _AWB.fullmatch(number)
    if not match:
        raise ValueError(f"{number!r} is not an air waybill number (3-digit prefix, 8-digit serial, e.g. '020-12345675')")
    prefix, serial = match.groups()
    if int(serial[:7]) % 7 != int(serial[7]):
        raise ValueError(f"air waybill {number!r} fails its mod-7 check digit (expected {int(serial[:7]) % 7})")
    return f"{prefix}-{serial}"


def gs1_check_digit(digits: str) -> str:
    """The GS1 mod-10 check digit of a key without it: weights 3, 1, 3... from the right (GS1 General
    Specifications 7.9.1)."""
    total = sum(int(digit) * (3 if index % 2 == 0 else 1) for index, digit in enumerate(reversed(digits)))
    return str(-total % 10)


def _check_site(site: str) -> str:
    match = _SITE.fullmatch(site)
    if not match:
        raise ValueError(f"{site!r} is not a site: a 13-digit GLN, optionally '/' and its extension")
    gln = match.group(1)
    if gln[12] != gs1_check_digit(gln[:12]):
        raise ValueError(f"GLN {gln} fails its GS1 check digit (expected {gs1_check_digit(gln[:12])})")
    return site


def _check_sscc(sscc: str) -> str:
    if len(sscc) != 18 or not sscc.isascii() or not sscc.isdigit():
        raise ValueError(f"{sscc!r} is not an SSCC: 18 digits (extension digit, GS1 company prefix, serial, check digit)")
    if sscc[17] != gs1_check_digit(sscc[:17]):
        raise ValueError(f"SSCC {sscc} fails its GS1 check digit (expected {gs1_check_digit(sscc[:17])})")
    return sscc


CurrencyCode = Annotated[str, StringConstraints(min_length=3, max_length=3), AfterValidator(_check_currency)]
UnLocode = Annotated[str, StringConstraints(min_length=5, max_length=5), AfterValidator(_check_locode)]
ContainerNumber = Annotated[str, StringConstraints(min_length=11, max_length=11), AfterValidator(_check_container)]
AirWaybillNumber = Annotated[str, StringConstraints(min_length=11, max_length=12), AfterValidator(_check_awb)]
# A GS1 site as EPCIS names it by its SGLN: the GLN (check digit checked) and, for a part of the site, "/" and the
# GLN extension, e.g. "9555012000100" or "9555012000100/DOCK4".
SiteId = Annotated[str, StringConstraints(max_length=35), AfterValidator(_check_site)]
# A GS1 Serial Shipping Container Code, the id of one logistic unit (a package): 18 digits, check digit checked.
Sscc = Annotated[str, AfterValidator(_check_sscc)]

# Hub and party identifiers: printable, no spaces, bounded, so they are safe as Kafka keys and URL parts.
ShipmentId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")]
PartyId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9._-]{1,63}$")]
EventId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$")]
ClaimId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$")]
DocumentNumber = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9./-]{0,34}$")]


class TransportMode(IntEnum):
    """UN/ECE Recommendation 19 mode of transport codes."""

    MARITIME = 1
    RAIL = 2
    ROAD = 3
    AIR = 4
    MAIL = 5
    MULTIMODAL = 6
    FIXED_INSTALLATION = 7
    INLAND_WATER = 8


# --- legal identifiers of business entities (issue 16) ------------------------------------------------------------
_EORI = re.compile(r"^[A-Z]{2}[A-Za-z0-9]{1,15}$")


def _upper_case(code: str, what: str) -> None:
    # python-stdnum upper-cases before it checks, so "5493001kjtiigc8y1r12" passed as an LEI and was kept as sent:
    # both standards write letters in upper case only, and the same code in two cases would be two parties' codes
    if code != code.upper():
        raise ValueError(f"{code!r}: {what} writes its letters in upper case")


def _check_uscc(code: str) -> str:
    _upper_case(code, "a Unified Social Credit Code (GB 32100-2015)")
    if not _uscc.is_valid(code):
        raise ValueError(f"{code!r} is not a Unified Social Credit Code (GB 32100-2015: 18 characters, check character)")
    return code


def _check_lei(code: str) -> str:
    _upper_case(code, "an LEI (ISO 17442)")
    if not _lei.is_valid(code):
        raise ValueError(f"{code!r} is not an LEI (ISO 17442: 20 characters, ISO 7064 mod 97-10 check digits)")
    return code


def _check_eori(code: str) -> str:
    if not _EORI.fullmatch(code):
        raise ValueError(f"{code!r} is not an EORI number (ISO 3166 country code + up to 15 letters or digits)")
    return code


Uscc = Annotated[str, StringConstraints(min_length=18, max_length=18), AfterValidator(_check_uscc)]
Lei = Annotated[str, StringConstraints(min_length=20, max_length=20), AfterValidator(_check_lei)]
Eori = Annotated[str, StringConstraints(min_length=3, max_length=17), AfterValidator(_check_eori)]
