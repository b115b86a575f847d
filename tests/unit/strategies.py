"""Hypothesis strategies: valid shipment journeys as carriers send them (JSON-shaped dicts, then parsed by the real
validators), and the broken bytes a carrier might send instead.

A journey is one shipment's events: maybe a booking (1-5 chained legs between random UN/LOCODE-shaped places, random
carriers), tracking reports of every status and classifier, documents, charges, cover and claims; some copies
revised (same source and event_id, later `revised_at`, new content), some retracted. Events name legs 1..6 whatever
the booking plans, so some always wait for placement.

Generation draws through helpers taking `draw` rather than building strategies per event: hypothesis spends most
of a journey's cost on strategy objects otherwise.
"""

from __future__ import annotations

import copy
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, get_args

import orjson
from hypothesis import strategies as st

from schemas.events import HUB_EVENT, ClaimStatus, DocumentKind, HubEvent
from schemas.identifiers import iso6346_check_digit
from schemas.status import PROGRESS_ORDER, TrackingStatus

Doc = dict[str, Any]

SHIPMENT = "SHP-PROP-0001"
MTO = "mto.prop"
INSURER = "insurer.prop"
BASE = datetime(2026, 3, 1, tzinfo=timezone.utc)
DAYS = 30  # events happen in the first DAYS days; revisions and retractions come after
# Carriers send local offsets; the hub keeps UTC. Several offsets check that normalisation is canonical.
OFFSETS = [timezone.utc, timezone(timedelta(hours=8)), timezone(timedelta(hours=-5)), timezone(timedelta(hours=5, minutes=30))]
COUNTRIES = ["CN", "SG", "MY", "DE", "NL", "US", "BR", "ZA", "IN", "AE"]
UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
LOWER = "abcdefghijklmnopqrstuvwxyz0123456789"
CURRENCIES = ["USD", "EUR", "CNY", "MYR", "JPY"]
STATUSES: tuple[str, ...] = get_args(TrackingStatus)
REPORTED = list(PROGRESS_ORDER) * 2 + [s for s in STATUSES if s not in PROGRESS_ORDER]  # progress twice as often
DOCUMENT_KINDS: tuple[str, ...] = get_args(DocumentKind)
CLAIM_STATUSES: tuple[str, ...] = get_args(ClaimStatus)
FAMILIES = ("booking", "tracking", "waybill", "settlement", "insurance", "carrier_invoice")
MAX_LEG = 6


def _container(owner: str, category: str, serial: int) -> str:
    first_ten = f"{owner}{category}{serial:06d}"
    return f"{first_ten}{iso6346_check_digit(first_ten)}"


# Reports name places and containers far more often than bookings do: fixed pools keep generation cheap.
PLACES = [country + tail for country in COUNTRIES for tail in ("HAM", "SIN", "2AB", "9ZZ")]
CONTAINERS = [_container(owner, category, serial) for owner in ("CSQ", "MSK", "HLX") for category in "UJZ" for serial in (305438, 907032)]

locodes = st.tuples(st.sampled_from(COUNTRIES), st.text(UPPER + "23456789", min_size=3, max_size=3)).map("".join)
party_ids = st.tuples(st.sampled_from(["carrier.", "ops-", "x"]), st.text(LOWER + "._-", min_size=1, max_size=6)).map("".join)
raw_codes = st.sampled_from(["DEPA", "ARRI", "LOAD", "DISC", "GTIN", "GTOT", "POD", "x", "FRT", "BAF", "THC"])
document_numbers = st.tuples(st.sampled_from(["SWB", "CMR", "BL-", "9"]), st.text("ABC0123456789./-", min_size=2, max_size=6)).map("".join)
air_waybills = st.builds(lambda prefix, serial: f"{prefix:03d}-{serial:07d}{serial % 7}", st.integers(0, 999), st.integers(0, 9_999_999))
place_pool = st.sampled_from(PLACES)
container_pool = st.sampled_from(CONTAINERS)
legs_named = st.integers(1, MAX_LEG)
maybe_leg = st.integers(0, MAX_LEG).map(lambda n: n or None)  # mostly a leg, now and then none
rare = st.integers(0, 5).map(lambda n: n == 0)  # true one time in six

amounts: st.SearchStrategy[Any] = st.one_of(
    st.decimals(min_value=-5_000, max_value=500_000, places=2).map(str),
    st.decimals(min_value=0, max_value=1_000, places=4).map(str),
    st.integers(-1_000, 1_000_000),
)
monies = st.fixed_dictionaries({"amount": amounts, "currency": st.sampled_from(CURRENCIES)})


def _stamp(choice: int) -> str:
    hours, offset = divmod(choice, len(OFFSETS))
    return (BASE + timedelta(hours=hours)).astimezone(OFFSETS[offset]).isoformat()


def timestamps(low_hour: int, high_hour: int) -> st.SearchStrategy[str]:
    """An instant low..high whole hours after BASE (so ties happen often), in a random offset."""
    return st.integers(low_hour * len(OFFSETS), high_hour * len(OFFSETS) + len(OFFSETS) - 1).map(_stamp)


event_times = timestamps(0, 24 * DAYS)
maybe_time = st.none() | event_times
revision_times = [st.none() | timestamps(24 * (DAYS + step), 24 * (DAYS + step) + 23) for step in range(2)]
retraction_times = st.none() | timestamps(24 * (DAYS + 1), 24 * (DAYS + 3))

cargo = st.fixed_dictionaries(
    {
        "description": st.just("General cargo"),
        "pieces": st.integers(1, 100),
        "packages": st.integers(1, 100),
        "gross_weight_kg": st.decimals(min_value=0, max_value=30_000, places=3).map(str),
    },
    optional={"containers": st.lists(container_pool, max_size=2)},
)
tracking_payloads = st.fixed_dictionaries(
    {
        "status": st.sampled_from(REPORTED),
        "raw_code": raw_codes,
        "code_list": st.sampled_from(["DCSA", "carrier-codes", "EDIFACT-4405"]),
        "leg": maybe_leg,
    },
    optional={"location": place_pool, "container": container_pool},
).map(lambda payload: {key: value for key, value in payload.items() if value is not None})
charges = st.lists(
    st.fixed_dictionaries({"code": raw_codes, "amount": monies}, optional={"description": st.just("charge")}), min_size=1, max_size=4
)
insurance_payloads = st.fixed_dictionaries(
    {
        "action": st.just("policy_bound"),
        "policy_number": st.sampled_from(["POL-1", "POL-2"]),
        "insurer": st.just(INSURER),
        "insured_value": monies,
        "conditions": st.just("ICC (A)"),
    }
) | st.fixed_dictionaries(
    {"action": st.just("claim_update"), "claim_id": st.sampled_from(["CLM-1", "CLM-2"]), "status": st.sampled_from(CLAIM_STATUSES)},
    optional={"amount": monies},
)


def _booking_payload(draw: st.DrawFn, carriers: st.SearchStrategy[str]) -> Doc:
    count = draw(st.integers(1, 5))
    places: list[str] = []
    while len(places) < count + 1:
        place = draw(locodes)
        if place not in places:  # distinct places: no leg starts where it ends
            places.append(place)
    legs = []
    for sequence in range(1, count + 1):
        leg: Doc = {
            "sequence": sequence,
            "mode": draw(st.integers(1, 8)),
            "carrier": draw(carriers),
            "origin": places[sequence - 1],
            "destination": places[sequence],
        }
        for field in ("planned_departure", "planned_arrival"):
            planned = draw(maybe_time)
            if planned is not None:
                leg[field] = planned
        legs.append(leg)
    return {
        "shipper": {"party_id": "shipper.prop", "name": "Prop Shipper"},
        "consignee": {"party_id": "consignee.prop", "name": "Prop Consignee", "contact": "receiving@example.com"},
        "mto": MTO,
        "cargo": draw(cargo),
        "declared_value": draw(monies),
        "legs": legs,
        "insurance_requested": draw(st.booleans()),
    }


def _waybill_payload(draw: st.DrawFn, issuer: str) -> Doc:
    kind = draw(st.sampled_from(DOCUMENT_KINDS))
    payload: Doc = {
        "document_kind": kind,
        "document_number": draw(air_waybills if kind == "air_waybill" else document_numbers),
        "issuer": issuer,
        "containers": draw(st.lists(container_pool, max_size=2)),
    }
    if kind != "multimodal_transport_document":
        payload["leg"] = draw(legs_named)
    return payload


def _settlement_payload(draw: st.DrawFn, carrier: str) -> Doc:
    payload: Doc = {"carrier": carrier, "charges": draw(charges)}
    leg = draw(maybe_leg)
    if leg is not None:
        payload["leg"] = leg
    return payload


def _invoice_payload(draw: st.DrawFn) -> Doc:
    """A carrier invoice that adds up (its tax may or may not be right, its net may or may not match the charges)."""
    money = draw(monies)
    amount, currency = money["amount"], money["currency"]
    tax = draw(st.sampled_from(["0", "1.00"]))
    total = str(Decimal(amount) + Decimal(tax))
    party = {"name": "Seller", "identifiers": [{"scheme": "0088", "value": draw(st.sampled_from(["5790000435968", "1"]))}]}
    return {
        "invoice_number": draw(document_numbers), "issue_date": "2026-03-02", "currency": currency, "leg": draw(legs_named),
        "seller": party, "buyer": {"name": "MTO"},
        "lines": [{"line_id": "1", "description": "carriage", "amount": money, "tax_percent": "9"}],
        "net_total": money, "tax_total": {"amount": tax, "currency": currency},
        "tax_subtotals": [{"category": "S", "percent": "9", "taxable": money, "tax": {"amount": tax, "currency": currency}}],
        "payable": {"amount": total, "currency": currency},
    }


def _event_doc(
    draw: st.DrawFn, family: str, carriers: st.SearchStrategy[str], identity: Doc, revised_at: str | None = None
) -> Doc:
    """One copy of an event of `family` under `identity` (event_id, source, shipment_id)."""
    source = identity["source"]
    if family == "booking":
        payload = _booking_payload(draw, carriers)
    elif family == "tracking":
        payload = draw(tracking_payloads)
    elif family == "waybill":
        payload = _waybill_payload(draw, source)
    elif family == "settlement":
        payload = _settlement_payload(draw, source)
    elif family == "carrier_invoice":
        payload = _invoice_payload(draw)
    else:
        payload = draw(insurance_payloads)
    doc: Doc = {
        **identity,
        "event_type": family,
        "occurred_at": draw(event_times),
        "recorded_at": draw(event_times),
        "classifier": draw(st.sampled_from(["ACT", "EST", "ACT", "PLN"])) if family == "tracking" else "ACT",
        "payload": payload,
    }
    if draw(rare):
        doc["references"] = [{"kind": "container", "value": draw(container_pool)}]
    if revised_at is not None:
        doc["revised_at"] = revised_at
    return doc


def _source_of(draw: st.DrawFn, family: str, carriers: st.SearchStrategy[str]) -> str:
    if family == "booking":
        return MTO
    if family == "insurance":
        return INSURER
    if family == "waybill" and draw(rare):
        return MTO  # the through document, or a leg document the MTO issues itself
    return draw(carriers)


@st.composite
def journey_docs(draw: st.DrawFn, shipment_id: str = SHIPMENT) -> list[Doc]:
    """One shipment's events as JSON-shaped dicts, revisions and retractions included, in generation order."""
    carriers = st.sampled_from(draw(st.lists(party_ids, min_size=1, max_size=4, unique=True)))
    bookings = st.sampled_from([1, 0, 1, 2])  # usually one; sometimes none yet, sometimes a second
    counts = draw(st.tuples(bookings, st.integers(1, 10), st.integers(0, 2), st.integers(0, 2), st.integers(0, 2), st.integers(0, 2)))
    families = [family for family, count in zip(FAMILIES, counts) for _ in range(count)]

    docs: list[Doc] = []
    for number, family in enumerate(families):
        identity = {"event_id": f"{family[:3]}-{number}", "source": _source_of(draw, family, carriers), "shipment_id": shipment_id}
        copies = [_event_doc(draw, family, carriers, identity)]
        # Revisions: new content under the same identity, each later than the last (or, now and then, undated).
        for step in range(draw(st.sampled_from([0, 0, 0, 1, 1, 2]))):
            copies.append(_event_doc(draw, family, carriers, identity, draw(revision_times[step])))
        if draw(rare):
            retraction = copy.deepcopy(draw(st.sampled_from(copies)))
            retraction.pop("revised_at", None)
            retraction["retracted"] = True
            revised_at = draw(retraction_times)
            if revised_at is not None:
                retraction["revised_at"] = revised_at
            copies.append(retraction)
        docs.extend(copies)
    return docs


@st.composite
def event_docs(draw: st.DrawFn) -> Doc:
    """A single valid event of any family, as a carrier would send it."""
    family = draw(st.sampled_from(sorted(FAMILIES, key=lambda f: f != "tracking")))  # shrinks to the smallest
    carriers = st.sampled_from(draw(st.lists(party_ids, min_size=1, max_size=3, unique=True)))
    identity = {"event_id": "evt-1", "source": _source_of(draw, family, carriers), "shipment_id": SHIPMENT}
    return _event_doc(draw, family, carriers, identity)


def parse_all(docs: list[Doc]) -> list[HubEvent]:
    return [HUB_EVENT.validate_python(doc) for doc in docs]


journeys: st.SearchStrategy[list[HubEvent]] = journey_docs().map(parse_all)


# --- broken input ---------------------------------------------------------------------------------------------------

json_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=20)  # orjson refuses lone surrogates
json_scalars = st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False, allow_infinity=False) | json_text
json_values = st.recursive(
    json_scalars, lambda children: st.lists(children, max_size=4) | st.dictionaries(json_text, children, max_size=4), max_leaves=8
)


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found: list[tuple[Any, ...]] = []
    children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else []
    for key, child in children:
        found.append(prefix + (key,))
        found.extend(paths(child, prefix + (key,)))
    return found


def other_type(value: Any) -> Any:
    """The same information in the wrong JSON type, as careless mappings produce it."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return str(value) if value % 2 else float(value)
    if isinstance(value, float):
        return int(value) if abs(value) < 2**63 else str(value)
    if isinstance(value, str):
        return int(value) if value.isascii() and value.isdigit() and len(value) < 18 else [value]
    if isinstance(value, list):
        return {str(i): item for i, item in enumerate(value)}
    if isinstance(value, dict):
        return list(value.values())
    return 0


def mutate(draw: st.DrawFn, doc: Any, times: int) -> None:
    """Apply `times` mutations to the JSON document in place: a key dropped, a value's type changed, a random
    value put in a place, or a random key added."""
    for _ in range(times):
        candidates = paths(doc)
        if not candidates:
            break
        path = draw(st.sampled_from(candidates))
        parent = doc
        for step in path[:-1]:
            parent = parent[step]
        key = path[-1]
        mutation = draw(st.sampled_from(["drop", "retype", "replace", "add"]))
        if mutation == "drop":
            del parent[key]
        elif mutation == "retype":
            parent[key] = other_type(parent[key])
        elif mutation == "replace":
            parent[key] = draw(json_values)
        elif isinstance(parent, dict):
            parent[draw(json_text)] = draw(json_values)


@st.composite
def mutated_events(draw: st.DrawFn) -> bytes:
    """A valid event's JSON with 1-3 mutations: a key dropped, a value's type changed, a random value put or added."""
    doc = draw(event_docs())
    mutate(draw, doc, draw(st.integers(1, 3)))
    return orjson.dumps(doc)
