"""The programme report, folded from the events the services published.

Pure: it takes decoded event envelopes (as dicts) and the programme's figures, and returns numbers.
Reading the topics is the caller's business, so the report never trusts anything but the log.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from typing import Any


@dataclass(frozen=True)
class PeriodTerms:
    """A funding period as the programme file defines it."""

    period_id: str
    starts_on: date
    ends_on: date
    budget_cents: int | None  # None: unlimited


@dataclass(frozen=True)
class Area:
    """A Kreis or a Bezirk, with the canonical keys of the eligible Kommunen in it."""

    level: str  # "kreis" or "bezirk"
    key: str
    name: str
    label: str  # "Landkreis", "kreisfreie Stadt", "Stadtkreis", "Bezirk"
    eligible: frozenset[str]


@dataclass(frozen=True)
class ProgrammeFigures:
    """What the report states about the programme, from its file over the directory."""

    program_id: str
    name: str
    lands: tuple[str, ...]
    eligible_kommunen: int
    places: int
    periods: tuple[PeriodTerms, ...]
    areas: tuple[Area, ...] = ()


@dataclass(frozen=True)
class AreaParticipation:
    area: Area
    funded_kommunen: int

    @property
    def eligible_kommunen(self) -> int:
        return len(self.area.eligible)

    @property
    def funded_share(self) -> float:
        return self.funded_kommunen / self.eligible_kommunen if self.eligible_kommunen else 0.0


@dataclass(frozen=True)
class PeriodFigures:
    period_id: str
    budget_cents: int | None
    approved_cents: int
    released_cents: int
    starts_on: date | None = None
    ends_on: date | None = None

    @property
    def used_cents(self) -> int:
        return self.approved_cents - self.released_cents

    @property
    def remaining_cents(self) -> int | None:
        return None if self.budget_cents is None else self.budget_cents - self.used_cents


@dataclass
class Report:
    registrations: Counter[str] = field(default_factory=Counter)  # registration outcome by state/reason
    funding: Counter[str] = field(default_factory=Counter)  # current funding state by reason
    periods: list[PeriodFigures] = field(default_factory=list)
    programme: ProgrammeFigures | None = None
    eligible_kommunen: int = 0
    places: int = 0
    funded_kommunen: int = 0
    participation: list[AreaParticipation] = field(default_factory=list)
    emails_sent: int = 0
    emails_failed: int = 0
    mail_location: str = ""

    @property
    def funded_share(self) -> float:
        return self.funded_kommunen / self.eligible_kommunen if self.eligible_kommunen else 0.0

    def as_rows(self) -> list[tuple[str, str, int | float | str | None]]:
        """(section, item, value): the flat form for CSV and JSON."""
        rows: list[tuple[str, str, int | float | str | None]] = []
        if self.programme is not None:
            rows += [
                ("programme", "id", self.programme.program_id),
                ("programme", "name", self.programme.name),
                ("programme", "lands", ",".join(self.programme.lands)),
            ]
        rows += [("registration", key, value) for key, value in sorted(self.registrations.items())]
        rows += [("funding", key, value) for key, value in sorted(self.funding.items())]
        for period in self.periods:
            if period.starts_on is not None and period.ends_on is not None:
                rows += [
                    ("budget", f"{period.period_id}.starts_on", period.starts_on.isoformat()),
                    ("budget", f"{period.period_id}.ends_on", period.ends_on.isoformat()),
                ]
            rows += [
                ("budget", f"{period.period_id}.budget_cents", period.budget_cents),
                ("budget", f"{period.period_id}.used_cents", period.used_cents),
                ("budget", f"{period.period_id}.remaining_cents", period.remaining_cents),
            ]
        rows += [
            ("kommunen", "eligible", self.eligible_kommunen),
            ("kommunen", "places", self.places),
            ("kommunen", "with_funded_participant", self.funded_kommunen),
            ("kommunen", "funded_share", round(self.funded_share, 4)),
        ]
        for entry in self.participation:
            section, key = f"participation.{entry.area.level}", entry.area.key
            rows += [
                (section, f"{key}.name", f"{entry.area.name} ({entry.area.label})"),
                (section, f"{key}.eligible", entry.eligible_kommunen),
                (section, f"{key}.with_funded_participant", entry.funded_kommunen),
            ]
        rows += [
            ("emails", "sent", self.emails_sent),
            ("emails", "failed", self.emails_failed),
            ("emails", "location", self.mail_location),
        ]
        return rows


def latest_by_registration(events: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The last event per registration. Events of one registration share a key, so the log keeps
    their order within a partition; the caller passes them in log order per partition."""
    latest: dict[str, dict[str, Any]] = {}
    for event in events:
        latest[event["data"]["registration_id"]] = event
    return latest


def _state(event: dict[str, Any]) -> str:
    kind = str(event["event_type"]).split(".", 1)[1]
    data = event["data"]
    if kind == "approved":
        return "approved.promoted" if data.get("promoted") else "approved"
    if kind in {"waitlisted", "declined", "rejected", "withdrawn"} and "reason" in data:
        return f"{kind}.{data['reason']}"
    return kind


def build_report(
    *,
    registration_events: list[dict[str, Any]],
    funding_events: list[dict[str, Any]],
    notification_events: list[dict[str, Any]],
    programme: ProgrammeFigures,
    mail_location: str,
) -> Report:
    report = Report(
        programme=programme,
        eligible_kommunen=programme.eligible_kommunen,
        places=programme.places,
        mail_location=mail_location,
    )
    registrations = latest_by_registration(registration_events)
    for event in registrations.values():
        report.registrations[_state(event)] += 1
    funded: set[str] = set()
    for registration_id, event in latest_by_registration(funding_events).items():
        state = _state(event)
        withdrawn = registrations.get(registration_id, {}).get("event_type") == "registration.withdrawn"
        if withdrawn and event["event_type"] == "funding.waitlisted":
            # Leaving the waitlist publishes no funding event: the registration's withdrawal says it.
            state = "withdrawn.from_waitlist"
        report.funding[state] += 1
        if event["event_type"] == "funding.approved":
            funded.add(event["data"]["kommune_key"])
    report.funded_kommunen = len(funded)
    report.participation = [AreaParticipation(area, len(area.eligible & funded)) for area in programme.areas]
    approved: Counter[str] = Counter()
    released: Counter[str] = Counter()
    for event in funding_events:
        data = event["data"]
        if event["event_type"] == "funding.approved":
            approved[data["period_id"]] += data["amount_cents"]
        elif event["event_type"] == "funding.released":
            released[data["period_id"]] += data["amount_cents"]
    report.periods = [
        PeriodFigures(
            period.period_id,
            period.budget_cents,
            approved[period.period_id],
            released[period.period_id],
            period.starts_on,
            period.ends_on,
        )
        for period in programme.periods
    ]
    sent = {
        e["data"]["notification_id"] for e in notification_events if e["event_type"] == "notification.sent"
    }
    failed = {
        e["data"]["notification_id"] for e in notification_events if e["event_type"] == "notification.failed"
    }
    report.emails_sent = len(sent)
    report.emails_failed = len(failed - sent)
    return report
