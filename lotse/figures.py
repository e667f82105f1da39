"""Gathering the report's figures from a running stack: the topics, the funding programme and the
directory, and the notification service's own store. Nothing here is a constant of the demo."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lotse.dashboard import Dashboard, build_dashboard
from lotse.db import with_pool
from lotse.log import read_all
from lotse.reference import ReferenceData, load_reference_data
from lotse.report import Area, PeriodTerms, ProgrammeFigures, Report, build_report
from lotse.settings import OperatorSettings
from services.notification import operations as mail


def mail_location(mail_dir: Path) -> str:
    count = sum(1 for _ in mail_dir.glob("*.eml")) if mail_dir.is_dir() else 0
    return f"{mail_dir} ({count} .eml files)"


def programme_figures(reference: ReferenceData) -> ProgrammeFigures:
    """What the report states about the programme: its file over the directory."""
    program = reference.program
    return ProgrammeFigures(
        program_id=program.id,
        name=program.name,
        lands=tuple(program.eligibility.lands),
        eligible_kommunen=reference.eligible_kommunen,
        places=reference.places,
        periods=tuple(
            PeriodTerms(period.id, period.starts_on, period.ends_on, period.budget_cents)
            for period in program.periods
        ),
        areas=tuple(Area(a.level, a.key, a.name, a.label, a.eligible) for a in reference.areas),
    )


@dataclass(frozen=True)
class PublishedEvents:
    """The services' topics as lotse reads them, each in log order per partition."""

    registration: list[dict[str, Any]]
    funding: list[dict[str, Any]]
    notification: list[dict[str, Any]]


async def read_published_events(config: OperatorSettings) -> PublishedEvents:
    bootstrap, topics = config.common.kafka_bootstrap_servers, config.topics
    return PublishedEvents(
        registration=await read_all(bootstrap, topics.registration_events),
        funding=await read_all(bootstrap, topics.funding_decisions),
        notification=await read_all(bootstrap, topics.notification_events),
    )


async def gather_report(
    config: OperatorSettings,
    reference: ReferenceData | None = None,
    events: PublishedEvents | None = None,
) -> Report:
    if reference is None:
        reference = await asyncio.to_thread(
            load_reference_data, config.funding.program_file, config.common.gv100ad_file
        )
    if events is None:
        events = await read_published_events(config)
    report = build_report(
        registration_events=events.registration,
        funding_events=events.funding,
        notification_events=events.notification,
        programme=programme_figures(reference),
        mail_location=await asyncio.to_thread(mail_location, config.mail_sink.mail_dir),
    )
    # The notification service's store is the authority on what was delivered.
    report.emails_sent = await with_pool(config.notification.database_url, mail.count_sent)
    return report


async def gather_dashboard(config: OperatorSettings, reference: ReferenceData | None = None) -> Dashboard:
    """The terminal report's figures and their course over time, from one reading of the topics."""
    events = await read_published_events(config)
    report = await gather_report(config, reference, events)
    return build_dashboard(report, events.registration, events.funding)
