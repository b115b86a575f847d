"""The terminal views: `parked`'s age and count, the shipment summary's width and its version note, one time format."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import orjson

from connectors.kafka import read_jsonl
from connectors.parties import load_parties
from hubconf.settings import DEFAULT_PARTIES
from mmhub.render import WIDTH, age, parked_report, summary, utc, version_note
from streams.codec import Rejection, decode_event
from streams.merge import fold
from streams.references import Book, Parked, parked_summary

REPO = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 12, 3, 23, 30, tzinfo=timezone.utc)


def _parked(event_id: str, since: datetime) -> Parked:
    return Parked(event={"source": "carrier.oceanline", "event_id": event_id}, since=since)


def test_parked_age_is_taken_when_read_and_an_event_on_two_references_counts_once() -> None:
    nine_minutes_ago = NOW - timedelta(minutes=9)
    # what the worker wrote when the events parked: the age then was 0.124 s
    container = orjson.loads(
        parked_summary("container:CSQU3054383", Book(parked=[_parked("e1", nine_minutes_ago)]), nine_minutes_ago + timedelta(seconds=0.124))
    )
    bill = orjson.loads(
        parked_summary(
            "bill_of_lading:OCLN1",
            Book(parked=[_parked("e1", nine_minutes_ago), _parked("e2", NOW - timedelta(minutes=2))]),
            NOW - timedelta(minutes=2),
        )
    )
    assert container["oldest_age_s"] == 0.124  # the stale figure `mmhub parked` used to print

    rows, events = parked_report([container, bill], NOW)

    assert events == 2  # e1 waits on both references: 3 parked entries, 2 events
    assert sum(row["parked"] for row in rows) == 3
    assert [row["oldest_age_s"] for row in rows] == [540.0, 540.0]
    assert {row["oldest_since"] for row in rows} == {"2026-12-03T23:21:00Z"}
    assert age(540.0) == "9m00s" and age(42.9) == "42s" and age(3 * 3600 + 720) == "3h12m" and age(2 * 86400 + 4 * 3600) == "2d04h"


def test_the_summary_fits_100_columns_and_explains_version_against_events_applied() -> None:
    events = [e for e in (decode_event(line) for line in read_jsonl(REPO / "examples" / "journey.jsonl")) if not isinstance(e, Rejection)]
    record = fold(events, load_parties(DEFAULT_PARTIES).authority())["SHP-2026-000042"]
    text = summary(record)
    print(text)
    assert max(len(line) for line in text.splitlines()) <= WIDTH
    assert (record.version, record.events_applied, record.retracted_events) == (52, 49, 1)
    assert version_note(record) == (
        "Version 52 counts every distinct event copy the hub took in (a revision is a copy of its own); 49 event(s)"
        " are in force, 1 retracted and 2 copy(ies) were superseded by a later revision."
    )
    assert "  leg  mode      carrier             route         status       departed           arrived" in text
    assert "       accepted; documents: sea_waybill OCLN260300917" in text


def test_one_time_format() -> None:
    assert utc(datetime(2026, 3, 3, 10, 0, tzinfo=timezone(timedelta(hours=8)))) == "2026-03-03T02:00:00Z"
