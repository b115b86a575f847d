"""An insurer reads the carrier performance data set through `mmhub gateway` on the real broker and database: the
read is audited (share_audit and hub.audit) and metered (`mmhub usage`), and its epsilon is debited from its
budget; a release that repeats the last one costs nothing; a carrier reads its own cells; a shipper reads none; and
`mmhub dataset publish` sends a closed month's release to the monthly topic; and the insurer sees a claim it
covers next to its policy and the risk of the claim's lane and carrier."""

from __future__ import annotations

import asyncpg
import orjson
import pytest

from bench.datasets import performance_log
from pathlib import Path

from connectors.kafka import publish, read_jsonl
from connectors.postgres.db import server_settings
from streams.sharing import POLICY
from tests.integration.hub import caught_up, offline, read_topic, wait_for
from tests.integration import test_reader
from tests.integration.test_reader import INSURER, RAIL, SHIPPER, Running

running = test_reader.running  # the worker, sink and gateway of the reader tests, as this module's fixture

pytestmark = pytest.mark.integration
PATH = "/v1/datasets/performance"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
CLAIMED = "SHP-2026-000043"  # examples/journey-claim.jsonl: damage on leg 3, CNQZH-SGSIN, carrier.oceanline


async def _rows(hub: Running, query: str, *args: object) -> list[asyncpg.Record]:
    settings = hub.settings
    conn = await asyncpg.connect(settings.pg_dsn, server_settings=server_settings(settings, "test-datasets"))
    try:
        return list(await conn.fetch(query, *args))
    finally:
        await conn.close()


async def test_an_insurer_reads_the_data_set_audited_metered_and_debited(running: Running) -> None:
    lines = performance_log(200, seed=3) + read_jsonl(EXAMPLES / "journey-claim.jsonl")  # a claim PICC insures
    await publish(running.settings, lines)
    expected = offline(lines)
    await wait_for(lambda: caught_up(running.settings, expected), 240, "the projection", *running.procs)
    rules = POLICY.datasets

    status, first = await running.get(INSURER, PATH)
    assert status == 200, first
    assert first["purpose"] == "underwriting" and first["noise"] is True and first["cells"] and first["risk"]
    assert first["epsilon"] == {
        "budget": rules.epsilon_budget,
        "spent": rules.epsilon_per_release,
        "remaining": rules.epsilon_budget - rules.epsilon_per_release,
    }
    assert all(cell["figures"]["transit_h_p50"] is None for cell in first["cells"])  # a noisy release: no quantiles

    # debited, once, in Postgres
    budget = await _rows(running, "SELECT party, budget, spent FROM dataset_budget WHERE party = $1", INSURER)
    assert [(r["party"], r["spent"]) for r in budget] == [(INSURER, rules.epsilon_per_release)]
    debits = await _rows(running, "SELECT release_id, epsilon FROM dataset_debits WHERE party = $1", INSURER)
    assert [(r["release_id"], r["epsilon"]) for r in debits] == [(first["release_id"], rules.epsilon_per_release)]

    # audited like every share: a share_audit row and its hub.audit message, keyed by the party
    audit = await _rows(
        running,
        "SELECT share_id, kind, channel, fields FROM share_audit WHERE party = $1 AND shipment_id = 'dataset:performance'",
        INSURER,
    )
    assert [(r["kind"], r["channel"]) for r in audit] == [("dataset.performance.underwriting", "api")]
    assert len(audit[0]["fields"]) == len(first["cells"])
    messages = await read_topic(running.settings, running.settings.topics.audit, 1)
    documents = [orjson.loads(m.value) for m in messages if m.key == INSURER.encode()]
    assert [d["share_id"] for d in documents] == [audit[0]["share_id"]]

    # metered: `mmhub usage` counts it
    used = running.cli("usage", "--party", INSURER, "--json")
    assert used.returncode == 0, used.stderr.decode()
    rows = orjson.loads(used.stdout)["rows"]
    assert [(r["shipment_id"], r["kind"], r["shares"]) for r in rows] == [
        ("dataset:performance", "dataset.performance.underwriting", 1)
    ]

    # nothing changed since: the release repeats the figures it published, and spends nothing more
    status, again = await running.get(INSURER, PATH)
    assert status == 200 and again["epsilon"]["spent"] == rules.epsilon_per_release and again["epsilon_spent"] == 0
    assert all(cell["stale"] for cell in again["cells"])
    assert [c["figures"] for c in again["cells"]] == [c["figures"] for c in first["cells"]]

    # a carrier reads its own cells, exact and free; a shipper reads no data set
    status, own = await running.get(RAIL, PATH)
    assert status == 200 and own["cells"] and {c["carrier"] for c in own["cells"]} == {RAIL}
    assert own["epsilon_spent"] == 0 and own["noise"] is False
    status, refused = await running.get(SHIPPER, PATH)
    assert status == 403 and refused["error"] == "not_a_dataset_reader"

    # the monthly topic: a closed month's k/m release, keyed by month, audited as the hub's own publication
    published = running.cli("dataset", "publish", "--month", "2026-02")
    assert published.returncode == 0, published.stderr.decode()
    (message,) = await read_topic(running.settings, running.settings.topics.datasets_performance, 1)
    monthly = orjson.loads(message.value)
    assert message.key == b"2026-02" and monthly["month"] == "2026-02" and monthly["noise"] is False
    assert monthly["cells"] and all(
        c["month"] == "2026-02" and c["figures"]["shipments"] >= rules.k for c in monthly["cells"]
    )
    audited = await _rows(
        running,
        "SELECT kind, channel FROM share_audit WHERE party = 'hub.datasets' AND shipment_id = 'dataset:performance'",
    )
    assert [(r["kind"], r["channel"]) for r in audited] == [("dataset.performance.monthly", "kafka")]

    # a claim's record next to the policy: the claim PICC covers, with the risk of its lane and carrier as the last
    # underwriting release published it (no new draw, no epsilon), audited as a share of that shipment
    status, risk = await running.get(INSURER, f"{PATH}/risk?shipment={CLAIMED}")
    assert status == 200, risk
    assert risk["policy"]["policy_number"] == "PICC-CG-2026-55821" and risk["policy"]["insurer"] == INSURER
    (claim,) = risk["claims"]
    assert (claim["kind"], claim["leg"], claim["lane"], claim["carrier"]) == (
        "damage", 3, "CNQZH-SGSIN", "carrier.oceanline"
    )
    lane_risk = [r for r in first["risk"] if (r["lane"], r["carrier"]) == ("CNQZH-SGSIN", "carrier.oceanline")]
    assert lane_risk and claim["risk"] == lane_risk[0]
    (spent,) = await _rows(running, "SELECT spent FROM dataset_budget WHERE party = $1", INSURER)
    assert spent["spent"] == rules.epsilon_per_release  # still one release's worth
    risk_audit = await _rows(running, "SELECT kind, fields FROM share_audit WHERE party = $1 AND shipment_id = $2",
                             INSURER, CLAIMED)  # fmt: skip
    assert [(r["kind"], list(r["fields"])) for r in risk_audit] == [
        ("dataset.performance.risk", [claim["claim_id"]])
    ]
    status, refused = await running.get(SHIPPER, f"{PATH}/risk?shipment={CLAIMED}")
    assert status == 403 and refused["error"] == "not_an_underwriter"
    status, missing = await running.get(INSURER, f"{PATH}/risk?shipment=SHP-2026-999999")
    assert status == 404 and missing["error"] == "not_found"
