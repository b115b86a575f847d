"""A carrier's key is checked at the raw record's time of receipt (the broker's LogAppendTime), as the signature's
replay window is, never at the worker's clock: a record received while the key held counts however late it is read
(a worker behind, a restart, a replay after the key was rotated out), and one received outside the key's validity
never does, however the worker's clock stands. Before, the connect stage checked the key at the wall clock: a worker
a day behind dead-lettered what it would have taken on time, and a replay gave a different answer."""

from __future__ import annotations

from datetime import datetime, timedelta

import orjson

from connectors.carriers import Carrier, CarrierKey, CarrierRegistry, kafka_signature_headers, new_key
from hubconf import topics as topic_names
from hubconf.topics import Topics
from runtime.api import Out, Record
from streams.horizon import Horizon
from worker.stages import ConnectHandler, Counters, DeadLetters

from tests.unit.builders import T0, tracking_doc

TOPICS = Topics("security")
CARRIER = "carrier.road"
VALID_FROM = T0
VALID_UNTIL = T0 + timedelta(days=30)  # rotated out: the registry ends the key here


def _connect(received: datetime, signed: datetime | None = None) -> list[Out]:
    signing, key = new_key(CARRIER, "k1", "ed25519", VALID_FROM)
    key = CarrierKey.model_validate({**key.model_dump(), "not_after": VALID_UNTIL})
    registry = CarrierRegistry(carriers=[Carrier(party_id=CARRIER, name=CARRIER, keys=[key])])
    counters = Counters()
    handler = ConnectHandler(
        {TOPICS.raw("canonical"): "canonical"}, registry, Horizon(), TOPICS, DeadLetters(TOPICS.dlq, counters), counters
    )
    doc = tracking_doc("departed", leg=1)
    doc["occurred_at"] = doc["recorded_at"] = (received - timedelta(hours=1)).isoformat()
    body = orjson.dumps(doc)
    headers = tuple(kafka_signature_headers(body, signing, "canonical", signed or received))
    record = Record(TOPICS.raw("canonical"), 0, 0, None, body, headers, int(received.timestamp() * 1000))
    return handler([record], {})


def test_a_record_received_while_the_key_held_counts_whenever_it_is_read() -> None:
    """Received on day 10 of the key's 30, read today (2026-12, long after the key was rotated out)."""
    outs = _connect(T0 + timedelta(days=10))
    assert [out.topic for out in outs] == [TOPICS.events], [dict(out.headers).get(topic_names.DLQ_REASON) for out in outs]


def test_a_record_received_after_the_key_ended_or_before_it_began_never_counts() -> None:
    for received in (VALID_UNTIL + timedelta(seconds=1), VALID_FROM - timedelta(seconds=1)):
        outs = _connect(received)
        assert [(out.topic, dict(out.headers)[topic_names.DLQ_CODE]) for out in outs] == [(TOPICS.dlq, b"key_not_valid")]
        assert b"is valid from" in dict(outs[0].headers)[topic_names.DLQ_REASON]
