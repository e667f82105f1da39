"""Batch processing of consumed records: decode, dead-letter, dedupe, apply, enqueue, commit.

A batch is applied in one transaction that writes the inbox rows, the new state and the outbox
rows. If that transaction fails for a reason other than a transient one, the batch is applied
again one message at a time, so that a poison message is retried a bounded number of times and
dead-lettered alone while the rest of the batch goes through. Errors are classified by what
they are (`shared.db.is_transient`): a transient one (connection, lock or statement timeout,
deadlock, serialization, shutdown) rewinds the batch; any other dead-letters its message. A
batch that is rewound and redelivered sends each dead letter once (`send_dead_letters_once`).
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Sequence
from typing import Any, Generic, TypeAlias

from aiokafka import AIOKafkaProducer
from aiokafka.structs import ConsumerRecord
from opentelemetry.trace import Status, StatusCode

from shared import tracing
from shared.db import Pool, is_transient, retry_transient
from shared.dlq import DeadLetter, send_dead_letters_once
from shared.events import ContractError, Envelope, EventDecoder
from shared.health import Progress
from shared.logging import bound_event, get_logger
from shared.metrics import BATCH_SECONDS, EVENTS, record_dead_letters
from shared.redaction import redact_emails, safe_error
from shared.unit_of_work import BatchApplier, UnitOfWorkFactory, UnitOfWorkT

log = get_logger(__name__)

Record: TypeAlias = ConsumerRecord  # of bytes key and value
# How long a batch waits for the database to come back before the batch is rewound instead.
TRANSIENT_GIVE_UP_SECONDS = 60.0


class PoisonMessageError(Exception):
    pass


class BatchConsumer(Generic[UnitOfWorkT]):
    def __init__(
        self,
        *,
        service: str,
        decoder: EventDecoder,
        applier: BatchApplier[UnitOfWorkT],
        unit_of_work: UnitOfWorkFactory[UnitOfWorkT],
        pool: Pool,
        dead_letter_producer: AIOKafkaProducer,
        max_attempts: int = 3,
        retry_base_seconds: float = 0.2,
    ) -> None:
        self.service = service
        self.topic = decoder.topic
        self._decoder = decoder
        self._applier = applier
        self._unit_of_work = unit_of_work
        self._pool = pool
        self._producer = dead_letter_producer
        self._max_attempts = max_attempts
        self._retry_base = retry_base_seconds
        # For readiness: has a batch been in hand for long without a message done?
        self.progress = Progress()

    async def process(self, records: Sequence[Record]) -> None:
        # A batch that fails stays "in hand": it is redelivered, and the consumer is stalled
        # until it, or one of its messages, goes through.
        self.progress.begin()
        try:
            await self._process(records)
        except BaseException:
            self.progress.failed()
            raise
        self.progress.finish()

    async def _process(self, records: Sequence[Record]) -> None:
        decoded: list[tuple[Record, Envelope[Any]]] = []
        letters: list[DeadLetter] = []
        for record in records:
            try:
                decoded.append((record, self._decoder.decode(record.value)))
            except ContractError as exc:
                log.warning(
                    "dead-lettering a message that breaks the contract",
                    topic=record.topic,
                    partition=record.partition,
                    offset=record.offset,
                    reason=redact_emails(str(exc)),
                )
                # A contract error names places, not values (shared.events); addresses are
                # redacted all the same, as the reason is kept with the letter.
                letters.append(DeadLetter(record, redact_emails(str(exc))))
        await self._dead_letter(letters)
        if not decoded:
            return
        # One span per event, continuing its record's trace; they stay open through the
        # one-by-one fallback, so a message applied alone (or dead-lettered) keeps its own span.
        traced = [
            (event.event_id, event.effective_correlation_id, record.headers) for record, event in decoded
        ]
        with (
            BATCH_SECONDS.labels(self.service, self.topic).time(),
            tracing.consume_batch_spans(self.topic, traced) as spans,
        ):
            try:
                await self._apply_transient_safe([event for _, event in decoded], spans)
            except Exception as exc:
                if is_transient(exc):
                    raise
                log.warning("batch failed, applying its messages one by one", error=safe_error(exc))
                for record, event in decoded:
                    with spans.activate(event.event_id):
                        await self._apply_alone(record, event, spans)
                    self.progress.advance()

    async def _dead_letter(self, letters: list[DeadLetter]) -> None:
        if not letters:
            return
        sent = await retry_transient(
            lambda: send_dead_letters_once(self._pool, self._producer, letters, self.service),
            give_up_after=TRANSIENT_GIVE_UP_SECONDS,
        )
        EVENTS.labels(self.service, self.topic, "dead_lettered").inc(sent)
        record_dead_letters(self.service, self.topic, sent)

    async def _apply_transient_safe(self, events: Sequence[Envelope[Any]], spans: tracing.BatchSpans) -> None:
        await retry_transient(
            lambda: self._apply_in_transaction(events, spans),
            give_up_after=TRANSIENT_GIVE_UP_SECONDS,
            on_retry=lambda exc, attempt: log.warning(
                "database unavailable, retrying batch", error=safe_error(exc), attempt=attempt
            ),
        )

    async def _apply_alone(self, record: Record, event: Envelope[Any], spans: tracing.BatchSpans) -> None:
        for attempt in range(1, self._max_attempts + 1):
            try:
                await self._apply_transient_safe([event], spans)
                return
            except Exception as exc:
                if is_transient(exc):
                    raise
                with bound_event(event.event_id, event.effective_correlation_id):
                    log.error(
                        "handler failed",
                        attempt=attempt,
                        error=safe_error(exc),
                        # Rendered as code and error classes only (shared.redaction).
                        exc_info=exc,
                    )
                if attempt == self._max_attempts:
                    reason = f"handler failed after {attempt} attempts: {safe_error(exc)}"
                    span = spans.span(event.event_id)
                    if span is not None:
                        span.set_status(Status(StatusCode.ERROR, "dead-lettered"))
                    await self._dead_letter([DeadLetter(record, reason)])
                    return
                delay = self._retry_base * 2 ** (attempt - 1)
                await asyncio.sleep(random.uniform(delay / 2, delay))

    async def _apply_in_transaction(self, events: Sequence[Envelope[Any]], spans: tracing.BatchSpans) -> None:
        async with self._unit_of_work(self._pool) as uow:
            new_ids = await uow.claim_new_events(self.topic, [event.event_id for event in events])
            fresh: list[Envelope[Any]] = []
            seen: set[uuid.UUID] = set()
            for event in events:
                if event.event_id in new_ids and event.event_id not in seen:
                    seen.add(event.event_id)
                    fresh.append(event)
            duplicates = len(events) - len(fresh)
            if duplicates:
                log.info("dropped redelivered events", count=duplicates, topic=self.topic)
            if fresh:
                messages = await self._applier.apply_batch(uow, fresh)
                # Each output carries its cause's trace, found by its correlation id.
                await uow.enqueue(
                    [
                        message.with_trace(
                            spans.outbox_headers_for_output(message.envelope.effective_correlation_id)
                        )
                        for message in messages
                    ]
                )
        EVENTS.labels(self.service, self.topic, "processed").inc(len(fresh))
        EVENTS.labels(self.service, self.topic, "duplicate").inc(duplicates)
