"""Connecting to the projection's schema: every session sees its tables unqualified through `search_path`."""

from __future__ import annotations

from typing import Any, Sequence

import asyncpg

from hubconf.settings import Settings


def quote_ident(name: str) -> str:
    """`name` as a Postgres identifier, so a schema such as `Test-1` neither breaks nor injects SQL."""
    return '"' + name.replace('"', '""') + '"'


def server_settings(settings: Settings, application_name: str) -> dict[str, str]:
    # application_name lets an operator (or a test) find this process's sessions in pg_stat_activity.
    return {"search_path": quote_ident(settings.pg_schema), "application_name": application_name}


def connect_options(settings: Settings, application_name: str) -> dict[str, Any]:
    """The keyword arguments of every asyncpg connection and pool the hub opens: the schema, the application name
    and MMHUB_PG_CONNECT_TIMEOUT_S (a Postgres that does not answer is a short failure, not asyncpg's 60 s)."""
    return {"server_settings": server_settings(settings, application_name), "timeout": settings.pg_connect_timeout_s}


async def connect(settings: Settings, application_name: str = "mmhub") -> asyncpg.Connection:
    return await asyncpg.connect(settings.pg_dsn, **connect_options(settings, application_name))


def columns(rows: Sequence[object], *names: str) -> list[list[Any]]:
    """Each named attribute of `rows` as one list, in that order: the arrays an `unnest(...)` statement takes."""
    return [[getattr(row, name) for row in rows] for name in names]
