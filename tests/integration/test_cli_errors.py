"""A newcomer's mistakes end in one line naming the setting or the file, and a documented exit code (mmhub.entry),
against the real broker and database: a closed Kafka port, a wrong Kafka or Postgres password, a Postgres port with
nothing on it, a missing file."""

from __future__ import annotations

import socket
import time
import uuid
from pathlib import Path

import pytest

from hubconf.settings import Settings
from mmhub.entry import KAFKA, NO_FILE, POSTGRES, USAGE
from tests.integration.cli import REPO
from tests.integration.cli import env_of
from tests.integration.cli import mmhub as run
from tests.integration.hub import HubProcess, wait_for
JOURNEY = str(REPO / "examples" / "journey.jsonl")
KEY = str(REPO / "examples" / "keys" / "carrier.cr-rail.2025-01.json")
RAIL = str(REPO / "examples" / "formats" / "rail.edi")


def closed_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def mmhub(args: list[str], env: dict[str, str], tmp_path: Path) -> tuple[int, list[str], float]:
    started = time.monotonic()
    code, lines, _ = run(args, env, tmp_path)
    return code, lines, time.monotonic() - started


ONE_SHOT_KAFKA = [
    ["publish", JOURNEY],
    ["topics"],
    ["parked"],
    ["dlq"],
    ["ingest", "--format", "edifact", "--key", KEY, RAIL],
]
SERVICES_KAFKA = [["worker"], ["sink"], ["share"], ["gateway", "--port", "0"]]


@pytest.mark.parametrize("args", ONE_SHOT_KAFKA + SERVICES_KAFKA, ids=lambda a: a[0])
def test_a_closed_kafka_port_is_one_line_and_exit_4(args: list[str], services: Settings, tmp_path: Path) -> None:
    port = closed_port()
    code, lines, took = mmhub(args, {"MMHUB_KAFKA": f"127.0.0.1:{port}"}, tmp_path)
    assert code == KAFKA
    assert lines[-1] == f"mmhub {args[0]}: MMHUB_KAFKA=127.0.0.1:{port} is unreachable (is the broker up? `mmhub dev status`)"
    assert not any("Traceback" in line for line in lines)
    if args in ONE_SHOT_KAFKA:
        assert len(lines) == 1, lines  # nothing but the line: no retries logged, no "Unclosed AIOKafkaProducer"
    assert took < 15, "a short bootstrap timeout, not 30 s of retries"


@pytest.mark.parametrize("args", [["publish", JOURNEY], ["worker"]], ids=lambda a: a[0])
def test_a_wrong_kafka_password_names_the_user(args: list[str], services: Settings, tmp_path: Path) -> None:
    code, lines, _ = mmhub(args, {"MMHUB_KAFKA_PASSWORD": "not-the-password"}, tmp_path)
    assert code == KAFKA
    assert lines[-1].startswith(f"mmhub {args[0]}: MMHUB_KAFKA={services.kafka} answers but refused the login of Kafka user")
    assert not any("Traceback" in line for line in lines)


def _wrong_password(dsn: str) -> str:
    return dsn.replace("mmhub:mmhub@", "mmhub:wrong@")


@pytest.mark.parametrize("args", [["shipment", "get", "SHP-2026-000042"], ["sink"], ["gateway", "--port", "0"]], ids=lambda a: a[0])
def test_a_wrong_postgres_password_is_one_line_and_exit_5(args: list[str], services: Settings, tmp_path: Path) -> None:
    assert "mmhub:mmhub@" in services.pg_dsn, "the test stack's DSN"
    code, lines, _ = mmhub(args, {"MMHUB_PG_DSN": _wrong_password(services.pg_dsn)}, tmp_path)
    assert code == POSTGRES
    shown = services.pg_dsn.replace("mmhub:mmhub@", "mmhub:***@")
    assert lines[-1] == f'mmhub {args[0]}: MMHUB_PG_DSN={shown}: password authentication failed for user "mmhub"'
    assert "wrong" not in "\n".join(lines), "the password is never printed"
    assert not any("Traceback" in line for line in lines)


def test_a_postgres_port_with_nothing_on_it(services: Settings, tmp_path: Path) -> None:
    port = closed_port()
    dsn = f"postgresql://mmhub:secret@127.0.0.1:{port}/mmhub"
    code, lines, _ = mmhub(["shipment", "get", "SHP-2026-000042"], {"MMHUB_PG_DSN": dsn}, tmp_path)
    assert code == POSTGRES
    assert len(lines) == 1
    assert lines[0].startswith(f"mmhub shipment: MMHUB_PG_DSN=postgresql://mmhub:***@127.0.0.1:{port}/mmhub is unreachable")


def test_a_malformed_postgres_dsn(tmp_path: Path) -> None:
    code, lines, _ = mmhub(["shipment", "get", "SHP-2026-000042"], {"MMHUB_PG_DSN": "localhost:5432"}, tmp_path)
    assert code == POSTGRES
    assert lines == [lines[0]] and lines[0].startswith("mmhub shipment: MMHUB_PG_DSN=localhost:5432 is not a Postgres DSN")


@pytest.mark.parametrize("command", ["publish", "fold"])
def test_a_missing_file_is_one_line_and_exit_3(command: str, tmp_path: Path) -> None:
    code, lines, _ = mmhub([command, "no-such.jsonl"], {}, tmp_path)
    assert (code, lines) == (NO_FILE, [f"mmhub {command}: no-such.jsonl: No such file or directory"])


def test_a_setting_that_is_not_a_number(tmp_path: Path) -> None:
    code, lines, _ = mmhub(["parked"], {"MMHUB_PARTITIONS": "eight"}, tmp_path)
    assert (code, lines) == (USAGE, ["mmhub parked: MMHUB_PARTITIONS='eight' is not a whole number"])


def test_a_schema_without_the_hub_tables(services: Settings, tmp_path: Path) -> None:
    code, lines, _ = mmhub(["shipment", "get", "SHP-2026-000042"], {"MMHUB_PG_SCHEMA": "no_such_schema"}, tmp_path)
    shown = services.pg_dsn.replace("mmhub:mmhub@", "mmhub:***@")
    assert (code, lines) == (
        POSTGRES,
        [f"mmhub shipment: MMHUB_PG_SCHEMA=no_such_schema has no hub tables in MMHUB_PG_DSN={shown} (has `mmhub sink` run?)"],
    )


@pytest.mark.parametrize("args", ONE_SHOT_KAFKA, ids=lambda a: a[0])
def test_a_port_that_never_answers_is_a_short_timeout(args: list[str], tmp_path: Path) -> None:
    """A listener that accepts the connection and never answers (a wrong port, a firewall): 5 s, not aiokafka's 40 s
    request timeout."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        port = silent.getsockname()[1]
        code, lines, took = mmhub(args, {"MMHUB_KAFKA": f"127.0.0.1:{port}"}, tmp_path)
    assert (code, lines) == (KAFKA, [f"mmhub {args[0]}: MMHUB_KAFKA=127.0.0.1:{port} did not answer within 5 s (is it a Kafka broker?)"])
    assert took < 15


ONE_SHOT_POSTGRES = [["shipment", "get", "SHP-2026-000042"], ["usage", "--shipment", "SHP-2026-000042"], ["gateway", "--port", "0"]]


@pytest.mark.parametrize("args", ONE_SHOT_POSTGRES, ids=lambda a: a[0])
@pytest.mark.parametrize("timeout", [None, "2"], ids=["default", "MMHUB_PG_CONNECT_TIMEOUT_S=2"])
def test_a_postgres_port_that_never_answers_is_a_short_timeout(
    args: list[str], timeout: str | None, services: Settings, tmp_path: Path
) -> None:
    """A listener that accepts the connection and never answers (a wrong host or port, a firewall that drops): the
    connect timeout (MMHUB_PG_CONNECT_TIMEOUT_S, 5 s by default), not asyncpg's 60 s."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        port = silent.getsockname()[1]
        env = {"MMHUB_PG_DSN": f"postgresql://mmhub:secret@127.0.0.1:{port}/mmhub"}
        if timeout is not None:
            env["MMHUB_PG_CONNECT_TIMEOUT_S"] = timeout
        code, lines, took = mmhub(args, env, tmp_path)
    waited = timeout or "5"
    assert code == POSTGRES
    assert lines[-1] == (
        f"mmhub {args[0]}: MMHUB_PG_DSN=postgresql://mmhub:***@127.0.0.1:{port}/mmhub did not answer within"
        f" MMHUB_PG_CONNECT_TIMEOUT_S={waited} s (is it a Postgres server?)"
    )
    assert not any("Traceback" in line or "secret" in line for line in lines)
    assert float(waited) <= took < float(waited) + 15, "the connect timeout, not asyncpg's 60 s"


def test_a_worker_started_before_mmhub_topics_says_so(services: Settings, tmp_path: Path) -> None:
    namespace = f"it-none-{uuid.uuid4().hex[:8]}"  # no topics were ever made here
    code, lines, took = mmhub(["worker"], {"MMHUB_NAMESPACE": namespace}, tmp_path)
    assert code == KAFKA
    assert lines[-1] == (
        f"mmhub worker: MMHUB_NAMESPACE='{namespace}' lacks 8 of this process's topics at MMHUB_KAFKA={services.kafka},"
        f" {namespace}.hub.events first (has `mmhub topics` run?)"
    )
    assert not any("Traceback" in line for line in lines)
    assert took < 20, "before the stages wait for their inputs"


async def test_a_second_worker_on_the_same_data_dir_is_one_line_naming_it_and_exit_2(
    hub: tuple[Settings, HubProcess, HubProcess], tmp_path: Path
) -> None:
    settings, worker, _ = hub
    data_dir = tmp_path / "worker-data"  # the first worker's
    worker.start()

    async def holding() -> bool:
        return (data_dir / settings.stage_group("merge")).is_dir()

    await wait_for(holding, 90, "the first worker's stores", worker)
    code, lines, took = mmhub(["worker"], {**env_of(settings), "MMHUB_DATA_DIR": str(data_dir)}, tmp_path)
    assert code == USAGE, lines[-5:]
    # the whole directory is the first worker's, whichever partitions the group would give the second (before it,
    # only the Kafka login's log lines)
    assert lines[-1] == (
        f"mmhub worker: {data_dir} is locked by another process: give each worker its own MMHUB_DATA_DIR (a worker holds it)"
    ), lines[-5:]
    assert not [line for line in lines[:-1] if "Authenticated as worker" not in line], lines
    assert took < 60 and worker.alive
