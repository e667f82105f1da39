"""Wiring: the runtime, the consumers of both portal topics and the sweep of parked submissions."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta
from pathlib import Path

from services.registration import erasure
from services.registration.commands import RegistrationCommandsApplier
from services.registration.handlers import ParkingSweeper, PortalRegistrationsApplier, PortalSeminarsApplier
from services.registration.settings import RegistrationSettings
from services.registration.store import PostgresRegistrationUnitOfWork
from shared.commands import COMMAND_EVENTS, RESULT_EVENTS
from shared.db import Pool
from shared.directory import load_directory
from shared.erasure import schedule_retention
from shared.events import PORTAL_REGISTRATION_EVENTS, PORTAL_SEMINAR_EVENTS, REGISTRATION_OUTCOME_EVENTS
from shared.logging import get_logger
from shared.redaction import safe_error
from shared.replay import replayer_of
from shared.runtime import ServiceRuntime

SERVICE = "registration"
MIGRATIONS = Path(__file__).parent / "migrations"

log = get_logger(__name__)


def sweep_interval(grace: timedelta) -> float:
    """How often the sweep looks for expired parked submissions: a fraction of the grace, so a
    submission is rejected soon after its grace has passed, within bounds that keep it cheap.
    Without a grace nothing is parked: a slow round only rejects what an earlier start parked."""
    if grace <= timedelta(0):
        return 10.0
    return min(10.0, max(0.5, grace.total_seconds() / 4))


async def sweep_forever(pool: Pool, sweeper: ParkingSweeper, interval: float) -> None:
    """Reject expired parked submissions every `interval` seconds, until cancelled.

    Every instance sweeps; the seminar locks make a second sweeper find nothing left to do. A
    failed sweep (the database away) is logged and tried again at the next round.
    """
    while True:
        rejected = 0
        try:
            async with PostgresRegistrationUnitOfWork(pool) as uow:
                rejected = await sweeper.sweep(uow)
        except Exception as exc:
            log.warning("sweep of parked submissions failed, trying again", error=safe_error(exc))
        if rejected < sweeper.limit:  # a full round: more may have expired, go on at once
            await asyncio.sleep(interval)


def _start_sweep(runtime: ServiceRuntime, grace: timedelta) -> None:
    """A background task beside the consumers, started once the pool is up, cancelled first at stop."""
    sweeper = ParkingSweeper(runtime.topics, grace)
    task: asyncio.Task[None] | None = None

    async def start() -> None:
        nonlocal task
        task = asyncio.create_task(
            sweep_forever(runtime.pool, sweeper, sweep_interval(grace)), name=f"{SERVICE}-parking-sweep"
        )

    async def stop() -> None:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    runtime.app.after_startup(start)
    runtime.app.on_shutdown(stop)


def build(settings: RegistrationSettings) -> ServiceRuntime:
    runtime = ServiceRuntime(
        name=SERVICE,
        settings=settings,
        database_url=settings.database_url,
        http_port=settings.http_port,
        migrations=MIGRATIONS,
    )
    directory = load_directory(str(settings.gv100ad_file))
    grace = timedelta(seconds=settings.seminar_grace_seconds)
    runtime.consume(
        runtime.topics.portal_seminars,
        PORTAL_SEMINAR_EVENTS,
        PortalSeminarsApplier(runtime.topics),
        PostgresRegistrationUnitOfWork,
        description=(
            "Creates and updates seminar offers; a cancellation withdraws every registration. "
            "An offer decides the submissions that waited for it, in their arrival order."
        ),
    )
    runtime.consume(
        runtime.topics.portal_registrations,
        PORTAL_REGISTRATION_EVENTS,
        PortalRegistrationsApplier(runtime.topics, directory, seminar_grace=grace),
        PostgresRegistrationUnitOfWork,
        description=(
            "Accepts, waitlists or rejects submissions; applies withdrawals and promotes. A submission "
            "for a seminar not known yet waits for its offer for REGISTRATION_SEMINAR_GRACE_SECONDS."
        ),
    )
    consumed = [runtime.topics.portal_seminars, runtime.topics.portal_registrations]
    runtime.consume(
        runtime.topics.operations_commands,
        COMMAND_EVENTS,
        RegistrationCommandsApplier(
            runtime.topics, replayer_of(runtime, settings.kafka_bootstrap_servers, consumed)
        ),
        PostgresRegistrationUnitOfWork,
        description=(
            "Carries out command.erase, and command.replay_dead_letters for the portal topics; "
            "other commands are passed over."
        ),
    )
    runtime.publishes(
        runtime.topics.operations_results,
        RESULT_EVENTS,
        "result.erase (what was erased), result.replay_dead_letters for the portal topics.",
    )
    runtime.publishes(
        runtime.topics.registration_events,
        REGISTRATION_OUTCOME_EVENTS,
        "Every registration outcome, keyed by the canonical kommune_key.",
    )
    # With no grace nothing is ever parked; the sweep still runs once in a while, so that what
    # an earlier start with a grace parked is rejected.
    _start_sweep(runtime, grace)
    days = settings.personal_data_retention_days
    schedule_retention(
        runtime, settings.retention_interval_seconds, lambda conn: erasure.retention_round(conn, days)
    )
    runtime.finish_setup()
    return runtime
