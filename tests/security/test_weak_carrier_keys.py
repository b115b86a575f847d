"""A carrier key of small order signs anything for anyone.

Under OpenSSL's Ed25519 check (the `cryptography` package, the hub's verifier before this test), the identity point
as a public key accepts the signature R = identity, S = 0 over every message: whoever knows a carrier registered such
a key (by mistake, or a hostile onboarding) can publish as that carrier. The registry now refuses any public key that
is not a point of the curve's prime-order group, and the verifier (libsodium) refuses those signatures even for a
key that reached it some other way.
"""

from __future__ import annotations

import base64
from datetime import datetime, timedelta, timezone

import pytest
from cryptography.exceptions import InvalidSignature
from hypothesis import given
from hypothesis import strategies as st
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import ValidationError

from connectors.carriers import (
    HTTP_SIGNATURE,
    Carrier,
    CarrierKey,
    CarrierRegistry,
    http_signature_headers,
    new_key,
    signed_bytes,
    verify,
)

CARRIER = "carrier.cr-rail"
START = datetime(2026, 1, 1, tzinfo=timezone.utc)
NOW = START + timedelta(days=30)
T = int(NOW.timestamp())
BODY = b'{"event_id": "forged-1", "source": "carrier.cr-rail"}'
FORMAT = "canonical"

IDENTITY = bytes([1]) + bytes(31)  # the neutral element, order 1
# the other small-order points (orders 2, 4 and 8) in their canonical encodings
SMALL_ORDER = [
    IDENTITY,
    bytes.fromhex("ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f"),  # order 2
    bytes(32),  # order 4
    bytes.fromhex("26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05"),  # order 8
    bytes.fromhex("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a"),  # order 8
]
# R = the identity, S = 0: [S]B = R + [k]A holds for any k when A has small order and [k]A happens to be the identity
FORGED = IDENTITY + bytes(32)


def _entry(public: bytes) -> dict[str, object]:
    return {
        "key_id": "weak",
        "algorithm": "ed25519",
        "public_key": base64.b64encode(public).decode(),
        "not_before": START,
    }


def test_openssl_alone_accepts_the_forgery_so_the_hub_must_not_rely_on_it() -> None:
    """The control: the attack is real against the check the hub used before."""
    Ed25519PublicKey.from_public_bytes(IDENTITY).verify(FORGED, signed_bytes(FORMAT, T, BODY))  # does not raise
    _, good = new_key(CARRIER, "good", "ed25519", START)
    assert good.public_key is not None
    with pytest.raises(InvalidSignature):  # while a real key refuses it
        Ed25519PublicKey.from_public_bytes(base64.b64decode(good.public_key)).verify(FORGED, b"x")


@pytest.mark.parametrize("point", SMALL_ORDER, ids=lambda p: p.hex()[:8])
def test_the_registry_refuses_a_small_order_public_key(point: bytes) -> None:
    with pytest.raises(ValidationError, match="prime-order group"):
        CarrierKey.model_validate(_entry(point))


def test_the_verifier_refuses_the_forgery_even_for_a_key_that_skipped_the_registry() -> None:
    weak = CarrierKey.model_construct(**_entry(IDENTITY))  # no validation: as if loaded by some other path
    registry = CarrierRegistry.model_construct(carriers=[Carrier.model_construct(party_id=CARRIER, name=CARRIER, keys=[weak])])
    signature = f"t={T},v1={base64.b64encode(FORGED).decode()}"
    for body in (BODY, b"any other message"):
        refused = verify(registry, CARRIER, "weak", signature, body, NOW, FORMAT)
        assert refused is not None and refused.code == "bad_signature", refused


def test_a_real_key_still_verifies() -> None:
    """The same path with an honest key: the refusal above is about the key, not the check being broken."""
    signing, entry = new_key(CARRIER, "good", "ed25519", START)
    registry = CarrierRegistry(carriers=[Carrier(party_id=CARRIER, name=CARRIER, keys=[entry])])
    headers = http_signature_headers(BODY, signing, FORMAT, NOW)
    assert verify(registry, CARRIER, "good", headers[HTTP_SIGNATURE], BODY, NOW, FORMAT) is None


@given(
    algorithm=st.sampled_from(["ed25519", "hmac-sha256", "rsa", "", "ED25519"]),
    material=st.one_of(st.none(), st.binary(max_size=40).map(lambda raw: base64.b64encode(raw).decode()), st.text(max_size=50)),
)
def test_any_registry_key_entry_is_taken_or_refused_with_a_validation_error(algorithm: str, material: str | None) -> None:
    """The point check must not turn a malformed entry into another exception (found in review: an unknown algorithm
    with a short key raised nacl's TypeError out of the registry's validation)."""
    entry = {**_entry(IDENTITY), "algorithm": algorithm, "public_key": material}
    try:
        CarrierKey.model_validate(entry)
    except ValidationError:
        pass
