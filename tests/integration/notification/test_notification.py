"""The notification service end to end: real Kafka, PostgreSQL and a real SMTP server."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest

from services.notification import operations
from services.notification.compose import notification_id
from services.notification.domain import planned_email_from_json
from services.notification.templates import template_for
from shared.topics import Topics
from tests.integration.notification.smtp_sink import SmtpSink, smtp_sink
from tests.support.kafka import Record, publish, read_topic, values
from tests.support.service import ServiceFactory
from tests.support.waiting import wait_until
from tests.unit.notification.letters import parts
from tests.unit.notification.samples import KOMMUNE_KEY, event_data, wire

pytestmark = pytest.mark.integration


def contact(registration_id: str) -> str:
    return f"kontakt-{registration_id.lower()}@kommune.example"


def registration_event(event_type: str, registration_id: str, **overrides: Any) -> dict[str, Any]:
    return wire(
        event_type,
        event_data(event_type, registration_id, contact_email=contact(registration_id), **overrides),
    )


def decision(event_type: str, registration_id: str, **overrides: Any) -> dict[str, Any]:
    return wire(event_type, event_data(event_type, registration_id, **overrides))


def notifications(event_type: str, count: int) -> Callable[[list[Record]], bool]:
    return lambda records: sum(1 for v in values(records) if v["event_type"] == event_type) >= count


@dataclass(frozen=True)
class Bus:
    """The test's topics: publishes what the service consumes and reads what it reports."""

    bootstrap: str
    topics: Topics

    async def registrations(self, *events: dict[str, Any]) -> None:
        await publish(self.bootstrap, self.topics.registration_events, [(KOMMUNE_KEY, e) for e in events])

    async def decisions(self, *events: dict[str, Any]) -> None:
        await publish(self.bootstrap, self.topics.funding_decisions, [(KOMMUNE_KEY, e) for e in events])

    async def notifications(self, until: Callable[[list[Record]], bool], settle: float = 0) -> list[Record]:
        return await read_topic(
            self.bootstrap, self.topics.notification_events, until=until, timeout=60, settle=settle
        )

    async def sent(self, count: int, settle: float = 0) -> list[Record]:
        """notification.events once `count` notification.sent arrived (and `settle` seconds more)."""
        return await self.notifications(notifications("notification.sent", count), settle)


@pytest.fixture
def bus(kafka_bootstrap: str, topics: Topics) -> Bus:
    return Bus(kafka_bootstrap, topics)


def message_id(event: dict[str, Any], domain: str = "nsi-hannover.de") -> str:
    template = template_for(event["event_type"], event["data"].get("promoted", False))
    return f"<{notification_id(uuid.UUID(event['event_id']), template)}@{domain}>"


def assert_each_sent_once(sink: SmtpSink, events: list[dict[str, Any]], sent: list[Record]) -> None:
    """One email per event (told apart by Message-ID), and one notification.sent per email."""
    assert sink.count_by_message_id() == Counter(message_id(e) for e in events)
    assert [v["event_type"] for v in values(sent)] == ["notification.sent"] * len(events)


async def test_every_outcome_is_emailed_once_to_the_kommune_and_reported(
    bus: Bus, sink: SmtpSink, notification_service: ServiceFactory
) -> None:
    registrations = [
        registration_event("registration.accepted", "R-1"),
        registration_event("registration.waitlisted", "R-2"),
        registration_event("registration.rejected", "R-3", reason="unknown_seminar"),
        registration_event("registration.accepted", "R-4"),
        registration_event("registration.accepted", "R-5"),
        registration_event("registration.withdrawn", "R-1", reason="seminar_cancelled"),
    ]
    decisions = [
        decision("funding.approved", "R-1"),
        decision("funding.approved", "R-2", promoted=True),
        decision("funding.waitlisted", "R-4"),
        decision("funding.declined", "R-5", reason="outside_funding_period"),
        decision("funding.released", "R-1"),
    ]
    events = registrations + decisions
    async with notification_service(mail_from="Förderstelle Süd <foerderung@land.example>"):
        await bus.registrations(*registrations)
        await bus.decisions(*decisions)
        sent = await bus.sent(len(events), settle=2)

    assert sink.count_by_message_id() == Counter(message_id(e, "land.example") for e in events)
    by_message_id = {message_id(e, "land.example"): e for e in events}
    subjects: dict[tuple[str, str], str] = {}
    for received in sink.handler.received:
        message = received.parsed()  # email.policy.strict: a defect raises
        event = by_message_id[message["Message-ID"]]
        registration_id = event["data"]["registration_id"]
        assert message["X-Registration-ID"] == registration_id
        assert received.rcpt_tos == [contact(registration_id)]
        assert [a.addr_spec for a in message["To"].addresses] == [contact(registration_id)]
        assert received.mail_from == "foerderung@land.example"
        (sender,) = message["From"].addresses
        assert (sender.display_name, sender.addr_spec) == ("Förderstelle Süd", "foerderung@land.example")
        assert f"Anmeldung {registration_id}" in message["Subject"]
        subjects[(event["event_type"], registration_id)] = str(message["Subject"])
        # A letter that confirms a seat, or withdraws it, carries the calendar entry beside its text.
        calendar_parts = [part for part in message.walk() if part.get_content_type() == "text/calendar"]
        expected_type = "multipart/mixed" if calendar_parts else "multipart/alternative"
        assert message.get_content_type() == expected_type
        if event["event_type"] == "registration.accepted":
            assert len(calendar_parts) == 1
            assert calendar_parts[0].get_param("method") == "REQUEST"
        text, html = parts(message)
        for body in (text, html):
            assert "Göttingen (Landkreis, 03159)" in body
            assert registration_id in body and "Destatis" in body and "Grüßen" in body
    assert subjects[("registration.accepted", "R-1")].startswith("Anmeldebestätigung")
    assert subjects[("registration.withdrawn", "R-1")].startswith("Absage")
    assert subjects[("funding.approved", "R-1")].startswith("Förderung bewilligt: 500,00 €")
    assert subjects[("funding.approved", "R-2")].startswith("Nachrücken")
    assert subjects[("funding.declined", "R-5")].startswith("Förderung abgelehnt")
    approved_text, _ = parts(
        next(m for m in sink.messages() if m["Message-ID"] == message_id(decisions[0], "land.example"))
    )
    assert "500,00 €" in approved_text and "Jürgen Weiß" in approved_text
    assert "01.02.2023 bis 03.02.2023" in approved_text
    reported = values(sent)
    assert [v["event_type"] for v in reported] == ["notification.sent"] * len(events)
    assert all(v["source"] == "notification" for v in reported)
    records: list[Any] = list(sent)  # aiokafka is untyped
    assert {record.key for record in records} == {KOMMUNE_KEY.encode()}
    assert sorted((v["data"]["registration_id"], v["data"]["to"]) for v in reported) == sorted(
        (e["data"]["registration_id"], contact(e["data"]["registration_id"])) for e in events
    )
    assert sorted(v["correlation_id"] for v in reported) == sorted(e["event_id"] for e in events)


async def test_emails_share_a_few_reused_smtp_sessions(
    bus: Bus, sink: SmtpSink, notification_service: ServiceFactory
) -> None:
    events = [registration_event("registration.accepted", f"R-{n}") for n in range(1, 21)]
    async with notification_service(sender_concurrency=2):
        await bus.registrations(*events)
        sent = await bus.sent(len(events), settle=1)
    assert_each_sent_once(sink, events, sent)
    assert 1 <= len(sink.handler.sessions) <= 2


async def test_a_redelivered_event_sends_nothing_new(
    bus: Bus, sink: SmtpSink, notification_service: ServiceFactory, notification_db: asyncpg.Connection
) -> None:
    accepted = registration_event("registration.accepted", "R-1")
    approved = decision("funding.approved", "R-1")
    async with notification_service():
        await bus.registrations(accepted)
        await bus.decisions(approved)
        await bus.sent(2)
    # Again, also to a restarted service (a new consumer in the same group, after a rebalance).
    async with notification_service():
        await bus.registrations(accepted, accepted)
        await bus.decisions(approved)
        await wait_until(lambda: inbox_has(notification_db, 2))
        sent = await bus.sent(2, settle=2)
    assert sink.count_by_message_id() == Counter([message_id(accepted), message_id(approved)])
    assert len(values(sent)) == 2
    assert await notification_db.fetchval("SELECT count(*) FROM emails") == 2


async def inbox_has(conn: asyncpg.Connection, count: int) -> bool:
    return bool(await conn.fetchval("SELECT count(*) FROM inbox") >= count)


async def test_a_decision_that_arrives_before_its_registration_is_emailed_when_it_arrives(
    bus: Bus, sink: SmtpSink, notification_service: ServiceFactory, notification_db: asyncpg.Connection
) -> None:
    approved = decision("funding.approved", "R-9", amount_cents=123_456)
    accepted = registration_event("registration.accepted", "R-9")
    async with notification_service() as runtime:
        await bus.decisions(approved)

        async def decision_waits() -> bool:
            return bool(await notification_db.fetchval("SELECT count(*) FROM pending_decisions") == 1)

        await wait_until(decision_waits)
        (waiting,) = await operations.waiting_decisions(runtime.pool)
        assert (str(waiting["event_id"]), waiting["registration_id"], waiting["event_type"]) == (
            approved["event_id"],
            "R-9",
            "funding.approved",
        )
        assert sink.handler.received == []
    # Kept across a restart, and released by the registration.
    async with notification_service():
        await bus.registrations(accepted)
        await sink.wait_for(2)
        await bus.sent(2, settle=1)
    assert sink.count_by_message_id() == Counter([message_id(accepted), message_id(approved)])
    funding = next(m for m in sink.messages() if m["Message-ID"] == message_id(approved))
    assert [a.addr_spec for a in funding["To"].addresses] == [contact("R-9")]
    text, _ = parts(funding)
    assert "1.234,56 €" in text and "Jürgen Weiß" in text and "01.02.2023 bis 03.02.2023" in text
    assert await notification_db.fetchval("SELECT count(*) FROM pending_decisions") == 0
    assert await notification_db.fetchval("SELECT count(*) FROM emails WHERE status = 'sent'") == 2


async def test_temporary_smtp_failures_delay_but_lose_and_duplicate_nothing(
    bus: Bus, sink: SmtpSink, notification_service: ServiceFactory
) -> None:
    sink.handler.fail_next(["421 4.3.2 Service shutting down", "451 4.3.0 Try again later"] * 6)
    events = [registration_event("registration.accepted", f"R-{n}") for n in range(1, 6)]
    async with notification_service(sender_concurrency=3):
        await bus.registrations(*events)
        sent = await bus.sent(len(events), settle=2)
    assert sink.handler.rejected_data == 12
    assert_each_sent_once(sink, events, sent)


async def test_a_refused_address_parks_the_email_reports_it_and_an_operator_can_resend_it(
    bus: Bus, sink: SmtpSink, notification_service: ServiceFactory, notification_db: asyncpg.Connection
) -> None:
    sink.handler.refuse(contact("R-1"))
    refused = registration_event("registration.accepted", "R-1")
    fine = registration_event("registration.accepted", "R-2")
    async with notification_service(notification_max_permanent_attempts=2) as runtime:
        await bus.registrations(refused, fine)
        records = await bus.notifications(
            lambda r: notifications("notification.failed", 1)(r) and notifications("notification.sent", 1)(r)
        )
        (failed,) = [v for v in values(records) if v["event_type"] == "notification.failed"]
        email_id = str(notification_id(uuid.UUID(refused["event_id"]), "registration_accepted"))
        assert failed["data"]["notification_id"] == email_id
        assert failed["data"]["registration_id"] == "R-1"
        assert failed["data"]["to"] == contact("R-1")
        assert failed["data"]["error"].startswith("recipient refused: 550")
        state = await operations.get_email(runtime.pool, email_id)
        assert state is not None
        # Tried as often as configured, then parked and kept with its error.
        assert state["status"] == "parked" and state["attempts"] == 2
        assert state["last_error"].startswith("recipient refused: 550")
        assert sink.handler.refused_rcpt[contact("R-1")] == 2
        assert await operations.count_parked(runtime.pool) == 1
        assert [str(e["id"]) for e in await operations.parked(runtime.pool)] == [email_id]
        assert sink.count_by_message_id() == Counter([message_id(fine)])

        # Kept with the facts it is composed from (ADR 0024), not its bytes.
        stored = await notification_db.fetchrow(
            "SELECT message, facts FROM emails WHERE id = $1", uuid.UUID(email_id)
        )
        assert stored is not None and stored["message"] is None
        assert planned_email_from_json(stored["facts"]).trigger_event_id == uuid.UUID(refused["event_id"])

        sink.handler.accept(contact("R-1"))
        assert await operations.resend(runtime.pool, email_id) is True
        assert await operations.resend(runtime.pool, email_id) is False  # no longer parked
        records = await bus.sent(2, settle=1)
        assert await operations.count_sent(runtime.pool) == 2
    assert sink.count_by_message_id() == Counter([message_id(fine), message_id(refused)])
    assert sorted(v["event_type"] for v in values(records)) == [
        "notification.failed",
        "notification.sent",
        "notification.sent",
    ]


async def test_an_smtp_server_that_refuses_connections_holds_up_neither_consumer_nor_email(
    bus: Bus,
    notification_service: ServiceFactory,
    notification_db: asyncpg.Connection,
    unused_tcp_port_factory: Callable[[], int],
) -> None:
    port = unused_tcp_port_factory()  # nothing listens here yet: connection refused
    events = [registration_event("registration.accepted", f"R-{n}") for n in range(1, 5)]
    async with notification_service(smtp_port=port):
        await bus.registrations(*events)

        async def every_email_recorded_and_tried() -> bool:
            tried = await notification_db.fetchval(
                "SELECT count(*) FROM emails WHERE status = 'pending' AND attempts >= 1"
                " AND last_error IS NOT NULL"
            )
            return bool(tried == len(events))

        # The consumer went on through the partition while every delivery failed.
        await wait_until(every_email_recorded_and_tried)
        assert await inbox_has(notification_db, len(events))
        with smtp_sink(port) as late_sink:
            await late_sink.wait_for(len(events))
            sent = await bus.sent(len(events), settle=2)
            assert_each_sent_once(late_sink, events, sent)
    assert await notification_db.fetchval("SELECT count(*) FROM emails WHERE status = 'sent'") == len(events)


async def test_a_recipient_refused_for_now_does_not_hold_up_the_other_emails(
    bus: Bus, sink: SmtpSink, notification_service: ServiceFactory, notification_db: asyncpg.Connection
) -> None:
    sink.handler.refuse(contact("R-1"), "450 4.2.1 Mailbox busy, try again later")
    events = [registration_event("registration.accepted", f"R-{n}") for n in range(1, 5)]
    async with notification_service(sender_concurrency=1):
        # R-1 first on the same partition, and one SMTP session at a time.
        await bus.registrations(*events)
        others = await sink.wait_for(len(events) - 1)
        assert sorted(m["X-Registration-ID"] for m in others) == ["R-2", "R-3", "R-4"]

        async def retried() -> bool:
            return sink.handler.refused_rcpt[contact("R-1")] >= 2

        await wait_until(retried)
        state = await notification_db.fetchrow(
            "SELECT status, last_error FROM emails WHERE registration_id = 'R-1'"
        )
        assert state is not None
        assert state["status"] == "pending" and state["last_error"].startswith("recipient refused: 450")
        sink.handler.accept(contact("R-1"))
        sent = await bus.sent(len(events), settle=2)
    assert_each_sent_once(sink, events, sent)


async def test_decisions_racing_their_registrations_are_each_emailed_once(
    bus: Bus, sink: SmtpSink, notification_service: ServiceFactory, notification_db: asyncpg.Connection
) -> None:
    """Both consumers at once: whichever side of a pair comes first, no decision is lost."""
    ids = [f"R-{n}" for n in range(1, 13)]
    registrations = [registration_event("registration.accepted", rid) for rid in ids]
    decisions = [decision("funding.approved", rid, promoted=n % 2 == 0) for n, rid in enumerate(ids)]
    async with notification_service():
        await asyncio.gather(
            bus.registrations(*registrations),
            bus.decisions(*decisions[::-1]),
        )
        await bus.sent(2 * len(ids), settle=2)
    assert sink.count_by_message_id() == Counter(message_id(e) for e in registrations + decisions)
    for message in sink.messages():
        assert [a.addr_spec for a in message["To"].addresses] == [contact(message["X-Registration-ID"])]
    assert await notification_db.fetchval("SELECT count(*) FROM pending_decisions") == 0


async def test_a_lost_reply_to_an_accepted_email_sends_it_again_with_the_same_message_id(
    bus: Bus, sink: SmtpSink, notification_service: ServiceFactory, notification_db: asyncpg.Connection
) -> None:
    """The ADR's choice: when the outcome of a delivery is unknown, a duplicate, never a loss."""
    sink.handler.take_then_stall(seconds=4)
    accepted = registration_event("registration.accepted", "R-1")
    async with notification_service(smtp_timeout_seconds=1):
        await bus.registrations(accepted)
        sent = await bus.sent(1, settle=2)
    first, again = sink.handler.received
    assert first.content == again.content
    assert sink.count_by_message_id() == Counter({message_id(accepted): 2})
    state = await notification_db.fetchrow("SELECT status, attempts FROM emails")
    assert state is not None
    assert state["status"] == "sent" and state["attempts"] == 2
    assert [v["event_type"] for v in values(sent)] == ["notification.sent"]


async def test_a_conflicting_resubmission_is_rejected_without_the_stored_registrations_data(
    bus: Bus, sink: SmtpSink, notification_service: ServiceFactory, notification_db: asyncpg.Connection
) -> None:
    """Another portal reused R-1 for another Kommune: its rejection names nothing of R-1's data,
    and R-1's later letters still go to R-1's own Kommune."""
    accepted = registration_event("registration.accepted", "R-1")
    other = "anmeldung@andere-kommune.example"
    conflict = wire(
        "registration.rejected",
        event_data(
            "registration.rejected",
            "R-1",
            kommune_key="03241",
            contact_email=other,
            reason="registration_id_conflict",
        ),
    )
    approved = decision("funding.approved", "R-1")
    async with notification_service():
        await bus.registrations(accepted, conflict)
        await bus.sent(2)
        await bus.decisions(approved)
        await bus.sent(3, settle=1)
    assert sink.count_by_message_id() == Counter(message_id(e) for e in (accepted, conflict, approved))
    by_id = {str(m["Message-ID"]): m for m in sink.messages()}
    rejection = by_id[message_id(conflict)]
    assert [a.addr_spec for a in rejection["To"].addresses] == [other]
    for body in parts(rejection):
        assert "Jürgen" not in body and "Weiß" not in body
        assert "Grundlagen" not in body and "01.02.2023" not in body and "Göttingen" not in body
    funding = by_id[message_id(approved)]
    assert [a.addr_spec for a in funding["To"].addresses] == [contact("R-1")]
    text, _ = parts(funding)
    assert "Jürgen Weiß" in text and "Göttingen (Landkreis, 03159)" in text
    stored = await notification_db.fetchrow(
        "SELECT kommune_key, contact_email, family_name FROM registrations WHERE registration_id = 'R-1'"
    )
    assert stored is not None
    assert dict(stored) == {"kommune_key": "03159", "contact_email": contact("R-1"), "family_name": "Weiß"}


async def test_temporary_failures_are_retried_beyond_the_attempt_limit_and_never_parked(
    bus: Bus, sink: SmtpSink, notification_service: ServiceFactory, notification_db: asyncpg.Connection
) -> None:
    sink.handler.fail_next(["451 4.3.0 Try again later", "421 4.3.2 Service shutting down"] * 2)
    accepted = registration_event("registration.accepted", "R-1")
    async with notification_service(notification_max_attempts=2):
        await bus.registrations(accepted)
        sent = await bus.sent(1, settle=1)
    assert sink.handler.rejected_data == 4
    assert_each_sent_once(sink, [accepted], sent)
    state = await notification_db.fetchrow("SELECT status, attempts FROM emails")
    assert state is not None
    assert state["status"] == "sent" and state["attempts"] == 5


async def test_a_delivery_longer_than_the_lease_keeps_its_email_from_the_other_senders(
    bus: Bus, sink: SmtpSink, notification_service: ServiceFactory, notification_db: asyncpg.Connection
) -> None:
    """The sender renews the leases of the emails it is delivering (ADR 0004, 0017): the email of
    a slow delivery is never due to another sender meanwhile, and is sent once."""
    sink.handler.take_then_stall(seconds=5)
    accepted = registration_event("registration.accepted", "R-1")
    async with notification_service(
        smtp_timeout_seconds=20,
        notification_delivery_deadline_seconds=20,
        notification_sender_lease_seconds=1.5,
    ):
        await bus.registrations(accepted)
        await sink.wait_for(1)  # taken by the server, its reply still held back
        await asyncio.sleep(3)  # twice the lease: without renewals it would have run out
        due = "SELECT count(*) FROM emails WHERE status = 'pending' AND next_attempt_at <= now()"
        assert await notification_db.fetchval(due) == 0
        sent = await bus.sent(1, settle=1)
    assert sink.count_by_message_id() == Counter({message_id(accepted): 1})
    assert [v["event_type"] for v in values(sent)] == ["notification.sent"]
