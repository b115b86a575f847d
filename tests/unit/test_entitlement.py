"""`mmhub publish` says which lines the hub's merge will refuse as not entitled, before sending them: the log folded
offline through the merge (mmhub.entitlement), so the rule is the stream's."""

from __future__ import annotations

from datetime import datetime, timezone

import orjson

from connectors.kafka import read_jsonl
from connectors.parties import load_parties
from hubconf.settings import REPO, Settings
from mmhub.dataset import checked
from mmhub.entitlement import refused_by_the_hub, refused_lines
from schemas.rejection import Rejection

JOURNEY = REPO / "examples" / "journey.jsonl"
# the sea carrier reports a departure on the rail leg, which carrier.cr-rail carries
FORGED = orjson.dumps({
    "event_id": "forged-dep", "source": "carrier.oceanline", "event_type": "tracking", "shipment_id": "SHP-2026-000042",
    "occurred_at": "2026-03-03T14:00:00Z", "recorded_at": "2026-03-03T14:03:00Z", "classifier": "ACT",
    "payload": {"status": "departed", "raw_code": "DEPART", "code_list": "oceanline", "leg": 2,
                "container": "CSQU3054383", "location": "CNCKG"},
})  # fmt: skip
REASON = "carrier.oceanline/forged-dep: leg 2 is carried by carrier.cr-rail, not carrier.oceanline"


def _refused(lines: list[bytes]) -> list[tuple[int, Rejection]]:
    settings = Settings.from_env()
    authority = load_parties(settings.parties_path).authority()
    return refused_lines(checked(lines, settings, datetime.now(timezone.utc)), authority)


def test_a_carrier_reporting_on_another_carriers_leg_is_refused_on_its_line() -> None:
    genuine = read_jsonl(JOURNEY)
    assert _refused(genuine) == []
    assert _refused([*genuine[:20], FORGED, *genuine[20:]]) == [(21, Rejection("not_entitled", REASON))]


def test_a_stranger_booking_an_mtos_shipment_is_refused() -> None:
    booking = orjson.loads(read_jsonl(JOURNEY)[0])
    stolen = orjson.dumps({**booking, "event_id": "bkg-stolen", "source": "carrier.oceanline"})
    [(line, refusal)] = _refused([stolen])
    assert line == 1 and refusal.code == "not_entitled"
    assert refusal.reason.startswith("carrier.oceanline/bkg-stolen: ")


def test_without_the_booking_in_the_log_only_the_hub_can_tell() -> None:
    """The log alone does not say who carries leg 2: the record the hub projects does (refused_by_the_hub)."""
    assert _refused([FORGED]) == []
    projected = [{"shipment_id": "SHP-2026-000042", "rejected": [
        {"event": "carrier.oceanline/forged-dep", "reason": REASON.split(": ", 1)[1], "kind": "not_entitled"},
        {"event": "carrier.cr-rail/other", "reason": "not this file's", "kind": "not_entitled"},
        {"event": "mto.westcorridor/x", "reason": "a conflict a later event may resolve", "kind": "conflict"},
    ]}]  # fmt: skip
    keys = {"carrier.oceanline/forged-dep", "mto.westcorridor/x"}
    assert refused_by_the_hub(projected, keys) == {"carrier.oceanline/forged-dep": REASON.split(": ", 1)[1]}
