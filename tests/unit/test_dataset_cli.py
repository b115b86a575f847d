"""`mmhub dataset performance --json` over a generated log of 2,000 shipments: it releases cells, leaves out every
cell under k shipments or m shippers (key and all), and with --k above the data size releases nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from bench.datasets import performance_log
from connectors.parties import load_parties
from mmhub.cli import main
from streams.codec import decode_event
from streams.datasets import cells
from streams.merge import fold
from streams.sharing import POLICY

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("dataset") / "performance.jsonl"
    path.write_bytes(b"\n".join(performance_log(2000, seed=7)) + b"\n")
    return path


def _run(capsysbinary: pytest.CaptureFixture[bytes], *args: str) -> dict[str, Any]:
    assert main(["dataset", "performance", "--json", *args]) == 0
    out, _ = capsysbinary.readouterr()
    document: dict[str, Any] = orjson.loads(out)
    return document


def test_the_release_keeps_exactly_the_cells_with_k_shipments_and_m_shippers(
    capsysbinary: pytest.CaptureFixture[bytes], log: Path
) -> None:
    document = _run(capsysbinary, str(log))
    authority = load_parties(REPO / "examples" / "parties.json").authority()
    records = fold((decode_event(line) for line in log.read_bytes().splitlines()), authority)  # type: ignore[misc]
    assert len(records) == 2000
    computed = cells(records.values())
    k, m = POLICY.datasets.k, POLICY.datasets.m
    keep = {
        (c.key.lane, c.key.mode, c.key.carrier, c.key.month)
        for c in computed.values()
        if len(c.shipments) >= k and c.shippers >= m
    }
    under = {(c.key.lane, c.key.mode, c.key.carrier, c.key.month) for c in computed.values()} - keep
    released = {(c["lane"], c["mode"], c["carrier"], c["month"]) for c in document["cells"]}
    assert (document["k"], document["m"]) == (k, m)
    assert released == keep and len(released) >= 20  # it releases cells
    assert (
        under and not (under & released) and document["suppressed"] == len(under)
    )  # and suppresses every one under k/m
    assert all(c["figures"]["shipments"] >= k for c in document["cells"])
    assert any(c["figures"]["co2e_wtw_g_per_tkm"] for c in document["cells"])  # the emissions intensity is a figure
    lane = _run(capsysbinary, "--lane", "CNQZH-SGSIN", "--month", "2026-02", str(log))
    assert {c["lane"] for c in lane["cells"]} == {"CNQZH-SGSIN"} and {c["month"] for c in lane["cells"]} == {"2026-02"}


def test_a_k_above_the_data_size_releases_nothing(capsysbinary: pytest.CaptureFixture[bytes], log: Path) -> None:
    document = _run(capsysbinary, "--k", "2001", str(log))
    assert document["cells"] == [] and document["k"] == 2001 and document["suppressed"] > 0
