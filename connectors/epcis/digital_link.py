"""GS1 identifiers in EPCIS as the constrained canonical GS1 Digital Link URI the CBV 2.0 event hash asks for.

Pure. `canonical_digital_link(text)` reads an EPC URI (`urn:epc:id:`), EPC class URI (`urn:epc:class:lgtin:`), EPC
pattern URI (`urn:epc:idpat:...:*`) or a GS1 Digital Link URI on any domain, and gives
`https://id.gs1.org/<key AI>/<key>[/<qualifier AI>/<value>]` with only the finest level of identification (CBV 2.0
event hash rule 18: `00, 01, 01/21, 01/10, 01/235, 253, 255, 401, 402, 414, 414/254, 417, 8003, 8004, 8006,
8006/21, 8006/10, 8010, 8010/8011, 8017, 8018`), no query string; None for anything else.

EPC URI layouts and the GS1 keys they encode are those of the GS1 EPC Tag Data Standard: the GS1 Company Prefix and
the reference that follows it together make the key, the check digit is recomputed (GS1 General Specifications
7.9.1), and serials keep their EPC escapes, with `! ( ) * + , :` percent-encoded as GS1 Digital Link requires.
"""

from __future__ import annotations

import re

from schemas.identifiers import gs1_check_digit as check_digit

ID_GS1 = "https://id.gs1.org"

_SERIAL = r"(?:%[0-9A-Fa-f]{2}|[!')(*+,.0-9:;=A-Za-z_-])"
# urn:epc:<kind>:<scheme>:<company prefix>.<reference>[.<more>]: (company prefix + reference length, rest pattern)
_NUMERIC_REF = {
    "sgtin": 13, "sscc": 17, "sgln": 12, "grai": 12, "gsrn": 17, "gsrnp": 17, "gdti": 12, "sgcn": 12, "gsin": 16,
    "itip": 13, "upui": 13, "pgln": 12, "lgtin": 13,
}
_DL_ALIASES = {
    "gtin": "01", "itip": "8006", "cpid": "8010", "gln": "414", "party": "417", "gsrnp": "8017", "gsrn": "8018",
    "gcn": "255", "sscc": "00", "gdti": "253", "ginc": "401", "gsin": "402", "grai": "8003", "giai": "8004",
    "cpv": "22", "lot": "10", "ser": "21",
}
_KEYS = frozenset({"01", "8006", "8010", "414", "417", "8017", "8018", "255", "00", "253", "401", "402", "8003", "8004"})
# The qualifiers kept after each key, finest first: only the first one present is kept.
_QUALIFIERS = {"01": ("21", "235", "10"), "8006": ("21", "10"), "414": ("254",), "8010": ("8011",)}
_CHAR = r"[\x22\x27\x2D\x2E\x30-\x39\x3B-\x3F\x41-\x5A\x5F\x61-\x7A]"
_VALUES = {
    "00": r"\d{18}", "01": r"\d{14}", "8006": r"\d{18}", "414": r"\d{13}", "417": r"\d{13}", "402": r"\d{17}",
    "8017": r"\d{18}", "8018": r"\d{18}", "253": rf"\d{{13}}{_CHAR}{{0,17}}", "255": r"\d{13}\d{0,12}",
    "401": rf"{_CHAR}{{0,30}}", "8004": rf"{_CHAR}{{0,30}}", "8003": rf"\d{{14}}{_CHAR}{{0,16}}",
    "8010": r"[\x23\x2D\x2F\x30-\x39\x41-\x5A]{0,30}", "8011": r"\d{0,12}", "21": rf"{_CHAR}{{0,20}}",
    "10": rf"{_CHAR}{{0,20}}", "254": rf"{_CHAR}{{0,20}}", "235": rf"{_CHAR}{{0,28}}",
}


def _encoded(serial: str) -> str:
    for char, escape in (("!", "%21"), ("(", "%28"), (")", "%29"), ("*", "%2A"), ("+", "%2B"), (",", "%2C"), (":", "%3A")):
        serial = serial.replace(char, escape)
    return serial


def _gtin(prefix: str, reference: str) -> str:
    body = reference[:1] + prefix + reference[1:]
    return body + check_digit(body)


def _keyed(prefix: str, reference: str) -> str:
    return prefix + reference + check_digit(prefix + reference)


def canonical_digital_link(text: str) -> str | None:
    """`text` as a constrained canonical GS1 Digital Link URI, or None when it names no GS1 key."""
    if text.startswith("urn:epc:"):
        return _from_epc_uri(text)
    if text.startswith(("http://", "https://")):
        return _from_digital_link(text)
    return None


def _from_epc_uri(uri: str) -> str | None:
    match = re.fullmatch(r"urn:epc:(id|class|idpat):([a-z]+):(\d{6,12})\.([^.]*)(?:\.(.*))?", uri)
    if match is None:
        return None
    kind, scheme, prefix, reference, rest = match.groups()
    wanted = _NUMERIC_REF.get(scheme)
    if wanted is not None and (len(prefix) + len(reference) != wanted or not reference.isdigit()):
        if not (scheme in ("sgln", "pgln", "grai", "gdti", "sgcn") and reference == "" and len(prefix) == 12):
            return None
    if kind == "idpat":
        return _from_pattern(scheme, prefix, reference, rest)
    if kind == "class":
        if scheme != "lgtin" or rest is None or not re.fullmatch(f"{_SERIAL}{{1,20}}", rest):
            return None
        return f"{ID_GS1}/01/{_gtin(prefix, reference)}/10/{_encoded(rest)}"
    return _from_id(scheme, prefix, reference, rest)


def _from_id(scheme: str, prefix: str, reference: str, rest: str | None) -> str | None:
    serial = rest or ""
    serial_ok = re.fullmatch(f"{_SERIAL}{{1,30}}", serial) is not None
    if scheme == "sgtin" and serial_ok:
        return f"{ID_GS1}/01/{_gtin(prefix, reference)}/21/{_encoded(serial)}"
    if scheme == "sscc" and rest is None:
        return f"{ID_GS1}/00/{_gtin(prefix, reference)}"
    if scheme == "sgln" and serial_ok:
        gln = _keyed(prefix, reference)
        return f"{ID_GS1}/414/{gln}" + ("" if serial == "0" else f"/254/{_encoded(serial)}")
    if scheme == "grai" and serial_ok:
        return f"{ID_GS1}/8003/{_keyed('0' + prefix, reference)}{_encoded(serial)}"
    if scheme in ("giai", "ginc") and rest is None and re.fullmatch(f"{_SERIAL}+", reference):
        return f"{ID_GS1}/{'8004' if scheme == 'giai' else '401'}/{prefix}{_encoded(reference)}"
    if scheme in ("gsrn", "gsrnp", "gsin", "pgln") and rest is None:
        ai = {"gsrn": "8018", "gsrnp": "8017", "gsin": "402", "pgln": "417"}[scheme]
        return f"{ID_GS1}/{ai}/{_keyed(prefix, reference)}"
    if scheme == "gdti" and serial_ok:
        return f"{ID_GS1}/253/{_keyed(prefix, reference)}{_encoded(serial)}"
    if scheme == "sgcn" and serial.isdigit():
        return f"{ID_GS1}/255/{_keyed(prefix, reference)}{serial}"
    if scheme == "cpi" and rest is not None and rest.isdigit():
        return f"{ID_GS1}/8010/{_encoded(prefix + reference)}/8011/{rest}"
    if scheme == "itip" and rest is not None:
        parts = re.fullmatch(rf"(\d\d)\.(\d\d)\.({_SERIAL}{{1,20}})", rest)
        if parts:
            piece, total, item = parts.groups()
            return f"{ID_GS1}/8006/{_gtin(prefix, reference)}{piece}{total}/21/{_encoded(item)}"
    if scheme == "upui" and rest is not None and re.fullmatch(f"{_SERIAL}{{1,28}}", rest):
        return f"{ID_GS1}/01/{_gtin(prefix, reference)}/235/{_encoded(rest)}"
    return None


def _from_pattern(scheme: str, prefix: str, reference: str, rest: str | None) -> str | None:
    if scheme in ("sgtin", "upui") and rest == "*":
        return f"{ID_GS1}/01/{_gtin(prefix, reference)}"
    if scheme == "grai" and rest == "*":
        return f"{ID_GS1}/8003/{_keyed('0' + prefix, reference)}"
    if scheme in ("gdti", "sgcn") and rest == "*":
        return f"{ID_GS1}/{'253' if scheme == 'gdti' else '255'}/{_keyed(prefix, reference)}"
    if scheme == "cpi" and rest == "*":
        return f"{ID_GS1}/8010/{_encoded(prefix + reference)}"
    if scheme == "itip" and rest is not None and re.fullmatch(r"\d\d\.\d\d\.\*", rest):
        return f"{ID_GS1}/8006/{_gtin(prefix, reference)}{rest[0:2]}{rest[3:5]}"
    return None


def _from_digital_link(uri: str) -> str | None:
    path = uri.split("://", 1)[1].split("?", 1)[0].split("#", 1)[0]
    segments = [_DL_ALIASES.get(segment, segment) for segment in path.split("/")[1:]]
    start = next(
        (i for i, segment in enumerate(segments[:-1]) if segment in _KEYS and re.match(r"\d{4}", segments[i + 1])), None
    )
    if start is None:
        return None
    pairs = segments[start:]
    if pairs and pairs[-1] == "":
        pairs = pairs[:-1]
    if len(pairs) % 2:
        return None
    values = dict(zip(pairs[2::2], pairs[3::2]))
    key, value = pairs[0], pairs[1]
    if key == "01" and len(value) in (8, 12, 13):
        value = value.rjust(14, "0")
    kept = [(key, value)]
    for qualifier in _QUALIFIERS.get(key, ()):
        if qualifier in values:
            kept.append((qualifier, values[qualifier]))
            break
    if not all(re.fullmatch(_VALUES[ai], text) for ai, text in kept):
        return None
    return ID_GS1 + "".join(f"/{ai}/{text}" for ai, text in kept)
