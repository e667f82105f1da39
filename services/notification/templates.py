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

from shared.events import RejectionReason, WithdrawalReason
from shared.program import PROGRAM_RULE_REASONS, Course, Program, ProgramError

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
# The reasons that state a programme rule (shared.program.PROGRAM_RULE_REASONS) are worded by the
# programme file (`ProgrammeWording.reasons`); these are the reasons that read the same in every
# programme. The last three are a fallback only: a programme words them where it can give them.
FUNDING_WAITLIST_REASONS: Mapping[str, str] = {
    "budget_exhausted": "Die Fördermittel des laufenden Förderzeitraums sind derzeit ausgeschöpft.",
}
FUNDING_DECLINE_REASONS: Mapping[str, str] = {
    "unknown_kommune": "Die Kommune ist im Gemeindeverzeichnis nicht verzeichnet.",
    "outside_funding_period": "Das Seminar liegt außerhalb eines Förderzeitraums.",
    "period_closed": "Der Förderzeitraum ist bereits abgeschlossen.",
    "course_not_funded": "Das Programm fördert diese Art von Kurs nicht.",
    "prerequisite_missing": (
        "Die teilnehmende Person hat den geförderten Grundkurs, den dieser Kurs voraussetzt, "
        "noch nicht besucht."
    ),
    "registered_after_start": "Die Anmeldung ging erst nach Beginn des Seminars ein.",
}
# Reasons that only the programme can word (required in every programme file).
_PROGRAMME_ONLY_REASONS = {
    "funding.waitlisted": frozenset({"quota_exhausted"}),
    "funding.declined": frozenset({"kommune_not_eligible"}),
}


REASONS_BY_EVENT_TYPE: Mapping[str, Mapping[Any, str]] = {
    "registration.rejected": REJECTION_REASONS,
    "registration.withdrawn": WITHDRAWAL_REASONS,
    "funding.waitlisted": FUNDING_WAITLIST_REASONS,
    "funding.declined": FUNDING_DECLINE_REASONS,
}


@dataclass(frozen=True)
class LandNames:
    """The Land in the four cases, and the relative pronoun that refers back to it ("das", "der")."""

    nominative: str
    accusative: str
    dative: str
    genitive: str
    relative_pronoun: str


_ARTICLES = ("der", "die", "das")


@dataclass(frozen=True)
class ProgrammeWording:
    """What the letters say about the programme, from its file's `[letters]` table (ADR 0014)."""

    land: LandNames
    amount_in_words: Mapping[str, str]  # by course: "basic", and "follow_up" where funded
    places_in_words: str
    takes_quota_place: Mapping[str, bool]  # by course
    reasons: Mapping[str, str]  # the programme rule reasons the programme can give

    @classmethod
    def of(cls, program: Program) -> ProgrammeWording:
        texts = program.letter_texts()
        article = texts.land.nominative.split(" ", 1)[0]
        if article not in _ARTICLES:
            # The letters refer back to the Land with a relative pronoun ("das Land ..., das").
            raise ProgramError(
                f"programme {program.id}: letters.land.nominative must begin with its article "
                f"({', '.join(_ARTICLES)}), not {texts.land.nominative!r}"
            )
        amounts = {Course.BASIC.value: texts.amount_in_words.basic}
        if texts.amount_in_words.follow_up is not None:
            amounts[Course.FOLLOW_UP.value] = texts.amount_in_words.follow_up
        reasons = {
            reason: text
            for reason in PROGRAM_RULE_REASONS
            if (text := program.reason_text(reason)) is not None
        }
        return cls(
            land=LandNames(
                nominative=texts.land.nominative,
                accusative=texts.land.accusative,
                dative=texts.land.dative,
                genitive=texts.land.genitive,
                relative_pronoun=article,
            ),
            amount_in_words=amounts,
            places_in_words=texts.places_in_words,
            takes_quota_place={course.value: program.takes_quota_place(course) for course in Course},
            reasons=reasons,
        )

    def course_context(self, course: str | None) -> dict[str, Any]:
        """The programme's words for a letter about a course (the basic course if not known)."""
        course = course or Course.BASIC.value
        return {
            "land": self.land,
            "course": course,
            "course_funded": course in self.amount_in_words,
            "amount_in_words": self.amount_in_words.get(course),
            "places_in_words": self.places_in_words,
            "takes_quota_place": self.takes_quota_place.get(course, False),
        }


def reason_text(event_type: str, reason: str, wording: ProgrammeWording | None = None) -> str:
    """A reason in German: the programme's wording of its rules, else the service's own."""
    if event_type.startswith("funding.") and wording is not None and reason in wording.reasons:
        return wording.reasons[reason]
    if reason in _PROGRAMME_ONLY_REASONS.get(event_type, ()):
        raise ValueError(f"the programme words the reason {reason!r}, but no programme was given")
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
