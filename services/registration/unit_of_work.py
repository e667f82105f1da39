"""The port between the registration appliers and their state: one transaction per batch.

`store.PostgresRegistrationUnitOfWork` implements it over PostgreSQL; the unit tests use an
in-memory twin (tests/unit/registration/fakes.py), so that they drive the appliers that run in
production.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Protocol

from services.registration.domain import (
    ParkingState,
    PortalRegistrationData,
    PortalSeminarData,
    RegistrationsState,
    SeminarsState,
    StateChanges,
)
from shared.unit_of_work import UnitOfWork


class RegistrationUnitOfWork(UnitOfWork, Protocol):
    async def load_for_registrations(self, events: Sequence[PortalRegistrationData]) -> RegistrationsState:
        """Lock what a batch of portal.registrations touches, and load what deciding it needs.

        Locks, in the order every transaction takes them: the registration ids, then the rows of
        their seminars. The waitlist heads are as long as `domain.waitlist_reach` says.
        """
        ...

    async def load_for_seminars(self, events: Sequence[PortalSeminarData]) -> SeminarsState:
        """Lock the seminars a batch of portal.seminars touches, and load what deciding it needs
        (waitlist heads and rosters as `domain.seminar_reach` says), and the parked submissions
        of the seminars it publishes that are not known yet.

        Locks the seminars (their ids, then their rows) as `load_for_registrations` does, so
        that a submission parked for a seminar and that seminar's offer never pass each other.
        """
        ...

    async def load_expired_parking(self, grace: timedelta, limit: int) -> ParkingState:
        """Lock and load the oldest parked submissions (at most `limit`) that have waited at least
        `grace` since they arrived, with the clock their arrival was taken with. Locks their
        seminars' ids first, as every transaction that parks or decides them does."""
        ...

    async def record(self, changes: StateChanges) -> None:
        """Write what a run changed; refuses (raises) changes the stored state contradicts."""
        ...
