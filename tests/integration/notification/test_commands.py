"""command.mail_park and command.mail_resend carried out by notification, against the real broker,
PostgreSQL and an SMTP server: the email's state, its notification events and the results."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import asyncpg
import pytest

from lotse.commands import new_command, send_command
from services.notification.compose import notification_id
from services.notification.operations import PARKED_BY_OPERATOR
from shared.commands import MAIL_PARK, MAIL_RESEND
from shared.topics import Topics
from tests.integration.notification.smtp_sink import smtp_sink
from tests.integration.notification.test_notification import Bus, notifications, registration_event
from tests.support.kafka import read_topic, values
from tests.support.service import ServiceFactory
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration


async def test_an_operator_parks_a_pending_email_and_resends_it(
    kafka_bootstrap: str,
    topics: Topics,
    notification_service: ServiceFactory,
    notification_db: asyncpg.Connection,
    unused_tcp_port_factory: Callable[[], int],
) -> None:
    bus = Bus(kafka_bootstrap, topics)
    port = unused_tcp_port_factory()  # nothing listens here yet: the email stays pending
    event = registration_event("registration.accepted", "R-1")
    email_id = notification_id(uuid.UUID(event["event_id"]), "registration_accepted")

    async def send(name: str) -> list[tuple[str, str, dict[str, int | str]]]:
        outcome = await send_command(
            kafka_bootstrap, topics, name, new_command(name, "Empfänger prüft", email_id=email_id)
        )
        assert not outcome.missing
        return [(r.service, r.outcome, r.detail) for r in outcome.results.values()]

    async with notification_service(smtp_port=port):
        await bus.registrations(event)

        async def tried() -> bool:
            status = await notification_db.fetchval("SELECT status FROM emails WHERE id = $1", email_id)
            return bool(status == "pending")

        await wait_until(tried)
        assert await send(MAIL_RESEND) == [("notification", "refused", {"error": "not_parked"})]
        assert await send(MAIL_PARK) == [("notification", "done", {"parked": 1})]
        assert await send(MAIL_PARK) == [("notification", "refused", {"error": "not_pending"})]
        state = await notification_db.fetchrow(
            "SELECT status, last_error FROM emails WHERE id = $1", email_id
        )
        assert state is not None
        assert (state["status"], state["last_error"]) == ("parked", PARKED_BY_OPERATOR)
        (failed,) = values(await bus.notifications(notifications("notification.failed", 1)))
        assert failed["data"]["notification_id"] == str(email_id)
        assert failed["data"]["error"] == PARKED_BY_OPERATOR

        with smtp_sink(port) as late_sink:
            assert await send(MAIL_RESEND) == [("notification", "done", {"resent": 1})]
            (letter,) = await late_sink.wait_for(1)
            assert letter["X-Registration-ID"] == "R-1"
            sent = values(await bus.sent(1))
        results = values(
            await read_topic(kafka_bootstrap, topics.operations_results, until=lambda r: len(r) >= 4)
        )
    assert [v["event_type"] for v in sent] == ["notification.failed", "notification.sent"]
    assert [r["event_type"] for r in results] == [
        "result.mail_resend",
        "result.mail_park",
        "result.mail_park",
        "result.mail_resend",
    ]
