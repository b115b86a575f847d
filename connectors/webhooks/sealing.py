"""Webhook secrets at rest: sealed with AES-256-GCM under a key the operator supplies, never stored in clear.

The hub needs each secret to sign with, so it keeps it, sealed. A sealed value is `len(key id) | key id | 12-byte
nonce | ciphertext and tag`, with the subscription id as associated data: it opens only under its key and only as
its own subscription's secret. The keyring is a file (MMHUB_WEBHOOKS_KEYS_FILE), one `<key id> <base64 of 32
bytes>` a line: the first key seals, the others only open (old keys while `mmhub webhooks rotate-key` re-seals).

Without that setting, a development key is made under $MMHUB_HOME/run (where `make up` runs the dev stack), and only
there: with no key and no dev stack, the hub refuses to start rather than keep secrets in clear.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

log = logging.getLogger(__name__)

KEYS_FILE = "MMHUB_WEBHOOKS_KEYS_FILE"
DEV_KEYS = "webhook-keys.dev"  # under $MMHUB_HOME/run
KEY_BYTES = 32
NONCE_BYTES = 12
_KEY_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")


class KeyProblem(ValueError):
    """No usable keyring, or a sealed secret that the keyring does not open: the hub does not start on it."""


def _associated(subscription_id: str) -> bytes:
    return f"mmhub.webhook-secret:{subscription_id}".encode()


@dataclass(frozen=True)
class Keyring:
    """The operator's keys by id; `current` seals, every key opens."""

    current: str
    keys: Mapping[str, bytes]
    source: str  # where the keys came from, for error messages

    def seal(self, secret: str, subscription_id: str) -> bytes:
        nonce = secrets.token_bytes(NONCE_BYTES)
        sealed = AESGCM(self.keys[self.current]).encrypt(nonce, secret.encode(), _associated(subscription_id))
        kid = self.current.encode()
        return bytes([len(kid)]) + kid + nonce + sealed

    def open(self, sealed: bytes, subscription_id: str) -> str:
        """The secret; KeyProblem if its key is not in the keyring, or does not open it."""
        kid = key_id(sealed)
        key = self.keys.get(kid)
        if key is None:
            raise KeyProblem(
                f"the webhook secret of {subscription_id} is sealed with key {kid!r}, which is not in {self.source}"
                f" (it has {', '.join(sorted(self.keys))})"
            )
        start = 1 + len(kid)
        nonce, body = sealed[start:start + NONCE_BYTES], sealed[start + NONCE_BYTES:]
        try:
            return AESGCM(key).decrypt(nonce, body, _associated(subscription_id)).decode()
        except InvalidTag:
            raise KeyProblem(
                f"the webhook secret of {subscription_id} does not open with key {kid!r} of {self.source}:"
                " a different key under the same id, or a value not sealed for this subscription"
            ) from None


def key_id(sealed: bytes) -> str:
    """The id of the key a sealed value was sealed with."""
    return sealed[1:1 + sealed[0]].decode("ascii", "replace") if sealed else ""


def parse_keyring(text: str, source: str) -> Keyring:
    """`<key id> <base64 key>` lines (`#` starts a comment); the first key is the current one. Raises KeyProblem."""
    keys: dict[str, bytes] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        try:
            kid, encoded = parts
            key = base64.b64decode(encoded, validate=True)
        except (ValueError, binascii.Error):
            raise KeyProblem(f"{source}, line {number}: expected `<key id> <base64 of {KEY_BYTES} bytes>`") from None
        if not _KEY_ID.fullmatch(kid) or len(key) != KEY_BYTES or kid in keys:
            raise KeyProblem(
                f"{source}, line {number}: a key id is 1-64 of A-Z a-z 0-9 . _ -, used once, and a key is"
                f" {KEY_BYTES} bytes (this one is {len(key)})"
            )
        keys[kid] = key
    if not keys:
        raise KeyProblem(f"{source} has no key")
    return Keyring(next(iter(keys)), keys, source)


def new_key_line(kid: str) -> str:
    """A fresh keyring line."""
    return f"{kid} {base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode()}"


def load_keyring(environ: Mapping[str, str]) -> Keyring:
    """The operator's keyring (MMHUB_WEBHOOKS_KEYS_FILE), else the dev stack's development key. Raises KeyProblem."""
    named = environ.get(KEYS_FILE, "").strip()
    if named:
        try:
            return parse_keyring(Path(named).read_text("utf-8"), f"{KEYS_FILE}={named}")
        except OSError as error:
            raise KeyProblem(f"{KEYS_FILE}={named}: {error.strerror or error}") from None
    run = Path(environ.get("MMHUB_HOME", Path.home() / ".cache" / "mmhub")) / "run"
    if not run.is_dir():
        raise KeyProblem(
            f"no key to seal webhook secrets with: set {KEYS_FILE} to the operator's keyring (see README, Webhooks),"
            f" or start the dev stack (`make up`, which makes {run}) for a development-only key"
        )
    path = run / DEV_KEYS
    if not path.exists():
        _create(path, f"# development only: made by mmhub for the dev stack; set {KEYS_FILE} in production\n"
                      f"{new_key_line('dev')}\n")
    log.warning("webhook secrets are sealed with the development key %s; set %s in production", path, KEYS_FILE)
    return parse_keyring(path.read_text("utf-8"), str(path))


def _create(path: Path, text: str) -> None:
    """Write `path` (mode 0600) unless it exists: whole or not at all, the first of several processes wins."""
    scratch = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    descriptor = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.link(scratch, path)
    except FileExistsError:
        pass
    finally:
        scratch.unlink()
