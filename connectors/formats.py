"""The carrier formats the hub reads, by name: one pure parser each, all with the same shape.

`parse(raw, source) -> list[HubEvent | Rejection]`: one result per event in the payload, in order, never an
exception. The raw topics (`carrier.<format>.raw`), the HTTP gateway and `mmhub ingest` all go through here, so a
payload is read the same way whichever path it took.
"""

from __future__ import annotations

from typing import Callable

import orjson
from pydantic import ValidationError

from connectors.dcsa.parse import parse as parse_dcsa
from connectors.edifact.parse import parse as parse_edifact
from connectors.epcis.parse import parse as parse_epcis
from connectors.onerecord.parse import parse as parse_onerecord
from connectors.payload import screen
from connectors.ubl.parse import parse as parse_ubl
from schemas.events import HUB_EVENT, HubEvent
from schemas.rejection import Rejection, describe
from hubconf.topics import RAW_FORMATS

Parser = Callable[[bytes, str], list[HubEvent | Rejection]]

MAX_CANONICAL_BYTES = 4 * 1024 * 1024
MAX_CANONICAL_EVENTS = 10_000


def parse_canonical(raw: bytes, source: str) -> list[HubEvent | Rejection]:
    """Canonical hub events as one JSON object, a JSON array of them, or JSON lines.

    The events name their own `source`; `source` (the authenticated sender) is not written into them, so a
    mismatch stays visible and is refused by the router rather than silently corrected.
    """
    refused = screen(raw, MAX_CANONICAL_BYTES, blank_is_empty=True)
    if refused is not None:
        return [refused]
    try:
        whole = orjson.loads(raw)
        documents: list[object] = whole if isinstance(whole, list) else [whole]
    except orjson.JSONDecodeError:
        documents = []
        for number, line in enumerate(raw.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                documents.append(orjson.loads(line))
            except orjson.JSONDecodeError as error:
                documents.append(Rejection("invalid_json", f"line {number}: not valid UTF-8 JSON: {error}"))
    if len(documents) > MAX_CANONICAL_EVENTS:
        return [Rejection("too_large", f"{len(documents)} events in one payload; the limit is {MAX_CANONICAL_EVENTS}")]
    results: list[HubEvent | Rejection] = []
    for index, document in enumerate(documents):
        if isinstance(document, Rejection):
            results.append(document)
        elif not isinstance(document, dict):
            results.append(Rejection("invalid_json", f"event {index}: must be a JSON object, got {type(document).__name__}"))
        else:
            try:
                results.append(HUB_EVENT.validate_python(document))
            except ValidationError as error:
                results.append(Rejection("invalid_event", f"event {index}: {describe(error)}"))
    return results


EMPTY = Rejection("empty", "the payload holds no events")


def _never_empty(parse: Parser) -> Parser:
    """`parse`, with a payload that yields no result at all (`[]`, `{"events": []}`, an EPCIS document with an empty
    eventList...) refused as `empty`: otherwise the connect stage would emit nothing and dead-letter nothing, and the
    carrier's payload would vanish without a reason."""

    def parsing(raw: bytes, source: str) -> list[HubEvent | Rejection]:
        return parse(raw, source) or [EMPTY]

    parsing.__doc__ = parse.__doc__
    return parsing


FORMATS: dict[str, Parser] = {
    name: _never_empty(parse)
    for name, parse in (
        ("canonical", parse_canonical),
        ("dcsa", parse_dcsa),
        ("edifact", parse_edifact),
        ("onerecord", parse_onerecord),
        ("epcis", parse_epcis),
        ("ubl", parse_ubl),
    )
}
assert tuple(FORMATS) == RAW_FORMATS, "every raw topic has a parser and every parser a raw topic"


def parser(format_name: str) -> Parser:
    try:
        return FORMATS[format_name]
    except KeyError:
        raise ValueError(f"unknown format {format_name!r}; known: {', '.join(FORMATS)}") from None
