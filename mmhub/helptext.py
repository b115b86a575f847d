"""What `mmhub --help`, each command's `--help` and `mmhub help env` say: what a command is for, who uses it, an
example; the commands grouped by who uses them; every MMHUB_* setting; the exit codes (mmhub.entry).

`document(parser)` puts these texts on the parser cli.py builds, so the commands' definitions stay where they are."""

from __future__ import annotations

import argparse

from mmhub.entry import EXIT_CODES

# Who does what with the hub, in the order `mmhub --help` lists them.
GROUPS = (
    ("a carrier (publishes events and files)", ("keys new", "convert", "ingest", "publish", "dlq", "parked")),
    ("a shipper or a consignee (reads its shipments)", ("shipment get", "fold", "invoice", "grant", "revoke")),
    ("an insurer (takes claims and shares over Kafka)", ("schema", "asyncapi", "usage", "dataset")),
    (
        "an operator (runs the hub)",
        (
            "dev", "topics", "worker", "sink", "share", "gateway", "webhooks", "carriers add-key", "parties onboard",
            "audit verify", "quarantine", "demo", "help",
        ),
    ),
)

# command -> (who uses it, one example). The one-line purpose is the command's own `help=` in cli.py. A group
# (keys, carriers, audit…) takes its first subcommand's.
COMMANDS: dict[str, tuple[str, str]] = {
    "dev": ("a developer on this machine", "mmhub dev up"),
    "worker": ("the operator: one or more per deployment (they share the partitions)", "mmhub worker --loglevel info"),
    "sink": ("the operator: the process that keeps Postgres up to date", "mmhub sink"),
    "share": ("the operator: the process that sends each party its view", "mmhub share"),
    "usage": ("an insurer, a shipper or the operator, to see who received what", "mmhub usage --party insurer.picc --month 2026-03"),
    "audit verify": ("the operator or an auditor", "mmhub audit verify --json"),
    "gateway": ("the operator: the HTTP front door carriers and readers use", "mmhub gateway --host 0.0.0.0 --port 8080"),
    "topics": ("the operator, once per deployment and after upgrades", "mmhub topics --json"),
    "publish": ("a carrier or a developer with canonical events", "mmhub publish examples/journey.jsonl --wait 30"),
    "ingest": (
        "a carrier that writes to Kafka directly",
        "mmhub ingest --format edifact --key carrier.key.json rail.edi",
    ),
    "keys new": ("a carrier; it sends the printed registry entry to the operator", "mmhub keys new --carrier carrier.newco --key-id 2027-01 --out newco.key.json"),
    "carriers add-key": ("the operator, with the entry a carrier sent", "mmhub carriers add-key --carrier carrier.newco --name 'New Co' newco.entry.json"),
    "fold": ("anyone with an event log: a shipper checking a record, a developer", "mmhub fold examples/journey.jsonl --shipment SHP-2026-000042"),
    "dataset": ("an insurer or a lender through the gateway; the operator here", "mmhub dataset performance --json"),
    "dataset performance": (
        "the operator, over logs or the live projection (a party reads it at GET /v1/datasets/performance)",
        "mmhub dataset performance --month 2026-03 --lane CNQZH-SGSIN --json",
    ),
    "dataset publish": ("the operator, once a month is closed", "mmhub dataset publish --month 2026-03"),
    "dataset monthly": (
        "the operator's scheduled duty (the compose file's datasets service), or cron with --once",
        "mmhub dataset monthly --once",
    ),
    "invoice": (
        "a shipper's accounts payable, or the MTO sending its one invoice",
        "mmhub invoice SHP-2026-000042 --ubl --currency USD > invoice.xml",
    ),
    "convert": ("a carrier checking its files before sending them", "mmhub convert --format dcsa --source carrier.oceanline examples/formats/sea.json"),
    "parked": ("a carrier or the operator: why an event has not reached its shipment yet", "mmhub parked --json"),
    "dlq": ("a carrier or the operator: why something was refused", "mmhub dlq --code invalid_event --last 20"),
    "shipment get": ("the operator, or a shipper's integrator with database access", "mmhub shipment get SHP-2026-000042 --json"),
    "grant": (
        "the operator, on a shipper's or consignee's request",
        "mmhub grant --shipment SHP-2026-000042 --grantor shipper.chengdu-elec --grantee broker.customs-jb"
        " --grades public,operational",
    ),
    "revoke": ("the operator", "mmhub revoke bafd127f-0000-4000-8000-000000000000"),
    "schema": ("an insurer's or a carrier's integrator", "mmhub schema --out schemas/"),
    "asyncapi": ("an integrator reading or writing the hub's topics", "mmhub asyncapi > asyncapi.json"),
    "demo": ("a newcomer: the whole hub in one command", "mmhub demo"),
    "webhooks": ("the operator, for a party that wants HTTP callbacks", "mmhub webhooks list"),
    "webhooks subscribe": (
        "the operator, for a registered party",
        "mmhub webhooks subscribe --party insurer.picc --url https://hooks.picc.example/mmhub --kinds claim",
    ),
    "webhooks rotate": ("the operator, when a party asks for a new secret", "mmhub webhooks rotate whs_3f9c0000"),
    "webhooks list": ("the operator", "mmhub webhooks list --party insurer.picc --json"),
    "webhooks delete": ("the operator", "mmhub webhooks delete whs_3f9c0000"),
    "webhooks new-key": ("the operator, for MMHUB_WEBHOOKS_KEYS_FILE", "mmhub webhooks new-key 2027-01 >> webhook-keys"),
    "webhooks rotate-key": ("the operator, after adding a key to the keyring", "mmhub webhooks rotate-key"),
    "webhooks run": ("the operator: the delivery process", "mmhub webhooks run"),
    "parties onboard": ("the operator, for each party that uses Kafka", "mmhub parties onboard insurer.picc --kind insurer"),
    "quarantine list": ("the operator", "mmhub quarantine list --json"),
    "quarantine replay": ("the operator, once the cause is fixed", "mmhub quarantine replay 17"),
    "help": ("anyone", "mmhub help env"),
}

# Every MMHUB_* setting: (name, default, what it is). README's variable table lists the same names (a test checks).
ENV = (
    ("MMHUB_KAFKA", "127.0.0.1:9092", "Kafka bootstrap servers"),
    ("MMHUB_KAFKA_SECURITY", "sasl_scram", "sasl_scram (SASL/SCRAM-SHA-256) or plaintext (a broker without logins)"),
    ("MMHUB_KAFKA_USER", "the command's principal", "the Kafka user (worker, sink, share, gateway, webhooks, admin, tools)"),
    ("MMHUB_KAFKA_PASSWORD", "-", "its password"),
    ("MMHUB_KAFKA_PASSWORD_FILE", "$MMHUB_HOME/run/kafka-secrets/<user>.password", "a file holding the password"),
    ("MMHUB_PG_DSN", "postgresql://mmhub:mmhub@127.0.0.1:55432/mmhub", "Postgres DSN"),
    ("MMHUB_PG_PASSWORD_FILE", "-", "a file with the Postgres password, put into MMHUB_PG_DSN"),
    ("MMHUB_PG_SCHEMA", "mmhub", "the schema the projection lives in"),
    ("MMHUB_PG_CONNECT_TIMEOUT_S", "5", "how long a connection to Postgres may take before it counts as unreachable"),
    ("MMHUB_NAMESPACE", "(empty)", "prefix of every topic and consumer group"),
    ("MMHUB_PARTITIONS", "8", "partitions of the topics the hub creates"),
    ("MMHUB_REPLICATION_FACTOR", "1", "copies of each topic the hub creates (3 on a production cluster)"),
    ("MMHUB_HOME", "~/.cache/mmhub", "the local stack's home: data, logs, generated passwords"),
    ("MMHUB_DATA_DIR", "$MMHUB_HOME/worker-data", "the worker's RocksDB state (one directory per worker)"),
    ("MMHUB_STORE", "rocksdb://", "unused: the stage runtime's stores are always RocksDB"),
    ("MMHUB_CARRIERS", "examples/carriers.json", "the carrier registry, read at start-up (restart after a change)"),
    ("MMHUB_PARTIES", "examples/parties.json", "the party registry: readers' tokens, who owns which shipment ids"),
    ("MMHUB_REGISTRY_DIR", "-", "docker-compose: the directory with carriers.json and parties.json"),
    ("MMHUB_CLOCK_INTERVAL_S", "600", "how often the worker looks for shipments past their presumed-loss deadline"),
    ("MMHUB_REPORT_INTERVAL_S", "30", "how often the worker logs its counters"),
    ("MMHUB_PARKED_TTL_S", "2592000", "how long a reference-only event waits for its reference (30 days), then the DLQ"),
    ("MMHUB_BATCH_MAX", "2000", "most records a stage takes in one fetch"),
    ("MMHUB_FETCH_MAX_BYTES", "16777216", "most bytes one fetch of a stage brings"),
    ("MMHUB_GUARANTEE", "exactly_once", "exactly_once (Kafka transactions) or at_least_once"),
    ("MMHUB_CHECKPOINT_MS", "100", "longest a stage takes records in before it commits them"),
    ("MMHUB_CHECKPOINT_RECORDS", "5000", "a checkpoint also once this many records are waiting"),
    ("MMHUB_CHECKPOINT_TIMEOUT_S", "20", "a checkpoint taking longer is aborted and the partition restarted"),
    ("MMHUB_STATE_MEMORY_MB", "256", "the RocksDB memtables of all the state stores one process holds share this budget"),
    ("MMHUB_WORKER_STAGES", "connect,resolve,merge", "the stages this worker process runs (each its own consumer group)"),
    ("MMHUB_WARM_STATES", "5000", "shipments whose state the worker keeps in memory between batches"),
    ("MMHUB_SESSION_TIMEOUT_S", "10", "how long the group waits for a silent worker before moving its partitions"),
    ("MMHUB_FETCH_MAX_WAIT_MS", "50", "longest the broker holds a fetch when nothing is waiting"),
    ("MMHUB_UNLOCODE_FILE", "the vendored subset", "a full UN/LOCODE code list (CSV) for the emissions' node coordinates"),
    ("MMHUB_MAX_FUTURE_S", "900", "how far past its receipt an actual event may be dated"),
    ("MMHUB_MAX_PLAN_AHEAD_S", "34560000", "the same for a plan or an estimate (400 days)"),
    ("MMHUB_WEBHOOKS_KEYS_FILE", "dev key under $MMHUB_HOME/run", "keyring that seals webhook secrets"),
    ("MMHUB_WEBHOOKS_BATCH_SIZE", "50", "notifications per POST"),
    ("MMHUB_WEBHOOKS_MAX_ATTEMPTS", "8", "attempts before a refused (4xx) notification is dead"),
    ("MMHUB_WEBHOOKS_RETRY_FOR_S", "86400", "how long a failing subscriber is retried"),
    ("MMHUB_WEBHOOKS_BACKOFF_BASE_S", "1", "first retry delay"),
    ("MMHUB_WEBHOOKS_BACKOFF_CAP_S", "60", "longest retry delay"),
    ("MMHUB_WEBHOOKS_MAX_RETRY_AFTER_S", "3600", "longest Retry-After honoured"),
    ("MMHUB_WEBHOOKS_TIMEOUT_S", "10", "per POST"),
    ("MMHUB_WEBHOOKS_POLL_S", "0.5", "how often the dispatcher looks for due notifications"),
    ("MMHUB_WEBHOOKS_ROTATION_GRACE_S", "86400", "how long a rotated-out secret still signs"),
    ("MMHUB_WEBHOOKS_ALLOW_HTTP", "0", "1 allows http:// URLs (tests, closed networks)"),
    ("MMHUB_WEBHOOKS_ALLOW_HOSTS", "(none)", "host names and networks exempt from the address checks"),
    ("MMHUB_KAFKA_PORT", "9092", "infra/dev.sh: the local broker's port"),
    ("MMHUB_KAFKA_CONTROLLER_PORT", "9093", "infra/dev.sh: its controller port"),
    ("MMHUB_KAFKA_VERSION", "pinned in infra/pom.xml", "infra/dev.sh: the Kafka version it fetches"),
    ("MMHUB_PG_PORT", "55432", "infra/dev.sh: the local Postgres port"),
    ("MMHUB_CONFORMANCE", "../conformance", "tests: the standards' own example files"),
    ("MMHUB_BENCH_PYSPY", "-", "bench: profile with py-spy"),
)


def env_page() -> str:
    width = max(len(name) for name, _, _ in ENV)
    lines = ["Every MMHUB_* setting (environment variables), with its default:", ""]
    lines += [f"  {name:<{width}}  {meaning} (default: {default})" for name, default, meaning in ENV]
    return "\n".join(lines)


def exit_codes_page() -> str:
    return "exit codes (every command):\n" + "\n".join(f"  {code:>3}  {meaning}" for code, meaning in EXIT_CODES)


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    found: dict[str, argparse.ArgumentParser] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            found.update(action.choices)
    return found


def _summaries(parser: argparse.ArgumentParser) -> dict[str, str]:
    """Each subcommand's one-line `help=`."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return {choice.dest: choice.help or "" for choice in action._choices_actions}
    return {}


def _describe(parser: argparse.ArgumentParser, path: str, summary: str) -> None:
    children = _subcommands(parser)
    # a command group (keys, carriers…) is described by its first documented subcommand
    paths = [path, *(f"{path} {name}" for name in children)]
    who, example = next((COMMANDS[p] for p in paths if p in COMMANDS), ("", ""))
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    purpose = parser.description or f"{summary[:1].upper()}{summary[1:]}."  # a command's own description stays
    parser.description = f"{purpose}\n\nWho uses it: {who}." if who else purpose
    parser.epilog = f"example:\n  {example}\n\n{exit_codes_page()}" if example else exit_codes_page()
    summaries = _summaries(parser)
    for name, child in children.items():
        _describe(child, f"{path} {name}", summaries.get(name, ""))


def document(top: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Put the purposes, users, examples, groups, settings and exit codes on the parser cli.py built."""
    summaries = _summaries(top)
    commands = _subcommands(top)
    for name, child in commands.items():
        _describe(child, name, summaries.get(name, ""))
    listed: set[str] = set()
    groups = []
    for title, members in GROUPS:
        rows = []
        for member in members:
            head = member.split()[0]
            if head in commands:
                listed.add(head)
                child_summaries = _summaries(commands[head])
                summary = child_summaries.get(member.split()[1], "") if " " in member else summaries.get(head, "")
                rows.append(f"  {member:<18} {summary}")
        groups.append(f"for {title}:\n" + "\n".join(rows))
    others = [name for name in commands if name not in listed]
    if others:
        groups.append("other:\n" + "\n".join(f"  {name:<18} {summaries.get(name, '')}" for name in others))
    top.formatter_class = argparse.RawDescriptionHelpFormatter
    for action in top._actions:
        if isinstance(action, argparse._SubParsersAction):
            action.metavar = "COMMAND"
            action.help = "one of the commands below, grouped by who uses them; `mmhub COMMAND --help` says more"
            action._choices_actions = []  # listed once, in the groups
    top.epilog = (
        "\n\n".join(groups)
        + "\n\nsettings: environment variables MMHUB_*; `mmhub help env` lists them all.\n\n"
        + exit_codes_page()
    )
    return top


def add_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`mmhub help env|exit-codes`."""
    page = sub.add_parser("help", help="a help page: every MMHUB_* setting, or the exit codes")
    page.add_argument("topic", choices=["env", "exit-codes"], help="env: every MMHUB_* setting; exit-codes")
    page.set_defaults(run=_help)


def _help(args: argparse.Namespace, settings: object) -> int:
    print(env_page() if args.topic == "env" else exit_codes_page())
    return 0
