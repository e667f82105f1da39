"""Wiring: the runtime, the two consumers and the sender loop."""

from __future__ import annotations

from pathlib import Path

from services.notification.handlers import FundingDecisionsApplier, Letters, RegistrationEventsApplier
from services.notification.sender import Sender
from services.notification.settings import NotificationSettings
from shared.directory import load_directory
from shared.events import FUNDING_DECISION_EVENTS, NOTIFICATION_EVENTS, REGISTRATION_OUTCOME_EVENTS
from shared.legacy_applier import OnConnection
from shared.runtime import ServiceRuntime
from shared.unit_of_work import PostgresUnitOfWork

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
    letters = Letters(load_directory(settings.gv100ad_file), settings.office)
    runtime.consume(
        runtime.topics.registration_events,
        REGISTRATION_OUTCOME_EVENTS,
        OnConnection(RegistrationEventsApplier(letters)),
        PostgresUnitOfWork,
        description="Records the letter for every registration outcome and releases waiting decisions.",
    )
    runtime.consume(
        runtime.topics.funding_decisions,
        FUNDING_DECISION_EVENTS,
        OnConnection(FundingDecisionsApplier(letters)),
        PostgresUnitOfWork,
        description="Records the letter for every funding decision; keeps it until its registration arrives.",
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
    runtime.finish_setup()
    return runtime
