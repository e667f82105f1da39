"""Gathering the report's figures from a running stack: the topics, the funding programme and the
directory, and the notification service's own store. Nothing here is a constant of the demo."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from lotse.db import with_pool
from lotse.log import read_all
from lotse.report import Report, build_report
from services.notification import operations as mail
from shared.directory import KIND_LABELS_DE, Directory, Kommune, KommuneKind, load_directory
from shared.program import Program, load_program

if TYPE_CHECKING:
    from lotse.cli import OperatorSettings


@dataclass(frozen=True)
class Programme:
    program: Program
    directory: Directory

    @property
    def budgets(self) -> dict[str, int | None]:
        return {period.id: period.budget_cents for period in self.program.periods}

    @property
    def eligible_kommunen(self) -> int:
        return sum(
            1 for kommune in self.directory.kommunen.values() if self.program.eligibility.admits(kommune)
        )

    def eligibility_of(self, kommune: Kommune) -> tuple[bool, str]:
        """Whether the programme funds the Kommune, and why, in words an operator can pass on."""
        rules = self.program.eligibility
        label = KIND_LABELS_DE[kommune.kind]
        if kommune.land not in rules.lands:
            return (
                False,
                f"it lies in Land {kommune.land}; the programme covers Land {', '.join(rules.lands)}",
            )
        if rules.admits(kommune):
            return True, f"{label} in Land {kommune.land}"
        parent = self.directory.get(kommune.parent_key) if kommune.parent_key else None
        if kommune.kind is KommuneKind.MITGLIEDSGEMEINDE and parent is not None:
            return False, (
                f"{label} of the Samtgemeinde {parent.name} ({parent.key}), which is the eligible Kommune"
            )
        return False, f"a {label} is not among the eligible kinds of Kommune"


def load_programme(program_file: Path, directory_file: Path) -> Programme:
    return Programme(load_program(program_file), load_directory(str(directory_file)))


def mail_location(mail_dir: Path) -> str:
    count = sum(1 for _ in mail_dir.glob("*.eml")) if mail_dir.is_dir() else 0
    return f"{mail_dir} ({count} .eml files)"


async def gather_report(config: OperatorSettings, programme: Programme | None = None) -> Report:
    if programme is None:
        programme = await asyncio.to_thread(load_programme, config.funding_program_file, config.gv100ad_file)
    topics = config.topics
    report = build_report(
        registration_events=await read_all(config.kafka_bootstrap_servers, topics.registration_events),
        funding_events=await read_all(config.kafka_bootstrap_servers, topics.funding_decisions),
        notification_events=await read_all(config.kafka_bootstrap_servers, topics.notification_events),
        budgets=programme.budgets,
        eligible_kommunen=programme.eligible_kommunen,
        mail_location=await asyncio.to_thread(mail_location, config.mail_dir),
    )
    # The notification service's store is the authority on what was delivered.
    report.emails_sent = await with_pool(config.notification_database_url, mail.count_sent)
    return report
