"""Carrier keys and signatures: what verifies, every reason a message is refused, key rotation, the demo keys, and
that no header value makes verification raise."""

from __future__ import annotations

import base64
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from connectors.carriers import (
    HTTP_CARRIER,
    HTTP_KEY_ID,
    HTTP_SIGNATURE,
    Algorithm,
    Carrier,
    CarrierKey,
    CarrierRegistry,
    RegistryError,
    SigningKey,
    http_signature_headers,
    kafka_signature_headers,
    load_registry,
    load_signing_key,
    new_key,
    sign,
    verify,
    verify_kafka_headers,
)
from schemas.rejection import Rejection, describe
from hubconf.topics import SIGNATURE, SIGNATURE_CARRIER, SIGNATURE_KEY_ID

from .helpers import FUZZ

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
BODY = b"UNA:+.? 'UNB+UNOC:3+CRRAIL:ZZZ+MMHUB:ZZZ+260305:0931+RAIL0000417'"
START = datetime(2026, 1, 1, tzinfo=timezone.utc)
NOW = START + timedelta(days=30)
FORMAT = "edifact"
T = int(NOW.timestamp())


def registry_of(*carriers: tuple[str, list[CarrierKey]]) -> CarrierRegistry:
    return CarrierRegistry(carriers=[Carrier(party_id=party, name=party, keys=keys) for party, keys in carriers])


def keyed(
    carrier: str, key_id: str = "k1", algorithm: Algorithm = "ed25519", **window: datetime
) -> tuple[SigningKey, CarrierKey]:
    """A fresh key valid from START, with `not_after` (or another `not_before`) when given."""
    signing, entry = new_key(carrier, key_id, algorithm, window.get("not_before", START))
    return signing, entry.model_copy(update=window)


def check(registry: CarrierRegistry, key: SigningKey, body: bytes = BODY, now: datetime = NOW) -> Rejection | None:
    """Verify a message signed by `key`, as its headers present it."""
    headers = http_signature_headers(body, key, FORMAT, now)
    return verify(registry, headers[HTTP_CARRIER], headers[HTTP_KEY_ID], headers[HTTP_SIGNATURE], body, now, FORMAT)


def code(rejection: Rejection | None) -> str | None:
    return None if rejection is None else rejection.code


@pytest.mark.parametrize("algorithm", ["ed25519", "hmac-sha256"])
def test_a_signature_over_the_exact_bytes_verifies(algorithm: Algorithm) -> None:
    signing, entry = keyed("carrier.cr-rail", algorithm=algorithm)
    assert check(registry_of(("carrier.cr-rail", [entry])), signing) is None


@pytest.mark.parametrize("algorithm", ["ed25519", "hmac-sha256"])
def test_one_flipped_byte_is_a_bad_signature(algorithm: Algorithm) -> None:
    signing, entry = keyed("carrier.cr-rail", algorithm=algorithm)
    registry = registry_of(("carrier.cr-rail", [entry]))
    signature = sign(BODY, signing, FORMAT, NOW)
    for index in (0, len(BODY) // 2, len(BODY) - 1):
        tampered = BODY[:index] + bytes([BODY[index] ^ 0x01]) + BODY[index + 1 :]
        rejection = verify(registry, "carrier.cr-rail", "k1", signature, tampered, NOW, FORMAT)
        assert code(rejection) == "bad_signature", rejection


def test_a_signature_over_reencoded_bytes_does_not_verify() -> None:
    signing, entry = keyed("carrier.cr-rail")
    registry = registry_of(("carrier.cr-rail", [entry]))
    signature = sign(BODY + b"\n", signing, FORMAT, NOW)
    assert code(verify(registry, "carrier.cr-rail", "k1", signature, BODY, NOW, FORMAT)) == "bad_signature"


def test_an_unregistered_key_id_is_unknown_key() -> None:
    signing, entry = keyed("carrier.cr-rail")
    registry = registry_of(("carrier.cr-rail", [entry]))
    rejection = verify(registry, "carrier.cr-rail", "k2", sign(BODY, signing, FORMAT, NOW), BODY, NOW, FORMAT)
    assert rejection is not None and rejection.code == "unknown_key"
    assert "'k2'" in rejection.reason


def test_an_unregistered_carrier_is_unknown_carrier() -> None:
    signing, entry = keyed("carrier.cr-rail")
    registry = registry_of(("carrier.cr-rail", [entry]))
    rejection = verify(registry, "carrier.nobody", "k1", sign(BODY, signing, FORMAT, NOW), BODY, NOW, FORMAT)
    assert code(rejection) == "unknown_carrier"


def test_another_carriers_key_under_the_same_key_id_is_a_bad_signature() -> None:
    rail, rail_entry = keyed("carrier.cr-rail")
    road, road_entry = keyed("carrier.sc-road")
    registry = registry_of(("carrier.cr-rail", [rail_entry]), ("carrier.sc-road", [road_entry]))
    # sc-road claims to be cr-rail: cr-rail has a key "k1", but it is not the one that signed
    rejection = verify(registry, "carrier.cr-rail", "k1", sign(BODY, road, FORMAT, NOW), BODY, NOW, FORMAT)
    assert code(rejection) == "bad_signature"


def test_another_carriers_key_id_is_unknown_key() -> None:
    rail, rail_entry = keyed("carrier.cr-rail", key_id="rail-1")
    road, road_entry = keyed("carrier.sc-road", key_id="road-1")
    registry = registry_of(("carrier.cr-rail", [rail_entry]), ("carrier.sc-road", [road_entry]))
    rejection = verify(registry, "carrier.cr-rail", "road-1", sign(BODY, road, FORMAT, NOW), BODY, NOW, FORMAT)
    assert code(rejection) == "unknown_key"


@pytest.mark.parametrize("missing", ["carrier", "key_id", "signature"])
@pytest.mark.parametrize("absent", [None, ""])
def test_a_missing_part_is_unsigned(missing: str, absent: str | None) -> None:
    signing, entry = keyed("carrier.cr-rail")
    registry = registry_of(("carrier.cr-rail", [entry]))
    parts = {"carrier": "carrier.cr-rail", "key_id": "k1", "signature": sign(BODY, signing, FORMAT, NOW), missing: absent}
    rejection = verify(registry, parts["carrier"], parts["key_id"], parts["signature"], BODY, NOW, FORMAT)
    assert rejection is not None and rejection.code == "unsigned"
    assert missing.replace("_", " ") in rejection.reason


def test_an_expired_key_is_not_valid() -> None:
    signing, entry = keyed("carrier.cr-rail", not_after=NOW - timedelta(seconds=1))
    rejection = check(registry_of(("carrier.cr-rail", [entry])), signing)
    assert rejection is not None and rejection.code == "key_not_valid"
    assert "until" in rejection.reason


def test_a_key_not_yet_valid_is_not_valid() -> None:
    signing, entry = keyed("carrier.cr-rail", not_before=NOW + timedelta(seconds=1))
    assert code(check(registry_of(("carrier.cr-rail", [entry])), signing)) == "key_not_valid"


def test_a_key_is_valid_at_both_ends_of_its_window() -> None:
    end = NOW + timedelta(days=1)
    signing, entry = keyed("carrier.cr-rail", not_after=end)
    registry = registry_of(("carrier.cr-rail", [entry]))
    assert check(registry, signing, now=START) is None
    assert check(registry, signing, now=end) is None


def test_during_a_rotation_both_keys_verify_and_after_it_only_the_new_one() -> None:
    rotation_ends = datetime(2027, 3, 31, tzinfo=timezone.utc)
    year_before = START - timedelta(days=365)
    old, old_entry = keyed("carrier.oceanline", key_id="old", not_before=year_before, not_after=rotation_ends)
    new, new_entry = keyed("carrier.oceanline", key_id="new", not_before=START)
    registry = registry_of(("carrier.oceanline", [old_entry, new_entry]))

    before_new = START - timedelta(days=1)
    assert check(registry, old, now=before_new) is None
    assert code(check(registry, new, now=before_new)) == "key_not_valid"

    overlap = START + timedelta(days=200)
    assert check(registry, old, now=overlap) is None
    assert check(registry, new, now=overlap) is None

    after = rotation_ends + timedelta(seconds=1)
    assert code(check(registry, old, now=after)) == "key_not_valid"
    assert check(registry, new, now=after) is None


@pytest.mark.parametrize(
    "signature, why",
    [
        ("not base64!", "base64"),
        ("QUJD", "3 bytes"),  # valid base64, far too short
        ("QUJ", "base64"),  # missing padding
        ("签名", "base64"),
        (base64.b64encode(bytes(65)).decode(), "65 bytes"),
    ],
)
def test_a_malformed_signature_is_a_bad_signature(signature: str, why: str) -> None:
    _, entry = keyed("carrier.cr-rail")
    header = f"t={T},v1={signature}"
    rejection = verify(registry_of(("carrier.cr-rail", [entry])), "carrier.cr-rail", "k1", header, BODY, NOW, FORMAT)
    assert rejection is not None and rejection.code == "bad_signature"
    assert why in rejection.reason


def test_an_hmac_signature_of_the_wrong_length_is_a_bad_signature() -> None:
    _, entry = keyed("carrier.my-haulage", algorithm="hmac-sha256")
    signature = f"t={T},v1={base64.b64encode(bytes(64)).decode()}"  # an ed25519-sized signature
    rejection = verify(registry_of(("carrier.my-haulage", [entry])), "carrier.my-haulage", "k1", signature, BODY, NOW, FORMAT)
    assert rejection is not None and rejection.code == "bad_signature" and "64 bytes" in rejection.reason


@pytest.mark.parametrize("algorithm", ["ed25519", "hmac-sha256"])
def test_a_signature_for_one_format_does_not_verify_as_another(algorithm: Algorithm) -> None:
    signing, entry = keyed("carrier.cr-rail", algorithm=algorithm)
    registry = registry_of(("carrier.cr-rail", [entry]))
    signature = sign(BODY, signing, "edifact", NOW)
    rejection = verify(registry, "carrier.cr-rail", "k1", signature, BODY, NOW, "canonical")
    assert rejection is not None and rejection.code == "bad_signature" and "format canonical" in rejection.reason


@pytest.mark.parametrize("skew_s", [-301, 301, -10**6])
def test_a_signature_outside_the_window_is_stale(skew_s: int) -> None:
    signing, entry = keyed("carrier.cr-rail")
    signature = sign(BODY, signing, FORMAT, NOW + timedelta(seconds=skew_s))
    rejection = verify(registry_of(("carrier.cr-rail", [entry])), "carrier.cr-rail", "k1", signature, BODY, NOW, FORMAT)
    assert rejection is not None and rejection.code == "stale_signature" and "300 s" in rejection.reason


@pytest.mark.parametrize("skew_s", [-300, 0, 300])
def test_a_signature_inside_the_window_verifies(skew_s: int) -> None:
    signing, entry = keyed("carrier.cr-rail")
    signature = sign(BODY, signing, FORMAT, NOW + timedelta(seconds=skew_s))
    assert verify(registry_of(("carrier.cr-rail", [entry])), "carrier.cr-rail", "k1", signature, BODY, NOW, FORMAT) is None


@pytest.mark.parametrize(
    "header, wanted",
    [
        ("QUJD", "unsupported_scheme"),  # the old scheme: base64 over the body alone
        (f"t={T},v0=QUJD", "unsupported_scheme"),
        ("v1=QUJD", "bad_signature"),  # no time
        (f"t={T},t={T},v1=QUJD", "bad_signature"),
        ("t=-5,v1=QUJD", "bad_signature"),
        ("t=1e9,v1=QUJD", "bad_signature"),
    ],
)
def test_a_signature_header_outside_the_v1_scheme_is_refused_with_why(header: str, wanted: str) -> None:
    _, entry = keyed("carrier.cr-rail")
    rejection = verify(registry_of(("carrier.cr-rail", [entry])), "carrier.cr-rail", "k1", header, BODY, NOW, FORMAT)
    assert code(rejection) == wanted


def test_a_kafka_signature_is_checked_against_the_record_time_not_the_reading_time() -> None:
    signing, entry = keyed("carrier.cr-rail")
    registry = registry_of(("carrier.cr-rail", [entry]))
    headers = kafka_signature_headers(BODY, signing, FORMAT, NOW)
    a_day_later = NOW + timedelta(days=1)  # a worker re-reading the record after a crash
    assert verify_kafka_headers(registry, headers, BODY, a_day_later, FORMAT, NOW) == ("carrier.cr-rail", None)
    carrier, rejection = verify_kafka_headers(registry, headers, BODY, NOW, FORMAT, a_day_later)
    assert carrier is None and code(rejection) == "stale_signature"


# --- Kafka headers ---------------------------------------------------------------------------------------------


def test_kafka_headers_name_the_carrier_and_key_and_verify() -> None:
    signing, entry = keyed("carrier.cr-rail")
    headers = kafka_signature_headers(BODY, signing, FORMAT, NOW)
    assert [name for name, _ in headers] == [SIGNATURE_CARRIER, SIGNATURE_KEY_ID, SIGNATURE]
    registry = registry_of(("carrier.cr-rail", [entry]))
    assert verify_kafka_headers(registry, headers, BODY, NOW, FORMAT, NOW) == ("carrier.cr-rail", None)


def test_kafka_headers_among_others_verify() -> None:
    signing, entry = keyed("carrier.cr-rail")
    headers = [("traceparent", b"00-abc"), *kafka_signature_headers(BODY, signing, FORMAT, NOW), ("other", None)]
    registry = registry_of(("carrier.cr-rail", [entry]))
    assert verify_kafka_headers(registry, headers, BODY, NOW, FORMAT, NOW) == ("carrier.cr-rail", None)


@pytest.mark.parametrize("dropped", [SIGNATURE_CARRIER, SIGNATURE_KEY_ID, SIGNATURE])
def test_a_missing_kafka_header_is_unsigned(dropped: str) -> None:
    signing, entry = keyed("carrier.cr-rail")
    headers = [(name, value) for name, value in kafka_signature_headers(BODY, signing, FORMAT, NOW) if name != dropped]
    carrier, rejection = verify_kafka_headers(registry_of(("carrier.cr-rail", [entry])), headers, BODY, NOW, FORMAT, NOW)
    assert carrier is None and code(rejection) == "unsigned"


def test_a_null_kafka_header_is_unsigned() -> None:
    signing, entry = keyed("carrier.cr-rail")
    headers: list[tuple[str, bytes | None]] = [
        (name, None if name == SIGNATURE else value) for name, value in kafka_signature_headers(BODY, signing, FORMAT, NOW)
    ]
    carrier, rejection = verify_kafka_headers(registry_of(("carrier.cr-rail", [entry])), headers, BODY, NOW, FORMAT, NOW)
    assert carrier is None and code(rejection) == "unsigned"


def test_a_non_utf8_kafka_header_is_a_bad_signature() -> None:
    signing, entry = keyed("carrier.cr-rail")
    signed = kafka_signature_headers(BODY, signing, FORMAT, NOW)
    headers = [(name, b"\xff\xfe" if name == SIGNATURE_CARRIER else value) for name, value in signed]
    carrier, rejection = verify_kafka_headers(registry_of(("carrier.cr-rail", [entry])), headers, BODY, NOW, FORMAT, NOW)
    assert carrier is None and rejection is not None and rejection.code == "bad_signature"
    assert SIGNATURE_CARRIER in rejection.reason


def test_a_repeated_kafka_header_is_refused() -> None:
    signing, entry = keyed("carrier.cr-rail")
    headers = [*kafka_signature_headers(BODY, signing, FORMAT, NOW), (SIGNATURE_CARRIER, b"carrier.sc-road")]
    carrier, rejection = verify_kafka_headers(registry_of(("carrier.cr-rail", [entry])), headers, BODY, NOW, FORMAT, NOW)
    assert carrier is None and rejection is not None and "appears 2 times" in rejection.reason


# --- nothing raises ---------------------------------------------------------------------------------------------

FUZZ_SIGNER, FUZZ_ENTRY = keyed("carrier.cr-rail")
FUZZ_HMAC_SIGNER, FUZZ_HMAC_ENTRY = keyed("carrier.my-haulage", algorithm="hmac-sha256")
FUZZ_REGISTRY = registry_of(("carrier.cr-rail", [FUZZ_ENTRY]), ("carrier.my-haulage", [FUZZ_HMAC_ENTRY]))
registered = st.sampled_from(["carrier.cr-rail", "carrier.my-haulage", "k1"])
header_text = st.one_of(st.none(), st.text(max_size=200), registered)


@FUZZ
@given(carrier=header_text, key_id=header_text, signature=header_text, body=st.binary(max_size=500))
def test_any_header_text_gives_a_rejection_never_an_exception(
    carrier: str | None, key_id: str | None, signature: str | None, body: bytes
) -> None:
    rejection = verify(FUZZ_REGISTRY, carrier, key_id, signature, body, NOW, FORMAT)
    assert isinstance(rejection, Rejection) and rejection.reason


@FUZZ
@given(signature=st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=", max_size=120))
def test_any_base64_looking_signature_gives_a_rejection(signature: str) -> None:
    for party in ("carrier.cr-rail", "carrier.my-haulage"):
        rejection = verify(FUZZ_REGISTRY, party, "k1", signature, BODY, NOW, FORMAT)
        assert isinstance(rejection, Rejection) and rejection.reason


header_name = st.one_of(st.text(max_size=30), st.sampled_from([SIGNATURE_CARRIER, SIGNATURE_KEY_ID, SIGNATURE]))
header_value = st.one_of(st.none(), st.binary(max_size=120), st.sampled_from([b"carrier.cr-rail", b"k1", b""]))


@FUZZ
@given(headers=st.lists(st.tuples(header_name, header_value), max_size=8), body=st.binary(max_size=300))
def test_any_kafka_headers_give_a_rejection_never_an_exception(
    headers: list[tuple[str, bytes | None]], body: bytes
) -> None:
    carrier, rejection = verify_kafka_headers(FUZZ_REGISTRY, headers, body, NOW, FORMAT, NOW)
    assert carrier is None and isinstance(rejection, Rejection) and rejection.reason


@FUZZ
@given(body=st.binary(max_size=300), extra=st.lists(st.tuples(st.text(max_size=20), header_value), max_size=4))
def test_genuine_headers_verify_whatever_the_body_and_other_headers(
    body: bytes, extra: list[tuple[str, bytes | None]]
) -> None:
    ours = {SIGNATURE_CARRIER, SIGNATURE_KEY_ID, SIGNATURE}
    for signer in (FUZZ_SIGNER, FUZZ_HMAC_SIGNER):
        headers = [*kafka_signature_headers(body, signer, FORMAT, NOW), *((n, v) for n, v in extra if n not in ours)]
        assert verify_kafka_headers(FUZZ_REGISTRY, headers, body, NOW, FORMAT, NOW) == (signer.carrier, None)


# --- the registry and key files ----------------------------------------------------------------------------------


def entry_json(**fields: object) -> dict[str, object]:
    _, entry = new_key("carrier.cr-rail", "k1", "ed25519", START)
    return {**entry.model_dump(mode="json", exclude_none=True), **fields}


def registry_error(tmp_path: Path, document: object) -> str:
    path = tmp_path / "carriers.json"
    path.write_text(json.dumps(document))
    with pytest.raises(RegistryError) as raised:
        load_registry(path)
    message = str(raised.value)
    assert message.startswith(f"{path}: not a valid carrier registry: "), message
    return message


def test_duplicate_key_ids_are_named(tmp_path: Path) -> None:
    document = {"carriers": [{"party_id": "carrier.cr-rail", "name": "CR", "keys": [entry_json(), entry_json()]}]}
    assert "carriers.0.keys: Value error, key_id k1 appears more than once" in registry_error(tmp_path, document)


def test_duplicate_party_ids_are_named(tmp_path: Path) -> None:
    carrier = {"party_id": "carrier.cr-rail", "name": "CR", "keys": [entry_json()]}
    message = registry_error(tmp_path, {"carriers": [carrier, carrier]})
    assert "carriers: Value error, party_id carrier.cr-rail appears more than once" in message


def test_an_ed25519_entry_with_a_secret_is_refused(tmp_path: Path) -> None:
    secret = base64.b64encode(bytes(32)).decode()
    document = {"carriers": [{"party_id": "carrier.cr-rail", "name": "CR", "keys": [entry_json(secret=secret)]}]}
    assert "carriers.0.keys.0.secret: Value error, an ed25519 key has no secret" in registry_error(tmp_path, document)


def test_undecodable_base64_is_refused(tmp_path: Path) -> None:
    keys = [entry_json(public_key="not*base64")]
    document = {"carriers": [{"party_id": "carrier.cr-rail", "name": "CR", "keys": keys}]}
    assert "carriers.0.keys.0.public_key: Value error, not valid standard base64" in registry_error(tmp_path, document)


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"public_key": base64.b64encode(bytes(31)).decode()}, "public_key: Value error, decodes to 31 bytes"),
        ({"public_key": None}, "public_key: Value error, an ed25519 key needs it"),
        ({"algorithm": "hmac-sha256"}, "public_key: Value error, an hmac-sha256 key has only a secret"),
        ({"algorithm": "rsa"}, "algorithm: Input should be 'ed25519' or 'hmac-sha256'"),
        ({"key_id": "has space"}, "key_id: String should match pattern"),
        ({"not_before": "2026-01-01T00:00:00"}, "not_before: Value error, timestamp must carry a timezone offset"),
        ({"not_after": "2025-01-01T00:00:00Z"}, "not_after: Value error, is before not_before"),
    ],
)
def test_a_bad_key_entry_says_which_field_and_why(fields: dict[str, object], message: str) -> None:
    document = entry_json(**fields)
    with pytest.raises(ValidationError) as raised:
        CarrierKey.model_validate_json(json.dumps({k: v for k, v in document.items() if v is not None}))
    assert message in describe(raised.value)


def test_an_hmac_secret_must_be_long_enough() -> None:
    short = base64.b64encode(bytes(31)).decode()
    with pytest.raises(ValidationError, match="secret\n.*decodes to 31 bytes; at least 32 are needed"):
        CarrierKey(key_id="k1", algorithm="hmac-sha256", secret=short, not_before=START)


def test_a_carrier_needs_a_key() -> None:
    with pytest.raises(ValidationError, match="keys\n.*at least 1 item"):
        CarrierRegistry.from_json(b'{"carriers": [{"party_id": "carrier.cr-rail", "name": "CR", "keys": []}]}')


def test_an_unreadable_or_non_json_registry_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match=f"{tmp_path / 'absent.json'}: cannot read the carrier registry"):
        load_registry(tmp_path / "absent.json")
    broken = tmp_path / "broken.json"
    broken.write_bytes(b"{not json")
    with pytest.raises(RegistryError, match=f"{broken}: not a valid carrier registry: .*Invalid JSON"):
        load_registry(broken)


def test_a_signing_key_file_is_validated_too(tmp_path: Path) -> None:
    path = tmp_path / "key.json"
    path.write_text(json.dumps({"carrier": "carrier.cr-rail", "key_id": "k1", "algorithm": "ed25519"}))
    expected = f"{path}: not a valid signing key: private_key: Value error, an ed25519 key needs it"
    with pytest.raises(RegistryError, match=expected):
        load_signing_key(path)


def test_lookups_find_registered_parties_and_keys() -> None:
    _, entry = keyed("carrier.cr-rail")
    registry = registry_of(("carrier.cr-rail", [entry]))
    found = registry.carrier("carrier.cr-rail")
    assert found is not None and found.key("k1") == entry and found.key("k2") is None
    assert registry.carrier("carrier.sc-road") is None


@pytest.mark.parametrize("algorithm", ["ed25519", "hmac-sha256"])
def test_new_keys_are_fresh_and_round_trip_through_json(algorithm: Algorithm) -> None:
    first, first_entry = new_key("carrier.cr-rail", "k1", algorithm, START)
    second, _ = new_key("carrier.cr-rail", "k1", algorithm, START)
    assert first.material != second.material
    assert SigningKey.model_validate_json(first.model_dump_json()) == first
    assert CarrierKey.model_validate_json(first_entry.model_dump_json()) == first_entry
    if algorithm == "ed25519":
        assert first_entry.secret is None and first_entry.public_key is not None
    else:
        assert first_entry.secret == first.secret  # a shared secret: both sides hold it


# --- the demo registry and keys ---------------------------------------------------------------------------------


def demo_sources() -> set[str]:
    sources = set()
    for log in EXAMPLES.glob("*.jsonl"):
        for line in log.read_text().splitlines():
            if line.strip():
                sources.add(json.loads(line)["source"])
    return sources


def test_every_party_in_the_example_journeys_is_registered() -> None:
    registry = load_registry(EXAMPLES / "carriers.json")
    assert demo_sources() <= {carrier.party_id for carrier in registry.carriers}


def test_every_demo_key_verifies_against_the_demo_registry() -> None:
    registry = load_registry(EXAMPLES / "carriers.json")
    # signing keys are named <party>.<key id>.json; tokens.json holds the readers' demo API tokens
    key_files = sorted(p for p in (EXAMPLES / "keys").glob("*.json") if p.name != "tokens.json")
    registered = {(carrier.party_id, key.key_id) for carrier in registry.carriers for key in carrier.keys}
    assert {(key.carrier, key.key_id) for key in map(load_signing_key, key_files)} == registered
    for path in key_files:
        key = load_signing_key(path)
        assert path.name == f"{key.carrier}.{key.key_id}.json"
        assert verify_kafka_headers(registry, kafka_signature_headers(BODY, key, FORMAT, NOW), BODY, NOW, FORMAT, NOW) == (key.carrier, None)


def test_the_demo_registry_shows_a_rotation_and_an_hmac_key() -> None:
    registry = load_registry(EXAMPLES / "carriers.json")
    oceanline = registry.carrier("carrier.oceanline")
    assert oceanline is not None and len(oceanline.keys) == 2
    old, new = oceanline.keys
    assert old.not_after is not None and old.not_after.year == 2027 and new.not_before < old.not_after
    assert any(key.algorithm == "hmac-sha256" for carrier in registry.carriers for key in carrier.keys)
