"""A carrier blows a shipment's version past what the broker takes.

Each event may be up to 256 KiB (streams.codec.MAX_EVENT_BYTES), and a tracking report may list thousands of SSCCs.
Six such reports for one shipment, taken in together, made a status message of 1.4 MB: over the broker's default
max.message.bytes (1,048,588) of the status topic. The broker refuses it, the checkpoint holding it fails, and the
runtime starts the partition again from its committed offsets, where the same events make the same message: every
shipment of that partition stopped for good. The merge now writes no message over hubconf.topics.MAX_OUTPUT_BYTES:
events that do not fit together are taken one at a time, an event that cannot fit alone is set aside to the DLQ
with its original bytes and the reason, and the stage goes on. Since the state is stored as a head and one entry per
event (streams.codec), the reports no longer add up in one stored value: all six go in."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
import pytest

from hubconf import topics as topic_names
from runtime.api import Out
from streams import step as step_module
from streams.codec import MAX_EVENT_BYTES
from streams.merge import ShipmentState, apply_all

from tests.security.merging import TOPICS, Merge, sscc
from tests.unit.builders import SHIPMENT, booking_doc, hub_event, settlement_doc, tracking_doc

BROKER_MAX_MESSAGE_BYTES = 1_048_588  # Kafka's default max.message.bytes, which the status topic keeps


def bloated_report(number: int) -> dict[str, Any]:
    """A valid tracking report of the shipment's first leg that lists 11,000 packages: about 231 KB."""
    doc = tracking_doc("received", leg=1, occurred=20 + number, event_id=f"bloat-{number}")
    doc["payload"]["ssccs"] = [sscc(number * 100_000 + serial) for serial in range(11_000)]
    return doc


def test_a_carrier_cannot_make_a_version_the_broker_refuses() -> None:
    assert topic_names.MAX_OUTPUT_BYTES < BROKER_MAX_MESSAGE_BYTES - 1024  # room for the record batch's own bytes
    merge = Merge()
    merge(merge.records(booking_doc()))
    bloated = [bloated_report(number) for number in range(6)]
    records = merge.records(*bloated)
    assert all(len(record.value or b"") < MAX_EVENT_BYTES for record in records)  # each one a valid input
    assert sum(len(record.value or b"") for record in records) > topic_names.MAX_OUTPUT_BYTES  # together, too big

    outs = merge(records)

    assert max(len(out.value or b"") for out in outs) <= topic_names.MAX_OUTPUT_BYTES
    # taken in one at a time, a version each: each status message carries one report, and the stored state (a head
    # and an entry per event, streams.codec) holds them all without any stored value passing the bound
    assert not [out for out in outs if out.topic == TOPICS.dlq]
    assert len([out for out in outs if out.topic == TOPICS.status]) == len(bloated)
    assert merge.state() == apply_all(ShipmentState(SHIPMENT), [hub_event(doc) for doc in [booking_doc(), *bloated]])
    assert max(len(value) for _, value in merge.stores["shipments"].items()) <= topic_names.MAX_OUTPUT_BYTES
    assert merge.counters.applied == 1 + len(bloated)


def test_an_event_whose_version_cannot_fit_is_set_aside_with_its_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    """The bound lowered below one bloated report's status message: that report is set aside (too_large), with its
    original bytes and the reason, and the ones that fit still go in."""
    monkeypatch.setattr(topic_names, "MAX_OUTPUT_BYTES", 150_000)
    merge = Merge()
    merge(merge.records(booking_doc()))
    small = tracking_doc("departed", leg=1, occurred=30)
    records = merge.records(bloated_report(0), small)
    assert len(records[0].value or b"") > topic_names.MAX_OUTPUT_BYTES

    outs = merge(records)

    # (a dead letter carries the original bytes: the DLQ has its own, larger limit, topic_names.DLQ_MAX_MESSAGE_BYTES)
    assert max(len(out.value or b"") for out in outs if out.topic != TOPICS.dlq) <= topic_names.MAX_OUTPUT_BYTES
    set_aside = [out for out in outs if out.topic == TOPICS.dlq]
    assert [out.value for out in set_aside] == [records[0].value]  # the original bytes, for a replay
    found = dict(set_aside[0].headers)
    assert found[topic_names.DLQ_CODE] == b"too_large"
    assert str(topic_names.MAX_OUTPUT_BYTES).encode() in found[topic_names.DLQ_REASON]
    assert merge.state() == apply_all(ShipmentState(SHIPMENT), [hub_event(doc) for doc in [booking_doc(), small]])
    assert merge.counters.applied + merge.counters.duplicates + merge.counters.dead_lettered == 3


def test_the_stage_goes_on_for_the_same_shipment_and_every_other() -> None:
    merge = Merge()
    merge(merge.records(booking_doc(), booking_doc(shipment_id="SHP-TEST-0002")))
    merge(merge.records(*[bloated_report(number) for number in range(6)]))

    later = merge(merge.records(
        tracking_doc("departed", leg=1, occurred=40),
        tracking_doc("departed", leg=1, occurred=40, shipment_id="SHP-TEST-0002"),
    ))

    statuses = [out for out in later if out.topic == TOPICS.status]
    assert sorted(out.key for out in statuses) == sorted([SHIPMENT.encode(), b"SHP-TEST-0002"])
    assert not [out for out in later if out.topic == TOPICS.dlq]
    first = orjson.loads(next(out.value for out in statuses if out.key == SHIPMENT.encode()) or b"{}")
    assert first["record"]["legs"][0]["status"] == "departed"
    assert datetime.fromisoformat(first["record"]["legs"][0]["departure"]["actual"]).tzinfo is not None


def test_a_charge_revised_again_and_again_cannot_grow_its_entry_past_the_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    """A split state's entry holds an event's winning copy and, for the money, every copy it superseded: a carrier
    revising one large charge again and again grows that one stored value. The revision that would take it past
    the bound is set aside (too_large) like any event whose version cannot fit; the status message stays well below.
    (Split from the first version, and the bound lowered to 35,000 bytes: each revision of this charge adds 8.4 KB.)"""
    monkeypatch.setattr(step_module, "SPLIT_STATE_BYTES", 0)
    monkeypatch.setattr(topic_names, "MAX_OUTPUT_BYTES", 35_000)
    merge = Merge()
    merge(merge.records(booking_doc()))
    lines = [("FRT", f"{100 + n}.00", "USD") for n in range(100)]
    revisions = [{**settlement_doc(lines, leg=1), "revised_at": f"2026-03-0{3 + n}T00:00:00Z"} for n in range(5)]
    outs = [out for doc in revisions for out in merge(merge.records(doc))]

    assert max(len(out.value or b"") for out in outs if out.topic != TOPICS.dlq) < 30_000  # the status is not what hits it
    assert codes_of(outs) == [b"too_large"]
    assert max(len(value) for _, value in merge.stores["shipments"].items()) <= topic_names.MAX_OUTPUT_BYTES
    assert merge.state() == apply_all(ShipmentState(SHIPMENT), [hub_event(doc) for doc in [booking_doc(), *revisions[:4]]])


def codes_of(outs: list[Out]) -> list[bytes]:
    return [dict(out.headers)[topic_names.DLQ_CODE] for out in outs if out.topic == TOPICS.dlq]
