"""`mmhub webhooks …`: subscribe, rotate, list, unsubscribe, and run the filler and the dispatcher."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from datetime import datetime, timezone
from typing import Any, Awaitable, Callable, TypeVar

import orjson

from hubconf.settings import Settings

T = TypeVar("T")


def add_commands(sub: Any, timestamp: Callable[[str], datetime]) -> None:
    """Register `webhooks` on the top-level subparsers; `timestamp` parses an ISO 8601 argument with an offset."""
    webhooks = sub.add_parser("webhooks", help="parties' webhook subscriptions, and their delivery")
    commands = webhooks.add_subparsers(dest="webhooks_command", required=True)

    subscribe = commands.add_parser("subscribe", help="subscribe a party's URL; prints the id and the secret, once")
    subscribe.add_argument("--party", required=True, help="the party whose share messages it receives")
    subscribe.add_argument("--url", required=True, help="https:// URL the notifications are POSTed to")
    subscribe.add_argument("--shipment", help="only this shipment")
    subscribe.add_argument("--kinds", type=_kinds, help="only these kinds, comma-separated: status,claim")
    subscribe.add_argument("--expires", type=timestamp, help="ISO 8601 with an offset; nothing shared after it")
    subscribe.set_defaults(run=_subscribe)

    rotate = commands.add_parser("rotate", help="a new secret; the old one still signs for the grace period")
    rotate.add_argument("subscription_id", help="as `webhooks subscribe` printed it")
    rotate.set_defaults(run=_rotate)

    listing = commands.add_parser("list", help="subscriptions with pending, delivered and dead counts, last errors")
    listing.add_argument("--party", help="only this party's subscriptions")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.set_defaults(run=_list)

    delete = commands.add_parser("delete", help="unsubscribe: nothing more is queued or sent")
    delete.add_argument("subscription_id", help="as `webhooks subscribe` printed it")
    delete.set_defaults(run=_delete)

    new_key = commands.add_parser("new-key", help="print a fresh keyring line `<key id> <key>` (see MMHUB_WEBHOOKS_KEYS_FILE)")
    new_key.add_argument("key_id", help="a name for the keyring line, such as 2027-01")
    new_key.set_defaults(run=_new_key)

    rotate_key = commands.add_parser(
        "rotate-key", help="re-seal every stored secret with the keyring's first key; the other keys are then unneeded"
    )
    rotate_key.set_defaults(run=_rotate_key)

    run = commands.add_parser("run", help="queue share messages and deliver them (long-running; SIGTERM stops it)")
    run.add_argument("--loglevel", default="info", help="log level: debug, info, warning or error")
    run.set_defaults(run=_run)


def _kinds(text: str) -> list[str]:
    from connectors.webhooks.notifications import KINDS

    kinds = [k.strip() for k in text.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in KINDS]
    if not kinds or unknown:
        raise argparse.ArgumentTypeError(f"{text!r}: kinds are {', '.join(KINDS)}")
    return kinds


def _with_store(settings: Settings, work: Callable[[Any], Awaitable[T]]) -> T:
    """`work` with the store, once the schema is migrated and the keyring checked against the stored secrets."""
    from connectors.postgres.migrate import migrate
    from connectors.webhooks.notifications import Unavailable
    from connectors.webhooks.run import config_from_env
    from connectors.webhooks.sealing import KeyProblem
    from connectors.webhooks.store import WebhookStore

    async def main() -> T:
        await migrate(settings.pg_dsn, settings.pg_schema)
        store = await WebhookStore.open(settings, config_from_env(), "mmhub-webhooks-cli", max_size=1)
        try:
            await store.run(store.seal)
            return await work(store)
        finally:
            await store.close()

    try:
        return asyncio.run(main())
    except KeyProblem as error:
        print(f"mmhub webhooks: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    except (OSError, Unavailable) as error:
        print(f"mmhub webhooks: Postgres did not answer: {error}", file=sys.stderr)
        raise SystemExit(1) from None


def _subscribe(args: argparse.Namespace, settings: Settings) -> int:
    from pydantic import ValidationError

    from connectors.parties import load_parties
    from connectors.webhooks.notifications import Refused, SubscriptionRequest
    from schemas.rejection import describe

    try:
        registry = load_parties(settings.parties_path)
    except ValueError as error:
        print(f"mmhub webhooks subscribe: {error}", file=sys.stderr)
        return 2
    if registry.party(args.party) is None:
        print(f"mmhub webhooks subscribe: {args.party!r} is not in {settings.parties_path}", file=sys.stderr)
        return 2
    try:
        wanted = SubscriptionRequest(url=args.url, shipment_id=args.shipment, kinds=args.kinds, expires_at=args.expires)
    except ValidationError as error:
        print(f"mmhub webhooks subscribe: {describe(error)}", file=sys.stderr)
        return 2
    try:
        made = _with_store(settings, lambda store: store.subscribe(args.party, wanted, datetime.now(timezone.utc)))
    except Refused as error:
        print(f"mmhub webhooks subscribe: {error}", file=sys.stderr)
        return 2
    print(f"subscription_id\t{made.subscription_id}")
    print(f"secret\t{made.secret}")
    print("the secret is shown only now: keep it to verify Notification-Signature", file=sys.stderr)
    return 0


def _rotate(args: argparse.Namespace, settings: Settings) -> int:
    rotated = _with_store(settings, lambda store: store.rotate(args.subscription_id, datetime.now(timezone.utc)))
    if rotated is None:
        print(f"mmhub webhooks rotate: no active subscription {args.subscription_id!r}", file=sys.stderr)
        return 1
    assert rotated.previous_secret_until is not None
    print(f"subscription_id\t{rotated.subscription_id}")
    print(f"secret\t{rotated.secret}")
    print(f"previous_secret_valid_until\t{rotated.previous_secret_until.isoformat()}")
    return 0


def _delete(args: argparse.Namespace, settings: Settings) -> int:
    if not _with_store(settings, lambda store: store.unsubscribe(args.subscription_id)):
        print(f"mmhub webhooks delete: no active subscription {args.subscription_id!r}", file=sys.stderr)
        return 1
    print(f"unsubscribed {args.subscription_id}")
    return 0


def _list(args: argparse.Namespace, settings: Settings) -> int:
    rows = _with_store(settings, lambda store: store.overview(args.party))
    if args.json:
        sys.stdout.buffer.write(orjson.dumps(rows, option=orjson.OPT_INDENT_2) + b"\n")
        return 0
    print(f"{len(rows)} subscription(s)")
    for row in rows:
        filters = ", ".join(
            part
            for part in (
                f"shipment {row['shipment_id']}" if row["shipment_id"] else "",
                f"kinds {','.join(row['kinds'])}" if row["kinds"] else "",
                f"expires {row['expires_at'].isoformat()}" if row["expires_at"] else "",
            )
            if part
        )
        state = "active" if row["active"] else "inactive"
        print(f"{row['subscription_id']}  {row['party']}  {row['url']}  [{state}] {filters or 'everything'}")
        print(f"    pending {row['pending']}  delivered {row['delivered']}  dead {row['dead']}")
        if row["dead_reason"]:
            print(f"    last dead letter: {row['dead_reason']}")
        if row["last_error"]:
            print(f"    last error ({row['last_error_at'].isoformat()}): {row['last_error']}")
    return 0


def _new_key(args: argparse.Namespace, settings: Settings) -> int:
    from connectors.webhooks.sealing import KeyProblem, new_key_line, parse_keyring

    line = new_key_line(args.key_id)
    try:
        parse_keyring(line, "the new key")
    except KeyProblem as error:
        print(f"mmhub webhooks new-key: {error}", file=sys.stderr)
        return 2
    print(line)
    return 0


def _rotate_key(args: argparse.Namespace, settings: Settings) -> int:
    async def reseal(store: Any) -> tuple[int, Any]:
        return await store.run(lambda conn: store.seal(conn, rotate=True)), store.keys

    count, keys = _with_store(settings, reseal)
    others = sorted(set(keys.keys) - {keys.current})
    print(f"re-sealed the secrets of {count} subscription(s); every secret is now sealed with key {keys.current!r}")
    if others:
        print(f"the other keys ({', '.join(others)}) are no longer needed: remove them from {keys.source}")
    return 0


def _run(args: argparse.Namespace, settings: Settings) -> int:
    from connectors.webhooks.run import config_from_env, run_webhooks
    from connectors.webhooks.sealing import KeyProblem


    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)  # finish the requests in hand, then leave
        await run_webhooks(settings, config_from_env(), stop)

    try:
        asyncio.run(main())
    except KeyProblem as error:
        print(f"mmhub webhooks run: {error}", file=sys.stderr)
        return 2
    return 0
