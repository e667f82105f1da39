"""The funding service's state in PostgreSQL: the SQL, and the unit of work that runs it.

Lock order, the same in every transaction of every instance, so that instances never deadlock:
1. the batch's registration ids (transaction advisory locks, in hash order);
2. period rows (in period_id order);
3. quota rows (in kommune_key order).
Which rows a batch takes is `domain.plan_locks`; `PostgresFundingUnitOfWork.lock_registrations`
and `lock_and_load` take them in this order before reading the batch's state.
A waitlisted record is changed only by a transaction that holds its period's row; a quota or
budget counter only under its row lock, and only by a conditional update that the CHECK
constraints back up. See docs/adr/0007-funding-budget-and-quota-invariants.md.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

import asyncpg

from services.funding.domain import (
    Approve,
    BatchState,
    Budget,
    Decline,
    Effect,
    Funding,
    FundingChange,
    LeaveWaitlist,
    LimitChanges,
    LockPlan,
    NewFunding,
    QuotaState,
    Release,
    RememberWithdrawal,
    Status,
    Waitlist,
    WithdrawnBeforeAcceptance,
    new_record,
)
from services.funding.unit_of_work import InvariantError, Limits, PeriodClosing, ProgramMismatchError
from shared.db import Connection
from shared.erasure import ErasureRequest, erased_among, mark_erased, record_erasure, strip_outbox
from shared.program import Course, Period
from shared.unit_of_work import PostgresUnitOfWork

# An arbitrary namespace for this service's advisory locks on registration ids.
REGISTRATION_LOCK_SPACE = 0x66756E64
# Serialises the programme sync of instances starting together.
SYNC_LOCK_ID = 0x66756E73

LOCK_REGISTRATION_IDS = """
SELECT count(pg_advisory_xact_lock($1::int, key_hash))
FROM (SELECT DISTINCT hashtext(id) AS key_hash FROM unnest($2::text[]) AS id ORDER BY key_hash) AS keys
"""
BIND_PROGRAM = """
INSERT INTO funding_program (program_id) VALUES ($1) ON CONFLICT (only_row) DO NOTHING
"""
BOUND_PROGRAM = "SELECT program_id FROM funding_program"
LOCK_ALL_PERIODS = """
SELECT period_id FROM periods ORDER BY period_id FOR UPDATE
"""
LOCK_ALL_QUOTAS = "SELECT kommune_key, places, held FROM quotas ORDER BY kommune_key FOR UPDATE"
# The CHECK constraint within_budget refuses a budget below what is committed.
SET_BUDGET = """
UPDATE periods SET budget_cents = $2, budget_set_by_operator = $3, updated_at = now()
WHERE period_id = $1
"""
UPSERT_PERIODS = """
INSERT INTO periods (period_id, starts_on, ends_on, budget_cents)
SELECT * FROM unnest($1::text[], $2::date[], $3::date[], $4::bigint[]) ORDER BY 1
ON CONFLICT (period_id) DO UPDATE SET
    starts_on = EXCLUDED.starts_on, ends_on = EXCLUDED.ends_on, budget_cents = EXCLUDED.budget_cents,
    updated_at = now()
WHERE (periods.starts_on, periods.ends_on, periods.budget_cents)
      IS DISTINCT FROM (EXCLUDED.starts_on, EXCLUDED.ends_on, EXCLUDED.budget_cents)
"""
UPSERT_QUOTAS = """
INSERT INTO quotas (kommune_key, places)
SELECT * FROM unnest($1::text[], $2::integer[]) ORDER BY 1
ON CONFLICT (kommune_key) DO UPDATE SET places = EXCLUDED.places, updated_at = now()
WHERE quotas.places <> EXCLUDED.places
"""
_PERIOD_COLUMNS = (
    "period_id, budget_cents, approved_cents, released_cents, closed_at IS NOT NULL AS closed, "
    "budget_set_by_operator"
)
LOCK_PERIODS = f"""
SELECT {_PERIOD_COLUMNS} FROM periods WHERE period_id = ANY($1::text[]) ORDER BY period_id FOR UPDATE
"""
ALL_PERIODS = f"SELECT {_PERIOD_COLUMNS}, money_waiting FROM periods ORDER BY period_id"
LOCK_QUOTAS = """
SELECT kommune_key, places, held FROM quotas
WHERE kommune_key = ANY($1::text[]) ORDER BY kommune_key FOR UPDATE
"""
GET_QUOTAS = "SELECT kommune_key, places, held FROM quotas WHERE kommune_key = ANY($1::text[])"
_FUNDING_COLUMNS = (
    "registration_id, kommune_key, status, period_id, reason, amount_cents, waitlist_seq, "
    "course, takes_place, participant_hash"
)
GET_FUNDINGS = f"SELECT {_FUNDING_COLUMNS} FROM fundings WHERE registration_id = ANY($1::text[])"
# Waitlisted entries in order of arrival: of every period waiting for money, or the first $1 of
# each period (index fundings_waitlists); of some Kommunen waiting for a place; of one period (both
# reasons).
WAITING_FOR_MONEY = f"""
SELECT {_FUNDING_COLUMNS} FROM fundings
WHERE status = 'waitlisted' AND reason = 'budget_exhausted'
ORDER BY waitlist_seq
"""
WAITING_FOR_MONEY_HEADS = f"""
SELECT head.* FROM periods CROSS JOIN LATERAL (
    SELECT {_FUNDING_COLUMNS} FROM fundings
    WHERE status = 'waitlisted' AND reason = 'budget_exhausted' AND period_id = periods.period_id
    ORDER BY waitlist_seq
    LIMIT $1
) AS head
ORDER BY head.waitlist_seq
"""
# Above every waitlist entry's number: new entries of a batch sort after the stored ones.
LAST_WAITLIST_SEQ = "SELECT last_value FROM funding_waitlist_order"
# A batch that reads a longer head of a money waitlist comes back here: the locks it took after
# this savepoint go, so that it takes them again in the global order (ADR 0007).
LOAD_SAVEPOINT = "SAVEPOINT funding_batch_load"
BACK_TO_LOAD_SAVEPOINT = "ROLLBACK TO SAVEPOINT funding_batch_load"
WAITING_FOR_PLACES = f"""
SELECT {_FUNDING_COLUMNS} FROM fundings
WHERE status = 'waitlisted' AND reason = 'quota_exhausted' AND kommune_key = ANY($1::text[])
ORDER BY waitlist_seq
"""
WAITING_IN_PERIOD = f"""
SELECT {_FUNDING_COLUMNS} FROM fundings
WHERE status = 'waitlisted' AND period_id = $1
ORDER BY waitlist_seq
"""
QUOTA_WAITING = """
SELECT kommune_key, count(*) AS waiting FROM fundings
WHERE status = 'waitlisted' AND reason = 'quota_exhausted' AND kommune_key = ANY($1::text[])
GROUP BY kommune_key
"""
# Sequence values for new waitlist entries, handed out in order of arrival by the caller.
NEXT_WAITLIST_SEQS = "SELECT nextval('funding_waitlist_order') AS seq FROM generate_series(1, $1)"
INSERT_FUNDINGS = """
INSERT INTO fundings (registration_id, kommune_key, seminar_id, seminar_starts_on, fee_cents, status,
                      period_id, reason, amount_cents, waitlist_seq, course, takes_place,
                      participant_hash)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::date[], $5::bigint[], $6::text[],
                     $7::text[], $8::text[], $9::bigint[], $10::bigint[], $11::text[], $12::boolean[],
                     $13::text[])
"""
PENDING_WITHDRAWALS = """
SELECT registration_id FROM pending_withdrawals WHERE registration_id = ANY($1::text[])
"""
REMEMBER_WITHDRAWAL = """
INSERT INTO pending_withdrawals (registration_id, kommune_key) VALUES ($1, $2)
ON CONFLICT (registration_id) DO NOTHING
"""
FORGET_WITHDRAWALS = "DELETE FROM pending_withdrawals WHERE registration_id = ANY($1::text[])"
# Per participant, the approved, unreleased basic courses they hold (the prerequisite).
FUNDED_BASIC = """
SELECT participant_hash, count(*) AS held FROM fundings
WHERE status = 'approved' AND course = 'basic' AND participant_hash = ANY($1::text[])
GROUP BY participant_hash
"""
# Bulk takes for a batch's first approvals. The CHECK constraints within_quota and within_budget
# refuse any overdraft, whatever the caller believes; a closed or missing row updates nothing.
TAKE_PLACES = """
UPDATE quotas AS q SET held = q.held + taken.places, updated_at = now()
FROM unnest($1::text[], $2::integer[]) AS taken(kommune_key, places)
WHERE q.kommune_key = taken.kommune_key
"""
TAKE_BUDGETS = """
UPDATE periods AS p SET approved_cents = p.approved_cents + taken.cents, updated_at = now()
FROM unnest($1::text[], $2::bigint[]) AS taken(period_id, cents)
WHERE p.period_id = taken.period_id AND p.closed_at IS NULL
"""
# Conditional: money is taken only while the open period has enough, whatever the caller believes.
TAKE_BUDGET = """
UPDATE periods SET approved_cents = approved_cents + $2, updated_at = now()
WHERE period_id = $1 AND closed_at IS NULL
  AND (budget_cents IS NULL OR approved_cents - released_cents + $2 <= budget_cents)
RETURNING period_id
"""
TAKE_PLACE = """
UPDATE quotas SET held = held + 1, updated_at = now()
WHERE kommune_key = $1 AND held < places
RETURNING kommune_key
"""
FREE_BUDGET = """
UPDATE periods SET released_cents = released_cents + $2, updated_at = now() WHERE period_id = $1
"""
FREE_PLACE = "UPDATE quotas SET held = held - 1, updated_at = now() WHERE kommune_key = $1"
PROMOTE = """
UPDATE fundings
SET status = 'approved', reason = NULL, waitlist_seq = NULL, promoted = true, updated_at = now()
WHERE registration_id = $1 AND status = 'waitlisted'
"""
REQUEUE = """
UPDATE fundings SET reason = $2, updated_at = now() WHERE registration_id = $1 AND status = 'waitlisted'
"""
DECLINE_WAITLISTED = """
UPDATE fundings SET status = 'declined', reason = $2, waitlist_seq = NULL, updated_at = now()
WHERE registration_id = $1 AND status = 'waitlisted'
"""
RELEASE = """
UPDATE fundings SET status = 'released', updated_at = now()
WHERE registration_id = $1 AND status = 'approved'
"""
LEAVE_WAITLIST = """
UPDATE fundings SET status = 'withdrawn', waitlist_seq = NULL, updated_at = now()
WHERE registration_id = $1 AND status = 'waitlisted'
"""
CLOSE_PERIOD = """
UPDATE periods SET closed_at = coalesce(closed_at, now()), updated_at = now() WHERE period_id = $1
"""
# Its row is locked by the caller; registrations declined while it was closed stay declined.
REOPEN_PERIOD = """
UPDATE periods SET closed_at = NULL, updated_at = now() WHERE period_id = $1 AND closed_at IS NOT NULL
"""


class PostgresFundingUnitOfWork(PostgresUnitOfWork):
    """The funding unit of work over one pooled connection in one transaction (ADR 0007)."""

    async def lock_registrations(self, registration_ids: Sequence[str]) -> dict[str, Funding]:
        await _lock_registration_ids(self.connection, registration_ids)
        return await _read_fundings(self.connection, registration_ids)

    async def erased_among(self, registration_ids: Sequence[str]) -> set[str]:
        return await erased_among(self.connection, registration_ids)

    async def erase(self, registration_ids: Sequence[str], request: ErasureRequest) -> dict[str, int | str]:
        return await erase_identities(self.connection, registration_ids, request)

    _load_savepoint = False
    _recorded = False

    async def lock_and_load(self, plan: LockPlan) -> BatchState:
        conn = self.connection
        if plan.money_head is not None:
            if self._load_savepoint:
                if self._recorded:
                    # Going back to the savepoint would undo what was recorded since.
                    raise RuntimeError("lock_and_load again after record in one unit of work")
                await conn.execute(BACK_TO_LOAD_SAVEPOINT)
            else:
                await conn.execute(LOAD_SAVEPOINT)
                self._load_savepoint = True
        await _lock_period_rows(conn, plan.period_ids)
        # Stable once every period is held: only holders of a period's row add or change its entries.
        waiting: list[Funding] = []
        loaded_through: dict[str, int] = {}
        seq_above = 0
        if plan.may_release:
            waiting, loaded_through = await _read_waiting_for_money(conn, plan.money_head)
            seq_above = await conn.fetchval(LAST_WAITLIST_SEQ)
        quotas = await _lock_quota_rows(conn, plan.kommunen_to_lock(waiting))
        records = await _read_fundings(conn, plan.registration_ids)
        if plan.may_release:
            waiting += await _read_waiting_for_places(conn, plan.kommune_keys)
            records = {entry.registration_id: entry for entry in waiting} | records
        budgets, money_waiting = await _read_periods(conn)
        pending = await conn.fetch(PENDING_WITHDRAWALS, list(plan.registration_ids))
        funded_basic = await conn.fetch(FUNDED_BASIC, sorted(plan.participant_hashes))
        return BatchState(
            fundings=records,
            budgets=budgets,
            quotas=quotas,
            quota_waiting=await _count_waiting_for_places(conn, plan.kommune_keys),
            budget_waiting=money_waiting,
            waitlists_loaded=plan.may_release,
            pending_withdrawals=frozenset(row["registration_id"] for row in pending),
            funded_basic={row["participant_hash"]: row["held"] for row in funded_basic},
            money_loaded_through=loaded_through,
            waitlist_seq_above=seq_above,
        )

    async def record(self, changes: Sequence[FundingChange]) -> None:
        """Consecutive new records go in with one statement per table; each other change on its
        own, by a conditional update, in order (a release frees what the next run may take)."""
        self._recorded = True
        new: list[NewFunding] = []
        for change in changes:
            if isinstance(change, NewFunding):
                new.append(change)
                continue
            await _insert_new_fundings(self.connection, new)
            new = []
            await _change_existing_record(self.connection, change)
        await _insert_new_fundings(self.connection, new)

    async def mark_period_closed(self, period_id: str) -> PeriodClosing | None:
        locked = await _lock_period_rows(self.connection, [period_id])
        if period_id not in locked:
            return None
        await self.connection.execute(CLOSE_PERIOD, period_id)
        rows = await self.connection.fetch(WAITING_IN_PERIOD, period_id)
        return PeriodClosing(locked[period_id], [_funding(row) for row in rows])

    async def mark_period_reopened(self, period_id: str) -> Budget | None:
        locked = await _lock_period_rows(self.connection, [period_id])
        if period_id not in locked:
            return None
        await self.connection.execute(REOPEN_PERIOD, period_id)
        return locked[period_id]

    async def bind_program(self, program_id: str) -> None:
        conn = self.connection
        # Serialises the programme sync of instances starting together.
        await conn.execute("SELECT pg_advisory_xact_lock($1)", SYNC_LOCK_ID)
        await conn.execute(BIND_PROGRAM, program_id)
        bound = await conn.fetchval(BOUND_PROGRAM)
        if bound != program_id:
            raise ProgramMismatchError(
                f"this funding database was started with programme {bound!r}, not {program_id!r}: "
                "use the programme file it was started with (FUNDING_PROGRAM_FILE), or a new "
                "database for another programme"
            )

    async def lock_limits(self) -> Limits:
        conn = self.connection
        await conn.fetch(LOCK_ALL_PERIODS)
        quotas = {row["kommune_key"]: _quota(row) for row in await conn.fetch(LOCK_ALL_QUOTAS)}
        return Limits(await _read_budgets(conn), quotas)

    async def write_limits(self, periods: Sequence[Period], changes: LimitChanges) -> None:
        conn = self.connection
        ordered = sorted(periods, key=lambda period: period.id)
        try:
            await conn.execute(
                UPSERT_PERIODS,
                [p.id for p in ordered],
                [p.starts_on for p in ordered],
                [p.ends_on for p in ordered],
                [changes.budgets[p.id] for p in ordered],
            )
            keys = sorted(changes.places)
            await conn.execute(UPSERT_QUOTAS, keys, [changes.places[key] for key in keys])
        except asyncpg.CheckViolationError as exc:
            raise InvariantError(f"a limit below what is committed or held: {exc}") from exc

    async def set_budget(self, budget: Budget) -> None:
        try:
            await _exactly_one(
                self.connection, SET_BUDGET, budget.period_id, budget.budget_cents, budget.set_by_operator
            )
        except asyncpg.CheckViolationError as exc:
            raise InvariantError(f"period {budget.period_id}: budget below what is committed") from exc


# --- locks, in the global order --------------------------------------------------------------


async def _lock_registration_ids(conn: Connection, registration_ids: Iterable[str]) -> None:
    ids = list(set(registration_ids))
    if ids:
        await conn.fetchval(LOCK_REGISTRATION_IDS, REGISTRATION_LOCK_SPACE, ids)


async def _lock_period_rows(conn: Connection, period_ids: Iterable[str]) -> dict[str, Budget]:
    rows = await conn.fetch(LOCK_PERIODS, sorted(set(period_ids)))
    return {row["period_id"]: _budget(row) for row in rows}


async def _lock_quota_rows(conn: Connection, kommune_keys: Iterable[str]) -> dict[str, QuotaState]:
    rows = await conn.fetch(LOCK_QUOTAS, sorted(set(kommune_keys)))
    return {row["kommune_key"]: _quota(row) for row in rows}


# --- reads -----------------------------------------------------------------------------------


def _budget(row: asyncpg.Record) -> Budget:
    return Budget(
        period_id=row["period_id"],
        budget_cents=row["budget_cents"],
        approved_cents=row["approved_cents"],
        released_cents=row["released_cents"],
        closed=row["closed"],
        set_by_operator=row["budget_set_by_operator"],
    )


def _quota(row: asyncpg.Record) -> QuotaState:
    return QuotaState(row["kommune_key"], row["places"], row["held"])


def _funding(row: asyncpg.Record) -> Funding:
    return Funding(
        registration_id=row["registration_id"],
        kommune_key=row["kommune_key"],
        status=Status(row["status"]),
        period_id=row["period_id"],
        reason=row["reason"],
        amount_cents=row["amount_cents"],
        seq=row["waitlist_seq"],
        course=Course(row["course"]),
        takes_place=row["takes_place"],
        participant_hash=row["participant_hash"],
    )


async def _read_periods(conn: Connection) -> tuple[dict[str, Budget], Counter[str]]:
    """Every period's money, and per period the entries waiting for it (migration 0004)."""
    rows = await conn.fetch(ALL_PERIODS)
    return (
        {row["period_id"]: _budget(row) for row in rows},
        Counter({row["period_id"]: row["money_waiting"] for row in rows if row["money_waiting"]}),
    )


async def _read_budgets(conn: Connection) -> dict[str, Budget]:
    return (await _read_periods(conn))[0]


async def read_quotas(conn: Connection, kommune_keys: Iterable[str]) -> dict[str, QuotaState]:
    rows = await conn.fetch(GET_QUOTAS, list(set(kommune_keys)))
    return {row["kommune_key"]: _quota(row) for row in rows}


async def _read_fundings(conn: Connection, registration_ids: Iterable[str]) -> dict[str, Funding]:
    rows = await conn.fetch(GET_FUNDINGS, list(set(registration_ids)))
    return {row["registration_id"]: _funding(row) for row in rows}


async def _read_waiting_for_money(conn: Connection, head: int | None) -> tuple[list[Funding], dict[str, int]]:
    """The entries waiting for money, in order of arrival: every one, or the first `head` of each
    period; and per period read only in part, the number of the last entry read."""
    if head is None:
        return [_funding(row) for row in await conn.fetch(WAITING_FOR_MONEY)], {}
    # One more than the head tells whether anything waits behind it.
    read: dict[str, list[Funding]] = {}
    for row in await conn.fetch(WAITING_FOR_MONEY_HEADS, head + 1):
        entry = _funding(row)
        assert entry.period_id is not None
        read.setdefault(entry.period_id, []).append(entry)
    loaded_through = {}
    for period_id, entries in read.items():
        if len(entries) > head:
            del entries[head:]
            assert entries[-1].seq is not None
            loaded_through[period_id] = entries[-1].seq
    waiting = sorted((entry for entries in read.values() for entry in entries), key=lambda e: e.seq or 0)
    return waiting, loaded_through


async def _read_waiting_for_places(conn: Connection, kommune_keys: Iterable[str]) -> list[Funding]:
    """The Kommunen's entries waiting for a place, in order of arrival."""
    return [_funding(row) for row in await conn.fetch(WAITING_FOR_PLACES, list(set(kommune_keys)))]


async def _count_waiting_for_places(conn: Connection, kommune_keys: Iterable[str]) -> Counter[str]:
    """Per Kommune, its entries waiting for a place."""
    rows = await conn.fetch(QUOTA_WAITING, list(set(kommune_keys)))
    return Counter({row["kommune_key"]: row["waiting"] for row in rows})


# --- writes ----------------------------------------------------------------------------------


async def _insert_new_fundings(conn: Connection, new: Sequence[NewFunding]) -> None:
    """Insert the funding records of first decisions, in order of arrival; approvals take their
    places and money first, with one statement per table."""
    if not new:
        return
    places: Counter[str] = Counter()
    money: Counter[str] = Counter()
    waitlisted = 0
    withdrawn_before: list[str] = []
    for item in new:
        if isinstance(item.decision, Approve):
            if item.decision.takes_place:
                places[item.decision.kommune_key] += 1
            money[item.decision.period_id] += item.decision.amount_cents
        elif isinstance(item.decision, Waitlist):
            waitlisted += 1
        elif isinstance(item.decision, WithdrawnBeforeAcceptance):
            withdrawn_before.append(item.decision.registration_id)
    if places:
        keys = sorted(places)  # the lock order, although the rows are locked already
        if await conn.execute(TAKE_PLACES, keys, [places[key] for key in keys]) != f"UPDATE {len(keys)}":
            raise InvariantError(f"a Kommune of {keys} has no quota row")
    if money:
        periods = sorted(money)
        taken = await conn.execute(TAKE_BUDGETS, periods, [money[period] for period in periods])
        if taken != f"UPDATE {len(periods)}":
            raise InvariantError(f"a period of {periods} is closed or unknown")
    if withdrawn_before:
        await conn.execute(FORGET_WITHDRAWALS, withdrawn_before)
    seqs = iter(
        sorted(row["seq"] for row in await conn.fetch(NEXT_WAITLIST_SEQS, waitlisted)) if waitlisted else []
    )
    columns: list[list[object]] = [[] for _ in range(13)]
    for item in new:
        decision, application = item.decision, item.application
        record = new_record(item, next(seqs) if isinstance(decision, Waitlist) else None)
        row = (
            application.registration_id,
            application.kommune_key,
            application.seminar_id,
            application.seminar_starts_on,
            application.fee_cents,
            record.status.value,
            record.period_id,
            record.reason,
            record.amount_cents,
            record.seq,
            record.course.value,
            record.takes_place,
            record.participant_hash,
        )
        for column, value in zip(columns, row, strict=True):
            column.append(value)
    await conn.execute(INSERT_FUNDINGS, *columns)


async def _change_existing_record(conn: Connection, effect: Effect) -> None:
    """Apply an effect on an existing record: promotion, requeue, release, leave, period close."""
    if isinstance(effect, Approve) and effect.promoted:
        await _take_place_and_money(conn, effect)
        await _exactly_one(conn, PROMOTE, effect.registration_id)
    elif isinstance(effect, Waitlist) and effect.requeued:
        await _exactly_one(conn, REQUEUE, effect.registration_id, effect.reason)
    elif isinstance(effect, Release):
        await _exactly_one(conn, RELEASE, effect.registration_id)
        if effect.takes_place:
            await conn.execute(FREE_PLACE, effect.kommune_key)
        await conn.execute(FREE_BUDGET, effect.period_id, effect.amount_cents)
    elif isinstance(effect, RememberWithdrawal):
        await conn.execute(REMEMBER_WITHDRAWAL, effect.registration_id, effect.kommune_key)
    elif isinstance(effect, LeaveWaitlist):
        await _exactly_one(conn, LEAVE_WAITLIST, effect.registration_id)
    elif isinstance(effect, Decline) and not effect.first:
        await _exactly_one(conn, DECLINE_WAITLISTED, effect.registration_id, effect.reason)
    else:
        raise TypeError(f"not a change of an existing record: {effect!r}")


async def _take_place_and_money(conn: Connection, approval: Approve) -> None:
    if approval.takes_place and await conn.fetchval(TAKE_PLACE, approval.kommune_key) is None:
        raise InvariantError(f"no free place for Kommune {approval.kommune_key}")
    if await conn.fetchval(TAKE_BUDGET, approval.period_id, approval.amount_cents) is None:
        raise InvariantError(f"not enough budget left in period {approval.period_id}")


async def _exactly_one(conn: Connection, statement: str, *args: object) -> None:
    if await conn.execute(statement, *args) != "UPDATE 1":
        raise InvariantError(f"funding record {args[0]} is not in the state the change expects")


# --- operator views --------------------------------------------------------------------------

PERIOD_FIGURES = """
SELECT p.period_id, p.starts_on, p.ends_on, p.budget_cents, p.approved_cents, p.released_cents,
       p.closed_at,
       (SELECT count(*) FROM fundings f WHERE f.period_id = p.period_id AND f.status = 'waitlisted')
           AS waitlisted
FROM periods p ORDER BY p.starts_on, p.period_id
"""
# Positions: per Kommune for quota_exhausted (the quota spans all periods), per period otherwise.
WAITLIST_VIEW = """
SELECT * FROM (
    SELECT registration_id, kommune_key, period_id, reason, amount_cents, decided_at, waitlist_seq,
           row_number() OVER (
               PARTITION BY reason, CASE WHEN reason = 'quota_exhausted' THEN kommune_key ELSE period_id END
               ORDER BY waitlist_seq) AS position
    FROM fundings WHERE status = 'waitlisted'
) AS waiting
WHERE $1::text IS NULL OR period_id = $1
ORDER BY period_id, waitlist_seq
"""
KOMMUNE_FUNDINGS = """
SELECT registration_id, seminar_id, seminar_starts_on, fee_cents, status, period_id, reason,
       amount_cents, promoted, decided_at, updated_at
FROM fundings WHERE kommune_key = $1 ORDER BY decided_at, registration_id
"""


async def read_period(conn: Connection, period_id: str) -> Budget | None:
    """A period's money and state, unlocked (for a view)."""
    return (await _read_budgets(conn)).get(period_id)


async def waiting_in_period(conn: Connection, period_id: str) -> list[Funding]:
    """The entries waiting in a period (for a place or for money), in order of arrival."""
    return [_funding(row) for row in await conn.fetch(WAITING_IN_PERIOD, period_id)]


async def period_figures(conn: Connection) -> Sequence[asyncpg.Record]:
    return list(await conn.fetch(PERIOD_FIGURES))


async def waitlist_view(conn: Connection, period_id: str | None) -> Sequence[asyncpg.Record]:
    return list(await conn.fetch(WAITLIST_VIEW, period_id))


async def kommune_fundings(conn: Connection, kommune_key: str) -> Sequence[asyncpg.Record]:
    return list(await conn.fetch(KOMMUNE_FUNDINGS, kommune_key))


# --- erasure (ADR 0018) ------------------------------------------------------------------------

ERASE_IDENTITIES = """
UPDATE fundings SET participant_hash = NULL, updated_at = now()
WHERE registration_id = ANY($1::text[]) AND participant_hash IS NOT NULL
RETURNING registration_id
"""
# The retention schedule: an identity is kept while the prerequisite rule may still need it, until
# both the seminar and its funding period are over and the funding last changed, then `days` more
# (Europe/Berlin).
DUE_FOR_RETENTION = """
SELECT f.registration_id
FROM fundings f LEFT JOIN periods p USING (period_id)
WHERE f.participant_hash IS NOT NULL
  AND greatest(f.seminar_starts_on, p.ends_on) + $1::integer < (now() AT TIME ZONE 'Europe/Berlin')::date
  AND (f.updated_at AT TIME ZONE 'Europe/Berlin')::date + $1::integer
      <= (now() AT TIME ZONE 'Europe/Berlin')::date
ORDER BY f.registration_id
LIMIT $2
"""


async def erase_identities(
    conn: Connection, registration_ids: Sequence[str], request: ErasureRequest
) -> dict[str, int | str]:
    """In the caller's transaction, under the registration locks every applier takes first."""
    ids = sorted(set(registration_ids))
    await _lock_registration_ids(conn, ids)
    identities = await conn.fetch(ERASE_IDENTITIES, ids)
    outbox = await strip_outbox(conn, ids)
    newly_erased = await mark_erased(conn, ids, request)
    erased_at = await record_erasure(conn, request, newly_erased)
    return {
        "participant_hashes": len(identities),
        "outbox": outbox,
        "marked": newly_erased,
        "erased_at": erased_at.isoformat(timespec="seconds"),
    }


async def due_for_retention(conn: Connection, days: int, limit: int) -> list[str]:
    return [row["registration_id"] for row in await conn.fetch(DUE_FOR_RETENTION, days, limit)]
