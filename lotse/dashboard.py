"""What the HTML report shows, folded from the published events: pure, no I/O, no drawing.

The terminal report (lotse.report) gives the figures of today; this adds their course over time,
from the `occurred_at` of the funding decisions (and of the withdrawals, which take a registration
off a funding waitlist without a funding event). Times are shown in Europe/Berlin.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from lotse.report import AreaParticipation, Report

BERLIN = ZoneInfo("Europe/Berlin")

# The outcomes of a funding decision, in the order the charts stack them, with German labels.
OUTCOMES: tuple[tuple[str, str], ...] = (
    ("approved", "bewilligt"),
    ("promoted", "nachgerückt (bewilligt)"),
    ("waitlisted", "Warteliste"),
    ("declined", "abgelehnt"),
    ("released", "zurückgegeben"),
)
WAITLISTS: tuple[tuple[str, str], ...] = (
    ("quota_exhausted", "wartet auf einen Platz"),
    ("budget_exhausted", "wartet auf Geld"),
)


@dataclass(frozen=True)
class Bucket:
    """How decisions are counted: per week, or finer when all of them fall within a few days (a
    programme year replayed by `make demo` is decided within seconds)."""

    unit: str  # week, day, hour, minute, second
    label: str  # German, for headings: "Woche"
    step: timedelta

    def start_of(self, moment: datetime) -> datetime:
        """The start of the bucket that holds the moment, in Berlin time (naive)."""
        local = moment.astimezone(BERLIN).replace(tzinfo=None)
        if self.unit == "week":
            monday = local.date() - timedelta(days=local.weekday())
            return datetime.combine(monday, datetime.min.time())
        if self.unit == "day":
            return datetime.combine(local.date(), datetime.min.time())
        if self.unit == "hour":
            return local.replace(minute=0, second=0, microsecond=0)
        if self.unit == "minute":
            return local.replace(second=0, microsecond=0)
        return local.replace(microsecond=0)

    def name(self, start: datetime) -> str:
        """The bucket as a row of a table: KW 23/2023, 05.06.2023, 05.06.2023 14:00."""
        if self.unit == "week":
            year, week, _ = start.isocalendar()
            return f"KW {week:02d}/{year}"
        if self.unit == "day":
            return f"{start:%d.%m.%Y}"
        if self.unit == "second":
            return f"{start:%d.%m.%Y %H:%M:%S}"
        return f"{start:%d.%m.%Y %H:%M}"

    def end_name(self, end: datetime) -> str:
        """The end of a bucket: the week's Sunday, the day, or the last minute (14:59)."""
        if self.unit in {"week", "day"}:
            return f"{end:%d.%m.%Y}"
        if self.unit == "second":
            return f"{end:%d.%m.%Y %H:%M:%S}"
        return f"{end:%d.%m.%Y %H:%M}"


WEEK = Bucket("week", "Woche", timedelta(weeks=1))
DAY = Bucket("day", "Tag", timedelta(days=1))
HOUR = Bucket("hour", "Stunde", timedelta(hours=1))
MINUTE = Bucket("minute", "Minute", timedelta(minutes=1))
SECOND = Bucket("second", "Sekunde", timedelta(seconds=1))


def bucket_for(span: timedelta) -> Bucket:
    """Weeks for a span of four weeks or more; otherwise the coarsest unit that gives four."""
    for bucket in (WEEK, DAY, HOUR, MINUTE):
        if span >= 4 * bucket.step:
            return bucket
    return SECOND


@dataclass(frozen=True)
class BudgetPoint:
    at: datetime  # Berlin time, naive
    committed_cents: int  # approved minus released, up to and including this moment


@dataclass(frozen=True)
class PeriodSeries:
    period_id: str
    budget_cents: int | None  # None: unlimited
    points: tuple[BudgetPoint, ...]

    def committed_at(self, moment: datetime) -> int:
        """What the period had committed at the end of `moment` (Berlin time, naive)."""
        committed = 0
        for point in self.points:
            if point.at > moment:
                break
            committed = point.committed_cents
        return committed

    def remaining(self, committed_cents: int) -> int | None:
        return None if self.budget_cents is None else self.budget_cents - committed_cents


@dataclass(frozen=True)
class DecisionRow:
    start: datetime  # of the bucket, Berlin time, naive
    counts: dict[str, int]  # outcome (OUTCOMES) -> decisions

    @property
    def total(self) -> int:
        return sum(self.counts.values())


@dataclass(frozen=True)
class WaitlistPoint:
    at: datetime  # Berlin time, naive
    waiting: dict[str, int]  # waitlist reason (WAITLISTS) -> registrations waiting after this moment


@dataclass(frozen=True)
class Dashboard:
    report: Report
    bucket: Bucket
    budgets: tuple[PeriodSeries, ...]
    decisions: tuple[DecisionRow, ...]  # every bucket from the first decision to the last
    waitlists: tuple[WaitlistPoint, ...]
    participation: dict[str, tuple[AreaParticipation, ...]]  # level -> areas, highest share first
    data_as_of: datetime | None  # the latest event shown, Berlin time, naive

    def bucket_ends(self) -> list[datetime]:
        """The last moment of each bucket (for tables that sample a course at the bucket's end)."""
        return [row.start + self.bucket.step - timedelta(microseconds=1) for row in self.decisions]

    def waiting_at(self, moment: datetime) -> dict[str, int]:
        waiting = {reason: 0 for reason, _ in WAITLISTS}
        for point in self.waitlists:
            if point.at > moment:
                break
            waiting = point.waiting
        return waiting


def _moment(event: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(str(event["occurred_at"]))


def _local(moment: datetime) -> datetime:
    return moment.astimezone(BERLIN).replace(tzinfo=None)


def outcome_of(event: dict[str, Any]) -> str:
    kind = str(event["event_type"]).removeprefix("funding.")
    if kind == "approved" and event["data"].get("promoted"):
        return "promoted"
    return kind


def budget_series(report: Report, funding_events: Sequence[dict[str, Any]]) -> tuple[PeriodSeries, ...]:
    """Per period of the programme: committed money after each approval and release, in time order."""
    changes: dict[str, list[tuple[datetime, int]]] = {period.period_id: [] for period in report.periods}
    for event in funding_events:
        sign = {"funding.approved": 1, "funding.released": -1}.get(event["event_type"])
        period_id = event["data"].get("period_id")
        if sign is None or period_id not in changes:
            continue
        changes[period_id].append((_moment(event), sign * int(event["data"]["amount_cents"])))
    series = []
    for period in report.periods:
        committed, points = 0, []
        for moment, delta in sorted(changes[period.period_id], key=lambda change: change[0]):
            committed += delta
            points.append(BudgetPoint(_local(moment), committed))
        series.append(PeriodSeries(period.period_id, period.budget_cents, tuple(points)))
    return tuple(series)


def decision_rows(funding_events: Sequence[dict[str, Any]], bucket: Bucket) -> tuple[DecisionRow, ...]:
    """Decisions per bucket and outcome; every bucket between the first and the last, empty ones too."""
    counted: dict[datetime, Counter[str]] = {}
    for event in funding_events:
        start = bucket.start_of(_moment(event))
        counted.setdefault(start, Counter())[outcome_of(event)] += 1
    if not counted:
        return ()
    rows, start, last = [], min(counted), max(counted)
    while start <= last:
        found = counted.get(start, Counter())
        rows.append(DecisionRow(start, {outcome: found[outcome] for outcome, _ in OUTCOMES}))
        start += bucket.step  # naive Berlin time: a day stays a day across DST
    return tuple(rows)


def waitlist_course(
    registration_events: Sequence[dict[str, Any]], funding_events: Sequence[dict[str, Any]]
) -> tuple[WaitlistPoint, ...]:
    """How many registrations wait for a place and for money, after each change.

    A registration is on a waitlist from its funding.waitlisted until its next funding decision
    (promoted, or declined when the period closes) or its withdrawal, whichever comes first; a
    withdrawal publishes no funding event. Each registration's events keep their log order."""
    withdrawn_at = {
        event["data"]["registration_id"]: _moment(event)
        for event in registration_events
        if event["event_type"] == "registration.withdrawn"
    }
    changes: list[tuple[datetime, str, int]] = []  # (moment, reason, +1 or -1)
    on_list: dict[str, tuple[str, datetime]] = {}  # registration -> (reason, since)
    for event in funding_events:
        registration_id, moment = event["data"]["registration_id"], _moment(event)
        left = on_list.pop(registration_id, None)
        if left is not None:
            changes.append((moment, left[0], -1))
        if event["event_type"] == "funding.waitlisted":
            reason = str(event["data"]["reason"])
            changes.append((moment, reason, 1))
            on_list[registration_id] = (reason, moment)
    for registration_id, (reason, since) in on_list.items():
        if registration_id in withdrawn_at:
            # Withdrawn while waiting (or before funding decided: then it left at once).
            changes.append((max(since, withdrawn_at[registration_id]), reason, -1))
    waiting = dict.fromkeys((reason for reason, _ in WAITLISTS), 0)
    points: list[WaitlistPoint] = []
    for moment, reason, delta in sorted(changes, key=lambda change: change[0]):
        waiting[reason] = waiting.get(reason, 0) + delta
        at = _local(moment)
        if points and points[-1].at == at:
            points.pop()
        points.append(WaitlistPoint(at, dict(waiting)))
    return tuple(points)


def participation_by_level(report: Report) -> dict[str, tuple[AreaParticipation, ...]]:
    """Per level (Bezirk first, then Kreis): the areas, highest share first, then by name."""
    levels: dict[str, tuple[AreaParticipation, ...]] = {}
    for level in ("bezirk", "kreis"):
        entries = [entry for entry in report.participation if entry.area.level == level]
        if entries:
            levels[level] = tuple(sorted(entries, key=lambda e: (-e.funded_share, e.area.name, e.area.key)))
    return levels


def _latest(events: Iterable[dict[str, Any]]) -> datetime | None:
    moments = [_moment(event) for event in events]
    return _local(max(moments)) if moments else None


def build_dashboard(
    report: Report,
    registration_events: Sequence[dict[str, Any]],
    funding_events: Sequence[dict[str, Any]],
) -> Dashboard:
    """Everything the HTML report shows; `report` is build_report's over the same events."""
    moments = [_moment(event) for event in funding_events]
    bucket = bucket_for(max(moments) - min(moments)) if moments else WEEK
    return Dashboard(
        report=report,
        bucket=bucket,
        budgets=budget_series(report, funding_events),
        decisions=decision_rows(funding_events, bucket),
        waitlists=waitlist_course(registration_events, funding_events),
        participation=participation_by_level(report),
        data_as_of=_latest([*registration_events, *funding_events]),
    )
