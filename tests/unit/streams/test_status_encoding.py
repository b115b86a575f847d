"""The status message reuses the JSON of the parts a version keeps from the one before, and its bytes stay exactly
pydantic's: every version, whatever the journey, order, batches and duplicates, and every kind of value a field
holds."""

from __future__ import annotations

from copy import deepcopy
from datetime import datetime, timezone
from decimal import Decimal
from typing import Annotated

import orjson
import pydantic_core
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import Field, field_serializer

from schemas.base import MAX_DECIMAL_DIGITS, MAX_DECIMAL_EXPONENT, Frozen, IsoDate, Money, StrictDecimal, UtcDatetime
from schemas.events import HUB_EVENT, HubEvent, LeftOutWhenEmpty, ModeCode
from schemas.identifiers import TransportMode
from schemas.record import ShipmentRecord
from streams.authority import Authority
from streams.codec import encode_status, record_json
from streams.copies import Copy, canonical_json
from streams.merge import ShipmentState, absorb
from streams.projection import advance

from ..builders import AUTHORITY, SHIPMENT, example_journey_docs, hub_event
from ..strategies import journeys
from .test_projection import EXAMPLE, PROPERTY, arrivals, emissions_reports
from .test_trade import AUTHORITY as TRADE_AUTHORITY
from .test_trade import carriers_verified, paid_in_full, parsed, trade_docs, verification

_kept = Frozen.__dict__["_json"].__get__  # what a part keeps of its JSON (None until written)


def written_the_old_way(record: ShipmentRecord, applied: list[Copy]) -> bytes:
    """The status message as the codec wrote it before parts kept their JSON: pydantic's bytes of the whole record,
    and each copy's canonical JSON made again."""
    copies = b",".join(b'{"fingerprint":"' + c.fingerprint.encode() + b'","event":' + canonical_json(c.event) + b"}" for c in applied)
    return b'{"record":' + record.__pydantic_serializer__.to_json(record) + b',"applied":[' + copies + b"]}"


def assert_written_as_pydantic_writes(record: ShipmentRecord, applied: list[Copy]) -> None:
    message = encode_status(record, applied)
    assert message == written_the_old_way(record, applied)
    decoded = orjson.loads(message)
    assert ShipmentRecord.model_validate_json(orjson.dumps(decoded["record"])) == record
    assert [HUB_EVENT.validate_python(item["event"]) for item in decoded["applied"]] == [copy.event for copy in applied]


def write_every_version(shipment_id: str, batches: list[list[HubEvent]], authority: Authority = AUTHORITY) -> int:
    """Advance batch by batch as the worker does, writing each version's status message right after making it (so
    the next version finds the JSON of the parts it keeps); a batch of duplicates writes the same record again, as
    the replay's re-send does. Returns the versions made."""
    state, record, versions = ShipmentState(shipment_id), None, 0
    for batch in batches:
        after, new = absorb(state, batch)
        if after is state:
            if record is not None:
                assert_written_as_pydantic_writes(record, [])
            continue
        record = advance(record, state, after, new, authority)
        assert_written_as_pydantic_writes(record, list(new))
        state, versions = after, versions + 1
    return versions


@PROPERTY
@given(events=journeys, data=st.data())
def test_every_version_of_a_generated_journey_is_written_as_pydantic_writes_it(
    events: list[HubEvent], data: st.DataObject
) -> None:
    shipment_id = SHIPMENT.replace("TEST", "PROP")  # the generated journeys' shipment
    assert write_every_version(shipment_id, arrivals(data, events)) >= 1


@EXAMPLE
@given(data=st.data())
def test_every_version_of_the_example_journey_with_emissions_is_written_as_pydantic_writes_it(data: st.DataObject) -> None:
    """Every kind of event the hub knows, and the emissions statement, in any order, batches and duplication."""
    journey = [hub_event(doc) for doc in example_journey_docs()]
    shipment_id = journey[0].shipment_id or ""
    reports = [hub_event(doc) for doc in emissions_reports(shipment_id)]
    assert write_every_version(shipment_id, arrivals(data, journey + reports)) >= 1


@EXAMPLE
@given(data=st.data())
def test_every_version_of_the_trade_journey_is_written_as_pydantic_writes_it(data: st.DataObject) -> None:
    """Customs, verifications, the letter of credit, the release and the carriers' invoices."""
    docs = paid_in_full(carriers_verified(trade_docs(), "carrier.oceanline"))
    docs += [verification("carrier.oceanline", "idv-oc", valid_until="2026-04-14T00:00:00Z")]
    events = parsed(docs)
    assert write_every_version(events[0].shipment_id or "", arrivals(data, events), TRADE_AUTHORITY) >= 1


def test_a_part_kept_from_the_version_before_is_not_serialised_again() -> None:
    """The booking, kept as the same object by the next version, is written from the JSON it kept: a marker put in
    its place shows up in the next version's bytes."""
    events = [hub_event(doc) for doc in example_journey_docs()]
    empty = ShipmentState(events[0].shipment_id or "")
    before, _ = absorb(empty, events[:3])
    first = advance(None, empty, before, [], AUTHORITY)
    record_json(first)
    assert first.booking is not None and _kept(first.booking) == first.booking.__pydantic_serializer__.to_json(first.booking)
    after, new = absorb(before, events[3:5])
    second = advance(first, before, after, new, AUTHORITY)
    assert second.booking is first.booking
    Frozen.__dict__["_json"].__set__(first.booking, b'"kept"')
    assert b'"booking":"kept"' in record_json(second)


def test_a_part_copied_or_revalidated_never_carries_the_json_of_the_one_it_came_from() -> None:
    """A part whose JSON is kept, copied with a change (`model_copy(update=...)`, as the merge does to a report it
    reads against the plan) or deep-copied or validated again, is written from its own fields: were the slot carried
    over, a status message would state the original's values (a changed status, another holder) under the new ones."""
    events = [hub_event(doc) for doc in example_journey_docs()]
    empty = ShipmentState(events[0].shipment_id or "")
    state, _ = absorb(empty, events[:3])
    record = advance(None, empty, state, [], AUTHORITY)
    record_json(record)
    assert record.booking is not None and _kept(record.booking) is not None
    changed = record.booking.model_copy(update={"mto": "someone.else"})
    copied = record.model_copy(update={"booking": changed})
    assert b'"mto":"someone.else"' in record_json(copied)
    assert record_json(copied) == copied.__pydantic_serializer__.to_json(copied)
    for again in (deepcopy(record.booking), type(record.booking).model_validate(record.booking.model_dump())):
        with pytest.raises(AttributeError):
            _kept(again)  # unset: written afresh from its fields


# --- every kind of value a field may hold ---------------------------------------------------------------------------


class Leaf(Frozen):
    label: str


class Values(Frozen):
    """A field of each kind `record_json` writes itself (the record's own fields are far fewer kinds)."""

    text: str
    number: int
    flag: bool
    amount: StrictDecimal
    at: UtcDatetime
    day: IsoDate
    mode: ModeCode
    maybe: Money | None
    many: list[Money]
    nested: list[list[Leaf]]
    words: list[str]
    either: Leaf | Money
    left_out: Annotated[list[str], LeftOutWhenEmpty] = []


class ChildLeaf(Leaf):
    extra: str = "not in the declared type"


class Serialised(Frozen):
    label: str

    @field_serializer("label")
    def shout(self, value: str) -> str:
        return value.upper()


class Aliased(Frozen):
    label: str = Field(serialization_alias="name")


texts = st.text()
utc_times = st.datetimes(timezones=st.just(timezone.utc))
money = st.builds(Money, amount=st.decimals(allow_nan=False, allow_infinity=False, places=2, max_value=10**9, min_value=-10**9), currency=st.sampled_from(["EUR", "USD"]))
leaves = st.builds(Leaf, label=texts)


@PROPERTY
@given(
    values=st.builds(
        Values,
        text=texts,
        number=st.integers(),
        flag=st.booleans(),
        # within the hub's decimal bounds (schemas.base), with exponents still
        amount=st.decimals(allow_nan=False, allow_infinity=False).filter(
            lambda d: len(d.as_tuple().digits) <= MAX_DECIMAL_DIGITS and abs(d.as_tuple().exponent) <= MAX_DECIMAL_EXPONENT
        ),
        at=utc_times,
        day=st.dates(),
        mode=st.sampled_from(TransportMode),
        maybe=st.none() | money,
        many=st.lists(money, max_size=3),
        nested=st.lists(st.lists(leaves, max_size=2), max_size=2),
        words=st.lists(texts, max_size=3),
        either=leaves | money,
        left_out=st.lists(texts, max_size=2),
    ),
    twice=st.booleans(),
)
def test_every_kind_of_value_is_written_as_pydantic_writes_it(values: Values, twice: bool) -> None:
    if twice:
        record_json(values)  # the second time from the parts' kept JSON
    assert record_json(values) == values.__pydantic_serializer__.to_json(values)


def test_every_code_point_is_escaped_as_pydantic_escapes_it() -> None:
    """orjson writes the strings: it must escape exactly the characters pydantic escapes, the same way."""
    every = "".join(chr(point) for point in range(0x110000) if not 0xD800 <= point <= 0xDFFF)
    assert orjson.dumps(every) == pydantic_core.to_json(every)


def test_what_it_does_not_write_itself_is_pydantic_s_own_output() -> None:
    """A serializer, an alias, a model of a subclass of the declared type (pydantic writes the declared fields, and
    warns), a lone surrogate (pydantic's error): the whole record goes to pydantic."""
    for model in (Serialised(label="a"), Aliased(label="a")):
        assert record_json(model) == model.__pydantic_serializer__.to_json(model)
    child = Values.built(
        text="a", number=1, flag=True, amount=Decimal("1.50"), at=datetime(2026, 3, 1, tzinfo=timezone.utc),
        day=datetime(2026, 3, 1).date(), mode=TransportMode(1), maybe=None, many=[], nested=[[ChildLeaf(label="x")]],
        words=[], either=Leaf(label="y"),
    )
    assert record_json(child) == child.__pydantic_serializer__.to_json(child, warnings=False)
    assert b"not in the declared type" not in record_json(child)
    with pytest.raises(pydantic_core.PydanticSerializationError):
        record_json(Values.built(**{**child.__dict__, "text": "\ud800"}))
