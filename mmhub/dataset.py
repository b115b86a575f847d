"""`mmhub dataset performance`: the carrier performance data set, from offline event logs or the live projection.

    mmhub dataset performance [--month YYYY-MM] [--lane A-B] [--k K] [--json] [FILE ...]

With FILE(s): the logs are folded as `mmhub fold` folds them (streams.merge.fold, the party registry's authority).
Without: the records of the Postgres projection (`shipments.record`). The release is the operator's preview under the
policy's k/m rule (no noise, no Published state kept: the gateway's releases to insurers, lenders and carriers keep
theirs).

    mmhub dataset publish --month YYYY-MM
    mmhub dataset monthly [--once] [--interval SECONDS]

`publish` sends a closed month's release (the same k/m cells, from the projection) to hub.datasets.performance,
keyed by the month. It is a share like any other: audited (share_audit and hub.audit, party `hub.datasets`, channel
kafka) and sticky (dataset_published). A month is released once: the first run cuts, audits and keeps its document
(dataset_monthly, one transaction), then sends it; a later run (a restart, a second replica, an operator) sends
that same document only if it was never sent, and otherwise nothing. `monthly` is the scheduled duty: every
--interval (an hour) it publishes the previous month so, which is a no-op once done (the compose file runs it).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Mapping

import orjson

from hubconf.settings import Settings
from schemas.events import HubEvent
from schemas.rejection import Rejection
from schemas.record import ShipmentRecord


def checked(lines: list[bytes], settings: Settings, received_at: datetime) -> list[HubEvent | Rejection]:
    """Each line as the hub takes it in: decoded, and refused when dated past its receipt (streams.horizon)."""
    from streams.codec import decode_event
    from streams.horizon import Horizon

    horizon = Horizon.of(settings)
    out: list[HubEvent | Rejection] = []
    for line in lines:
        decoded = decode_event(line)
        out.append(decoded if isinstance(decoded, Rejection) else horizon.refusal(decoded, received_at) or decoded)
    return out


def decoded_events(paths: list[Path], settings: Settings, received_at: datetime) -> tuple[list[HubEvent], int, int]:
    """The logs' events as the worker would take them (decoded, inside the horizon, references resolved), how many
    lines were rejected and how many events stay parked (each reported on stderr). `mmhub fold` reads logs so too."""
    from connectors.kafka import read_jsonl
    from connectors.parties import load_parties
    from mmhub.render import utc
    from streams.references import resolve_offline

    authority = load_parties(settings.parties_path).authority()
    events: list[HubEvent] = []
    rejected = 0
    for path in paths:
        for number, decoded in enumerate(checked(read_jsonl(path), settings, received_at), start=1):
            if isinstance(decoded, Rejection):
                rejected += 1
                where = f"{path.name} line {number}" if len(paths) > 1 else f"line {number}"
                print(f"{where}: rejected ({decoded.code}): {decoded.reason}", file=sys.stderr)
            else:
                events.append(decoded)
    events, unresolved = resolve_offline(events, authority)
    for event in unresolved:
        refs = ", ".join(f"{r.kind}:{r.value}" for r in event.references)
        print(f"{event.key}: parked: no shipment registers {refs} at {utc(event.occurred_at)}", file=sys.stderr)
    return events, rejected, len(unresolved)


def _records(args: argparse.Namespace, settings: Settings) -> list[ShipmentRecord]:
    if args.files:
        from connectors.parties import load_parties
        from streams.merge import fold

        events, _, _ = decoded_events([Path(f) for f in args.files], settings, datetime.now(timezone.utc))
        return list(fold(events, load_parties(settings.parties_path).authority()).values())
    from connectors.postgres.store import all_records

    return asyncio.run(all_records(settings))


def performance_release(
    records: list[ShipmentRecord], month: str | None, lane: str | None, k: int | None
) -> dict[str, object]:
    from streams.datasets import cells, release, release_document, select
    from streams.sharing import POLICY

    policy = POLICY.datasets.policy()
    released = release(select(cells(records), month, lane), policy, k=k)
    return release_document(released, policy, "operator", month, lane, noisy=False, k=k)


def _text(document: dict[str, object]) -> str:
    cells = document["cells"]
    assert isinstance(cells, list)
    lines = [
        f"Carrier performance, k={document['k']} m={document['m']}: {len(cells)} cell(s) released, "
        f"{document['suppressed']} suppressed",
        "",
    ]
    columns = ("shipments", "on_time_planned", "transit_h_p50", "claim_rate", "co2e_wtw_g_per_tkm")
    lines.append("  ".join(["lane".ljust(11), "mode", "carrier".ljust(20), "month  "] + [c.rjust(10) for c in columns]))
    for cell in cells:
        figures = cell["figures"]
        values = ["-" if figures[c] is None else f"{figures[c]:.3g}" for c in columns]
        lines.append(
            "  ".join([cell["lane"].ljust(11), str(cell["mode"]).ljust(4), cell["carrier"].ljust(20), cell["month"]])
            + "  "
            + "  ".join(v.rjust(10) for v in values)
        )
    return "\n".join(lines)


def _performance(args: argparse.Namespace, settings: Settings) -> int:
    if args.k is not None and args.k < 1:
        print("mmhub dataset performance: --k must be at least 1", file=sys.stderr)
        return 2
    document = performance_release(_records(args, settings), args.month, args.lane, args.k)
    if args.json:
        sys.stdout.buffer.write(orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n")
    else:
        print(_text(document))
    return 0


async def publish_month(settings: Settings, month: str, at: datetime) -> tuple[dict[str, object], bool]:
    """The month's release on hub.datasets.performance, once: (its document, whether this call sent it)."""
    from connectors.gateway.datasets import MONTHLY, MONTHLY_KIND, SUBJECT, DatasetStore, ReleaseJob
    from connectors.gateway.publisher import KafkaPublisher
    from streams.datasets import CellKey, Published, Release, cells, release, release_document, select
    from streams.sharing import POLICY, Share

    policy = POLICY.datasets.policy()
    store = await DatasetStore.open(settings)
    publisher = KafkaPublisher(settings.kafka_client())
    await publisher.start()
    try:
        records = await store.records()

        def cut(previous: Mapping[CellKey, Published]) -> Release:
            return release(select(cells(records), month), policy, previous)

        def audited(out: Release) -> Share:
            return Share(
                party=MONTHLY, shipment_id=SUBJECT, version=None, kind="dataset.performance.monthly", channel="kafka",
                fields=tuple(sorted(r.key.label() for r in out.cells)), policy_version=POLICY.version,
                relations=(MONTHLY_KIND,), via_grants=(), shared_at=at, ref=month,
            )  # fmt: skip

        async def audit(entry: dict[str, Any]) -> None:
            await publisher.send(settings.topics.audit, MONTHLY.encode(), orjson.dumps(entry), [])

        def document(out: Release) -> dict[str, Any]:
            return release_document(out, policy, MONTHLY_KIND, month, None, noisy=False)

        job = ReleaseJob(MONTHLY, 0.0, MONTHLY_KIND, cut, audited, audit, at)
        kept, sent_at = await store.monthly(month, job, document)
        if sent_at is not None:
            return kept, False
        await publisher.send(settings.topics.datasets_performance, month.encode(), orjson.dumps(kept), [])
        await store.sent(month, at)
        return kept, True
    finally:
        await publisher.stop()
        await store.close()


def previous_month(now: datetime) -> str:
    """The last closed month at `now` (UTC)."""
    first = now.astimezone(timezone.utc).replace(day=1)
    return (first - timedelta(days=1)).strftime("%Y-%m")


def _report(month: str, document: dict[str, object], sent: bool, settings: Settings) -> None:
    cells = document["cells"]
    assert isinstance(cells, list)
    done = "published" if sent else "already published (nothing sent)"
    print(
        f"{done} {month}: {len(cells)} cell(s), {document['suppressed']} suppressed, to "
        f"{settings.topics.datasets_performance}",
        file=sys.stderr,
    )


def _publish(args: argparse.Namespace, settings: Settings) -> int:
    now = datetime.now(timezone.utc)
    if args.month >= now.strftime("%Y-%m"):
        print(f"mmhub dataset publish: {args.month} is not a closed month (now is {now:%Y-%m})", file=sys.stderr)
        return 2
    document, sent = asyncio.run(publish_month(settings, args.month, now))
    _report(args.month, document, sent, settings)
    return 0


async def monthly(settings: Settings, interval_s: float, once: bool, clock: Callable[[], datetime]) -> None:
    """Publish the previous month, now and then every `interval_s` (a no-op once it is done)."""
    while True:
        now = clock()
        month = previous_month(now)
        document, sent = await publish_month(settings, month, now)
        _report(month, document, sent, settings)
        if once:
            return
        await asyncio.sleep(interval_s)


def _monthly(args: argparse.Namespace, settings: Settings) -> int:
    if args.interval <= 0:
        print("mmhub dataset monthly: --interval must be positive", file=sys.stderr)
        return 2
    asyncio.run(monthly(settings, args.interval, args.once, lambda: datetime.now(timezone.utc)))
    return 0


def _month(text: str) -> str:
    datetime.strptime(text, "%Y-%m")
    return text


def add_dataset_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    dataset = sub.add_parser("dataset", help="data products released under the privacy policy")
    dataset_sub = dataset.add_subparsers(dest="dataset_command", required=True)
    performance = dataset_sub.add_parser(
        "performance",
        help="carrier performance per lane, mode, carrier and month (k/m-suppressed), from logs or the projection",
    )
    performance.add_argument("--month", type=_month, help="only this month (YYYY-MM)")
    performance.add_argument("--lane", help="only this lane (ORIGIN-DESTINATION UN/LOCODEs, e.g. CNQZH-SGSIN)")
    performance.add_argument("--k", type=int, help="raise the policy's k (minimum shipments per cell) for this release")
    performance.add_argument("--json", action="store_true", help="print the release as JSON")
    performance.add_argument("files", nargs="*", help="JSON-lines event logs (default: the live Postgres projection)")
    performance.set_defaults(run=_performance)
    publish = dataset_sub.add_parser(
        "publish", help="send a closed month's release to hub.datasets.performance (keyed by month), audited"
    )
    publish.add_argument("--month", type=_month, required=True, help="the closed month (YYYY-MM)")
    publish.set_defaults(run=_publish)
    scheduled = dataset_sub.add_parser(
        "monthly", help="publish the previous month's release once, then again every --interval (a no-op once done)"
    )
    scheduled.add_argument("--interval", type=float, default=3600.0, help="seconds between two runs (3600)")
    scheduled.add_argument("--once", action="store_true", help="run once and exit (for cron)")
    scheduled.set_defaults(run=_monthly)
