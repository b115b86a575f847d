"""The multi-format example journey (`examples/formats/`): its files, who signs them, and the record they make.

Shared by `mmhub demo` and the integration tests, so both send the same thing and expect the same record.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import orjson

from connectors.carriers import SigningKey, load_signing_key
from connectors.formats import parser
from schemas.events import HubEvent
from schemas.record import ShipmentRecord
from schemas.rejection import Rejection
from streams.authority import Authority
from streams.merge import fold
from streams.references import resolve_offline

REPO = Path(__file__).resolve().parents[1]
FORMATS_DIR = REPO / "examples" / "formats"
KEYS_DIR = REPO / "examples" / "keys"


@dataclass(frozen=True)
class Send:
    path: Path
    format_name: str
    key: SigningKey
    way: str  # "http", "ingest" or "kafka"
    after_booking: bool

    @property
    def body(self) -> bytes:
        return self.path.read_bytes()


def sends(directory: Path = FORMATS_DIR) -> tuple[str, list[Send]]:
    """(the journey's shipment id, its sends in manifest order)."""
    manifest = orjson.loads((directory / "manifest.json").read_bytes())
    return manifest["shipment_id"], [
        Send(
            directory / item["file"],
            item["format"],
            load_signing_key(KEYS_DIR / item["key"]),
            item["way"],
            item["after_booking"],
        )
        for item in manifest["sends"]
    ]


def parsed(send: Send) -> list[HubEvent]:
    """The canonical events of one file; an example file that does not parse cleanly is a bug in the examples."""
    results = parser(send.format_name)(send.body, send.key.carrier)
    refused = [r for r in results if isinstance(r, Rejection)]
    if refused:
        raise ValueError(f"{send.path.name}: {refused[0].reason}")
    return [r for r in results if not isinstance(r, Rejection)]


def offline_records(
    authority: Authority, extra: list[HubEvent] | None = None, directory: Path = FORMATS_DIR
) -> dict[str, ShipmentRecord]:
    """What the hub must end with: every file parsed, references resolved offline, folded as canonical events."""
    events = [event for send in sends(directory)[1] for event in parsed(send)] + (extra or [])
    placed, unresolved = resolve_offline(events, authority)
    if unresolved:
        raise ValueError(f"{len(unresolved)} example events resolve to no shipment, e.g. {unresolved[0].key}")
    return fold(placed, authority)


def resent(send: Send) -> bytes:
    """The file as its carrier would send it again: EDIFACT in a new interchange (new UNB and UNH control
    references), EPCIS without its eventIDs (the event hash still knows the events), anything else as it was."""
    body = send.body
    if send.format_name == "edifact":
        interchange = re.search(rb"UNB\+(?:[^+']*\+){4}([^+':]+)", body)
        references = ([interchange.group(1)] if interchange else []) + re.findall(rb"UNH\+([^+']+)", body)
        for reference in references:  # each in its header and trailer: UNB/UNZ, UNH/UNT
            body = re.sub(rb"\+" + re.escape(reference) + rb"(?=[+'])", b"+" + reference + b"R", body)
        return body
    if send.format_name == "epcis":
        document = orjson.loads(body)
        for event in document["epcisBody"]["eventList"]:
            event.pop("eventID", None)
        return orjson.dumps(document)
    return body
