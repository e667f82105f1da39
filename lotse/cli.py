"""`lotse`: the operator's command line. Each command reads the service that owns the data."""

from __future__ import annotations

import asyncio
import csv
import json
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import asyncpg
import typer
from aiokafka.errors import KafkaError
from rich.console import Console
from rich.table import Table

from lotse import dlq
from lotse.commands import DEFAULT_TIMEOUT_SECONDS, CommandOutcome
from lotse.db import with_pool
from lotse.present import ATTRIBUTION, euros
from lotse.settings import OperatorSettings
from lotse.status import (
    ConsumerLag,
    HealthCheck,
    check_database,
    check_kafka,
    check_service,
    check_smtp,
    consumer_lag,
)
from shared.commands import CLOSE_PERIOD, CONSUMERS, ERASE, MAIL_PARK, MAIL_RESEND, REPLAY_DEAD_LETTERS

if TYPE_CHECKING:
    from shared.commands import CommandResult

app = typer.Typer(
    help="Operate the Digitallotsen services.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
dlq_app = typer.Typer(help="Inspect and replay dead letters.", no_args_is_help=True)
mail_app = typer.Typer(help="Parked emails.", no_args_is_help=True)
app.add_typer(dlq_app, name="dlq")
app.add_typer(mail_app, name="mail")
person_app = typer.Typer(help="Personal data held on a person (GDPR Art. 15).", no_args_is_help=True)
app.add_typer(person_app, name="person")
console = Console()
Reason = Annotated[
    str, typer.Option("--reason", help="why (recorded with the command, shown by `lotse audit`)")
]
Timeout = Annotated[float, typer.Option(help="seconds to wait for the services' results")]


@app.command("status")
def status_command() -> None:
    """Health of the broker, the databases, the SMTP server and each service; consumer lag."""
    config = OperatorSettings.from_environment()

    async def check_health() -> tuple[list[HealthCheck], list[ConsumerLag]]:
        checks = [
            await check_kafka(config.common.kafka_bootstrap_servers),
            await check_database("registration", config.registration.database_url),
            await check_database("funding", config.funding.database_url),
            await check_database("notification", config.notification.database_url),
            check_smtp(config.notification.smtp_host, config.notification.smtp_port),
            await check_service("registration", "127.0.0.1", config.registration.http_port),
            await check_service("funding", "127.0.0.1", config.funding.http_port),
            await check_service("notification", "127.0.0.1", config.notification.http_port),
        ]
        lags = (
            await consumer_lag(config.common.kafka_bootstrap_servers, config.topics)
            if checks[0].healthy
            else []
        )
        return checks, lags

    checks, lags = asyncio.run(check_health())
    table = Table(title="Health")
    for column in ("component", "state", "detail"):
        table.add_column(column)
    for check in checks:
        table.add_row(check.component, "[green]ok[/]" if check.healthy else "[red]down[/]", check.detail)
    console.print(table)
    lag_table = Table(title="Consumer lag")
    for column in ("consumer group", "topic", "lag"):
        lag_table.add_column(column)
    for lag in lags:
        lag_table.add_row(lag.group, lag.topic, str(lag.lag))
    console.print(lag_table)
    if not all(check.healthy for check in checks):
        raise typer.Exit(1)


@dlq_app.command("list")
def dlq_list_command(
    topic: Annotated[str, typer.Argument(help="the source topic, e.g. portal.registrations")],
) -> None:
    """The dead letters of a topic, with why they failed."""
    config = OperatorSettings.from_environment()
    letters = asyncio.run(
        dlq.read_dead_letters(config.common.kafka_bootstrap_servers, config.common.kafka_topic_prefix + topic)
    )
    table = Table(title=f"Dead letters of {topic}")
    for column in ("id", "key", "service", "failed at", "bytes", "error"):
        table.add_column(column, overflow="fold")
    for letter in letters:
        table.add_row(
            letter.letter_id, letter.key, letter.service, letter.failed_at, str(letter.size), letter.error
        )
    console.print(table)


@dlq_app.command("replay")
def dlq_replay_command(
    topic: Annotated[str, typer.Argument(help="the source topic, e.g. portal.registrations")],
    reason: Reason,
    ids: Annotated[list[str] | None, typer.Option("--id", help="partition:offset, repeatable")] = None,
    timeout: Timeout = DEFAULT_TIMEOUT_SECONDS,
) -> None:
    """Feed dead letters (all not yet replayed, or the given ids) through their consumer again.

    The service that owns the consumer carries it out (command.replay_dead_letters)."""
    if topic not in CONSUMERS:
        console.print(f"[red]{topic} is consumed by no service: one of {', '.join(sorted(CONSUMERS))}[/]")
        raise typer.Exit(2)
    outcome = _carry_out(REPLAY_DEAD_LETTERS, reason, timeout, topic=topic, letter_ids=tuple(ids or ()))
    replayed = sum(int(result.detail.get("replayed", 0)) for result in outcome.results.values())
    console.print(f"Replayed {replayed} dead letter(s) of {topic}.")


budget_app = typer.Typer()
app.add_typer(budget_app, name="budget")


@budget_app.callback(invoke_without_command=True)
def budget_command(ctx: typer.Context) -> None:
    """Per funding period: the budget, approved, released, remaining and waitlisted.

    `lotse budget set PERIOD AMOUNT --reason TEXT` changes a period's budget."""
    if ctx.invoked_subcommand is not None:
        return
    from services.funding import operations as funding

    config = OperatorSettings.from_environment()
    figures = asyncio.run(with_pool(config.funding.database_url, funding.budget_figures))
    table = Table(title="Budget per funding period")
    for column in (
        "period",
        "from",
        "to",
        "budget",
        "approved",
        "released",
        "remaining",
        "waitlisted",
        "state",
    ):
        table.add_column(column, justify="right")
    for period in figures:
        table.add_row(
            period.period_id,
            period.starts_on.isoformat(),
            period.ends_on.isoformat(),
            euros(period.budget_cents),
            euros(period.approved_cents),
            euros(period.released_cents),
            euros(period.remaining_cents),
            str(period.waitlisted),
            "closed" if period.closed else "open",
        )
    console.print(table)


@budget_app.command("set")
def budget_set_command(
    period: Annotated[str, typer.Argument(help="the period id, e.g. 2023")],
    amount: Annotated[str, typer.Argument(help="euros: 200.000, 200000, 200.000,00 or 200000,50")],
    reason: Reason,
    timeout: Timeout = DEFAULT_TIMEOUT_SECONDS,
) -> None:
    """Set a funding period's budget, in euros (a dot groups thousands, never a decimal point).

    Funding carries it out (command.set_budget): a raise promotes from the money waitlist at once;
    a budget below what the period has committed is refused. The operator's value wins over the
    programme file from then on."""
    from lotse.commands import AmountError, parse_euros
    from shared.commands import SET_BUDGET

    try:
        cents = parse_euros(amount)
    except AmountError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from exc
    outcome = _carry_out(
        SET_BUDGET, reason, timeout, explain=_budget_refusal, period_id=period, budget_cents=cents
    )
    detail = outcome.results["funding"].detail
    before = detail.get("budget_cents_before")
    was = euros(before) if isinstance(before, int) else euros(None)
    console.print(
        f"Period {period}: budget {euros(cents)} (was {was}); "
        f"{detail.get('promoted', 0)} registration(s) promoted from the waitlist."
    )


def _budget_refusal(result: CommandResult) -> str | None:
    committed = result.detail.get("committed_cents")
    if result.detail.get("error") == "below_committed" and isinstance(committed, int):
        return (
            f"the period has {euros(committed)} committed (approved minus released): "
            "its budget cannot be set below that"
        )
    if result.detail.get("error") == "unknown_period":
        return "there is no such funding period in the programme"
    return None


@app.command("kommune")
def kommune_command(key: Annotated[str, typer.Argument(help="kommune_key: 5, 8, 9 or 12 digits")]) -> None:
    """The Kommune from the directory (name, kind, eligibility and why), its registrations and funding."""
    from lotse.reference import load_reference_data
    from services.funding import operations as funding
    from services.registration import operations as registration
    from shared.directory import KIND_LABELS_DE
    from shared.kommune_key import is_well_shaped

    config = OperatorSettings.from_environment()
    if not is_well_shaped(key):
        console.print(f"[red]{key!r} is not a kommune_key: 5, 8, 9 or 12 digits[/]")
        raise typer.Exit(2)
    reference = load_reference_data(config.funding.program_file, config.common.gv100ad_file)
    canonical = reference.directory.canonical_key(key)
    found = reference.directory.get(canonical)
    if found is None:
        console.print(f"[red]{key} is not in the directory ({config.common.gv100ad_file.name})[/]")
        raise typer.Exit(1)
    eligible, why = reference.eligibility_of(found)
    console.print(f"[bold]{found.name}[/] ({KIND_LABELS_DE[found.kind]}, {canonical}, Land {found.land})")
    console.print(f"Einwohner: {found.population:,}".replace(",", "."))
    console.print(("[green]eligible[/]: " if eligible else "[red]not eligible[/]: ") + why)

    async def fetch_registrations_and_funding() -> tuple[Any, Any]:
        registrations = await with_pool(
            config.registration.database_url,
            lambda pool: registration.registrations_of_kommune(pool, canonical),
        )
        funded = await with_pool(
            config.funding.database_url, lambda pool: funding.kommune_funding(pool, canonical)
        )
        return registrations, funded

    registrations, funded = asyncio.run(fetch_registrations_and_funding())
    if funded.places is not None:
        console.print(f"Funded places: {funded.held} of {funded.places} held")
    by_id = {entry.registration_id: entry for entry in funded.registrations}
    table = Table(title=f"Registrations of {canonical}")
    for column in ("registration", "seminar", "starts", "registration state", "funding", "reason", "amount"):
        table.add_column(column)
    for entry in registrations:
        decision = by_id.get(entry.registration_id)
        table.add_row(
            entry.registration_id,
            entry.seminar_id,
            entry.seminar_starts_on.isoformat() if entry.seminar_starts_on else "",
            entry.status + (f" ({entry.reason})" if entry.reason else ""),
            "" if decision is None else decision.status + (" (nachgerückt)" if decision.promoted else ""),
            "" if decision is None or decision.reason is None else decision.reason,
            "" if decision is None or decision.amount_cents is None else euros(decision.amount_cents),
        )
    console.print(table)
    console.print(f"[dim]{ATTRIBUTION}[/]")


@app.command("waitlist")
def waitlist_command(
    period: Annotated[str | None, typer.Option(help="only this funding period")] = None,
) -> None:
    """The funding waitlist, in promotion order."""
    from services.funding import operations as funding

    config = OperatorSettings.from_environment()
    entries = asyncio.run(with_pool(config.funding.database_url, lambda pool: funding.waitlist(pool, period)))
    table = Table(title="Funding waitlist" + (f" of {period}" if period else ""))
    for column in ("period", "position", "registration", "kommune", "reason", "amount", "since"):
        table.add_column(column)
    for entry in entries:
        table.add_row(
            entry.period_id,
            str(entry.position),
            entry.registration_id,
            entry.kommune_key,
            entry.reason,
            euros(entry.amount_cents),
            entry.waitlisted_at.isoformat(timespec="seconds"),
        )
    console.print(table)
    console.print(f"{len(entries)} waiting")


def _carry_out(
    name: str,
    reason: str,
    timeout: float,
    *,
    explain: Callable[[CommandResult], str | None] | None = None,
    **fields: Any,
) -> CommandOutcome:
    """Publish the command as `operator`, wait for its results, print them; exit non-zero when a
    service refused it (1) or a result did not come in time (3). `explain`: why a refusal, in words."""
    from lotse.commands import new_command, send_command

    config = OperatorSettings.from_environment()
    try:
        command = new_command(name, reason, **fields)
    except ValueError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from exc
    outcome = asyncio.run(
        send_command(config.common.kafka_bootstrap_servers, config.topics, name, command, timeout=timeout)
    )
    for result in outcome.results.values():
        detail = ", ".join(f"{key}={value}" for key, value in result.detail.items())
        colour = "green" if result.outcome == "done" else "red"
        console.print(f"{result.service}: [{colour}]{result.outcome}[/] ({detail})")
        why = explain(result) if explain is not None and result.outcome == "refused" else None
        if why:
            console.print(f"[red]{why}[/]")
    if outcome.missing:
        console.print(
            f"[red]no result from {', '.join(outcome.missing)} within {timeout:g} s[/]; the command "
            f"{command.command_id} may still be carried out: see `lotse audit --action {name}`"
        )
        raise typer.Exit(3)
    if outcome.refused:
        raise typer.Exit(1)
    return outcome


@app.command("close-period")
def close_period_command(
    period: Annotated[str, typer.Argument(help="the period id, e.g. 2023")],
    reason: Annotated[
        str | None,
        typer.Option("--reason", help="why (recorded with the command; not needed with --dry-run)"),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="only show whom closing it would decline; change nothing")
    ] = False,
    timeout: Timeout = DEFAULT_TIMEOUT_SECONDS,
) -> None:
    """Close a funding period: everyone still waitlisted in it is declined with period_closed.

    Funding carries it out (command.close_period); refused for an unknown or closed period.
    --dry-run reads who would be declined (by the same rule) and sends nothing."""
    if dry_run:
        _show_closing(period)
        return
    if reason is None:
        console.print("[red]Missing option '--reason': why the period is closed (shown by `lotse audit`)[/]")
        raise typer.Exit(2)
    _carry_out(CLOSE_PERIOD, reason, timeout, period_id=period)
    console.print(f"Period {period} is closed now.")


def _show_closing(period: str) -> None:
    """What closing the period would decline now, read as the read-only operator role; exit 1 where
    closing it would be refused (an unknown or closed period)."""
    from services.funding import operations as funding

    config = OperatorSettings.from_environment()
    try:
        preview = asyncio.run(
            with_pool(config.funding.database_url, lambda pool: funding.closing_preview(pool, period))
        )
    except funding.UnknownPeriodError as exc:
        console.print(f"[red]there is no funding period {period!r}: closing it would be refused[/]")
        raise typer.Exit(1) from exc
    if preview.already_closed:
        console.print(f"Period {period} is closed already: closing it again would be refused.")
        raise typer.Exit(1)
    table = Table(title=f"Closing {period} would decline (period_closed)")
    for column in ("registration", "kommune", "waiting for", "amount"):
        table.add_column(column)
    for entry in preview.declined:
        waiting_for = {"quota_exhausted": "a place", "budget_exhausted": "money"}.get(
            entry.waitlist_reason, entry.waitlist_reason
        )
        table.add_row(
            entry.registration_id,
            entry.kommune_key,
            f"{waiting_for} ({entry.waitlist_reason})",
            euros(entry.amount_cents),
        )
    console.print(table)
    console.print(
        f"{len(preview.declined)} registration(s) would be declined; nothing was changed (dry run)."
    )


@app.command("reopen-period")
def reopen_period_command(
    period: Annotated[str, typer.Argument(help="the period id, e.g. 2023")],
    reason: Reason,
    timeout: Timeout = DEFAULT_TIMEOUT_SECONDS,
) -> None:
    """Open a closed funding period again: new registrations for it are decided again.

    Funding carries it out (command.reopen_period); registrations declined with period_closed stay
    declined. Refused for an unknown period or one that is open."""
    from shared.commands import REOPEN_PERIOD

    _carry_out(REOPEN_PERIOD, reason, timeout, period_id=period)
    console.print(f"Period {period} is open again; registrations declined with period_closed stay declined.")


@app.command("erase")
def erase_command(
    reason: Reason,
    registration: Annotated[
        list[str] | None, typer.Option("--registration", help="a registration id, repeatable")
    ] = None,
    email: Annotated[
        str | None, typer.Option("--email", help="every registration of this participant's address")
    ] = None,
    timeout: Timeout = DEFAULT_TIMEOUT_SECONDS,
) -> None:
    """Erase the personal data of registrations in all three services (GDPR Art. 17).

    Registration, funding and notification each carry it out (command.erase) and confirm with
    what they erased; decisions, amounts and counts stay. Exit 3 if a service did not confirm."""
    from lotse.commands import new_command, send_command
    from lotse.erasure import receipt, registrations_of

    if (registration is None) == (email is None):
        console.print("[red]give either --registration ID or --email ADDRESS[/]")
        raise typer.Exit(2)
    config = OperatorSettings.from_environment()
    ids = list(registration or ()) or asyncio.run(registrations_of(config, email or ""))
    if not ids:
        console.print("[red]registration holds no registration of that address[/]")
        raise typer.Exit(1)
    try:
        command = new_command(ERASE, reason, registration_ids=tuple(ids))
    except ValueError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from exc
    outcome = asyncio.run(
        send_command(config.common.kafka_bootstrap_servers, config.topics, ERASE, command, timeout=timeout)
    )
    table = Table(title=f"Erasure {command.command_id} of {len(ids)} registration(s): {', '.join(ids)}")
    for column in ("service", "outcome", "erased at", "erased"):
        table.add_column(column, overflow="fold")
    for line in receipt(list(outcome.results.values())):
        counts = ", ".join(f"{kind}: {count}" for kind, count in line.counts.items())
        table.add_row(line.service, line.outcome, line.erased_at, counts)
    for service in outcome.missing:
        table.add_row(service, "[red]no confirmation[/]", "", "")
    console.print(table)
    if outcome.missing:
        console.print(
            f"[red]no result from {', '.join(outcome.missing)} within {timeout:g} s[/]; the erasure "
            f"{command.command_id} may still be carried out: see `lotse audit --action {ERASE}`"
        )
        raise typer.Exit(3)
    if outcome.refused:
        raise typer.Exit(1)


@person_app.command("export")
def person_export_command(
    email: Annotated[str, typer.Option("--email", help="the participant's email address")],
) -> None:
    """Print as JSON all personal data the three services hold on the participant with this
    address, with the registrations and decisions it belongs to (read-only)."""
    from lotse.erasure import export_json, person_export

    config = OperatorSettings.from_environment()
    sys.stdout.write(export_json(asyncio.run(person_export(config, email))) + "\n")


@app.command("audit")
def audit_command(
    action: Annotated[str | None, typer.Option(help="only this command, e.g. close_period")] = None,
    since: Annotated[str | None, typer.Option(help="only commands from then on (ISO, UTC)")] = None,
) -> None:
    """The operators' commands, oldest first, with the services' results."""
    from datetime import UTC, datetime

    from lotse.commands import audit

    config = OperatorSettings.from_environment()
    start = None
    if since is not None:
        try:
            start = datetime.fromisoformat(since)
        except ValueError as exc:
            console.print(f"[red]--since {since!r} is not an ISO date or time[/]")
            raise typer.Exit(2) from exc
        start = start if start.tzinfo else start.replace(tzinfo=UTC)
    entries = asyncio.run(
        audit(config.common.kafka_bootstrap_servers, config.topics, action=action, since=start)
    )
    table = Table(title="Operators' commands")
    for column in ("requested at", "action", "target", "by", "reason", "results", "command id"):
        table.add_column(column, overflow="fold")
    for entry in entries:
        results = "; ".join(f"{r['service']}: {r['outcome']} {r['detail']}" for r in entry.results)
        table.add_row(
            entry.requested_at,
            entry.action,
            entry.target,
            entry.requested_by,
            entry.reason,
            results or "(no result yet)",
            entry.command_id,
        )
    console.print(table)


@app.command("demo")
def demo_command(
    size: Annotated[str, typer.Option(help="demo (a programme year) or small")] = "demo",
    timeout: Annotated[float, typer.Option(help="seconds to wait for the stack to finish")] = 1800,
    html: Annotated[Path | None, typer.Option("--html", help="also write the HTML report there")] = None,
) -> None:
    """Replay a programme year through the running stack, wait until it is handled, print the report."""
    from lotse.demo import run_demo
    from lotse.figures import gather_dashboard
    from lotse.present import print_report
    from lotse.reference import load_reference_data
    from lotse.report_html import write_html_report
    from lotse.scenario import DEMO, SMALL

    sizes = {"demo": DEMO, "small": SMALL}
    if size not in sizes:
        console.print(f"[red]--size must be one of {', '.join(sizes)}[/]")
        raise typer.Exit(2)
    config = OperatorSettings.from_environment()
    reference = load_reference_data(config.funding.program_file, config.common.gv100ad_file)

    async def replay_and_report() -> Any:
        await run_demo(
            bootstrap=config.common.kafka_bootstrap_servers,
            directory=reference.directory,
            program=reference.program,
            size=sizes[size],
            console=console,
            topics=config.topics,
            timeout=timeout,
        )
        return await gather_dashboard(config, reference)

    dashboard = asyncio.run(replay_and_report())
    print_report(dashboard.report, console)
    if html is not None:
        console.print(f"HTML report: {write_html_report(dashboard, html)}")


@app.command("report")
def report_command(
    output_format: Annotated[
        str | None, typer.Option("--format", help="csv or json (json unless --html is given)")
    ] = None,
    html: Annotated[
        Path | None, typer.Option("--html", help="also write the report as one self-contained HTML page")
    ] = None,
) -> None:
    """The figures that `make demo` prints, for the running stack; --html: the page with charts."""
    from lotse.figures import gather_dashboard

    if output_format not in {None, "csv", "json"}:
        console.print("[red]--format must be csv or json[/]")
        raise typer.Exit(2)
    dashboard = asyncio.run(gather_dashboard(OperatorSettings.from_environment()))
    if html is not None:
        from lotse.report_html import write_html_report

        written = write_html_report(dashboard, html)
        if output_format is None:
            console.print(f"HTML report: {written}")
            return
        # On stderr: with --format, stdout carries the figures alone.
        Console(stderr=True).print(f"HTML report: {written}")
    rows = dashboard.report.as_rows()
    if (output_format or "json") == "json":
        sys.stdout.write(
            json.dumps([{"section": s, "item": i, "value": v} for s, i, v in rows], indent=2) + "\n"
        )
    else:
        writer = csv.writer(sys.stdout)
        writer.writerow(["section", "item", "value"])
        writer.writerows(rows)


@app.command("export")
def export_command(
    xlsx: Annotated[Path | None, typer.Option("--xlsx", help="write one Excel workbook (.xlsx)")] = None,
    csv_dir: Annotated[
        Path | None, typer.Option("--csv", help="write one CSV file per sheet into this folder")
    ] = None,
) -> None:
    """Registrations, funding decisions, Kommunen and budget per period, for a spreadsheet.

    The CSV files are UTF-8 with a byte order mark and `;` between fields, as German Excel opens them."""
    from lotse.export import gather_sheets
    from lotse.workbook import write_csv, write_xlsx

    if xlsx is None and csv_dir is None:
        console.print("[red]give --xlsx FILE or --csv DIR[/]")
        raise typer.Exit(2)
    sheets = asyncio.run(gather_sheets(OperatorSettings.from_environment()))
    written = []
    if xlsx is not None:
        written.append(write_xlsx(sheets, xlsx))
    if csv_dir is not None:
        written += write_csv(sheets, csv_dir)
    for sheet in sheets:
        console.print(f"{sheet.title}: {len(sheet.rows)} rows")
    for path in written:
        console.print(f"written: {path}")


@mail_app.command("parked")
def mail_parked_command() -> None:
    """The parked emails, oldest first, with why they could not be delivered."""
    from services.notification import operations as mail

    config = OperatorSettings.from_environment()

    table = Table(title="Parked emails")
    columns = ("id", "registration_id", "template", "recipient", "attempts", "parked_at", "last_error")
    for column in columns:
        table.add_column(column, overflow="fold", no_wrap=column in {"id", "registration_id"})
    rows = asyncio.run(with_pool(config.notification.database_url, mail.parked))
    for row in rows:
        table.add_row(*(str(row[column]) for column in columns))
    console.print(table)
    console.print(f"{len(rows)} parked; `lotse mail resend ID --reason TEXT` sends one again")


def _checked_email_id(email_id: str) -> uuid.UUID:
    try:
        return uuid.UUID(email_id)
    except ValueError as exc:
        console.print(f"[red]{email_id!r} is not a notification id (a UUID)[/]")
        raise typer.Exit(2) from exc


@mail_app.command("resend")
def mail_resend_command(
    email_id: Annotated[str, typer.Argument(help="the notification_id of notification.failed")],
    reason: Reason,
    timeout: Timeout = DEFAULT_TIMEOUT_SECONDS,
) -> None:
    """Make a parked email pending again; the service delivers it with the same Message-ID."""
    _carry_out(MAIL_RESEND, reason, timeout, email_id=_checked_email_id(email_id))
    console.print(f"Email {email_id} is pending again; the notification service will send it.")


@mail_app.command("park")
def mail_park_command(
    email_id: Annotated[str, typer.Argument(help="the id of a pending email")],
    reason: Reason,
    timeout: Timeout = DEFAULT_TIMEOUT_SECONDS,
) -> None:
    """Park a pending email by hand: it is not sent until `lotse mail resend`."""
    _carry_out(MAIL_PARK, reason, timeout, email_id=_checked_email_id(email_id))
    console.print(f"Email {email_id} is parked; `lotse mail resend` sends it again.")


# Where each kind of failure points the operator.
_FAILURES: tuple[tuple[type[BaseException], str], ...] = (
    (
        asyncpg.InvalidPasswordError,
        "a database refused the login: check <SERVICE>_DATABASE_URL and OPERATOR_DATABASE_PASSWORD(_FILE)",
    ),
    (asyncpg.PostgresError, "a database answered with an error"),
    (KafkaError, "Kafka is not reachable or refused the request: check KAFKA_BOOTSTRAP_SERVERS"),
    (FileNotFoundError, "a file is missing: check GV100AD_FILE and FUNDING_PROGRAM_FILE"),
    (OSError, "a component is not reachable: is the stack up (`make up`, `lotse status`)?"),
)


def main() -> None:
    try:
        app()
    except Exception as exc:
        hint = next((text for kind, text in _FAILURES if isinstance(exc, kind)), None)
        if hint is None:
            raise
        console.print(f"[red]{hint}[/]\n{type(exc).__name__}: {exc}")
        sys.exit(1)


if __name__ == "__main__":
    main()
