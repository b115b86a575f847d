"""Versioned schema migrations for the projection, applied in order, once, inside the target schema.

Each migration runs in its own transaction under a per-schema advisory lock, so two sinks starting together
neither race to create the schema nor apply a file twice; a failed file rolls back and leaves nothing behind.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

import asyncpg

from connectors.postgres.db import quote_ident
from hubconf.settings import DEFAULT_PG_CONNECT_TIMEOUT_S

_FILE_NAME = re.compile(r"^(?P<version>[0-9]{4})_(?P<name>[a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def label(self) -> str:
        return f"{self.version:04d}_{self.name}"


def parse_file_name(file_name: str) -> tuple[int, str]:
    """`0002_add_index.sql` -> (2, "add_index"). Anything else is a mistake in the package, so it raises."""
    match = _FILE_NAME.match(file_name)
    if match is None:
        raise ValueError(f"migration file {file_name!r} must be named NNNN_lower_snake.sql")
    return int(match["version"]), match["name"]


def ordered(files: dict[str, str]) -> list[Migration]:
    """Migrations from {file name: sql}, by version; two files with one version number are refused."""
    migrations: dict[int, Migration] = {}
    for file_name, sql in files.items():
        version, name = parse_file_name(file_name)
        if version in migrations:
            raise ValueError(f"two migrations have version {version}: {migrations[version].label} and {file_name}")
        migrations[version] = Migration(version, name, sql)
    return [migrations[version] for version in sorted(migrations)]


def packaged() -> list[Migration]:
    """The migrations shipped with this package (package data, so they travel with an installed wheel)."""
    folder = resources.files("connectors.postgres") / "migrations"
    return ordered({item.name: item.read_text("utf-8") for item in folder.iterdir() if item.name.endswith(".sql")})


async def migrate(
    conn_or_dsn: asyncpg.Connection | str, schema: str, connect_timeout_s: float = DEFAULT_PG_CONNECT_TIMEOUT_S
) -> list[str]:
    """Bring `schema` up to date. Returns the labels (e.g. `0001_init`) applied by this call, in order. A DSN is
    connected to within `connect_timeout_s` (Settings.pg_connect_timeout_s)."""
    if isinstance(conn_or_dsn, str):
        conn = await asyncpg.connect(conn_or_dsn, timeout=connect_timeout_s)
        try:
            return await _apply(conn, schema, packaged())
        finally:
            await conn.close()
    return await _apply(conn_or_dsn, schema, packaged())


async def _apply(conn: asyncpg.Connection, schema: str, migrations: list[Migration]) -> list[str]:
    quoted = quote_ident(schema)
    applied = []
    for migration in migrations:
        async with conn.transaction():
            # Held until commit: a second process waits here, then sees the version recorded and skips it.
            await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended('mmhub.migrate:' || $1, 0))", schema)
            await conn.execute(
                f"CREATE SCHEMA IF NOT EXISTS {quoted};"
                f" CREATE TABLE IF NOT EXISTS {quoted}.schema_migrations ("
                " version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = await conn.fetchval(
                f"SELECT EXISTS (SELECT 1 FROM {quoted}.schema_migrations WHERE version = $1)", migration.version
            )
            if done:
                continue
            # SET LOCAL ends with the transaction: a caller's connection keeps its own search_path.
            await conn.execute(f"SET LOCAL search_path TO {quoted}")
            await conn.execute(migration.sql)
            await conn.execute(
                f"INSERT INTO {quoted}.schema_migrations (version, name) VALUES ($1, $2)",
                migration.version,
                migration.name,
            )
        applied.append(migration.label)
    return applied
