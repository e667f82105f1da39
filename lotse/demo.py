"""`make demo`: replay a programme year through the running stack and print the report."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from lotse.credentials import kafka_security
from lotse.log import read_all
from lotse.scenario import DEMO, Scenario, ScenarioSize, build_scenario
from lotse.status import wait_until_consumed
from shared.directory import Directory
from shared.kafka import make_producer
from shared.program import Program
from shared.topics import Topics


@dataclass(frozen=True)
class DemoProgress:
    decided_registrations: int
    funding_decisions: int
    expected_emails: int
    emails: int


async def publish_scenario(bootstrap: str, topics: Topics, scenario: Scenario) -> int:
    # The demo plays the portals: it publishes as the `portal` principal.
    producer = make_producer(bootstrap, client_id="lotse-demo", security=kafka_security("portal"))
    await producer.start()
    try:
        messages = scenario.messages()
        seminars = [m for m in messages if m[0] == "portal.seminars"]
        rest = [m for m in messages if m[0] != "portal.seminars"]
        # Kafka orders nothing across topics: the registration service must have consumed every
        # offer before the first registration is sent, or that registration races its seminar.
        for batch in (seminars, rest):
            futures = [
                await producer.send(topics.prefix + topic, json.dumps(value).encode(), key=key.encode())
                for topic, key, value in batch
            ]
            for future in futures:
                await future
            if batch is seminars:
                await wait_until_consumed(bootstrap, topics, "registration", "portal.seminars")
        return len(messages)
    finally:
        await producer.stop()


async def measure_progress(bootstrap: str, topics: Topics) -> DemoProgress:
    registration = await read_all(bootstrap, topics.registration_events)
    funding = await read_all(bootstrap, topics.funding_decisions)
    notifications = await read_all(bootstrap, topics.notification_events)
    decided = {e["data"]["registration_id"] for e in registration}
    return DemoProgress(
        decided_registrations=len(decided),
        funding_decisions=len(funding),
        expected_emails=len(registration) + len(funding),
        emails=len(notifications),
    )


async def wait_until_handled(
    bootstrap: str, topics: Topics, scenario: Scenario, console: Console | None = None, timeout: float = 900
) -> None:
    """Wait until every registration has an outcome, every outcome its email, and nothing moves."""
    accepted_expected = len({r.registration_id for r in scenario.registrations})
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    stable_since: float | None = None
    last: DemoProgress | None = None
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=console is None,
    ) as progress:
        registrations = progress.add_task("Registrations decided", total=accepted_expected)
        emails = progress.add_task("Emails sent", total=None)
        while loop.time() < deadline:
            now = await measure_progress(bootstrap, topics)
            progress.update(registrations, completed=now.decided_registrations)
            progress.update(emails, completed=now.emails, total=max(now.expected_emails, 1))
            done = now.decided_registrations >= accepted_expected and now.emails >= now.expected_emails
            if done and now == last:
                stable_since = stable_since or loop.time()
                if loop.time() - stable_since >= 3:
                    return
            else:
                stable_since = None
            last = now
            await asyncio.sleep(1)
    raise TimeoutError(f"the stack did not finish within {timeout:.0f} s: {last}")


async def run_demo(
    *,
    bootstrap: str,
    directory: Directory,
    program: Program,
    size: ScenarioSize = DEMO,
    console: Console,
    topics: Topics | None = None,
    timeout: float = 1800,
) -> Scenario:
    """Publish the scenario and wait until every registration, decision and email is handled."""
    topics = topics or Topics()
    scenario = build_scenario(directory, program, size)
    periods = ", ".join(
        f"{period.id} ({period.starts_on.isoformat()} to {period.ends_on.isoformat()})"
        for period in program.periods
    )
    console.print(f"Programme: {program.name} ({program.id}); periods {periods}")
    console.print(
        f"Replaying {len(scenario.seminars)} seminar offers, {len(scenario.registrations)} registrations "
        f"and {len(scenario.withdrawals)} withdrawals through {bootstrap} …"
    )
    await publish_scenario(bootstrap, topics, scenario)
    await wait_until_handled(bootstrap, topics, scenario, console, timeout)
    return scenario
