"""The letters kept as golden files: every template and reason variant, built from fixed events,
for each programme.

`python -m tests.unit.notification.golden_cases` writes the files of the letters that carry a
calendar entry and of the programmes other than Niedersachsen; Niedersachsen's letters without
a calendar entry are today's bytes and are never rewritten. Review the diff before committing:
these bytes are what the Kommunen receive.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from services.notification.compose import Office, letter, sender_address
from services.notification.domain import NamedKommune, PlannedEmail, plan_email, registration_data
from services.notification.templates import ProgrammeWording
from shared.program import PROGRAMS_DIR, load_program
from tests.unit.notification.letters import OFFICE, WORDING
from tests.unit.notification.samples import envelope, event_data, registered

GOLDEN_DIR = Path(__file__).parent / "golden"
LOCATION = "Seminarzentrum, Raum 2"


@dataclass(frozen=True)
class Programme:
    name: str  # the programme file's stem, and the golden folder
    office: Office
    wording: ProgrammeWording
    kommune: NamedKommune
    contact: str


def _programme(name: str, kommune: NamedKommune, contact: str) -> Programme:
    program = load_program(PROGRAMS_DIR / f"{name}.toml")
    office = program.letter_texts().office
    return Programme(
        name=name,
        office=Office(
            sender=sender_address(office.mail_from),
            name=office.name,
            organisation=office.organisation,
            address_lines=tuple(office.address_lines),
        ),
        wording=ProgrammeWording.of(program),
        kommune=kommune,
        contact=contact,
    )


NIEDERSACHSEN = Programme(
    "niedersachsen",
    OFFICE,
    WORDING,
    NamedKommune("03159", "Göttingen", "Landkreis"),
    "digitalisierung@landkreisgoettingen.de",
)
BAYERN = _programme(
    "bayern", NamedKommune("09188", "Starnberg", "Landkreis"), "digital@lra-starnberg.example"
)
BADEN_WUERTTEMBERG = _programme(
    "baden-wuerttemberg", NamedKommune("08115", "Böblingen", "Landkreis"), "digital@lrabb.example"
)
PROGRAMMES = (NIEDERSACHSEN, BAYERN, BADEN_WUERTTEMBERG)

# name, event type, overrides of the event's data
CASES: list[tuple[str, str, dict[str, Any]]] = [
    ("registration_accepted", "registration.accepted", {}),
    ("registration_waitlisted", "registration.waitlisted", {}),
    ("registration_rejected", "registration.rejected", {}),
    ("registration_withdrawn", "registration.withdrawn", {}),
    ("registration_withdrawn_seminar_cancelled", "registration.withdrawn", {"reason": "seminar_cancelled"}),
    ("funding_approved", "funding.approved", {}),
    ("funding_promoted", "funding.approved", {"promoted": True}),
    ("funding_waitlisted_quota", "funding.waitlisted", {}),
    ("funding_waitlisted_budget", "funding.waitlisted", {"reason": "budget_exhausted"}),
    ("funding_declined_not_eligible", "funding.declined", {}),
    ("funding_declined_unknown_kommune", "funding.declined", {"reason": "unknown_kommune"}),
    ("funding_declined_outside_period", "funding.declined", {"reason": "outside_funding_period"}),
    ("funding_declined_period_closed", "funding.declined", {"reason": "period_closed"}),
    ("funding_released", "funding.released", {}),
]
# The letters of Niedersachsen's programme that carry a calendar entry; all others are today's.
WITH_CALENDAR = frozenset(
    {"registration_accepted", "registration_withdrawn", "registration_withdrawn_seminar_cancelled"}
)
# The reasons that funding.declined gains with issue 19, worded by the programme or the service.
NEW_DECLINE_REASONS = ("course_not_funded", "prerequisite_missing", "registered_after_start")


def planned(
    programme: Programme,
    name: str,
    event_type: str,
    overrides: dict[str, Any],
    registration: dict[str, Any] | None = None,
    **known_overrides: Any,
) -> PlannedEmail:
    """The letter of a case; `registration` overrides the accepted registration it is about,
    `known_overrides` what was learnt of it (fields of the contract's issue 19, such as `course`
    and `seminar_location`, that shared.events may not carry yet)."""
    kommune = programme.kommune
    accepted = registered(kommune_key=kommune.key, contact_email=programme.contact, **(registration or {}))
    known = replace(registration_data(envelope("registration.accepted", accepted)), **known_overrides)
    event_id = uuid.uuid5(uuid.NAMESPACE_URL, f"golden/{name}")
    data = event_data(event_type, **{k: v for k, v in overrides.items() if k != "reason"})
    data["kommune_key"] = kommune.key
    if "contact_email" in data:
        data["contact_email"] = programme.contact
    event = envelope(event_type, data, event_id)
    if "reason" in overrides:
        # Set past the contract's check: the reasons of issue 19 may not be in shared.events yet.
        event = event.model_copy(
            update={"data": event.data.model_copy(update={"reason": overrides["reason"]})}
        )
    return plan_email(event, known, kommune)


def render(programme: Programme, planned_email: PlannedEmail) -> bytes:
    return letter(planned_email, programme.office, programme.wording).message


def without_calendar(planned_email: PlannedEmail) -> PlannedEmail:
    return replace(planned_email, calendar=None)


def golden_path(programme: Programme, name: str) -> Path:
    return GOLDEN_DIR / programme.name / f"{name}.eml"


def programme_cases(programme: Programme) -> list[tuple[str, str, dict[str, Any]]]:
    """Every case of a programme: Niedersachsen's, and for the others also their new reasons."""
    if programme is NIEDERSACHSEN:
        return CASES
    return [
        *CASES,
        *(
            (f"funding_declined_{reason}", "funding.declined", {"reason": reason})
            for reason in NEW_DECLINE_REASONS
        ),
    ]


def main() -> None:
    for programme in PROGRAMMES:
        for name, event_type, overrides in programme_cases(programme):
            if programme is NIEDERSACHSEN and name not in WITH_CALENDAR:
                continue
            path = golden_path(programme, name)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(render(programme, planned(programme, name, event_type, overrides)))


if __name__ == "__main__":
    main()
