"""Every Postgres connection or pool the hub's processes open is bounded by MMHUB_PG_CONNECT_TIMEOUT_S: a database
that does not answer is a short failure (mmhub.entry: one line, exit 5), not asyncpg's 60 s default per attempt."""

from __future__ import annotations

import ast
from dataclasses import replace
from pathlib import Path

from connectors.postgres.db import connect_options
from hubconf.settings import Settings

ROOT = Path(__file__).resolve().parents[4]
PACKAGES = ("hubconf", "schemas", "streams", "runtime", "connectors", "worker", "mmhub")
OPENERS = {"connect", "create_pool"}


def unbounded(source: str) -> list[int]:
    """The lines of `asyncpg.connect(...)` and `asyncpg.create_pool(...)` calls in `source` that pass neither
    `timeout=` nor the `**connect_options(...)` that carries it."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        target = node.func
        if not (target.attr in OPENERS and isinstance(target.value, ast.Name) and target.value.id == "asyncpg"):
            continue
        bounded = any(
            keyword.arg == "timeout"
            or (
                keyword.arg is None
                and isinstance(keyword.value, ast.Call)
                and isinstance(keyword.value.func, ast.Name)
                and keyword.value.func.id == "connect_options"
            )
            for keyword in node.keywords
        )
        if not bounded:
            lines.append(node.lineno)
    return lines


def test_every_connection_and_pool_has_a_connect_timeout() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{line}"
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        for line in unbounded(path.read_text())
    ]
    assert found == []


def test_the_scan_tells_a_bounded_call_from_an_unbounded_one() -> None:
    source = (
        "async def f(s):\n"
        "    await asyncpg.connect(s.pg_dsn)\n"
        "    await asyncpg.create_pool(s.pg_dsn, min_size=1)\n"
        "    await asyncpg.connect(s.pg_dsn, timeout=s.pg_connect_timeout_s)\n"
        "    await asyncpg.create_pool(s.pg_dsn, **connect_options(s, 'x'))\n"
        "    await asyncpg.create_pool(s.pg_dsn, **other(s))\n"
    )
    assert unbounded(source) == [2, 3, 6]


def test_the_options_carry_the_setting_and_the_schema() -> None:
    settings = replace(Settings.from_env(), pg_schema="tenant_7", pg_connect_timeout_s=2.5)
    options = connect_options(settings, "mmhub-test")
    assert options["timeout"] == 2.5
    assert options["server_settings"] == {"search_path": '"tenant_7"', "application_name": "mmhub-test"}
