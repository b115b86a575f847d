"""Reading the share audit (`share_audit`): what was shared with whom, for `mmhub usage`.

One query groups the audit by party, shipment, kind and channel under optional filters (a party, a shipment, a
month); a second gives the totals over the same rows. `table` renders both for a terminal.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable

from connectors.postgres.db import connect
from hubconf.settings import Settings

_MONTH = re.compile(r"^(?P<year>[0-9]{4})-(?P<month>0[1-9]|1[0-2])$")

_FILTER = """
WHERE ($1::text IS NULL OR a.party = $1) AND ($2::text IS NULL OR a.shipment_id = $2)
    AND ($3::timestamptz IS NULL OR a.shared_at >= $3) AND ($4::timestamptz IS NULL OR a.shared_at < $4)
"""

# Each row's fields unnested (LEFT: a share may disclose none), hence the DISTINCT counts.
USAGE = f"""
SELECT a.party, a.shipment_id, a.kind, a.channel,
    count(DISTINCT a.share_id) AS shares,
    min(a.record_version) AS first_version, max(a.record_version) AS last_version,
    count(DISTINCT f.field) AS fields,
    min(a.shared_at) AS first_at, max(a.shared_at) AS last_at,
    string_agg(DISTINCT array_to_string(a.relations, '+'), ',') AS relations,
    coalesce(string_agg(DISTINCT array_to_string(a.via_grants, '>'), ',')
        FILTER (WHERE cardinality(a.via_grants) > 0), '') AS via_grants
FROM share_audit a LEFT JOIN LATERAL unnest(a.fields) AS f(field) ON true
{_FILTER}
GROUP BY a.party, a.shipment_id, a.kind, a.channel
ORDER BY a.party, a.shipment_id, a.kind, a.channel
"""

TOTALS = f"""
SELECT count(DISTINCT a.share_id) AS shares, count(DISTINCT a.shipment_id) AS shipments,
    count(DISTINCT a.party) AS parties, count(DISTINCT f.field) AS fields,
    min(a.shared_at) AS first_at, max(a.shared_at) AS last_at
FROM share_audit a LEFT JOIN LATERAL unnest(a.fields) AS f(field) ON true
{_FILTER}
"""


@dataclass(frozen=True)
class UsageRow:
    """The shares of one kind of one shipment to one party through one channel."""

    party: str
    shipment_id: str
    kind: str
    channel: str
    shares: int
    first_version: int | None
    last_version: int | None
    fields: int  # distinct field paths disclosed
    first_at: datetime
    last_at: datetime
    relations: str  # the party's relations when it was sent them ("insurer", "delegate"; several with ",")
    via_grants: str  # the grant chains that allowed a delegate's shares ("g1>g2"), empty otherwise


@dataclass(frozen=True)
class Totals:
    shares: int
    shipments: int
    parties: int
    fields: int
    first_at: datetime | None
    last_at: datetime | None


@dataclass(frozen=True)
class Usage:
    party: str | None
    shipment_id: str | None
    month: str | None
    rows: list[UsageRow]
    totals: Totals


def month_range(month: str) -> tuple[datetime, datetime]:
    """`2026-03` -> [2026-03-01, 2026-04-01) in UTC. Raises ValueError on anything else."""
    match = _MONTH.match(month)
    if match is None:
        raise ValueError(f"{month!r} is not a month (YYYY-MM)")
    year, number = int(match["year"]), int(match["month"])
    start = datetime(year, number, 1, tzinfo=timezone.utc)
    end = datetime(year + number // 12, number % 12 + 1, 1, tzinfo=timezone.utc)
    return start, end


async def usage(
    settings: Settings, party: str | None = None, shipment_id: str | None = None, month: str | None = None
) -> Usage:
    """What was shared, grouped by party, shipment, kind and channel; each filter is optional."""
    start, end = month_range(month) if month is not None else (None, None)
    conn = await connect(settings, "mmhub-usage")
    try:
        rows = await conn.fetch(USAGE, party, shipment_id, start, end)
        totals = await conn.fetchrow(TOTALS, party, shipment_id, start, end)
    finally:
        await conn.close()
    assert totals is not None  # an aggregate without GROUP BY returns one row, also over no rows
    return Usage(party, shipment_id, month, [UsageRow(**dict(row)) for row in rows], Totals(**dict(totals)))


def table(report: Usage) -> str:
    """The report for a terminal: one line per row, then the totals. A column the filter fixes is left out."""
    columns: list[tuple[str, Callable[[UsageRow], str], bool]] = [
        ("party", lambda r: r.party, report.party is None),
        ("shipment", lambda r: r.shipment_id, report.shipment_id is None),
        ("kind", lambda r: r.kind, True),
        ("channel", lambda r: r.channel, True),
        ("shares", lambda r: str(r.shares), True),
        ("versions", lambda r: _versions(r.first_version, r.last_version), True),
        ("fields", lambda r: str(r.fields), True),
        ("first shared", lambda r: _time(r.first_at), True),
        ("last shared", lambda r: _time(r.last_at), True),
        ("as", lambda r: r.relations + (f" via {r.via_grants}" if r.via_grants else ""), True),
    ]
    shown = [(name, cell) for name, cell, keep in columns if keep]
    cells = [[cell(row) for _, cell in shown] for row in report.rows]
    widths = [max([len(name)] + [len(line[i]) for line in cells]) for i, (name, _) in enumerate(shown)]
    right = {"shares", "fields"}

    def line(values: list[str]) -> str:
        padded = [v.rjust(w) if name in right else v.ljust(w) for (name, _), v, w in zip(shown, values, widths)]
        return "  ".join(padded).rstrip()

    scope = [f"party {report.party}" if report.party else "", f"shipment {report.shipment_id}" if report.shipment_id else ""]
    title = "Shares of " + (", ".join(s for s in scope if s) or "every party") + (f" in {report.month}" if report.month else "")
    out = [title, ""]
    if report.rows:
        out += [line([name for name, _ in shown]), line(["-" * w for w in widths])] + [line(values) for values in cells]
    else:
        out.append("(nothing shared)")
    t = report.totals
    out += [
        "",
        f"total: {t.shares} share(s) of {t.shipments} shipment(s) to {t.parties} part{'y' if t.parties == 1 else 'ies'},"
        f" {t.fields} distinct field(s) disclosed"
        + (f", {_time(t.first_at)} .. {_time(t.last_at)}" if t.first_at and t.last_at else ""),
    ]
    return "\n".join(out)


def _versions(first: int | None, last: int | None) -> str:
    if first is None or last is None:
        return "-"
    return str(first) if first == last else f"{first}..{last}"


def _time(moment: datetime | None) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") if moment else "-"

