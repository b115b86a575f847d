"""The HTTP gateway against a fake Kafka publisher and in-memory receipts: per-event answers, idempotency, refusals."""

from __future__ import annotations

import hashlib
import re
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, AsyncIterator, Sequence

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.carriers import (
    HTTP_CARRIER,
    HTTP_SIGNATURE,
    Carrier,
    CarrierRegistry,
    SigningKey,
    http_signature_headers,
    new_key,
)
from connectors.formats import FORMATS
from connectors.gateway.app import MAX_BODY_BYTES, create_gateway
from connectors.gateway.guards import RateLimits
from connectors.gateway.intake import (
    Admitted,
    Identity,
    Message,
    Receipt,
    Refused,
    Unavailable,
    admit,
    labelled,
    plan,
    results,
)
from connectors.gateway.openapi import openapi_document
from hubconf.settings import Settings
from schemas.events import HUB_EVENT
from schemas.export import json_schemas
from schemas.rejection import Rejection
from streams.codec import decode_event, encode_event
from streams.horizon import Horizon
from hubconf.topics import DLQ_BODY_SHA256, DLQ_BODY_SIZE, DLQ_CODE, DLQ_REASON, DLQ_SOURCE_TOPIC, ORIGIN, SIGNATURE_CARRIER

from .helpers import byte_mutated_samples, samples_of

JOURNEY = Path(__file__).resolve().parents[3] / "examples" / "journey.jsonl"
SHIPMENT = "SHP-2026-000042"
CARRIER = "carrier.oceanline"
NOW = datetime(2026, 11, 1, 12, 0, tzinfo=timezone.utc)  # after every example and sample: none is dated past its receipt
SETTINGS = Settings(
    kafka="unused:9092",
    pg_dsn="postgresql://unused",
    pg_schema="unused",
    namespace="unit",
    store="memory://",
    data_dir=Path("/nonexistent"),
    partitions=1,
    clock_interval_s=600.0,
    report_interval_s=30.0,
)
TOPICS = SETTINGS.topics


def _keys() -> tuple[CarrierRegistry, SigningKey, SigningKey]:
    since = datetime(2026, 1, 1, tzinfo=timezone.utc)
    signing, entry = new_key(CARRIER, "k1", "ed25519", since)
    # Same carrier and key id, but a key the hub never registered: a forgery.
    forged, _ = new_key(CARRIER, "k1", "ed25519", since)
    return CarrierRegistry(carriers=[Carrier(party_id=CARRIER, name="Ocean Line", keys=[entry])]), signing, forged


REGISTRY, KEY, FORGED_KEY = _keys()


class FakePublisher:
    """Keeps what was sent; `down` makes every send fail as Kafka being unreachable would."""

    def __init__(self) -> None:
        self.sent: list[Message] = []
        self.down = False

    async def send(self, topic: str, key: bytes | None, value: bytes, headers: list[tuple[str, bytes]]) -> None:
        if self.down:
            raise Unavailable("kafka is down")
        self.sent.append(Message(topic, key, value, headers))

    async def ready(self) -> bool:
        return not self.down

    def on(self, topic: str) -> list[Message]:
        return [m for m in self.sent if m.topic == topic]


class MemoryReceipts:
    def __init__(self) -> None:
        self.rows: dict[Identity, Receipt] = {}
        self.down = False

    async def seen(self, identities: Sequence[Identity]) -> set[Identity]:
        if self.down:
            raise Unavailable("postgres is down")
        return {identity for identity in identities if identity in self.rows}

    async def record(self, receipts: Sequence[Receipt]) -> list[bool]:
        if self.down:
            raise Unavailable("postgres is down")
        new = []
        for receipt in receipts:
            identity = (receipt.source, receipt.event_id, receipt.fingerprint)
            new.append(identity not in self.rows)
            self.rows.setdefault(identity, receipt)
        return new

    async def ready(self) -> bool:
        return not self.down


UNLIMITED = RateLimits.unlimited()


class Hub:
    def __init__(self, client: TestClient[Any, Any], publisher: FakePublisher, receipts: MemoryReceipts) -> None:
        self.client = client
        self.publisher = publisher
        self.receipts = receipts

    async def post(
        self, format_name: str, body: bytes, key: SigningKey | None = KEY, headers: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        signed = http_signature_headers(body, key, format_name, NOW) if key is not None else {}
        response = await self.client.post(f"/v1/events/{format_name}", data=body, headers={**signed, **(headers or {})})
        assert response.content_type == "application/json", await response.text()
        return response.status, orjson.loads(await response.read())


@asynccontextmanager
async def running_hub() -> AsyncIterator[Hub]:
    publisher, receipts = FakePublisher(), MemoryReceipts()
    # Hypothesis sends hundreds of requests a second: the limits have their own tests (tests/security).
    app = create_gateway(SETTINGS, REGISTRY, publisher, receipts, clock=lambda: NOW, limits=UNLIMITED)
    async with TestClient(TestServer(app)) as client:
        yield Hub(client, publisher, receipts)


@pytest.fixture
async def hub() -> AsyncIterator[Hub]:
    async with running_hub() as running:
        yield running


def journey(source: str) -> list[dict[str, Any]]:
    documents = [orjson.loads(line) for line in JOURNEY.read_bytes().splitlines() if line.strip()]
    return [d for d in documents if d["source"] == source]


def batch(documents: list[Any]) -> bytes:
    return orjson.dumps(documents)


OCEAN = journey(CARRIER)


def expected_event_messages(documents: list[dict[str, Any]]) -> list[tuple[str, bytes | None, bytes]]:
    events = [decode_event(orjson.dumps(d)) for d in documents]
    return [(TOPICS.events, SHIPMENT.encode(), encode_event(e)) for e in events if not isinstance(e, Rejection)]


def sent_triples(messages: list[Message]) -> list[tuple[str, bytes | None, bytes]]:
    return [(m.topic, m.key, m.value) for m in messages]


def header(message: Message, name: str) -> bytes:
    (value,) = [v for n, v in message.headers if n == name]
    return value


# --- accepted, duplicate ---------------------------------------------------------------------------------------


async def test_signed_canonical_batch_is_accepted_and_published_keyed_by_shipment(hub: Hub) -> None:
    status, answer = await hub.post("canonical", batch(OCEAN))

    assert status == 202
    assert (answer["format"], answer["carrier"]) == ("canonical", CARRIER)
    assert (answer["accepted"], answer["duplicates"], answer["rejected"]) == (len(OCEAN), 0, 0)
    assert [r["index"] for r in answer["results"]] == list(range(len(OCEAN)))
    assert [r["event_id"] for r in answer["results"]] == [d["event_id"] for d in OCEAN]
    assert {(r["result"], r["reason"], r["routed_to"], r["shipment_id"]) for r in answer["results"]} == {
        ("accepted", None, "shipment", SHIPMENT)
    }
    assert sorted(sent_triples(hub.publisher.sent)) == sorted(expected_event_messages(OCEAN))
    origin = f"http:{answer['request_id']}".encode()
    assert {header(m, ORIGIN) for m in hub.publisher.sent} == {origin}
    assert len(hub.receipts.rows) == len(OCEAN)
    assert {r.request_id for r in hub.receipts.rows.values()} == {answer["request_id"]}


async def test_the_same_batch_again_is_all_duplicates_and_publishes_nothing(hub: Hub) -> None:
    await hub.post("canonical", batch(OCEAN))
    published = len(hub.publisher.sent)

    status, answer = await hub.post("canonical", batch(OCEAN))

    assert status == 202
    assert (answer["accepted"], answer["duplicates"], answer["rejected"]) == (0, len(OCEAN), 0)
    assert {(r["result"], r["routed_to"]) for r in answer["results"]} == {("duplicate", "shipment")}
    assert len(hub.publisher.sent) == published


async def test_a_revision_is_a_new_copy_and_is_accepted(hub: Hub) -> None:
    original = OCEAN[1]
    await hub.post("canonical", batch([original]))

    revised = {**original, "revised_at": "2026-03-20T00:00:00Z"}
    status, answer = await hub.post("canonical", batch([revised]))

    assert status == 202
    assert answer["results"][0]["result"] == "accepted"
    assert sent_triples(hub.publisher.sent[-1:]) == expected_event_messages([revised])


async def test_a_copy_repeated_within_one_request_is_published_once(hub: Hub) -> None:
    status, answer = await hub.post("canonical", batch([OCEAN[0], OCEAN[0]]))

    assert status == 202
    assert [r["result"] for r in answer["results"]] == ["accepted", "duplicate"]
    assert len(hub.publisher.sent) == 1


async def test_json_lines_are_read_as_well_as_an_array(hub: Hub) -> None:
    body = b"\n".join(orjson.dumps(d) for d in OCEAN[:3]) + b"\n"
    status, answer = await hub.post("canonical", body, headers={"Content-Type": "application/x-ndjson"})
    assert status == 202
    assert answer["accepted"] == 3


# --- refused requests ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "code"), [(None, "unsigned"), (FORGED_KEY, "bad_signature")], ids=["unsigned", "forged"]
)
async def test_an_unsigned_or_forged_request_is_refused_and_its_digest_and_first_kib_dead_lettered(
    hub: Hub, key: SigningKey | None, code: str
) -> None:
    body = batch(OCEAN)
    status, answer = await hub.post("canonical", body, key=key)

    assert status == 401
    assert answer["error"] == code and answer["reason"]
    (letter,) = hub.publisher.sent
    assert letter.topic == TOPICS.dlq
    assert len(body) > 1024 and letter.value == body[:1024]
    assert header(letter, DLQ_BODY_SHA256) == hashlib.sha256(body).hexdigest().encode()
    assert header(letter, DLQ_BODY_SIZE) == str(len(body)).encode()
    assert header(letter, DLQ_CODE) == code.encode()
    assert header(letter, DLQ_REASON) == answer["reason"].encode()
    assert header(letter, DLQ_SOURCE_TOPIC) == b"http:/v1/events/canonical"
    assert not hub.receipts.rows


async def test_the_dead_letter_of_a_forged_request_keeps_its_signature_headers(hub: Hub) -> None:
    body = batch(OCEAN[:1])
    await hub.post("canonical", body, key=FORGED_KEY)
    (letter,) = hub.publisher.sent
    assert header(letter, SIGNATURE_CARRIER) == CARRIER.encode()
    assert letter.key == CARRIER.encode()


async def test_a_request_signed_for_other_bytes_is_refused(hub: Hub) -> None:
    body = batch(OCEAN[:2])
    signature = http_signature_headers(batch(OCEAN[:1]), KEY, "canonical", NOW)[HTTP_SIGNATURE]
    status, answer = await hub.post("canonical", body, headers={HTTP_SIGNATURE: signature})
    assert (status, answer["error"]) == (401, "bad_signature")


async def test_a_repeated_signature_header_is_refused(hub: Hub) -> None:
    body = batch(OCEAN[:1])
    headers = list(http_signature_headers(body, KEY, "canonical", NOW).items()) + [(HTTP_CARRIER, "carrier.other")]
    response = await hub.client.post("/v1/events/canonical", data=body, headers=headers)
    assert response.status == 401
    assert (await response.json())["error"] == "bad_signature"
    assert [m.topic for m in hub.publisher.sent] == [TOPICS.dlq]


async def test_an_unknown_format_is_404(hub: Hub) -> None:
    status, answer = await hub.post("cargo-xml", batch(OCEAN))
    assert (status, answer["error"]) == (404, "unknown_format")
    assert not hub.publisher.sent


async def test_a_body_over_the_limit_is_413(hub: Hub) -> None:
    status, answer = await hub.post("canonical", b" " * (MAX_BODY_BYTES + 1))
    assert (status, answer["error"]) == (413, "too_large")
    assert not hub.publisher.sent


async def test_a_chunked_body_over_the_limit_is_413(hub: Hub) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(5):
            yield b" " * (1024 * 1024)

    response = await hub.client.post("/v1/events/canonical", data=chunks())
    assert response.status == 413
    assert (await response.json())["error"] == "too_large"


async def test_a_body_at_the_limit_is_read(hub: Hub) -> None:
    body = batch(OCEAN[:1])
    body += b" " * (MAX_BODY_BYTES - len(body))
    status, answer = await hub.post("canonical", body)
    assert (status, answer["accepted"]) == (202, 1)


# --- per-event results -----------------------------------------------------------------------------------------


async def test_a_malformed_event_is_rejected_alone_and_the_good_ones_are_published(hub: Hub) -> None:
    broken = {**OCEAN[2], "occurred_at": "yesterday"}
    body = batch([OCEAN[0], broken, OCEAN[1]])

    status, answer = await hub.post("canonical", body)

    assert status == 202
    assert [r["result"] for r in answer["results"]] == ["accepted", "rejected", "accepted"]
    assert (answer["accepted"], answer["duplicates"], answer["rejected"]) == (2, 0, 1)
    bad = answer["results"][1]
    assert (bad["event_id"], bad["code"], bad["routed_to"]) == (None, "invalid_event", None)
    assert "occurred_at" in bad["reason"]
    published = sorted(sent_triples(hub.publisher.on(TOPICS.events)))
    assert published == sorted(expected_event_messages([OCEAN[0], OCEAN[1]]))
    (letter,) = hub.publisher.on(TOPICS.dlq)
    assert letter.value == body
    assert header(letter, DLQ_CODE) == b"invalid_event"
    assert header(letter, DLQ_REASON).startswith(b"event 1: ")
    assert not header(letter, DLQ_REASON).startswith(b"event 1: event 1:")


async def test_an_event_naming_another_source_is_rejected_as_wrong_source(hub: Hub) -> None:
    road = journey("carrier.sc-road")[0]
    body = batch([OCEAN[0], road])

    status, answer = await hub.post("canonical", body)

    assert status == 202
    accepted, refused = answer["results"]
    assert accepted["result"] == "accepted"
    assert (refused["result"], refused["code"], refused["event_id"]) == ("rejected", "wrong_source", road["event_id"])
    assert "carrier.sc-road" in refused["reason"]
    (letter,) = hub.publisher.on(TOPICS.dlq)
    assert (letter.value, header(letter, DLQ_CODE)) == (body, b"wrong_source")
    assert header(letter, DLQ_REASON).startswith(b"event 1: ")
    assert len(hub.receipts.rows) == 1


async def test_a_payload_that_is_not_json_is_one_rejected_result_and_nothing_accepted(hub: Hub) -> None:
    status, answer = await hub.post("canonical", b"\x00\xff not json")
    # not 202 "Accepted": a client that checks only the status sees that nothing was taken
    assert (status, answer["error"], answer["accepted"], answer["rejected"]) == (422, "nothing_accepted", 0, 1)
    assert answer["reason"].startswith("nothing accepted: all 1 event(s) of the request were rejected")
    (only,) = answer["results"]
    assert (only["index"], only["result"], only["code"]) == (0, "rejected", "invalid_json")
    assert [m.value for m in hub.publisher.sent] == [b"\x00\xff not json"]


@pytest.mark.parametrize(
    ("format_name", "sample"), [("edifact", "iftsta_rail.edi"), ("dcsa", "v30_events.json")]
)
async def test_a_reference_only_event_goes_to_reference_resolution(hub: Hub, format_name: str, sample: str) -> None:
    body = (samples_of(format_name) / sample).read_bytes()
    expected = FORMATS[format_name](body, CARRIER)

    status, answer = await hub.post(format_name, body)

    assert status == 202
    assert answer["accepted"] == len(expected) > 0
    assert {(r["result"], r["routed_to"], r["shipment_id"]) for r in answer["results"]} == {
        ("accepted", "reference_resolution", None)
    }
    assert hub.publisher.sent and {m.topic for m in hub.publisher.sent} == {TOPICS.references}
    assert {r.routed_to for r in hub.receipts.rows.values()} == {"reference_resolution"}


# --- Kafka or Postgres down ------------------------------------------------------------------------------------


async def test_kafka_down_is_503_with_retry_after_and_nothing_recorded(hub: Hub) -> None:
    hub.publisher.down = True
    body = batch(OCEAN)
    response = await hub.client.post("/v1/events/canonical", data=body, headers=http_signature_headers(body, KEY, "canonical", NOW))
    assert response.status == 503
    assert response.headers["Retry-After"].isdigit()
    assert (await response.json())["error"] == "unavailable"
    assert not hub.receipts.rows

    hub.publisher.down = False
    status, answer = await hub.post("canonical", batch(OCEAN))
    assert (status, answer["accepted"]) == (202, len(OCEAN))


async def test_postgres_down_is_503_and_nothing_is_published(hub: Hub) -> None:
    body = batch(OCEAN[:2])
    hub.receipts.down = True
    status, answer = await hub.post("canonical", body)
    assert (status, answer["error"]) == (503, "unavailable")
    assert not hub.publisher.sent, "nothing can be decided new without the receipts"

    hub.receipts.down = False
    status, answer = await hub.post("canonical", body)
    assert (status, answer["accepted"]) == (202, 2)


async def test_a_failed_receipt_write_after_publishing_is_503_and_the_retry_republishes(hub: Hub) -> None:
    body = batch(OCEAN[:2])
    real_record = hub.receipts.record

    async def failing_record(receipts: Sequence[Receipt]) -> list[bool]:
        raise Unavailable("postgres went away after the publish")

    hub.receipts.record = failing_record  # type: ignore[method-assign]
    status, _ = await hub.post("canonical", body)
    assert status == 503
    assert len(hub.publisher.sent) == 2 and not hub.receipts.rows

    hub.receipts.record = real_record  # type: ignore[method-assign]
    status, answer = await hub.post("canonical", body)
    assert (status, answer["accepted"]) == (202, 2)
    assert len(hub.publisher.sent) == 4, "published again: the merge sees the same fingerprint and ignores it"


async def test_healthz_reports_each_dependency(hub: Hub) -> None:
    response = await hub.client.get("/healthz")
    assert (response.status, await response.json()) == (200, {"kafka": "up", "postgres": "up"})
    hub.receipts.down = True
    response = await hub.client.get("/healthz")
    assert (response.status, await response.json()) == (503, {"kafka": "up", "postgres": "down"})


# --- OpenAPI ---------------------------------------------------------------------------------------------------


def refs(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {node["$ref"]} if isinstance(node.get("$ref"), str) else set()
        discriminator = node.get("discriminator")
        mapping = discriminator.get("mapping", {}) if isinstance(discriminator, dict) else {}
        return found | set(mapping.values()) | {r for value in node.values() for r in refs(value)}
    if isinstance(node, list):
        return {r for value in node for r in refs(value)}
    return set()


async def test_openapi_document_is_served_with_the_events_path(hub: Hub) -> None:
    response = await hub.client.get("/openapi.json")
    assert response.status == 200
    document = orjson.loads(await response.read())
    assert document["openapi"].startswith("3.1")
    operation = document["paths"]["/v1/events/{format}"]["post"]
    names = {p["name"] for p in operation["parameters"]}
    assert names == {"format", "Mmhub-Carrier", "Mmhub-Key-Id", "Mmhub-Signature"}
    assert set(operation["responses"]) == {"202", "401", "404", "408", "413", "422", "429", "503"}
    assert {"/openapi.json", "/healthz"} <= set(document["paths"])


def test_every_ref_in_the_openapi_document_resolves_inside_it() -> None:
    document = openapi_document(MAX_BODY_BYTES)
    schemas = document["components"]["schemas"]
    for ref in refs(document):
        assert re.fullmatch(r"#/components/schemas/[A-Za-z0-9_]+", ref), ref
        assert ref.rsplit("/", 1)[1] in schemas, ref


def test_the_embedded_event_schema_is_the_exported_one() -> None:
    document = openapi_document(MAX_BODY_BYTES)
    exported = json_schemas()["hub-event"]
    schemas = document["components"]["schemas"]

    def as_exported(schema: Any) -> Any:
        return orjson.loads(orjson.dumps(schema).replace(b"#/components/schemas/", b"#/$defs/"))

    assert as_exported(schemas["HubEvent"]) == {k: v for k, v in exported.items() if k != "$defs"}
    for name, definition in exported["$defs"].items():
        assert as_exported(schemas[name]) == definition, name


# --- the pure decisions ----------------------------------------------------------------------------------------


def test_a_receipt_written_first_by_another_request_makes_the_copy_a_duplicate() -> None:
    events = [HUB_EVENT.validate_python(d) for d in OCEAN[:2]]
    planned = plan(admit(list(events), CARRIER, "http:x", NOW, Horizon.of(SETTINGS)), set())
    assert [r.result for r in results(planned, [True, False])] == ["accepted", "duplicate"]


def test_results_come_back_in_payload_order() -> None:
    first = HUB_EVENT.validate_python(OCEAN[0])
    decided = admit([first, Rejection("invalid_json", "x"), first], CARRIER, "http:x", NOW, Horizon.of(SETTINGS))
    planned = plan(decided, {decided[0].identity} if isinstance(decided[0], Admitted) else set())
    assert [(r.index, r.result) for r in results(planned, [])] == [(0, "duplicate"), (1, "rejected"), (2, "duplicate")]


def test_a_reason_gets_its_event_label_once() -> None:
    assert labelled(Refused(3, None, Rejection("c", "bad"))).reason == "event 3: bad"
    assert labelled(Refused(3, None, Rejection("c", "event 3: bad"))).reason == "event 3: bad"


# --- anything a carrier may send -------------------------------------------------------------------------------

SAMPLES = {name: sorted(p.name for p in samples_of(name).iterdir()) for name in FORMATS if name != "canonical"}


@st.composite
def mutated_batches(draw: st.DrawFn) -> bytes:
    """Some of the carrier's canonical events as JSON lines, with 1-6 of their bytes overwritten."""
    picked = draw(st.lists(st.sampled_from([orjson.dumps(d) for d in OCEAN]), min_size=1, max_size=4))
    raw = bytearray(b"\n".join(picked))
    for _ in range(draw(st.integers(min_value=1, max_value=6))):
        raw[draw(st.integers(min_value=0, max_value=len(raw) - 1))] = draw(st.integers(min_value=0, max_value=255))
    return bytes(raw)


def bodies(format_name: str) -> st.SearchStrategy[bytes]:
    """Arbitrary bytes, or a real-shaped payload of the format slightly broken (which gets past the first checks)."""
    if format_name == "canonical":
        return st.binary(max_size=2048) | mutated_batches()
    return st.binary(max_size=2048) | byte_mutated_samples(samples_of(format_name), SAMPLES[format_name])


@pytest.mark.parametrize("format_name", list(FORMATS))
@settings(
    max_examples=60,
    deadline=None,
    # The fixture's server is shared by the examples on purpose: starting one per example would be slow.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
async def test_any_signed_body_gets_a_json_answer_never_a_server_error(
    hub: Hub, format_name: str, data: st.DataObject
) -> None:
    body = data.draw(bodies(format_name))
    before = len(hub.publisher.on(TOPICS.dlq))

    status, answer = await hub.post(format_name, body)

    taken = answer["accepted"] + answer["duplicates"]
    assert (status, answer.get("error")) == ((202, None) if taken else (422, "nothing_accepted")), answer
    assert answer["accepted"] + answer["duplicates"] + answer["rejected"] == len(answer["results"]) >= 1
    for result in answer["results"]:
        assert result["result"] in ("accepted", "duplicate", "rejected")
        if result["result"] == "rejected":
            assert result["reason"] and result["code"]
        else:
            assert result["event_id"] and result["routed_to"] in ("shipment", "reference_resolution")
    # the body is dead-lettered once when anything in it is refused, with every refused event's reason
    letters = hub.publisher.on(TOPICS.dlq)[before:]
    assert len(letters) == (1 if answer["rejected"] else 0)
    if letters:
        reason = dict(letters[0].headers)[DLQ_REASON].decode()
        refused = [r for r in answer["results"] if r["result"] == "rejected"]
        # each reason once, labelled by its index: `event <i>:` or the parser's own `event <i> (<its id>):`
        assert all(f"event {r['index']}:" in reason or f"event {r['index']} (" in reason for r in refused[:20])
        assert re.search(r"event \d+( \([^)]*\))?: event \d+", reason) is None
