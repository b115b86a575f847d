"""Issue 12, finding 2, shown end to end: arbitrary text in every string field of every event type, through the
real gateway (signed), the worker and the sink (real processes), and no stage dies.

Each fuzzed event is posted to the gateway and also published straight onto hub.events, as a carrier with broker
access or a bug upstream would, so the worker sees the junk the gateway refuses. Afterwards every event the
gateway accepted is in Postgres, good events published after the junk reach Postgres, and no process exited.
"""

from __future__ import annotations

import copy
import json
import random
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer

from connectors.carriers import http_signature_headers, load_signing_key
from hubconf.topics import ORIGIN
from tests.integration.hub import caught_up, journey_lines, offline, projected_record, wait_for
from connectors.gateway.guards import RateLimits
from tests.integration.test_gateway import CARRIER, KEYS, NOW, gateway, post
from tests.security.test_control_chars import _get, string_leaves
from tests.unit.builders import every_kind_docs

SEED = 20261203
FUZZED = "SHP-FZ-0001"
GOOD_AFTER = "SHP-FZ-GOOD"
# What arbitrary text is made of: controls (NUL first), lone surrogates, and text that is fine but unusual.
PIECES = [
    "\x00", "\x01", "\x08", "\t", "\n", "\r", "\x1b[31m", "\x7f", "\x85", "\x9f", "\ud800", "\udfff", "\ud83d",
    "a", "Z", "7", " ", "-", "'", "\"", "\\", "\\u0000", "%s", "{}", "'; DROP TABLE shipments; --", "<script>",
    "é", "ß", "漢字", "集装箱", "🚢", "\u202e", "\u200b", "\ufeff", "\uffff", "\U0010ffff", "ℌ", "Ω",
]


def junk(rng: random.Random) -> str:
    text = "".join(rng.choice(PIECES) for _ in range(rng.randint(1, 8)))
    return text * rng.choice([1, 1, 1, 80])  # now and then past the length limits


def fuzzed_docs(rng: random.Random) -> list[dict[str, Any]]:
    """Every string field of every event type, one at a time, set to junk; each with its own event id."""
    docs = []
    for base in every_kind_docs(FUZZED):
        base["source"] = CARRIER  # the gateway takes only the signer's own events
        for path in string_leaves(base):
            if path == ("source",):
                continue
            doc = copy.deepcopy(base)
            doc["event_id"] = f"fz-{len(docs)}"
            parent = _get(doc, path[:-1])
            parent[path[-1]] = junk(rng)
            docs.append(doc)
    # one that names only its carrier reference, so the worker forwards it to resolution with its origin header
    reference_only = next(doc for doc in every_kind_docs(FUZZED) if doc["event_type"] == "waybill")
    del reference_only["shipment_id"]
    docs.append({**reference_only, "source": CARRIER, "event_id": "fz-reference-only"})
    return docs


def as_bytes(doc: dict[str, Any]) -> bytes:
    try:
        return orjson.dumps(doc)
    except TypeError:  # a lone surrogate: orjson will not write it, JSON's \\u escape can
        return json.dumps(doc).encode()


async def test_junk_text_everywhere_through_gateway_worker_and_sink_kills_no_stage(hub) -> None:
    settings, worker, sink = hub
    rng = random.Random(SEED)
    docs = fuzzed_docs(rng)
    assert len(docs) > 100
    key = load_signing_key(KEYS / f"{CARRIER}.2025-01.json")
    worker.start()
    sink.start()

    accepted: list[str] = []
    refused = 0
    producer = AIOKafkaProducer(**settings.kafka_client(acks="all", linger_ms=20))
    await producer.start()
    try:
        async with gateway(settings, RateLimits.unlimited()) as client:  # the subject is junk text, not rate limits
            for doc in docs:
                body = as_bytes(doc)
                status, answer = await post(client, body, http_signature_headers(body, key, "canonical", NOW))
                assert status in (202, 400, 422), (status, answer)  # 422: nothing in the body was accepted
                for result in answer.get("results", []):
                    if result["result"] == "accepted" and result.get("shipment_id") == FUZZED:
                        accepted.append(f"{CARRIER}/{result['event_id']}")
                    elif result["result"] == "rejected":
                        assert result["reason"] and result["code"], result
                        refused += 1
                # the same bytes straight onto hub.events, with a junk origin header: the worker's own check
                junk_origin = [(ORIGIN, rng.choice([b"\xff\xfe", b"\x00", "🚢".encode(), b"\xed\xa0\x80"]))]
                await producer.send(settings.topics.events, value=body, key=FUZZED.encode(), headers=junk_origin)
            await producer.flush()
            assert accepted and refused, (len(accepted), refused)

            # good events after the junk: the journey on hub.events, and the carrier's own part through the gateway
            good = journey_lines(GOOD_AFTER)
            for line in good:
                await producer.send(settings.topics.events, value=line, key=GOOD_AFTER.encode())
            await producer.flush()
            mine = [line for line in good if orjson.loads(line)["source"] == CARRIER]
            body = b"[" + b",".join(mine) + b"]"
            status, answer = await post(client, body, http_signature_headers(body, key, "canonical", NOW))
            assert status == 202 and answer["rejected"] == 0, answer
    finally:
        await producer.stop()

    expected = offline(good)
    await wait_for(lambda: caught_up(settings, expected), 90, "the good events after the junk", worker, sink)
    assert await projected_record(settings, GOOD_AFTER) == expected[GOOD_AFTER]
    await wait_for(lambda: _stored(settings, accepted), 30, "every event the gateway accepted", worker, sink)
    assert worker.alive, worker.tail()
    assert sink.alive, sink.tail()


async def _stored(settings: Any, keys: list[str]) -> bool:
    from connectors.postgres.db import connect

    conn = await connect(settings, "fuzz-test")
    try:
        rows = await conn.fetch("SELECT event_key FROM shipment_events WHERE shipment_id = $1", FUZZED)
    finally:
        await conn.close()
    return set(keys) <= {row["event_key"] for row in rows}
