"""The report as rich tables, for `make demo` and `lotse report` on a terminal."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from lotse.report import Report
from services.notification.templates import format_euros

ATTRIBUTION = "Quelle: Statistisches Bundesamt (Destatis), Gemeindeverzeichnis GV100AD"


def euros(cents: int | None) -> str:
    """German money format: 1.234,56 €; None is an unlimited budget."""
    if cents is None:
        return "unbegrenzt"
    return ("-" if cents < 0 else "") + format_euros(abs(cents))


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


def print_report(report: Report, console: Console) -> None:
    console.print(_counts("Registrations: current outcome", dict(report.registrations)))
    console.print(_counts("Funding: current decision", dict(report.funding)))
    budgets = Table(title="Budget per funding period")
    for column in ("period", "budget", "used (approved - released)", "remaining"):
        budgets.add_column(column, justify="right")
    for period in report.periods:
        budgets.add_row(
            period.period_id,
            euros(period.budget_cents),
            euros(period.used_cents),
            euros(period.remaining_cents),
        )
    console.print(budgets)
    console.print(
        f"Kommunen with at least one funded participant: {report.funded_kommunen} of "
        f"{report.eligible_kommunen} eligible ({report.funded_share:.1%})"
    )
    console.print(f"Emails sent: {report.emails_sent} (failed and parked: {report.emails_failed})")
    console.print(f"The emails lie in {report.mail_location}")
    console.print(f"[dim]{ATTRIBUTION}[/]")
