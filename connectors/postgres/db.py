"""Connecting to the projection's schema: every session sees its tables unqualified through `search_path`."""

from __future__ import annotations

import asyncpg

from mmhub.config import Settings


def quote_ident(name: str) -> str:
    """`name` as a Postgres identifier, so a schema such as `Test-1` neither breaks nor injects SQL."""
    return '"' + name.replace('"', '""') + '"'


def server_settings(settings: Settings, application_name: str) -> dict[str, str]:
    # application_name lets an operator (or a test) find this process's sessions in pg_stat_activity.
    return {"search_path": quote_ident(settings.pg_schema), "application_name": application_name}


async def connect(settings: Settings, application_name: str = "mmhub") -> asyncpg.Connection:
    return await asyncpg.connect(settings.pg_dsn, server_settings=server_settings(settings, application_name))
