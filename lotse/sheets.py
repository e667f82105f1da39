"""The sheets of `lotse export`: German headers, one type per column, rows built from what the
databases hold. Pure: the records come in, the sheets go out; writing them is lotse.workbook's.

Personal data appears on the registrations sheet only (the participant's name and email, which
an operator needs to answer a Kommune); an erased registration's personal columns are NULL in the
registration database and stay empty here: nothing is looked up elsewhere.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

if TYPE_CHECKING:
    from services.funding.operations import BudgetFigures

BERLIN = ZoneInfo("Europe/Berlin")

Cell = str | int | bool | Decimal | date | datetime | None


class Kind(StrEnum):
    TEXT = "text"
    INTEGER = "integer"
    EURO = "euro"  # Decimal euros, two places
    DATE = "date"
    DATETIME = "datetime"  # Berlin time, naive (a spreadsheet cell has no time zone)
    BOOLEAN = "boolean"


@dataclass(frozen=True)
class Column:
    header: str
    kind: Kind
    width: int  # characters


@dataclass(frozen=True)
class Sheet:
    title: str  # the sheet's name, and the CSV file's
    columns: tuple[Column, ...]
    rows: tuple[tuple[Cell, ...], ...]


@dataclass(frozen=True)
class RegistrationRecord:
    """A row of the registration database (registrations, or a submission parked for its offer)."""

    registration_id: str
    seminar_id: str
    seminar_title: str | None
    seminar_starts_on: date | None
    given_kommune_key: str
    kommune_key: str
    given_name: str | None  # None: erased (or never known)
    family_name: str | None
    participant_email: str | None
    status: str  # accepted, waitlisted, withdrawn, rejected, waiting_for_seminar
    reason: str | None
    submitted_at: datetime | None
    created_at: datetime


@dataclass(frozen=True)
class FundingRecord:
    registration_id: str
    kommune_key: str
    seminar_id: str
    seminar_starts_on: date
    course: str
    status: str  # approved, waitlisted, declined, released, withdrawn
    period_id: str | None
    reason: str | None
    amount_cents: int | None
    promoted: bool
    decided_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class KommuneRecord:
    """A Kommune of the directory: every eligible one, and any other that registered."""

    key: str
    name: str
    kind: str  # German label: Landkreis, Einheitsgemeinde, ...
    kreis: str  # the Kreis it lies in (itself for a Kreis); "" for a Bezirk
    eligible: bool
    places: int | None  # funded places (the funding database's quota); None: no quota


def euros(cents: int | None) -> Decimal | None:
    """Cents as exact euros for a currency cell."""
    return None if cents is None else Decimal(cents).scaleb(-2)


def local(moment: datetime | None) -> datetime | None:
    """A time in Berlin, without its zone (spreadsheets know none)."""
    return None if moment is None else moment.astimezone(BERLIN).replace(tzinfo=None)


def registrations_sheet(records: Sequence[RegistrationRecord], kommune_names: dict[str, str]) -> Sheet:
    columns = (
        Column("Registrierung", Kind.TEXT, 16),
        Column("Eingereicht (Berlin)", Kind.DATETIME, 18),
        Column("Erfasst (Berlin)", Kind.DATETIME, 18),
        Column("Gemeindeschlüssel", Kind.TEXT, 15),
        Column("Gemeindeschlüssel (angegeben)", Kind.TEXT, 15),
        Column("Kommune", Kind.TEXT, 28),
        Column("Seminar", Kind.TEXT, 18),
        Column("Seminartitel", Kind.TEXT, 36),
        Column("Seminarbeginn", Kind.DATE, 12),
        Column("Vorname", Kind.TEXT, 14),
        Column("Nachname", Kind.TEXT, 16),
        Column("E-Mail (Teilnehmende)", Kind.TEXT, 30),
        Column("Status", Kind.TEXT, 20),
        Column("Grund", Kind.TEXT, 24),
    )
    rows = tuple(
        (
            record.registration_id,
            local(record.submitted_at),
            local(record.created_at),
            record.kommune_key,
            record.given_kommune_key,
            kommune_names.get(record.kommune_key),
            record.seminar_id,
            record.seminar_title,
            record.seminar_starts_on,
            record.given_name,
            record.family_name,
            record.participant_email,
            record.status,
            record.reason,
        )
        for record in sorted(records, key=lambda r: (r.submitted_at or r.created_at, r.registration_id))
    )
    return Sheet("Registrierungen", columns, rows)


def decisions_sheet(records: Sequence[FundingRecord], kommune_names: dict[str, str]) -> Sheet:
    columns = (
        Column("Registrierung", Kind.TEXT, 16),
        Column("Entschieden (Berlin)", Kind.DATETIME, 18),
        Column("Zuletzt geändert (Berlin)", Kind.DATETIME, 18),
        Column("Gemeindeschlüssel", Kind.TEXT, 15),
        Column("Kommune", Kind.TEXT, 28),
        Column("Seminar", Kind.TEXT, 18),
        Column("Seminarbeginn", Kind.DATE, 12),
        Column("Kurs", Kind.TEXT, 10),
        Column("Status", Kind.TEXT, 12),
        Column("Grund", Kind.TEXT, 24),
        Column("Förderzeitraum", Kind.TEXT, 12),
        Column("Betrag", Kind.EURO, 14),
        Column("Nachgerückt", Kind.BOOLEAN, 12),
    )
    rows = tuple(
        (
            record.registration_id,
            local(record.decided_at),
            local(record.updated_at),
            record.kommune_key,
            kommune_names.get(record.kommune_key),
            record.seminar_id,
            record.seminar_starts_on,
            record.course,
            record.status,
            record.reason,
            record.period_id,
            euros(record.amount_cents),
            record.promoted,
        )
        for record in sorted(records, key=lambda r: (r.decided_at, r.registration_id))
    )
    return Sheet("Förderentscheidungen", columns, rows)


def kommunen_sheet(kommunen: Sequence[KommuneRecord], fundings: Sequence[FundingRecord]) -> Sheet:
    """Per Kommune: eligible or not, its places, how many are funded now and how many wait."""
    funded = Counter(record.kommune_key for record in fundings if record.status == "approved")
    waiting = Counter(record.kommune_key for record in fundings if record.status == "waitlisted")
    columns = (
        Column("Gemeindeschlüssel", Kind.TEXT, 15),
        Column("Kommune", Kind.TEXT, 30),
        Column("Art", Kind.TEXT, 22),
        Column("Kreis", Kind.TEXT, 26),
        Column("Förderfähig", Kind.BOOLEAN, 12),
        Column("Plätze", Kind.INTEGER, 9),
        Column("Gefördert", Kind.INTEGER, 10),
        Column("Wartend", Kind.INTEGER, 9),
    )
    rows = tuple(
        (
            kommune.key,
            kommune.name,
            kommune.kind,
            kommune.kreis,
            kommune.eligible,
            kommune.places,
            funded[kommune.key],
            waiting[kommune.key],
        )
        for kommune in sorted(kommunen, key=lambda k: k.key)
    )
    return Sheet("Kommunen", columns, rows)


def budget_sheet(periods: Sequence[BudgetFigures]) -> Sheet:
    columns = (
        Column("Förderzeitraum", Kind.TEXT, 14),
        Column("Beginn", Kind.DATE, 12),
        Column("Ende", Kind.DATE, 12),
        Column("Budget", Kind.EURO, 16),
        Column("Bewilligt", Kind.EURO, 16),
        Column("Zurückgegeben", Kind.EURO, 16),
        Column("Gebunden", Kind.EURO, 16),
        Column("Verbleibend", Kind.EURO, 16),
        Column("Wartend", Kind.INTEGER, 9),
        Column("Geschlossen", Kind.BOOLEAN, 12),
    )
    rows = tuple(
        (
            period.period_id,
            period.starts_on,
            period.ends_on,
            euros(period.budget_cents),  # empty: unlimited
            euros(period.approved_cents),
            euros(period.released_cents),
            euros(period.committed_cents),
            euros(period.remaining_cents),
            period.waitlisted,
            period.closed,
        )
        for period in periods
    )
    return Sheet("Budget je Zeitraum", columns, rows)
