"""Kafka plumbing: how every client authenticates, the broker factory and an idempotent raw producer.

Every client (FastStream broker, aiokafka producer, consumer, admin) is built with the options of
one `KafkaSecurity`: SASL_SSL with SCRAM-SHA-512 and the broker verified against KAFKA_SSL_CA_FILE,
unless KAFKA_SECURITY_PROTOCOL=PLAINTEXT. Without an explicit one, a client takes the process's
environment (KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD or _FILE, ...).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiokafka.producer.sender as aiokafka_sender
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import TopicAlreadyExistsError
from aiokafka.structs import ConsumerRecord
from faststream.kafka import KafkaBroker
from faststream.kafka.subscriber.usecase import BatchSubscriber
from faststream.middlewares import AckPolicy
from faststream.security import BaseSecurity, SASLScram512
from pydantic import SecretStr

from shared import metrics, tracing
from shared.settings import (
    KafkaSaslMechanism,
    KafkaSecurityProtocol,
    KafkaSecuritySettings,
    local_secrets_dir,
    read_secret_file,
)
from shared.topics import TopicSpec

# Subscribers acknowledge themselves (shared.runtime, shared.offsets): a batch is applied, then
# its offsets are committed in the background; an error that survives the retries rewinds the
# batch, so nothing is committed past an unprocessed message.
SUBSCRIBER_ACK_POLICY = AckPolicy.MANUAL

Headers = Sequence[tuple[str, bytes]]

# A transaction begun right after a commit is often refused with CONCURRENT_TRANSACTIONS: the
# broker is still writing the last one's markers (KAFKA-5477). aiokafka then retries after a
# fixed 20 ms that no option sets, and a relay that commits back to back paid it on most batches
# (`python -m bench.transactions`: p90 25 ms, 6-7 ms with 2 ms retries). Each retry costs the
# broker one small request.
CONCURRENT_TRANSACTIONS_RETRY_SECONDS = 0.002


def retry_concurrent_transactions_sooner() -> None:
    """Set aiokafka's retry delay for CONCURRENT_TRANSACTIONS (a module constant it reads on each
    retry) to CONCURRENT_TRANSACTIONS_RETRY_SECONDS. Fails loudly if an upgrade removed it."""
    if not isinstance(getattr(aiokafka_sender, "BACKOFF_OVERRIDE", None), float):
        raise RuntimeError("aiokafka.producer.sender.BACKOFF_OVERRIDE is gone: see shared/kafka.py")
    aiokafka_sender.BACKOFF_OVERRIDE = CONCURRENT_TRANSACTIONS_RETRY_SECONDS


async def _get_batch_sleeping_only_the_rest(
    self: BatchSubscriber, consumer: AIOKafkaConsumer
) -> tuple[ConsumerRecord[bytes, bytes], ...]:
    began = time.monotonic()
    batches = await consumer.getmany(timeout_ms=self.batch_timeout_ms, max_records=self.max_records)
    if not batches:
        rest = self.batch_timeout_ms / 1000 - (time.monotonic() - began)
        if rest > 0:
            await asyncio.sleep(rest)
        return ()
    return tuple(itertools.chain.from_iterable(batches.values()))


def poll_batches_without_idle_sleep() -> None:
    """Make FastStream's batch subscribers sleep after an empty poll only what the poll did not wait.

    FastStream sleeps `batch_timeout_ms` after every empty `getmany`, which has itself just waited
    that long for a first record (it returns as soon as one arrives). A record that lands during
    the sleep waits for it: up to 20 ms on every hop of an idle or lightly loaded system
    (`python -m bench --steady-rates 10`). A poll that returns early and empty (no assignment yet)
    still sleeps the rest, so an idle loop never spins. Fails loudly if an upgrade changed the
    subscriber this replaces the method of.
    """
    slots = getattr(BatchSubscriber, "__slots__", ())
    if (
        "batch_timeout_ms" not in slots
        or "max_records" not in slots
        or not hasattr(BatchSubscriber, "get_msg")
    ):
        raise RuntimeError("FastStream's BatchSubscriber changed: see shared/kafka.py")
    BatchSubscriber.get_msg = _get_batch_sleeping_only_the_rest  # type: ignore[method-assign]


class KafkaSecurityError(ValueError):
    """The security settings are incomplete (never carries a secret)."""


@dataclass(frozen=True)
class KafkaSecurity:
    """The principal a client authenticates as, and the CA it verifies the broker with."""

    protocol: KafkaSecurityProtocol = "SASL_SSL"
    mechanism: KafkaSaslMechanism = "SCRAM-SHA-512"
    username: str | None = None
    password: SecretStr | None = None
    ca_file: Path | None = None

    def __repr__(self) -> str:  # the dataclass's own would be fine too: SecretStr masks itself
        return f"KafkaSecurity(protocol={self.protocol}, username={self.username}, ca_file={self.ca_file})"

    @classmethod
    def from_settings(
        cls, settings: KafkaSecuritySettings, *, default_principal: str | None = None
    ) -> KafkaSecurity:
        """The settings' principal (or `default_principal`); a password or CA that is not set is
        looked up where the local stack writes them (var/secrets), so that local tools need none."""
        protocol = settings.kafka_security_protocol
        username = settings.kafka_sasl_username or default_principal
        password = settings.kafka_sasl_password
        ca_file = settings.kafka_ssl_ca_file
        if protocol == "PLAINTEXT":
            return cls(protocol="PLAINTEXT")
        local = local_secrets_dir()
        if password is None and username is not None:
            candidate = local / "kafka" / f"{username}.password"
            if candidate.is_file():
                password = read_secret_file(candidate)
        if ca_file is None and (local / "ca.crt").is_file():
            ca_file = local / "ca.crt"
        if username is None or password is None:
            raise KafkaSecurityError(
                "Kafka needs a principal: set KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD or "
                "KAFKA_SASL_PASSWORD_FILE (or KAFKA_SECURITY_PROTOCOL=PLAINTEXT for a broker without auth)"
            )
        return cls(protocol, settings.kafka_sasl_mechanism, username, password, ca_file)

    @classmethod
    def from_environment(cls, *, default_principal: str | None = None) -> KafkaSecurity:
        return cls.from_settings(KafkaSecuritySettings(), default_principal=default_principal)

    def as_principal(self, username: str, password: SecretStr) -> KafkaSecurity:
        return KafkaSecurity(self.protocol, self.mechanism, username, password, self.ca_file)

    def ssl_context(self) -> ssl.SSLContext | None:
        if self.protocol == "PLAINTEXT":
            return None
        context = ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        return context

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments for any aiokafka client (producer, consumer, admin)."""
        if self.protocol == "PLAINTEXT":
            return {"security_protocol": "PLAINTEXT"}
        assert self.username is not None and self.password is not None
        return {
            "security_protocol": "SASL_SSL",
            "sasl_mechanism": self.mechanism,
            "sasl_plain_username": self.username,
            "sasl_plain_password": self.password.get_secret_value(),
            "ssl_context": self.ssl_context(),
        }

    def faststream_security(self) -> BaseSecurity | None:
        if self.protocol == "PLAINTEXT":
            return None
        assert self.username is not None and self.password is not None
        return SASLScram512(
            self.username, self.password.get_secret_value(), ssl_context=self.ssl_context(), use_ssl=True
        )


def client_options(security: KafkaSecurity | None = None) -> dict[str, Any]:
    """aiokafka keyword arguments for `security`, or for the process's environment."""
    return (security or KafkaSecurity.from_environment()).client_options()


def make_broker(
    bootstrap_servers: str,
    *,
    client_id: str,
    security: KafkaSecurity | None = None,
    service: str | None = None,
) -> KafkaBroker:
    """One broker per service process; its producer waits for all replicas and never duplicates.
    FastStream's Prometheus and OpenTelemetry middlewares label it with `service` (default the
    client id). Its batch subscribers poll without FastStream's idle sleep."""
    poll_batches_without_idle_sleep()
    return KafkaBroker(
        bootstrap_servers,
        middlewares=[
            metrics.prometheus_middleware(service or client_id),
            tracing.telemetry_middleware(),
        ],
        security=(security or KafkaSecurity.from_environment()).faststream_security(),
        client_id=client_id,
        acks="all",
        enable_idempotence=True,
        ack_policy=SUBSCRIBER_ACK_POLICY,
        allow_auto_create_topics=False,
        graceful_timeout=15.0,
        # FastStream writes "Received" and "Processed" for every batch, in its own plain-text
        # format: at DEBUG its INFO access logger drops them. Its errors keep their level, and
        # our own lines say what a batch did.
        log_level=logging.DEBUG,
    )


def make_producer(
    bootstrap_servers: str, *, client_id: str, linger_ms: int = 5, security: KafkaSecurity | None = None
) -> AIOKafkaProducer:
    """A raw producer for bytes that must stay byte-exact (dead letters, portal replays)."""
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers,
        **client_options(security),
        client_id=client_id,
        acks="all",
        enable_idempotence=True,
        linger_ms=linger_ms,
    )


def make_admin(
    bootstrap_servers: str,
    *,
    client_id: str = "lotse-admin",
    security: KafkaSecurity | None = None,
    **options: Any,
) -> AIOKafkaAdminClient:
    return AIOKafkaAdminClient(
        bootstrap_servers=bootstrap_servers, client_id=client_id, **client_options(security), **options
    )


async def ensure_topics(
    bootstrap_servers: str, specs: Sequence[TopicSpec], *, security: KafkaSecurity | None = None
) -> list[str]:
    """Create the topics that don't exist yet, and give the existing ones the configuration their
    spec names (a retention shortened since they were made); returns the names created.
    Idempotent."""
    admin = make_admin(bootstrap_servers, client_id="lotse-topics", security=security)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(s.name, num_partitions=s.partitions, replication_factor=1, topic_configs=dict(s.config))
            for s in specs
            if s.name not in existing
        ]
        if missing:
            try:
                await admin.create_topics(missing)
            except TopicAlreadyExistsError:
                pass  # created concurrently by another process: that is what we wanted
            await _wait_until_visible(admin, [topic.name for topic in missing])
        await align_topic_configs(admin, [s for s in specs if s.name in existing and s.config])
        return [topic.name for topic in missing]
    finally:
        await admin.close()


# DescribeConfigs: an entry is (name, value, read_only, is_default, is_sensitive) in version 0 and
# (name, value, read_only, config_source, is_sensitive, synonyms) from version 1 on.
_DYNAMIC_TOPIC_CONFIG = 1


def _set_on_topic(entry: Sequence[Any]) -> bool:
    if len(entry) == 5:
        return not entry[3]
    return bool(entry[3] == _DYNAMIC_TOPIC_CONFIG)


async def topic_configs(admin: AIOKafkaAdminClient, names: Sequence[str]) -> dict[str, dict[str, str]]:
    """The configuration set on each topic itself (not the broker's defaults), by topic."""
    if not names:
        return {}
    responses = await admin.describe_configs(
        [ConfigResource(ConfigResourceType.TOPIC, name) for name in names]
    )
    found: dict[str, dict[str, str]] = {}
    for response in responses:
        for _error, _message, _type, name, entries in response.resources:
            found[name] = {
                entry[0]: entry[1] for entry in entries if _set_on_topic(entry) and entry[1] is not None
            }
    return found


async def align_topic_configs(admin: AIOKafkaAdminClient, specs: Sequence[TopicSpec]) -> list[str]:
    """Set each existing topic's configuration to what its spec names, keeping whatever else was
    set on it (an operator's own settings); returns the topics changed.

    aiokafka has no IncrementalAlterConfigs, and AlterConfigs replaces a topic's whole dynamic
    configuration: so the current one is read, merged and written back, for the topics that
    differ only. A setting changed by hand between the read and the write would be undone."""
    current = await topic_configs(admin, [spec.name for spec in specs])
    changes = []
    for spec in specs:
        have = current.get(spec.name, {})
        wanted = dict(spec.config)
        if any(have.get(name) != value for name, value in wanted.items()):
            changes.append(ConfigResource(ConfigResourceType.TOPIC, spec.name, configs={**have, **wanted}))
    if changes:
        for response in await admin.alter_configs(changes):
            for error_code, message, _type, name in response.resources:
                if error_code:
                    raise RuntimeError(f"altering the configuration of {name} failed: {error_code} {message}")
    return [str(change.name) for change in changes]


async def _wait_until_visible(admin: AIOKafkaAdminClient, names: list[str], timeout: float = 30.0) -> None:
    # CreateTopics returns before every listener's metadata knows the partitions; a client that
    # asks too early (kcat, a fresh consumer) would see an unknown topic.
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        described = await admin.describe_topics(names)
        if all(topic["error_code"] == 0 and topic["partitions"] for topic in described):
            return
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"topics not visible after {timeout:.0f} s: {names}")
        await asyncio.sleep(0.1)


async def delete_topics(
    bootstrap_servers: str, names: Sequence[str], *, security: KafkaSecurity | None = None
) -> None:
    admin = make_admin(bootstrap_servers, client_id="lotse-topics", security=security)
    await admin.start()
    try:
        await admin.delete_topics(list(names))
    finally:
        await admin.close()
