"""What every `mmhub` command does at its entry point with the failures a newcomer meets: a service that does not
answer, a refused login, a file that is not there. One line naming the setting or the file, and a documented exit
code (EXIT_CODES), instead of a traceback. Anything else is a bug and keeps its traceback."""

from __future__ import annotations

import asyncio
import socket
import traceback
from types import TracebackType
from urllib.parse import urlsplit, urlunsplit

from hubconf.settings import KafkaCredentialsMissing, Settings

OK = 0
REFUSED = 1
USAGE = 2
NO_FILE = 3
KAFKA = 4
POSTGRES = 5
INTERRUPTED = 130

# The exit codes every command uses: `mmhub --help` and README's "Command line" print this table.
EXIT_CODES = (
    (OK, "done"),
    (REFUSED, "the command ran but refused or found something: rejected lines, audit findings, not found"),
    (USAGE, "bad arguments or a bad MMHUB_* value"),
    (NO_FILE, "a file named on the command line or by a setting cannot be read, or is not valid"),
    (KAFKA, "Kafka does not answer at MMHUB_KAFKA, or refused the login (MMHUB_KAFKA_USER, MMHUB_KAFKA_PASSWORD)"),
    (POSTGRES, "Postgres does not answer at MMHUB_PG_DSN, or refused the login or the database"),
    (INTERRUPTED, "interrupted (Ctrl-C)"),
)

# How long a command waits for the broker before it says so: a one-shot command, not a service that waits it out.
BOOTSTRAP_TIMEOUT_S = 5.0


class Failure(Exception):
    """A failure the user can fix: `line` says what, `code` is its exit code."""

    def __init__(self, code: int, line: str) -> None:
        super().__init__(line)
        self.code = code
        self.line = line


def redacted(dsn: str) -> str:
    """The DSN as it may be printed: the password replaced by ***."""
    try:
        parts = urlsplit(dsn)
        if parts.password is None:
            return dsn
        host = parts.netloc.rpartition("@")[2]
        return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))
    except ValueError:
        return "(unparseable)"


def _answers(servers: str) -> bool:
    """Whether any bootstrap server accepts a TCP connection (then a failed bootstrap was the login)."""
    for server in servers.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            with socket.create_connection((host.strip("[]"), int(port)), timeout=BOOTSTRAP_TIMEOUT_S):
                return True
        except (OSError, ValueError):
            continue
    return False


def kafka_failure(settings: Settings, silent: bool = False) -> Failure:
    """Unreachable, silent (`silent`: it took the whole bootstrap timeout) or refusing the login."""
    if silent:
        return Failure(
            KAFKA, f"MMHUB_KAFKA={settings.kafka} did not answer within {BOOTSTRAP_TIMEOUT_S:g} s (is it a Kafka broker?)"
        )
    if _answers(settings.kafka):
        return Failure(
            KAFKA,
            f"MMHUB_KAFKA={settings.kafka} answers but refused the login of Kafka user {settings.kafka_user!r} "
            "(check MMHUB_KAFKA_USER, MMHUB_KAFKA_PASSWORD or MMHUB_KAFKA_PASSWORD_FILE, and MMHUB_KAFKA_SECURITY)",
        )
    return Failure(KAFKA, f"MMHUB_KAFKA={settings.kafka} is unreachable (is the broker up? `mmhub dev status`)")


def _from_asyncpg(tb: TracebackType | None, function: str | None = None) -> bool:
    """Whether the traceback passes through asyncpg (through its `function`, when given)."""
    return any(
        "/asyncpg/" in frame.filename and function in (None, frame.name) for frame in traceback.extract_tb(tb)
    )


def classify(error: BaseException, settings: Settings | None) -> Failure | None:
    """The one-line failure for `error`, or None when it is not one a user can fix (a bug: keep the traceback)."""
    import asyncpg
    from aiokafka.errors import AuthenticationFailedError, KafkaConnectionError, SaslAuthenticationFailed

    from connectors.carriers import RegistryError
    from runtime.state import StoreLocked

    if isinstance(error, Failure):
        return error
    if isinstance(error, KeyboardInterrupt):
        return Failure(INTERRUPTED, "interrupted")
    if isinstance(error, KafkaCredentialsMissing):
        return Failure(KAFKA, str(error))
    if settings is not None:
        if isinstance(error, (AuthenticationFailedError, SaslAuthenticationFailed)):
            return Failure(KAFKA, f"Kafka refused the login of user {settings.kafka_user!r}: check MMHUB_KAFKA_PASSWORD")
        if isinstance(error, KafkaConnectionError):
            return kafka_failure(settings)
        dsn = f"MMHUB_PG_DSN={redacted(settings.pg_dsn)}"
        if isinstance(error, asyncpg.ClientConfigurationError):
            return Failure(POSTGRES, f"{dsn} is not a Postgres DSN: {error}")
        if isinstance(error, asyncpg.UndefinedTableError):
            return Failure(
                POSTGRES, f"MMHUB_PG_SCHEMA={settings.pg_schema} has no hub tables in {dsn} (has `mmhub sink` run?)"
            )
        if isinstance(error, (asyncpg.InvalidAuthorizationSpecificationError, asyncpg.InvalidCatalogNameError)):
            return Failure(POSTGRES, f"{dsn}: {error}")
        if isinstance(error, (OSError, asyncio.TimeoutError)) and getattr(error, "filename", None) is None:
            if isinstance(error, asyncio.TimeoutError) and _from_asyncpg(error.__traceback__, "connect"):
                return Failure(
                    POSTGRES,
                    f"{dsn} did not answer within MMHUB_PG_CONNECT_TIMEOUT_S={settings.pg_connect_timeout_s:g} s"
                    " (is it a Postgres server?)",
                )
            if _from_asyncpg(error.__traceback__):
                return Failure(POSTGRES, f"{dsn} is unreachable ({error or 'timed out'})")
    if isinstance(error, RegistryError):
        return Failure(NO_FILE, str(error))
    if isinstance(error, StoreLocked):  # its line names MMHUB_DATA_DIR
        return Failure(USAGE, str(error))
    if isinstance(error, OSError) and error.filename is not None:
        return Failure(NO_FILE, f"{error.filename}: {error.strerror or error}")
    return None


async def probe_kafka(settings: Settings) -> None:
    """Log in to the broker once, with a short timeout; raise Failure if it does not answer or refuses. What a
    command runs before its own clients, whose timeouts are the services' (40 s a request)."""
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.errors import KafkaError

    admin = AIOKafkaAdminClient(
        **settings.kafka_client(client_id="mmhub-probe", request_timeout_ms=int(BOOTSTRAP_TIMEOUT_S * 1000))
    )
    started = asyncio.get_running_loop().time()
    try:
        await asyncio.wait_for(admin.start(), BOOTSTRAP_TIMEOUT_S * 2)
    except (KafkaError, OSError, asyncio.TimeoutError):
        silent = asyncio.get_running_loop().time() - started >= BOOTSTRAP_TIMEOUT_S
        raise kafka_failure(settings, silent) from None
    finally:
        await admin.close()


async def probe_topics(settings: Settings, names: list[str]) -> None:
    """Raise Failure if a topic of `names` is missing: a process started before `mmhub topics` made them would wait,
    then stop with a traceback."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(
        **settings.kafka_client(client_id="mmhub-probe", request_timeout_ms=int(BOOTSTRAP_TIMEOUT_S * 1000))
    )
    await admin.start()
    try:
        present = set(await admin.list_topics())  # the topics this principal may see: its own
    finally:
        await admin.close()
    missing = [name for name in names if name not in present]
    if missing:
        raise Failure(
            KAFKA,
            f"MMHUB_NAMESPACE={settings.namespace!r} lacks {len(missing)} of this process's topics at MMHUB_KAFKA="
            f"{settings.kafka}, {missing[0]} first (has `mmhub topics` run?)",
        )
