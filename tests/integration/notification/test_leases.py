"""A sender records failures and hands emails back only under the claim that holds their lease; a
retention round erases what an erasure of an earlier version left in a letter."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg

from services.notification import store
from services.notification.domain import planned_email_json
from services.notification.erasure import retention_round
from shared.db import Pool
from shared.erasure import ErasureRequest
from tests.unit.notification.letters import recorded_email

LEASE_SECONDS = 600.0


async def record_email(pool: Pool) -> uuid.UUID:
    email = recorded_email()
    async with pool.acquire() as conn:
        assert await store.record_emails(conn, [email]) == {email.id}
    return email.id


async def taken_over(pool: Pool) -> tuple[store.ClaimedEmail, store.ClaimedEmail]:
    """An email claimed by a sender whose lease ran out, then claimed by another sender."""
    await record_email(pool)
    [late] = await store.claim_due(pool, 10, lease_seconds=0.0)
    [live] = await store.claim_due(pool, 10, lease_seconds=LEASE_SECONDS)
    assert late.id == live.id and late.claim_token != live.claim_token
    return late, live


async def state(pool: Pool, email_id: uuid.UUID) -> asyncpg.Record:
    row = await pool.fetchrow(
        "SELECT status, attempts, next_attempt_at > now() + interval '1 minute' AS leased FROM emails"
        " WHERE id = $1",
        email_id,
    )
    assert row is not None
    return row


async def test_a_late_sender_cannot_hand_back_park_or_retry_an_email_another_sender_holds(
    pool: Pool,
) -> None:
    late, live = await taken_over(pool)
    async with pool.acquire() as conn, conn.transaction():
        await store.release(conn, [late])
        await store.schedule_retries(conn, [store.ScheduledRetry(late, "451 try again", 0.0)])
        assert await store.park_all(conn, [(late, "550 no such user")]) == set()
    after = await state(pool, live.id)
    assert (after["status"], after["attempts"], after["leased"]) == ("pending", 0, True)
    assert await store.claim_due(pool, 10, LEASE_SECONDS) == []  # still hidden behind the live lease


async def test_the_sender_holding_the_lease_records_its_outcomes(pool: Pool) -> None:
    _, live = await taken_over(pool)
    async with pool.acquire() as conn, conn.transaction():
        await store.release(conn, [live])
    assert not (await state(pool, live.id))["leased"]
    [again] = await store.claim_due(pool, 10, LEASE_SECONDS)
    async with pool.acquire() as conn, conn.transaction():
        await store.schedule_retries(conn, [store.ScheduledRetry(again, "451 try again", 0.0)])
    assert (await state(pool, again.id))["attempts"] == 1
    [last] = await store.claim_due(pool, 10, LEASE_SECONDS)
    async with pool.acquire() as conn, conn.transaction():
        assert await store.park_all(conn, [(last, "550 no such user")]) == {last.id}
    assert (await state(pool, last.id))["status"] == "parked"


async def test_a_renewal_extends_only_the_leases_its_claim_still_holds(pool: Pool) -> None:
    late, live = await taken_over(pool)
    other_id = await record_email(pool)
    [short] = await store.claim_due(pool, 10, lease_seconds=0.0)
    assert short.id == other_id
    # The late sender's renewal leaves the email another sender took over alone...
    await store.renew_leases(pool, [late], lease_seconds=0.0)
    assert (await state(pool, live.id))["leased"]
    # ...and a live sender's renewal keeps its own email hidden from the others.
    await store.renew_leases(pool, [short], lease_seconds=LEASE_SECONDS)
    assert (await state(pool, short.id))["leased"]
    assert await store.claim_due(pool, 10, LEASE_SECONDS) == []


async def test_a_retention_round_erases_what_an_earlier_version_left_in_an_erased_letter(pool: Pool) -> None:
    """ADR 0024: an instance of the version before erases only a letter's bytes; facts a new
    consumer recorded meanwhile are erased by the next retention round."""
    email = recorded_email("R-7")
    request = ErasureRequest(uuid.uuid4(), "operator", "Antrag", "request")
    async with pool.acquire() as conn, conn.transaction():
        assert await store.record_emails(conn, [email]) == {email.id}
        await store.erase_registrations(conn, ["R-7"], request)
        # As the version before would have left it: recipient and bytes gone, the facts still there.
        await conn.execute(
            "UPDATE emails SET facts = $2::json WHERE id = $1", email.id, planned_email_json(email.planned)
        )
    async with pool.acquire() as conn, conn.transaction():
        counts = await retention_round(conn, personal_data_days=365, letter_days=90)
        assert counts["erased_letters_left"] == 1
        assert await conn.fetchval("SELECT facts FROM emails WHERE id = $1", email.id) is None
        assert (await retention_round(conn, 365, 90))["erased_letters_left"] == 0


async def test_senders_claiming_at_once_never_get_the_same_email(pool: Pool) -> None:
    recorded = {await record_email(pool) for _ in range(40)}
    rounds = await asyncio.gather(*(store.claim_due(pool, 15, LEASE_SECONDS) for _ in range(4)))
    claimed = [email.id for emails in rounds for email in emails]
    assert len(claimed) == len(set(claimed)) == 40
    assert set(claimed) == recorded
