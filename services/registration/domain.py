"""Pure decisions of the registration service: keys, seats, waitlist, submissions, withdrawals.

No I/O here. The handlers read the state a decision needs (under the seminar's row lock), ask
this module what happens, and write the answer.

Seats. A seminar has `capacity` seats. A submission takes a free seat when fewer than `capacity`
are taken, otherwise it joins the waitlist, first come first served. A smaller capacity never
takes a seat away: `accepted` may then exceed `capacity`, but no new acceptance happens until
`accepted` has fallen below the new capacity. Waitlist positions are derived from the order of
arrival, so the people behind a promoted or withdrawn entry move up without an event.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

from shared.events import RejectionReason


class Status(StrEnum):
    ACCEPTED = "accepted"
    WAITLISTED = "waitlisted"
    WITHDRAWN = "withdrawn"
    REJECTED = "rejected"


ACTIVE_STATUSES = frozenset({Status.ACCEPTED, Status.WAITLISTED})


@dataclass(frozen=True)
class SeminarSeats:
    """A seminar's seats at one moment: its capacity and how many are accepted and waiting."""

    capacity: int
    accepted: int
    waitlisted: int

    @property
    def free_seats(self) -> int:
        return max(0, self.capacity - self.accepted)

    @property
    def kept_seats(self) -> int:
        """Seats held above capacity after the capacity shrank; 0 while within capacity."""
        return self.accepted if self.accepted > self.capacity else 0

    def promotable(self) -> int:
        """How many from the head of the waitlist take a seat now."""
        return min(self.free_seats, self.waitlisted)

    def place(self) -> Placement:
        """Where a new valid submission goes."""
        if self.free_seats > 0:
            return Placement(Status.ACCEPTED, None)
        return Placement(Status.WAITLISTED, self.waitlisted + 1)

    def after(self, placement: Placement) -> SeminarSeats:
        """The seats once a placement has taken its seat or waitlist place."""
        if placement.status is Status.ACCEPTED:
            return replace(self, accepted=self.accepted + 1)
        return replace(self, waitlisted=self.waitlisted + 1)


@dataclass(frozen=True)
class Placement:
    status: Status
    position: int | None  # the waitlist position, for WAITLISTED only


@dataclass(frozen=True)
class RegistrationContent:
    """What identifies a submission's content: a redelivery with the same content is a no-op.

    `kommune_key` is the canonical key (or the key as given when its shape is wrong), so that the
    same Kommune given in another key form is the same content.
    """

    kommune_key: str
    seminar_id: str
    given_name: str
    family_name: str
    participant_email: str
    contact_email: str


@dataclass(frozen=True)
class SeminarView:
    cancelled: bool
    seats: SeminarSeats


# --- submissions -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Redelivered:
    """The same registration_id with the same content: publish nothing new."""


@dataclass(frozen=True)
class Rejected:
    reason: RejectionReason
    status = Status.REJECTED

    @property
    def stored(self) -> bool:
        """Whether the rejection is recorded under the registration_id.

        A conflicting redelivery is answered but not recorded: the id belongs to the first content.
        """
        return self.reason != "registration_id_conflict"


@dataclass(frozen=True)
class Placed:
    placement: Placement

    @property
    def status(self) -> Status:
        return self.placement.status


SubmissionDecision = Redelivered | Rejected | Placed


def decide_submission(
    *,
    content: RegistrationContent,
    key_well_shaped: bool,
    existing: RegistrationContent | None,
    seminar: SeminarView | None,
    participant_already_registered: bool,
) -> SubmissionDecision:
    """The outcome of a submission, given what is stored about it, its seminar and participant.

    `participant_already_registered`: the participant's email (case-insensitively) has an
    accepted or waitlisted registration for the same seminar.
    """
    if existing is not None:
        return Redelivered() if existing == content else Rejected("registration_id_conflict")
    if not key_well_shaped:
        return Rejected("invalid_kommune_key")
    if seminar is None:
        return Rejected("unknown_seminar")
    if seminar.cancelled:
        return Rejected("seminar_cancelled")
    if participant_already_registered:
        return Rejected("duplicate_participant")
    return Placed(seminar.seats.place())


# A participant of a seminar: (seminar_id, the email as the database lowers it for its unique index).
ParticipantKey = tuple[str, str]


@dataclass
class SubmissionRun:
    """The state a run of submissions is decided against, changed by each decision of the run.

    Deciding submissions here one after the other gives what deciding each against the stored
    state, after the one before it was written, would give: a stored submission makes its
    registration_id known, a placement takes its seat or waitlist place and makes its
    participant active. Only for submissions: a withdrawal changes more than this tracks.
    """

    registrations: dict[str, RegistrationContent]  # stored content by registration_id
    seminars: dict[str, SeminarView]  # only the seminars that exist
    participants: set[ParticipantKey]  # active (accepted or waitlisted) participants

    def decide(
        self,
        registration_id: str,
        content: RegistrationContent,
        *,
        key_well_shaped: bool,
        participant: ParticipantKey,
    ) -> SubmissionDecision:
        seminar = self.seminars.get(content.seminar_id)
        decision = decide_submission(
            content=content,
            key_well_shaped=key_well_shaped,
            existing=self.registrations.get(registration_id),
            seminar=seminar,
            participant_already_registered=participant in self.participants,
        )
        if isinstance(decision, Rejected) and decision.stored:
            self.registrations[registration_id] = content
        elif isinstance(decision, Placed):
            assert seminar is not None
            self.registrations[registration_id] = content
            self.seminars[content.seminar_id] = replace(
                seminar, seats=seminar.seats.after(decision.placement)
            )
            self.participants.add(participant)
        return decision


# --- withdrawals -----------------------------------------------------------------------------


class WithdrawalDecision(StrEnum):
    WITHDRAW = "withdraw"  # publish registration.withdrawn, free the seat or waitlist place
    REMEMBER = "remember"  # the submission has not arrived yet: apply the withdrawal when it does
    IGNORE = "ignore"  # already withdrawn or rejected: nothing to publish


def decide_withdrawal(status: Status | None) -> WithdrawalDecision:
    if status is None:
        return WithdrawalDecision.REMEMBER
    if status in ACTIVE_STATUSES:
        return WithdrawalDecision.WITHDRAW
    return WithdrawalDecision.IGNORE
