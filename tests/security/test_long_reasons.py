"""A sender writes the reason its input is refused: the reason quotes field names, and those are the sender's.

A 3.9 MB canonical payload of three events, each with an unknown field named by 1.3 million characters, was refused
with three 1.3 MB reasons: a dead letter of 3.9 MB of body and 3.9 MB of reason header, past the 5 MiB the DLQ topic
takes. By what the runtime does with a record the broker refuses (tests/integration/runtime/test_runtime.py), the
connector's checkpoint would then fail at every retry. A reason now names a field by at most its first 80
characters, and a dead letter's reason header is at most hubconf.topics.REASON_HEADER_BYTES."""

from __future__ import annotations

import orjson
from hypothesis import given
from hypothesis import strategies as st

from connectors.carriers import Carrier, CarrierRegistry, kafka_signature_headers, new_key
from hubconf import topics as topic_names
from hubconf.topics import REASON_HEADER_BYTES, reason_header

from tests.unit.builders import RECEIVED_AT, T0, tracking_doc
from tests.unit.worker.test_stages import CARRIER, TOPICS, Hub, on


def test_a_payload_of_long_field_names_is_dead_lettered_within_the_dlq_s_limit() -> None:
    docs = []
    for index in range(3):
        doc = tracking_doc("departed", leg=1, event_id=f"e{index}", source=CARRIER)
        doc["payload"][chr(65 + index) * 1_300_000] = 1
        docs.append(doc)
    body = orjson.dumps(docs)
    assert 3_800_000 < len(body) < 4 * 1024 * 1024  # a payload the raw topics take
    signing, key = new_key(CARRIER, "k1", "ed25519", T0)
    hub = Hub(registry=CarrierRegistry(carriers=[Carrier(party_id=CARRIER, name=CARRIER, keys=[key])]))
    raw = hub.record(TOPICS.raw("canonical"), None, body, tuple(kafka_signature_headers(body, signing, "canonical", RECEIVED_AT)))

    [dead] = on(TOPICS.dlq, hub.connect([raw], {}))

    assert dead.value == body
    size = len(dead.value or b"") + sum(len(name) + len(value) for name, value in dead.headers)
    assert size < topic_names.DLQ_MAX_MESSAGE_BYTES - 64 * 1024
    reason = dict(dead.headers)[topic_names.DLQ_REASON].decode()
    assert len(reason.encode()) <= REASON_HEADER_BYTES
    assert "3 events refused" in reason and "(1300000 characters)" in reason  # it still says where and what


@given(st.text(max_size=6_000))
def test_a_reason_header_is_bounded_utf8_and_a_prefix_of_the_reason(reason: str) -> None:
    header = reason_header(reason)
    full = reason.encode("utf-8", "backslashreplace")
    assert len(header) <= REASON_HEADER_BYTES
    header.decode("utf-8")  # whole characters only
    if len(full) <= REASON_HEADER_BYTES:
        assert header == full
    else:
        kept, _, note = header.partition(b" ... (cut: ")
        assert full.startswith(kept) and len(kept) > REASON_HEADER_BYTES - 64 - 4
        assert note == f"{len(full)} bytes in all)".encode()


def test_an_uncompressed_raw_record_fits_its_dead_letter_whole() -> None:
    """The dead letter of a raw record is its bytes with the reason and where it came from: a raw topic takes less
    per message than the DLQ by at least that much (ensure_topics holds existing raw topics to it too). A compressed
    record may hold more than the topic's limit: its dead letter is cut (tests/security/test_oversized_events.py)."""
    for name in topic_names.RAW_FORMATS:
        raw = int(topic_names.TOPIC_CONFIGS[topic_names.raw_topic(name)]["max.message.bytes"])
        assert raw + REASON_HEADER_BYTES + 64 * 1024 <= topic_names.DLQ_MAX_MESSAGE_BYTES
        assert raw <= topic_names.DLQ_WHOLE_BYTES  # kept whole, not cut
        assert raw >= topic_names.MAX_RAW_BYTES + topic_names.RAW_REQUEST_OVERHEAD  # what `mmhub ingest` may send
    assert set(topic_names.ENFORCED_SETTINGS) >= {"max.message.bytes", "message.timestamp.type"}
