"""The programme report, folded from the events the services published.

Pure: it takes decoded event envelopes (as dicts) and the programme's figures, and returns numbers.
Reading the topics is the caller's business, so the report never trusts anything but the log.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class PeriodFigures:
    period_id: str
    budget_cents: int | None
    approved_cents: int
    released_cents: int

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
    eligible_kommunen: int = 0
    funded_kommunen: int = 0
    emails_sent: int = 0
    emails_failed: int = 0
    mail_location: str = ""

    @property
    def funded_share(self) -> float:
        return self.funded_kommunen / self.eligible_kommunen if self.eligible_kommunen else 0.0

    def as_rows(self) -> list[tuple[str, str, int | float | str | None]]:
        """(section, item, value): the flat form for CSV and JSON."""
        rows: list[tuple[str, str, int | float | str | None]] = []
        rows += [("registration", key, value) for key, value in sorted(self.registrations.items())]
        rows += [("funding", key, value) for key, value in sorted(self.funding.items())]
        for period in self.periods:
            rows += [
                ("budget", f"{period.period_id}.budget_cents", period.budget_cents),
                ("budget", f"{period.period_id}.used_cents", period.used_cents),
                ("budget", f"{period.period_id}.remaining_cents", period.remaining_cents),
            ]
        rows += [
            ("kommunen", "eligible", self.eligible_kommunen),
            ("kommunen", "with_funded_participant", self.funded_kommunen),
            ("kommunen", "funded_share", round(self.funded_share, 4)),
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
    budgets: dict[str, int | None],
    eligible_kommunen: int,
    mail_location: str,
) -> Report:
    report = Report(eligible_kommunen=eligible_kommunen, mail_location=mail_location)
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
    approved: Counter[str] = Counter()
    released: Counter[str] = Counter()
    for event in funding_events:
        data = event["data"]
        if event["event_type"] == "funding.approved":
            approved[data["period_id"]] += data["amount_cents"]
        elif event["event_type"] == "funding.released":
            released[data["period_id"]] += data["amount_cents"]
    report.periods = [
        PeriodFigures(period_id, budget, approved[period_id], released[period_id])
        for period_id, budget in budgets.items()
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
