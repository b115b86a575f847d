"""The per-event path's cheaper calls (issue 13) decide exactly what the path they replace decided.

What changed: the event models' list defaults are factories (`schemas.base.empty_list`) instead of `= []`, which
pydantic-core deep-copied on every use; `decode_event` and `canonical_json` call pydantic-core's validator and
serializer without TypeAdapter's Python wrapper. The reference here is the previous path: the same validator built
from HUB_EVENT's core schema with each factory put back as the `[]` default it replaced (`_with_list_defaults`; at
13af989 HUB_EVENT's core schema was exactly that, but for the JSON-schema-only metadata that keeps `"default": []`
in the JSON schema), TypeAdapter's own calls, and the previous `canonical_json`. Both must accept the same events
(equal models, with the same types, values and set fields), refuse the rest with the same code and reason, and give
the same canonical bytes and fingerprints: over the bench workload, the example journeys, one event of every kind,
and hostile mutations of them (hypothesis).
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any, Callable
from unittest import mock

import orjson
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel
from pydantic_core import SchemaValidator

from bench.workload import generate
from schemas.events import HUB_EVENT, Cargo, HubEvent
from streams import codec
from streams.codec import MAX_EVENT_BYTES, Rejection, decode_event, encode_event
from streams.copies import Copy, canonical_json, fingerprint

from ..builders import JOURNEY, booking_doc, every_kind_docs

Node = Any


def _with_list_defaults(node: Node, replaced: list[int]) -> Node:
    """`node` (a core schema) with each `default_factory=list` back as a `default=[]` (counted in `replaced`)."""
    if isinstance(node, list):
        return [_with_list_defaults(item, replaced) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _with_list_defaults(value, replaced) for key, value in node.items()}
    if out.get("type") == "default" and out.get("default_factory") is list:
        del out["default_factory"]
        out.pop("default_factory_takes_data", None)
        out["default"] = []
        replaced.append(1)
    return out


_REPLACED: list[int] = []
_PREVIOUS = SchemaValidator(_with_list_defaults(HUB_EVENT.core_schema, _REPLACED))


def previous_decode(raw: bytes | None) -> HubEvent | Rejection:
    """decode_event as it was: the same checks, then the `[]`-default validator through TypeAdapter's call."""
    with mock.patch.object(codec, "_VALIDATE_EVENT", _PREVIOUS.validate_python):
        return decode_event(raw)


def previous_canonical(event: HubEvent) -> bytes:
    return orjson.dumps(HUB_EVENT.dump_python(event, mode="json"), option=orjson.OPT_SORT_KEYS)


def fields_set(value: Any) -> Any:
    """Which fields each model in `value` was given (not defaulted), at every depth: model equality ignores it."""
    if isinstance(value, BaseModel):
        return (sorted(value.model_fields_set), {name: fields_set(item) for name, item in value.__dict__.items()})
    if isinstance(value, list):
        return [fields_set(item) for item in value]
    return None


def assert_same_decision(raw: bytes | None) -> HubEvent | Rejection:
    now, before = decode_event(raw), previous_decode(raw)
    if isinstance(before, Rejection) or isinstance(now, Rejection):
        assert now == before
        return now
    assert type(now) is type(before)
    assert now == before
    assert repr(now) == repr(before)  # the values' types too: Decimal('1.0') == Decimal('1.00'), their reprs differ
    assert fields_set(now) == fields_set(before)
    copy = Copy.of(now)
    assert copy.canonical == canonical_json(now) == previous_canonical(before)
    assert copy.fingerprint == fingerprint(now) == fingerprint(before)
    assert encode_event(now) == encode_event(before)
    return now


def test_the_reference_is_the_previous_schema_not_the_current_one() -> None:
    # every list default of the event models went through empty_list: the reference puts each of them back
    assert len(_REPLACED) >= 11
    assert _with_list_defaults(HUB_EVENT.core_schema, []) != HUB_EVENT.core_schema


def test_every_event_of_the_bench_workload_decodes_to_the_same_event_and_bytes() -> None:
    workload = generate(60, 15)
    decided = [assert_same_decision(line) for line in workload.lines]
    assert not any(isinstance(result, Rejection) for result in decided)
    assert {type(result).__name__ for result in decided} >= {"BookingEvent", "TrackingEvent", "HandoverEvent"}


def test_a_defaulted_list_is_new_for_every_event() -> None:
    raw = orjson.dumps(booking_doc())
    first, second = decode_event(raw), decode_event(raw)
    assert not isinstance(first, Rejection) and not isinstance(second, Rejection)
    assert first.references == [] and "references" not in first.model_fields_set
    assert first.references is not second.references
    assert first.payload.cargo.containers is not second.payload.cargo.containers
    # what the hub builds without validation (Frozen.built) takes the same default, also its own
    built = [Cargo.built(description="tea", pieces=1, packages=1, gross_weight_kg=Decimal(1)) for _ in range(2)]
    assert built[0].containers == built[0].dangerous_goods == [] and built[0].containers is not built[1].containers


# --- hostile input --------------------------------------------------------------------------------------------------

SEEDS: list[bytes] = [
    *JOURNEY.parent.joinpath("journey-claim.jsonl").read_bytes().splitlines(),
    *JOURNEY.parent.joinpath("journey-trade.jsonl").read_bytes().splitlines(),
    *JOURNEY.read_bytes().splitlines(),
    *(orjson.dumps(doc) for doc in every_kind_docs()),
    *generate(8, 15).lines,
]
ODD_VALUES: list[Any] = [
    None, True, False, 0, -1, 1, 17, 2**63 - 1, 2**63, 2**64 - 1, 2**64, 10**30, -(10**30), 1.5, -0.0, 1e308,
    float("inf"), float("nan"), "", " ", "0", "1e5", "NaN", "Infinity", " 12.50", "12.50\r", "-0", "1.23456789",
    "12345678901234567890.1", "2026-03-01T08:00:00", "2026-03-01T08:00:00+05:30", "2026-02-30T08:00:00Z",
    "9999-12-31T23:59:59-01:00", "2026-03-01", "x" * 600, "UN1263", "USD", "XXX", "CNCKG", "CSQU3054383",
    "020-12345675", "02012345675", [], [1], ["a"], {}, {"a": 1},
]
ODD_TEXT = ["\x00", "\t", "\n", "\r", "\x1f", "\x7f", "\x85", "\x9f", "\ud800", "\udfff", "\u2028", "é", "😀", " "]


def _mutate(doc: Any, draw: Callable[..., Any]) -> Any:
    """One hostile change somewhere in `doc`, most often inside it (a fresh copy: the seeds are shared)."""
    if isinstance(doc, dict) and doc and draw(st.integers(0, 3)) > 0:
        key = draw(st.sampled_from(sorted(doc)))
        return {**doc, key: _mutate(doc[key], draw)}
    if isinstance(doc, list) and doc and draw(st.integers(0, 3)) > 0:
        index = draw(st.integers(0, len(doc) - 1))
        return [*doc[:index], _mutate(doc[index], draw), *doc[index + 1 :]]
    choice = draw(st.integers(0, 5))
    if choice == 0 and isinstance(doc, dict) and doc:
        return {key: value for key, value in doc.items() if key != draw(st.sampled_from(sorted(doc)))}
    if choice == 1 and isinstance(doc, dict):
        return {**doc, draw(st.sampled_from(["extra", "event_type", "payload", "leg", "Shipment_ID", ""])): 1}
    if choice == 2 and isinstance(doc, str):
        at = draw(st.integers(0, len(doc)))
        return doc[:at] + draw(st.sampled_from(ODD_TEXT)) + doc[at:]
    if choice == 3 and isinstance(doc, list):
        return doc + doc if doc else [draw(st.sampled_from(ODD_VALUES))]
    if choice == 4 and isinstance(doc, int) and not isinstance(doc, bool):
        return doc + draw(st.sampled_from([-1, 1, 10**19, -(2**64), 10**40]))
    return draw(st.sampled_from(ODD_VALUES))


def _encode(doc: Any, draw: Callable[..., Any]) -> bytes:
    """JSON of `doc` as a sender might write it: escaped or raw UTF-8 (lone surrogates become bad UTF-8), any
    integer, NaN and Infinity as Python writes them."""
    if draw(st.booleans()):
        return json.dumps(doc, ensure_ascii=True).encode()
    return json.dumps(doc, ensure_ascii=False).encode("utf-8", "surrogatepass")


def _damage(raw: bytes, draw: Callable[..., Any]) -> bytes:
    """`raw` as it is (most often), or damaged as bytes: cut, a bad byte, a BOM, trailing bytes, a key twice, oversize."""
    choice = draw(st.integers(0, 12))
    at = draw(st.integers(1, len(raw)))
    if choice == 7:
        return raw[:at]
    if choice == 8:
        return raw[:at] + draw(st.sampled_from([b"\x00", b"\xff", b"\xc3", b"\xed\xa0\x80", b"\\", b'"', b"}", b","])) + raw[at:]
    if choice == 9:
        return draw(st.sampled_from([b"\xef\xbb\xbf", b" ", b"\x00"])) + raw
    if choice == 10:
        return raw + draw(st.sampled_from([b" ", b"\n", b"x", b"{}", b"\x00"]))
    if choice == 11 and raw.startswith(b"{"):  # a key twice: which one counts is the parser's rule
        return b'{"event_type":"tracking","source":"nobody",' + raw[1:]
    if choice == 12:
        return raw + b" " * (MAX_EVENT_BYTES + draw(st.integers(-1, 1)) - len(raw))
    return raw


@st.composite
def hostile_events(draw: Callable[..., Any]) -> bytes:
    doc = orjson.loads(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(0, 3))):
        doc = _mutate(doc, draw)
    return _damage(_encode(doc, draw), draw)


@example(b"")
@example(b"[]")
@example(b'{"event_type": "rate", "payload": {"rate": 1000000000000000000000000000000}}')
@example(SEEDS[0].replace(b'"source":', b'"source\\u0000":'))
@example(SEEDS[0][:-1] + b',"unexpected":true}')
@example(SEEDS[0].replace(b'"', b'"\xff', 1))
@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(hostile_events())
def test_hostile_input_is_decided_as_before(raw: bytes) -> None:
    assert_same_decision(raw)
