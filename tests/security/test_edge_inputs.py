"""Edge review (ingestion): inputs a carrier can sign that crashed a parser or `verify` instead of being refused with
a reason, or that cost the hub minutes of CPU for a few bytes. No Kafka or Postgres: the parsers, the schema and the
gateway against the unit tests' fake publisher and in-memory receipts."""

from __future__ import annotations

import base64
from datetime import datetime, timezone
from pathlib import Path

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.carriers import Carrier, CarrierRegistry, new_key, signed_bytes, verify
from connectors.epcis.event_hash import _vocabulary_expansions, _with_vocabulary
from connectors.epcis.parse import parse as parse_epcis
from connectors.formats import parser
from hubconf.topics import DLQ_CODE
from schemas.events import HUB_EVENT
from schemas.rejection import Rejection
from streams.codec import decode_event
from tests.security.cpu import least_cpu
from tests.unit.builders import Doc, at, booking_doc, envelope, policy_doc, record_of, tracking_doc
from tests.unit.connectors.test_gateway import TOPICS, running_hub

REPO = Path(__file__).resolve().parents[2]
UBL_SAMPLE = (REPO / "connectors" / "ubl" / "samples" / "rail-leg2-matched.xml").read_bytes()
RAIL = "carrier.cr-rail"


# --- UBL: an order line that str.isdigit() accepts but int() does not -------------------------------------------


def _with_order_line(line: bytes) -> bytes:
    return UBL_SAMPLE.replace(b"<cbc:LineID>2</cbc:LineID>", b"<cbc:LineID>" + line + b"</cbc:LineID>")


def test_a_ubl_order_line_in_superscript_or_thousands_of_digits_is_refused_never_raised() -> None:
    for line in ("²".encode(), b"2" * 5000):
        (result,) = parser("ubl")(_with_order_line(line), RAIL)
        assert isinstance(result, Rejection) and result.code == "invalid_invoice", result


async def test_the_gateway_dead_letters_such_an_invoice_with_its_bytes_instead_of_answering_500() -> None:
    body = _with_order_line("²".encode())
    async with running_hub() as hub:
        status, answer = await hub.post("ubl", body)
        letters = hub.publisher.on(TOPICS.dlq)
    assert (status, answer.get("error")) == (422, "nothing_accepted"), answer
    assert [(m.value, dict(m.headers)[DLQ_CODE]) for m in letters] == [(body, b"invalid_invoice")]


# --- verify: a signed time past year 9999 -----------------------------------------------------------------------


def test_verify_refuses_a_signing_time_past_year_9999_and_never_raises() -> None:
    since = datetime(2026, 1, 1, tzinfo=timezone.utc)
    signing, entry = new_key(RAIL, "k1", "ed25519", since)
    registry = CarrierRegistry(carriers=[Carrier(party_id=RAIL, name="Rail", keys=[entry])])
    stamp = 999_999_999_999  # 12 digits, as parse_signature allows
    raw = Ed25519PrivateKey.from_private_bytes(signing.material).sign(signed_bytes("canonical", stamp, b"{}"))
    header = f"t={stamp},v1={base64.b64encode(raw).decode()}"
    refusal = verify(registry, RAIL, "k1", header, b"{}", datetime(2026, 12, 5, tzinfo=timezone.utc), "canonical")
    assert refusal is not None and refusal.code == "stale_signature", refusal


# --- decimals: a few bytes of exponent or digits that cost the merge minutes ------------------------------------


def test_a_ubl_vat_rate_with_a_huge_exponent_is_refused_at_the_edge() -> None:
    # streams/invoices.py checks each VAT breakdown with Fraction(percent): 9E-9999999 costs it 10 s of CPU on every
    # fold of the shipment (measured), 9E-99999999 minutes, on the worker's one event loop.
    body = UBL_SAMPLE.replace(b"<cbc:Percent>9</cbc:Percent>", b"<cbc:Percent>9E-9999999</cbc:Percent>")
    results = parser("ubl")(body, RAIL)
    assert [type(r) for r in results] == [Rejection], results


def test_a_canonical_decimal_with_a_huge_exponent_or_too_many_digits_is_refused() -> None:
    line = next(
        orjson.loads(line)
        for line in (REPO / "examples" / "journey.jsonl").read_bytes().splitlines()
        if b'"event_type":"handover"' in line
    )
    for value in ("8400E-99999999", "0." + "1" * 100_000):
        document = {**line, "payload": {**line["payload"], "gross_weight_kg": value}}
        decoded = decode_event(orjson.dumps(document))
        assert isinstance(decoded, Rejection) and "gross_weight_kg" in decoded.reason, str(decoded)[:200]
    # an ordinary weight still validates
    assert not isinstance(decode_event(orjson.dumps(line)), Rejection)
    assert HUB_EVENT.validate_python({**line, "payload": {**line["payload"], "gross_weight_kg": "0.001"}})


# --- EPCIS: the event hash's vocabulary lookup is quadratic in an event's strings -------------------------------


def _epcis_with_strings(count: int) -> bytes:
    event = {
        "type": "ObjectEvent",
        "eventTime": "2026-03-01T08:00:00Z",
        "eventTimeZoneOffset": "+00:00",
        "action": "OBSERVE",
        "bizStep": "departing",
        "epcList": [f"https://ref.gs1.org/cbv/x{i}" for i in range(count)],
        "bizTransactionList": [{"type": "bol", "bizTransaction": "urn:epcglobal:cbv:bt:0614141000005:BL123"}],
    }
    return orjson.dumps({"type": "EPCISDocument", "schemaVersion": "2.0", "epcisBody": {"eventList": [event]}})


def test_an_epcis_event_with_many_vocabulary_uris_is_hashed_in_linear_time() -> None:
    """8,000 strings (255 KB) took 11.7 s when every string was checked against every URI, a 4 MiB document about an
    hour. Measured as a ratio in the same run, not against a clock: eight times the strings must cost about eight
    times as much (a quadratic lookup: 64), the fastest of three passes each."""

    def cpu(strings: int) -> float:
        body = _epcis_with_strings(strings)
        took, parsed = least_cpu(lambda: parse_epcis(body, RAIL))
        assert len(parsed) == 1
        return took

    small, large = cpu(1000), cpu(8000)
    assert large / small < 24, f"1,000 strings {small:.3f} s, 8,000 {large:.3f} s: not linear"


def _old_with_vocabulary(value: object, expanded: set[str]) -> object:
    if isinstance(value, dict):
        return {key: (item if key == "type" and isinstance(item, str) and item.endswith("Event") else
                      _old_with_vocabulary(item, expanded)) for key, item in value.items()}
    if isinstance(value, list):
        return [_old_with_vocabulary(item, expanded) for item in value]
    if isinstance(value, str):
        matches = [uri for uri in expanded if uri.endswith(("-" + value, "/" + value))]
        return matches[0] if len(matches) == 1 else value
    return value


WORDS = st.sampled_from(["departing", "in_transit", "bol", "Disp-damaged", "x-y", "a/b", "", "-", "/", "BizStep-departing"])
TEXTS = WORDS | st.builds(lambda b, w: b + w, st.sampled_from(["https://ref.gs1.org/cbv/", "https://ref.gs1.org/voc/", "urn:x:"]), WORDS)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["bizStep", "disposition", "epcList", "readPoint", "type", "x"]),
                       TEXTS | st.lists(TEXTS, max_size=4) | st.dictionaries(st.sampled_from(["id", "type"]), TEXTS)))
def test_the_vocabulary_lookup_gives_what_it_gave_before(event: dict[str, object]) -> None:
    expanded = _vocabulary_expansions(event)
    assert _with_vocabulary(event, expanded) == _old_with_vocabulary(event, expanded)


# --- a weight or a rate far beyond any shipment: the merge raised on it -------------------------------------------


def _damage(weight: str) -> Doc:
    doc = tracking_doc("damaged", leg=3, event_id="dmg-3", location="SGSIN", occurred=80)
    doc["payload"]["affected_weight_kg"] = weight
    return doc


def _rate(rate: str, base: str = "XDR", quote: str = "USD") -> Doc:
    payload = {"base": base, "quote": quote, "rate": rate, "rate_source": "IMF", "as_of": at(1)}
    return envelope("rate", payload, event_id=f"rate-{base}-{rate}", source="imf.rates")


def test_a_damage_report_with_an_absurd_weight_is_refused_by_the_schema_not_raised_by_the_merge() -> None:
    """A leg's carrier signed a damage report of 9.99E79 kg, within the decimal rule: the claim's liability limit
    (kg × SDR/kg, quantized to the cent) passed the fold's 34-digit precision and the shipment's merge raised, so
    every event of the shipment in the batch was dead-lettered as a hub error."""
    for weight in ("9" * 40 + "E40", "1000000000.001"):
        found = decode_event(orjson.dumps(_damage(weight)))
        assert isinstance(found, Rejection) and "affected_weight_kg" in found.reason, found
    for rate in ("9" * 40 + "E40", "1E-13"):
        found = decode_event(orjson.dumps(_rate(rate)))
        assert isinstance(found, Rejection) and "rate" in found.reason, found


@settings(max_examples=60, deadline=None)
@given(
    weight=st.sampled_from(["0", "0.001", "1200.5", "999999999.999", "1E9", "1E-40"]),
    rate=st.sampled_from(["1E-12", "0.000018", "1.33", "1E12"]),
    inverse=st.booleans(),
)
def test_the_largest_weights_and_rates_the_schema_takes_give_a_liability_limit(weight: str, rate: str, inverse: bool) -> None:
    base, quote = ("USD", "XDR") if inverse else ("XDR", "USD")
    record = record_of(booking_doc(), policy_doc(), _damage(weight), _rate(rate, base, quote))
    (claim,) = [c for c in record.claims if c.kind == "damage"]
    assert claim.liability is not None and claim.liability.converted is not None
    assert claim.liability.converted.currency == "USD" and claim.liability.sdr >= 0
