"""A funding programme as data: the definition file (TOML), validated with pydantic.

One engine, several programmes. What differs between the Länder is configuration:

- `amount`: `share_of_fee` (a share of the fee, rounded down to the cent, optionally capped) or
  `per_seminar_day` (a fixed amount per seminar day, never more than the fee);
- `quota`: funded places per Kommune over the whole programme, either one number or population
  bands per kind of Kommune (the first band that matches wins);
- `eligibility`: the Länder and the kinds of Kommune (from the GV100AD directory) that qualify;
- `periods`: named date ranges, each with a budget in cents or none (unlimited).

See docs/adr/0006-funding-rules-as-data.md.
"""

from __future__ import annotations

import itertools
import tomllib
from datetime import date
from decimal import ROUND_FLOOR, Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from shared.directory import Kommune, KommuneKind

# The programme files live with the funding service, which decides by them; every service and
# lotse read them through this model.
PROGRAMS_DIR = Path(__file__).resolve().parent.parent / "services" / "funding" / "programs"
DEFAULT_PROGRAM_FILE = PROGRAMS_DIR / "niedersachsen.toml"

PeriodId = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")]
NonNegativeCents = Annotated[int, Field(ge=0, le=10**11)]


class ProgramError(ValueError):
    """The programme file cannot be read or breaks the format."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ShareOfFee(_Strict):
    """`floor(fee_cents * share)`, at most `max_cents` if given (Niedersachsen 0.5, Bayern 0.8)."""

    rule: Literal["share_of_fee"]
    share: Annotated[Decimal, Field(gt=0, le=1)]
    max_cents: NonNegativeCents | None = None

    @field_validator("share", mode="before")
    @classmethod
    def _no_binary_floats(cls, value: Any) -> Any:
        if isinstance(value, float):
            raise ValueError('write the share as a string, e.g. "0.5", so that it is exact')
        return value

    def amount_cents(self, fee_cents: int, seminar_days: int) -> int:
        amount = int((Decimal(fee_cents) * self.share).to_integral_value(rounding=ROUND_FLOOR))
        return amount if self.max_cents is None else min(amount, self.max_cents)


class PerSeminarDay(_Strict):
    """`cents_per_day` for each day of the seminar, never more than the fee (Baden-Württemberg)."""

    rule: Literal["per_seminar_day"]
    cents_per_day: NonNegativeCents

    def amount_cents(self, fee_cents: int, seminar_days: int) -> int:
        return min(fee_cents, self.cents_per_day * seminar_days)


AmountRule = Annotated[ShareOfFee | PerSeminarDay, Field(discriminator="rule")]


class QuotaBand(_Strict):
    """Places for Kommunen of the given kinds (all kinds if omitted) within a population range."""

    kinds: list[KommuneKind] | None = None
    min_population: Annotated[int, Field(ge=0)] = 0
    max_population: Annotated[int, Field(ge=0)] | None = None  # inclusive
    places: Annotated[int, Field(ge=0, le=10_000)]

    def matches(self, kommune: Kommune) -> bool:
        if self.kinds is not None and kommune.kind not in self.kinds:
            return False
        if kommune.population < self.min_population:
            return False
        return self.max_population is None or kommune.population <= self.max_population


class Quota(_Strict):
    """Funded places per Kommune, counted over the whole programme across all periods."""

    places: Annotated[int, Field(ge=0, le=10_000)]
    bands: list[QuotaBand] = Field(default_factory=list)

    def places_for(self, kommune: Kommune) -> int:
        return next((band.places for band in self.bands if band.matches(kommune)), self.places)


class Eligibility(_Strict):
    lands: Annotated[list[Annotated[str, Field(pattern=r"^\d{2}$")]], Field(min_length=1)]
    kinds: Annotated[list[KommuneKind], Field(min_length=1)]

    def admits(self, kommune: Kommune) -> bool:
        return kommune.land in self.lands and kommune.kind in self.kinds


class Period(_Strict):
    id: PeriodId
    starts_on: date
    ends_on: date
    budget_cents: NonNegativeCents | None = None  # None: unlimited

    @model_validator(mode="after")
    def _ordered(self) -> Period:
        if self.ends_on < self.starts_on:
            raise ValueError(f"period {self.id}: ends_on lies before starts_on")
        return self

    def contains(self, day: date) -> bool:
        return self.starts_on <= day <= self.ends_on


class Program(_Strict):
    id: PeriodId
    name: Annotated[str, Field(min_length=1, max_length=300)]
    amount: AmountRule
    quota: Quota
    eligibility: Eligibility
    periods: Annotated[list[Period], Field(min_length=1)]

    @model_validator(mode="after")
    def _periods_distinct(self) -> Program:
        ids = [period.id for period in self.periods]
        if len(set(ids)) != len(ids):
            raise ValueError(f"period ids must be unique, found {ids}")
        ordered = sorted(self.periods, key=lambda period: period.starts_on)
        for before, after in itertools.pairwise(ordered):
            if after.starts_on <= before.ends_on:
                raise ValueError(f"periods {before.id} and {after.id} overlap")
        return self

    def period_for(self, seminar_starts_on: date) -> Period | None:
        """The period that contains the seminar's first day, if any."""
        return next((period for period in self.periods if period.contains(seminar_starts_on)), None)

    def period(self, period_id: str) -> Period | None:
        return next((period for period in self.periods if period.id == period_id), None)

    def amount_cents(self, fee_cents: int, seminar_starts_on: date, seminar_ends_on: date) -> int:
        days = max(1, (seminar_ends_on - seminar_starts_on).days + 1)
        return self.amount.amount_cents(fee_cents, days)

    def quota_for(self, kommune: Kommune) -> int:
        return self.quota.places_for(kommune)


def parse_program(text: str, origin: str = "<string>") -> Program:
    try:
        data = tomllib.loads(text)
        return Program.model_validate(data)
    except (tomllib.TOMLDecodeError, ValueError) as exc:
        raise ProgramError(f"{origin}: {exc}") from exc


def load_program(path: Path | str) -> Program:
    """Read and validate a programme definition file; ProgramError says what is wrong."""
    path = Path(path)
    try:
        text = path.read_text("utf-8")
    except OSError as exc:
        raise ProgramError(f"{path}: {exc}") from exc
    return parse_program(text, str(path))
