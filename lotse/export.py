"""`lotse export`: the registrations, the funding decisions, the Kommunen and the budget per period
as sheets, read from the services' databases as the read-only `operator` role.

Names of Kommunen come from the directory (GV100AD); personal data only from the registration
database's own columns, which are NULL once a registration's data was erased.
"""

from __future__ import annotations

import asyncio

from lotse.db import with_pool
from lotse.reference import ReferenceData, load_reference_data
from lotse.settings import OperatorSettings
from lotse.sheets import (
    FundingRecord,
    KommuneRecord,
    RegistrationRecord,
    Sheet,
    budget_sheet,
    decisions_sheet,
    kommunen_sheet,
    registrations_sheet,
)
from services.funding import operations as funding
from shared.db import Pool
from shared.directory import KIND_LABELS_DE

# Registrations, and submissions parked until their seminar's offer arrives.
REGISTRATIONS = """
SELECT r.registration_id, r.seminar_id, s.title AS seminar_title, s.starts_on AS seminar_starts_on,
       r.given_kommune_key, r.kommune_key, r.given_name, r.family_name, r.participant_email,
       r.status, COALESCE(r.rejection_reason, r.withdrawal_reason) AS reason,
       r.submitted_at, r.created_at
FROM registrations AS r LEFT JOIN seminars AS s USING (seminar_id)
UNION ALL
SELECT p.registration_id, p.seminar_id, NULL::text, NULL::date,
       p.given_kommune_key, p.kommune_key, p.given_name, p.family_name, p.participant_email,
       'waiting_for_seminar', NULL::text, p.submitted_at, p.arrived_at
FROM parked_submissions AS p
ORDER BY registration_id
"""
# No participant_hash: the pseudonym is of no use to an operator.
FUNDINGS = """
SELECT registration_id, kommune_key, seminar_id, seminar_starts_on, course, status, period_id, reason,
       amount_cents, promoted, decided_at, updated_at
FROM fundings ORDER BY decided_at, registration_id
"""
QUOTAS = "SELECT kommune_key, places FROM quotas"


async def read_registrations(pool: Pool) -> list[RegistrationRecord]:
    async with pool.acquire() as conn:
        rows = await conn.fetch(REGISTRATIONS)
    return [RegistrationRecord(**dict(row)) for row in rows]


async def read_fundings(pool: Pool) -> list[FundingRecord]:
    async with pool.acquire() as conn:
        rows = await conn.fetch(FUNDINGS)
    return [FundingRecord(**dict(row)) for row in rows]


async def read_quotas(pool: Pool) -> dict[str, int]:
    async with pool.acquire() as conn:
        rows = await conn.fetch(QUOTAS)
    return {row["kommune_key"]: row["places"] for row in rows}


def kommune_records(
    reference: ReferenceData, places: dict[str, int], registered: set[str]
) -> list[KommuneRecord]:
    """Every eligible Kommune, and each other Kommune of the directory that registered someone."""
    eligible = {kommune.key for kommune in reference.eligible}
    keys = eligible | {key for key in registered if reference.directory.get(key) is not None}
    records = []
    for key in keys:
        kommune = reference.directory.get(key)
        if kommune is None:
            continue
        # A Kreis has a 5-digit key; a kreisfreie Stadt's canonical key is its 12-digit one.
        kreis = reference.directory.get(reference.directory.canonical_key(key[:5])) if len(key) >= 5 else None
        records.append(
            KommuneRecord(
                key=key,
                name=kommune.name,
                kind=KIND_LABELS_DE[kommune.kind],
                kreis=kreis.name if kreis is not None else "",
                eligible=key in eligible,
                places=places.get(key),
            )
        )
    return records


async def gather_sheets(config: OperatorSettings, reference: ReferenceData | None = None) -> list[Sheet]:
    """The four sheets: Registrierungen, Förderentscheidungen, Kommunen, Budget je Zeitraum."""
    if reference is None:
        reference = await asyncio.to_thread(
            load_reference_data, config.funding.program_file, config.common.gv100ad_file
        )
    registrations = await with_pool(config.registration.database_url, read_registrations)
    fundings = await with_pool(config.funding.database_url, read_fundings)
    places = await with_pool(config.funding.database_url, read_quotas)
    periods = await with_pool(config.funding.database_url, funding.budget_figures)
    registered = {r.kommune_key for r in registrations} | {f.kommune_key for f in fundings}
    kommunen = kommune_records(reference, places, registered)
    names = {kommune.key: kommune.name for kommune in kommunen}
    return [
        registrations_sheet(registrations, names),
        decisions_sheet(fundings, names),
        kommunen_sheet(kommunen, fundings),
        budget_sheet(periods),
    ]
