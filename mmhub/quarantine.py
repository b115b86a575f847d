"""`mmhub quarantine list` and `mmhub quarantine replay ID`: the records the stages set aside, and trying one again.

A replay runs the stage's own write for the record, in one transaction with the quarantine row: the row is marked
replayed once the write is in, or keeps the new reason when it is refused again. The stage's offsets are untouched.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import Any

import asyncpg
import orjson

from connectors.postgres.db import connect
from connectors.postgres.quarantine import FAILED, REPLAYED, TAKE, listed
from hubconf.settings import Settings
from runtime.api import Record
from runtime.stored_offsets import storable


def add_commands(sub: Any) -> None:
    """Register `quarantine` on the top-level subparsers."""
    quarantine = sub.add_parser("quarantine", help="records a stage set aside (could not decode or write), and replay")
    commands = quarantine.add_subparsers(dest="quarantine_command", required=True)
    listing = commands.add_parser("list", help="the records waiting, oldest first, with why each was set aside")
    listing.add_argument("--all", action="store_true", help="also the records already replayed")
    listing.add_argument("--json", action="store_true", help="machine-readable output (key and value in hex)")
    listing.set_defaults(run=_list)
    replay = commands.add_parser("replay", help="try the stage's write of one record again")
    replay.add_argument("quarantine_id", type=int, help="as `quarantine list` shows it")
    replay.set_defaults(run=_replay)


def _list(args: argparse.Namespace, settings: Settings) -> int:
    async def fetch() -> list[dict[str, Any]]:
        conn = await connect(settings, "mmhub quarantine")
        try:
            return await listed(conn, args.all)
        finally:
            await conn.close()

    try:
        rows = asyncio.run(fetch())
    except asyncpg.UndefinedTableError:
        return _no_table(settings)
    if args.json:
        shown = [{**row, "key": _hex(row["key"]), "value": _hex(row["value"])} for row in rows]
        sys.stdout.buffer.write(orjson.dumps(shown, option=orjson.OPT_INDENT_2) + b"\n")
        return 0
    for row in rows:
        state = f"replayed {row['replayed_at']:%Y-%m-%d %H:%M:%S}" if row["replayed_at"] else "waiting"
        print(
            f"{row['quarantine_id']}\t{row['stage']}\t{row['topic']}[{row['partition']}]@{row['kafka_offset']}\t"
            f"{row['quarantined_at']:%Y-%m-%d %H:%M:%S}\t{state}\t{row['reason']}"
        )
    if not rows:
        print("nothing in quarantine")
    return 0


def _replay(args: argparse.Namespace, settings: Settings) -> int:
    try:
        outcome = asyncio.run(replay(settings, args.quarantine_id))
    except asyncpg.UndefinedTableError:
        return _no_table(settings)
    if outcome is None:
        print(f"quarantine {args.quarantine_id}: written; marked replayed")
        return 0
    print(f"quarantine {args.quarantine_id}: {outcome}", file=sys.stderr)
    return 1


async def replay(settings: Settings, quarantine_id: int) -> str | None:
    """None once the record is written and marked replayed; else why not (still refused, unknown, or done)."""
    from connectors.postgres.sink import replay as replay_status

    conn = await connect(settings, "mmhub quarantine")
    try:
        async with conn.transaction():
            row = await conn.fetchrow(TAKE, quarantine_id)
            if row is None:
                return "no such record in quarantine"
            if row["replayed_at"] is not None:
                return f"already replayed at {row['replayed_at']}"
            record = _record(row)
            if row["stage"] == "sink":
                refused = await replay_status(conn, record)
            else:
                refused = await _replay_elsewhere(conn, settings, row["stage"], record)
            if refused is None:
                await conn.execute(REPLAYED, quarantine_id)
            else:
                await conn.execute(FAILED, quarantine_id, storable(refused))
            return None if refused is None else f"still refused: {refused}"
    finally:
        await conn.close()


async def _replay_elsewhere(conn: asyncpg.Connection, settings: Settings, stage: str, record: Record) -> str | None:
    from connectors.sharing.stage import replay as share_status
    from connectors.webhooks.filler import replay as queue_share_message
    from connectors.webhooks.sealing import load_keyring

    if stage == "share":
        return await share_status(conn, settings, record)
    if stage == "webhooks":
        return await queue_share_message(conn, record, load_keyring(os.environ))
    raise ValueError(f"unknown stage {stage!r}")


def _record(row: asyncpg.Record) -> Record:
    """The quarantined record as the stage consumed it."""
    return Record(
        row["topic"], row["partition"], row["kafka_offset"], row["key"], row["value"], timestamp_ms=row["kafka_timestamp"]
    )


def _no_table(settings: Settings) -> int:
    print(f"mmhub quarantine: no quarantine in schema {settings.pg_schema!r} (has a stage run?)", file=sys.stderr)
    return 1


def _hex(value: bytes | None) -> str | None:
    return None if value is None else value.hex()
