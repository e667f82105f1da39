"""Wiring: the runtime and the consumers of both portal topics."""

from __future__ import annotations

from pathlib import Path

from services.registration.handlers import PortalRegistrationsApplier, PortalSeminarsApplier
from services.registration.settings import RegistrationSettings
from services.registration.store import PostgresRegistrationUnitOfWork
from shared.directory import load_directory
from shared.events import PORTAL_REGISTRATION_EVENTS, PORTAL_SEMINAR_EVENTS, REGISTRATION_OUTCOME_EVENTS
from shared.runtime import ServiceRuntime

SERVICE = "registration"
MIGRATIONS = Path(__file__).parent / "migrations"


def build(settings: RegistrationSettings) -> ServiceRuntime:
    runtime = ServiceRuntime(
        name=SERVICE,
        settings=settings,
        database_url=settings.database_url,
        http_port=settings.http_port,
        migrations=MIGRATIONS,
    )
    directory = load_directory(str(settings.gv100ad_file))
    runtime.consume(
        runtime.topics.portal_seminars,
        PORTAL_SEMINAR_EVENTS,
        PortalSeminarsApplier(runtime.topics),
        PostgresRegistrationUnitOfWork,
        description="Creates and updates seminar offers; a cancellation withdraws every registration.",
    )
    runtime.consume(
        runtime.topics.portal_registrations,
        PORTAL_REGISTRATION_EVENTS,
        PortalRegistrationsApplier(runtime.topics, directory),
        PostgresRegistrationUnitOfWork,
        description="Accepts, waitlists or rejects submissions; applies withdrawals and promotes.",
    )
    runtime.publishes(
        runtime.topics.registration_events,
        REGISTRATION_OUTCOME_EVENTS,
        "Every registration outcome, keyed by the canonical kommune_key.",
    )
    runtime.finish_setup()
    return runtime
