"""`lotse`: the operator's command line. Each command reads the service that owns the data."""

from __future__ import annotations

import asyncio
import csv
import json
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from rich.console import Console
from rich.table import Table

from lotse import dlq as dead_letters
from lotse.status import check_database, check_kafka, check_service, check_smtp, consumer_lag
from shared.settings import DEFAULT_DIRECTORY_FILE, REPO_ROOT
from shared.topics import Topics

T = TypeVar("T")
app = typer.Typer(help="Operate the Digitallotsen services.", no_args_is_help=True, add_completion=False)
dlq_app = typer.Typer(help="Inspect and replay dead letters.", no_args_is_help=True)
mail_app = typer.Typer(help="Parked emails.", no_args_is_help=True)
app.add_typer(dlq_app, name="dlq")
app.add_typer(mail_app, name="mail")
console = Console()


class OperatorSettings(BaseSettings):
    """The same environment the services read; see the README's configuration table."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    kafka_bootstrap_servers: str = Field("127.0.0.1:9092", validation_alias="KAFKA_BOOTSTRAP_SERVERS")
    kafka_topic_prefix: str = Field("", validation_alias="KAFKA_TOPIC_PREFIX")
    registration_database_url: str = Field(
        "postgresql://registration:registration@127.0.0.1:5432/registration",
        validation_alias="REGISTRATION_DATABASE_URL",
    )
    funding_database_url: str = Field(
        "postgresql://funding:funding@127.0.0.1:5432/funding", validation_alias="FUNDING_DATABASE_URL"
    )
    notification_database_url: str = Field(
        "postgresql://notification:notification@127.0.0.1:5432/notification",
        validation_alias="NOTIFICATION_DATABASE_URL",
    )
    smtp_host: str = Field("127.0.0.1", validation_alias="SMTP_HOST")
    smtp_port: int = Field(1025, validation_alias="SMTP_PORT")
    registration_http_port: int = Field(8081, validation_alias="REGISTRATION_HTTP_PORT")
    funding_http_port: int = Field(8082, validation_alias="FUNDING_HTTP_PORT")
    notification_http_port: int = Field(8083, validation_alias="NOTIFICATION_HTTP_PORT")
    gv100ad_file: Path = Field(DEFAULT_DIRECTORY_FILE, validation_alias="GV100AD_FILE")
    mail_dir: Path = Field(REPO_ROOT / "var" / "mail", validation_alias="MAIL_DIR")

    @property
    def topics(self) -> Topics:
        return Topics(self.kafka_topic_prefix)


def settings() -> OperatorSettings:
    return OperatorSettings()


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


def euros(cents: int | None) -> str:
    if cents is None:
        return "unbegrenzt"
    whole, rest = divmod(cents, 100)
    return f"{whole:,}".replace(",", ".") + f",{rest:02d} €"


@app.command()
def status() -> None:
    """Health of the broker, the databases, the SMTP server and each service; consumer lag."""
    config = settings()

    async def gather() -> tuple[list[Any], list[Any]]:
        checks = [
            await check_kafka(config.kafka_bootstrap_servers),
            await check_database("registration", config.registration_database_url),
            await check_database("funding", config.funding_database_url),
            await check_database("notification", config.notification_database_url),
            check_smtp(config.smtp_host, config.smtp_port),
            await check_service("registration", "127.0.0.1", config.registration_http_port),
            await check_service("funding", "127.0.0.1", config.funding_http_port),
            await check_service("notification", "127.0.0.1", config.notification_http_port),
        ]
        lags = await consumer_lag(config.kafka_bootstrap_servers, config.topics) if checks[0].healthy else []
        return checks, lags

    checks, lags = run(gather())
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
def dlq_list(
    topic: Annotated[str, typer.Argument(help="the source topic, e.g. portal.registrations")],
) -> None:
    """The dead letters of a topic, with why they failed."""
    config = settings()
    letters = run(
        dead_letters.read_letters(config.kafka_bootstrap_servers, config.kafka_topic_prefix + topic)
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
def dlq_replay(
    topic: Annotated[str, typer.Argument(help="the source topic, e.g. portal.registrations")],
    ids: Annotated[list[str] | None, typer.Option("--id", help="partition:offset, repeatable")] = None,
) -> None:
    """Put dead letters back on their topic (all not yet replayed, or the given ids)."""
    config = settings()
    try:
        replayed = run(
            dead_letters.replay(config.kafka_bootstrap_servers, config.kafka_topic_prefix + topic, ids)
        )
    except KeyError as exc:
        console.print(f"[red]{exc.args[0]}[/]")
        raise typer.Exit(2) from exc
    console.print(f"Replayed {len(replayed)} dead letter(s) onto {topic}.")


@app.command()
def report(
    output_format: Annotated[str, typer.Option("--format", help="csv or json")] = "json",
) -> None:
    """The figures that `make demo` prints, for the running stack."""
    from lotse.figures import gather_report

    if output_format not in {"csv", "json"}:
        console.print("[red]--format must be csv or json[/]")
        raise typer.Exit(2)
    figures = run(gather_report(settings()))
    rows = figures.as_rows()
    if output_format == "json":
        sys.stdout.write(
            json.dumps([{"section": s, "item": i, "value": v} for s, i, v in rows], indent=2) + "\n"
        )
    else:
        writer = csv.writer(sys.stdout)
        writer.writerow(["section", "item", "value"])
        writer.writerows(rows)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
