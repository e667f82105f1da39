"""`python -m bench.waitlist` (`make bench-waitlist`): what a withdrawal costs funding with few and
with many registrations waiting for money (issue 21, "flat with history"; ADR 0025).

For each waitlist length, a scratch funding database of the local stack's PostgreSQL gets
Niedersachsen's programme, a 2023 budget used up by 400 approvals, and that many entries waiting
for money, written with COPY. Then the real applier and unit of work apply withdrawals of approved
registrations, each a release whose money promotes the head of the waitlist, in batches of one
and of fifty, and this prints the milliseconds per withdrawal: as the service reads the waitlist
(the head of each period's, ADR 0025) and, for comparison, as it read it before (the whole
waitlist). Nothing is timed in a test; the figures are printed and written beside the other
benchmark results.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime
from typing import Any
from unittest import mock

import asyncpg

from bench.history import FUNDING_COLUMNS
from bench.report import RESULTS_DIR
from deploy.local.config import local_env
from deploy.local.stack import infra_up, stop, tools_env
from services.funding import domain
from services.funding.app import MIGRATIONS
from services.funding.handlers import RegistrationEventsApplier
from services.funding.operations import sync_program
from services.funding.store import PostgresFundingUnitOfWork
from shared.db import Pool, create_pool
from shared.directory import Directory, load_directory
from shared.events import Envelope, RegistrationWithdrawn, new_envelope
from shared.migrations import apply_migrations
from shared.program import DEFAULT_PROGRAM_FILE, Program, load_program
from shared.settings import DEFAULT_DIRECTORY_FILE
from shared.topics import Topics

PERIOD = "2023"
STARTS_ON = date(2023, 5, 2)
FEE_CENTS = 100_000  # half of it funded: 50,000 cents per registration
AMOUNT_CENTS = FEE_CENTS // 2
BATCHES = (1, 50)
ROUNDS = 6  # batches of each size per measurement (the 400 approvals allow 7)


def eligible_keys(program: Program, directory: Directory) -> list[str]:
    return sorted(k.key for k in directory.kommunen.values() if program.eligibility.admits(k))


def fundings_rows(program: Program, directory: Directory, waiting: int) -> tuple[list[tuple[Any, ...]], int]:
    """The approvals that use up 2023's budget (two per Kommune), and `waiting` entries of the
    other Kommunen waiting for money, in order; and the number of approvals."""
    budget = next(p.budget_cents for p in program.periods if p.id == PERIOD)
    assert budget is not None
    approvals = budget // AMOUNT_CENTS
    keys = eligible_keys(program, directory)
    holding, others = keys[: (approvals + 1) // 2], keys[(approvals + 1) // 2 :]
    rows: list[tuple[Any, ...]] = []
    for number in range(approvals):
        rows.append((f"A-{number}", holding[number // 2], "approved", None, None))
    for number in range(waiting):
        rows.append(
            (f"W-{number}", others[number % len(others)], "waitlisted", "budget_exhausted", number + 1)
        )
    return [
        (rid, key, "S-bench", STARTS_ON, FEE_CENTS, status, PERIOD, reason, AMOUNT_CENTS, seq, "basic", True)
        for rid, key, status, reason, seq in rows
    ], approvals


async def seeded(admin_dsn: str, service_dsn: str, waiting: int) -> tuple[Pool, str, int]:
    """A fresh funding database with the waitlist seeded; its pool, its name, the approvals."""
    name = f"funding_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(admin_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}" OWNER "funding"')
    finally:
        await admin.close()
    program, directory = load_program(DEFAULT_PROGRAM_FILE), load_directory(str(DEFAULT_DIRECTORY_FILE))
    pool = await create_pool(service_dsn.rsplit("/", 1)[0] + f"/{name}", max_size=2)
    async with pool.acquire() as conn:
        await apply_migrations(conn, MIGRATIONS, "funding")
    await sync_program(pool, program, directory, Topics())
    rows, approvals = fundings_rows(program, directory, waiting)
    async with pool.acquire() as conn, conn.transaction():
        await conn.copy_records_to_table(
            "fundings",
            records=rows,
            columns=[*FUNDING_COLUMNS, "waitlist_seq", "course", "takes_place"],
        )
        await conn.execute(
            "UPDATE periods SET approved_cents = $2 WHERE period_id = $1", PERIOD, approvals * AMOUNT_CENTS
        )
        await conn.execute(
            "UPDATE quotas SET held = q.n FROM (SELECT kommune_key, count(*)::int AS n FROM fundings"
            " WHERE status = 'approved' GROUP BY kommune_key) AS q WHERE quotas.kommune_key = q.kommune_key"
        )
        await conn.execute("SELECT setval('funding_waitlist_order', $1 + 1)", waiting)
    async with pool.acquire() as conn:
        await conn.execute("VACUUM ANALYZE fundings")
        await conn.execute("VACUUM ANALYZE periods")
        await conn.execute("VACUUM ANALYZE quotas")
    return pool, name, approvals


def withdrawal(registration_id: str, kommune_key: str) -> Envelope[Any]:
    data = RegistrationWithdrawn(
        registration_id=registration_id,
        kommune_key=kommune_key,
        seminar_id="S-bench",
        contact_email="kontakt@kommune.example",
        reason="withdrawn_by_portal",
    )
    return new_envelope(
        "registration.withdrawn",
        data,
        source="registration",
        correlation_id=None,
        occurred_at=datetime.now(UTC),
    )


@contextlib.contextmanager
def reading(mode: str) -> Iterator[None]:
    """ "head": as the service reads the money waitlists; "whole": every entry, as before ADR 0025."""
    if mode == "head":
        yield
        return
    with mock.patch.object(domain, "money_head_for", lambda withdrawals: None):
        yield


async def measure(pool: Pool, approvals: Sequence[tuple[str, str]], batch: int, mode: str) -> dict[str, Any]:
    """ROUNDS batches of `batch` withdrawals of approved registrations: ms per withdrawal, and how
    many entries each batch promoted."""
    applier = RegistrationEventsApplier(
        Topics(), load_program(DEFAULT_PROGRAM_FILE), load_directory(str(DEFAULT_DIRECTORY_FILE))
    )
    per_withdrawal: list[float] = []
    promoted = 0
    for _ in range(ROUNDS):
        chosen, approvals = approvals[:batch], approvals[batch:]
        events = [withdrawal(rid, key) for rid, key in chosen]
        with reading(mode):
            started = time.perf_counter()
            async with PostgresFundingUnitOfWork(pool) as uow:
                published = await uow.claim_new_events("registration.events", [e.event_id for e in events])
                assert len(published) == len(events)
                messages = await applier.apply_batch(uow, events)
            per_withdrawal.append((time.perf_counter() - started) * 1000 / batch)
        promoted += sum(1 for m in messages if m.envelope.event_type == "funding.approved")
    return {
        "ms_per_withdrawal_median": statistics.median(per_withdrawal),
        "ms_per_withdrawal_max": max(per_withdrawal),
        "promoted": promoted,
        "withdrawals": ROUNDS * batch,
    }


async def run(admin_dsn: str, service_dsn: str, lengths: Sequence[int]) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for waiting in lengths:
        for mode in ("head", "whole"):
            pool, name, approvals = await seeded(admin_dsn, service_dsn, waiting)
            try:
                rows = await pool.fetch(
                    "SELECT registration_id, kommune_key FROM fundings WHERE status = 'approved'"
                    " ORDER BY registration_id"
                )
                approved = [(row["registration_id"], row["kommune_key"]) for row in rows]
                assert approvals >= ROUNDS * sum(BATCHES), "too few approvals to withdraw"
                for batch in BATCHES:
                    figures = await measure(pool, approved, batch, mode)
                    approved = approved[ROUNDS * batch :]
                    results[f"{waiting}/{mode}/{batch}"] = figures
                    print(
                        f"{waiting:>7,} waiting, {mode:>5} waitlist read, batches of {batch:>2}: "
                        f"{figures['ms_per_withdrawal_median']:6.2f} ms per withdrawal (median of {ROUNDS}"
                        f" batches, max {figures['ms_per_withdrawal_max']:.2f}); "
                        f"{figures['promoted']} of {figures['withdrawals']} promoted someone",
                        flush=True,
                    )
            finally:
                await pool.close()
                admin = await asyncpg.connect(admin_dsn)
                try:
                    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                finally:
                    await admin.close()
    return results


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.waitlist", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--waiting",
        default="100,100000",
        help="lengths of the money waitlist, comma-separated (default: 100,100000)",
    )
    args = parser.parse_args(argv)
    lengths = [int(n) for n in args.waiting.split(",")]
    env = tools_env({**os.environ, **local_env()})
    os.environ.update(env)
    started = infra_up(env)
    try:
        results = asyncio.run(run(env["POSTGRES_ADMIN_URL"], env["FUNDING_DATABASE_URL"], lengths))
    finally:
        stop(list(reversed(started)))
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}-waitlist.json"
    path.write_text(json.dumps(results, indent=1) + "\n")
    print(f"JSON: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
