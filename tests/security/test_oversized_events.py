"""A carrier's payload may be 4 MiB (a whole EDI interchange, a batch of events), and one event in it may be
nearly all of that: a tracking report listing 60,000 packages is valid. The connector stage sent such an event on
as it was, a 1.3 MB message on hub.events, whose default max.message.bytes (1,048,588) the broker refuses. By what
the runtime does with such a record (tests/integration/runtime/test_runtime.py, measured on the real broker), the
checkpoint then failed at every retry and the raw topic's partition stopped for good; before the runtime awaited
every record before its commit, the transaction committed without the event: lost, with no dead letter.
Routing now refuses an event larger than the merge takes (streams.codec.MAX_EVENT_BYTES), and the payload is
dead-lettered with its original bytes and the reason; the payload's other events go on."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from connectors.carriers import Carrier, CarrierRegistry, kafka_signature_headers, new_key
from hubconf import topics as topic_names
from runtime.api import Out
from schemas.rejection import Rejection
from streams.codec import MAX_EVENT_BYTES, decode_event, encode_event
from streams.horizon import Horizon
from streams.references import addressed
from streams.routing import route

from tests.security.merging import sscc
from tests.unit.builders import RECEIVED_AT, T0, hub_event, tracking_doc
from tests.unit.worker.test_stages import CARRIER, CONTAINER, TOPICS, Hub, on

LARGEST = 12_000  # packages: a report of about 255 KB, just under the limit


def report(packages: int, *, event_id: str, addressed: bool = True) -> dict[str, Any]:
    doc = tracking_doc("departed", leg=1, occurred=30, event_id=event_id, source=CARRIER, shipment_id="SHP-TEST-0001" if addressed else None)
    if not addressed:
        doc["references"] = [{"kind": "container", "value": CONTAINER}]
    doc["payload"]["ssccs"] = [sscc(serial) for serial in range(packages)]
    return doc


def connect(*docs: dict[str, Any]) -> tuple[bytes, list[Out]]:
    signing, key = new_key(CARRIER, "k1", "ed25519", T0)
    hub = Hub(registry=CarrierRegistry(carriers=[Carrier(party_id=CARRIER, name=CARRIER, keys=[key])]))
    body = orjson.dumps(list(docs))
    raw = hub.record(TOPICS.raw("canonical"), None, body, tuple(kafka_signature_headers(body, signing, "canonical", RECEIVED_AT)))
    return body, hub.connect([raw], {})


def test_an_event_larger_than_the_merge_takes_is_dead_lettered_with_its_payload() -> None:
    huge = report(60_000, event_id="huge")
    assert len(orjson.dumps(huge)) > topic_names.MAX_OUTPUT_BYTES  # over what the broker takes on hub.events
    body, outs = connect(huge, report(10, event_id="small"))

    assert max(len(out.value or b"") for out in outs if out.topic != TOPICS.dlq) <= MAX_EVENT_BYTES
    [dead] = on(TOPICS.dlq, outs)
    assert dead.value == body  # the payload as it came in
    headers = dict(dead.headers)
    assert headers[topic_names.DLQ_CODE] == b"too_large"
    assert b"event 0:" in headers[topic_names.DLQ_REASON] and str(MAX_EVENT_BYTES).encode() in headers[topic_names.DLQ_REASON]
    [sent] = on(TOPICS.events, outs)  # the payload's other event goes on
    assert orjson.loads(sent.value or b"")["event_id"] == "small"


def test_the_same_for_an_event_that_names_only_references() -> None:
    body, outs = connect(report(60_000, event_id="huge", addressed=False))
    assert on(TOPICS.references, outs) == []
    [dead] = on(TOPICS.dlq, outs)
    assert dead.value == body and dict(dead.headers)[topic_names.DLQ_CODE] == b"too_large"


def test_an_event_within_the_limit_goes_on_either_way() -> None:
    for named in (True, False):
        doc = report(LARGEST, event_id="large", addressed=named)
        _, outs = connect(doc)
        assert on(TOPICS.dlq, outs) == [], named
        [sent] = on(TOPICS.events if named else TOPICS.references, outs)
        assert MAX_EVENT_BYTES - 10_000 < len(sent.value or b"") <= MAX_EVENT_BYTES + 1_000


def test_a_raw_value_larger_than_the_dlq_takes_is_dead_lettered_cut_with_its_digest() -> None:
    """The broker checks a raw record's compressed batch against the topic's limit: a carrier's zstd batch under
    4 MiB may hold a 50 MB value. Its dead letter cannot hold it whole (the DLQ takes 5 MiB): it keeps the first KiB
    of it and of its key, with the whole value's SHA-256 and size."""
    hub = Hub()
    value = b"[" + b" " * (6 * 1024 * 1024) + b"]"
    record = hub.record(TOPICS.raw("canonical"), b"k" * 10_000, value, ())
    [dead] = hub.connect([record], {})
    headers = dict(dead.headers)
    assert dead.topic == TOPICS.dlq and headers[topic_names.DLQ_CODE] == b"unsigned"
    assert dead.value == value[: topic_names.DLQ_CUT_BYTES] and dead.key == b"k" * topic_names.DLQ_CUT_BYTES
    assert headers[topic_names.DLQ_BODY_SHA256] == hashlib.sha256(value).hexdigest().encode()
    assert headers[topic_names.DLQ_BODY_SIZE] == str(len(value)).encode()
    size = len(dead.value or b"") + len(dead.key or b"") + sum(len(n) + len(v) for n, v in dead.headers)
    assert size < 16 * 1024


def test_a_record_the_dlq_takes_whole_is_kept_whole() -> None:
    hub = Hub()
    value = b"[" + b" " * (topic_names.DLQ_WHOLE_BYTES - 100) + b"]"
    [dead] = hub.connect([hub.record(TOPICS.raw("canonical"), b"carrier", value, ())], {})
    assert dead.value == value and topic_names.DLQ_BODY_SHA256 not in dict(dead.headers)


def test_the_largest_reference_only_event_routing_takes_is_one_the_merge_takes_once_resolved() -> None:
    """Resolving an event adds its shipment id: routing leaves room for the longest one (64 characters)."""
    horizon = Horizon()

    def routed(packages: int) -> bool:
        return not isinstance(route(hub_event(report(packages, event_id="edge", addressed=False)), CARRIER, RECEIVED_AT, horizon, "o"), Rejection)

    low, high = 1, 13_000  # routed(low), not routed(high)
    assert routed(low) and not routed(high)
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if routed(middle) else (low, middle)
    largest = hub_event(report(low, event_id="edge", addressed=False))
    resolved = encode_event(addressed(largest, "S" * 64))
    assert len(resolved) <= MAX_EVENT_BYTES
    assert len(resolved) > MAX_EVENT_BYTES - 200  # and the room left is not much more than the id needs
    assert not isinstance(decode_event(resolved), Rejection)
