"""Pure decisions of the registration service: keys, seats, waitlist, submissions, withdrawals,
seminar changes.

No I/O here. An applier loads the state its batch needs (under the locks of the store), hands it
to a run (`PortalRegistrationsRun`, `PortalSeminarsRun`) that decides every event of the batch in
order, each against what the ones before it changed, and gets back what happened (`Outcome`s,
which become messages and log lines) and what changed (`StateChanges`, which the unit of work
records). Deciding a batch at once therefore gives what deciding each event alone would give.

Seats. A seminar has `capacity` seats. A submission takes a free seat when fewer than `capacity`
are taken, otherwise it joins the waitlist, first come first served (`SeminarSeats.place`). A
smaller capacity never takes a seat away: `accepted` may then exceed `capacity`, but no new
acceptance happens until `accepted` has fallen below the new capacity. Waitlist positions are
derived from the order of arrival, so the people behind a promoted or withdrawn entry move up
without an event. A seat freed by a withdrawal, or by a larger capacity, goes to the head of
the waitlist (`_Run._fill_free_seats`).

Withdrawal before submission. Order holds only per Kommune key, so a portal withdrawal may
arrive before its submission (e.g. when the two carry the key in different forms). It is then
remembered as pending. When the submission arrives it is decided as usual, and if it was placed,
it is withdrawn at once: `registration.accepted` (or `registration.waitlisted`) is followed by
`registration.withdrawn` with reason `withdrawn_by_portal`, and the freed seat promotes from the
waitlist. Downstream services thus see a consistent history (funding releases what it approved)
instead of a withdrawal of a registration they never heard of. A submission that is rejected
drops the pending withdrawal: there is nothing to withdraw.

Erased registrations (ADR 0018). A registration whose personal data an operator or the retention
schedule erased carries a marker. An event of the portal about it changes nothing and publishes
nothing (`ErasedIgnored`): a redelivered or replayed submission never stores the person again. A
stored erased registration keeps its status and its seat or waitlist place; should a run still
move it (a promotion, a cancellation), the change is recorded and published to nobody
(`publishes`): its events would have to carry the erased data.

A seminar cancelled once stays cancelled: a later `seminar.published` updates its details but
does not reopen it (its registrations were already withdrawn).

Submission before its seminar. Kafka orders nothing across topics, so a submission may arrive
before the offer of its seminar. With a grace (`REGISTRATION_SEMINAR_GRACE_SECONDS` > 0) such a
submission is parked (`Parked`, a `ParkedSubmission`) instead of being rejected as
`unknown_seminar`; nothing is published yet. When the offer arrives (`PortalSeminarsRun`), the
seminar's parked submissions are decided in their arrival order, as if they had arrived just
after the offer: they take seats, then waitlist places, and a second one of the same participant
is a `duplicate_participant`. A parked submission still waiting when the grace has passed since
it arrived (`grace_expired`: by the time the service first saw it, not by `occurred_at`) is
rejected as `unknown_seminar` (`ParkingSweep`). A withdrawal of a parked submission rejects it at
once as `unknown_seminar`, which is what the pair publishes without a grace in either order (a
remembered withdrawal is dropped by the rejection); a submission that finds a withdrawal waiting
for it is therefore not parked but rejected at once. Whatever a parked submission publishes when
it is decided carries the ids the submission would have published at arrival
(`ParkedDecided`): exactly one first decision per submission, whichever comes first.
"""

from __future__ import annotations

import uuid
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any, Literal

from shared.directory import Directory
from shared.events import (
    Envelope,
    RegistrationSubmitted,
    RegistrationWithdrawalRequested,
    RejectionReason,
    SeminarCancelled,
    SeminarPublished,
    WithdrawalReason,
)

# What the two portal topics carry.
PortalRegistrationData = RegistrationSubmitted | RegistrationWithdrawalRequested
PortalSeminarData = SeminarPublished | SeminarCancelled
# What a seminar.published says the seminar is (the contract's default: basic).
Course = Literal["basic", "follow_up"]


class Status(StrEnum):
    ACCEPTED = "accepted"
    WAITLISTED = "waitlisted"
    WITHDRAWN = "withdrawn"
    REJECTED = "rejected"


ACTIVE_STATUSES = frozenset({Status.ACCEPTED, Status.WAITLISTED})


@dataclass(frozen=True)
class Placement:
    status: Status
    position: int | None  # the waitlist position, for WAITLISTED only


@dataclass(frozen=True)
class SeminarSeats:
    """A seminar's seats at one moment: its capacity and how many are accepted and waiting.

    `kept`: seats held above capacity since the capacity shrank below the seats taken (0 while
    within capacity); it only falls with withdrawals, until the capacity changes again. The
    database's constraint allows `accepted` above `capacity` by that much and no more.
    """

    capacity: int
    accepted: int
    waitlisted: int
    kept: int = 0

    @property
    def free_seats(self) -> int:
        return max(0, self.capacity - self.accepted)

    def promotable(self) -> int:
        """How many from the head of the waitlist take a seat now."""
        return min(self.free_seats, self.waitlisted)

    def place(self) -> Placement:
        """Where a new valid submission goes: a free seat, else the end of the waitlist."""
        if self.free_seats > 0:
            return Placement(Status.ACCEPTED, None)
        return Placement(Status.WAITLISTED, self.waitlisted + 1)

    def after(self, placement: Placement) -> SeminarSeats:
        """The seats once a placement has taken its seat or waitlist place."""
        if placement.status is Status.ACCEPTED:
            return replace(self, accepted=self.accepted + 1)
        return replace(self, waitlisted=self.waitlisted + 1)

    def with_capacity(self, capacity: int) -> SeminarSeats:
        """A new capacity: a smaller one never takes a seat away, the seats above it are kept."""
        return replace(self, capacity=capacity, kept=self.accepted if self.accepted > capacity else 0)

    def seat_freed(self) -> SeminarSeats:
        accepted = self.accepted - 1
        return replace(self, accepted=accepted, kept=min(self.kept, accepted))

    def waitlist_left(self) -> SeminarSeats:
        return replace(self, waitlisted=self.waitlisted - 1)

    def head_promoted(self) -> SeminarSeats:
        return replace(self, accepted=self.accepted + 1, waitlisted=self.waitlisted - 1)

    def emptied(self) -> SeminarSeats:
        """Every registration withdrawn: nothing taken, nobody waiting."""
        return replace(self, accepted=0, waitlisted=0, kept=0)


@dataclass(frozen=True)
class Seminar:
    seminar_id: str
    title: str
    starts_on: date
    ends_on: date
    fee_cents: int
    cancelled: bool
    seats: SeminarSeats
    location: str
    course: Course


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
class Registration:
    registration_id: str
    status: Status
    content: RegistrationContent
    # The occurred_at of its submission; None for registrations stored before it was recorded.
    submitted_at: datetime | None = None
    # Its personal data were erased: the content's names and addresses are empty strings.
    erased: bool = False


# A participant of a seminar: (seminar_id, the email as the database lowers it for its unique index).
ParticipantKey = tuple[str, str]
# A participant as a submission gives it: (seminar_id, the email as given).
GivenParticipant = tuple[str, str]


# --- submissions -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Redelivered:
    """The same registration_id with the same content: publish nothing new."""


@dataclass(frozen=True)
class Rejected:
    reason: RejectionReason

    @property
    def stored(self) -> bool:
        """Whether the rejection is recorded under the registration_id.

        A conflicting redelivery is answered but not recorded: the id belongs to the first content.
        """
        return self.reason != "registration_id_conflict"


@dataclass(frozen=True)
class Placed:
    placement: Placement


@dataclass(frozen=True)
class Parked:
    """The seminar is not known yet: the submission waits for its offer, for the grace at most."""


SubmissionDecision = Redelivered | Rejected | Placed | Parked


def decide_submission(
    *,
    content: RegistrationContent,
    key_well_shaped: bool,
    existing: RegistrationContent | None,
    seminar: Seminar | None,
    participant_already_registered: bool,
    may_wait_for_seminar: bool = False,
) -> SubmissionDecision:
    """The outcome of a submission, given what is stored about it, its seminar and participant.

    `existing`: the content stored (or parked) under its registration_id.
    `participant_already_registered`: the participant's email (case-insensitively) has an
    accepted or waitlisted registration for the same seminar.
    `may_wait_for_seminar`: a grace is set and no withdrawal waits for the submission, so an
    unknown seminar parks it instead of rejecting it.
    """
    if existing is not None:
        return Redelivered() if existing == content else Rejected("registration_id_conflict")
    if not key_well_shaped:
        return Rejected("invalid_kommune_key")
    if seminar is None:
        return Parked() if may_wait_for_seminar else Rejected("unknown_seminar")
    if seminar.cancelled:
        return Rejected("seminar_cancelled")
    if participant_already_registered:
        return Rejected("duplicate_participant")
    return Placed(seminar.seats.place())


def submission_content(data: RegistrationSubmitted, directory: Directory) -> tuple[RegistrationContent, bool]:
    """The submission's content, and whether its Kommune key is well shaped."""
    canonical = directory.canonical_or_none(data.kommune_key)
    content = RegistrationContent(
        kommune_key=canonical if canonical is not None else data.kommune_key,
        seminar_id=data.seminar_id,
        given_name=data.participant.given_name,
        family_name=data.participant.family_name,
        participant_email=data.participant.email,
        contact_email=data.contact_email,
    )
    return content, canonical is not None


# --- withdrawals -----------------------------------------------------------------------------


class WithdrawalDecision(StrEnum):
    WITHDRAW = "withdraw"  # publish registration.withdrawn, free the seat or waitlist place
    REMEMBER = "remember"  # the submission has not arrived yet: apply the withdrawal when it does
    IGNORE = "ignore"  # already withdrawn or rejected: nothing to publish
    # The submission waits for its seminar: reject it now as unknown_seminar, as it would have
    # been without a grace (and as a remembered withdrawal is dropped by that rejection).
    REJECT_PARKED = "reject_parked"


def decide_withdrawal(status: Status | None, *, parked: bool = False) -> WithdrawalDecision:
    """`status`: the stored registration's, None if none is stored; `parked`: its submission
    waits for its seminar."""
    if status is None:
        return WithdrawalDecision.REJECT_PARKED if parked else WithdrawalDecision.REMEMBER
    if status in ACTIVE_STATUSES:
        return WithdrawalDecision.WITHDRAW
    return WithdrawalDecision.IGNORE


# --- parking: submissions waiting for their seminar's offer ------------------------------------


@dataclass(frozen=True)
class ParkedSubmission:
    """A submission waiting for the offer of its seminar, with what deciding it later needs."""

    registration_id: str
    given_kommune_key: str
    content: RegistrationContent  # its key well shaped (a bad shape is rejected at once)
    submitted_at: datetime  # the submission's occurred_at
    event_id: uuid.UUID  # the submission's: what it publishes when decided derives its ids from it
    correlation_id: uuid.UUID  # the submission's effective correlation_id
    arrived_at: datetime | None = None  # when the service first saw it; None until stored


def grace_expired(parked: ParkedSubmission, now: datetime, grace: timedelta) -> bool:
    """Whether a parked submission has waited as long as the grace allows, since it arrived."""
    if parked.arrived_at is None:  # parked by the run deciding now: it has just arrived
        return False
    return parked.arrived_at + grace <= now


# --- what a run says happened, event by event --------------------------------------------------


@dataclass(frozen=True)
class SubmissionDecided:
    registration_id: str
    content: RegistrationContent
    decision: SubmissionDecision
    seminar: Seminar | None  # as the decision found it
    pending_withdrawal: bool  # a withdrawal waited for it: applied if placed, dropped if rejected
    submitted_at: datetime | None  # the submission's occurred_at


@dataclass(frozen=True)
class ParkedDecided:
    """A parked submission decided at last: by its seminar's offer, its withdrawal or the grace.

    What it publishes carries the submission's ids (event id derived from the submission's,
    its correlation_id), as if it had been decided when it arrived.
    """

    parked: ParkedSubmission
    decided: SubmissionDecided


@dataclass(frozen=True)
class Withdrawn:
    registration: Registration  # as it was before: accepted or waitlisted
    reason: WithdrawalReason


@dataclass(frozen=True)
class Promoted:
    registration: Registration  # accepted now
    seminar: Seminar


@dataclass(frozen=True)
class WithdrawalRemembered:
    registration_id: str


@dataclass(frozen=True)
class WithdrawalIgnored:
    registration_id: str
    status: Status


@dataclass(frozen=True)
class SeminarSaved:
    seminar_id: str
    capacity: int
    stays_cancelled: bool


@dataclass(frozen=True)
class CancellationIgnored:
    seminar_id: str
    cancelled_before: bool  # False: the seminar is unknown


@dataclass(frozen=True)
class CancellationApplied:
    seminar_id: str
    withdrawn: int


@dataclass(frozen=True)
class ErasedIgnored:
    """An event of an erased registration: nothing changes, nothing is published."""

    registration_id: str


Outcome = (
    SubmissionDecided
    | ParkedDecided
    | Withdrawn
    | Promoted
    | WithdrawalRemembered
    | WithdrawalIgnored
    | SeminarSaved
    | CancellationIgnored
    | CancellationApplied
    | ErasedIgnored
)


def publishes(outcome: Outcome) -> bool:
    """Whether an outcome is published: never one of an erased registration (it would carry the
    erased data, or bring it back)."""
    if isinstance(outcome, ErasedIgnored):
        return False
    if isinstance(outcome, Withdrawn | Promoted):
        return not outcome.registration.erased
    return True


# --- what a run changes, for the unit of work to record ---------------------------------------


@dataclass(frozen=True)
class NewRegistration:
    """A submission stored by the run, in its state at the end of the run."""

    registration_id: str
    given_kommune_key: str
    content: RegistrationContent
    status: Status
    rejection_reason: RejectionReason | None
    withdrawal_reason: WithdrawalReason | None
    # It waited at some point of the run: it takes its value of the waitlist order (arrival
    # order) even if it left the waitlist again within the run.
    took_waitlist_place: bool
    submitted_at: datetime | None = None  # the submission's occurred_at


@dataclass(frozen=True)
class RegistrationChange:
    """A registration stored before the run, accepted or waitlisted then, changed by it."""

    registration_id: str
    status: Status  # accepted (promoted) or withdrawn
    withdrawal_reason: WithdrawalReason | None


@dataclass(frozen=True)
class SeatsChange:
    seminar_id: str
    accepted_before: int  # as loaded: the record refuses to write over anything else
    seats: SeminarSeats
    cancelled: bool


@dataclass(frozen=True)
class PendingWithdrawal:
    registration_id: str
    given_kommune_key: str
    event_id: uuid.UUID


@dataclass(frozen=True)
class StateChanges:
    """Everything a run changed, as final values: what the unit of work records in one go."""

    published_seminars: Sequence[SeminarPublished] = ()  # the last details of each seminar
    changed_registrations: Sequence[RegistrationChange] = ()
    new_registrations: Sequence[NewRegistration] = ()  # in arrival order
    seats: Sequence[SeatsChange] = ()
    remembered_withdrawals: Sequence[PendingWithdrawal] = ()
    forgotten_withdrawals: Sequence[str] = ()  # pending withdrawals their submission has consumed
    parked_submissions: Sequence[ParkedSubmission] = ()  # newly parked, in arrival order
    unparked_submissions: Sequence[str] = ()  # parked ones decided now (their rows are new)


# --- the state a batch is decided against, as loaded ------------------------------------------


@dataclass(frozen=True)
class RegistrationsState:
    """What a batch of portal.registrations is decided against, loaded under the batch's locks."""

    registrations: Mapping[str, Registration]  # the stored ones among the batch's registration ids
    # The existing seminars of the batch's submissions and of its stored registrations.
    seminars: Mapping[str, Seminar]
    # Per seminar, the first waiting registrations in order: as many as `waitlist_reach` says.
    waitlist_heads: Mapping[str, Sequence[Registration]]
    # The participant of each submission and stored registration, as the database compares them.
    participant_keys: Mapping[GivenParticipant, ParticipantKey]
    active_participants: Set[ParticipantKey]  # those among them with an active registration
    pending_withdrawals: Set[str]  # the batch's registration ids with a withdrawal remembered
    # The batch's registration ids whose submission waits for its seminar.
    parked: Mapping[str, ParkedSubmission] = field(default_factory=dict)
    # The batch's registration ids that carry an erasure marker.
    erased: Set[str] = frozenset()


@dataclass(frozen=True)
class SeminarsState:
    """What a batch of portal.seminars is decided against, loaded under the batch's locks."""

    seminars: Mapping[str, Seminar]  # the batch's seminars that exist
    # Per seminar, the first waiting registrations in order, as many as `seminar_reach` says:
    # every one for the seminars the batch cancels.
    waitlist_heads: Mapping[str, Sequence[Registration]]
    # Of the seminars the batch cancels: every accepted registration, in `registration_order`.
    accepted: Mapping[str, Sequence[Registration]]
    # The rank of every active registration of those seminars by registration_id, as the
    # database sorts them: a cancellation withdraws the accepted ones in this order. It ranks the
    # parked submissions of each seminar too (a new seminar has no other registrations).
    registration_order: Mapping[str, int]
    # Per seminar the batch publishes and that is not known yet: its parked submissions, in
    # arrival order, with their participants as the database compares them.
    parked: Mapping[str, Sequence[ParkedSubmission]] = field(default_factory=dict)
    participant_keys: Mapping[GivenParticipant, ParticipantKey] = field(default_factory=dict)


@dataclass(frozen=True)
class ParkingState:
    """What a sweep of the parked submissions is decided against."""

    now: datetime  # the clock the arrival times were taken with
    parked: Sequence[ParkedSubmission]  # the oldest parked submissions, in arrival order


def waitlist_reach(
    events: Sequence[PortalRegistrationData],
    registrations: Mapping[str, Registration],
    pending_withdrawals: Set[str],
    seminars: Mapping[str, Seminar],
) -> dict[str, int]:
    """How many entries from the head of each seminar's waitlist a batch of portal.registrations
    may reach; seminars it cannot move are left out.

    Only a withdrawal moves a waitlist here, by one entry at most: the seat it frees promotes the
    head, or it takes a waiting registration off. A seminar's withdrawals are those of its stored
    registrations and of its submissions in the batch, and the pending ones those submissions find.
    """
    submitted_to: dict[str, set[str]] = defaultdict(set)
    for data in events:
        if isinstance(data, RegistrationSubmitted):
            submitted_to[data.registration_id].add(data.seminar_id)

    def seminars_of(registration_id: str) -> set[str]:
        found = set(submitted_to.get(registration_id, ()))
        stored = registrations.get(registration_id)
        if stored is not None:
            found.add(stored.content.seminar_id)
        return found

    withdrawals: Counter[str] = Counter()
    for data in events:
        if isinstance(data, RegistrationWithdrawalRequested):
            withdrawals.update(seminars_of(data.registration_id))
    for registration_id in pending_withdrawals:
        withdrawals.update(submitted_to.get(registration_id, ()))
    reach = {
        seminar_id: min(seminar.seats.waitlisted, withdrawals[seminar_id] + seminar.seats.promotable())
        for seminar_id, seminar in seminars.items()
    }
    return {seminar_id: count for seminar_id, count in reach.items() if count > 0}


@dataclass(frozen=True)
class SeminarReach:
    """What a batch of portal.seminars may reach beyond its seminars' rows."""

    waitlist_heads: Mapping[str, int]  # seminar -> how many from the head of its waitlist
    cancelled: Set[str]  # the seminars it cancels: all their accepted and waiting registrations


def seminar_reach(events: Sequence[PortalSeminarData], seminars: Mapping[str, Seminar]) -> SeminarReach:
    """A larger capacity promotes at most up to the largest capacity of the batch; a
    cancellation withdraws everyone."""
    cancelled = {
        data.seminar_id
        for data in events
        if isinstance(data, SeminarCancelled)
        and data.seminar_id in seminars
        and not seminars[data.seminar_id].cancelled
    }
    largest: dict[str, int] = {}
    for data in events:
        if isinstance(data, SeminarPublished):
            largest[data.seminar_id] = max(data.capacity, largest.get(data.seminar_id, 0))
    heads: dict[str, int] = {}
    for seminar_id, seminar in seminars.items():
        if seminar_id in cancelled:
            heads[seminar_id] = seminar.seats.waitlisted
        elif not seminar.cancelled and seminar_id in largest:
            heads[seminar_id] = min(
                seminar.seats.waitlisted, max(0, largest[seminar_id] - seminar.seats.accepted)
            )
    return SeminarReach({sid: count for sid, count in heads.items() if count > 0}, cancelled)


# --- the runs ---------------------------------------------------------------------------------


class WaitlistNotLoadedError(RuntimeError):
    """A run reached past the waitlist entries loaded for it: the load and the run disagree."""


@dataclass
class _Waitlist:
    """A seminar's waitlist as a run knows it: the loaded head, how many stored entries wait
    behind it unloaded, and the run's own newcomers behind those."""

    head: list[str]
    unloaded: int
    newcomers: list[str] = field(default_factory=list)

    def pop_first(self) -> str:
        if self.head:
            return self.head.pop(0)
        if self.unloaded:
            raise WaitlistNotLoadedError("the next waiting registration was not loaded")
        return self.newcomers.pop(0)

    def leave(self, registration_id: str) -> None:
        if registration_id in self.head:
            self.head.remove(registration_id)
        elif registration_id in self.newcomers:
            self.newcomers.remove(registration_id)
        else:  # a stored entry behind the loaded head
            assert self.unloaded > 0
            self.unloaded -= 1

    def everyone(self) -> list[str]:
        if self.unloaded:
            raise WaitlistNotLoadedError("the whole waitlist was not loaded")
        return [*self.head, *self.newcomers]


class _Run:
    """What both runs share: seminars with their seats and waitlists, registrations with their
    status, and withdrawing and promoting."""

    def __init__(
        self,
        seminars: Mapping[str, Seminar],
        waitlist_heads: Mapping[str, Sequence[Registration]],
        stored: Sequence[Registration],
        parked: Sequence[ParkedSubmission] = (),
    ) -> None:
        self._seminars = dict(seminars)
        self._loaded_seats = {seminar_id: seminar.seats for seminar_id, seminar in seminars.items()}
        self._loaded_cancelled = {seminar_id for seminar_id, seminar in seminars.items() if seminar.cancelled}
        self._registrations: dict[str, Registration] = {}
        for registration in [*stored, *(r for head in waitlist_heads.values() for r in head)]:
            self._registrations[registration.registration_id] = registration
        self._loaded_status = {rid: registration.status for rid, registration in self._registrations.items()}
        self._waitlists = {
            seminar_id: _Waitlist(
                head=[r.registration_id for r in waitlist_heads.get(seminar_id, ())],
                unloaded=seminar.seats.waitlisted - len(waitlist_heads.get(seminar_id, ())),
            )
            for seminar_id, seminar in seminars.items()
        }
        self._withdrawal_reasons: dict[str, WithdrawalReason] = {}
        self._new: dict[str, NewRegistration] = {}  # as stored when the run placed or rejected it
        self._published: dict[str, SeminarPublished] = {}
        self._parked = {p.registration_id: p for p in parked}  # in arrival order
        self._loaded_parked = frozenset(self._parked)

    def _set_seats(self, seminar_id: str, seats: SeminarSeats) -> Seminar:
        seminar = replace(self._seminars[seminar_id], seats=seats)
        self._seminars[seminar_id] = seminar
        return seminar

    def _fill_free_seats(self, seminar_id: str) -> list[Outcome]:
        """Free seats go to the head of the waitlist, in its order."""
        seminar = self._seminars[seminar_id]
        if seminar.cancelled:
            return []
        promoted: list[Outcome] = []
        for _ in range(seminar.seats.promotable()):
            registration_id = self._waitlists[seminar_id].pop_first()
            registration = replace(self._registrations[registration_id], status=Status.ACCEPTED)
            self._registrations[registration_id] = registration
            seminar = self._set_seats(seminar_id, seminar.seats.head_promoted())
            self._promoted(registration)
            promoted.append(Promoted(registration, seminar))
        return promoted

    def _promoted(self, registration: Registration) -> None:
        """A hook for what a run tracks beyond the seats."""

    def _withdrawn(self, registration: Registration) -> None:
        """A hook for what a run tracks beyond the seats."""

    def _withdraw(self, registration_id: str, reason: WithdrawalReason) -> list[Outcome]:
        """Withdraw an active registration; a freed seat goes to the head of the waitlist."""
        registration = self._registrations[registration_id]
        assert registration.status in ACTIVE_STATUSES
        self._registrations[registration_id] = replace(registration, status=Status.WITHDRAWN)
        self._withdrawal_reasons[registration_id] = reason
        self._withdrawn(registration)
        outcomes: list[Outcome] = [Withdrawn(registration, reason)]
        seminar_id = registration.content.seminar_id
        seats = self._seminars[seminar_id].seats
        if registration.status is Status.ACCEPTED:
            self._set_seats(seminar_id, seats.seat_freed())
            outcomes += self._fill_free_seats(seminar_id)
        else:
            self._waitlists[seminar_id].leave(registration_id)
            self._set_seats(seminar_id, seats.waitlist_left())
        return outcomes

    def _store(
        self,
        registration_id: str,
        given_kommune_key: str,
        content: RegistrationContent,
        status: Status,
        *,
        rejection_reason: RejectionReason | None,
        submitted_at: datetime | None,
    ) -> None:
        self._registrations[registration_id] = Registration(registration_id, status, content, submitted_at)
        self._new[registration_id] = NewRegistration(
            registration_id=registration_id,
            given_kommune_key=given_kommune_key,
            content=content,
            status=status,
            rejection_reason=rejection_reason,
            withdrawal_reason=None,
            took_waitlist_place=status is Status.WAITLISTED,
            submitted_at=submitted_at,
        )

    def _place(self, registration_id: str, seminar: Seminar, placement: Placement) -> None:
        """A stored submission takes its seat or its place at the end of the waitlist."""
        self._set_seats(seminar.seminar_id, seminar.seats.after(placement))
        if placement.status is Status.WAITLISTED:
            self._waitlists[seminar.seminar_id].newcomers.append(registration_id)

    def _reject_parked(self, registration_id: str, *, pending_withdrawal: bool) -> ParkedDecided:
        """A parked submission is rejected as unknown_seminar: withdrawn, or its grace passed."""
        parked = self._parked.pop(registration_id)
        self._store(
            registration_id,
            parked.given_kommune_key,
            parked.content,
            Status.REJECTED,
            rejection_reason="unknown_seminar",
            submitted_at=parked.submitted_at,
        )
        decided = SubmissionDecided(
            registration_id,
            parked.content,
            Rejected("unknown_seminar"),
            None,
            pending_withdrawal=pending_withdrawal,
            submitted_at=parked.submitted_at,
        )
        return ParkedDecided(parked, decided)

    def _pending_changes(self) -> tuple[Sequence[PendingWithdrawal], Sequence[str]]:
        return (), ()

    def changes(self) -> StateChanges:
        """What the run has changed so far, as final values."""
        changed = [
            RegistrationChange(rid, registration.status, self._withdrawal_reasons.get(rid))
            for rid, registration in self._registrations.items()
            if rid in self._loaded_status and registration.status is not self._loaded_status[rid]
        ]
        new = [
            replace(
                stored,
                status=self._registrations[rid].status,
                withdrawal_reason=self._withdrawal_reasons.get(rid),
            )
            for rid, stored in self._new.items()
        ]
        seats: list[SeatsChange] = []
        for seminar_id, seminar in sorted(self._seminars.items()):
            # A seminar the run published first starts from nothing taken.
            loaded = self._loaded_seats.get(seminar_id, SeminarSeats(seminar.seats.capacity, 0, 0))
            if (seminar.seats.accepted, seminar.seats.kept) != (loaded.accepted, loaded.kept) or (
                seminar.cancelled != (seminar_id in self._loaded_cancelled)
            ):
                seats.append(SeatsChange(seminar_id, loaded.accepted, seminar.seats, seminar.cancelled))
        remembered, forgotten = self._pending_changes()
        return StateChanges(
            published_seminars=[self._published[seminar_id] for seminar_id in sorted(self._published)],
            changed_registrations=changed,
            new_registrations=new,
            seats=seats,
            remembered_withdrawals=remembered,
            forgotten_withdrawals=forgotten,
            parked_submissions=[p for rid, p in self._parked.items() if rid not in self._loaded_parked],
            unparked_submissions=sorted(self._loaded_parked - set(self._parked)),
        )


class PortalRegistrationsRun(_Run):
    """Decides a batch of portal.registrations, submissions and withdrawals, in order.

    Each decision sees what the ones before it changed: a stored submission makes its
    registration_id known, a placement takes its seat or waitlist place and makes its
    participant active, a withdrawal frees a seat (which promotes) or a waitlist place and makes
    its participant free to register again.
    """

    def __init__(self, state: RegistrationsState, directory: Directory, *, may_park: bool = False) -> None:
        super().__init__(
            state.seminars,
            state.waitlist_heads,
            list(state.registrations.values()),
            list(state.parked.values()),
        )
        self._directory = directory
        self._may_park = may_park  # a grace is set: a submission for an unknown seminar waits
        self._participant_keys = state.participant_keys
        self._active_participants = set(state.active_participants)
        self._loaded_pending = frozenset(state.pending_withdrawals)
        self._pending = set(state.pending_withdrawals)
        self._remembered: dict[str, PendingWithdrawal] = {}
        self._erased = frozenset(state.erased)

    def decide(self, event: Envelope[Any]) -> list[Outcome]:
        """What the event does, given every event decided before it."""
        if event.data.registration_id in self._erased:
            return [ErasedIgnored(event.data.registration_id)]
        if isinstance(event.data, RegistrationSubmitted):
            return self._submit(event)
        if isinstance(event.data, RegistrationWithdrawalRequested):
            return self._request_withdrawal(event.data, event.event_id)
        return []

    def _participant(self, content: RegistrationContent) -> ParticipantKey:
        return self._participant_keys[(content.seminar_id, content.participant_email)]

    def _submit(self, event: Envelope[Any]) -> list[Outcome]:
        data: RegistrationSubmitted = event.data
        registration_id = data.registration_id
        submitted_at = event.occurred_at
        content, key_well_shaped = submission_content(data, self._directory)
        participant = self._participant(content)
        seminar = self._seminars.get(content.seminar_id)
        existing = self._registrations.get(registration_id)
        parked = self._parked.get(registration_id)
        existing_content = existing.content if existing is not None else None
        decision = decide_submission(
            content=content,
            key_well_shaped=key_well_shaped,
            existing=parked.content if parked is not None else existing_content,
            seminar=seminar,
            participant_already_registered=participant in self._active_participants,
            may_wait_for_seminar=self._may_park and registration_id not in self._pending,
        )
        if isinstance(decision, Redelivered | Parked) or (
            isinstance(decision, Rejected) and not decision.stored
        ):
            # Nothing stored under the id changes (a conflict is answered, not recorded).
            if isinstance(decision, Parked):
                self._parked[registration_id] = ParkedSubmission(
                    registration_id=registration_id,
                    given_kommune_key=data.kommune_key,
                    content=content,
                    submitted_at=submitted_at,
                    event_id=event.event_id,
                    correlation_id=event.effective_correlation_id,
                )
            return [SubmissionDecided(registration_id, content, decision, seminar, False, submitted_at)]
        pending_withdrawal = registration_id in self._pending
        self._pending.discard(registration_id)
        decided = SubmissionDecided(
            registration_id, content, decision, seminar, pending_withdrawal, submitted_at
        )
        if isinstance(decision, Rejected):
            self._store(
                registration_id,
                data.kommune_key,
                content,
                Status.REJECTED,
                rejection_reason=decision.reason,
                submitted_at=submitted_at,
            )
            return [decided]
        assert seminar is not None
        placement = decision.placement
        self._store(
            registration_id,
            data.kommune_key,
            content,
            placement.status,
            rejection_reason=None,
            submitted_at=submitted_at,
        )
        self._place(registration_id, seminar, placement)
        self._active_participants.add(participant)
        outcomes: list[Outcome] = [decided]
        if pending_withdrawal:
            outcomes += self._withdraw(registration_id, "withdrawn_by_portal")
        return outcomes

    def _request_withdrawal(
        self, data: RegistrationWithdrawalRequested, event_id: uuid.UUID
    ) -> list[Outcome]:
        registration_id = data.registration_id
        registration = self._registrations.get(registration_id)
        decision = decide_withdrawal(
            registration.status if registration is not None else None,
            parked=registration_id in self._parked,
        )
        if decision is WithdrawalDecision.REJECT_PARKED:
            return [self._reject_parked(registration_id, pending_withdrawal=True)]
        if decision is WithdrawalDecision.REMEMBER:
            if registration_id not in self._pending:  # the first one remembered stays
                self._pending.add(registration_id)
                self._remembered[registration_id] = PendingWithdrawal(
                    registration_id, data.kommune_key, event_id
                )
            return [WithdrawalRemembered(registration_id)]
        assert registration is not None
        if decision is WithdrawalDecision.IGNORE:
            return [WithdrawalIgnored(registration_id, registration.status)]
        return self._withdraw(registration_id, "withdrawn_by_portal")

    def _withdrawn(self, registration: Registration) -> None:
        self._active_participants.discard(self._participant(registration.content))

    def _pending_changes(self) -> tuple[Sequence[PendingWithdrawal], Sequence[str]]:
        remembered = [
            pending
            for registration_id, pending in self._remembered.items()
            if registration_id in self._pending and registration_id not in self._loaded_pending
        ]
        forgotten = sorted(self._loaded_pending - self._pending)
        return remembered, forgotten


class PortalSeminarsRun(_Run):
    """Decides a batch of portal.seminars in order: offers and their updates, cancellations."""

    def __init__(self, state: SeminarsState) -> None:
        accepted = [registration for group in state.accepted.values() for registration in group]
        parked = [p for group in state.parked.values() for p in group]
        super().__init__(state.seminars, state.waitlist_heads, accepted, parked)
        self._accepted = {
            seminar_id: [r.registration_id for r in group] for seminar_id, group in state.accepted.items()
        }
        self._registration_order = state.registration_order
        self._waiting_for_offer = {seminar_id: list(group) for seminar_id, group in state.parked.items()}
        self._participant_keys = state.participant_keys
        # The active participants of the seminars whose parked submissions the run decides: a
        # seminar not known yet has none but those the run places.
        self._active_participants: set[ParticipantKey] = set()

    def decide(self, event: Envelope[Any]) -> list[Outcome]:
        """What the event does, given every event decided before it."""
        if isinstance(event.data, SeminarPublished):
            return self._publish(event.data)
        if isinstance(event.data, SeminarCancelled):
            return self._cancel(event.data.seminar_id)
        return []

    def _publish(self, data: SeminarPublished) -> list[Outcome]:
        seminar_id = data.seminar_id
        self._published[seminar_id] = data
        before = self._seminars.get(seminar_id)
        seats = (
            SeminarSeats(capacity=data.capacity, accepted=0, waitlisted=0)
            if before is None
            else before.seats.with_capacity(data.capacity)
        )
        self._seminars[seminar_id] = Seminar(
            seminar_id=seminar_id,
            title=data.title,
            starts_on=data.starts_on,
            ends_on=data.ends_on,
            fee_cents=data.fee_cents,
            cancelled=before is not None and before.cancelled,
            seats=seats,
            location=data.location,
            course=data.course,
        )
        self._waitlists.setdefault(seminar_id, _Waitlist(head=[], unloaded=0))
        if before is not None and before.cancelled:
            return [SeminarSaved(seminar_id, data.capacity, stays_cancelled=True)]
        saved = SeminarSaved(seminar_id, data.capacity, stays_cancelled=False)
        if before is None:
            # The offer the parked submissions waited for: decided in their arrival order.
            parked = self._waiting_for_offer.pop(seminar_id, [])
            return [saved, *(self._decide_parked(p) for p in parked)]
        # A larger capacity frees seats for the waitlist.
        return [saved, *self._fill_free_seats(seminar_id)]

    def _decide_parked(self, parked: ParkedSubmission) -> ParkedDecided:
        registration_id, content = parked.registration_id, parked.content
        seminar = self._seminars[content.seminar_id]
        participant = self._participant_keys[(content.seminar_id, content.participant_email)]
        decision = decide_submission(
            content=content,
            key_well_shaped=True,
            existing=None,
            seminar=seminar,
            participant_already_registered=participant in self._active_participants,
        )
        del self._parked[registration_id]
        decided = SubmissionDecided(
            registration_id,
            content,
            decision,
            seminar,
            pending_withdrawal=False,
            submitted_at=parked.submitted_at,
        )
        if isinstance(decision, Rejected):
            self._store(
                registration_id,
                parked.given_kommune_key,
                content,
                Status.REJECTED,
                rejection_reason=decision.reason,
                submitted_at=parked.submitted_at,
            )
        elif isinstance(decision, Placed):
            self._store(
                registration_id,
                parked.given_kommune_key,
                content,
                decision.placement.status,
                rejection_reason=None,
                submitted_at=parked.submitted_at,
            )
            self._place(registration_id, seminar, decision.placement)
            self._active_participants.add(participant)
            if decision.placement.status is Status.ACCEPTED:
                self._promoted_or_placed(registration_id, content.seminar_id)
        else:  # a new seminar is neither unknown nor holds the id: nothing else is possible
            raise AssertionError(f"a parked submission decided as {decision!r}")
        return ParkedDecided(parked, decided)

    def _promoted_or_placed(self, registration_id: str, seminar_id: str) -> None:
        self._accepted.setdefault(seminar_id, []).append(registration_id)

    def _promoted(self, registration: Registration) -> None:
        self._promoted_or_placed(registration.registration_id, registration.content.seminar_id)

    def _cancel(self, seminar_id: str) -> list[Outcome]:
        seminar = self._seminars.get(seminar_id)
        if seminar is None or seminar.cancelled:
            return [CancellationIgnored(seminar_id, cancelled_before=seminar is not None)]
        # Accepted ones first, by registration_id; then the waitlist in its order.
        accepted = sorted(self._accepted.get(seminar_id, ()), key=self._registration_order.__getitem__)
        waiting = self._waitlists[seminar_id].everyone()
        outcomes: list[Outcome] = []
        for registration_id in [*accepted, *waiting]:
            registration = self._registrations[registration_id]
            self._registrations[registration_id] = replace(registration, status=Status.WITHDRAWN)
            self._withdrawal_reasons[registration_id] = "seminar_cancelled"
            outcomes.append(Withdrawn(registration, "seminar_cancelled"))
        self._accepted[seminar_id] = []
        self._waitlists[seminar_id] = _Waitlist(head=[], unloaded=0)
        self._seminars[seminar_id] = replace(seminar, cancelled=True, seats=seminar.seats.emptied())
        outcomes.append(CancellationApplied(seminar_id, len(accepted) + len(waiting)))
        return outcomes


class ParkingSweep(_Run):
    """Rejects the parked submissions whose grace has passed as `unknown_seminar`, oldest first.

    A parked submission's seminar is never known: parking and publishing a seminar hold the
    seminar's lock, and the offer decides every submission parked for it.
    """

    def __init__(self, state: ParkingState, grace: timedelta) -> None:
        super().__init__({}, {}, [], state.parked)
        self._now = state.now
        self._grace = grace

    def sweep(self) -> list[Outcome]:
        expired = [
            p.registration_id for p in self._parked.values() if grace_expired(p, self._now, self._grace)
        ]
        return [self._reject_parked(registration_id, pending_withdrawal=False) for registration_id in expired]
