"""Settings for every mmhub process, read once from the environment so workers, sinks and tests agree.

The bottom layer: imports nothing of schemas, streams, connectors, worker or mmhub. What needs the registry (the
authority: connectors.parties) or the event model (the horizon: streams.horizon) is built from Settings up there.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from hubconf.topics import Topics

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CARRIERS = REPO / "examples" / "carriers.json"  # the demo registry; point MMHUB_CARRIERS at your own
DEFAULT_PARTIES = REPO / "examples" / "parties.json"  # the demo readers; point MMHUB_PARTIES at your own
# The producers' batch per partition (faust's default is 16 KiB); bench.pipeline's passthrough uses the same. aiokafka
# has one produce request in flight per broker at a time, each with at most one batch per partition, so a checkpoint's
# outputs (a 10.6 KiB status message a version) go out in round trips of one batch each. 1,000,000 bytes rather than
# 256 KiB: the merge's checkpoints 6.7 s of wall (one run) against 8.5-9.0 s (four) at 2,000 events/s, the worker's
# CPU per event in bench.pipeline 0.13 against 0.14-0.15 ms (bench/README, "Producer batches"). It stays below the
# broker's default max.message.bytes (1,048,588: a batch is one message to it), which the topics keep unless raised.
PRODUCER_BATCH_BYTES = 1_000_000
DEFAULT_WARM_STATES = 5000  # see Settings.warm_states
# a rebalance waits for the batch being merged: at ~1 ms per event this bounds a join's wait to ~2 s
DEFAULT_BATCH_MAX = 2000
DEFAULT_FETCH_MAX_WAIT_MS = 50
DEFAULT_MAX_FUTURE_S = 900.0  # MMHUB_MAX_FUTURE_S: clock skew between a sender and the hub
# MMHUB_PARKED_TTL_S: how long a reference-only event waits for a booking or document to register its reference
# before it is dead-lettered (code parked_expired, with its bytes): a booking comes before the cargo moves, so a
# month is far past any real wait, and no carrier's events wait in the books for ever
DEFAULT_PARKED_TTL_S = 30 * 24 * 3600.0
DEFAULT_MAX_PLAN_AHEAD_S = 400 * 24 * 3600.0  # MMHUB_MAX_PLAN_AHEAD_S: a plan or estimate for a year-long journey
# The stage runtime (runtime.loop). MMHUB_GUARANTEE: outputs, changelogs and input offsets in one Kafka transaction
# per input partition (exactly_once, the default), or produced, flushed and then committed (at_least_once: a crash
# between the two re-sends what the lost checkpoint had sent).
EXACTLY_ONCE = "exactly_once"
AT_LEAST_ONCE = "at_least_once"
# A checkpoint as soon as nothing more is waiting, and under a backlog at the latest every MMHUB_CHECKPOINT_MS or
# MMHUB_CHECKPOINT_RECORDS records taken in: the count bounds the work a failure redoes. A toy stage at a trickle
# (20 records/s, 2 shared cores at load 11): publish -> committed output p50 179 ms / p99 1046 ms when it waited the
# interval, p50 31 ms / p99 160 ms when it commits once nothing waits.
DEFAULT_CHECKPOINT_MS = 100
DEFAULT_CHECKPOINT_RECORDS = 5000
# The bytes one fetch brings (MMHUB_FETCH_MAX_BYTES): with batch_max records, the bound of one batch.
DEFAULT_FETCH_MAX_BYTES = 16 * 1024 * 1024
# How long a checkpoint's transaction (or a restore's end) may take before the runtime aborts it, rebuilds the
# producer and starts the partition again from its committed position (a broker restart mid-transaction).
DEFAULT_CHECKPOINT_TIMEOUT_S = 20.0
# RocksDB memtables of every store of every partition a process holds share one budget: a worker holding 24 databases
# with RocksDB's defaults grew by 1.1 GiB for 100,000 shipments (bench.state) and took 24 s to stop
DEFAULT_STATE_MEMORY_MB = 256
# How long one connection attempt to Postgres may take (MMHUB_PG_CONNECT_TIMEOUT_S) before it counts as unreachable:
# a host that drops packets or a port that accepts and never answers; asyncpg's own default is 60 s.
DEFAULT_PG_CONNECT_TIMEOUT_S = 5.0
# The worker's stages on the runtime, each its own consumer group (Settings.stage_group).
WORKER_STAGES = ("connect", "resolve", "merge")
# The hub's Kafka principals, one per process (infra/dev.sh makes their SCRAM users; connectors.acl grants each
# only what its process does). "admin" creates topics, ACLs and users; "tools" is the operator's publish/ingest.
PRINCIPALS = ("admin", "worker", "sink", "share", "gateway", "webhooks", "tools")
SCRAM_MECHANISM = "SCRAM-SHA-256"
# MMHUB_KAFKA_SECURITY: SASL/SCRAM over plaintext (the default), or no authentication at all (a broker of your own
# without listeners' auth; the hub's ACLs then protect nothing).
SECURITY_SCRAM = "sasl_scram"
SECURITY_NONE = "plaintext"


class KafkaCredentialsMissing(RuntimeError):
    """No password for the principal: say where one is looked for."""


def unlocode_file() -> Path | None:
    """A full copy of the UN/LOCODE code list (code-list-improved.csv) for streams.emissions, if
    MMHUB_UNLOCODE_FILE names one; otherwise the emissions use the subset vendored in streams/reference/."""
    named = os.environ.get("MMHUB_UNLOCODE_FILE")
    return Path(named) if named else None


def secrets_dir(home: Path) -> Path:
    """Where infra/dev.sh writes the local stack's generated passwords, one `<principal>.password` each."""
    return home / "run" / "kafka-secrets"


def _pg_dsn() -> str:
    """MMHUB_PG_DSN, with the password from MMHUB_PG_PASSWORD_FILE (a compose secret) when that is set."""
    dsn = os.environ.get("MMHUB_PG_DSN", "postgresql://mmhub:mmhub@127.0.0.1:55432/mmhub")
    named = os.environ.get("MMHUB_PG_PASSWORD_FILE")
    if not named:
        return dsn
    parts = urlsplit(dsn)
    user = unquote(parts.username or "")
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    password = quote(Path(named).read_text().strip(), safe="")
    return urlunsplit(parts._replace(netloc=f"{quote(user, safe='')}:{password}@{host}{port}"))


def _password(user: str, home: Path) -> str | None:
    """MMHUB_KAFKA_PASSWORD, else the file MMHUB_KAFKA_PASSWORD_FILE names (a compose secret), else the local
    stack's generated file for `user`; None if there is none."""
    if "MMHUB_KAFKA_PASSWORD" in os.environ:
        return os.environ["MMHUB_KAFKA_PASSWORD"]
    named = os.environ.get("MMHUB_KAFKA_PASSWORD_FILE")
    path = Path(named) if named else secrets_dir(home) / f"{user}.password"
    if not named and not path.is_file():
        return None
    return path.read_text().strip()


# The numeric settings: from_env refuses a value that is not one, naming the variable (the CLI's one-line error).
NUMERIC = {
    "MMHUB_PARTITIONS": int,
    "MMHUB_REPLICATION_FACTOR": int,
    "MMHUB_CLOCK_INTERVAL_S": float,
    "MMHUB_REPORT_INTERVAL_S": float,
    "MMHUB_BATCH_MAX": int,
    "MMHUB_SESSION_TIMEOUT_S": float,
    "MMHUB_WARM_STATES": int,
    "MMHUB_FETCH_MAX_WAIT_MS": int,
    "MMHUB_MAX_FUTURE_S": float,
    "MMHUB_MAX_PLAN_AHEAD_S": float,
    "MMHUB_PARKED_TTL_S": float,
    "MMHUB_PG_CONNECT_TIMEOUT_S": float,
}


def chosen_stages(text: str | None) -> tuple[str, ...]:
    """MMHUB_WORKER_STAGES: the worker's stages named (in WORKER_STAGES's order), or all of them when unset."""
    if text is None or not text.strip():
        return WORKER_STAGES
    named = [name.strip() for name in text.split(",") if name.strip()]
    unknown = sorted(set(named) - set(WORKER_STAGES))
    if unknown:
        raise ValueError(f"MMHUB_WORKER_STAGES={text!r} names {', '.join(unknown)}; known: {', '.join(WORKER_STAGES)}")
    return tuple(stage for stage in WORKER_STAGES if stage in named)


def _check_numbers() -> None:
    for name, kind in NUMERIC.items():
        text = os.environ.get(name)
        if text is None:
            continue
        try:
            kind(text)
        except ValueError:
            raise ValueError(f"{name}={text!r} is not {'a whole number' if kind is int else 'a number'}") from None


@dataclass(frozen=True)
class Settings:
    kafka: str
    pg_dsn: str
    pg_schema: str
    namespace: str
    store: str
    data_dir: Path
    partitions: int
    clock_interval_s: float
    report_interval_s: float
    carriers_path: Path = DEFAULT_CARRIERS
    parties_path: Path = DEFAULT_PARTIES
    # The merge agent folds what is waiting, up to batch_max events, per shipment in memory, then writes the
    # table and emits one version per shipment: under a backlog, several events share a version.
    batch_max: int = DEFAULT_BATCH_MAX
    # Shipments whose decoded state and record the worker keeps between batches: about 110 KiB each at 15
    # events (bench.state measures it), so the default holds about 550 MiB at most.
    warm_states: int = DEFAULT_WARM_STATES
    # How long the group waits for a silent worker before its partitions move: the stall a crash causes.
    session_timeout_s: float = 10.0
    # The longest the broker holds the worker's fetch when no data is waiting (faust fixes 1.5 s; see
    # worker.fetching): also the longest a busy worker's input can wait behind a fetch of quiet topics.
    fetch_max_wait_ms: int = DEFAULT_FETCH_MAX_WAIT_MS
    # Who this process is to Kafka (MMHUB_KAFKA_USER, else the process's own principal) and how it proves it.
    kafka_security: str = SECURITY_SCRAM
    kafka_user: str = "admin"
    kafka_password: str | None = field(default=None, repr=False)
    home: Path = Path.home() / ".cache" / "mmhub"
    # How far past its receipt an event may be dated (streams.horizon): an actual one, and any recorded_at or
    # revised_at, by clock skew; a plan or an estimate by the length of a journey planned ahead.
    max_future_s: float = DEFAULT_MAX_FUTURE_S
    max_plan_ahead_s: float = DEFAULT_MAX_PLAN_AHEAD_S
    parked_ttl_s: float = DEFAULT_PARKED_TTL_S
    # Copies of each topic the hub creates (MMHUB_REPLICATION_FACTOR): 1 on the single-broker dev stack; 3 on a
    # production cluster of three brokers or more.
    replication_factor: int = 1
    # The stage runtime: see the DEFAULT_CHECKPOINT_* and EXACTLY_ONCE notes above.
    guarantee: str = EXACTLY_ONCE
    checkpoint_ms: int = DEFAULT_CHECKPOINT_MS
    checkpoint_records: int = DEFAULT_CHECKPOINT_RECORDS
    fetch_max_bytes: int = DEFAULT_FETCH_MAX_BYTES
    checkpoint_timeout_s: float = DEFAULT_CHECKPOINT_TIMEOUT_S
    state_memory_mb: int = DEFAULT_STATE_MEMORY_MB
    pg_connect_timeout_s: float = DEFAULT_PG_CONNECT_TIMEOUT_S
    # The stages this worker process runs (MMHUB_WORKER_STAGES, a comma-separated subset of WORKER_STAGES; all by
    # default). Each stage is its own consumer group, so a stage may run in processes of its own: the connect
    # stage's signature checks, for one, on a core of their own (bench/README, "Connect in a process of its own").
    worker_stages: tuple[str, ...] = WORKER_STAGES

    @classmethod
    def from_env(cls, principal: str = "admin") -> Settings:
        """The settings of a process whose Kafka principal is `principal` unless MMHUB_KAFKA_USER names another."""
        _check_numbers()
        home = Path(os.environ.get("MMHUB_HOME", Path.home() / ".cache" / "mmhub"))
        user = os.environ.get("MMHUB_KAFKA_USER", principal)
        security = os.environ.get("MMHUB_KAFKA_SECURITY", SECURITY_SCRAM)
        if security not in (SECURITY_SCRAM, SECURITY_NONE):
            raise ValueError(f"MMHUB_KAFKA_SECURITY={security!r}; known: {SECURITY_SCRAM}, {SECURITY_NONE}")
        guarantee = os.environ.get("MMHUB_GUARANTEE", EXACTLY_ONCE)
        if guarantee not in (EXACTLY_ONCE, AT_LEAST_ONCE):
            raise ValueError(f"MMHUB_GUARANTEE={guarantee!r}; known: {EXACTLY_ONCE}, {AT_LEAST_ONCE}")
        pg_connect_timeout_s = float(os.environ.get("MMHUB_PG_CONNECT_TIMEOUT_S", DEFAULT_PG_CONNECT_TIMEOUT_S))
        if pg_connect_timeout_s <= 0:
            raise ValueError(f"MMHUB_PG_CONNECT_TIMEOUT_S={pg_connect_timeout_s:g} is not a number of seconds above 0")
        return cls(
            worker_stages=chosen_stages(os.environ.get("MMHUB_WORKER_STAGES")),
            kafka_security=security,
            kafka_user=user,
            kafka_password=_password(user, home),
            home=home,
            kafka=os.environ.get("MMHUB_KAFKA", "127.0.0.1:9092"),
            pg_dsn=_pg_dsn(),
            pg_schema=os.environ.get("MMHUB_PG_SCHEMA", "mmhub"),
            namespace=os.environ.get("MMHUB_NAMESPACE", ""),
            store=os.environ.get("MMHUB_STORE", "rocksdb://"),
            data_dir=Path(os.environ.get("MMHUB_DATA_DIR", home / "worker-data")),
            partitions=int(os.environ.get("MMHUB_PARTITIONS", "8")),
            clock_interval_s=float(os.environ.get("MMHUB_CLOCK_INTERVAL_S", "600")),
            report_interval_s=float(os.environ.get("MMHUB_REPORT_INTERVAL_S", "30")),
            carriers_path=Path(os.environ.get("MMHUB_CARRIERS", DEFAULT_CARRIERS)),
            parties_path=Path(os.environ.get("MMHUB_PARTIES", DEFAULT_PARTIES)),
            batch_max=int(os.environ.get("MMHUB_BATCH_MAX", DEFAULT_BATCH_MAX)),
            session_timeout_s=float(os.environ.get("MMHUB_SESSION_TIMEOUT_S", "10")),
            warm_states=int(os.environ.get("MMHUB_WARM_STATES", DEFAULT_WARM_STATES)),
            fetch_max_wait_ms=int(os.environ.get("MMHUB_FETCH_MAX_WAIT_MS", DEFAULT_FETCH_MAX_WAIT_MS)),
            max_future_s=float(os.environ.get("MMHUB_MAX_FUTURE_S", DEFAULT_MAX_FUTURE_S)),
            max_plan_ahead_s=float(os.environ.get("MMHUB_MAX_PLAN_AHEAD_S", DEFAULT_MAX_PLAN_AHEAD_S)),
            parked_ttl_s=float(os.environ.get("MMHUB_PARKED_TTL_S", DEFAULT_PARKED_TTL_S)),
            replication_factor=int(os.environ.get("MMHUB_REPLICATION_FACTOR", "1")),
            guarantee=guarantee,
            checkpoint_ms=int(os.environ.get("MMHUB_CHECKPOINT_MS", DEFAULT_CHECKPOINT_MS)),
            checkpoint_records=int(os.environ.get("MMHUB_CHECKPOINT_RECORDS", DEFAULT_CHECKPOINT_RECORDS)),
            fetch_max_bytes=int(os.environ.get("MMHUB_FETCH_MAX_BYTES", DEFAULT_FETCH_MAX_BYTES)),
            checkpoint_timeout_s=float(os.environ.get("MMHUB_CHECKPOINT_TIMEOUT_S", DEFAULT_CHECKPOINT_TIMEOUT_S)),
            state_memory_mb=int(os.environ.get("MMHUB_STATE_MEMORY_MB", DEFAULT_STATE_MEMORY_MB)),
            pg_connect_timeout_s=pg_connect_timeout_s,
        )

    def as_principal(self, user: str) -> Settings:
        """The same settings as another of the local stack's principals (tests and tools that act as a party)."""
        return replace(self, kafka_user=user, kafka_password=_password(user, self.home))

    def kafka_client(self, **options: Any) -> dict[str, Any]:
        """The keyword arguments of every aiokafka client the hub makes: the bootstrap servers, this principal's
        SASL/SCRAM credentials, then `options`. Every AIOKafka{Producer,Consumer,AdminClient} goes through here."""
        kwargs: dict[str, Any] = {"bootstrap_servers": self.kafka}
        if self.kafka_security == SECURITY_SCRAM:
            if self.kafka_password is None:
                raise KafkaCredentialsMissing(
                    f"no Kafka password for principal {self.kafka_user!r}: set MMHUB_KAFKA_PASSWORD or "
                    f"MMHUB_KAFKA_PASSWORD_FILE, or run `bash infra/dev.sh up` (it writes {secrets_dir(self.home)})"
                )
            kwargs.update(
                security_protocol="SASL_PLAINTEXT",
                sasl_mechanism=SCRAM_MECHANISM,
                sasl_plain_username=self.kafka_user,
                sasl_plain_password=self.kafka_password,
            )
        return {**kwargs, **options}

    @property
    def topics(self) -> Topics:
        return Topics(self.namespace)

    @property
    def app_id(self) -> str:
        """The faust application id: also the consumer group and the prefix of its changelog topics."""
        return f"{self.namespace}.mmhub" if self.namespace else "mmhub"

    def stage_group(self, stage: str) -> str:
        """The consumer group of one of the worker's runtime stages (WORKER_STAGES); its transactional producers'
        ids are `<group>.<partition>` (runtime.loop)."""
        return f"{self.app_id}.{stage}"

    def changelog(self, store: str) -> str:
        """The changelog topic of one of the worker's stores (hubconf.topics.TABLES), created by ensure_topics."""
        return f"{self.app_id}-{store}-changelog"

    @property
    def sink_group(self) -> str:
        return f"{self.app_id}.pg-sink"
