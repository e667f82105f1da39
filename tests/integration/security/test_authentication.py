"""No listener takes a client that does not authenticate: plaintext, TLS without SASL, a wrong
password, and on the controller's listener anything without the broker's certificate."""

from __future__ import annotations

import socket
import ssl

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaConnectionError, KafkaError
from pydantic import SecretStr

from deploy.local.config import local_env
from deploy.local.secrets import LocalSecrets
from shared.kafka import KafkaSecurity, make_admin
from tests.integration.security.conftest import principal

pytestmark = pytest.mark.integration


async def connects(admin: AIOKafkaAdminClient) -> bool:
    try:
        await admin.start()
        await admin.list_topics()
    except (KafkaError, OSError):
        return False
    finally:
        await admin.close()
    return True


async def test_the_admin_principal_connects(secrets: LocalSecrets, kafka_bootstrap: str) -> None:
    assert await connects(make_admin(kafka_bootstrap, security=principal(secrets, "admin")))


async def test_a_plaintext_client_is_refused(secrets: LocalSecrets, kafka_bootstrap: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap, request_timeout_ms=5000)
    assert not await connects(admin)


async def test_a_tls_client_without_sasl_is_refused(secrets: LocalSecrets, kafka_bootstrap: str) -> None:
    context = ssl.create_default_context(cafile=str(secrets.ca_cert))
    admin = AIOKafkaAdminClient(
        bootstrap_servers=kafka_bootstrap,
        security_protocol="SSL",
        ssl_context=context,
        request_timeout_ms=5000,
    )
    assert not await connects(admin)


@pytest.mark.parametrize("name", ["admin", "portal", "operator", "nobody"])
async def test_a_wrong_password_is_refused(name: str, secrets: LocalSecrets, kafka_bootstrap: str) -> None:
    wrong = KafkaSecurity(username=name, password=SecretStr("not-the-password"), ca_file=secrets.ca_cert)
    with pytest.raises(KafkaConnectionError):
        admin = make_admin(kafka_bootstrap, security=wrong)
        try:
            await admin.start()
        finally:
            await admin.close()


def test_a_client_that_does_not_trust_the_ca_does_not_connect(secrets: LocalSecrets) -> None:
    port = int(local_env()["KAFKA_PORT"])
    context = ssl.create_default_context()  # the system's trust store knows no local CA
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        pytest.raises(ssl.SSLCertVerificationError),
    ):
        context.wrap_socket(raw, server_hostname="127.0.0.1")


def test_the_controller_listener_wants_the_broker_certificate(secrets: LocalSecrets) -> None:
    """Mutual TLS: a client with the CA but without a certificate of its own gets no answer."""
    port = int(local_env()["KAFKA_CONTROLLER_PORT"])
    context = ssl.create_default_context(cafile=str(secrets.ca_cert))
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        try:
            with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                # TLS 1.3 reports a missing client certificate after the handshake, on first use.
                tls.sendall(b"\x00\x00\x00\x0a" + b"\x00" * 10)
                assert tls.recv(1) == b""
        except (ssl.SSLError, ConnectionResetError):
            pass  # refused during or right after the handshake


def test_the_controller_listener_refuses_plaintext(secrets: LocalSecrets) -> None:
    port = int(local_env()["KAFKA_CONTROLLER_PORT"])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        raw.sendall(b"\x00\x00\x00\x0a" + b"\x00" * 10)  # a Kafka request frame, in the clear
        try:
            answer = raw.recv(64)
        except ConnectionResetError:
            answer = b""
    # Whatever comes back is a TLS alert (0x15) or nothing, never a Kafka response.
    assert answer == b"" or answer[0] == 0x15
