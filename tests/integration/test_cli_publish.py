"""No silent failures on the way in, against the real broker: `publish` and `ingest` check what they send as the hub
will and refuse (exit 1, nothing sent) what it would dead-letter; `mmhub dlq` shows what the hub refused, and why."""

from __future__ import annotations

from pathlib import Path
from typing import Awaitable, Callable

import orjson

from connectors.kafka import read_all, read_jsonl
from connectors.postgres.store import fetch_record
from hubconf.settings import Settings
from mmhub.entry import REFUSED
from tests.integration.cli import REPO, env_of, mmhub
from tests.integration.hub import HubProcess, JOURNEY, JOURNEY_ID, wait_for
from tests.unit.test_entitlement import FORGED, REASON

MALFORMED = [b'{"event_type": "tracking", "oops": 1}', b"not json", b'{"shipment_id": "SHP-2026-000042"}']
KEY = REPO / "examples" / "keys" / "carrier.cr-rail.2025-01.json"
RAIL_EDI = REPO / "examples" / "formats" / "rail.edi"


def _mixed(tmp_path: Path) -> tuple[Path, int]:
    """The example journey with three malformed lines at the end; (the file, how many lines)."""
    lines = read_jsonl(JOURNEY) + MALFORMED
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path, len(lines)


async def test_publish_sends_nothing_from_a_file_with_malformed_lines(
    hub_settings: Callable[..., Awaitable[Settings]], tmp_path: Path
) -> None:
    settings = await hub_settings()
    path, count = _mixed(tmp_path)
    code, lines, out = mmhub(["publish", str(path), "--json"], env_of(settings), tmp_path)
    assert code == REFUSED
    numbers = [count - 2, count - 1, count]
    assert [line.split(": rejected")[0] for line in lines[:3]] == [f"{path}:{n}" for n in numbers]
    assert lines[-1] == (
        f"mmhub publish: nothing sent: 3 of {count} line(s) would be dead-lettered"
        " (fix them, or send them anyway with --allow-rejects)"
    )
    summary = orjson.loads(out)
    assert (summary["sent"], [r["line"] for r in summary["rejected"]]) == (0, numbers)
    # the high watermark is the positive marker: the topic is read to its end, and the end is 0
    assert await read_all(settings, settings.topics.events) == []


async def test_publish_allow_rejects_sends_all_and_the_worker_dead_letters_them_as_dlq_shows(
    hub: tuple[Settings, HubProcess, HubProcess], tmp_path: Path
) -> None:
    settings, worker, _ = hub
    path, count = _mixed(tmp_path)
    code, lines, out = mmhub(["publish", str(path), "--allow-rejects", "--json"], env_of(settings), tmp_path)
    assert code == 0
    assert lines[-1] == f"published {count} events to {settings.topics.events} (3 of them will be dead-lettered: see `mmhub dlq`)"
    assert orjson.loads(out)["sent"] == count
    assert len(await read_all(settings, settings.topics.events)) == count

    worker.start()
    letters: list[dict[str, object]] = []

    async def three_letters() -> bool:
        code, _, out = mmhub(["dlq", "--json"], env_of(settings), tmp_path)
        assert code == 0
        letters[:] = orjson.loads(out)
        return len(letters) >= 3

    await wait_for(three_letters, 90, "three dead letters", worker)
    assert sorted(letter["value"].encode() for letter in letters) == sorted(MALFORMED)  # type: ignore[union-attr]
    assert {letter["code"] for letter in letters} == {"invalid_event", "invalid_json"}
    assert all(str(letter["source"]).startswith(f"{settings.topics.events}[") for letter in letters)
    assert all(str(letter["at"]).endswith("Z") for letter in letters)

    code, lines, out = mmhub(["dlq", "--code", "invalid_json"], env_of(settings), tmp_path)
    text = out.decode().splitlines()
    print("\n".join(text))
    assert code == 0 and text[0] == f"1 dead letter(s) on {settings.topics.dlq}"
    assert "invalid_json" in text[1] and "not valid UTF-8 JSON" in text[2]


async def test_ingest_with_an_unregistered_key_sends_nothing(
    hub_settings: Callable[..., Awaitable[Settings]], tmp_path: Path
) -> None:
    settings = await hub_settings()
    key = tmp_path / "unregistered.json"
    code, _, _ = mmhub(
        ["keys", "new", "--carrier", "carrier.cr-rail", "--key-id", "not-registered", "--out", str(key)], {}, tmp_path
    )
    assert code == 0
    code, lines, _ = mmhub(["ingest", "--format", "edifact", "--key", str(key), str(RAIL_EDI)], env_of(settings), tmp_path)
    assert code == REFUSED
    assert lines[0].startswith(f"mmhub ingest: {key}: carrier carrier.cr-rail has no key 'not-registered' (MMHUB_CARRIERS=")
    assert lines[-1] == "mmhub ingest: nothing sent (fix these, or send anyway with --allow-rejects)"
    assert await read_all(settings, settings.topics.raw("edifact")) == []


async def test_ingest_with_the_wrong_format_sends_nothing(
    hub_settings: Callable[..., Awaitable[Settings]], tmp_path: Path
) -> None:
    settings = await hub_settings()
    code, lines, _ = mmhub(["ingest", "--format", "dcsa", "--key", str(KEY), str(RAIL_EDI)], env_of(settings), tmp_path)
    assert code == REFUSED
    assert lines[0].startswith(f"mmhub ingest: {RAIL_EDI}: ") and lines[0].endswith("(as --format dcsa)")
    assert await read_all(settings, settings.topics.raw("dcsa")) == []
    # the control: the right format goes through, with its place on the topic in --json
    code, _, out = mmhub(["ingest", "--format", "edifact", "--key", str(KEY), str(RAIL_EDI), "--json"], env_of(settings), tmp_path)
    assert code == 0
    (sent,) = orjson.loads(out)["sent"]
    assert (sent["file"], sent["bytes"], sent["topic"]) == (str(RAIL_EDI), RAIL_EDI.stat().st_size, settings.topics.raw("edifact"))
    assert len(await read_all(settings, settings.topics.raw("edifact"))) == 1


def _journey_projected(hub: tuple[Settings, HubProcess, HubProcess], tmp_path: Path) -> list[str]:
    """Start the worker and the sink, `publish --wait` the example journey; the lines it printed."""
    settings, worker, sink = hub
    worker.start()
    sink.start()
    code, lines, _ = mmhub(["publish", str(JOURNEY), "--wait", "90"], env_of(settings), tmp_path)
    assert code == 0, "\n".join(lines) + worker.tail() + sink.tail()
    return lines


async def test_publish_wait_reports_each_version_until_postgres_has_the_shipment(
    hub: tuple[Settings, HubProcess, HubProcess], tmp_path: Path
) -> None:
    settings = hub[0]
    lines = _journey_projected(hub, tmp_path)
    assert lines[0] == f"published 52 events to {settings.topics.events}"
    assert lines[-2] == "SHP-2026-000042: version 52 of 52 in Postgres"
    assert lines[-1] == f"projected: 1 shipment(s) in Postgres ({settings.pg_schema})"


async def test_publish_wait_says_what_is_missing_when_nothing_projects(
    hub_settings: Callable[..., Awaitable[Settings]], tmp_path: Path
) -> None:
    settings = await hub_settings()
    code, lines, _ = mmhub(["publish", str(JOURNEY), "--wait", "2"], env_of(settings), tmp_path)
    assert code == REFUSED
    assert lines[-1].startswith("mmhub publish: not projected within 2 s; are `mmhub worker` and `mmhub sink` running")


async def test_publish_sends_nothing_from_a_file_with_an_event_the_merge_refuses_as_not_entitled(
    hub_settings: Callable[..., Awaitable[Settings]], tmp_path: Path
) -> None:
    settings = await hub_settings()
    path = tmp_path / "forged.jsonl"
    path.write_bytes(b"\n".join([*read_jsonl(JOURNEY), FORGED]) + b"\n")
    code, lines, out = mmhub(["publish", str(path), "--json"], env_of(settings), tmp_path)
    assert code == REFUSED
    assert lines[0] == f"{path}:53: rejected (not_entitled): {REASON}"
    assert lines[-1] == (
        "mmhub publish: nothing sent: 1 of 53 line(s) would be dead-lettered"
        " (fix them, or send them anyway with --allow-rejects)"
    )
    assert orjson.loads(out)["rejected"] == [{"line": 53, "code": "not_entitled", "reason": REASON}]
    assert await read_all(settings, settings.topics.events) == []  # the high watermark is 0: nothing sent


async def test_publish_wait_says_when_the_hub_refuses_an_event_as_not_entitled(
    hub: tuple[Settings, HubProcess, HubProcess], tmp_path: Path
) -> None:
    """The file alone does not say who carries leg 2 (the booking is in the hub already): the hub's record does."""
    settings, worker, sink = hub
    _journey_projected(hub, tmp_path)
    path = tmp_path / "forged.jsonl"
    path.write_bytes(FORGED + b"\n")
    code, lines, _ = mmhub(["publish", str(path), "--wait", "90"], env_of(settings), tmp_path)
    assert code == REFUSED, "\n".join(lines) + worker.tail() + sink.tail()
    assert lines[0] == f"published 1 events to {settings.topics.events}"
    assert lines[-1] == f"{path}: refused by the hub (not_entitled): {REASON}"
    record = await fetch_record(settings, JOURNEY_ID)
    assert record is not None and record["version"] == 53  # the wait ended once the hub had taken the event in
