"""The pure domain: key forms, seats, waitlist, submission outcomes, withdrawals."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.registration.domain import (
    Parked,
    ParkedSubmission,
    Placed,
    Placement,
    Redelivered,
    RegistrationContent,
    Rejected,
    Seminar,
    SeminarSeats,
    Status,
    SubmissionDecision,
    WithdrawalDecision,
    decide_submission,
    decide_withdrawal,
    grace_expired,
)
from shared.directory import Directory, load_directory
from shared.settings import DEFAULT_DIRECTORY_FILE


@pytest.fixture(scope="module")
def directory() -> Directory:
    return load_directory(str(DEFAULT_DIRECTORY_FILE))


@pytest.mark.parametrize(
    ("given_key", "canonical"),
    [
        ("03241", "03241"),  # Landkreis (Region Hannover): the Kreisschlüssel is canonical
        ("03101", "031010000000"),  # kreisfreie Stadt Braunschweig: Kreis key -> Gemeinde ARS
        ("03101000", "031010000000"),  # AGS of a kreisfreie Stadt -> its ARS
        ("031010000", "031010000000"),  # the Gemeindeverband of a kreisfreie Stadt -> its ARS
        ("03241001", "032410001001"),  # AGS of Hannover -> ARS
        ("032410001", "032410001001"),  # the Gemeindeverband of an Einheitsgemeinde -> its ARS
        ("031515401", "031515401"),  # Samtgemeinde Boldecker Land: 9 digits are canonical
        ("03151002", "031515401002"),  # AGS of Barwedel, member of Boldecker Land -> ARS
        ("031515401002", "031515401002"),  # ARS of a Mitgliedsgemeinde is canonical
        ("032410001001", "032410001001"),  # ARS is canonical
        ("03999", "03999"),  # well-shaped, not in the directory: stays as given
        ("99999999", "99999999"),
        ("039999999", "039999999"),
        ("039999999999", "039999999999"),
    ],
)
def test_every_key_form_normalises_to_its_canonical_form(
    directory: Directory, given_key: str, canonical: str
) -> None:
    assert directory.canonical_or_none(given_key) == canonical


@pytest.mark.parametrize(
    "given_key",
    [
        "",
        "0324",
        "032411",
        "0324100",
        "0324100100",
        "03241a",
        " 03241",
        "03241 ",
        "03241\n",
        "0324100100011",
        "３２４１０",
        "+3241",
        "-3241",
    ],
)
def test_badly_shaped_keys_have_no_canonical_form(directory: Directory, given_key: str) -> None:
    assert directory.canonical_or_none(given_key) is None


@pytest.mark.parametrize(
    ("seats", "placement"),
    [
        (SeminarSeats(capacity=2, accepted=0, waitlisted=0), Placement(Status.ACCEPTED, None)),
        (SeminarSeats(capacity=2, accepted=1, waitlisted=0), Placement(Status.ACCEPTED, None)),
        (SeminarSeats(capacity=2, accepted=2, waitlisted=0), Placement(Status.WAITLISTED, 1)),
        (SeminarSeats(capacity=2, accepted=2, waitlisted=3), Placement(Status.WAITLISTED, 4)),
        # The capacity shrank below the seats taken: nobody loses a seat, nobody new gets one.
        (SeminarSeats(capacity=1, accepted=3, waitlisted=0), Placement(Status.WAITLISTED, 1)),
    ],
)
def test_a_free_seat_accepts_a_full_seminar_waitlists(seats: SeminarSeats, placement: Placement) -> None:
    assert seats.place() == placement


@pytest.mark.parametrize(
    ("seats", "promotable", "kept"),
    [
        (SeminarSeats(capacity=3, accepted=3, waitlisted=4), 0, 0),
        (SeminarSeats(capacity=3, accepted=2, waitlisted=4), 1, 0),
        (SeminarSeats(capacity=5, accepted=2, waitlisted=2), 2, 0),  # more seats than waiting
        (SeminarSeats(capacity=2, accepted=4, waitlisted=4), 0, 4),  # shrunk: seats are kept
        (SeminarSeats(capacity=2, accepted=3, waitlisted=0), 0, 3),
    ],
)
def test_promotion_fills_free_seats_from_the_head_of_the_waitlist(
    seats: SeminarSeats, promotable: int, kept: int
) -> None:
    assert seats.promotable() == promotable
    assert seats.with_capacity(seats.capacity).kept == kept


@pytest.mark.parametrize(
    ("seats", "step", "after"),
    [
        # A smaller capacity keeps the seats above it; a larger one keeps none.
        (SeminarSeats(4, 4, 2), lambda s: s.with_capacity(2), SeminarSeats(2, 4, 2, kept=4)),
        (SeminarSeats(2, 4, 2, kept=4), lambda s: s.with_capacity(5), SeminarSeats(5, 4, 2, kept=0)),
        # A withdrawal gives a kept seat up for good.
        (SeminarSeats(2, 4, 2, kept=4), SeminarSeats.seat_freed, SeminarSeats(2, 3, 2, kept=3)),
        (SeminarSeats(2, 2, 0, kept=2), SeminarSeats.seat_freed, SeminarSeats(2, 1, 0, kept=1)),
        (SeminarSeats(3, 3, 1), SeminarSeats.seat_freed, SeminarSeats(3, 2, 1)),
        (SeminarSeats(3, 2, 1), SeminarSeats.head_promoted, SeminarSeats(3, 3, 0)),
        (SeminarSeats(3, 3, 1), SeminarSeats.waitlist_left, SeminarSeats(3, 3, 0)),
        (SeminarSeats(2, 4, 2, kept=4), SeminarSeats.emptied, SeminarSeats(2, 0, 0)),
    ],
)
def test_seat_changes(
    seats: SeminarSeats, step: Callable[[SeminarSeats], SeminarSeats], after: SeminarSeats
) -> None:
    assert step(seats) == after


CONTENT = RegistrationContent(
    kommune_key="032410001001",
    seminar_id="S-1",
    given_name="Erika",
    family_name="Mustermann",
    participant_email="erika@example.org",
    contact_email="it@example.org",
)


def seminar(seats: SeminarSeats, *, cancelled: bool = False) -> Seminar:
    return Seminar(
        "S-1",
        "Datenschutz",
        date(2030, 3, 4),
        date(2030, 3, 5),
        45_000,
        cancelled,
        seats,
        "Hannover",
        "basic",
    )


OPEN = seminar(SeminarSeats(capacity=1, accepted=0, waitlisted=0))
FULL = seminar(SeminarSeats(capacity=1, accepted=1, waitlisted=2))
CANCELLED = seminar(SeminarSeats(capacity=1, accepted=0, waitlisted=0), cancelled=True)


@dataclass(frozen=True)
class Case:
    name: str
    expected: SubmissionDecision
    key_well_shaped: bool = True
    existing: RegistrationContent | None = None
    seminar: Seminar | None = OPEN
    participant_already_registered: bool = False
    may_wait_for_seminar: bool = False


SUBMISSION_CASES = [
    Case("free seat", Placed(Placement(Status.ACCEPTED, None))),
    Case("full seminar", Placed(Placement(Status.WAITLISTED, 3)), seminar=FULL),
    Case("same id and content again", Redelivered(), existing=CONTENT),
    Case(
        "same id, other content",
        Rejected("registration_id_conflict"),
        existing=replace(CONTENT, contact_email="other@example.org"),
    ),
    Case(
        "same id, other seminar",
        Rejected("registration_id_conflict"),
        existing=replace(CONTENT, seminar_id="S-2"),
    ),
    Case("bad key shape", Rejected("invalid_kommune_key"), key_well_shaped=False),
    Case("unknown seminar", Rejected("unknown_seminar"), seminar=None),
    Case("unknown seminar within a grace", Parked(), seminar=None, may_wait_for_seminar=True),
    Case("a known seminar never waits", Placed(Placement(Status.ACCEPTED, None)), may_wait_for_seminar=True),
    Case(
        "a bad key never waits",
        Rejected("invalid_kommune_key"),
        key_well_shaped=False,
        seminar=None,
        may_wait_for_seminar=True,
    ),
    # The content parked under the id counts as stored: the same again is a no-op.
    Case("parked, sent again", Redelivered(), existing=CONTENT, seminar=None, may_wait_for_seminar=True),
    Case(
        "parked, other content",
        Rejected("registration_id_conflict"),
        existing=replace(CONTENT, contact_email="other@example.org"),
        seminar=None,
        may_wait_for_seminar=True,
    ),
    Case("cancelled seminar", Rejected("seminar_cancelled"), seminar=CANCELLED),
    Case("participant registered", Rejected("duplicate_participant"), participant_already_registered=True),
    # The registration id is checked first: a redelivery stays a no-op whatever changed since.
    Case("redelivered after cancellation", Redelivered(), existing=CONTENT, seminar=CANCELLED),
    Case(
        "conflict wins over a bad key",
        Rejected("registration_id_conflict"),
        existing=replace(CONTENT, kommune_key="x"),
        key_well_shaped=False,
    ),
    Case(
        "bad key wins over unknown seminar",
        Rejected("invalid_kommune_key"),
        key_well_shaped=False,
        seminar=None,
    ),
    Case(
        "cancelled wins over duplicate",
        Rejected("seminar_cancelled"),
        seminar=CANCELLED,
        participant_already_registered=True,
    ),
]


@pytest.mark.parametrize("case", SUBMISSION_CASES, ids=lambda case: case.name)
def test_submission_outcome(case: Case) -> None:
    decision = decide_submission(
        content=CONTENT,
        key_well_shaped=case.key_well_shaped,
        existing=case.existing,
        seminar=case.seminar,
        participant_already_registered=case.participant_already_registered,
        may_wait_for_seminar=case.may_wait_for_seminar,
    )
    assert decision == case.expected


def test_every_rejection_reason_is_covered() -> None:
    reasons = {case.expected.reason for case in SUBMISSION_CASES if isinstance(case.expected, Rejected)}
    assert reasons == {
        "unknown_seminar",
        "seminar_cancelled",
        "duplicate_participant",
        "registration_id_conflict",
        "invalid_kommune_key",
    }


def test_only_a_conflicting_redelivery_is_not_recorded() -> None:
    assert not Rejected("registration_id_conflict").stored
    assert all(Rejected(reason).stored for reason in ("unknown_seminar", "invalid_kommune_key"))


@pytest.mark.parametrize(
    ("status", "decision"),
    [
        (Status.ACCEPTED, WithdrawalDecision.WITHDRAW),
        (Status.WAITLISTED, WithdrawalDecision.WITHDRAW),
        (Status.WITHDRAWN, WithdrawalDecision.IGNORE),
        (Status.REJECTED, WithdrawalDecision.IGNORE),
        (None, WithdrawalDecision.REMEMBER),
    ],
)
def test_withdrawal_decision(status: Status | None, decision: WithdrawalDecision) -> None:
    assert decide_withdrawal(status) == decision


def test_withdrawing_a_parked_submission_rejects_it() -> None:
    assert decide_withdrawal(None, parked=True) is WithdrawalDecision.REJECT_PARKED


ARRIVED = datetime(2030, 1, 7, 9, 0, tzinfo=UTC)
GRACE = timedelta(seconds=300)


def parked_at(arrived_at: datetime | None) -> ParkedSubmission:
    return ParkedSubmission(
        registration_id="R-1",
        given_kommune_key="03241001",
        content=CONTENT,
        # Long before it arrived: the grace runs from the arrival, not from occurred_at.
        submitted_at=ARRIVED - timedelta(days=3),
        event_id=uuid.uuid4(),
        correlation_id=uuid.uuid4(),
        arrived_at=arrived_at,
    )


@pytest.mark.parametrize(
    ("now", "expired"),
    [
        (ARRIVED, False),
        (ARRIVED + GRACE - timedelta(microseconds=1), False),
        (ARRIVED + GRACE, True),
        (ARRIVED + 2 * GRACE, True),
    ],
)
def test_the_grace_runs_from_the_arrival(now: datetime, expired: bool) -> None:
    assert grace_expired(parked_at(ARRIVED), now, GRACE) is expired


def test_without_a_grace_every_stored_parked_submission_has_expired() -> None:
    assert grace_expired(parked_at(ARRIVED), ARRIVED, timedelta(0))


def test_a_submission_parked_just_now_has_not_expired() -> None:
    assert not grace_expired(parked_at(None), ARRIVED + GRACE, timedelta(0))


# --- the seat invariant ----------------------------------------------------------------------


@dataclass
class SeminarModel:
    """One seminar driven by the decisions of `SeminarSeats`, as the runs drive them.

    Invariant, checked after every step:
    1. A new acceptance (placement or promotion) happens only while accepted < capacity.
    2. Hence accepted <= capacity, except right after a capacity decrease below the seats taken:
       then accepted <= the seats taken at that decrease, and it never grows until it has fallen
       below capacity. Tracked as `ceiling`.
    3. Nobody waits while a seat is free: waitlisted > 0 implies accepted >= capacity.
    4. A newcomer's waitlist position is the length of the waitlist with them at its end.
    """

    capacity: int
    accepted: list[int] = field(default_factory=list)
    waitlist: list[int] = field(default_factory=list)
    ceiling: int = 0
    next_id: int = 0

    @property
    def seats(self) -> SeminarSeats:
        return SeminarSeats(self.capacity, len(self.accepted), len(self.waitlist))

    def _accept(self, registration: int) -> None:
        assert len(self.accepted) < self.capacity, "a new acceptance needs a free seat"
        self.accepted.append(registration)

    def _promote(self) -> None:
        for _ in range(self.seats.promotable()):
            self._accept(self.waitlist.pop(0))

    def submit(self) -> None:
        self.next_id += 1
        placement = self.seats.place()
        if placement.status is Status.ACCEPTED:
            self._accept(self.next_id)
        else:
            self.waitlist.append(self.next_id)
            assert placement.position == len(self.waitlist)

    def withdraw(self, pick: int) -> None:
        active = self.accepted + self.waitlist
        if not active:
            return
        registration = active[pick % len(active)]
        status = Status.ACCEPTED if registration in self.accepted else Status.WAITLISTED
        assert decide_withdrawal(status) is WithdrawalDecision.WITHDRAW
        if status is Status.ACCEPTED:
            self.accepted.remove(registration)
            self._promote()
        else:
            self.waitlist.remove(registration)

    def change_capacity(self, capacity: int) -> None:
        self.capacity = capacity
        self._promote()
        self.ceiling = max(capacity, self.seats.with_capacity(capacity).kept)

    def check(self) -> None:
        self.ceiling = max(self.capacity, min(self.ceiling, len(self.accepted)))
        assert len(self.accepted) <= self.ceiling
        assert not self.waitlist or len(self.accepted) >= self.capacity


Step = tuple[str, int]
steps = st.lists(
    st.one_of(
        st.tuples(st.just("submit"), st.just(0)),
        st.tuples(st.just("withdraw"), st.integers(0, 50)),
        st.tuples(st.just("capacity"), st.integers(1, 8)),
    ),
    max_size=80,
)


@given(capacity=st.integers(1, 8), steps=steps)
def test_seats_are_never_handed_out_beyond_capacity(capacity: int, steps: list[Step]) -> None:
    seminar = SeminarModel(capacity=capacity, ceiling=capacity)
    for action, argument in steps:
        if action == "submit":
            seminar.submit()
        elif action == "withdraw":
            seminar.withdraw(argument)
        else:
            seminar.change_capacity(argument)
        seminar.check()
