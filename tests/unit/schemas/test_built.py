"""Frozen.built shares one fields-set among the instances of a model built with every field: pydantic must never
change that set in place, or one instance's change would show in every other's."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from pydantic import ValidationError

from schemas.record import Times

AT = datetime(2026, 3, 2, 1, 0, tzinfo=timezone.utc)
LATER = datetime(2026, 3, 3, 1, 0, tzinfo=timezone.utc)


def test_instances_built_with_every_field_share_one_fields_set() -> None:
    first = Times.built(planned=AT, estimated=None, actual=None)
    second = Times.built(actual=AT, planned=None, estimated=None)  # another order: the same fields
    assert first.model_fields_set is second.model_fields_set
    assert first.model_fields_set == {"planned", "estimated", "actual"}


def test_a_copy_with_an_update_leaves_the_shared_set_alone() -> None:
    first = Times.built(planned=AT, estimated=None, actual=None)
    second = Times.built(planned=None, estimated=None, actual=AT)
    shared = set(first.model_fields_set)
    copied = first.model_copy(update={"actual": LATER})
    assert copied.actual == LATER and copied.model_fields_set == shared
    assert copied.model_fields_set is not first.model_fields_set  # pydantic copied the set before adding to it
    assert first.model_fields_set == shared and second.model_fields_set == shared
    assert Times.model_validate(copied.model_dump()) == copied


def test_an_assignment_is_refused_before_it_touches_the_set() -> None:
    built = Times.built(planned=AT, estimated=None, actual=None)
    shared = set(built.model_fields_set)
    with pytest.raises(ValidationError):
        built.actual = LATER  # type: ignore[misc]  # frozen: the point of the test
    assert built.model_fields_set == shared


def test_an_instance_built_with_some_fields_has_a_set_of_its_own() -> None:
    some = Times.built(planned=AT)
    assert some.model_fields_set == {"planned"}
    assert some.model_fields_set is not Times.built(planned=AT).model_fields_set
    assert some.estimated is None and some.actual is None
