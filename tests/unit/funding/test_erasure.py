"""Erased registrations in funding (ADR 0018): the participant identity goes and never comes
back; the decision, the money and the counts stay. The pure rule, then the real applier over the
in-memory twin."""

from __future__ import annotations

import uuid
from datetime import date

import pytest

from services.funding.domain import (
    Application,
    Approve,
    Decline,
    RegistrationEvent,
    Withdrawal,
    without_erased_identities,
)
from services.funding.participants import participant_hash
from shared.erasure import ErasureRequest
from shared.program import Course
from tests.unit.funding.fakes import InMemoryFundingService, completed
from tests.unit.funding.samples import EINHEITSGEMEINDE, PARTICIPANT_KEY, courses_program, directory

HASH = participant_hash(PARTICIPANT_KEY, "erika@example.org")


def application(
    registration_id: str, identity: str | None = HASH, course: Course = Course.BASIC
) -> Application:
    return Application(
        registration_id,
        EINHEITSGEMEINDE,
        "S-1",
        date(2023, 5, 2),
        date(2023, 5, 3),
        100_000,
        course=course,
        participant_hash=identity,
    )


@pytest.mark.parametrize(
    ("event", "erased", "expected"),
    [
        (application("R-1"), set(), application("R-1")),
        (application("R-1"), {"R-1"}, application("R-1", None)),
        (application("R-1"), {"R-2"}, application("R-1")),
        (application("R-1", None), {"R-1"}, application("R-1", None)),
        (Withdrawal("R-1", EINHEITSGEMEINDE), {"R-1"}, Withdrawal("R-1", EINHEITSGEMEINDE)),
    ],
)
def test_an_erased_registration_is_decided_without_its_identity(
    event: RegistrationEvent, erased: set[str], expected: RegistrationEvent
) -> None:
    assert without_erased_identities([event], erased) == [expected]


def erase(funding: InMemoryFundingService, *registration_ids: str) -> dict[str, int | str]:
    async def run() -> dict[str, int | str]:
        async with funding.database.unit_of_work() as uow:
            request = ErasureRequest(uuid.uuid4(), "operator", "Antrag", "request")
            return await uow.erase(list(registration_ids), request)

    return completed(run())


def test_an_erased_identity_never_comes_back_and_no_longer_admits_a_follow_up() -> None:
    funding = InMemoryFundingService(courses_program(), directory(), PARTICIPANT_KEY)
    assert funding.accept(application("B1", None)) == [Approve("B1", EINHEITSGEMEINDE, "2023", 20_000)]
    assert funding.tables.fundings["B1"].participant_hash == HASH
    assert erase(funding, "B1", "B9")["participant_hashes"] == 1
    assert funding.tables.fundings["B1"].participant_hash is None
    # The acceptance again (a replayed dead letter under a new id): decided before, nothing stored.
    assert funding.accept(application("B1", None)) == []
    assert funding.tables.fundings["B1"].participant_hash is None
    # An erased registration funding never saw is decided, without the identity.
    funding.accept(application("B9", None))
    assert funding.tables.fundings["B9"].participant_hash is None
    # The person's follow-up no longer finds the basic course: the money of B1 stays approved.
    assert funding.accept(application("F1", None, Course.FOLLOW_UP)) == [
        Decline("F1", EINHEITSGEMEINDE, "prerequisite_missing", "2023")
    ]
    assert funding.tables.fundings["B1"].status.value == "approved"
