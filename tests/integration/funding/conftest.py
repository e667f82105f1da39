"""Fixtures: the funding service started in-process against the test's topics and database."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from services.funding.app import build
from services.funding.settings import FundingSettings
from shared.topics import Topics
from tests.conftest import DatabaseFactory
from tests.support.kafka import envelope
from tests.support.service import ServiceFactory, in_process
from tests.unit.funding.samples import SMALL_BUDGET_TOML


@pytest.fixture
async def funding_dsn(make_database: DatabaseFactory) -> str:
    return await make_database("funding")


@pytest.fixture
def small_budget_program(tmp_path: Path) -> Path:
    """A programme whose 2023 budget pays three approvals of 50,000 cents."""
    path = tmp_path / "small.toml"
    path.write_text(SMALL_BUDGET_TOML, "utf-8")
    return path


@pytest.fixture
def funding_service(
    kafka_bootstrap: str, topics: Topics, funding_dsn: str, unused_tcp_port_factory: Callable[[], int]
) -> ServiceFactory:
    """Starts an instance against the test's topics and database (call it twice for two)."""
    return in_process(
        build,
        FundingSettings,
        kafka_bootstrap=kafka_bootstrap,
        topics=topics,
        database_url=funding_dsn,
        free_port=unused_tcp_port_factory,
        outbox_poll_interval_seconds=0.2,
        consumer_max_records=50,
    )


@pytest.fixture
async def funding_pool(funding_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool on the service's database, for the operator functions and looking at the state."""
    pool = await asyncpg.create_pool(funding_dsn, min_size=1, max_size=2)
    assert pool is not None
    yield pool
    await pool.close()


def accepted(
    registration_id: str,
    kommune_key: str,
    *,
    starts_on: date = date(2023, 5, 2),
    fee_cents: int = 100_000,
    event_id: str | None = None,
) -> tuple[str, dict[str, Any]]:
    """A `registration.accepted` as the registration service publishes it: (key, envelope)."""
    data = {
        "registration_id": registration_id,
        "kommune_key": kommune_key,
        "seminar_id": f"S-{starts_on.isoformat()}",
        "seminar_title": "Kommunale Digitallotsen",
        "seminar_starts_on": starts_on.isoformat(),
        "seminar_ends_on": (starts_on + timedelta(days=2)).isoformat(),
        "fee_cents": fee_cents,
        "participant": {
            "given_name": "Erika",
            "family_name": "Muster",
            "email": f"{registration_id}@example.org",
        },
        "contact_email": "kontakt@kommune.example",
    }
    return kommune_key, envelope("registration.accepted", data, event_id=event_id, source="registration")


def withdrawn(registration_id: str, kommune_key: str) -> tuple[str, dict[str, Any]]:
    data = {
        "registration_id": registration_id,
        "kommune_key": kommune_key,
        "seminar_id": "S-2023-05-02",
        "contact_email": "kontakt@kommune.example",
        "reason": "withdrawn_by_portal",
    }
    return kommune_key, envelope(
        "registration.withdrawn", data, event_id=str(uuid.uuid4()), source="registration"
    )
