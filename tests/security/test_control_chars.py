"""Issue 12, finding 2: text Postgres (or a terminal) refuses must be refused at the door, with a reason.

A signed tracking event with NUL in `remarks` was accepted (202) and then stopped the Postgres sink for good. The
canonical schemas now refuse NUL, the other C0 and C1 control characters, DEL and lone surrogates in every text
field (tab and newline only in multi-line fields), and the refusal goes to the dead-letter topic with the original
bytes; the carrier formats map into the same schemas, so their junk is refused the same way.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Callable

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from connectors.carriers import http_signature_headers, load_signing_key
from connectors.formats import FORMATS
from schemas.events import HUB_EVENT
from schemas.rejection import Rejection
from streams.codec import decode_event
from hubconf.topics import DLQ_CODE, DLQ_REASON, DLQ_SOURCE_TOPIC
from tests.integration.hub import read_topic
from tests.integration.test_gateway import CARRIER, KEYS, NOW, end_offsets, gateway, post
from tests.unit.builders import every_kind_docs, tracking_doc
from tests.unit.strategies import paths

REPO = Path(__file__).resolve().parents[2]
# (character, what the reason calls it): NUL, other C0 controls, DEL, C1 controls, and lone surrogates.
JUNK = [("\x00", "U+0000"), ("\x1b", "U+001B"), ("\r", "U+000D"), ("\x7f", "U+007F"), ("\x85", "U+0085"),
        ("\x9b", "U+009B"), ("\ud800", "U+D800"), ("\udfff", "U+DFFF")]
# The free-text fields (by name): refused with the text rule's own reason. Every other string is an identifier,
# a code or a literal, whose own pattern refuses junk too.
FREE_TEXT = {"name", "contact", "description", "raw_code", "code_list", "transport_means", "remarks", "code",
             "conditions", "reason", "rate_source", "seals"}
MULTI_LINE = {"remarks", "conditions", "reason", ("cargo", "description")}
Doc = dict[str, Any]


def string_leaves(doc: Doc) -> list[tuple[Any, ...]]:
    return [path for path in paths(doc) if isinstance(_get(doc, path), str)]


def _get(doc: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        doc = doc[step]
    return doc


def with_value(doc: Doc, path: tuple[Any, ...], change: Callable[[str], str]) -> Doc:
    changed = copy.deepcopy(doc)
    parent = _get(changed, path[:-1])
    parent[path[-1]] = change(parent[path[-1]])
    return changed


def field_name(path: tuple[Any, ...]) -> str:
    named = [step for step in path if isinstance(step, str)]
    return named[-1]


def multi_line(path: tuple[Any, ...]) -> bool:
    named = tuple(step for step in path if isinstance(step, str))
    return named[-1] in MULTI_LINE or named[-2:] in MULTI_LINE


def refusal(doc: Doc) -> str:
    try:
        HUB_EVENT.validate_python(doc)
    except ValidationError as error:
        return str(error)
    raise AssertionError("accepted")


def test_every_string_field_of_every_event_type_refuses_control_characters_and_lone_surrogates() -> None:
    checked = 0
    for doc in every_kind_docs():
        leaves = string_leaves(doc)
        assert leaves, doc["event_type"]
        for path in leaves:
            for char, named in JUNK:
                bad = with_value(doc, path, lambda text: text[:1] + char + text[1:])
                reason = refusal(bad)
                where = ".".join(str(step) for step in path)
                assert where.split(".")[-1] in reason, (where, reason)
                if field_name(path) in FREE_TEXT:
                    assert named in reason and "text holds" in reason, (where, reason)
                checked += 1
    assert checked > 300, checked


def test_tab_and_newline_only_in_multi_line_fields() -> None:
    for doc in every_kind_docs():
        for path in string_leaves(doc):
            if field_name(path) not in FREE_TEXT:
                continue
            for char in "\t\n":
                bad = with_value(doc, path, lambda text: text[:1] + char + text[1:])
                if multi_line(path):
                    HUB_EVENT.validate_python(bad)
                else:
                    assert f"U+{ord(char):04X}" in refusal(bad), path


def test_the_codec_dead_letters_a_nul_in_remarks_with_a_reason_and_refuses_escaped_lone_surrogates() -> None:
    nul = tracking_doc("damaged")
    nul["payload"]["remarks"] = "dented\u0000"
    refused = decode_event(orjson.dumps(nul))
    assert isinstance(refused, Rejection) and refused.code == "invalid_event"
    assert "payload.remarks" in refused.reason and "NUL (U+0000) at position 6" in refused.reason
    # orjson cannot even write a lone surrogate: as a JSON escape it is refused before the schema sees it
    raw = orjson.dumps(tracking_doc("damaged")).replace(b'"test-codes"', b'"\\ud800"')
    assert b"\\ud800" in raw
    surrogate = decode_event(raw)
    assert isinstance(surrogate, Rejection) and surrogate.code == "invalid_json"


def test_an_unknown_key_holding_nul_is_refused() -> None:
    doc = tracking_doc("damaged")
    doc["payload"]["re\u0000marks"] = "x"
    assert "Extra inputs are not permitted" in refusal(doc)


def _json_samples() -> list[tuple[str, Path]]:
    found = []
    for name, folder in [("dcsa", "dcsa"), ("onerecord", "onerecord"), ("epcis", "epcis")]:
        for sample in sorted((REPO / "connectors" / folder / "samples").iterdir()):
            if "malformed" not in sample.name:
                found.append((name, sample))
    return found


def _no_control_text(value: Any) -> bool:
    if isinstance(value, str):
        return not any(ord(c) < 32 and c not in "\t\n" or 0x7F <= ord(c) <= 0x9F or 0xD800 <= ord(c) <= 0xDFFF for c in value)
    if isinstance(value, dict):
        return all(_no_control_text(k) and _no_control_text(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_no_control_text(v) for v in value)
    return True


@pytest.mark.parametrize(("format_name", "sample"), _json_samples(), ids=lambda v: getattr(v, "name", v))
def test_junk_in_any_text_of_a_carrier_format_is_refused_never_carried_into_an_event(format_name: str, sample: Path) -> None:
    """NUL, ESC or a C1 control appended to each string of a carrier payload: the parser answers with events or
    rejections (never an exception), and no canonical event it produces holds the junk."""
    doc = orjson.loads(sample.read_bytes())
    refused_with_rule = 0
    for path in [p for p in paths(doc) if isinstance(_get(doc, p), str)]:
        for char in ("\x00", "\x1b", "\x85"):
            raw = orjson.dumps(with_value(doc, path, lambda text: text + char))
            results = FORMATS[format_name](raw, "carrier.fuzz")
            for result in results:
                if isinstance(result, Rejection):
                    assert result.reason
                    refused_with_rule += "text holds" in result.reason
                else:
                    assert _no_control_text(HUB_EVENT.dump_python(result, mode="json")), (path, result)
    if "retraction" not in sample.name:
        # the positive marker that junk reached text the parser reads; a DCSA 3.0 retraction is read from its
        # identity and update time alone, and an identity that does not fit an event id becomes a digest
        assert refused_with_rule, "no junk reached a text field of this sample"


def test_junk_bytes_in_an_edifact_free_text_are_refused_with_the_text_rule() -> None:
    sample = (REPO / "connectors" / "edifact" / "samples" / "iftsta_rail.edi").read_bytes()
    assert b"FTX+" in sample
    for char in (b"\x00", b"\x1b", b"\xc2\x85"):
        results = FORMATS["edifact"](sample.replace(b"FTX+AAI+++", b"FTX+AAI+++X" + char), "carrier.fuzz")
        refused = [r for r in results if isinstance(r, Rejection)]
        assert refused and all("text holds" in r.reason for r in refused), results
        assert all(_no_control_text(HUB_EVENT.dump_python(r, mode="json")) for r in results if not isinstance(r, Rejection))


async def test_a_signed_event_with_nul_in_remarks_is_refused_by_the_gateway_and_dead_lettered_untouched(hub_settings) -> None:
    settings = await hub_settings()
    key = load_signing_key(KEYS / f"{CARRIER}.2025-01.json")
    event = tracking_doc("damaged", leg=3, source=CARRIER)
    event["payload"]["remarks"] = "container dented\u0000; see photos"
    body = orjson.dumps([event])
    assert b"\\u0000" in body

    async with gateway(settings) as client:
        status, answer = await post(client, body, http_signature_headers(body, key, "canonical", NOW))

    assert (status, answer["error"]) == (422, "nothing_accepted"), answer  # answered per event; none was taken
    assert (answer["accepted"], answer["rejected"]) == (0, 1), answer
    [result] = answer["results"]
    assert result["code"] == "invalid_event" and "U+0000" in result["reason"], result
    (letter,) = await read_topic(settings, settings.topics.dlq, 1)
    headers = dict(letter.headers)
    assert letter.value == body
    assert headers[DLQ_CODE] == b"invalid_event"
    assert b"payload.remarks" in headers[DLQ_REASON] and b"NUL (U+0000)" in headers[DLQ_REASON]
    assert headers[DLQ_SOURCE_TOPIC] == b"http:/v1/events/canonical"
    assert await end_offsets(settings, settings.topics.events) == 0, "the refused event was published"


FORBIDDEN_IN_REMARKS = {chr(c) for c in [*range(0x00, 0x09), *range(0x0B, 0x20), *range(0x7F, 0xA0), *range(0xD800, 0xE000)]}


@settings(max_examples=100, deadline=None)
@given(text=st.text(st.characters(codec=None), min_size=1, max_size=60))
def test_remarks_take_any_text_postgres_can_store_and_refuse_the_rest(text: str) -> None:
    doc = tracking_doc("damaged")
    doc["payload"]["remarks"] = text
    bad = [c for c in text if c in FORBIDDEN_IN_REMARKS]
    try:
        event = HUB_EVENT.validate_python(doc)
    except ValidationError as error:
        assert bad, error
        assert f"U+{ord(bad[0]):04X}" in str(error)
        return
    assert not bad
    stored = orjson.dumps(HUB_EVENT.dump_python(event, mode="json"))  # what the sink writes into jsonb
    assert b"\\u0000" not in stored and b"\x00" not in stored
