"""require_verified_parties on the real broker and Postgres (issue 16): a worker whose registry sets the option for the
MTO holds the trade journey's booking while its carriers are unverified, dead-letters the carrier's self-verification
with the bytes it came in, sends no release; the trusted verifier's findings then admit the booking, the release goes
out once, and a payout to the carrier whose verification lapsed is held with its reason: Postgres equals the fold."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from connectors.kafka import publish, scramble
from hubconf import topics
from schemas.record import ShipmentRecord
from streams.merge import fold
from tests.integration.hub import HubProcess, caught_up, projected_record, read_all, read_topic, wait_for
from tests.unit.streams.test_trade import SHIPMENT, STRICT, paid_in_full, parsed, trade_docs, verification

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
CARRIER = "carrier.oceanline"


def _strict_parties(tmp_path: Path) -> Path:
    """examples/parties.json with the MTO's require_verified_parties on."""
    registry = orjson.loads((REPO / "examples" / "parties.json").read_bytes())
    [mto] = [p for p in registry["parties"] if p["party_id"] == "mto.westcorridor"]
    mto["require_verified_parties"] = True
    path = tmp_path / "parties-strict.json"
    path.write_bytes(orjson.dumps(registry))
    return path


def _expected(docs: list[dict]) -> dict[str, ShipmentRecord]:  # type: ignore[type-arg]
    return fold(parsed(docs), STRICT)


async def test_unverified_carriers_hold_the_booking_and_a_self_verification_is_dead_lettered(hub, tmp_path: Path) -> None:
    settings, _, sink = hub
    worker = HubProcess(
        "worker", settings, tmp_path / "strict-worker", tmp_path / "strict-worker.log",
        extra_env={"MMHUB_PARTIES": str(_strict_parties(tmp_path))},
    )
    forged = [verification(CARRIER, "self-verify", source=CARRIER), verification("carrier.cr-rail", "vouch", source=CARRIER)]
    docs = paid_in_full(trade_docs()) + forged
    lines = [orjson.dumps(doc) for doc in docs]
    worker.start()
    sink.start()
    try:
        # 1. the journey paid in full, with the carrier vouching for itself and its partner: the booking waits
        await publish(settings, scramble(lines, duplicates=8, seed=23))
        expected = _expected(docs)
        await wait_for(lambda: caught_up(settings, expected), 120, "the projection", worker, sink)
        held = await projected_record(settings, SHIPMENT)
        assert held == expected[SHIPMENT]
        assert held.booking is None and held.status == "awaiting_booking" and held.release is None
        [waiting] = [r for r in held.rejected if r.event == "mto.westcorridor/bkg-1"]
        assert waiting.kind == "conflict" and "carrier.oceanline (unverified)" in waiting.reason
        dead = await read_topic(settings, settings.topics.dlq, expected=2, timeout=60)
        assert sorted(m.value for m in dead) == sorted(orjson.dumps(doc) for doc in forged)
        assert {dict(m.headers)[topics.DLQ_CODE].decode() for m in dead} == {"not_entitled"}
        assert all(b"not a verifier the registry trusts" in dict(m.headers)[topics.DLQ_REASON] for m in dead)
        # the version above was committed with whatever it sent: reading to the end offsets finds no release
        assert await read_all(settings, settings.topics.release) == []

        # 2. the trusted verifier's findings, made before the booking: it counts, the release goes out once; the ocean
        #    carrier's finding lapsed before the payment, so its payout is held with the reason
        trusted = [
            verification("carrier.cr-rail", "idv-rail"),
            verification(CARRIER, "idv-ocean", valid_until="2026-04-10T00:00:00Z"),
        ]
        docs += trusted
        await publish(settings, [orjson.dumps(doc) for doc in trusted])
        expected = _expected(docs)
        await wait_for(lambda: caught_up(settings, expected), 120, "the projection", worker, sink)
        booked = await projected_record(settings, SHIPMENT)
        assert booked == expected[SHIPMENT]
        assert booked.booking is not None and booked.release is not None and booked.release.status == "issued"
        assert booked.settlement is not None and booked.settlement.status == "paid"
        [payout] = [p for p in booked.settlement.payouts if p.carrier == CARRIER]
        assert payout.status == "held"
        assert payout.held_reason == "mto.westcorridor pays only verified parties; not verified: carrier.oceanline (expired)"
        releases = await read_all(settings, settings.topics.release)
        assert [orjson.loads(m.value)["release"]["release_id"] for m in releases] == [f"{SHIPMENT}/release"]
        assert worker.alive, worker.tail()
    finally:
        worker.stop()
