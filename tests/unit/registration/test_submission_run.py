"""A run of submissions decided in memory: each decision sees the ones before it."""

from __future__ import annotations

from dataclasses import replace

from services.registration.domain import (
    Placed,
    Placement,
    Redelivered,
    RegistrationContent,
    Rejected,
    SeminarSeats,
    SeminarView,
    Status,
    SubmissionRun,
)


def content(seminar_id: str = "S-1", email: str = "a@mail.example") -> RegistrationContent:
    return RegistrationContent(
        kommune_key="032410001001",
        seminar_id=seminar_id,
        given_name="Alex",
        family_name="Beispiel",
        participant_email=email,
        contact_email="it@kommune.example",
    )


def run(capacity: int = 1, accepted: int = 0, waitlisted: int = 0) -> SubmissionRun:
    seats = SeminarSeats(capacity=capacity, accepted=accepted, waitlisted=waitlisted)
    return SubmissionRun(registrations={}, seminars={"S-1": SeminarView(False, seats)}, participants=set())


def test_a_placement_takes_its_seat_or_waitlist_place() -> None:
    seats = SeminarSeats(capacity=1, accepted=0, waitlisted=0)
    assert seats.after(Placement(Status.ACCEPTED, None)) == SeminarSeats(1, 1, 0)
    assert seats.after(Placement(Status.WAITLISTED, 1)) == SeminarSeats(1, 0, 1)


def test_later_submissions_see_the_seats_the_earlier_ones_took() -> None:
    submissions = run(capacity=1, waitlisted=0)
    decisions = [
        submissions.decide(
            f"R-{n}", content(email=f"{n}@mail.example"), key_well_shaped=True, participant=("S-1", f"{n}")
        )
        for n in range(3)
    ]
    assert decisions == [
        Placed(Placement(Status.ACCEPTED, None)),
        Placed(Placement(Status.WAITLISTED, 1)),
        Placed(Placement(Status.WAITLISTED, 2)),
    ]
    assert submissions.seminars["S-1"].seats == SeminarSeats(capacity=1, accepted=1, waitlisted=2)


def test_a_participant_placed_earlier_in_the_run_is_a_duplicate() -> None:
    submissions = run(capacity=5)
    first = submissions.decide("R-1", content(), key_well_shaped=True, participant=("S-1", "a"))
    shouting = replace(content(), participant_email="A@MAIL.EXAMPLE")
    again = submissions.decide("R-2", shouting, key_well_shaped=True, participant=("S-1", "a"))
    assert isinstance(first, Placed)
    assert again == Rejected("duplicate_participant")
    # A rejection takes no seat.
    assert submissions.seminars["S-1"].seats.accepted == 1


def test_a_registration_id_seen_earlier_in_the_run_is_redelivered_or_a_conflict() -> None:
    submissions = run(capacity=5)
    rejected = replace(content(), seminar_id="S-404")
    assert submissions.decide("R-1", rejected, key_well_shaped=True, participant=("S-404", "a")) == Rejected(
        "unknown_seminar"
    )
    assert (
        submissions.decide("R-1", rejected, key_well_shaped=True, participant=("S-404", "a")) == Redelivered()
    )
    other = content(email="b@mail.example")
    conflict = submissions.decide("R-1", other, key_well_shaped=True, participant=("S-1", "b"))
    assert conflict == Rejected("registration_id_conflict")
    # A conflict is not stored: the id keeps its first content.
    assert submissions.registrations["R-1"] == rejected
    assert ("S-1", "b") not in submissions.participants
