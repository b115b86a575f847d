"""Finding 8: webhook secrets are sealed at rest with the operator's key, which can be rotated; a wrong key stops
the hub with a clear error. On the real Postgres, through the `mmhub webhooks` commands an operator runs."""

from __future__ import annotations

import base64
from datetime import datetime, timezone
from pathlib import Path
from typing import Awaitable, Callable

import asyncpg
import pytest

from connectors.postgres.db import quote_ident
from connectors.postgres.migrate import _apply, packaged
from connectors.webhooks.delivery import SIGNATURE, SIGNATURE_PREVIOUS, verify
from hubconf.settings import Settings

from tests.integration.test_webhooks import (
    SHIPPER,
    Subscriber,
    cli,
    fetch,
    journeys,
    produce,
    store_for,
    until,
    webhooks,
)

pytestmark = pytest.mark.integration

NewSettings = Callable[..., Awaitable[Settings]]

KEY_1 = "k2026a " + base64.b64encode(bytes(range(32))).decode()
KEY_2 = "k2026b " + base64.b64encode(bytes(range(100, 132))).decode()
# the same id as KEY_1, another key: what a keyring copied wrong looks like
KEY_1_WRONG = "k2026a " + base64.b64encode(bytes(range(200, 232))).decode()


@pytest.fixture
def keyring(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """Write the operator's keyring file (lines in order, the first one current) and point the hub at it, in this
    process and in the commands it runs."""
    path = tmp_path / "webhook-keys"

    def write(*lines: str) -> None:
        path.write_text("".join(f"{line}\n" for line in lines))

    monkeypatch.setenv("MMHUB_WEBHOOKS_KEYS_FILE", str(path))
    return write


def subscribe(settings: Settings, url: str) -> tuple[str, str]:
    made = cli(settings, "subscribe", "--party", SHIPPER, "--url", url)
    assert made.returncode == 0, made.stderr
    printed = dict(line.split("\t") for line in made.stdout.splitlines())
    return printed["subscription_id"], printed["secret"]


async def stored_bytes(settings: Settings) -> bytes:
    """Every subscription row as Postgres holds it, each column as text (bytea in its hex form)."""
    rows = await fetch(settings, "SELECT s::text AS row FROM webhook_subscriptions s")
    return "\n".join(row["row"] for row in rows).encode()


def forms(secret: str) -> list[bytes]:
    """The secret, and the encodings of it a column could hold."""
    raw = secret.encode()
    return [raw, raw.hex().encode(), base64.b64encode(raw), base64.urlsafe_b64encode(raw)]


async def test_stored_secrets_are_sealed_not_clear_text(hub_settings: NewSettings, keyring: Callable[..., None]) -> None:
    settings = await hub_settings()
    keyring(KEY_1)
    sid, secret = subscribe(settings, "https://hooks.example.com/a")
    rotated = cli(settings, "rotate", sid)  # the old secret is kept too, for the grace period
    assert rotated.returncode == 0, rotated.stderr
    new_secret = dict(line.split("\t") for line in rotated.stdout.splitlines())["secret"]
    held = await stored_bytes(settings)
    assert sid.encode() in held  # the row is there
    for value in (secret, new_secret):
        assert not any(form in held for form in forms(value)), held
    assert b"whsec_" not in held


async def test_rotating_the_key_reseals_every_secret_and_the_old_key_is_then_unneeded(
    hub_settings: NewSettings, keyring: Callable[..., None]
) -> None:
    settings = await hub_settings()
    keyring(KEY_1)
    endpoint = Subscriber()
    await endpoint.start()
    sid, first_secret = subscribe(settings, endpoint.url)
    rotated = cli(settings, "rotate", sid)
    assert rotated.returncode == 0, rotated.stderr
    secret = dict(line.split("\t") for line in rotated.stdout.splitlines())["secret"]
    other_sid, _ = subscribe(settings, "https://hooks.example.com/b")
    before = await stored_bytes(settings)

    keyring(KEY_2, KEY_1)  # the new key first; the old one still opens
    reseal = cli(settings, "rotate-key")
    assert reseal.returncode == 0, reseal.stderr
    assert "2 subscription(s)" in reseal.stdout and "k2026a" in reseal.stdout, reseal.stdout
    after = await stored_bytes(settings)
    assert after != before and b"k2026b".hex().encode() in after and b"k2026a".hex().encode() not in after

    keyring(KEY_2)  # the old key gone: the hub still signs with the same secrets
    messages = journeys(SHIPPER, ["SHP-K-1"], 2)
    async with store_for(settings) as store:
        assert (await store.subscription(other_sid)) is not None
        async with webhooks(settings) as task:
            await produce(settings, "shipper", messages)
            await until(lambda: len(endpoint.received) >= len(messages), "the notifications", task=task)
    await endpoint.stop()
    for call in endpoint.calls:
        assert verify(secret, call.body, call.headers[SIGNATURE])
        assert verify(first_secret, call.body, call.headers[SIGNATURE_PREVIOUS])
    again = cli(settings, "rotate-key")
    assert again.returncode == 0 and "0 subscription(s)" in again.stdout, again.stdout


async def test_a_wrong_or_missing_key_stops_the_hub_with_a_clear_error(
    hub_settings: NewSettings, keyring: Callable[..., None], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = await hub_settings()
    keyring(KEY_1)
    subscribe(settings, "https://hooks.example.com/a")

    keyring(KEY_2)  # a keyring without the key the secrets were sealed with
    missing = cli(settings, "list")
    assert missing.returncode == 2, (missing.returncode, missing.stdout)
    assert "sealed with key 'k2026a', which is not in MMHUB_WEBHOOKS_KEYS_FILE=" in missing.stderr, missing.stderr

    keyring(KEY_1_WRONG)  # the right id, the wrong key
    wrong = cli(settings, "run")
    assert wrong.returncode == 2 and "does not open with key 'k2026a'" in wrong.stderr, wrong.stderr

    monkeypatch.setenv("MMHUB_WEBHOOKS_KEYS_FILE", str(tmp_path / "nowhere"))
    absent = cli(settings, "subscribe", "--party", SHIPPER, "--url", "https://hooks.example.com/b")
    assert absent.returncode == 2 and "nowhere" in absent.stderr, absent.stderr
    rows = await fetch(settings, "SELECT count(*) AS n FROM webhook_subscriptions")
    assert rows[0]["n"] == 1  # nothing was stored without a key

    # no key named, and no dev stack to make a development key in: refused rather than stored in clear
    monkeypatch.setenv("MMHUB_WEBHOOKS_KEYS_FILE", "")
    monkeypatch.setenv("MMHUB_HOME", str(tmp_path / "no-dev-stack"))
    refused = cli(settings, "subscribe", "--party", SHIPPER, "--url", "https://hooks.example.com/c")
    assert refused.returncode == 2 and "no key to seal webhook secrets with" in refused.stderr, refused.stderr


async def test_clear_text_secrets_from_before_are_sealed_at_start_up(
    hub_settings: NewSettings, keyring: Callable[..., None]
) -> None:
    """A schema at the migrations before 0009, with a subscription holding its secret in clear, as 0004 made it."""
    settings = await hub_settings()
    keyring(KEY_1)
    conn = await asyncpg.connect(settings.pg_dsn)
    try:
        await _apply(conn, settings.pg_schema, [m for m in packaged() if m.version < 9])
        await conn.execute(
            f"INSERT INTO {quote_ident(settings.pg_schema)}.webhook_subscriptions (subscription_id, party, url, secret,"
            " previous_secret, previous_secret_until, created_at) VALUES ('whs_old', $1, 'https://hooks.example.com/o',"
            " 'whsec_cleartext_current', 'whsec_cleartext_previous', $2, $2)",
            SHIPPER, datetime(2099, 1, 1, tzinfo=timezone.utc),
        )
    finally:
        await conn.close()
    listed = cli(settings, "list")  # any command migrates, then seals
    assert listed.returncode == 0, listed.stderr
    held = await stored_bytes(settings)
    assert b"whs_old" in held and b"whsec_cleartext" not in held
    async with store_for(settings) as store:
        old = await store.subscription("whs_old")
    assert old is not None
    assert (old.secret, old.previous_secret) == ("whsec_cleartext_current", "whsec_cleartext_previous")
