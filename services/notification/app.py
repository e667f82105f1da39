"""Wiring: the runtime, the two consumers and the sender loop."""

from __future__ import annotations

import asyncio
from pathlib import Path

from services.notification import erasure
from services.notification.commands import NotificationCommandsApplier
from services.notification.compose import EmailWriter
from services.notification.domain import KommuneNames
from services.notification.figures import sample_emails
from services.notification.handlers import FundingDecisionsApplier, RegistrationEventsApplier
from services.notification.priority import DecisionPathLag, DecisionsFirst, YieldRule
from services.notification.sender import Sender
from services.notification.settings import NotificationSettings
from services.notification.store import PostgresNotificationUnitOfWork
from shared.commands import COMMAND_EVENTS, RESULT_EVENTS
from shared.directory import load_directory
from shared.erasure import schedule_retention
from shared.events import FUNDING_DECISION_EVENTS, NOTIFICATION_EVENTS, REGISTRATION_OUTCOME_EVENTS
from shared.replay import replayer_of
from shared.runtime import ServiceRuntime

SERVICE = "notification"
MIGRATIONS = Path(__file__).parent / "migrations"


def build(settings: NotificationSettings) -> ServiceRuntime:
    runtime = ServiceRuntime(
        name=SERVICE,
        settings=settings,
        database_url=settings.database_url,
        http_port=settings.http_port,
        migrations=MIGRATIONS,
    )
    name_kommune = KommuneNames(load_directory(settings.gv100ad_file))
    decisions_first = _decisions_first(runtime, settings)
    write_email = EmailWriter(settings.office, settings.wording)
    runtime.consume(
        runtime.topics.registration_events,
        REGISTRATION_OUTCOME_EVENTS,
        RegistrationEventsApplier(name_kommune, write_email),
        PostgresNotificationUnitOfWork,
        description="Records the letter for every registration outcome and releases waiting decisions.",
        before_batch=decisions_first.turn,
    )
    runtime.consume(
        runtime.topics.funding_decisions,
        FUNDING_DECISION_EVENTS,
        FundingDecisionsApplier(name_kommune, write_email),
        PostgresNotificationUnitOfWork,
        description="Records the letter for every funding decision; keeps it until its registration arrives.",
        before_batch=decisions_first.turn,
    )
    runtime.consume(
        runtime.topics.operations_commands,
        COMMAND_EVENTS,
        NotificationCommandsApplier(
            runtime.topics,
            replayer_of(
                runtime,
                settings.kafka_bootstrap_servers,
                [runtime.topics.registration_events, runtime.topics.funding_decisions],
            ),
        ),
        PostgresNotificationUnitOfWork,
        description=(
            "Carries out command.mail_resend, command.mail_park, command.erase, and "
            "command.replay_dead_letters "
            "for the topics it consumes; other commands are passed over."
        ),
    )
    runtime.publishes(
        runtime.topics.operations_results,
        RESULT_EVENTS,
        "result.mail_resend, result.mail_park, result.erase, result.replay_dead_letters, with their effect.",
    )
    runtime.publishes(
        runtime.topics.notification_events,
        NOTIFICATION_EVENTS,
        "notification.sent for every delivered email, notification.failed for every parked one.",
    )
    sender = Sender(
        pool=lambda: runtime.pool, settings=settings, topics=runtime.topics, turn=decisions_first.turn
    )
    # After startup: the pool and migrations exist. On shutdown: before the pool closes.
    runtime.app.after_startup(sender.start)
    runtime.app.on_shutdown(sender.stop)
    runtime.every(15, lambda: sample_emails(runtime.pool), name="emails")
    personal_days, letter_days = settings.personal_data_retention_days, settings.letter_retention_days
    schedule_retention(
        runtime,
        settings.retention_interval_seconds,
        lambda conn: erasure.retention_round(conn, personal_days, letter_days),
    )
    runtime.finish_setup()
    return runtime


def _decisions_first(runtime: ServiceRuntime, settings: NotificationSettings) -> DecisionsFirst:
    """The gate of the letter work, watching registration's and funding's consumer lag while the
    service runs (never, with NOTIFICATION_YIELD_LAG=0)."""
    prefix, topics = settings.kafka_topic_prefix, runtime.topics
    lag = DecisionPathLag(
        settings.kafka_bootstrap_servers,
        [
            (prefix + "registration", topics.portal_registrations),
            (prefix + "funding", topics.registration_events),
        ],
        security=runtime.kafka_security,
    )
    gate = DecisionsFirst(
        YieldRule(settings.yield_lag, settings.yield_max_seconds),
        lag.read,
        check_seconds=settings.yield_check_seconds,
    )
    if settings.yield_lag == 0:
        return gate
    watching: list[asyncio.Task[None]] = []

    async def start() -> None:
        watching.append(asyncio.create_task(gate.watch(), name="notification-decisions-first"))

    async def stop() -> None:
        for task in watching:
            task.cancel()
        await asyncio.gather(*watching, return_exceptions=True)
        await lag.stop()

    runtime.app.after_startup(start)
    runtime.app.on_shutdown(stop)
    return gate
