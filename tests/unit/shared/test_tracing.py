"""Trace context across the hops, with the SDK's in-memory exporter: a consumer's span, the outbox
row's stored traceparent, the relay's publish span and its Kafka header, the next consumer's span
are one trace, each the parent of the next."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode, Tracer

from shared import tracing


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def tracer(exporter: InMemorySpanExporter) -> Iterator[Tracer]:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield tracing.get_tracer(provider)
    provider.shutdown()


def finished(exporter: InMemorySpanExporter, name: str) -> ReadableSpan:
    (span,) = [s for s in exporter.get_finished_spans() if s.name == name]
    return span


def parent_span_id(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def context_of(span: ReadableSpan) -> trace.SpanContext:
    ctx: trace.SpanContext | None = span.context
    assert ctx is not None
    return ctx


def header_of(span: ReadableSpan) -> str:
    ctx = context_of(span)
    return f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-{int(ctx.trace_flags):02x}"


def test_a_registration_is_one_trace_across_outbox_relay_and_consumer(
    tracer: Tracer, exporter: InMemorySpanExporter
) -> None:
    # registration applies a portal record that carries no trace: the trace starts here.
    with tracing.consume_span("portal.registrations", [("event_id", b"e-1")], tracer=tracer):
        # ... and stores the context with the outbox row, as its JSON header pairs.
        stored = json.loads(json.dumps(tracing.outbox_trace_headers()))
    assert [name for name, _ in stored] == ["traceparent"]

    # The relay publishes the row under a span of its own and writes that span's header.
    row_headers = [(name, value.encode()) for name, value in stored]
    with tracing.publish_span("registration.events", row_headers, tracer=tracer):
        kafka_headers = tracing.replace_trace_headers(
            [("event_type", b"registration.accepted"), *row_headers]
        )
    assert [name for name, _ in kafka_headers] == ["event_type", "traceparent"]

    # funding consumes the record and continues the trace.
    with tracing.consume_span("registration.events", kafka_headers, tracer=tracer):
        pass

    portal = finished(exporter, "portal.registrations process")
    relay = finished(exporter, "registration.events publish")
    funding = finished(exporter, "registration.events process")
    assert portal.parent is None
    assert parent_span_id(relay) == context_of(portal).span_id
    assert parent_span_id(funding) == context_of(relay).span_id
    assert relay.parent is not None and relay.parent.is_remote
    assert {context_of(s).trace_id for s in (portal, relay, funding)} == {context_of(portal).trace_id}
    assert (portal.kind, relay.kind, funding.kind) == (
        SpanKind.CONSUMER,
        SpanKind.PRODUCER,
        SpanKind.CONSUMER,
    )
    assert dict(kafka_headers)["traceparent"].decode() == header_of(relay)


def test_each_event_of_a_batch_continues_its_own_trace(
    tracer: Tracer, exporter: InMemorySpanExporter
) -> None:
    with tracer.start_as_current_span("upstream a"):
        headers_a = tracing.kafka_trace_headers()
    with tracer.start_as_current_span("upstream b"):
        headers_b = tracing.kafka_trace_headers()

    batch = [("a", headers_a), ("b", headers_b), ("a", headers_a), ("c", None)]
    with tracing.consume_batch_spans("funding.decisions", batch, tracer=tracer) as spans:
        stored_a = tracing.context_from_traceparent(spans.traceparent_for("a"))
        stored_c = spans.outbox_headers_for("c")
        assert spans.traceparent_for("unknown") is None
        with spans.activate("b"):
            in_b = tracing.traceparent()

    upstream_a, upstream_b = finished(exporter, "upstream a"), finished(exporter, "upstream b")
    processed = [s for s in exporter.get_finished_spans() if s.name == "funding.decisions process"]
    assert len(processed) == 3  # the duplicate of "a" has no span of its own
    by_event = {s.attributes["messaging.message.id"]: s for s in processed if s.attributes}
    assert parent_span_id(by_event["a"]) == context_of(upstream_a).span_id
    assert parent_span_id(by_event["b"]) == context_of(upstream_b).span_id
    assert by_event["c"].parent is None  # no traceparent: a trace of its own
    assert context_of(by_event["a"]).trace_id != context_of(by_event["b"]).trace_id
    assert trace.get_current_span(stored_a).get_span_context().span_id == context_of(by_event["a"]).span_id
    assert stored_c[0][0] == "traceparent"
    assert in_b == header_of(by_event["b"])


def test_a_failed_batch_marks_its_spans(tracer: Tracer, exporter: InMemorySpanExporter) -> None:
    with (
        pytest.raises(RuntimeError),
        tracing.consume_batch_spans("portal.registrations", [("x", None), ("y", None)], tracer=tracer),
    ):
        raise RuntimeError("batch failed")
    spans = exporter.get_finished_spans()
    assert len(spans) == 2
    assert all(s.status.status_code is StatusCode.ERROR for s in spans)


@pytest.mark.parametrize(
    "headers",
    [
        None,
        [],
        [("traceparent", b"not a traceparent")],
        [("traceparent", b"00-00000000000000000000000000000000-0000000000000000-01")],  # invalid ids
    ],
)
def test_records_without_a_valid_traceparent_start_a_new_trace(
    headers: list[tuple[str, bytes]] | None,
) -> None:
    assert not trace.get_current_span(tracing.context_from_headers(headers)).get_span_context().is_valid


def test_traceparent_round_trip_through_a_header_value() -> None:
    value = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    ctx = tracing.context_from_headers([("TraceParent", value.encode()), ("tracestate", "k=v")])
    span_context = trace.get_current_span(ctx).get_span_context()
    assert span_context.trace_id == 0x4BF92F3577B34DA6A3CE929D0E0E4736
    assert span_context.span_id == 0x00F067AA0BA902B7
    assert span_context.is_remote
    assert tracing.traceparent(ctx) == value
    assert tracing.trace_carrier(ctx) == {"traceparent": value, "tracestate": "k=v"}
    assert tracing.traceparent(tracing.context_from_traceparent(value, "k=v")) == value


def test_no_current_span_gives_no_header() -> None:
    assert tracing.traceparent() is None
    assert tracing.outbox_trace_headers() == []
    assert tracing.replace_trace_headers([("traceparent", b"stale"), ("a", b"1")]) == [("a", b"1")]


@pytest.mark.parametrize(
    ("environ", "enabled"),
    [
        ({}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": ""}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"}, True),
    ],
)
def test_otlp_export_is_off_unless_an_endpoint_is_set(environ: dict[str, str], enabled: bool) -> None:
    assert tracing.otlp_enabled(environ) is enabled
    provider = tracing.make_tracer_provider("funding", environ=environ)
    try:
        processors = provider._active_span_processor._span_processors
        exporters = [type(getattr(p, "span_exporter", None)).__name__ for p in processors]
        assert exporters == (["OTLPSpanExporter"] if enabled else [])
    finally:
        provider.shutdown()


def test_the_service_name_comes_from_the_service_unless_otel_service_name_is_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    assert (
        tracing.make_tracer_provider("funding", environ={}).resource.attributes["service.name"] == "funding"
    )
    monkeypatch.setenv("OTEL_SERVICE_NAME", "funding-eu")
    provider = tracing.make_tracer_provider("funding", environ={"OTEL_SERVICE_NAME": "funding-eu"})
    assert provider.resource.attributes["service.name"] == "funding-eu"


def test_a_disabled_sdk_installs_nothing() -> None:
    assert tracing.configure_tracing("funding", environ={"OTEL_SDK_DISABLED": "true"}) is None


def test_faststream_telemetry_middleware_takes_the_provider(tracer: Tracer) -> None:
    provider = TracerProvider()
    middleware = tracing.telemetry_middleware(provider)
    assert type(middleware).__name__ == "KafkaTelemetryMiddleware"
    provider.shutdown()
