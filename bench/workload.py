"""A synthetic but valid workload of canonical events, shaped like examples/journey.jsonl.

Every shipment gets the journey's booking plus `events_per_shipment - 1` of the journey's other events (waybills,
tracking with estimates, a revision and a retraction, settlements, insurance, and whatever else the example holds),
picked per shipment by a seeded RNG so shipments differ, with the shipment id, the container numbers and the
document numbers replaced by the shipment's own (see `_own_references`). Beyond the journey's own
events a shipment gets further revisions of an estimate (same event identity, later `revised_at`): distinct copies
that the fold must weigh. The example is read when the workload is built, so the workload follows it as it grows;
its name, size and hash are part of `Workload.describe()` so figures can be traced to it.

Order on the wire:
  interleaved (default)  round-robin over shipments: every shipment's 1st event, then every 2nd, ... so shipments
                         progress in parallel, as in production, and nearly every event is a new record version;
  grouped                all events of shipment 1, then shipment 2, ... (the fold's best case: one version per batch).
"""

from __future__ import annotations

import hashlib
import random
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson

from connectors.parties import load_parties
from hubconf.settings import DEFAULT_PARTIES
from schemas.identifiers import iso6346_check_digit
from schemas.record import ShipmentRecord
from streams.codec import Rejection, decode_event
from streams.merge import fold
from streams.references import resolve_offline

TEMPLATE = Path(__file__).resolve().parents[1] / "examples" / "journey.jsonl"
AUTHORITY = load_parties(DEFAULT_PARTIES).authority()  # the demo registry: its MTO owns the workload's shipments
ORDERS = ("interleaved", "grouped")
# 1,000 x 15 keeps `python -m bench.pipeline` (3 repetitions) under ~3 minutes on a 2-core dev box; with 2,000
# shipments the per-event figures are the same (a batch still holds one event per shipment) but it takes ~4 min.
DEFAULT_SHIPMENTS = 1000
DEFAULT_EVENTS_PER_SHIPMENT = 15
_REVISION_BASE = datetime(2026, 3, 20, tzinfo=timezone.utc)


@dataclass(frozen=True)
class Workload:
    shipments: int
    events_per_shipment: int
    order: str
    lines: list[bytes]  # the exact message values, in publish order
    keys: list[bytes]  # the message keys (shipment ids), parallel to `lines`
    template: str = ""  # where the shipments come from: file name, event count and a hash of its bytes

    @property
    def events(self) -> int:
        return len(self.lines)

    @property
    def size_bytes(self) -> int:
        return sum(len(line) for line in self.lines)

    def describe(self) -> str:
        return (
            f"{self.shipments} shipments x {self.events_per_shipment} events = {self.events} events "
            f"({self.size_bytes / self.events:.0f} B/event avg, {self.order}; from {self.template})"
        )


def _template(path: Path) -> tuple[list[dict[str, Any]], str]:
    raw = path.read_bytes()
    events = [orjson.loads(line) for line in raw.splitlines() if line.strip()]
    return events, f"{path.name}: {len(events)} events, blake2b {hashlib.blake2b(raw, digest_size=4).hexdigest()}"


def _shipment_events(index: int, count: int, template: list[dict[str, Any]], seed: int) -> list[dict[str, Any]]:
    shipment_id = f"SHP-BENCH-{index:06d}"
    booking = [e for e in template if e["event_type"] == "booking"][0]
    others = [e for e in template if e is not booking]
    rng = random.Random(seed * 1_000_003 + index)
    picked = sorted(rng.sample(range(len(others)), min(count - 1, len(others))))
    chosen = [booking] + [others[i] for i in picked]
    estimates = [e for e in template if e["event_type"] == "tracking" and e.get("classifier") == "EST"]
    for extra in range(count - len(chosen)):
        revised = (_REVISION_BASE + timedelta(minutes=extra)).strftime("%Y-%m-%dT%H:%M:%SZ")
        chosen.append({**estimates[extra % len(estimates)], "revised_at": revised})
    own = _own_references(index, template)
    # A carrier's event ids are its own and never reused: copied as they are, every shipment's copy of a journey event
    # would have the same identity, and the identity reference each event a carrier addresses by its references
    # registers (streams.references) would make one book hold a registration of every shipment. Copies of one event
    # within a shipment (a revision, a retraction) keep sharing theirs.
    return [
        orjson.loads(
            _readdress(
                orjson.dumps({**event, "shipment_id": shipment_id, "event_id": f"{event['event_id']}-B{index:06d}"}), own
            )
        )
        for event in chosen
    ]


def _own_references(index: int, template: list[dict[str, Any]]) -> dict[bytes, bytes]:
    """This shipment's own container and document numbers in place of the journey's.

    Two live shipments never share a container or a bill of lading: copied as they are, the journey's references
    would make every shipment register the same container, and each registration would grow one reference book
    (and the work per version) by a shipment. A real carrier's references are unique per journey.
    """
    text = orjson.dumps(template).decode()
    containers = sorted(set(re.findall(r'"(?:container|containers)":\[?"([A-Z]{4}\d{7})"', text)))
    containers += sorted(set(re.findall(r'"([A-Z]{3}U\d{7})"', text)) - set(containers))
    documents = sorted(set(re.findall(r'"document_number":"([^"]+)"', text)))
    own: dict[bytes, bytes] = {}
    for n, container in enumerate(containers):
        first_ten = f"BNCU{(index * 8 + n) % 1_000_000:06d}"
        own[container.encode()] = f"{first_ten}{iso6346_check_digit(first_ten)}".encode()
    for document in documents:
        own[document.encode()] = f"{document}-B{index:06d}".encode()
    return own


def _readdress(line: bytes, own: dict[bytes, bytes]) -> bytes:
    for theirs, ours in own.items():
        line = line.replace(b'"' + theirs + b'"', b'"' + ours + b'"')
    return line


def generate(
    shipments: int = DEFAULT_SHIPMENTS,
    events_per_shipment: int = DEFAULT_EVENTS_PER_SHIPMENT,
    order: str = "interleaved",
    seed: int = 42,
    template: Path = TEMPLATE,
    first: int = 0,
) -> Workload:
    """Shipments SHP-BENCH-<first> onwards: runs that must not touch each other's shipments pick other `first`s."""
    if shipments < 1 or events_per_shipment < 1:
        raise ValueError("need at least one shipment and one event per shipment")
    if order not in ORDERS:
        raise ValueError(f"order must be one of {ORDERS}")
    journey, described = _template(template)
    per_shipment = [
        [orjson.dumps(event) for event in _shipment_events(i, events_per_shipment, journey, seed)]
        for i in range(first, first + shipments)
    ]
    keys = [f"SHP-BENCH-{i:06d}".encode() for i in range(first, first + shipments)]
    lines: list[bytes] = []
    line_keys: list[bytes] = []
    if order == "grouped":
        for key, events in zip(keys, per_shipment):
            lines.extend(events)
            line_keys.extend([key] * len(events))
    else:
        for position in range(events_per_shipment):
            for key, events in zip(keys, per_shipment):
                lines.append(events[position])
                line_keys.append(key)
    workload = Workload(shipments, events_per_shipment, order, lines, line_keys, described)
    sample = decode_event(workload.lines[0])
    if isinstance(sample, Rejection):  # cheap guard; expected_records() validates every line
        raise ValueError(f"generated event is invalid: {sample.reason}")
    return workload


def expected_records(workload: Workload) -> dict[str, ShipmentRecord]:
    """The offline fold of the workload: every line must decode, and each record's version is the final one."""
    events = []
    for number, line in enumerate(workload.lines):
        decoded = decode_event(line)
        if isinstance(decoded, Rejection):
            raise ValueError(f"generated event {number} is invalid ({decoded.code}): {decoded.reason}")
        events.append(decoded)
    return fold(events, AUTHORITY)


def offline_finals(workload: Workload) -> tuple[dict[bytes, int], dict[bytes, Any]]:
    """Per shipment key: the final version, and the final record as JSON (as a status message carries it)."""
    records = expected_records(workload)
    finals = {sid.encode(): record.version for sid, record in records.items()}
    expected = {sid.encode(): orjson.loads(orjson.dumps(r.model_dump(mode="json"))) for sid, r in records.items()}
    return finals, expected


KEYS_DIR = Path(__file__).resolve().parents[1] / "examples" / "keys"


def reference_only(workload: Workload) -> list[tuple[str, bytes]]:
    """The same events as a carrier sends most of them: naming only a carrier reference, not the hub shipment.

    Each shipment's booking keeps its shipment id (it is what registers the references); every other event drops
    it and names the shipment's container instead. Returns (source, canonical JSON) in publish order: each is sent
    signed by its source to the canonical raw topic, so the hub connects, resolves and merges it.
    """
    containers: dict[str, str] = {}
    decoded = [orjson.loads(line) for line in workload.lines]
    for event in decoded:
        if event["event_type"] == "booking":
            containers[event["shipment_id"]] = event["payload"]["cargo"]["containers"][0]
    out = []
    for event in decoded:
        if event["event_type"] != "booking":
            container = containers[event["shipment_id"]]
            event = {**event, "references": [{"kind": "container", "value": container}]}
            del event["shipment_id"]
        out.append((event["source"], orjson.dumps(event)))
    return out


def reference_only_finals(payloads: list[tuple[str, bytes]]) -> tuple[dict[bytes, int], dict[bytes, Any]]:
    """offline_finals for reference_only's events: resolved offline (streams.references), then folded."""
    events = []
    for _, body in payloads:
        decoded = decode_event(body)
        if isinstance(decoded, Rejection):
            raise ValueError(f"reference-only event is invalid ({decoded.code}): {decoded.reason}")
        events.append(decoded)
    resolved, unresolved = resolve_offline(events, AUTHORITY)
    if unresolved:
        raise ValueError(f"{len(unresolved)} reference-only events do not resolve offline")
    records = fold(resolved, AUTHORITY)
    finals = {sid.encode(): record.version for sid, record in records.items()}
    expected = {sid.encode(): orjson.loads(orjson.dumps(r.model_dump(mode="json"))) for sid, r in records.items()}
    return finals, expected
