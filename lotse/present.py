"""The report as rich tables, for `make demo` and `lotse report` on a terminal."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from lotse.report import AreaParticipation, Report
from services.notification.templates import format_euros

ATTRIBUTION = "Quelle: Statistisches Bundesamt (Destatis), Gemeindeverzeichnis GV100AD"
_LEVEL_TITLES = {"bezirk": "Bezirk", "kreis": "Kreis (Landkreis, kreisfreie Stadt or Stadtkreis)"}


def euros(cents: int | None) -> str:
    """German money format: 1.234,56 €; None is an unlimited budget."""
    if cents is None:
        return "unbegrenzt"
    return ("-" if cents < 0 else "") + format_euros(abs(cents))


def thousands(number: int) -> str:
    """German digit grouping: 2.134."""
    return f"{number:,}".replace(",", ".")


def _counts(title: str, counts: dict[str, int]) -> Table:
    table = Table(title=title)
    table.add_column("outcome")
    table.add_column("reason")
    table.add_column("registrations", justify="right")
    for key in sorted(counts):
        outcome, _, reason = key.partition(".")
        table.add_row(outcome, reason or "-", str(counts[key]))
    table.add_row("[bold]total[/]", "", f"[bold]{sum(counts.values())}[/]")
    return table


def _participation(level: str, entries: list[AreaParticipation]) -> Table:
    table = Table(title=f"Participation per {_LEVEL_TITLES.get(level, level)}")
    table.add_column("key")
    table.add_column("name")
    for column in ("eligible", "funded", "share"):
        table.add_column(column, justify="right")
    for entry in entries:
        table.add_row(
            entry.area.key,
            f"{entry.area.name} ({entry.area.label})",
            thousands(entry.eligible_kommunen),
            thousands(entry.funded_kommunen),
            f"{entry.funded_share:.1%}",
        )
    return table


def print_report(report: Report, console: Console) -> None:
    if report.programme is not None:
        programme = report.programme
        console.print(
            f"[bold]{programme.name}[/] ({programme.program_id}, Land {', '.join(programme.lands)}): "
            f"{thousands(programme.eligible_kommunen)} eligible Kommunen with "
            f"{thousands(programme.places)} places"
        )
    console.print(_counts("Registrations: current outcome", dict(report.registrations)))
    console.print(_counts("Funding: current decision", dict(report.funding)))
    budgets = Table(title="Budget per funding period")
    for column in ("period", "from", "to", "budget", "used (approved - released)", "remaining"):
        budgets.add_column(column, justify="right")
    for period in report.periods:
        budgets.add_row(
            period.period_id,
            period.starts_on.isoformat() if period.starts_on else "",
            period.ends_on.isoformat() if period.ends_on else "",
            euros(period.budget_cents),
            euros(period.used_cents),
            euros(period.remaining_cents),
        )
    console.print(budgets)
    for level in ("bezirk", "kreis"):
        entries = [entry for entry in report.participation if entry.area.level == level]
        if entries:
            console.print(_participation(level, entries))
    console.print(
        f"Kommunen with at least one funded participant: {report.funded_kommunen} of "
        f"{report.eligible_kommunen} eligible ({report.funded_share:.1%}); "
        f"{thousands(report.places)} places in the programme"
    )
    console.print(f"Emails sent: {report.emails_sent} (failed and parked: {report.emails_failed})")
    console.print(f"The emails lie in {report.mail_location}")
    console.print(f"[dim]{ATTRIBUTION}[/]")
