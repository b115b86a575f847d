"""The MTO's limit of liability for loss of or damage to cargo under the network rule, in SDR.

Loss localised to a leg is limited by the regime of that leg's mode (CMR, CIM, Montreal, Hague-Visby, CMNI);
loss not localised by the MTO's own terms (UNCTAD/ICC Rules, FIATA FBL), whose limit depends on whether the
journey includes sea or inland water. The figures live in `liability_table.json` (versioned data, not code);
the table is the hub's own data, so a broken one fails at import rather than at the first claim.
"""

from __future__ import annotations

from datetime import date, datetime, timezone
from decimal import ROUND_HALF_UP, Context, Decimal, localcontext
from importlib.resources import files
from typing import Annotated

from pydantic import Field, StringConstraints, model_validator

from schemas.base import Frozen, MoneyTotal, StrictDecimal
from schemas.events import BookingPayload, ModeCode
from schemas.identifiers import TransportMode
from schemas.record import LiabilityLimit

SDR = "XDR"  # ISO 4217 code of the IMF Special Drawing Right
TABLE_RESOURCE = "liability_table.json"

_CENT = Decimal("0.01")
# Explicit context: results must not depend on whatever decimal context the calling thread has set.
_ARITHMETIC = Context(prec=34, rounding=ROUND_HALF_UP)

SdrPerUnit = Annotated[StrictDecimal, Field(gt=0)]
RegimeId = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,39}$")]
Label = Annotated[str, StringConstraints(min_length=1, max_length=300)]


class LimitPeriod(Frozen):
    """A regime's limit over [valid_from, valid_until) (UTC dates; None is open-ended)."""

    valid_from: date | None
    valid_until: date | None
    per_package_sdr: SdrPerUnit | None
    per_kg_sdr: SdrPerUnit

    def covers(self, day: date) -> bool:
        return (self.valid_from is None or self.valid_from <= day) and (self.valid_until is None or day < self.valid_until)


class Regime(Frozen):
    id: RegimeId
    name: Label
    reference: Label
    modes: list[ModeCode]
    limits: Annotated[list[LimitPeriod], Field(min_length=1)]

    @model_validator(mode="after")
    def _periods_cover_all_time(self) -> Regime:
        # Contiguous, ordered, open at both ends: every date falls in exactly one period, so a lookup never fails.
        if self.limits[0].valid_from is not None or self.limits[-1].valid_until is not None:
            raise ValueError(f"regime {self.id}: the first period must be open at the start and the last at the end")
        for before, after in zip(self.limits, self.limits[1:]):
            if before.valid_until is None or before.valid_until != after.valid_from:
                raise ValueError(f"regime {self.id}: periods must follow each other without gap or overlap")
        for period in self.limits:
            if period.valid_from is not None and period.valid_until is not None and period.valid_from >= period.valid_until:
                raise ValueError(f"regime {self.id}: a period must end after it starts")
        return self

    def limit_at(self, day: date) -> LimitPeriod:
        return next(period for period in self.limits if period.covers(day))


class UnlocalisedRule(Frozen):
    """Which regime applies when loss is not localised: one if any leg's mode is in `wet_modes`, else the other."""

    wet_modes: Annotated[list[ModeCode], Field(min_length=1)]
    with_wet_leg: RegimeId
    without_wet_leg: RegimeId


class LiabilityTable(Frozen):
    version: Annotated[str, StringConstraints(min_length=1, max_length=40)]
    description: str
    regimes: Annotated[list[Regime], Field(min_length=1)]
    unlocalised: UnlocalisedRule

    @model_validator(mode="after")
    def _consistent(self) -> LiabilityTable:
        ids = [regime.id for regime in self.regimes]
        if len(set(ids)) != len(ids):
            raise ValueError(f"regime ids must be unique, got {ids}")
        modes = [mode for regime in self.regimes for mode in regime.modes]
        if len(set(modes)) != len(modes):
            raise ValueError("a mode of transport belongs to at most one regime")
        for name in (self.unlocalised.with_wet_leg, self.unlocalised.without_wet_leg):
            if name not in ids:
                raise ValueError(f"the unlocalised rule names regime {name!r}, which the table does not have")
        return self

    def regime(self, regime_id: str) -> Regime:
        return next(regime for regime in self.regimes if regime.id == regime_id)

    def regime_for_mode(self, mode: TransportMode) -> Regime | None:
        return next((regime for regime in self.regimes if mode in regime.modes), None)


def load_table(raw: bytes) -> LiabilityTable:
    """Validate a liability table document (raises pydantic.ValidationError if it is broken)."""
    return LiabilityTable.model_validate_json(raw)


TABLE: LiabilityTable = load_table(files("streams").joinpath(TABLE_RESOURCE).read_bytes())


def liability_limit(
    booking: BookingPayload,
    leg: int | None,
    packages: int,
    weight_kg: Decimal,
    at: datetime,
    sdr_rate: tuple[Decimal, str] | None,
    currency: str,
) -> LiabilityLimit:
    """The MTO's limit for `packages` / `weight_kg` lost or damaged at `at`, on `leg` (None: not localised).

    `sdr_rate` is (units of `currency` per 1 SDR, key of the rate event); with it the limit is also given in
    `currency`. A leg whose mode has no regime in the table (mail, fixed installation, multimodal) falls back
    to the unlocalised rule, and `basis` says so.
    """
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("`at` must carry a timezone: the table's validity dates are UTC dates")
    if packages < 0 or weight_kg < 0:
        raise ValueError(f"affected cargo cannot be negative ({packages} packages, {weight_kg} kg)")
    regime, context = _regime(booking, leg)
    period = regime.limit_at(at.astimezone(timezone.utc).date())
    with localcontext(_ARITHMETIC):
        by_weight = period.per_kg_sdr * weight_kg
        weight_term = f"{_plain(weight_kg)} kg × {_plain(period.per_kg_sdr)} SDR"
        if period.per_package_sdr is None:
            sdr = by_weight.quantize(_CENT, rounding=ROUND_HALF_UP)
            formula = f"{weight_term} = {sdr} SDR"
        else:
            by_package = period.per_package_sdr * packages
            sdr = max(by_package, by_weight).quantize(_CENT, rounding=ROUND_HALF_UP)
            unit = "package" if packages == 1 else "packages"
            formula = f"max({packages} {unit} × {_plain(period.per_package_sdr)} SDR, {weight_term}) = {sdr} SDR"
        converted, rate_key = _convert(sdr, sdr_rate, currency)
    conversion = ""
    if converted is not None and sdr_rate is not None and currency != SDR:
        conversion = f"; at 1 SDR = {_plain(sdr_rate[0])} {currency}: {converted.amount} {currency}"
    return LiabilityLimit.built(
        regime=regime.name,
        basis=f"{context}: {formula}{conversion}",
        sdr=sdr,
        converted=converted,
        sdr_rate_set_by=rate_key,
        table_version=TABLE.version,
    )


def _regime(booking: BookingPayload, leg: int | None) -> tuple[Regime, str]:
    """The regime that limits the loss, and a phrase saying why it applies."""
    prefix = "not localised"
    if leg is not None:
        planned = next((p for p in booking.legs if p.sequence == leg), None)
        if planned is None:
            raise ValueError(f"the booking has no leg {leg} (legs 1..{len(booking.legs)})")
        mode_name = planned.mode.name.lower().replace("_", " ")
        regime = TABLE.regime_for_mode(planned.mode)
        if regime is not None:
            return regime, f"localised to leg {leg} ({mode_name})"
        prefix = f"leg {leg} ({mode_name}) has no regime in the table, so the unlocalised rule applies"
    rule = TABLE.unlocalised
    if any(p.mode in rule.wet_modes for p in booking.legs):
        return TABLE.regime(rule.with_wet_leg), f"{prefix}; the journey includes sea or inland water"
    return TABLE.regime(rule.without_wet_leg), f"{prefix}; the journey has no sea or inland water leg"


def _convert(sdr: Decimal, sdr_rate: tuple[Decimal, str] | None, currency: str) -> tuple[MoneyTotal | None, str | None]:
    if currency == SDR:
        return MoneyTotal.built(amount=sdr, currency=SDR), None
    if sdr_rate is None:
        return None, None
    rate, key = sdr_rate
    if rate <= 0:
        raise ValueError(f"an SDR rate must be positive, got {rate} (from {key})")
    amount = (sdr * rate).quantize(_CENT, rounding=ROUND_HALF_UP)
    return MoneyTotal.built(amount=amount, currency=currency), key


def _plain(value: Decimal) -> str:
    """A decimal as people write it: no exponent, no trailing zeros (1000, 8.33, 1200.5)."""
    return format(value.normalize(), "f")
