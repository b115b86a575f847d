"""Who may say what: the carriers registered with the hub, their keys, and signatures over the exact bytes sent.

A message is accepted only with the sender's party id, the id of one of its keys that is valid when it was received, and a signature
made with that key over the message's format, a signing time and the message's bytes as received. Pure apart from
reading files; `verify` never raises.

The signature header is versioned, like the hub's webhook signatures: `t=<unix seconds>,v1=<base64>`, where v1 signs
`v1\n<format>\n<t>\n<body>`. Binding the format stops a signed body from being re-posted as another format; the
time bounds a replay to `SIGNATURE_WINDOW_S` either side of when the hub received it (inside the window a replay is
a duplicate copy, which the receipts and the fold recognise).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import secrets
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Iterable, Literal, Sequence, TypeVar

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from nacl.bindings import crypto_core_ed25519_is_valid_point
from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey
from pydantic import Field, StringConstraints, ValidationError, ValidationInfo, field_validator

from schemas.base import Frozen, UtcDatetime
from schemas.identifiers import PartyId
from schemas.rejection import Rejection, describe
from hubconf.topics import SIGNATURE, SIGNATURE_CARRIER, SIGNATURE_KEY_ID

# The same three facts as the Kafka headers in hubconf.topics, for the HTTP gateway.
HTTP_CARRIER = "Mmhub-Carrier"
HTTP_KEY_ID = "Mmhub-Key-Id"
HTTP_SIGNATURE = "Mmhub-Signature"

Algorithm = Literal["ed25519", "hmac-sha256"]
KeyId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._-]{1,64}$")]

ED25519_KEY_BYTES = 32  # RFC 8032: a raw public key and a private seed are both 32 bytes
ED25519_SIGNATURE_BYTES = 64
HMAC_SHA256_BYTES = 32
MIN_SECRET_BYTES = 32  # RFC 2104: a key shorter than the hash output weakens the MAC
SHOWN_CHARS = 64  # how much of an unrecognised header value a rejection quotes back
SCHEME = "v1"  # what a signature covers; a new scheme gets a new name, and the header says which one it is
SIGNATURE_WINDOW_S = 300  # how far a signing time may be from the receipt (or the raw record's) time, either way
MAX_TIMESTAMP_DIGITS = 12


class RegistryError(ValueError):
    """A registry or signing-key file that cannot be used; the message names the file and what is wrong."""


def _decode(value: str) -> bytes:
    """Standard base64, strictly: no characters outside the alphabet, no missing padding. Raises ValueError."""
    try:
        return base64.b64decode(value.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error):
        raise ValueError("not valid standard base64") from None


def _encode(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _ed25519_material(value: str | None, info: ValidationInfo) -> str | None:
    """A public key or private seed: the raw 32 bytes for an ed25519 key, absent for an hmac-sha256 key."""
    algorithm = info.data.get("algorithm")
    if algorithm == "hmac-sha256" and value is not None:
        raise ValueError("an hmac-sha256 key has only a secret")
    if algorithm == "ed25519":
        if value is None:
            raise ValueError(f"an ed25519 key needs it: base64 of the raw {ED25519_KEY_BYTES} bytes")
        size = len(_decode(value))
        if size != ED25519_KEY_BYTES:
            raise ValueError(f"decodes to {size} bytes; an ed25519 key is {ED25519_KEY_BYTES}")
    return value


def _hmac_secret(value: str | None, info: ValidationInfo) -> str | None:
    """A shared secret: at least 32 bytes for an hmac-sha256 key, absent for an ed25519 key."""
    algorithm = info.data.get("algorithm")
    if algorithm == "ed25519" and value is not None:
        raise ValueError("an ed25519 key has no secret")
    if algorithm == "hmac-sha256":
        if value is None:
            raise ValueError(f"an hmac-sha256 key needs it: base64 of at least {MIN_SECRET_BYTES} bytes")
        size = len(_decode(value))
        if size < MIN_SECRET_BYTES:
            raise ValueError(f"decodes to {size} bytes; at least {MIN_SECRET_BYTES} are needed")
    return value


def _repeated(values: Iterable[str]) -> list[str]:
    seen: set[str] = set()
    repeated: list[str] = []
    for value in values:
        if value in seen and value not in repeated:
            repeated.append(value)
        seen.add(value)
    return repeated


class CarrierKey(Frozen):
    """One key a carrier signs with, as the hub holds it, and when it may be used (both ends included)."""

    key_id: KeyId
    algorithm: Algorithm
    public_key: str | None = Field(default=None, validate_default=True)
    secret: str | None = Field(default=None, validate_default=True)
    not_before: UtcDatetime
    not_after: UtcDatetime | None = None

    @field_validator("public_key")
    @classmethod
    def _public_key(cls, value: str | None, info: ValidationInfo) -> str | None:
        value = _ed25519_material(value, info)
        # only once the algorithm is known to be ed25519: then the material is 32 bytes (checked just above)
        if info.data.get("algorithm") == "ed25519" and not crypto_core_ed25519_is_valid_point(_decode(value or "")):
            # a small-order key (the identity point, say) "verifies" one fixed signature over any message under
            # OpenSSL's check: whoever knows it could sign as the carrier. libsodium refuses those signatures too.
            raise ValueError("not an ed25519 public key: not a point of the curve's prime-order group")
        return value

    @field_validator("secret")
    @classmethod
    def _secret(cls, value: str | None, info: ValidationInfo) -> str | None:
        return _hmac_secret(value, info)

    @field_validator("not_after")
    @classmethod
    def _after_start(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        start = info.data.get("not_before")
        if value is not None and start is not None and value < start:
            raise ValueError(f"is before not_before ({start.isoformat()})")
        return value

    @property
    def material(self) -> bytes:
        """The raw Ed25519 public key or HMAC secret (validation made sure exactly the right one is there)."""
        return _decode(self.public_key or self.secret or "")

    def valid_at(self, now: datetime) -> bool:
        return self.not_before <= now and (self.not_after is None or now <= self.not_after)


class Carrier(Frozen):
    """A party allowed to publish, with every key it may sign with (more than one while a key is rotated)."""

    party_id: PartyId
    name: Annotated[str, StringConstraints(min_length=1)]
    keys: list[CarrierKey] = Field(min_length=1)

    @field_validator("keys")
    @classmethod
    def _unique_key_ids(cls, keys: list[CarrierKey]) -> list[CarrierKey]:
        repeated = _repeated(key.key_id for key in keys)
        if repeated:
            raise ValueError(f"key_id {', '.join(repeated)} appears more than once")
        return keys

    def key(self, key_id: str) -> CarrierKey | None:
        return next((key for key in self.keys if key.key_id == key_id), None)


class CarrierRegistry(Frozen):
    """Every party registered with the hub, with its keys."""

    carriers: list[Carrier]

    @field_validator("carriers")
    @classmethod
    def _unique_party_ids(cls, carriers: list[Carrier]) -> list[Carrier]:
        repeated = _repeated(carrier.party_id for carrier in carriers)
        if repeated:
            raise ValueError(f"party_id {', '.join(repeated)} appears more than once")
        return carriers

    @classmethod
    def from_json(cls, raw: bytes) -> CarrierRegistry:
        """The registry in `raw`; raises pydantic's ValidationError if it is not a valid one."""
        return cls.model_validate_json(raw)

    def carrier(self, party_id: str) -> Carrier | None:
        return next((carrier for carrier in self.carriers if carrier.party_id == party_id), None)


class SigningKey(Frozen):
    """The carrier's side of a key: what it signs with. For ed25519 the hub never holds it."""

    carrier: PartyId
    key_id: KeyId
    algorithm: Algorithm
    private_key: str | None = Field(default=None, validate_default=True)
    secret: str | None = Field(default=None, validate_default=True)

    @field_validator("private_key")
    @classmethod
    def _private_key(cls, value: str | None, info: ValidationInfo) -> str | None:
        return _ed25519_material(value, info)

    @field_validator("secret")
    @classmethod
    def _secret(cls, value: str | None, info: ValidationInfo) -> str | None:
        return _hmac_secret(value, info)

    @property
    def material(self) -> bytes:
        """The raw Ed25519 private seed or HMAC secret."""
        return _decode(self.private_key or self.secret or "")


Loaded = TypeVar("Loaded", CarrierRegistry, SigningKey)


def _load(path: Path, model: type[Loaded], what: str) -> Loaded:
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise RegistryError(f"{path}: cannot read the {what}: {error.strerror or error}") from None
    try:
        return model.model_validate_json(raw)
    except ValidationError as error:
        raise RegistryError(f"{path}: not a valid {what}: {describe(error)}") from None


def load_registry(path: Path) -> CarrierRegistry:
    """The registry in `path`; raises RegistryError naming the file and the problem."""
    return _load(path, CarrierRegistry, "carrier registry")


def load_signing_key(path: Path) -> SigningKey:
    """The signing key in `path`; raises RegistryError naming the file and the problem."""
    return _load(path, SigningKey, "signing key")


def new_key(carrier: str, key_id: str, algorithm: Algorithm, not_before: datetime) -> tuple[SigningKey, CarrierKey]:
    """Fresh key material: what the carrier keeps, and the entry the hub registers (for HMAC, the same secret)."""
    if algorithm == "ed25519":
        private = Ed25519PrivateKey.generate()
        signing = SigningKey(
            carrier=carrier, key_id=key_id, algorithm=algorithm, private_key=_encode(private.private_bytes_raw())
        )
        public = _encode(private.public_key().public_bytes_raw())
        return signing, CarrierKey(key_id=key_id, algorithm=algorithm, public_key=public, not_before=not_before)
    secret = _encode(secrets.token_bytes(MIN_SECRET_BYTES))
    signing = SigningKey(carrier=carrier, key_id=key_id, algorithm=algorithm, secret=secret)
    return signing, CarrierKey(key_id=key_id, algorithm=algorithm, secret=secret, not_before=not_before)


def signed_bytes(format_name: str, timestamp: int, body: bytes) -> bytes:
    """What a v1 signature covers: the scheme, the format, the signing time and the exact body."""
    return f"{SCHEME}\n{format_name}\n{timestamp}\n".encode() + body


def sign(body: bytes, key: SigningKey, format_name: str, at: datetime) -> str:
    """The signature header's value, `t=<unix seconds>,v1=<base64>`: the Ed25519 signature, or HMAC-SHA256(secret),
    over `signed_bytes(format_name, t, body)`."""
    timestamp = int(at.timestamp())
    content = signed_bytes(format_name, timestamp, body)
    if key.algorithm == "ed25519":
        raw = Ed25519PrivateKey.from_private_bytes(key.material).sign(content)
    else:
        raw = hmac.digest(key.material, content, "sha256")
    return f"t={timestamp},{SCHEME}={_encode(raw)}"


def kafka_signature_headers(body: bytes, key: SigningKey, format_name: str, at: datetime) -> list[tuple[str, bytes]]:
    return [
        (SIGNATURE_CARRIER, key.carrier.encode()),
        (SIGNATURE_KEY_ID, key.key_id.encode()),
        (SIGNATURE, sign(body, key, format_name, at).encode()),
    ]


def http_signature_headers(body: bytes, key: SigningKey, format_name: str, at: datetime) -> dict[str, str]:
    return {HTTP_CARRIER: key.carrier, HTTP_KEY_ID: key.key_id, HTTP_SIGNATURE: sign(body, key, format_name, at)}


def parse_signature(header: str) -> tuple[int, str] | Rejection:
    """(signing time, base64 signature) from `t=<unix seconds>,v1=<base64>`; a rejection saying what is wrong."""
    fields: dict[str, list[str]] = {}
    for part in header.split(","):
        name, equals, value = part.strip().partition("=")
        if not equals:
            return Rejection(
                "unsupported_scheme",
                f"signature {_shown(header)} names no scheme; send t=<unix seconds>,{SCHEME}=<base64> (a signature"
                " over the body alone is no longer accepted)",
            )
        fields.setdefault(name, []).append(value)
    schemes = sorted(set(fields) - {"t"})
    if SCHEME not in fields:
        return Rejection(
            "unsupported_scheme", f"signature scheme(s) {', '.join(schemes) or 'none'} not supported; use {SCHEME}"
        )
    repeated = [name for name, values in fields.items() if len(values) > 1]
    if repeated or "t" not in fields:
        what = f"{', '.join(repeated)} appear(s) more than once" if repeated else "it has no t=<unix seconds>"
        return Rejection("bad_signature", f"signature {_shown(header)}: {what}")
    (stamp,) = fields["t"]
    if not (stamp.isascii() and stamp.isdigit() and len(stamp) <= MAX_TIMESTAMP_DIGITS):
        return Rejection("bad_signature", f"signing time t={_shown(stamp)} is not whole unix seconds")
    return int(stamp), fields[SCHEME][0]


def _shown(value: str) -> str:
    return repr(value) if len(value) <= SHOWN_CHARS else repr(value[:SHOWN_CHARS]) + "..."


@lru_cache(maxsize=1024)
def _ed25519_public(material: str) -> VerifyKey:
    """The verifying key of a registered key's base64 material (validated when the registry was loaded): made once
    per key, not once per message. Keyed by the material itself, so a registry reload can only add entries.

    Verification is libsodium's (PyNaCl), not OpenSSL's (`cryptography`, which still makes and signs with keys): one
    verify of a 500-byte body costs 45 us of CPU here against 98 us (bench/README, "Signatures checked by
    libsodium"), and every reference-only carrier message pays it on the connect stage. libsodium is the stricter
    of the two: it also refuses a small-order public key and a non-canonical signature."""
    return VerifyKey(_decode(material))


def _signed_by(key: CarrierKey, signature: bytes, body: bytes) -> bool:
    if key.algorithm == "ed25519":
        if len(signature) != ED25519_SIGNATURE_BYTES:
            return False
        try:
            _ed25519_public(key.public_key or "").verify(body, signature)
        except BadSignatureError:
            return False
        return True
    return hmac.compare_digest(signature, hmac.digest(key.material, body, "sha256"))


def verify(
    registry: CarrierRegistry,
    carrier: str | None,
    key_id: str | None,
    signature: str | None,
    body: bytes,
    now: datetime,
    format_name: str,
    received_at: datetime | None = None,
) -> Rejection | None:
    """None if `signature` is `carrier`'s key `key_id`, valid at `now` (timezone-aware), over exactly `body` as
    `format_name`, signed within SIGNATURE_WINDOW_S of `received_at` (default: `now`)."""
    if not carrier or not key_id or not signature:
        given = (("carrier", carrier), ("key id", key_id), ("signature", signature))
        missing = ", ".join(what for what, value in given if not value)
        return Rejection("unsigned", f"no {missing}: a message names its carrier and key and is signed over its bytes")
    registered = registry.carrier(carrier)
    if registered is None:
        return Rejection("unknown_carrier", f"carrier {_shown(carrier)} is not registered with the hub")
    key = registered.key(key_id)
    if key is None:
        return Rejection("unknown_key", f"carrier {carrier} has no key {_shown(key_id)}")
    if not key.valid_at(now):
        until = f" until {key.not_after.isoformat()}" if key.not_after is not None else ""
        return Rejection(
            "key_not_valid",
            f"key {key_id} of {carrier} is valid from {key.not_before.isoformat()}{until}, not at {now.isoformat()}",
        )
    parsed = parse_signature(signature)
    if isinstance(parsed, Rejection):
        return parsed
    timestamp, encoded = parsed
    try:
        raw = _decode(encoded)
    except ValueError:
        return Rejection("bad_signature", f"signature {_shown(encoded)} is not valid standard base64")
    size = ED25519_SIGNATURE_BYTES if key.algorithm == "ed25519" else HMAC_SHA256_BYTES
    if len(raw) != size:
        return Rejection("bad_signature", f"signature is {len(raw)} bytes; an {key.algorithm} signature is {size}")
    if not _signed_by(key, raw, signed_bytes(format_name, timestamp, body)):
        return Rejection(
            "bad_signature",
            f"signature does not match the {len(body)} bytes as format {format_name} signed at t={timestamp} (key"
            f" {key_id} of {carrier}); a signature covers the format, the time and the body",
        )
    received = int((received_at or now).timestamp())
    if abs(received - timestamp) > SIGNATURE_WINDOW_S:
        try:
            signed_at = datetime.fromtimestamp(timestamp, timezone.utc).isoformat()
        except (ValueError, OverflowError, OSError):  # t may be up to 12 digits: past year 9999
            signed_at = "a time past year 9999"
        return Rejection(
            "stale_signature",
            f"signed at {signed_at} (t={timestamp}), received at t={received}: more than {SIGNATURE_WINDOW_S} s"
            " apart, so a replay or a wrong clock; sign each send afresh",
        )
    return None


def verify_kafka_headers(
    registry: CarrierRegistry,
    headers: Sequence[tuple[str, bytes | None]],
    body: bytes,
    now: datetime,
    format_name: str,
    record_time: datetime,
) -> tuple[str | None, Rejection | None]:
    """(the authenticated carrier, None), or (None, why not) from a raw message's signature headers. The replay
    window is measured against the record's own timestamp, so the answer does not depend on when it is read."""
    values: dict[str, str | None] = {}
    for name in (SIGNATURE_CARRIER, SIGNATURE_KEY_ID, SIGNATURE):
        found = [value for header, value in headers if header == name]
        if len(found) > 1:
            return None, Rejection("bad_signature", f"header {name} appears {len(found)} times; a message carries one")
        try:
            values[name] = found[0].decode("utf-8") if found and found[0] is not None else None
        except UnicodeDecodeError:
            return None, Rejection("bad_signature", f"header {name} is not UTF-8")
    carrier = values[SIGNATURE_CARRIER]
    rejection = verify(
        registry, carrier, values[SIGNATURE_KEY_ID], values[SIGNATURE], body, now, format_name, record_time
    )
    return (carrier, None) if rejection is None else (None, rejection)
