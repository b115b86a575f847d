"""`mmhub ingest` against the real broker: carrier files reach their raw topic byte for byte, keyed by the carrier
and signed so that the hub can tell who sent them; a missing or oversized file stops everything before sending."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Awaitable, Callable

import pytest

from connectors.carriers import load_registry, verify_kafka_headers
from connectors.kafka import MAX_RAW_BYTES
from hubconf.settings import Settings
from mmhub.entry import NO_FILE

from tests.integration.hub import read_topic

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "connectors" / "edifact" / "samples"
KEY = REPO / "examples" / "keys" / "carrier.cr-rail.2025-01.json"
REGISTRY = REPO / "examples" / "carriers.json"


def ingest(settings: Settings, *args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "MMHUB_KAFKA": settings.kafka,
        "MMHUB_PG_DSN": settings.pg_dsn,
        "MMHUB_NAMESPACE": settings.namespace,
        "MMHUB_PG_SCHEMA": settings.pg_schema,
    }
    command = [sys.executable, "-m", "mmhub.cli", "ingest", *map(str, args)]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)


async def test_ingest_sends_each_file_untouched_and_signed_by_the_carrier(
    hub_settings: Callable[..., Awaitable[Settings]],
) -> None:
    settings = await hub_settings()
    files = [SAMPLES / "iftsta_rail.edi", SAMPLES / "iftsta_unknown_code.edi"]
    done = ingest(settings, "--format", "edifact", "--key", KEY, *files)
    assert done.returncode == 0, done.stderr

    topic = settings.topics.raw("edifact")
    assert topic == f"{settings.namespace}.carrier.edifact.raw"
    printed = [line.split("\t") for line in done.stdout.splitlines()]
    assert [(row[0], row[1], row[2]) for row in printed] == [
        (str(path), f"{path.stat().st_size} bytes", topic) for path in files
    ]

    messages = await read_topic(settings, topic, expected=len(files))
    assert len(messages) == len(files)
    # one key, so one partition, in the order sent
    messages.sort(key=lambda message: message.offset)
    registry = load_registry(REGISTRY)
    for path, row, message in zip(files, printed, messages):
        assert message.value == path.read_bytes()
        assert message.key == b"carrier.cr-rail"
        assert row[3:] == [f"partition {message.partition}", f"offset {message.offset}"]
        now = datetime.now(timezone.utc)
        assert verify_kafka_headers(
            registry, message.headers, message.value, now, "edifact", datetime.fromtimestamp(message.timestamp / 1000, timezone.utc)
        ) == ("carrier.cr-rail", None)


async def test_a_missing_or_oversized_file_stops_the_ingest_before_anything_is_sent(
    hub_settings: Callable[..., Awaitable[Settings]], tmp_path: Path
) -> None:
    settings = await hub_settings()
    good = SAMPLES / "iftsta_rail.edi"
    oversized = tmp_path / "huge.edi"
    oversized.write_bytes(b"'" * (MAX_RAW_BYTES + 1))

    refused = ingest(settings, "--format", "edifact", "--key", KEY, good, oversized)
    assert refused.returncode == NO_FILE
    assert f"{oversized}: larger than the limit of {MAX_RAW_BYTES} bytes" in refused.stderr
    assert "nothing sent" in refused.stderr

    refused = ingest(settings, "--format", "edifact", "--key", KEY, good, tmp_path / "absent.edi")
    assert refused.returncode == NO_FILE
    assert f"{tmp_path / 'absent.edi'}: No such file or directory" in refused.stderr

    refused = ingest(settings, "--format", "edifact", "--key", tmp_path / "no-key.json", good)
    assert refused.returncode == NO_FILE
    assert "cannot read the signing key" in refused.stderr

    # then one good ingest: it must be the only message on the topic
    done = ingest(settings, "--format", "edifact", "--key", KEY, good)
    assert done.returncode == 0, done.stderr
    messages = await read_topic(settings, settings.topics.raw("edifact"), expected=1)
    assert [message.value for message in messages] == [good.read_bytes()]
