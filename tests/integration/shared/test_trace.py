"""One registration is one trace across the three services (ADR 0015): the portal's submission,
registration's decision, its relay, funding's decision, its relay and notification's letters, each
a span whose parent is the hop before, over real Kafka, PostgreSQL and SMTP."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import asyncpg
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from services.funding.app import build as build_funding
from services.funding.settings import FundingSettings
from services.notification.app import build as build_notification
from services.notification.settings import NotificationSettings
from services.registration.app import build as build_registration
from services.registration.settings import RegistrationSettings
from shared import tracing
from shared.topics import Topics
from tests.conftest import DatabaseFactory
from tests.integration.notification.smtp_sink import SmtpSink, smtp_sink
from tests.integration.registration.portal import Portal, seminar, submission
from tests.support.kafka import header, read_topic
from tests.support.service import in_process
from tests.support.waiting import wait_until

pytestmark = pytest.mark.integration

HANNOVER_AGS = "03241001"
FAST: dict[str, Any] = {"outbox_poll_interval_seconds": 0.2}


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Every span the process ends from now on. The runtimes keep the process's tracer provider
    if there is one (an earlier test's runtime installed it), so the exporter joins that one."""
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield exporter
    exporter.shutdown()  # the processor stays, but exports nothing more


@pytest.fixture
def sink(unused_tcp_port_factory: Callable[[], int]) -> Iterator[SmtpSink]:
    with smtp_sink(unused_tcp_port_factory()) as running:
        yield running


def ours(exporter: InMemorySpanExporter) -> list[ReadableSpan]:
    return [
        span
        for span in exporter.get_finished_spans()
        if span.instrumentation_scope is not None
        and span.instrumentation_scope.name == tracing.INSTRUMENTATION_NAME
    ]


def parent_of(span: ReadableSpan, candidates: list[ReadableSpan]) -> ReadableSpan:
    assert span.parent is not None, f"{span.name} has no parent"
    (found,) = [c for c in candidates if c.context is not None and c.context.span_id == span.parent.span_id]
    return found


async def test_one_registration_is_one_trace_from_the_portal_to_the_letters(
    *,
    kafka_bootstrap: str,
    topics: Topics,
    make_database: DatabaseFactory,
    sink: SmtpSink,
    spans: InMemorySpanExporter,
    unused_tcp_port_factory: Callable[[], int],
) -> None:
    common: dict[str, Any] = {
        "kafka_bootstrap": kafka_bootstrap,
        "topics": topics,
        "free_port": unused_tcp_port_factory,
    }
    registration_dsn = await make_database("registration")
    registration = in_process(
        build_registration, RegistrationSettings, database_url=registration_dsn, **common, **FAST
    )
    funding = in_process(
        build_funding, FundingSettings, database_url=await make_database("funding"), **common, **FAST
    )
    notification = in_process(
        build_notification,
        NotificationSettings,
        database_url=await make_database("notification"),
        smtp_host="127.0.0.1",
        smtp_port=sink.port,
        sender_poll_interval_seconds=0.1,
        **common,
        **FAST,
    )
    db = await asyncpg.connect(registration_dsn)
    try:
        async with registration(), funding(), notification():
            portal = Portal(kafka_bootstrap, topics, db)
            await portal.seminars(seminar("S-1", 5))
            key, submitted = submission("R-1", HANNOVER_AGS, "S-1")
            await portal.registrations((key, submitted))
            # The registration's letter and the funding decision's letter.
            await sink.wait_for(2, timeout=90)

            def trace_of_submission() -> list[ReadableSpan]:
                found = ours(spans)
                roots = [
                    s
                    for s in found
                    if (s.attributes or {}).get("messaging.message.id") == submitted["event_id"]
                ]
                if not roots or roots[0].context is None:
                    return []
                trace_id = roots[0].context.trace_id
                return [s for s in found if s.context is not None and s.context.trace_id == trace_id]

            async def reached_notification() -> bool:
                names = [s.name for s in trace_of_submission()]
                return names.count(f"{topics.registration_events} process") == 2 and (
                    f"{topics.funding_decisions} process" in names
                )

            await wait_until(reached_notification, timeout=60)
            decisions = await read_topic(
                kafka_bootstrap, topics.funding_decisions, until=lambda records: len(records) >= 1
            )
    finally:
        await db.close()

    chain = trace_of_submission()
    by_name: dict[str, list[ReadableSpan]] = {}
    for span in chain:
        by_name.setdefault(span.name, []).append(span)

    # The portal sends no traceparent: registration's span for the submission starts the trace.
    (received,) = by_name[f"{topics.portal_registrations} process"]
    assert received.parent is None
    assert received.kind is SpanKind.CONSUMER
    # registration's relay publishes the outcome under a child of that span ...
    (outcome_published,) = by_name[f"{topics.registration_events} publish"]
    assert outcome_published.kind is SpanKind.PRODUCER
    assert parent_of(outcome_published, chain) is received
    # ... which both funding and notification continue.
    outcome_consumed = by_name[f"{topics.registration_events} process"]
    assert len(outcome_consumed) == 2
    assert all(parent_of(span, chain) is outcome_published for span in outcome_consumed)
    # funding's decision leaves under a child of funding's span, and notification continues it.
    (decision_published,) = by_name[f"{topics.funding_decisions} publish"]
    assert parent_of(decision_published, chain) in outcome_consumed
    (decision_consumed,) = by_name[f"{topics.funding_decisions} process"]
    assert parent_of(decision_consumed, chain) is decision_published
    assert decision_consumed.kind is SpanKind.CONSUMER

    # The decision's record carries the publish span's context as its traceparent header.
    assert decision_published.context is not None
    (decision_record,) = decisions
    parent = header(decision_record, tracing.TRACEPARENT)
    assert parent is not None
    assert f"{decision_published.context.trace_id:032x}-{decision_published.context.span_id:016x}" in parent
