"""The model base every canonical type shares, the text rule, and the strict time and money scalars."""

from __future__ import annotations

import re
from datetime import date, datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Annotated, Any, Callable, Self

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema
from pydantic.fields import FieldInfo

from schemas.identifiers import CurrencyCode


class Frozen(BaseModel):
    """Strict, immutable, closed: an unknown field or a coerced type is an error, never a guess."""

    model_config = ConfigDict(strict=True, frozen=True, extra="forbid", use_enum_values=False)
    # pydantic's JSON of this instance, kept once made by streams.codec (an instance never changes). A slot, not a
    # field: never validated, compared, copied or serialised. None from `built`, unset when validated or copied.
    __slots__ = ("_json",)
    if TYPE_CHECKING:  # for mypy only: pydantic would take an annotation here for a private attribute
        _json: bytes | None

    @classmethod
    def built(cls, **fields: Any) -> Self:
        """An instance of values the hub derived itself from validated data, taken as they are: no validation.

        For the merge's hot path, which builds thousands of these a second from events validated when their bytes
        came in (pydantic's own `model_construct` costs as much as validating). The caller answers for the types;
        a property test checks that every record built so validates to the same JSON. Fields left out take their
        defaults.
        """
        layout = _LAYOUT.get(cls) or _layout(cls)
        # in declaration order: pydantic writes a model's JSON in the order of its __dict__
        if len(fields) == len(layout):
            if tuple(fields) == _NAMES[cls]:
                values = fields  # every field, in order: the keyword arguments are the fields
            else:
                values = {name: fields[name] for name in layout}  # a KeyError names a field given twice or misspelt
            given = _EVERY[cls]
        elif fields.keys() <= layout.keys():
            values = {name: fields[name] if name in fields else _default(default) for name, default in layout.items()}
            given = set(fields)
        else:
            raise TypeError(f"{cls.__name__} has no field {sorted(fields.keys() - layout.keys())}")
        made = cls.__new__(cls)
        _set(made, "__dict__", values)
        _set(made, "__pydantic_fields_set__", given)
        _set(made, "__pydantic_extra__", None)
        _set(made, "__pydantic_private__", None)
        _set(made, "_json", None)
        return made


_set = object.__setattr__  # past the frozen model's own __setattr__, as pydantic's model_construct does
_REQUIRED = object()
_LAYOUT: dict[type[Frozen], dict[str, Any]] = {}
_NAMES: dict[type[Frozen], tuple[str, ...]] = {}
# Per model, the one fields-set of every instance built with all its fields: pydantic never changes a frozen model's
# set in place (model_copy copies it before adding to it), and one set shared is one object fewer per instance for the
# allocator and the garbage collector (the merge builds thousands a second). tests/unit/schemas/test_built.py holds
# pydantic to that.
_EVERY: dict[type[Frozen], set[str]] = {}


def _layout(model: type[Frozen]) -> dict[str, Any]:
    """Each field of `model` in declaration order, with its default (_REQUIRED when it has none)."""
    layout = {name: _default_of(info) for name, info in model.model_fields.items()}
    _LAYOUT[model], _NAMES[model], _EVERY[model] = layout, tuple(layout), set(layout)
    return layout


def _default_of(info: FieldInfo) -> Any:
    if info.is_required():
        return _REQUIRED
    if info.default_factory is not None:
        return info.get_default(call_default_factory=True)  # empty_list's []: _default gives each instance its own
    return info.default


def empty_list() -> Any:
    """The default of a list field, `[]`, as a factory: pydantic deep-copies an unhashable default (`= []`) with
    `copy.deepcopy` each time it uses one, on every event it validates, where a factory is one C call. The field
    means the same: a new empty list per instance, and `"default": []` in its JSON schema."""
    return Field(default_factory=list, json_schema_extra={"default": []})


def _default(default: Any) -> Any:
    if default is _REQUIRED:
        raise TypeError("a required field was left out")
    return [] if default == [] else default  # the one mutable default the models have: each instance gets its own


# What no text field may hold: C0 controls, DEL and C1 controls (Postgres refuses NUL in text and jsonb, and the
# others corrupt logs, terminals and CSV exports), and lone surrogates (not encodable as UTF-8, so not storable).
# Multi-line text (remarks, conditions) may hold tab and newline; nothing else does.
_NOT_IN_TEXT = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_NOT_IN_MULTILINE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")


def _refuse(forbidden: re.Pattern[str], allowed: str) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        # Before pydantic's own str check, which refuses a lone surrogate without saying which or where.
        if isinstance(value, str) and (found := forbidden.search(value)) is not None:
            char = found.group()
            raise ValueError(f"text holds {_kind(char)} (U+{ord(char):04X}) at position {found.start()}; {allowed}")
        return value

    return check


def _kind(char: str) -> str:
    if "\ud800" <= char <= "\udfff":
        return "a lone surrogate"
    names = {"\x00": "NUL", "\t": "a tab", "\n": "a newline", "\r": "a carriage return", "\x7f": "DEL"}
    return names.get(char, "a C0 control character" if char < " " else "a C1 control character")


PlainText = Annotated[
    str,
    BeforeValidator(_refuse(_NOT_IN_TEXT, "text fields allow no control characters (not even tab or newline)")),
    Field(json_schema_extra={"pattern": "^[^\\u0000-\\u001f\\u007f-\\u009f]*$"}),
]
"""Any single-line text: no control characters and no lone surrogates."""
MultilineText = Annotated[
    str,
    BeforeValidator(_refuse(_NOT_IN_MULTILINE, "multi-line text fields allow tab and newline, no other control characters")),
    Field(json_schema_extra={"pattern": "^[^\\u0000-\\u0008\\u000b-\\u001f\\u007f-\\u009f]*$"}),
]
"""Text that may run over several lines (remarks, conditions): tab and newline allowed, other controls not."""


def _from_iso(parse: Callable[[str], Any], what: str) -> Callable[[Any], Any]:
    # Strict mode would refuse ISO strings coming from JSON; accept exactly those, nothing looser.
    def parsed(value: Any) -> Any:
        if isinstance(value, str):
            try:
                return parse(value)
            except ValueError:
                raise ValueError(f"{value!r} is not {what}") from None
        return value

    return parsed


def _require_utc(value: datetime) -> datetime:
    if value.tzinfo is timezone.utc:
        return value  # what astimezone would return (the same object): most timestamps, on every decode
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("timestamp must carry a timezone offset (e.g. '2026-03-01T08:00:00Z')")
    try:
        return value.astimezone(timezone.utc)
    except OverflowError:
        raise ValueError("timestamp is out of range once converted to UTC") from None


UtcDatetime = Annotated[
    datetime, BeforeValidator(_from_iso(datetime.fromisoformat, "an ISO 8601 timestamp")), AfterValidator(_require_utc)
]
IsoDate = Annotated[date, BeforeValidator(_from_iso(date.fromisoformat, "a date as YYYY-MM-DD"))]  # a calendar day


# How large a decimal the hub takes in may be: far beyond any amount, weight, rate or percentage, and small enough that
# the fold's exact arithmetic (Fraction) stays cheap. Unbounded, "9E-99999999" (11 bytes) cost it minutes of CPU.
MAX_DECIMAL_DIGITS = 40
MAX_DECIMAL_EXPONENT = 40


def _bounded(value: Decimal) -> Decimal:
    if value.is_finite():
        _, digits, exponent = value.as_tuple()
        assert isinstance(exponent, int)  # finite
        if len(digits) > MAX_DECIMAL_DIGITS or abs(exponent) > MAX_DECIMAL_EXPONENT:
            raise ValueError(
                f"a decimal of {len(digits)} digits with exponent {exponent} is out of range: at most"
                f" {MAX_DECIMAL_DIGITS} digits and an exponent within ±{MAX_DECIMAL_EXPONENT}"
            )
    return value


def _parse_decimal(value: Any) -> Any:
    # JSON floats are binary approximations: a carrier must send amounts as strings or integers.
    if isinstance(value, bool) or isinstance(value, float):
        raise ValueError("decimal values must be sent as a string (e.g. \"1250.00\") or an integer, never a float")
    if isinstance(value, int):
        return _bounded(Decimal(value))
    if isinstance(value, str):
        if value != value.strip():
            # Decimal() would drop it silently, control characters (CR, NEL) included
            raise ValueError(f"{value!r} has white space or control characters around the number")
        try:
            parsed = Decimal(value)
        except InvalidOperation:
            raise ValueError(f"{value!r} is not a decimal number") from None
        if not parsed.is_finite():
            raise ValueError(f"{value!r} is not a finite decimal number")
        return _bounded(parsed)
    if isinstance(value, Decimal):
        return _bounded(value)  # a parser's own Decimal (connectors.ubl): the same bounds
    return value


_DECIMAL_SCHEMA = WithJsonSchema({"type": "string", "pattern": r"^-?[0-9]+(\.[0-9]+)?$", "examples": ["1250.00"]})
StrictDecimal = Annotated[Decimal, BeforeValidator(_parse_decimal), Field(allow_inf_nan=False), _DECIMAL_SCHEMA]
NonNegativeDecimal = Annotated[Decimal, BeforeValidator(_parse_decimal), Field(ge=0, allow_inf_nan=False), _DECIMAL_SCHEMA]


class Money(Frozen):
    """An amount in one ISO 4217 currency. Amounts are Decimal, serialised as strings."""

    amount: StrictDecimal = Field(max_digits=18, decimal_places=4)
    currency: CurrencyCode


class MoneyTotal(Frozen):
    """A sum of Money: the same currency rules, without the per-line digit limit a sum can outgrow."""

    amount: StrictDecimal
    currency: CurrencyCode


class Weight(Frozen):
    """Gross weight in kilograms."""

    kg: NonNegativeDecimal = Field(max_digits=12, decimal_places=3)
