"""Which letter an event gets, the German wording of reasons, and rendering with Jinja2.

Pure apart from reading the template files that ship with the package.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import Any

import jinja2

from shared.events import (
    FundingDeclineReason,
    FundingWaitlistReason,
    RejectionReason,
    WithdrawalReason,
)

TEMPLATE_DIR = Path(__file__).parent / "templates"


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    text: str
    html: str


class Template(StrEnum):
    REGISTRATION_ACCEPTED = "registration_accepted"
    REGISTRATION_WAITLISTED = "registration_waitlisted"
    REGISTRATION_REJECTED = "registration_rejected"
    REGISTRATION_WITHDRAWN = "registration_withdrawn"
    FUNDING_APPROVED = "funding_approved"
    FUNDING_PROMOTED = "funding_promoted"
    FUNDING_WAITLISTED = "funding_waitlisted"
    FUNDING_DECLINED = "funding_declined"
    FUNDING_RELEASED = "funding_released"


_TEMPLATE_BY_EVENT_TYPE = {
    "registration.accepted": Template.REGISTRATION_ACCEPTED,
    "registration.waitlisted": Template.REGISTRATION_WAITLISTED,
    "registration.rejected": Template.REGISTRATION_REJECTED,
    "registration.withdrawn": Template.REGISTRATION_WITHDRAWN,
    "funding.waitlisted": Template.FUNDING_WAITLISTED,
    "funding.declined": Template.FUNDING_DECLINED,
    "funding.released": Template.FUNDING_RELEASED,
}


def template_for(event_type: str, promoted: bool = False) -> Template:
    """The letter for an outcome; an approval that moved up from the waitlist is a Nachrücken letter."""
    if event_type == "funding.approved":
        return Template.FUNDING_PROMOTED if promoted else Template.FUNDING_APPROVED
    try:
        return _TEMPLATE_BY_EVENT_TYPE[event_type]
    except KeyError:
        raise ValueError(f"no letter for event type {event_type!r}") from None


REJECTION_REASONS: Mapping[RejectionReason, str] = {
    "unknown_seminar": "Das angegebene Seminar ist im Programm nicht vorhanden.",
    "seminar_cancelled": "Das Seminar wurde abgesagt.",
    "duplicate_participant": "Die teilnehmende Person ist für dieses Seminar bereits angemeldet.",
    "registration_id_conflict": "Die Anmeldenummer wurde bereits für eine andere Anmeldung verwendet.",
    "invalid_kommune_key": "Der angegebene Gemeindeschlüssel ist ungültig.",
}
WITHDRAWAL_REASONS: Mapping[WithdrawalReason, str] = {
    "withdrawn_by_portal": "Die Anmeldung wurde über das Anmeldeportal zurückgezogen.",
    "seminar_cancelled": "Das Seminar wurde abgesagt.",
}
FUNDING_WAITLIST_REASONS: Mapping[FundingWaitlistReason, str] = {
    "quota_exhausted": (
        "Für Ihre Kommune sind bereits zwei Teilnehmende gefördert; mehr sieht das Programm nicht vor."
    ),
    "budget_exhausted": "Die Fördermittel des laufenden Förderzeitraums sind derzeit ausgeschöpft.",
}
FUNDING_DECLINE_REASONS: Mapping[FundingDeclineReason, str] = {
    "unknown_kommune": "Die Kommune ist im Gemeindeverzeichnis nicht verzeichnet.",
    "kommune_not_eligible": (
        "Die Kommune ist nicht förderberechtigt: gefördert werden Landkreise, kreisfreie Städte, "
        "Einheitsgemeinden und Samtgemeinden in Niedersachsen, nicht aber Mitgliedsgemeinden."
    ),
    "outside_funding_period": "Das Seminar liegt außerhalb eines Förderzeitraums.",
    "period_closed": "Der Förderzeitraum ist bereits abgeschlossen.",
    "prerequisite_missing": "Für den Aufbaukurs fehlt ein geförderter Grundkurs.",
    "registered_after_start": "Die Anmeldung ging erst nach Beginn des Seminars ein.",
    "course_not_funded": "Das Programm fördert diese Art von Kurs nicht.",
}


REASONS_BY_EVENT_TYPE: Mapping[str, Mapping[Any, str]] = {
    "registration.rejected": REJECTION_REASONS,
    "registration.withdrawn": WITHDRAWAL_REASONS,
    "funding.waitlisted": FUNDING_WAITLIST_REASONS,
    "funding.declined": FUNDING_DECLINE_REASONS,
}


def reason_text(event_type: str, reason: str) -> str:
    return REASONS_BY_EVENT_TYPE[event_type][reason]


def format_euros(cents: int) -> str:
    """German currency format: 123456 -> "1.234,56 €"."""
    euros, rest = divmod(cents, 100)
    return f"{euros:,}".replace(",", ".") + f",{rest:02d} €"


def format_date(day: date) -> str:
    return day.strftime("%d.%m.%Y")


def format_period(starts_on: date, ends_on: date) -> str:
    if starts_on == ends_on:
        return format_date(starts_on)
    return f"{format_date(starts_on)} bis {format_date(ends_on)}"


_SUBJECTS = {
    Template.REGISTRATION_ACCEPTED: "Anmeldebestätigung Digitallotsen-Seminar ({registration})",
    Template.REGISTRATION_WAITLISTED: "Warteliste Digitallotsen-Seminar: Platz {position} ({registration})",
    Template.REGISTRATION_REJECTED: (
        "Ihre Anmeldung zum Digitallotsen-Seminar konnte nicht angenommen werden ({registration})"
    ),
    Template.REGISTRATION_WITHDRAWN: "Abmeldung vom Digitallotsen-Seminar bestätigt ({registration})",
    Template.FUNDING_APPROVED: "Förderung bewilligt: {amount} Landesförderung ({registration})",
    Template.FUNDING_PROMOTED: "Nachrücken: Förderung nun bewilligt, {amount} ({registration})",
    Template.FUNDING_WAITLISTED: "Förderung: Warteliste, Platz {position} ({registration})",
    Template.FUNDING_DECLINED: "Förderung abgelehnt ({registration})",
    Template.FUNDING_RELEASED: "Förderung freigegeben ({registration})",
}
_SEMINAR_CANCELLED_SUBJECT = "Absage: Das Digitallotsen-Seminar findet nicht statt ({registration})"


def subject_for(template: Template, context: Mapping[str, Any]) -> str:
    pattern = _SUBJECTS[template]
    if template is Template.REGISTRATION_WITHDRAWN and context.get("reason") == "seminar_cancelled":
        pattern = _SEMINAR_CANCELLED_SUBJECT
    return pattern.format_map({**context, "registration": f"Anmeldung {context['registration_id']}"})


def registration_phrase(facts: Mapping[str, Any]) -> str:
    """ "die Anmeldung R-1 von Erika Mustermann zum Seminar „…“ (01.02.2023 bis 03.02.2023)", as known."""
    phrase = f"die Anmeldung {facts['registration_id']}"
    if facts.get("participant"):
        phrase += f" von {facts['participant']}"
    if facts.get("seminar_title"):
        phrase += f" zum Seminar „{facts['seminar_title']}“"
    elif facts.get("seminar_id"):
        phrase += f" zum Seminar {facts['seminar_id']}"
    if facts.get("seminar_dates"):
        phrase += f" ({facts['seminar_dates']})"
    return phrase


def _capitalize_first(text: str) -> str:
    return text[:1].upper() + text[1:]


def _html_only(name: str | None) -> bool:
    return name is not None and name.endswith(".html.j2")


_ENVIRONMENT = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
    # The templates ship with the package: no need to look at the files again for every letter.
    auto_reload=False,
    autoescape=_html_only,
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
    trim_blocks=True,
    lstrip_blocks=True,
)
_ENVIRONMENT.filters["capitalize_first"] = _capitalize_first


def render(template: Template, context: Mapping[str, Any]) -> RenderedEmail:
    """The subject and both bodies; `context` holds the letter's facts and the office's details."""
    subject = subject_for(template, context)
    full = {**context, "subject": subject, "registration_phrase": registration_phrase(context)}
    return RenderedEmail(
        subject=subject,
        text=_ENVIRONMENT.get_template(f"{template}.txt.j2").render(full),
        html=_ENVIRONMENT.get_template(f"{template}.html.j2").render(full),
    )
