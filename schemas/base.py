"""The model base every canonical type shares, and the strict time and money scalars."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema

from schemas.identifiers import CurrencyCode


class Frozen(BaseModel):
    """Strict, immutable, closed: an unknown field or a coerced type is an error, never a guess."""

    model_config = ConfigDict(strict=True, frozen=True, extra="forbid", use_enum_values=False)


def _parse_datetime(value: Any) -> Any:
    # Strict mode would refuse ISO strings coming from JSON; accept exactly those, nothing looser.
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"{value!r} is not an ISO 8601 timestamp") from None
    return value


def _require_utc(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("timestamp must carry a timezone offset (e.g. '2026-03-01T08:00:00Z')")
    try:
        return value.astimezone(timezone.utc)
    except OverflowError:
        raise ValueError("timestamp is out of range once converted to UTC") from None


UtcDatetime = Annotated[datetime, BeforeValidator(_parse_datetime), AfterValidator(_require_utc)]


def _parse_decimal(value: Any) -> Any:
    # JSON floats are binary approximations: a carrier must send amounts as strings or integers.
    if isinstance(value, bool) or isinstance(value, float):
        raise ValueError("decimal values must be sent as a string (e.g. \"1250.00\") or an integer, never a float")
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, str):
        try:
            parsed = Decimal(value)
        except InvalidOperation:
            raise ValueError(f"{value!r} is not a decimal number") from None
        if not parsed.is_finite():
            raise ValueError(f"{value!r} is not a finite decimal number")
        return parsed
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
