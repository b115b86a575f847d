"""Where a process's Kafka credentials come from, and that no client is made without them."""

from __future__ import annotations

from pathlib import Path

import pytest

from hubconf.settings import KafkaCredentialsMissing, Settings


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for name in ("MMHUB_KAFKA_USER", "MMHUB_KAFKA_PASSWORD", "MMHUB_KAFKA_PASSWORD_FILE", "MMHUB_KAFKA_SECURITY",
                 "MMHUB_PG_DSN", "MMHUB_PG_PASSWORD_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MMHUB_HOME", str(tmp_path))
    return tmp_path


def test_the_local_stack_password_of_the_process_principal_is_used(clean_env: Path) -> None:
    secrets = clean_env / "run" / "kafka-secrets"
    secrets.mkdir(parents=True)
    (secrets / "sink.password").write_text("s3cret\n")
    client = Settings.from_env("sink").kafka_client(client_id="x")
    assert client["sasl_plain_username"] == "sink" and client["sasl_plain_password"] == "s3cret"
    assert client["security_protocol"] == "SASL_PLAINTEXT" and client["sasl_mechanism"] == "SCRAM-SHA-256"
    assert client["client_id"] == "x"
    assert "s3cret" not in repr(Settings.from_env("sink"))


def test_no_password_no_client(clean_env: Path) -> None:
    with pytest.raises(KafkaCredentialsMissing, match="worker"):
        Settings.from_env("worker").kafka_client()


def test_the_environment_names_the_principal_and_its_secret_file(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (clean_env / "pw").write_text("from-a-secret\n")
    monkeypatch.setenv("MMHUB_KAFKA_USER", "gateway")
    monkeypatch.setenv("MMHUB_KAFKA_PASSWORD_FILE", str(clean_env / "pw"))
    client = Settings.from_env("tools").kafka_client()
    assert (client["sasl_plain_username"], client["sasl_plain_password"]) == ("gateway", "from-a-secret")


def test_plaintext_only_when_asked(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MMHUB_KAFKA_SECURITY", "plaintext")
    monkeypatch.delenv("MMHUB_KAFKA", raising=False)
    assert Settings.from_env().kafka_client() == {"bootstrap_servers": "127.0.0.1:9092"}
    monkeypatch.setenv("MMHUB_KAFKA_SECURITY", "none")
    with pytest.raises(ValueError, match="MMHUB_KAFKA_SECURITY"):
        Settings.from_env()


def test_the_postgres_password_comes_from_its_file(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (clean_env / "pg").write_text("p@ss/word\n")
    monkeypatch.setenv("MMHUB_PG_DSN", "postgresql://mmhub@postgres:5432/mmhub")
    monkeypatch.setenv("MMHUB_PG_PASSWORD_FILE", str(clean_env / "pg"))
    assert Settings.from_env().pg_dsn == "postgresql://mmhub:p%40ss%2Fword@postgres:5432/mmhub"


def test_the_replication_factor_of_new_topics_comes_from_the_environment(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MMHUB_REPLICATION_FACTOR", raising=False)
    assert Settings.from_env().replication_factor == 1  # the single-broker dev stack
    monkeypatch.setenv("MMHUB_REPLICATION_FACTOR", "3")
    assert Settings.from_env().replication_factor == 3


def test_the_postgres_connect_timeout_comes_from_the_environment(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MMHUB_PG_CONNECT_TIMEOUT_S", raising=False)
    assert Settings.from_env().pg_connect_timeout_s == 5.0  # not asyncpg's 60 s
    monkeypatch.setenv("MMHUB_PG_CONNECT_TIMEOUT_S", "1.5")
    assert Settings.from_env().pg_connect_timeout_s == 1.5
    for wrong, said in (("soon", "is not a number"), ("0", "above 0"), ("-2", "above 0")):
        monkeypatch.setenv("MMHUB_PG_CONNECT_TIMEOUT_S", wrong)
        with pytest.raises(ValueError, match=f"MMHUB_PG_CONNECT_TIMEOUT_S.*{said}"):
            Settings.from_env()


def test_the_worker_runs_the_stages_the_environment_names(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MMHUB_WORKER_STAGES", raising=False)
    assert Settings.from_env().worker_stages == ("connect", "resolve", "merge")
    for named, chosen in (
        ("connect", ("connect",)),
        ("merge, resolve", ("resolve", "merge")),  # in the pipeline's order, however named
        ("resolve,merge,resolve", ("resolve", "merge")),
        (" ", ("connect", "resolve", "merge")),
    ):
        monkeypatch.setenv("MMHUB_WORKER_STAGES", named)
        assert Settings.from_env().worker_stages == chosen, named
    monkeypatch.setenv("MMHUB_WORKER_STAGES", "connect,sink")
    with pytest.raises(ValueError, match="MMHUB_WORKER_STAGES='connect,sink' names sink; known: connect, resolve, merge"):
        Settings.from_env()


# The broker's default message.max.bytes (Kafka's message.max.bytes, 1 MiB + 12): a record batch is one message to it,
# and the hub's topics (all but the DLQ and the raw topics) keep the default.
BROKER_MAX_MESSAGE_BYTES = 1_048_588


def test_a_full_producer_batch_is_a_message_the_broker_takes() -> None:
    """The batches aiokafka builds with PRODUCER_BATCH_BYTES, filled with status-sized messages until it refuses one
    more, stay within the broker's default limit (a bigger setting would have every full batch refused)."""
    from aiokafka.record.default_records import DefaultRecordBatchBuilder

    from hubconf.settings import PRODUCER_BATCH_BYTES

    builder = DefaultRecordBatchBuilder(
        magic=2, compression_type=0, is_transactional=1, producer_id=7, producer_epoch=0, base_sequence=0,
        batch_size=PRODUCER_BATCH_BYTES,
    )
    value = b"x" * 10_840  # an average status message of bench.latency's workload
    appended = 0
    while builder.append(appended, timestamp=None, key=b"SHP-2026-000042", value=value, headers=[]) is not None:
        appended += 1
    built = builder.build()
    assert appended > 50  # the batch holds many messages, not one oversized one
    assert PRODUCER_BATCH_BYTES - len(value) < len(built) <= BROKER_MAX_MESSAGE_BYTES
