"""Wiring: the programme, the runtime, the consumer of registration.events, the programme sync."""

from __future__ import annotations

from pathlib import Path

from services.funding import erasure, operations
from services.funding.commands import FundingCommandsApplier
from services.funding.figures import sample_programme
from services.funding.handlers import RegistrationEventsApplier
from services.funding.settings import FundingSettings
from services.funding.store import PostgresFundingUnitOfWork
from shared.commands import COMMAND_EVENTS, RESULT_EVENTS
from shared.directory import load_directory
from shared.erasure import schedule_retention
from shared.events import FUNDING_DECISION_EVENTS, REGISTRATION_OUTCOME_EVENTS
from shared.logging import get_logger
from shared.program import load_program
from shared.replay import replayer_of
from shared.runtime import ServiceRuntime

SERVICE = "funding"
MIGRATIONS = Path(__file__).parent / "migrations"

log = get_logger(__name__)


def build(settings: FundingSettings) -> ServiceRuntime:
    program = load_program(settings.program_file)
    directory = load_directory(str(settings.gv100ad_file))
    runtime = ServiceRuntime(
        name=SERVICE,
        settings=settings,
        database_url=settings.database_url,
        http_port=settings.http_port,
        migrations=MIGRATIONS,
    )
    runtime.consume(
        runtime.topics.registration_events,
        REGISTRATION_OUTCOME_EVENTS,
        RegistrationEventsApplier(runtime.topics, program, directory, settings.participant_key_bytes()),
        PostgresFundingUnitOfWork,
        description=(
            "Decides funding for every accepted registration; a withdrawal releases the funding "
            "and promotes from the waitlists."
        ),
    )
    runtime.consume(
        runtime.topics.operations_commands,
        COMMAND_EVENTS,
        FundingCommandsApplier(
            runtime.topics,
            replayer_of(runtime, settings.kafka_bootstrap_servers, [runtime.topics.registration_events]),
        ),
        PostgresFundingUnitOfWork,
        description=(
            "Carries out command.close_period, command.set_budget, command.reopen_period, "
            "command.erase and command.replay_dead_letters for registration.events; other "
            "commands are passed over."
        ),
    )
    runtime.publishes(
        runtime.topics.operations_results,
        RESULT_EVENTS,
        "result.close_period, result.set_budget, result.reopen_period, result.erase and "
        "result.replay_dead_letters, in the transaction of their effect.",
    )
    runtime.publishes(
        runtime.topics.funding_decisions,
        FUNDING_DECISION_EVENTS,
        "Every funding decision, release and promotion, keyed by kommune_key.",
    )

    async def sync_program_on_startup() -> None:
        # Runs after the runtime's own startup (pool, migrations) and before the broker starts;
        # promotions after a raise leave through the outbox like every decision.
        await operations.sync_program(runtime.pool, program, directory, runtime.topics)

    runtime.app.on_startup(sync_program_on_startup)
    runtime.every(15, lambda: sample_programme(runtime.pool), name="programme")
    days = settings.personal_data_retention_days
    schedule_retention(
        runtime, settings.retention_interval_seconds, lambda conn: erasure.retention_round(conn, days)
    )
    runtime.finish_setup()
    return runtime
