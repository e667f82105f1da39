"""Fixtures of the fault suite: the services in-process against their own topics and databases
(the fixtures of tests/integration/<service>, reused, not copied)."""

from tests.integration.funding.conftest import funding_dsn, funding_service  # noqa: F401 - fixtures
from tests.integration.notification.conftest import (  # noqa: F401 - fixtures
    notification_db,
    notification_dsn,
    notification_service,
    sink,
)
from tests.integration.registration.conftest import (  # noqa: F401 - fixtures
    portal,
    registration_db,
    registration_dsn,
    registration_service,
)
