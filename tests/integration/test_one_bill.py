"""One booking, one invoice, one policy, one responsible operator: the settlement and claims streams on the
real broker, and their agreement with the Postgres projection."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from pathlib import Path
from typing import AsyncIterator, Awaitable, Callable

import orjson
import pytest

from connectors.kafka import publish, read_jsonl, scramble
from connectors.postgres.migrate import migrate
from hubconf.settings import Settings
from tests.integration.hub import (
    HubProcess,
    caught_up,
    drop_internal_topics,
    offline,
    projected_record,
    read_topic,
    wait_for,
)

pytestmark = pytest.mark.integration

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
CLAIM_JOURNEY = "SHP-2026-000043"


@pytest.fixture
async def running_hub(
    hub_settings: Callable[..., Awaitable[Settings]], tmp_path: Path
) -> AsyncIterator[tuple[Settings, HubProcess, HubProcess]]:
    settings = await hub_settings()
    await migrate(settings.pg_dsn, settings.pg_schema)
    # the presumed-loss clock ticks every second here (every 10 minutes by default)
    clock = {"MMHUB_CLOCK_INTERVAL_S": "1"}
    worker = HubProcess("worker", settings, tmp_path / "worker-data", tmp_path / "worker.log", clock)
    sink = HubProcess("sink", settings, tmp_path / "sink-data", tmp_path / "sink.log")
    worker.start()
    sink.start()
    yield settings, worker, sink
    worker.stop()
    sink.stop()
    await drop_internal_topics(settings)


def _latest_by_id(messages: list, kind: str, id_field: str) -> dict[str, dict]:
    """The last message for each document id: the stream's current word on each invoice, note, payout or claim."""
    latest: dict[str, dict] = {}
    for message in messages:
        body = orjson.loads(message.value)
        if body["kind"] == kind:
            latest[str(body[kind][id_field])] = body[kind]
    return latest


async def test_damaged_container_and_re_rated_road_leg_reach_the_claims_and_settlement_streams(running_hub) -> None:
    settings, worker, sink = running_hub
    lines = read_jsonl(EXAMPLES / "journey-claim.jsonl")
    expected = offline(lines)[CLAIM_JOURNEY]
    await publish(settings, scramble(lines, duplicates=20, seed=9))  # the damage is among the duplicates too

    await wait_for(lambda: caught_up(settings, {CLAIM_JOURNEY: expected}), 120, "the projection", worker, sink)
    record = await projected_record(settings, CLAIM_JOURNEY)
    assert record == expected

    # exactly one claim, however often the damage was reported, naming the sea carrier and Hague-Visby
    claim_messages = await read_topic(settings, settings.topics.claims, expected=1)
    assert {m.key for m in claim_messages} == {CLAIM_JOURNEY.encode()}
    claims = _latest_by_id(claim_messages, "claim", "claim_id")
    assert list(claims) == [f"CLM-{CLAIM_JOURNEY}-damage-L3"]
    claim = claims[f"CLM-{CLAIM_JOURNEY}-damage-L3"]
    assert (claim["leg"], claim["custody_carrier"], claim["liable_carrier"]) == (3, "carrier.oceanline", "carrier.oceanline")
    assert claim["liability"]["regime"] == "Hague-Visby Rules"
    # 3 damaged pallets of 1,260 kg: max(3 × 666.67, 1,260 × 2) = 2,520.00 SDR, at 1 SDR = 1.3642 USD
    assert Decimal(claim["liability"]["sdr"]) == Decimal("2520.00")
    assert claim["liability"]["converted"] == {"amount": "3437.78", "currency": "USD"}
    assert sorted(claim["evidence"]) == ["carrier.oceanline/t3-dmg", "carrier.oceanline/t3-dmg-survey"]
    assert claim == record.claims[0].model_dump(mode="json")

    # the road leg re-rated after the invoice went out: revision 2 and a credit note of exactly the difference
    settlement_messages = await read_topic(settings, settings.topics.settlement, expected=1)
    assert {m.key for m in settlement_messages} == {CLAIM_JOURNEY.encode()}
    invoices = _latest_by_id(settlement_messages, "invoice", "revision")
    notes = _latest_by_id(settlement_messages, "note", "note_id")
    payouts = _latest_by_id(settlement_messages, "payout", "payout_id")
    assert sorted(invoices) == ["1", "2"]
    assert {invoice["invoice_id"] for invoice in invoices.values()} == {f"INV-{CLAIM_JOURNEY}"}  # one invoice
    assert [(n["kind"], n["amount"]) for n in notes.values()] == [("credit", {"amount": "108.00", "currency": "CNY"})]
    assert sorted(p["carrier"] for p in payouts.values()) == [
        "carrier.cr-rail", "carrier.my-haulage", "carrier.oceanline", "carrier.sc-road"
    ]

    # the streams say what the projection says, and the ledger balances in every currency
    assert record.settlement is not None
    assert [i.model_dump(mode="json") for i in record.settlement.invoices] == [invoices["1"], invoices["2"]]
    assert {p.payout_id: p.model_dump(mode="json") for p in record.settlement.payouts} == payouts
    totals: dict[str, list[Decimal]] = defaultdict(lambda: [Decimal(0), Decimal(0)])
    for entry in record.settlement.ledger:
        totals[entry.currency][0] += entry.debit
        totals[entry.currency][1] += entry.credit
    assert totals and all(debit == credit for debit, credit in totals.values()), totals
    assert record.responsible_operator == "mto.westcorridor"
    assert worker.alive and sink.alive


async def test_cargo_not_delivered_90_days_after_the_agreed_date_opens_a_presumed_loss_claim(running_hub) -> None:
    settings, worker, sink = running_hub
    shipment = "SHP-2026-LOST01"
    # the example booking, agreed for delivery on 2026-03-13: 90 days later is long past; nothing ever arrives
    booking = orjson.loads(read_jsonl(EXAMPLES / "journey.jsonl")[0])
    assert booking["event_type"] == "booking"
    booking["shipment_id"] = shipment
    await publish(settings, [orjson.dumps(booking)])

    async def presumed_lost() -> bool:
        try:
            record = await projected_record(settings, shipment)
        except AssertionError:
            return False
        return any(claim.kind == "presumed_loss" for claim in record.claims)

    await wait_for(presumed_lost, 120, "the presumed-loss claim", worker, sink)
    record = await projected_record(settings, shipment)
    [claim] = record.claims
    assert claim.claim_id == f"CLM-{shipment}-presumed_loss-NL"
    assert not claim.localised and claim.liable_carrier is None
    assert claim.evidence == [f"mmhub.clock/presumed-loss-{shipment}"]
    # journey with a sea leg, not localised: max(20 packages x 666.67, 8,400 kg x 2) = 16,800.00 SDR
    assert claim.liability is not None and claim.liability.sdr == Decimal("16800.00")
    claims = _latest_by_id(await read_topic(settings, settings.topics.claims, expected=1), "claim", "claim_id")
    assert list(claims) == [claim.claim_id]
