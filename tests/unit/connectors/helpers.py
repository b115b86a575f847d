"""What the carrier-parser tests share: where the samples are, checks on a parse's results, builders of the expected
events, and the fuzz strategies and settings that feed the parsers broken input."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TypeVar

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from schemas.events import HUB_EVENT, CarrierReference, HubEvent, TrackingEvent, TrackingPayload
from schemas.rejection import Rejection

from ..strategies import paths

Doc = dict[str, Any]
Result = TypeVar("Result")

# Property tests: no input may make a parse raise or hang (a deadline per example), however slow hypothesis finds it.
FUZZ = settings(
    max_examples=300,
    deadline=timedelta(seconds=2),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def untimed_fuzz(max_examples: int) -> settings:
    """Property-test settings without the per-example deadline, as the DCSA and ONE Record suites run them."""
    return settings(max_examples=max_examples, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def samples_of(connector: str) -> Path:
    """The folder of a connector's sample payloads, e.g. connectors/dcsa/samples."""
    return Path(__file__).resolve().parents[3] / "connectors" / connector / "samples"


def utc(text: str) -> datetime:
    """An ISO 8601 time without offset, read as UTC."""
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


# --- results ---------------------------------------------------------------------------------------------------


def no_rejections(results: list[HubEvent | Rejection]) -> list[HubEvent]:
    """The events, after asserting that nothing was rejected."""
    assert not [r for r in results if isinstance(r, Rejection)], results
    return [r for r in results if not isinstance(r, Rejection)]


def single(results: list[Result]) -> Result:
    assert len(results) == 1, results
    return results[0]


def canonical(result: Any) -> Doc | Rejection:
    """A result as the hub would see it: the event's full canonical JSON, or the rejection itself."""
    return result if isinstance(result, Rejection) else HUB_EVENT.dump_python(result, mode="json")


def well_formed_events(results: object) -> list[TrackingEvent]:
    """Asserts that `results` is a list of tracking events and rejections, every rejection with a code and a reason;
    the events, for the format's own checks."""
    assert isinstance(results, list)
    for result in results:
        assert isinstance(result, (TrackingEvent, Rejection)), result
        if isinstance(result, Rejection):
            assert result.code and result.reason
    return [result for result in results if isinstance(result, TrackingEvent)]


# --- expected events -------------------------------------------------------------------------------------------


def tracking_event(
    event_id: str,
    references: list[CarrierReference],
    occurred: str,
    recorded: str,
    status: str,
    raw_code: str,
    code_list: str,
    *,
    source: str,
    classifier: str = "ACT",
    revised: str | None = None,
    retracted: bool = False,
    **payload: Any,
) -> TrackingEvent:
    """The TrackingEvent a parser should give; times without offset are UTC, `payload` holds the optional fields."""
    return TrackingEvent.model_validate(
        {
            "event_type": "tracking",
            "event_id": event_id,
            "source": source,
            "references": [reference.model_dump() for reference in references],
            "occurred_at": utc(occurred),
            "recorded_at": utc(recorded),
            "classifier": classifier,
            "revised_at": None if revised is None else utc(revised),
            "retracted": retracted,
            "payload": TrackingPayload.model_validate(
                {"status": status, "raw_code": raw_code, "code_list": code_list, **payload}
            ),
        }
    )


def canonical_tracking(
    event_id: str,
    *,
    source: str,
    code_list: str,
    occurred: str,
    recorded: str,
    status: str,
    raw_code: str,
    references: list[tuple[str, str]],
    classifier: str = "ACT",
    location: str | None = None,
    container: str | None = None,
    transport_means: str | None = None,
    remarks: str | None = None,
    revised: str | None = None,
    retracted: bool = False,
    site: str | None = None,
    packages: int | None = None,
    ssccs: list[str] | None = None,
) -> Doc:
    """The full canonical JSON of a tracking event, every default spelled out (`site`, `packages` and `ssccs` only
    when there is one, as the payload writes them)."""
    document: Doc = {
        "event_id": event_id,
        "source": source,
        "shipment_id": None,
        "references": [{"kind": kind, "value": value} for kind, value in references],
        "occurred_at": occurred,
        "recorded_at": recorded,
        "classifier": classifier,
        "revised_at": revised,
        "retracted": retracted,
        "event_type": "tracking",
        "payload": {
            "status": status,
            "raw_code": raw_code,
            "code_list": code_list,
            "leg": None,
            "location": location,
            "container": container,
            "transport_means": transport_means,
            "remarks": remarks,
            "affected_packages": None,
            "affected_weight_kg": None,
        },
    }
    for key, value in (("site", site), ("packages", packages), ("ssccs", ssccs)):
        if value is not None:
            document["payload"][key] = value
    return document


# --- broken input ----------------------------------------------------------------------------------------------


def json_values_with(words: list[str], keys: st.SearchStrategy[str] = st.text(max_size=12)) -> st.SearchStrategy[Any]:
    """Any JSON (big integers included) whose strings are often the format's own `words`, and whose objects have
    `keys`."""
    leaves = (
        st.none()
        | st.booleans()
        | st.integers(min_value=-(10**40), max_value=10**40)
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(max_size=20)
        | st.sampled_from(words)
    )
    return st.recursive(
        leaves,
        lambda children: st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=4),
        max_leaves=16,
    )


@st.composite
def mutated_json_samples(draw: st.DrawFn, folder: Path, names: list[str], values: st.SearchStrategy[Any]) -> bytes:
    """A valid JSON sample with a few values (or the whole document) replaced by `values` or removed, re-encoded
    (big integers included)."""
    document = json.loads((folder / draw(st.sampled_from(names))).read_text())
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        path = draw(st.sampled_from([(), *paths(document)]))
        if not path:
            document = draw(values)
            continue
        parent = document
        for step in path[:-1]:
            parent = parent[step]
        if isinstance(parent, dict) and draw(st.booleans()):
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(values)
    return json.dumps(document).encode()


@st.composite
def byte_mutated_samples(draw: st.DrawFn, folder: Path, names: list[str]) -> bytes:
    """A sample with 1-6 of its bytes overwritten."""
    raw = bytearray((folder / draw(st.sampled_from(names))).read_bytes())
    for _ in range(draw(st.integers(min_value=1, max_value=6))):
        position = draw(st.integers(min_value=0, max_value=len(raw) - 1))
        raw[position] = draw(st.integers(min_value=0, max_value=255))
    return bytes(raw)
