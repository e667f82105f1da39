"""A funding programme as data: the definition file (TOML), validated with pydantic.

One engine, several programmes. What differs between the Länder is configuration:

- `amount`: the basic course's amount, `share_of_fee` (a share of the fee, rounded down to the
  cent, optionally capped) or `per_seminar_day` (a fixed amount per seminar day, never more than
  the fee);
- `courses.follow_up`: whether follow-up courses are funded, with which amount, whether only for
  a participant who holds a funded basic course, and whether they take a place of the quota
  (absent: not funded). The basic course is always funded, needs nothing and takes a place;
- `funds_registrations_after_start`: false if a registration submitted once its seminar has begun
  (00:00 Europe/Berlin on its first day) gets no funding;
- `quota`: funded places per Kommune over the whole programme, either one number or population
  bands per kind of Kommune (the first band that matches wins);
- `eligibility`: the Länder and the kinds of Kommune (from the GV100AD directory) that qualify;
- `periods`: named date ranges, each with a budget in cents or none (unlimited);
- `letters`: what the letters say about the programme (the office that signs them, the Land as
  they name it, the amounts and places in words, the reasons that state a programme rule).

See docs/adr/0006-funding-rules-as-data.md and docs/adr/0014-programmes-of-three-laender.md.
"""

from __future__ import annotations

import itertools
import tomllib
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import ROUND_FLOOR, Decimal
from email.utils import parseaddr
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    ValidationError,
    field_validator,
    model_validator,
)

from shared.directory import BEZIRK_LANDS, Directory, Kommune, KommuneKind

# The programme files live with the funding service, which decides by them; every service and
# lotse read them through this model.
PROGRAMS_DIR = Path(__file__).resolve().parent.parent / "services" / "funding" / "programs"
DEFAULT_PROGRAM_FILE = PROGRAMS_DIR / "niedersachsen.toml"

# A seminar begins at 00:00 in this zone on its first day (the contract's rule).
SEMINAR_TIMEZONE = ZoneInfo("Europe/Berlin")

PeriodId = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")]
NonNegativeCents = Annotated[int, Field(ge=0, le=10**11)]
LandCode = Annotated[str, Field(pattern=r"^[0-9]{2}$")]


class ProgramError(ValueError):
    """The programme file cannot be read or breaks the format."""


class Course(StrEnum):
    """The contract's `course` of a seminar (`seminar.published`; absent means basic)."""

    BASIC = "basic"
    FOLLOW_UP = "follow_up"


# The reasons whose wording states a rule of the programme, so the programme file words them.
# The others (unknown_kommune, budget_exhausted, outside_funding_period, period_closed) read the
# same in every programme and stay with the notification service.
PROGRAM_RULE_REASONS = (
    "quota_exhausted",
    "kommune_not_eligible",
    "course_not_funded",
    "prerequisite_missing",
    "registered_after_start",
)


def seminar_days(seminar_starts_on: date, seminar_ends_on: date) -> int:
    """The seminar days from the first to the last day, both included; at least one."""
    return max(1, (seminar_ends_on - seminar_starts_on).days + 1)


def seminar_begins_at(seminar_starts_on: date) -> datetime:
    """00:00 Europe/Berlin on the seminar's first day (never in a daylight-saving gap)."""
    return datetime.combine(seminar_starts_on, time(0), tzinfo=SEMINAR_TIMEZONE)


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


class FollowUpCourses(_Strict):
    """Follow-up courses (Aufbaukurse): funded or not, and if so on which terms."""

    funded: StrictBool
    amount: AmountRule | None = None
    requires_funded_basic: StrictBool | None = None
    takes_quota_place: StrictBool | None = None

    @model_validator(mode="after")
    def _terms_match_funded(self) -> FollowUpCourses:
        terms = {
            "amount": self.amount,
            "requires_funded_basic": self.requires_funded_basic,
            "takes_quota_place": self.takes_quota_place,
        }
        if self.funded:
            missing = [name for name, value in terms.items() if value is None]
            if missing:
                raise ValueError(f"funded follow-up courses must state {', '.join(missing)}")
        else:
            given = [name for name, value in terms.items() if value is not None]
            if given:
                raise ValueError(
                    f"follow-up courses are not funded (funded = false), so {', '.join(given)} "
                    "must be left out"
                )
        return self


class Courses(_Strict):
    follow_up: FollowUpCourses = Field(default_factory=lambda: FollowUpCourses(funded=False))


@dataclass(frozen=True)
class CourseTerms:
    """How the programme treats one course, the basic course included (a view over the file)."""

    course: Course
    funded: bool
    amount: ShareOfFee | PerSeminarDay | None  # None: not funded
    requires_funded_basic: bool
    takes_quota_place: bool


class QuotaBand(_Strict):
    """Places for Kommunen of the given kinds (all kinds if omitted) within a population range."""

    kinds: Annotated[list[KommuneKind], Field(min_length=1)] | None = None
    min_population: Annotated[int, Field(ge=0)] = 0
    max_population: Annotated[int, Field(ge=0)] | None = None  # inclusive
    places: Annotated[int, Field(ge=0, le=10_000)]

    @model_validator(mode="after")
    def _range_ordered(self) -> QuotaBand:
        if self.max_population is not None and self.max_population < self.min_population:
            raise ValueError(
                f"max_population {self.max_population} lies below min_population {self.min_population}"
            )
        if self.kinds is not None:
            _refuse_duplicates("kinds", self.kinds)
        return self

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

    def band_for(self, kommune: Kommune) -> QuotaBand | None:
        return next((band for band in self.bands if band.matches(kommune)), None)

    def places_for(self, kommune: Kommune) -> int:
        band = self.band_for(kommune)
        return self.places if band is None else band.places


class Eligibility(_Strict):
    lands: Annotated[list[LandCode], Field(min_length=1)]
    kinds: Annotated[list[KommuneKind], Field(min_length=1)]

    @model_validator(mode="after")
    def _consistent(self) -> Eligibility:
        _refuse_duplicates("lands", self.lands)
        _refuse_duplicates("kinds", self.kinds)
        if KommuneKind.BEZIRK in self.kinds and not BEZIRK_LANDS.intersection(self.lands):
            raise ValueError(
                f"kinds names {KommuneKind.BEZIRK.value!r}, but Bezirke are Kommunen only in Land "
                f"{', '.join(sorted(BEZIRK_LANDS))} (Bayern) and lands is {self.lands}"
            )
        return self

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


def _one_line(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    if value != value.strip():
        raise ValueError("must not begin or end with white space")
    if any(unicodedata.category(character) in ("Cc", "Zl", "Zp") for character in value):
        raise ValueError("must be one line, without control characters")
    return value


LetterText = Annotated[str, Field(max_length=1000), AfterValidator(_one_line)]


class LandNames(_Strict):
    """The Land as the letters name it, in the four cases: "der Freistaat Bayern", "den ..."."""

    nominative: LetterText
    accusative: LetterText
    dative: LetterText
    genitive: LetterText


class OfficeDefaults(_Strict):
    """The office that signs the letters; a deployment's MAIL_FROM and MAIL_OFFICE_* override it."""

    name: LetterText
    organisation: LetterText
    address_lines: Annotated[list[LetterText], Field(max_length=10)] = Field(default_factory=list)
    mail_from: LetterText  # "Display Name <address@domain>"

    @field_validator("mail_from")
    @classmethod
    def _one_address(cls, value: str) -> str:
        _, address = parseaddr(value)
        local, at, domain = address.rpartition("@")
        if not (local and at and "." in domain) or any(c.isspace() for c in address):
            raise ValueError(f"{value!r} is not one address of the form 'Name <user@example.org>'")
        return value


class AmountInWords(_Strict):
    """What the programme pays, as the letters say it: "die Hälfte der Seminargebühr"."""

    basic: LetterText
    follow_up: LetterText | None = None  # only where follow-up courses are funded


class ReasonTexts(_Strict):
    """The letters' wording of the reasons that state a programme rule (PROGRAM_RULE_REASONS)."""

    quota_exhausted: LetterText
    kommune_not_eligible: LetterText
    course_not_funded: LetterText | None = None
    prerequisite_missing: LetterText | None = None
    registered_after_start: LetterText | None = None


class Letters(_Strict):
    land: LandNames
    office: OfficeDefaults
    amount_in_words: AmountInWords
    places_in_words: LetterText  # "bis zu zwei Beschäftigte je Kommune"
    reasons: ReasonTexts


class Program(_Strict):
    id: PeriodId
    name: Annotated[str, Field(min_length=1, max_length=300)]
    amount: AmountRule  # the basic course's
    courses: Courses = Field(default_factory=Courses)
    funds_registrations_after_start: StrictBool = True
    quota: Quota
    eligibility: Eligibility
    periods: Annotated[list[Period], Field(min_length=1)]
    letters: Letters | None = None  # required by the notification service, see letter_texts()

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

    @model_validator(mode="after")
    def _bands_for_eligible_kinds(self) -> Program:
        for number, band in enumerate(self.quota.bands):
            foreign = [kind.value for kind in band.kinds or () if kind not in self.eligibility.kinds]
            if foreign:
                raise ValueError(
                    f"quota.bands[{number}] gives places to {foreign}, which eligibility.kinds does not admit"
                )
        return self

    @model_validator(mode="after")
    def _letters_match_rules(self) -> Program:
        if self.letters is None:
            return self
        follow_up_words = self.letters.amount_in_words.follow_up
        if self.courses.follow_up.funded and follow_up_words is None:
            raise ValueError("letters.amount_in_words.follow_up is missing: follow-up courses are funded")
        if not self.courses.follow_up.funded and follow_up_words is not None:
            raise ValueError(
                "letters.amount_in_words.follow_up must be left out: follow-up courses are not funded"
            )
        possible = self.possible_rule_reasons
        for reason in PROGRAM_RULE_REASONS:
            text = getattr(self.letters.reasons, reason)
            if reason in possible and text is None:
                raise ValueError(f"letters.reasons.{reason} is missing: the programme can give it")
            if reason not in possible and text is not None:
                raise ValueError(f"letters.reasons.{reason} must be left out: the programme never gives it")
        return self

    # --- periods and the basic course (the funding engine's calls since ADR 0006) ---

    def period_for(self, seminar_starts_on: date) -> Period | None:
        """The period that contains the seminar's first day, if any."""
        return next((period for period in self.periods if period.contains(seminar_starts_on)), None)

    def period(self, period_id: str) -> Period | None:
        return next((period for period in self.periods if period.id == period_id), None)

    def amount_cents(self, fee_cents: int, seminar_starts_on: date, seminar_ends_on: date) -> int:
        """The basic course's amount for a seminar."""
        return self.amount.amount_cents(fee_cents, seminar_days(seminar_starts_on, seminar_ends_on))

    def quota_for(self, kommune: Kommune) -> int:
        return self.quota.places_for(kommune)

    # --- courses ---

    def course(self, course: Course | str) -> CourseTerms:
        """The terms of a course; a str is the contract's value ("basic", "follow_up")."""
        if Course(course) is Course.BASIC:
            return CourseTerms(Course.BASIC, True, self.amount, False, True)
        follow_up = self.courses.follow_up
        return CourseTerms(
            Course.FOLLOW_UP,
            follow_up.funded,
            follow_up.amount,
            bool(follow_up.requires_funded_basic),
            bool(follow_up.takes_quota_place),
        )

    def course_funded(self, course: Course | str) -> bool:
        """False: decline with `course_not_funded`."""
        return self.course(course).funded

    def requires_funded_basic(self, course: Course | str) -> bool:
        """True: without a funded basic course of the same participant, `prerequisite_missing`."""
        return self.course(course).requires_funded_basic

    def takes_quota_place(self, course: Course | str) -> bool:
        """False: the course is funded without a place of the Kommune's quota."""
        return self.course(course).takes_quota_place

    def course_amount_cents(self, course: Course | str, fee_cents: int, days: int) -> int:
        """The amount for a funded course of `days` seminar days (see `seminar_days`)."""
        terms = self.course(course)
        if terms.amount is None:
            raise ValueError(f"the programme does not fund {terms.course.value} courses")
        return terms.amount.amount_cents(fee_cents, days)

    # --- registrations ---

    def registered_too_late(self, submitted_at: datetime, seminar_starts_on: date) -> bool:
        """True: decline with `registered_after_start`; the submission came once the seminar had
        begun (at or after 00:00 Europe/Berlin on its first day) and the programme funds none such.
        """
        if submitted_at.utcoffset() is None:
            raise ValueError("submitted_at must carry its UTC offset")
        if self.funds_registrations_after_start:
            return False
        return submitted_at >= seminar_begins_at(seminar_starts_on)

    # --- Kommunen ---

    def eligible(self, kommune: Kommune) -> bool:
        """False: decline with `kommune_not_eligible`."""
        return self.eligibility.admits(kommune)

    def eligible_kommunen(self, directory: Directory) -> list[Kommune]:
        """The directory's eligible Kommunen, by key."""
        return sorted(
            (kommune for kommune in directory.kommunen.values() if self.eligible(kommune)),
            key=lambda kommune: kommune.key,
        )

    def places_in(self, directory: Directory) -> int:
        """All quota places of the directory's eligible Kommunen."""
        return sum(self.quota_for(kommune) for kommune in self.eligible_kommunen(directory))

    # --- letters ---

    @property
    def possible_rule_reasons(self) -> frozenset[str]:
        """The reasons of PROGRAM_RULE_REASONS that this programme can give."""
        follow_up = self.courses.follow_up
        possible = {"quota_exhausted", "kommune_not_eligible"}
        if not follow_up.funded:
            possible.add("course_not_funded")
        elif follow_up.requires_funded_basic:
            possible.add("prerequisite_missing")
        if not self.funds_registrations_after_start:
            possible.add("registered_after_start")
        return frozenset(possible)

    def letter_texts(self) -> Letters:
        """The `[letters]` table; ProgramError if the file has none (letters need it)."""
        if self.letters is None:
            raise ProgramError(f"programme {self.id}: the file has no [letters] table, which letters need")
        return self.letters

    def reason_text(self, reason: str) -> str | None:
        """The programme's wording of a reason that states one of its rules; None for the others
        (the notification service words those) and for reasons the programme never gives."""
        if reason not in PROGRAM_RULE_REASONS:
            return None
        text: str | None = getattr(self.letter_texts().reasons, reason)
        return text


def _refuse_duplicates(what: str, values: Iterable[str]) -> None:
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise ValueError(f"{what} lists {str(value)!r} twice")
        seen.add(value)


_AMOUNT_RULE_TAGS = frozenset({"share_of_fee", "per_seminar_day"})


def _describe(error: ValidationError) -> str:
    """One line per problem: where in the file (dotted path) and what is wrong."""
    problems = []
    for problem in error.errors(include_url=False):
        where = ""
        for part in problem["loc"]:
            if isinstance(part, int):
                where += f"[{part}]"
            elif part not in _AMOUNT_RULE_TAGS:  # pydantic names the union's branch; the file does not
                where += f".{part}" if where else part
        if problem["type"] == "extra_forbidden":
            message = "unknown field: the programme format has no such field"
        elif problem["type"] == "missing":
            message = "missing: the programme format requires this field"
        else:
            message = problem["msg"].removeprefix("Value error, ")
        problems.append(f"{where}: {message}" if where else message)
    if len(problems) == 1:
        return problems[0]
    return f"{len(problems)} problems:\n  " + "\n  ".join(problems)


def parse_program(text: str, origin: str = "<string>") -> Program:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProgramError(f"{origin}: not valid TOML: {exc}") from exc
    try:
        return Program.model_validate(data)
    except ValidationError as exc:
        raise ProgramError(f"{origin}: {_describe(exc)}") from exc


def load_program(path: Path | str) -> Program:
    """Read and validate a programme definition file; ProgramError says what is wrong."""
    path = Path(path)
    try:
        text = path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ProgramError(f"{path}: {exc}") from exc
    return parse_program(text, str(path))
