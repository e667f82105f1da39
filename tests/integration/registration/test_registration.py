"""The registration service end to end: real Kafka and PostgreSQL, portal in, outcomes out."""

from __future__ import annotations

import json
import uuid
from datetime import datetime

import pytest

from shared.dlq import HEADER_ERROR, HEADER_SERVICE, HEADER_SOURCE_OFFSET, HEADER_SOURCE_TOPIC
from shared.topics import dlq_topic
from tests.integration.registration.portal import (
    Portal,
    cancellation,
    history,
    one,
    outcomes,
    participant,
    seminar,
    submission,
    withdrawal,
)
from tests.support.kafka import header, read_topic
from tests.support.service import ServiceFactory
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

HANNOVER_AGS = "03241001"
HANNOVER_ARS = "032410001001"


async def test_seats_are_given_first_come_first_served_and_freed_seats_promote_the_waitlist(
    portal: Portal, registration_service: ServiceFactory
) -> None:
    async with registration_service():
        await portal.seminars(seminar("S-1", 2))
        # One Kommune key: one partition, so the submissions are processed in this order.
        first = submission("R-1", HANNOVER_AGS, "S-1")
        await portal.registrations(
            first,
            *(submission(f"R-{n}", HANNOVER_AGS, "S-1") for n in (2, 3, 4)),
        )
        records = await portal.outcomes(4)
        assert history(records) == {
            "R-1": ["registration.accepted"],
            "R-2": ["registration.accepted"],
            "R-3": ["registration.waitlisted"],
            "R-4": ["registration.waitlisted"],
        }
        assert one(records, "registration.waitlisted", "R-3")["position"] == 1
        assert one(records, "registration.waitlisted", "R-4")["position"] == 2
        accepted = one(records, "registration.accepted", "R-1")
        assert accepted == {
            "registration_id": "R-1",
            "kommune_key": HANNOVER_ARS,
            "seminar_id": "S-1",
            "seminar_title": "Datenschutz im Rathaus",
            "seminar_starts_on": "2030-03-04",
            "seminar_ends_on": "2030-03-05",
            "fee_cents": 45_000,
            "participant": participant("R-1"),
            "contact_email": first[1]["data"]["contact_email"],
            "course": "basic",
            "seminar_location": "Hannover",
            "submitted_at": accepted["submitted_at"],
        }
        assert datetime.fromisoformat(accepted["submitted_at"]) == datetime.fromisoformat(
            first[1]["occurred_at"]
        )
        assert {record.key for record in records} == {HANNOVER_ARS.encode()}
        accepted_envelope = next(e for e in outcomes(records) if e["data"]["registration_id"] == "R-1")
        assert accepted_envelope["correlation_id"] == first[1]["event_id"]
        assert accepted_envelope["source"] == "registration"

        # A seat frees up: the head of the waitlist takes it and everyone behind moves up.
        await portal.registrations(withdrawal("R-1", HANNOVER_AGS))
        records = await portal.outcomes(6)
        assert one(records, "registration.withdrawn", "R-1") == {
            "registration_id": "R-1",
            "kommune_key": HANNOVER_ARS,
            "seminar_id": "S-1",
            "contact_email": first[1]["data"]["contact_email"],
            "reason": "withdrawn_by_portal",
        }
        assert history(records)["R-3"] == ["registration.waitlisted", "registration.accepted"]
        await portal.registrations(submission("R-5", HANNOVER_AGS, "S-1"))
        records = await portal.outcomes(7)
        assert one(records, "registration.waitlisted", "R-5")["position"] == 2  # R-4 is now first

        # A smaller capacity takes no seat away, and hands out none until a seat is below it.
        await portal.seminars(seminar("S-1", 1))
        assert (await portal.statuses())["R-2"] == "accepted"
        await portal.registrations(withdrawal("R-2", HANNOVER_AGS))
        records = await portal.outcomes(8)
        assert history(records)["R-2"] == ["registration.accepted", "registration.withdrawn"]

        # A larger capacity accepts from the head of the waitlist.
        await portal.seminars(seminar("S-1", 3))
        records = await portal.outcomes(10)

        # Withdrawing an already withdrawn or unknown registration publishes nothing; the next
        # submission on the same partition shows both were processed.
        await portal.registrations(
            withdrawal("R-1", HANNOVER_AGS),
            withdrawal("R-99", HANNOVER_AGS),
            submission("R-6", HANNOVER_AGS, "S-1"),
        )
        records = await portal.outcomes(11, settle=2)

    assert history(records) == {
        "R-1": ["registration.accepted", "registration.withdrawn"],
        "R-2": ["registration.accepted", "registration.withdrawn"],
        "R-3": ["registration.waitlisted", "registration.accepted"],
        "R-4": ["registration.waitlisted", "registration.accepted"],
        "R-5": ["registration.waitlisted", "registration.accepted"],
        "R-6": ["registration.waitlisted"],
    }
    assert one(records, "registration.waitlisted", "R-6")["position"] == 1
    assert await portal.statuses() == {
        "R-1": "withdrawn",
        "R-2": "withdrawn",
        "R-3": "accepted",
        "R-4": "accepted",
        "R-5": "accepted",
        "R-6": "waitlisted",
    }
    assert await portal.db.fetchval("SELECT accepted_count FROM seminars WHERE seminar_id = 'S-1'") == 3


async def test_every_rejection_reason_and_every_key_form(
    portal: Portal, registration_service: ServiceFactory
) -> None:
    braunschweig = "03101"  # a kreisfreie Stadt's Kreis key
    original = submission("R-1", braunschweig, "S-1")
    # No grace: a submission for an unknown seminar is rejected at once.
    async with registration_service(seminar_grace_seconds=0):
        await portal.seminars(
            seminar("S-1", 10),
            seminar("S-2", 10),
            cancellation("S-2"),
        )
        shouting = {**participant("R-1"), "email": participant("R-1")["email"].upper()}
        await portal.registrations(
            original,
            submission("R-2", braunschweig, "S-1", person=shouting),
            submission("R-1", braunschweig, "S-1", contact_email="andere@kommune.example"),
            withdrawal("R-1", braunschweig),
            # Once withdrawn, the same participant may register again.
            submission("R-10", braunschweig, "S-1", person=participant("R-1")),
            submission("R-3", "03241", "S-404"),
            submission("R-4", "031515401", "S-2"),
            submission("R-5", "0324", "S-1"),
            submission("R-6", "03151002", "S-1"),
            submission("R-7", "03999", "S-1"),
            submission("R-8", "032410001", "S-1"),
        )
        records = await portal.outcomes(11, settle=2)

    assert history(records) == {
        "R-1": ["registration.accepted", "registration.rejected", "registration.withdrawn"],
        "R-2": ["registration.rejected"],
        "R-10": ["registration.accepted"],
        "R-3": ["registration.rejected"],
        "R-4": ["registration.rejected"],
        "R-5": ["registration.rejected"],
        "R-6": ["registration.accepted"],
        "R-7": ["registration.accepted"],
        "R-8": ["registration.accepted"],
    }
    reasons = {
        (event["data"]["registration_id"], event["data"]["reason"], event["data"]["kommune_key"])
        for event in outcomes(records)
        if event["event_type"] == "registration.rejected"
    }
    assert reasons == {
        ("R-1", "registration_id_conflict", "031010000000"),
        ("R-2", "duplicate_participant", "031010000000"),
        ("R-3", "unknown_seminar", "03241"),
        ("R-4", "seminar_cancelled", "031515401"),
        ("R-5", "invalid_kommune_key", "0324"),  # reported back as it was given
    }
    keys = {one(records, "registration.accepted", rid)["kommune_key"] for rid in ("R-6", "R-7", "R-8")}
    assert keys == {"031515401002", "03999", HANNOVER_ARS}
    for record in records:
        assert record.key.decode() == json.loads(record.value)["data"]["kommune_key"]
    # The conflicting content did not replace the first.
    stored_contact = await portal.db.fetchval(
        "SELECT contact_email FROM registrations WHERE registration_id = 'R-1'"
    )
    assert stored_contact == original[1]["data"]["contact_email"]


async def test_a_duplicate_event_produces_nothing_new(
    portal: Portal, registration_service: ServiceFactory
) -> None:
    published = seminar("S-1", 1)
    key, first = submission("R-1", HANNOVER_AGS, "S-1")
    same_content = {**first, "event_id": str(uuid.uuid4())}
    other_key_form = {**first, "event_id": str(uuid.uuid4())}
    other_key_form["data"] = {**first["data"], "kommune_key": HANNOVER_ARS}
    withdrawn = withdrawal("R-1", HANNOVER_AGS)
    async with registration_service():
        await portal.seminars(published, published)
        await portal.registrations(
            (key, first),
            (key, first),  # redelivered event_id
            (key, same_content),  # same registration_id and content, new event_id
            (HANNOVER_ARS, other_key_form),  # the same Kommune in its canonical form
            submission("R-2", HANNOVER_AGS, "S-1"),
            submission("R-3", HANNOVER_ARS, "S-1"),
        )
        records = await portal.outcomes(3, settle=2)
        assert history(records) == {
            "R-1": ["registration.accepted"],
            "R-2": ["registration.waitlisted"],
            "R-3": ["registration.waitlisted"],
        }
        await portal.seminars(published)
        await portal.registrations(
            withdrawn,
            withdrawn,  # redelivered event_id
            withdrawal("R-1", HANNOVER_AGS),  # already withdrawn
        )
        records = await portal.outcomes(5, settle=3)

    assert len(records) == 5
    promoted = [rid for rid in ("R-2", "R-3") if "registration.accepted" in history(records)[rid]]
    assert len(promoted) == 1
    assert history(records)["R-1"] == ["registration.accepted", "registration.withdrawn"]
    assert len({event["event_id"] for event in outcomes(records)}) == 5


async def test_malformed_messages_are_dead_lettered_while_the_messages_around_them_go_through(
    portal: Portal, registration_service: ServiceFactory
) -> None:
    key = "03241"
    no_participant = submission("R-x1", key, "S-1")[1]
    del no_participant["data"]["participant"]
    bad_email = submission("R-x2", key, "S-1")[1]
    bad_email["data"]["participant"]["email"] = "kein-at-zeichen"
    wrong_topic = seminar("S-9", 3)[1]
    bad_capacity = seminar("S-bad", 0)[1]
    bad = [b"{not json", json.dumps(no_participant).encode(), json.dumps(wrong_topic).encode()]
    async with registration_service():
        await portal.seminars(("S-bad", json.dumps(bad_capacity).encode()))
        await portal.seminars(seminar("S-1", 10))
        await portal.registrations(
            submission("R-1", key, "S-1"),
            (key, bad[0]),
            (key, bad[1]),
            submission("R-2", key, "S-1"),
            (key, bad[2]),
            (key, json.dumps(bad_email).encode()),
            submission("R-3", key, "S-1"),
        )
        records = await portal.outcomes(3, settle=1)
        dead = await read_topic(
            portal.bootstrap,
            dlq_topic(portal.topics.portal_registrations),
            until=lambda found: len(found) >= 4,
        )
        dead_seminars = await read_topic(
            portal.bootstrap, dlq_topic(portal.topics.portal_seminars), until=lambda found: len(found) >= 1
        )

    assert history(records) == {rid: ["registration.accepted"] for rid in ("R-1", "R-2", "R-3")}
    assert [record.value for record in dead] == [*bad, json.dumps(bad_email).encode()]
    assert {record.key for record in dead} == {key.encode()}
    errors = [header(record, HEADER_ERROR) or "" for record in dead]
    assert "not a valid envelope" in errors[0]
    assert "participant" in errors[1]
    assert "not allowed" in errors[2]
    assert "email" in errors[3]
    for record in dead:
        assert header(record, HEADER_SERVICE) == "registration"
        assert header(record, HEADER_SOURCE_TOPIC) == portal.topics.portal_registrations
        assert header(record, HEADER_SOURCE_OFFSET) is not None
    assert [record.value for record in dead_seminars] == [json.dumps(bad_capacity).encode()]
    assert "capacity" in (header(dead_seminars[0], HEADER_ERROR) or "")
    # Only the three valid submissions left state behind.
    assert await portal.db.fetchval("SELECT count(*) FROM registrations") == 3


async def test_a_withdrawal_that_arrives_before_its_submission_ends_withdrawn(
    portal: Portal, registration_service: ServiceFactory
) -> None:
    async with registration_service():
        await portal.seminars(seminar("S-1", 1))
        # The portal sent the withdrawal with the AGS and the submission with the ARS: two
        # partitions, so the withdrawal may be (and here is) processed first.
        await portal.registrations(withdrawal("R-1", HANNOVER_AGS))

        async def remembered() -> bool:
            found = await portal.db.fetchval("SELECT count(*) FROM pending_withdrawals")
            return bool(found == 1)

        await wait_until(remembered)
        await portal.registrations(
            submission("R-1", HANNOVER_ARS, "S-1"),
            submission("R-2", HANNOVER_ARS, "S-1"),
        )
        records = await portal.outcomes(3, settle=2)

    assert history(records) == {
        "R-1": ["registration.accepted", "registration.withdrawn"],
        "R-2": ["registration.accepted"],  # the seat R-1 gave back
    }
    assert one(records, "registration.withdrawn", "R-1")["reason"] == "withdrawn_by_portal"
    assert await portal.statuses() == {"R-1": "withdrawn", "R-2": "accepted"}
    assert await portal.db.fetchval("SELECT count(*) FROM pending_withdrawals") == 0
    assert await portal.db.fetchval("SELECT accepted_count FROM seminars") == 1


async def test_a_cancelled_seminar_withdraws_every_registration(
    portal: Portal, registration_service: ServiceFactory
) -> None:
    async with registration_service():
        await portal.seminars(seminar("S-1", 1), seminar("S-2", 1))
        await portal.registrations(
            *(submission(f"R-{n}", HANNOVER_AGS, "S-1") for n in (1, 2, 3)),
            withdrawal("R-3", HANNOVER_AGS),
            submission("R-9", HANNOVER_AGS, "S-2"),  # another seminar: untouched
        )
        await portal.outcomes(5)
        await portal.seminars(cancellation("S-1"))
        await portal.outcomes(7)
        await portal.registrations(submission("R-4", HANNOVER_AGS, "S-1"))
        await portal.outcomes(8)
        # Published again, the seminar's details change but it stays cancelled.
        await portal.seminars(seminar("S-1", 5, title="Neuer Titel"))
        await portal.registrations(submission("R-5", HANNOVER_AGS, "S-1"))
        records = await portal.outcomes(9, settle=2)

    assert history(records) == {
        "R-1": ["registration.accepted", "registration.withdrawn"],
        "R-2": ["registration.waitlisted", "registration.withdrawn"],
        "R-3": ["registration.waitlisted", "registration.withdrawn"],
        "R-9": ["registration.accepted"],
        "R-4": ["registration.rejected"],
        "R-5": ["registration.rejected"],
    }
    assert one(records, "registration.withdrawn", "R-1")["reason"] == "seminar_cancelled"
    assert one(records, "registration.withdrawn", "R-2")["reason"] == "seminar_cancelled"
    assert one(records, "registration.withdrawn", "R-3")["reason"] == "withdrawn_by_portal"
    assert one(records, "registration.rejected", "R-4")["reason"] == "seminar_cancelled"
    assert one(records, "registration.rejected", "R-5")["reason"] == "seminar_cancelled"
    seats = await portal.db.fetch("SELECT seminar_id, accepted_count FROM seminars ORDER BY seminar_id")
    assert [(row["seminar_id"], row["accepted_count"]) for row in seats] == [("S-1", 0), ("S-2", 1)]
