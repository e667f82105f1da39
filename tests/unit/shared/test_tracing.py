"""Trace context across the hops, with the SDK's in-memory exporter: a consumer's span, the outbox
row's stored traceparent, the relay's publish span and its Kafka header, the next consumer's span
are one trace, each the parent of the next."""

from __future__ import annotations

import itertools
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


def relay(topic: str, row_headers: list[list[str]], tracer: Tracer) -> list[tuple[str, bytes]]:
    """What the relay does with an outbox row: publish it under a span continuing the stored
    context, with that span's traceparent as the Kafka header."""
    stored = [(name, value.encode()) for name, value in json.loads(json.dumps(row_headers))]
    with tracing.publish_span(topic, stored, tracer=tracer):
        return tracing.replace_trace_headers([("event_type", b"some.event"), *stored])


def test_a_registration_is_one_trace_from_the_portal_to_its_letter(
    tracer: Tracer, exporter: InMemorySpanExporter
) -> None:
    # registration applies a portal record that carries no trace: the trace starts here, and the
    # outbox row stores the context as header pairs.
    portal_record = [("event_id", b"e-1")]
    with tracing.consume_batch_spans(
        "portal.registrations", [("e-1", "e-1", portal_record)], tracer=tracer
    ) as b:
        accepted_row = b.outbox_headers_for_output("e-1")
    assert [name for name, _ in accepted_row] == ["traceparent"]
    accepted = relay("registration.events", accepted_row, tracer)
    assert [name for name, _ in accepted] == ["event_type", "traceparent"]

    # funding continues it and writes its decision.
    with tracing.consume_batch_spans("registration.events", [("e-2", "e-1", accepted)], tracer=tracer) as b:
        decision_row = b.outbox_headers_for_output("e-1")
    decision = relay("funding.decisions", decision_row, tracer)

    # notification continues it, stores the traceparent with the email, and the sender later
    # sends the letter under a span continuing that value.
    with tracing.consume_span("funding.decisions", decision, tracer=tracer):
        stored_with_email = tracing.traceparent()
    with tracing.continued_span("smtp send", stored_with_email, kind=SpanKind.CLIENT, tracer=tracer):
        pass

    chain = [
        "portal.registrations process",
        "registration.events publish",
        "registration.events process",
        "funding.decisions publish",
        "funding.decisions process",
        "smtp send",
    ]
    spans = [finished(exporter, name) for name in chain]
    assert spans[0].parent is None
    for parent, child in itertools.pairwise(spans):
        assert parent_span_id(child) == context_of(parent).span_id, child.name
    assert {context_of(s).trace_id for s in spans} == {context_of(spans[0]).trace_id}
    assert [s.kind for s in spans[:3]] == [SpanKind.CONSUMER, SpanKind.PRODUCER, SpanKind.CONSUMER]
    assert dict(decision)["traceparent"].decode() == header_of(spans[3])


def test_each_event_of_a_batch_continues_its_own_trace(
    tracer: Tracer, exporter: InMemorySpanExporter
) -> None:
    with tracer.start_as_current_span("upstream a"):
        headers_a = tracing.kafka_trace_headers()
    with tracer.start_as_current_span("upstream b"):
        headers_b = tracing.kafka_trace_headers()

    batch = [
        ("a", "corr-a", headers_a),
        ("b", "corr-b", headers_b),
        ("a", "corr-a", headers_a),
        ("c", "c", None),
    ]
    with tracing.consume_batch_spans("funding.decisions", batch, tracer=tracer) as spans:
        stored_a = tracing.context_from_traceparent(spans.traceparent_for("a"))
        stored_c = spans.outbox_headers_for("c")
        output_of_b = spans.outbox_headers_for_output("corr-b")
        assert spans.traceparent_for("unknown") is None
        assert spans.outbox_headers_for_output("unknown") == []
        with spans.activate("b"):
            in_b = tracing.traceparent()
        with spans.activate("unknown"):
            assert tracing.traceparent() is None

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
    assert output_of_b == [["traceparent", header_of(by_event["b"])]]


def test_a_failed_batch_marks_its_spans(tracer: Tracer, exporter: InMemorySpanExporter) -> None:
    with (
        pytest.raises(RuntimeError),
        tracing.consume_batch_spans(
            "portal.registrations", [("x", "x", None), ("y", "y", None)], tracer=tracer
        ),
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


@pytest.mark.parametrize("parent", [None, "", "garbage", []])
def test_a_span_without_a_valid_parent_starts_a_trace(
    parent: str | list[tuple[str, bytes]] | None, tracer: Tracer, exporter: InMemorySpanExporter
) -> None:
    with tracing.continued_span("smtp send", parent, tracer=tracer) as span:
        assert tracing.traceparent() == tracing.span_traceparent(span)
    assert finished(exporter, "smtp send").parent is None


ADDRESS = "erika.mustermann@kommune.example"


@pytest.mark.parametrize("failing", ["continued", "batch"])
def test_a_failed_span_records_the_error_without_its_message(
    tracer: Tracer, exporter: InMemorySpanExporter, failing: str
) -> None:
    with pytest.raises(KeyError):
        if failing == "continued":
            with tracing.continued_span("work", None, tracer=tracer):
                raise KeyError(ADDRESS)
        else:
            with tracing.consume_batch_spans("portal.registrations", [("x", "x", None)], tracer=tracer):
                raise KeyError(ADDRESS)
    (span,) = exporter.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert ADDRESS not in (span.status.description or "")
    (event,) = [event for event in span.events if event.name == "exception"]
    assert event.attributes is not None
    assert event.attributes["exception.type"] == "KeyError"
    assert ADDRESS not in json.dumps(dict(event.attributes))
