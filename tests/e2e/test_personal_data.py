"""`lotse erase` and `lotse person export` as an operator runs them against the stack (ADR 0018):
the read-only operator role resolves and exports, the three services erase and confirm."""

from __future__ import annotations

import json
import uuid

from shared.topics import Topics
from tests.e2e.test_demo import publish, submission, wait_for_notifications
from tests.support.stack import Stack

SEMINAR = "NSI-GDPR-2030-01"


def seminar() -> bytes:
    return json.dumps(
        {
            "event_id": str(uuid.uuid4()),
            "event_type": "seminar.published",
            "schema_version": 1,
            "occurred_at": "2029-11-02T09:00:00+01:00",
            "source": "nsi-portal",
            "data": {
                "seminar_id": SEMINAR,
                "title": "Datenschutz im Rathaus",
                "starts_on": "2030-03-04",
                "ends_on": "2030-03-05",
                "location": "Hannover",
                "fee_cents": 45_000,
                "capacity": 5,
            },
        }
    ).encode()


def test_an_operator_exports_and_erases_a_participants_data(stack: Stack) -> None:
    registration_id = f"REG-GDPR-{uuid.uuid4().hex[:8]}"
    email = f"{registration_id.lower()}@kommunen.example"  # as submission() names the participant
    contact = f"gdpr-{uuid.uuid4().hex[:8]}@kommunen.example"
    publish(stack, Topics().portal_seminars, seminar(), SEMINAR.encode())
    publish(
        stack, Topics().portal_registrations, submission(registration_id, "03241", SEMINAR, contact), b"03241"
    )
    wait_for_notifications(stack, registration_id, "notification.sent", 2)

    exported = json.loads(stack.lotse("person", "export", "--email", email.upper()).stdout)
    assert exported["registration_ids"] == [registration_id]
    (stored,) = exported["registration"]["registrations"]
    assert (stored["participant_email"], stored["contact_email"]) == (email, contact)
    assert {letter["recipient"] for letter in exported["notification"]["letters"]} == {contact}
    assert [f["registration_id"] for f in exported["funding"]["fundings"]] == [registration_id]

    assert stack.lotse("erase", "--reason", "Antrag", check=False).returncode == 2  # no target
    erased = stack.lotse("erase", "--email", email, "--reason", "Antrag nach Art. 17").stdout
    for service in ("registration", "funding", "notification"):
        assert service in erased
    assert "done" in erased and registration_id in erased

    after = json.loads(stack.lotse("person", "export", "--email", email).stdout)
    assert after["registration_ids"] == []
    assert stack.lotse("erase", "--email", email, "--reason", "noch einmal", check=False).returncode == 1
    again = stack.lotse("erase", "--registration", registration_id, "--reason", "noch einmal").stdout
    assert "marked: 0" in again  # erased before: nothing left to erase
    audit = stack.lotse("audit", "--action", "erase").stdout
    assert "Antrag nach Art. 17" in audit and email not in audit
