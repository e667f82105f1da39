"""The runs of the domain: a batch decided in order against the state loaded for it."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from services.registration.domain import (
    CancellationApplied,
    CancellationIgnored,
    ErasedIgnored,
    NewRegistration,
    Outcome,
    Parked,
    ParkedDecided,
    ParkedSubmission,
    ParkingState,
    ParkingSweep,
    PendingWithdrawal,
    Placed,
    Placement,
    PortalRegistrationsRun,
    PortalSeminarsRun,
    Promoted,
    Redelivered,
    Registration,
    RegistrationChange,
    RegistrationContent,
    RegistrationsState,
    Rejected,
    SeatsChange,
    Seminar,
    SeminarReach,
    SeminarSaved,
    SeminarSeats,
    SeminarsState,
    Status,
    SubmissionDecided,
    WaitlistNotLoadedError,
    WithdrawalIgnored,
    WithdrawalRemembered,
    Withdrawn,
    seminar_reach,
    waitlist_reach,
)
from shared.directory import Directory, load_directory
from shared.events import Envelope
from shared.settings import DEFAULT_DIRECTORY_FILE
from tests.unit.registration.portal_events import (
    cancelled,
    email_of,
    published,
    submitted,
    withdrawal_requested,
)

HANNOVER = "032410001001"


@pytest.fixture(scope="module")
def directory() -> Directory:
    return load_directory(str(DEFAULT_DIRECTORY_FILE))


def seminar(
    seminar_id: str = "S-1", capacity: int = 1, accepted: int = 0, waitlisted: int = 0, **more: Any
) -> Seminar:
    return Seminar(
        seminar_id=seminar_id,
        title="Datenschutz im Rathaus",
        starts_on=date(2030, 3, 4),
        ends_on=date(2030, 3, 5),
        fee_cents=45_000,
        cancelled=more.pop("cancelled", False),
        seats=SeminarSeats(capacity, accepted, waitlisted, **more),
        location="Hannover",
        course="basic",
    )


def content(registration_id: str, seminar_id: str = "S-1") -> RegistrationContent:
    """What `portal_events.submitted(registration_id, seminar_id)` submits."""
    return RegistrationContent(
        kommune_key=HANNOVER,
        seminar_id=seminar_id,
        given_name="Alex",
        family_name="Beispiel",
        participant_email=email_of(registration_id),
        contact_email="it@kommune.example",
    )


def stored(registration_id: str, status: Status, seminar_id: str = "S-1") -> Registration:
    return Registration(registration_id, status, content(registration_id, seminar_id))


@dataclass
class Loaded:
    """A RegistrationsState, built as a test needs it."""

    seminars: list[Seminar] = field(default_factory=lambda: [seminar()])
    registrations: list[Registration] = field(default_factory=list)
    waitlist_heads: dict[str, list[Registration]] = field(default_factory=dict)
    pending: set[str] = field(default_factory=set)

    def state(self, events: Sequence[Envelope[Any]]) -> RegistrationsState:
        pairs = {
            (e.data.seminar_id, e.data.participant.email) for e in events if hasattr(e.data, "participant")
        }
        pairs |= {(r.content.seminar_id, r.content.participant_email) for r in self.registrations}
        keys = {pair: (pair[0], pair[1].lower()) for pair in pairs}
        active = {
            (r.content.seminar_id, r.content.participant_email.lower())
            for r in [*self.registrations, *(r for head in self.waitlist_heads.values() for r in head)]
            if r.status in (Status.ACCEPTED, Status.WAITLISTED)
        }
        return RegistrationsState(
            registrations={r.registration_id: r for r in self.registrations},
            seminars={s.seminar_id: s for s in self.seminars},
            waitlist_heads=self.waitlist_heads,
            participant_keys=keys,
            active_participants={key for key in keys.values() if key in active},
            pending_withdrawals=self.pending,
        )


def run_registrations(
    loaded: Loaded, events: Sequence[Envelope[Any]], directory: Directory
) -> tuple[list[list[Outcome]], PortalRegistrationsRun]:
    run = PortalRegistrationsRun(loaded.state(events), directory)
    return [run.decide(event) for event in events], run


def _label(decided: SubmissionDecided) -> str:
    decision = decided.decision
    if isinstance(decision, Placed):
        return decision.placement.status.value
    if isinstance(decision, Rejected):
        return "rejected"
    return "parked" if isinstance(decision, Parked) else "redelivered"


def kinds(outcomes: Sequence[Outcome]) -> list[tuple[str, str]]:
    """(outcome type, registration or seminar id) of each outcome; a parked submission decided
    at last is `waited:<its decision>`."""
    named: list[tuple[str, str]] = []
    for outcome in outcomes:
        if isinstance(outcome, SubmissionDecided):
            named.append((_label(outcome), outcome.registration_id))
        elif isinstance(outcome, ParkedDecided):
            named.append((f"waited:{_label(outcome.decided)}", outcome.parked.registration_id))
        elif isinstance(outcome, Withdrawn | Promoted):
            named.append((type(outcome).__name__.lower(), outcome.registration.registration_id))
        elif isinstance(outcome, WithdrawalRemembered | WithdrawalIgnored | ErasedIgnored):
            named.append((type(outcome).__name__, outcome.registration_id))
        else:
            named.append((type(outcome).__name__, outcome.seminar_id))
    return named


# --- submissions -------------------------------------------------------------------------------


def test_later_submissions_see_the_seats_the_earlier_ones_took(directory: Directory) -> None:
    events = [submitted(f"R-{n}") for n in range(3)]
    outcomes, run = run_registrations(Loaded(), events, directory)
    decisions = [o.decision for [o] in outcomes if isinstance(o, SubmissionDecided)]
    assert decisions == [
        Placed(Placement(Status.ACCEPTED, None)),
        Placed(Placement(Status.WAITLISTED, 1)),
        Placed(Placement(Status.WAITLISTED, 2)),
    ]
    changes = run.changes()
    assert changes.seats == [SeatsChange("S-1", 0, SeminarSeats(1, 1, 2), cancelled=False)]
    assert [(r.registration_id, r.status, r.took_waitlist_place) for r in changes.new_registrations] == [
        ("R-0", Status.ACCEPTED, False),
        ("R-1", Status.WAITLISTED, True),
        ("R-2", Status.WAITLISTED, True),
    ]


def test_a_participant_placed_earlier_in_the_run_is_a_duplicate(directory: Directory) -> None:
    shouting = email_of("R-1").upper()
    events = [submitted("R-1"), submitted("R-2", email=shouting)]
    outcomes, run = run_registrations(Loaded([seminar(capacity=5)]), events, directory)
    assert kinds([o for group in outcomes for o in group]) == [("accepted", "R-1"), ("rejected", "R-2")]
    assert run.changes().seats[0].seats.accepted == 1  # a rejection takes no seat


def test_a_registration_id_seen_earlier_in_the_run_is_redelivered_or_a_conflict(directory: Directory) -> None:
    events = [
        submitted("R-1", "S-404"),
        submitted("R-1", "S-404"),
        submitted("R-1", "S-1"),
    ]
    outcomes, run = run_registrations(Loaded([seminar(capacity=5)]), events, directory)
    assert [o.decision for [o] in outcomes if isinstance(o, SubmissionDecided)] == [
        Rejected("unknown_seminar"),
        Redelivered(),
        Rejected("registration_id_conflict"),
    ]
    # A conflict is not stored: the id keeps its first content, and takes no seat.
    [stored_once] = run.changes().new_registrations
    assert stored_once.content == content("R-1", "S-404")
    assert run.changes().seats == []


def test_a_participant_who_withdrew_may_register_again(directory: Directory) -> None:
    loaded = Loaded([seminar(capacity=2, accepted=1)], [stored("R-1", Status.ACCEPTED)])
    again = submitted("R-2", email=email_of("R-1"))
    outcomes, _ = run_registrations(loaded, [again, withdrawal_requested("R-1"), again], directory)
    assert kinds([o for group in outcomes for o in group]) == [
        ("rejected", "R-2"),
        ("withdrawn", "R-1"),
        ("redelivered", "R-2"),  # R-2 is stored (rejected): the same content again changes nothing
    ]
    third = submitted("R-3", email=email_of("R-1"))
    outcomes, _ = run_registrations(loaded, [withdrawal_requested("R-1"), third], directory)
    assert kinds([o for group in outcomes for o in group]) == [("withdrawn", "R-1"), ("accepted", "R-3")]


# --- withdrawals -------------------------------------------------------------------------------


@dataclass(frozen=True)
class WithdrawalCase:
    name: str
    loaded: Loaded
    expected: list[tuple[str, str]]
    changed: list[RegistrationChange]
    seats: SeminarSeats | None  # S-1's seats after the run, if they changed


WITHDRAWAL_CASES = [
    WithdrawalCase(
        "accepted: the head of the waitlist takes the seat",
        Loaded(
            [seminar(capacity=1, accepted=1, waitlisted=2)],
            [stored("R-1", Status.ACCEPTED)],
            {"S-1": [stored("R-2", Status.WAITLISTED)]},
        ),
        [("withdrawn", "R-1"), ("promoted", "R-2")],
        [
            RegistrationChange("R-1", Status.WITHDRAWN, "withdrawn_by_portal"),
            RegistrationChange("R-2", Status.ACCEPTED, None),
        ],
        None,  # one seat freed, one taken
    ),
    WithdrawalCase(
        "accepted, nobody waiting: the seat stays free",
        Loaded([seminar(capacity=2, accepted=1)], [stored("R-1", Status.ACCEPTED)]),
        [("withdrawn", "R-1")],
        [RegistrationChange("R-1", Status.WITHDRAWN, "withdrawn_by_portal")],
        SeminarSeats(2, 0, 0),
    ),
    WithdrawalCase(
        "accepted above a shrunk capacity: the seat is given up, nobody moves up",
        Loaded(
            [seminar(capacity=1, accepted=3, waitlisted=1, kept=3)],
            [stored("R-1", Status.ACCEPTED)],
            {"S-1": [stored("R-2", Status.WAITLISTED)]},
        ),
        [("withdrawn", "R-1")],
        [RegistrationChange("R-1", Status.WITHDRAWN, "withdrawn_by_portal")],
        SeminarSeats(1, 2, 1, kept=2),
    ),
    WithdrawalCase(
        "waitlisted behind the loaded head: it leaves, the head stays",
        Loaded(
            [seminar(capacity=1, accepted=1, waitlisted=3)],
            [stored("R-4", Status.WAITLISTED)],
            {"S-1": [stored("R-2", Status.WAITLISTED)]},
        ),
        [("withdrawn", "R-4")],
        [RegistrationChange("R-4", Status.WITHDRAWN, "withdrawn_by_portal")],
        None,  # the waiting count is derived from the rows
    ),
    WithdrawalCase(
        "unknown: remembered",
        Loaded(),
        [("WithdrawalRemembered", "R-1")],
        [],
        None,
    ),
    WithdrawalCase(
        "already withdrawn: ignored",
        Loaded(registrations=[stored("R-1", Status.WITHDRAWN)]),
        [("WithdrawalIgnored", "R-1")],
        [],
        None,
    ),
    WithdrawalCase(
        "rejected: ignored",
        Loaded(registrations=[stored("R-1", Status.REJECTED)]),
        [("WithdrawalIgnored", "R-1")],
        [],
        None,
    ),
]


@pytest.mark.parametrize("case", WITHDRAWAL_CASES, ids=lambda case: case.name)
def test_withdrawal(case: WithdrawalCase, directory: Directory) -> None:
    withdrawn = [withdrawal_requested(case.expected[0][1])]
    [outcomes], run = run_registrations(case.loaded, withdrawn, directory)
    assert kinds(outcomes) == case.expected
    changes = run.changes()
    assert list(changes.changed_registrations) == case.changed
    assert [c.seats for c in changes.seats] == ([case.seats] if case.seats else [])


def test_an_unknown_registration_s_withdrawal_waits_for_its_submission(directory: Directory) -> None:
    first, second = withdrawal_requested("R-1"), withdrawal_requested("R-1")
    _, run = run_registrations(Loaded(), [first, second], directory)
    # The first one remembered stays.
    assert run.changes().remembered_withdrawals == [PendingWithdrawal("R-1", "03241001", first.event_id)]


@pytest.mark.parametrize(
    ("loaded", "submission", "expected", "final"),
    [
        (
            Loaded([seminar(capacity=1, accepted=1)], pending={"R-P"}),
            submitted("R-P"),
            [("waitlisted", "R-P"), ("withdrawn", "R-P")],
            Status.WITHDRAWN,
        ),
        (
            Loaded([seminar(capacity=2, accepted=1)], pending={"R-P"}),
            submitted("R-P"),
            [("accepted", "R-P"), ("withdrawn", "R-P")],
            Status.WITHDRAWN,
        ),
        (
            Loaded(pending={"R-P"}),
            submitted("R-P", "S-404"),
            [("rejected", "R-P")],  # nothing to withdraw: the pending withdrawal is dropped
            Status.REJECTED,
        ),
    ],
    ids=["waitlisted", "accepted", "rejected"],
)
def test_a_remembered_withdrawal_applies_once_its_submission_is_placed(
    loaded: Loaded,
    submission: Envelope[Any],
    expected: list[tuple[str, str]],
    final: Status,
    directory: Directory,
) -> None:
    [outcomes], run = run_registrations(loaded, [submission], directory)
    assert kinds(outcomes) == expected
    assert isinstance(outcomes[0], SubmissionDecided)
    assert outcomes[0].pending_withdrawal
    changes = run.changes()
    assert changes.forgotten_withdrawals == ["R-P"]
    [new] = changes.new_registrations
    assert new.status is final
    assert new.took_waitlist_place is (expected[0][0] == "waitlisted")


def test_a_withdrawal_and_its_submission_in_one_run_leave_nothing_pending(directory: Directory) -> None:
    events = [withdrawal_requested("R-Q"), submitted("R-Q")]
    outcomes, run = run_registrations(Loaded([seminar(capacity=1)]), events, directory)
    assert kinds([o for group in outcomes for o in group]) == [
        ("WithdrawalRemembered", "R-Q"),
        ("accepted", "R-Q"),
        ("withdrawn", "R-Q"),
    ]
    changes = run.changes()
    assert (changes.remembered_withdrawals, changes.forgotten_withdrawals) == ([], [])
    assert changes.new_registrations == [
        NewRegistration(
            "R-Q",
            "03241001",
            content("R-Q"),
            Status.WITHDRAWN,
            None,
            "withdrawn_by_portal",
            False,
            submitted_at=events[1].occurred_at,
        )
    ]
    assert changes.seats == []  # taken and freed again


def test_newcomers_wait_behind_the_stored_waitlist(directory: Directory) -> None:
    loaded = Loaded(
        [seminar(capacity=1, accepted=1, waitlisted=1)],
        [stored("R-1", Status.ACCEPTED), stored("R-2", Status.WAITLISTED)],
        {"S-1": [stored("R-2", Status.WAITLISTED)]},
    )
    events = [submitted("R-3"), withdrawal_requested("R-1"), withdrawal_requested("R-2")]
    outcomes, _ = run_registrations(loaded, events, directory)
    assert kinds([o for group in outcomes for o in group]) == [
        ("waitlisted", "R-3"),
        ("withdrawn", "R-1"),
        ("promoted", "R-2"),
        ("withdrawn", "R-2"),
        ("promoted", "R-3"),
    ]


def test_a_run_refuses_to_reach_past_the_loaded_waitlist(directory: Directory) -> None:
    loaded = Loaded([seminar(capacity=1, accepted=1, waitlisted=2)], [stored("R-1", Status.ACCEPTED)], {})
    with pytest.raises(WaitlistNotLoadedError):
        run_registrations(loaded, [withdrawal_requested("R-1")], directory)


# --- how far a batch reaches -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("events", "registrations", "pending", "reach"),
    [
        ([submitted("R-9")], [], set(), {}),  # submissions alone move no waitlist
        ([withdrawal_requested("R-1")], [stored("R-1", Status.ACCEPTED)], set(), {"S-1": 1}),
        (
            [withdrawal_requested("R-1"), withdrawal_requested("R-2"), withdrawal_requested("R-1")],
            [stored("R-1", Status.ACCEPTED), stored("R-2", Status.WAITLISTED, "S-2")],
            set(),
            {"S-1": 2, "S-2": 1},
        ),
        ([withdrawal_requested("R-9"), submitted("R-9", "S-2")], [], set(), {"S-2": 1}),
        ([submitted("R-9", "S-2")], [], {"R-9"}, {"S-2": 1}),
        ([withdrawal_requested("R-9")], [], set(), {}),  # unknown: remembered, moves nothing
    ],
)
def test_waitlist_reach(
    events: list[Envelope[Any]], registrations: list[Registration], pending: set[str], reach: dict[str, int]
) -> None:
    seminars = {s.seminar_id: s for s in (seminar("S-1", 1, 1, 5), seminar("S-2", 1, 1, 5), seminar("S-3"))}
    found = waitlist_reach(
        [e.data for e in events], {r.registration_id: r for r in registrations}, pending, seminars
    )
    assert found == reach


def test_waitlist_reach_is_bounded_by_the_waitlist() -> None:
    seminars = {"S-1": seminar("S-1", 1, 1, waitlisted=1)}
    events = [withdrawal_requested("R-1").data, withdrawal_requested("R-1").data]
    assert waitlist_reach(events, {"R-1": stored("R-1", Status.ACCEPTED)}, set(), seminars) == {"S-1": 1}


@pytest.mark.parametrize(
    ("events", "reach"),
    [
        ([published("S-1", 3)], SeminarReach({"S-1": 1}, set())),  # 2 taken of 3: one moves up
        ([published("S-1", 9), published("S-1", 2)], SeminarReach({"S-1": 4}, set())),  # all 4 wait
        ([published("S-1", 1)], SeminarReach({}, set())),
        ([cancelled("S-1")], SeminarReach({"S-1": 4}, {"S-1"})),
        ([cancelled("S-C"), published("S-C", 9)], SeminarReach({}, set())),  # cancelled before
        ([cancelled("S-404"), published("S-404", 9)], SeminarReach({}, set())),
    ],
)
def test_seminar_reach(events: list[Envelope[Any]], reach: SeminarReach) -> None:
    seminars = {"S-1": seminar("S-1", 2, 2, 4), "S-C": seminar("S-C", 2, cancelled=True)}
    assert seminar_reach([e.data for e in events], seminars) == reach


# --- seminars ----------------------------------------------------------------------------------


def waiting(*ids: str, seminar_id: str = "S-1") -> list[Registration]:
    return [stored(rid, Status.WAITLISTED, seminar_id) for rid in ids]


def seminars_run(
    seminars: list[Seminar],
    heads: dict[str, list[Registration]] | None = None,
    accepted: dict[str, list[Registration]] | None = None,
    order: dict[str, int] | None = None,
) -> PortalSeminarsRun:
    return PortalSeminarsRun(
        SeminarsState(
            seminars={s.seminar_id: s for s in seminars},
            waitlist_heads=heads or {},
            accepted=accepted or {},
            registration_order=order or {},
        )
    )


def test_a_larger_capacity_promotes_the_head_of_the_waitlist_in_order() -> None:
    run = seminars_run([seminar(capacity=1, accepted=1, waitlisted=3)], {"S-1": waiting("R-2", "R-3")})
    outcomes = run.decide(published("S-1", 3))
    assert kinds(outcomes) == [("SeminarSaved", "S-1"), ("promoted", "R-2"), ("promoted", "R-3")]
    changes = run.changes()
    assert changes.seats == [SeatsChange("S-1", 1, SeminarSeats(3, 3, 1), cancelled=False)]
    assert [c.registration_id for c in changes.changed_registrations] == ["R-2", "R-3"]
    assert [s.capacity for s in changes.published_seminars] == [3]


def test_a_smaller_capacity_keeps_every_seat() -> None:
    run = seminars_run([seminar(capacity=4, accepted=3, waitlisted=0)])
    assert kinds(run.decide(published("S-1", 2))) == [("SeminarSaved", "S-1")]
    assert run.changes().seats == [SeatsChange("S-1", 3, SeminarSeats(2, 3, 0, kept=3), cancelled=False)]


def test_a_cancellation_withdraws_the_accepted_by_id_then_the_waitlist_in_order() -> None:
    accepted = [stored(rid, Status.ACCEPTED) for rid in ("R-1", "R-5")]
    run = seminars_run(
        [seminar(capacity=2, accepted=2, waitlisted=2)],
        {"S-1": waiting("R-4", "R-2")},
        {"S-1": accepted},
        {"R-1": 1, "R-2": 2, "R-4": 3, "R-5": 4},
    )
    # A larger capacity first: R-4 moves up and is withdrawn among the accepted, by its id's rank.
    outcomes = [*run.decide(published("S-1", 3)), *run.decide(cancelled("S-1"))]
    assert kinds(outcomes) == [
        ("SeminarSaved", "S-1"),
        ("promoted", "R-4"),
        ("withdrawn", "R-1"),
        ("withdrawn", "R-4"),
        ("withdrawn", "R-5"),
        ("withdrawn", "R-2"),
        ("CancellationApplied", "S-1"),
    ]
    assert all(o.reason == "seminar_cancelled" for o in outcomes if isinstance(o, Withdrawn))
    assert isinstance(outcomes[-1], CancellationApplied)
    assert outcomes[-1].withdrawn == 4
    changes = run.changes()
    assert changes.seats == [SeatsChange("S-1", 2, SeminarSeats(3, 0, 0), cancelled=True)]
    assert {(c.registration_id, c.status) for c in changes.changed_registrations} == {
        (rid, Status.WITHDRAWN) for rid in ("R-1", "R-2", "R-4", "R-5")
    }


def test_a_cancelled_seminar_stays_cancelled() -> None:
    run = seminars_run([seminar(capacity=2, cancelled=True)])
    outcomes = [
        *run.decide(published("S-1", 5)),
        *run.decide(cancelled("S-1")),
        *run.decide(cancelled("S-404")),
    ]
    assert outcomes[0] == SeminarSaved("S-1", 5, stays_cancelled=True)
    assert outcomes[1:] == [
        CancellationIgnored("S-1", cancelled_before=True),
        CancellationIgnored("S-404", False),
    ]
    changes = run.changes()
    assert changes.seats == []
    assert [s.capacity for s in changes.published_seminars] == [5]


def test_a_new_seminar_published_and_cancelled_in_one_run() -> None:
    run = seminars_run([])
    outcomes = [
        *run.decide(published("S-9", 2)),
        *run.decide(published("S-9", 4)),
        *run.decide(cancelled("S-9")),
    ]
    assert kinds(outcomes) == [
        ("SeminarSaved", "S-9"),
        ("SeminarSaved", "S-9"),
        ("CancellationApplied", "S-9"),
    ]
    changes = run.changes()
    assert [s.capacity for s in changes.published_seminars] == [4]  # the last details
    assert changes.seats == [SeatsChange("S-9", 0, SeminarSeats(4, 0, 0), cancelled=True)]


def test_seminar_changes_leave_registrations_of_other_seminars_alone() -> None:
    other = replace(seminar("S-2", capacity=1, accepted=1, waitlisted=1))
    run = seminars_run([seminar(capacity=1, accepted=1, waitlisted=1), other], {"S-1": waiting("R-2")})
    outcomes = [*run.decide(published("S-1", 2)), *run.decide(published("S-2", 1))]
    assert kinds(outcomes) == [("SeminarSaved", "S-1"), ("promoted", "R-2"), ("SeminarSaved", "S-2")]


# --- submissions waiting for their seminar ----------------------------------------------------

ARRIVED = datetime(2030, 1, 7, 9, 0, tzinfo=UTC)


def parked(
    registration_id: str, seminar_id: str = "S-1", *, arrived_at: datetime | None = ARRIVED
) -> ParkedSubmission:
    return ParkedSubmission(
        registration_id=registration_id,
        given_kommune_key="03241001",
        content=content(registration_id, seminar_id),
        submitted_at=ARRIVED - timedelta(minutes=1),
        event_id=uuid.uuid5(uuid.NAMESPACE_URL, registration_id),
        correlation_id=uuid.uuid5(uuid.NAMESPACE_DNS, registration_id),
        arrived_at=arrived_at,
    )


def test_a_submission_for_an_unknown_seminar_parks_and_its_withdrawal_rejects_it(
    directory: Directory,
) -> None:
    events = [submitted("R-1", "S-9"), submitted("R-2", "S-9"), withdrawal_requested("R-2")]
    state = Loaded([]).state(events)
    run = PortalRegistrationsRun(state, directory, may_park=True)
    outcomes = [o for event in events for o in run.decide(event)]
    assert kinds(outcomes) == [("parked", "R-1"), ("parked", "R-2"), ("waited:rejected", "R-2")]
    changes = run.changes()
    assert [p.registration_id for p in changes.parked_submissions] == ["R-1"]
    assert changes.parked_submissions[0].event_id == events[0].event_id
    assert changes.parked_submissions[0].submitted_at == events[0].occurred_at
    assert changes.unparked_submissions == []  # R-2 was parked and decided within the run
    assert [(n.registration_id, n.status, n.rejection_reason) for n in changes.new_registrations] == [
        ("R-2", Status.REJECTED, "unknown_seminar")
    ]


def test_a_loaded_parked_submission_withdrawn_is_unparked(directory: Directory) -> None:
    events = [withdrawal_requested("R-1")]
    state = replace(Loaded([]).state(events), parked={"R-1": parked("R-1", "S-9")})
    run = PortalRegistrationsRun(state, directory, may_park=True)
    outcomes = run.decide(events[0])
    assert kinds(outcomes) == [("waited:rejected", "R-1")]
    assert run.changes().unparked_submissions == ["R-1"]
    assert run.changes().remembered_withdrawals == []


def test_the_offer_decides_its_parked_submissions_in_arrival_order() -> None:
    waiting = [parked("R-2"), parked("R-1"), parked("R-3")]
    keys = {
        (p.content.seminar_id, p.content.participant_email): ("S-1", p.content.participant_email)
        for p in waiting
    }
    state = SeminarsState(
        seminars={},
        waitlist_heads={},
        accepted={},
        registration_order={"R-1": 1, "R-2": 2, "R-3": 3},
        parked={"S-1": waiting},
        participant_keys=keys,
    )
    run = PortalSeminarsRun(state)
    outcomes = run.decide(published("S-1", 2)) + run.decide(cancelled("S-1"))
    assert kinds(outcomes) == [
        ("SeminarSaved", "S-1"),
        ("waited:accepted", "R-2"),
        ("waited:accepted", "R-1"),
        ("waited:waitlisted", "R-3"),
        ("withdrawn", "R-1"),  # the accepted go by registration_id
        ("withdrawn", "R-2"),
        ("withdrawn", "R-3"),
        ("CancellationApplied", "S-1"),
    ]
    changes = run.changes()
    assert changes.unparked_submissions == ["R-1", "R-2", "R-3"]
    assert [n.registration_id for n in changes.new_registrations] == ["R-2", "R-1", "R-3"]
    assert all(n.submitted_at == ARRIVED - timedelta(minutes=1) for n in changes.new_registrations)
    assert [n.took_waitlist_place for n in changes.new_registrations] == [False, False, True]


def test_the_sweep_rejects_only_what_has_waited_the_whole_grace() -> None:
    grace = timedelta(minutes=5)
    state = ParkingState(
        now=ARRIVED + grace,
        parked=[parked("R-1"), parked("R-2", arrived_at=ARRIVED + timedelta(seconds=1))],
    )
    run = ParkingSweep(state, grace)
    assert kinds(run.sweep()) == [("waited:rejected", "R-1")]
    changes = run.changes()
    assert changes.unparked_submissions == ["R-1"]
    assert [(n.registration_id, n.rejection_reason) for n in changes.new_registrations] == [
        ("R-1", "unknown_seminar")
    ]
