"""The letters kept as golden files: every template and reason variant, built from fixed events.

`python -m tests.unit.notification.golden_cases` rewrites the files; review the diff before
committing it, since these bytes are what the Kommunen receive.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from services.notification.compose import letter
from services.notification.domain import NamedKommune, PlannedEmail, plan_email, registration_data
from tests.unit.notification.letters import OFFICE
from tests.unit.notification.samples import envelope, event_data

GOLDEN_DIR = Path(__file__).parent / "golden"
GOETTINGEN = NamedKommune("03159", "Göttingen", "Landkreis")

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


def planned(name: str, event_type: str, overrides: dict[str, Any]) -> PlannedEmail:
    known = registration_data(envelope("registration.accepted"))
    event_id = uuid.uuid5(uuid.NAMESPACE_URL, f"golden/{name}")
    event = envelope(event_type, event_data(event_type, **overrides), event_id)
    return plan_email(event, known, GOETTINGEN)


def golden_letter(name: str, event_type: str, overrides: dict[str, Any]) -> bytes:
    return letter(planned(name, event_type, overrides), OFFICE).message


def golden_path(programme: str, name: str) -> Path:
    return GOLDEN_DIR / programme / f"{name}.eml"


def main() -> None:
    for name, event_type, overrides in CASES:
        path = golden_path("niedersachsen", name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(golden_letter(name, event_type, overrides))


if __name__ == "__main__":
    main()
