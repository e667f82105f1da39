"""OpenTelemetry trace context across the outbox and Kafka: one trace per registration.

A consumer continues the trace of every record it applies (the record's `traceparent` header),
stores the context of that work with each outbox row it writes, and the relay publishes the row
with a `traceparent` header of its own publish span, which the next consumer continues (ADR 0015).
Spans are recorded by the SDK in every process so that ids are real, but exported only when
`OTEL_EXPORTER_OTLP_ENDPOINT` is set:

- `OTEL_EXPORTER_OTLP_ENDPOINT`, e.g. `http://127.0.0.1:4318`: export spans by OTLP/HTTP to
  `<endpoint>/v1/traces`. Unset (and no traces endpoint below): no export.
- `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`: the full traces URL instead (also turns export on).
- `OTEL_EXPORTER_OTLP_HEADERS`: `key=value,...` sent with every export (e.g. an auth token).
- `OTEL_SERVICE_NAME`: the `service.name` resource attribute; default the service's name.
- `OTEL_RESOURCE_ATTRIBUTES`: further resource attributes, `key=value,...`.
- `OTEL_TRACES_SAMPLER`, `OTEL_TRACES_SAMPLER_ARG`: the SDK's sampler (`parentbased_always_on`).
- `OTEL_SDK_DISABLED=true`: no SDK; spans are no-ops, and a consumed `traceparent` travels on
  unchanged.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from shared.redaction import safe_error

if TYPE_CHECKING:
    from faststream.kafka.opentelemetry import KafkaTelemetryMiddleware

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
TRACE_HEADERS = (TRACEPARENT, TRACESTATE)
INSTRUMENTATION_NAME = "lotse"

_PROPAGATOR = TraceContextTextMapPropagator()

# A Kafka record's headers as aiokafka gives and takes them.
KafkaHeaders = Sequence[tuple[str, bytes]]


def otlp_enabled(environ: Mapping[str, str] = os.environ) -> bool:
    return bool(
        environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )


def sdk_disabled(environ: Mapping[str, str] = os.environ) -> bool:
    return environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true"


def make_tracer_provider(
    service: str,
    *,
    environ: Mapping[str, str] = os.environ,
    exporter: SpanExporter | None = None,
) -> TracerProvider:
    """A tracer provider for `service`: spans go to `exporter` if given, else to OTLP/HTTP when
    configured (see the module's table), else nowhere."""
    attributes: dict[str, str] = {} if environ.get("OTEL_SERVICE_NAME") else {SERVICE_NAME: service}
    provider = TracerProvider(resource=Resource.create(attributes))
    if exporter is None and otlp_enabled(environ):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()  # reads the OTEL_EXPORTER_OTLP_* variables itself
    if exporter is not None:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def configure_tracing(service: str, *, environ: Mapping[str, str] = os.environ) -> TracerProvider | None:
    """Install the process's global tracer provider once at start-up; returns it (None when
    OTEL_SDK_DISABLED). Call `provider.shutdown()` on exit to flush the last spans."""
    if sdk_disabled(environ):
        return None
    provider = make_tracer_provider(service, environ=environ)
    trace.set_tracer_provider(provider)
    return provider


def get_tracer(provider: trace.TracerProvider | None = None) -> Tracer:
    return trace.get_tracer(INSTRUMENTATION_NAME, tracer_provider=provider)


def telemetry_middleware(provider: trace.TracerProvider | None = None) -> KafkaTelemetryMiddleware:
    """FastStream's OpenTelemetry middleware for a broker: spans for what the broker itself
    publishes and consumes. A batch subscriber's span only *links* to its records' contexts, so the
    per-record parent relation comes from consume_spans, not from this middleware."""
    from faststream.kafka.opentelemetry import KafkaTelemetryMiddleware

    return KafkaTelemetryMiddleware(tracer_provider=provider, include_messages_counters=False)


# --- carrying the context ------------------------------------------------------------------------


def trace_carrier(ctx: Context | None = None) -> dict[str, str]:
    """`traceparent` (and `tracestate`, if any) of `ctx` or of the current context; empty when
    there is no valid span."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier, context=ctx)
    return carrier


def traceparent(ctx: Context | None = None) -> str | None:
    """The W3C `traceparent` value of `ctx` or the current context, e.g. to store with an outbox
    row: `00-<trace id>-<span id>-<flags>`."""
    return trace_carrier(ctx).get(TRACEPARENT)


def span_traceparent(span: Span) -> str | None:
    return traceparent(trace.set_span_in_context(span))


def outbox_trace_headers(ctx: Context | None = None) -> list[list[str]]:
    """The trace context as outbox header pairs (`outbox.headers` is a JSON list of
    `[name, value]`), to append to an OutboxMessage's headers."""
    return [[name, value] for name, value in trace_carrier(ctx).items()]


def kafka_trace_headers(ctx: Context | None = None) -> list[tuple[str, bytes]]:
    return [(name, value.encode()) for name, value in trace_carrier(ctx).items()]


def _carrier_from_headers(headers: Iterable[tuple[str, bytes | str | None]]) -> dict[str, str]:
    carrier: dict[str, str] = {}
    for name, value in headers:
        key = name.lower()
        if key in TRACE_HEADERS and value is not None:
            carrier[key] = value.decode("latin-1") if isinstance(value, bytes) else value
    return carrier


def context_from_headers(headers: Iterable[tuple[str, bytes | str | None]] | None) -> Context:
    """The remote context of a consumed record's (or an outbox row's) headers; an empty context,
    so a new trace, when they carry no valid `traceparent`."""
    return _PROPAGATOR.extract(_carrier_from_headers(headers or ()), context=Context())


def context_from_traceparent(value: str | None, tracestate: str | None = None) -> Context:
    carrier = {TRACEPARENT: value} if value else {}
    if value and tracestate:
        carrier[TRACESTATE] = tracestate
    return _PROPAGATOR.extract(carrier, context=Context())


def replace_trace_headers(
    headers: Iterable[tuple[str, bytes]], ctx: Context | None = None
) -> list[tuple[str, bytes]]:
    """`headers` without their trace headers, plus those of `ctx` (or the current context)."""
    kept = [(name, value) for name, value in headers if name.lower() not in TRACE_HEADERS]
    return kept + kafka_trace_headers(ctx)


# --- spans at the hops ---------------------------------------------------------------------------

HeaderPairs = Iterable[tuple[str, bytes | str | None]]


@contextmanager
def continued_span(
    name: str,
    parent: HeaderPairs | str | None,
    *,
    kind: SpanKind = SpanKind.INTERNAL,
    tracer: Tracer | None = None,
    attributes: Mapping[str, Any] | None = None,
) -> Iterator[Span]:
    """A span that continues the trace of `parent` (record or outbox headers, or a bare
    `traceparent` value, e.g. one stored with an email) and is current inside the block, so
    `traceparent()` there names it; a missing or invalid parent starts a new trace."""
    ctx = context_from_traceparent(parent) if isinstance(parent, str) else context_from_headers(parent)
    span = (tracer or get_tracer()).start_span(name, context=ctx, kind=kind, attributes=attributes)
    # The SDK would record the exception's message (and make it the status): it may quote
    # personal data, so the span gets the error's safe description instead.
    with trace.use_span(span, end_on_exit=True, record_exception=False, set_status_on_exception=False):
        try:
            yield span
        except BaseException as exc:
            record_error(span, exc)
            raise


def record_error(span: Span, exc: BaseException) -> None:
    """The span failed with `exc`: an `exception` event with its class and `safe_error`, never
    its message (docs/personal-data.md), and the status ERROR with the class."""
    if span.is_recording():
        span.add_event(
            "exception",
            {"exception.type": type(exc).__qualname__, "exception.message": safe_error(exc)},
        )
        span.set_status(Status(StatusCode.ERROR, type(exc).__name__))


def _messaging(topic: str, attributes: Mapping[str, Any] | None) -> dict[str, Any]:
    return {"messaging.system": "kafka", "messaging.destination.name": topic, **(attributes or {})}


@contextmanager
def consume_span(
    topic: str,
    headers: HeaderPairs | None,
    *,
    tracer: Tracer | None = None,
    attributes: Mapping[str, Any] | None = None,
) -> Iterator[Span]:
    """A CONSUMER span `<topic> process` for one record, continuing the record's trace."""
    with continued_span(
        f"{topic} process",
        headers,
        kind=SpanKind.CONSUMER,
        tracer=tracer,
        attributes=_messaging(topic, attributes),
    ) as span:
        yield span


@contextmanager
def publish_span(
    topic: str,
    stored_headers: HeaderPairs | None,
    *,
    tracer: Tracer | None = None,
    attributes: Mapping[str, Any] | None = None,
) -> Iterator[Span]:
    """A PRODUCER span `<topic> publish` for the relay, a child of the context stored with the
    outbox row; inside it, `replace_trace_headers(row_headers)` gives the record's headers."""
    with continued_span(
        f"{topic} publish",
        stored_headers,
        kind=SpanKind.PRODUCER,
        tracer=tracer,
        attributes=_messaging(topic, attributes),
    ) as span:
        yield span


class BatchSpans:
    """One CONSUMER span per event of a batch that is applied in one transaction, each continuing
    its own record's trace, so the outbox rows an event causes carry that event's trace.

    An output is found by its cause's event id, or by its own `correlation_id`: an output carries
    its cause's effective correlation id (the cause's correlation_id, or the cause's event_id), so
    the consumer can attach the trace to every outbox row of a batch without the applier's help."""

    def __init__(self, spans: Mapping[str, Span], by_correlation: Mapping[str, Span]) -> None:
        self._spans = dict(spans)
        self._by_correlation = dict(by_correlation)

    def span(self, event_id: object) -> Span | None:
        return self._spans.get(str(event_id))

    def span_of_output(self, correlation_id: object) -> Span | None:
        """The span of the first event in the batch whose outputs carry this correlation id."""
        return self._by_correlation.get(str(correlation_id))

    def traceparent_for(self, event_id: object) -> str | None:
        """What to store with the outbox rows caused by this event."""
        span = self.span(event_id)
        return span_traceparent(span) if span is not None else None

    def outbox_headers_for(self, event_id: object) -> list[list[str]]:
        return _outbox_headers_of(self.span(event_id))

    def outbox_headers_for_output(self, correlation_id: object) -> list[list[str]]:
        """The trace header pairs for an outbox row with this `correlation_id`; [] if no event of
        the batch caused it."""
        return _outbox_headers_of(self.span_of_output(correlation_id))

    @contextmanager
    def activate(self, event_id: object) -> Iterator[None]:
        """Make the event's span current (for nested spans while deciding it)."""
        span = self.span(event_id)
        if span is None:
            yield
            return
        token = otel_context.attach(trace.set_span_in_context(span))
        try:
            yield
        finally:
            otel_context.detach(token)


def _outbox_headers_of(span: Span | None) -> list[list[str]]:
    return outbox_trace_headers(trace.set_span_in_context(span)) if span is not None else []


@contextmanager
def consume_batch_spans(
    topic: str,
    records: Iterable[tuple[object, object, HeaderPairs | None]],
    *,
    tracer: Tracer | None = None,
) -> Iterator[BatchSpans]:
    """Spans for `(event_id, effective_correlation_id, headers)` of each event of a batch; all end
    when the block ends, and an exception leaving it marks every one of them as failed."""
    tracer = tracer or get_tracer()
    spans: dict[str, Span] = {}
    by_correlation: dict[str, Span] = {}
    with ExitStack() as stack:
        for event_id, correlation_id, headers in records:
            if str(event_id) in spans:
                continue  # a redelivered duplicate within the batch: one span for the event
            span = tracer.start_span(
                f"{topic} process",
                context=context_from_headers(headers),
                kind=SpanKind.CONSUMER,
                attributes=_messaging(topic, {"messaging.message.id": str(event_id)}),
            )
            spans[str(event_id)] = span
            by_correlation.setdefault(str(correlation_id), span)
            stack.callback(span.end)
        try:
            yield BatchSpans(spans, by_correlation)
        except BaseException as exc:
            for span in spans.values():
                record_error(span, exc)
            raise
