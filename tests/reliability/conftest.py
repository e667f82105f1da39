"""Fixtures of the fault suite: the registration service in-process against its own topics and
database (the fixtures of tests/integration/registration, reused, not copied)."""

from tests.integration.registration.conftest import (  # noqa: F401 - fixtures
    portal,
    registration_db,
    registration_dsn,
    registration_service,
)
