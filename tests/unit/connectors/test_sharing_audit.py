"""`mmhub usage`'s pure parts: the month a report covers, and the table it prints."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from connectors.sharing.audit import Totals, Usage, UsageRow, month_range, table

T1 = datetime(2026, 12, 1, 8, 0, tzinfo=timezone.utc)
T2 = datetime(2026, 12, 3, 9, 30, 15, 500, tzinfo=timezone.utc)


def test_a_month_runs_from_its_first_day_to_the_next_months_first_day_in_utc() -> None:
    assert month_range("2026-03") == (datetime(2026, 3, 1, tzinfo=timezone.utc), datetime(2026, 4, 1, tzinfo=timezone.utc))
    assert month_range("2026-12") == (T1.replace(hour=0), datetime(2027, 1, 1, tzinfo=timezone.utc))


@pytest.mark.parametrize("text", ["2026-13", "2026-00", "2026-3", "26-03", "2026-03-01", ""])
def test_anything_but_yyyy_mm_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not a month"):
        month_range(text)


def row(**changes: object) -> UsageRow:
    fields: dict[str, object] = {
        "party": "broker.customs-jb", "shipment_id": "SHP-2026-000043", "kind": "status", "channel": "kafka",
        "shares": 3, "first_version": 54, "last_version": 56, "fields": 103, "first_at": T1, "last_at": T2,
        "relations": "delegate", "via_grants": "g1>g2",
    }
    return UsageRow(**{**fields, **changes})  # type: ignore[arg-type]


def test_a_partys_report_leaves_out_the_party_column_and_totals_the_rows() -> None:
    report = Usage("broker.customs-jb", None, "2026-12", [row(), row(kind="claim", shares=1, first_version=56, last_version=56)],
                   Totals(4, 1, 1, 110, T1, T2))
    lines = table(report).splitlines()
    assert lines[0] == "Shares of party broker.customs-jb in 2026-12"
    assert lines[2].split() == ["shipment", "kind", "channel", "shares", "versions", "fields", "first", "shared", "last", "shared", "as"]
    assert lines[4].split() == ["SHP-2026-000043", "status", "kafka", "3", "54..56", "103", "2026-12-01T08:00:00Z",
                                "2026-12-03T09:30:15Z", "delegate", "via", "g1>g2"]
    assert lines[5].split()[4] == "56"
    assert lines[-1] == ("total: 4 share(s) of 1 shipment(s) to 1 party, 110 distinct field(s) disclosed,"
                         " 2026-12-01T08:00:00Z .. 2026-12-03T09:30:15Z")


def test_a_shipments_report_lists_parties_and_says_when_nothing_was_shared() -> None:
    assert table(Usage(None, "SHP-X", None, [row()], Totals(3, 1, 1, 103, T1, T2))).splitlines()[2].split()[:2] == ["party", "kind"]
    empty = table(Usage("nobody.here", None, "2026-12", [], Totals(0, 0, 0, 0, None, None)))
    assert "(nothing shared)" in empty and empty.endswith("0 distinct field(s) disclosed")
