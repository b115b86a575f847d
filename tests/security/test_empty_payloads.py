"""Nothing a carrier sends vanishes without a trace.

A signed payload that parses to no event at all (a DCSA `[]` or `{"events": []}`, an EPCIS document with an empty
eventList) gave no result: the connect stage then emitted nothing and dead-lettered nothing, so a carrier (or
someone holding its key) could send payloads that left no record of what the hub was sent, and an honest carrier's
broken export would look delivered. Each is now dead-lettered once, with its original bytes, code `empty` and a
reason, whatever its format. This runs the worker's own connect handler (worker.stages.ConnectHandler) as the stage
runtime calls it.
"""

from __future__ import annotations


import pytest

from connectors.carriers import Carrier, CarrierRegistry, kafka_signature_headers, new_key
from hubconf import topics as topic_names
from hubconf.topics import Topics
from runtime.api import Record
from streams.horizon import Horizon
from worker.stages import ConnectHandler, Counters, DeadLetters

from tests.unit.builders import RECEIVED_AT, T0

TOPICS = Topics("security")
CARRIER = "carrier.road"
EMPTY = [b"[]", b'{"events": []}', b'{"type": "EPCISDocument", "epcisBody": {"eventList": []}}']


@pytest.mark.parametrize("format_name", topic_names.RAW_FORMATS)
@pytest.mark.parametrize("body", EMPTY)
def test_a_signed_payload_with_no_event_is_dead_lettered_with_its_bytes_in_every_format(format_name: str, body: bytes) -> None:
    signing, key = new_key(CARRIER, "k1", "ed25519", T0)
    counters = Counters()
    handler = ConnectHandler(
        {TOPICS.raw(name): name for name in topic_names.RAW_FORMATS},
        CarrierRegistry(carriers=[Carrier(party_id=CARRIER, name=CARRIER, keys=[key])]),
        Horizon(),
        TOPICS,
        DeadLetters(TOPICS.dlq, counters),
        counters,
    )
    headers = tuple(kafka_signature_headers(body, signing, format_name, RECEIVED_AT))
    record = Record(TOPICS.raw(format_name), 0, 7, None, body, headers, int(RECEIVED_AT.timestamp() * 1000))
    [dead] = handler([record], {})
    assert (dead.topic, dead.value) == (TOPICS.dlq, body)
    found = dict(dead.headers)
    assert found[topic_names.DLQ_SOURCE_TOPIC] == TOPICS.raw(format_name).encode()
    assert found[topic_names.DLQ_REASON] and found[topic_names.DLQ_CODE], found
    # each format refuses a shape foreign to it its own way; these are the ones that parse to no event at all
    if (format_name, body) in {("dcsa", EMPTY[0]), ("dcsa", EMPTY[1]), ("epcis", EMPTY[2]), ("canonical", EMPTY[0])}:
        assert found[topic_names.DLQ_CODE] == b"empty", found
