"""The format registry, the canonical format parser and the router every path into the hub shares."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.formats import FORMATS, parse_canonical, parser
from schemas.events import HUB_EVENT
from schemas.rejection import Rejection, for_event
from streams.horizon import Horizon
from streams.references import REFERENCE_MESSAGE
from streams.routing import route
from hubconf.topics import RAW_FORMATS

from ..builders import RECEIVED_AT, tracking_doc

REFERENCE_ONLY = {**tracking_doc("departed", leg=None), "references": [{"kind": "container", "value": "CSQU3054383"},
                                                                        {"kind": "cmr", "value": "SCR-1"}]}
REFERENCE_ONLY.pop("shipment_id")


def test_every_raw_topic_has_a_parser_and_unknown_formats_are_named() -> None:
    assert tuple(FORMATS) == RAW_FORMATS
    try:
        parser("x12")
    except ValueError as error:
        assert "x12" in str(error) and "edifact" in str(error)
    else:
        raise AssertionError("an unknown format was accepted")


def test_canonical_reads_an_object_an_array_or_json_lines_and_rejects_bad_lines_alone() -> None:
    one = tracking_doc("departed")
    two = tracking_doc("arrived")
    assert len(parse_canonical(orjson.dumps(one), "x")) == 1
    assert len(parse_canonical(orjson.dumps([one, two]), "x")) == 2
    lines = orjson.dumps(one) + b"\n{broken\n\n" + orjson.dumps(two) + b"\n"
    results = parse_canonical(lines, "x")
    assert [type(r).__name__ for r in results] == ["TrackingEvent", "Rejection", "TrackingEvent"]
    assert isinstance(results[1], Rejection) and results[1].reason.startswith("line 2:")


def test_canonical_does_not_rewrite_the_source_the_router_refuses_a_mismatch() -> None:
    [event] = parse_canonical(orjson.dumps(tracking_doc("departed")), "carrier.somebody-else")
    assert not isinstance(event, Rejection)
    refused = route(event, "carrier.somebody-else", RECEIVED_AT, Horizon())
    assert isinstance(refused, Rejection) and refused.code == "wrong_source"


def test_an_addressed_event_goes_to_its_shipment_a_reference_only_one_to_each_reference() -> None:
    addressed = HUB_EVENT.validate_python(tracking_doc("departed"))
    [out] = route(addressed, addressed.source, RECEIVED_AT, Horizon())  # type: ignore[misc]
    assert (out.stream, out.key) == ("events", addressed.shipment_id.encode())  # type: ignore[union-attr]

    unaddressed = HUB_EVENT.validate_python(REFERENCE_ONLY)
    outs = route(unaddressed, unaddressed.source, RECEIVED_AT, Horizon(), origin="carrier.canonical.raw[0]@7")
    assert not isinstance(outs, Rejection)
    assert [(o.stream, o.key) for o in outs] == [("references", b"container:CSQU3054383"), ("references", b"cmr:SCR-1")]
    request = REFERENCE_MESSAGE.validate_json(outs[0].value)
    assert request.type == "request" and request.origin == "carrier.canonical.raw[0]@7"  # type: ignore[union-attr]


@settings(max_examples=200, deadline=None)
@given(raw=st.binary(max_size=2000) | st.text(max_size=500).map(str.encode))
def test_any_bytes_give_events_or_rejections_with_reasons_never_an_exception(raw: bytes) -> None:
    for name in FORMATS:
        results = parser(name)(raw, "carrier.fuzz")
        assert results, name
        assert all(r.reason for r in results if isinstance(r, Rejection))


@pytest.mark.parametrize(
    ("format_name", "payload"),
    [
        ("epcis", b'{"type": "EPCISDocument", "epcisBody": {"eventList": [{"type": "ObjectEvent", "eventID": "urn:uuid:1"}]}}'),
        ("dcsa", b'[{"eventID": "e-1", "eventType": "TRANSPORT"}]'),
        ("canonical", b'[{"event_id": "e-1"}]'),
    ],
)
def test_a_refused_event_is_labelled_once_with_the_index_the_router_reports(format_name: str, payload: bytes) -> None:
    # On 4c7e811 EPCIS numbered its events from 1 and the label check missed "event 1 (id)": "event 0: event 1 (...".
    [refused] = FORMATS[format_name](payload, "carrier.test")
    assert isinstance(refused, Rejection)
    reason = for_event(0, refused).reason
    assert reason.startswith(("event 0:", "event 0 (")), reason
    assert reason.count("event 0") == 1 and "event 1" not in reason, reason


EMPTY_PAYLOADS = [b"[]", b'{"events": []}', b"  [ ]\n", b'{"type": "EPCISDocument", "epcisBody": {"eventList": []}}']


@pytest.mark.parametrize("payload", EMPTY_PAYLOADS)
def test_a_payload_with_no_events_is_refused_with_a_reason_in_every_format(payload: bytes) -> None:
    """Found by the property above (hypothesis, raw=b'[]'): DCSA gave no result at all for `[]` or `{"events": []}`,
    and EPCIS none for an empty eventList, so such a payload vanished without a dead letter or a reason. Every
    format's parser is wrapped once (connectors.formats._never_empty) instead of each parser checking."""
    for name in FORMATS:
        results = parser(name)(payload, "carrier.fuzz")
        assert results and all(isinstance(r, Rejection) and r.reason for r in results), (name, results)
