"""Wiring: the runtime, the two consumers and the sender loop."""

from __future__ import annotations

from pathlib import Path

from services.notification import erasure
from services.notification.commands import NotificationCommandsApplier
from services.notification.compose import EmailWriter
from services.notification.domain import KommuneNames
from services.notification.figures import sample_emails
from services.notification.handlers import FundingDecisionsApplier, RegistrationEventsApplier
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
    write_email = EmailWriter(settings.office, settings.wording)
    runtime.consume(
        runtime.topics.registration_events,
        REGISTRATION_OUTCOME_EVENTS,
        RegistrationEventsApplier(name_kommune, write_email),
        PostgresNotificationUnitOfWork,
        description="Records the letter for every registration outcome and releases waiting decisions.",
    )
    runtime.consume(
        runtime.topics.funding_decisions,
        FUNDING_DECISION_EVENTS,
        FundingDecisionsApplier(name_kommune, write_email),
        PostgresNotificationUnitOfWork,
        description="Records the letter for every funding decision; keeps it until its registration arrives.",
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
    sender = Sender(pool=lambda: runtime.pool, settings=settings, topics=runtime.topics)
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
