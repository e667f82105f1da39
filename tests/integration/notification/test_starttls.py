"""SMTP over STARTTLS: the sender upgrades whenever the server offers it (SMTP_STARTTLS=auto),
verifies the server's certificate against SMTP_CA_FILE, and refuses a server it cannot verify.
Against the project's own SMTP sink (aiosmtpd) with a certificate of a CA made for the test."""

from __future__ import annotations

import socket
import ssl
from pathlib import Path

import aiosmtplib
import pytest

from deploy.local.secrets import LocalSecrets
from deploy.local.smtp_sink import MailSink, start_sink
from services.notification.sender import SmtpConnections
from services.notification.settings import NotificationSettings

pytestmark = pytest.mark.integration

MESSAGE = b"From: a@example.org\r\nTo: b@example.org\r\nSubject: TLS\r\n\r\nHallo\r\n"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def stack_secrets(folder: Path) -> LocalSecrets:
    secrets = LocalSecrets(folder)
    secrets.ensure(kafka_bootstrap="127.0.0.1:9")
    return secrets


def settings(port: int, **changes: object) -> NotificationSettings:
    return NotificationSettings(smtp_host="127.0.0.1", smtp_port=port, **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize("starttls", ["auto", "true"])
async def test_the_sender_upgrades_to_tls_and_verifies_the_certificate(tmp_path: Path, starttls: str) -> None:
    secrets = stack_secrets(tmp_path / "secrets")
    port = free_port()
    sink = start_sink("127.0.0.1", port, tmp_path / "mail", secrets.broker_pem)
    try:
        connections = SmtpConnections(settings(port, smtp_starttls=starttls, smtp_ca_file=secrets.ca_cert))
        await connections.send("a@example.org", "b@example.org", MESSAGE)
        handler = sink.handler
        assert isinstance(handler, MailSink)
        assert (handler.stored, handler.stored_over_tls) == (1, 1)
    finally:
        sink.stop()


async def test_a_server_whose_certificate_does_not_verify_gets_nothing(tmp_path: Path) -> None:
    theirs = stack_secrets(tmp_path / "theirs")
    ours = stack_secrets(tmp_path / "ours")  # another CA
    port = free_port()
    sink = start_sink("127.0.0.1", port, tmp_path / "mail", theirs.broker_pem)
    try:
        connections = SmtpConnections(settings(port, smtp_ca_file=ours.ca_cert))
        with pytest.raises((ssl.SSLError, aiosmtplib.SMTPException), match="CERTIFICATE_VERIFY_FAILED"):
            await connections.send("a@example.org", "b@example.org", MESSAGE)
        handler = sink.handler
        assert isinstance(handler, MailSink)
        assert handler.stored == 0
    finally:
        sink.stop()


async def test_without_an_offer_auto_delivers_in_plain_and_true_refuses(tmp_path: Path) -> None:
    port = free_port()
    sink = start_sink("127.0.0.1", port, tmp_path / "mail")
    try:
        await SmtpConnections(settings(port)).send("a@example.org", "b@example.org", MESSAGE)
        handler = sink.handler
        assert isinstance(handler, MailSink)
        assert (handler.stored, handler.stored_over_tls) == (1, 0)
        with pytest.raises(aiosmtplib.SMTPException, match="STARTTLS"):
            await SmtpConnections(settings(port, smtp_starttls="true")).send(
                "a@example.org", "b@example.org", MESSAGE
            )
        assert handler.stored == 1
    finally:
        sink.stop()


@pytest.mark.parametrize(
    ("given", "start_tls"), [("auto", None), ("true", True), ("1", True), ("false", False), ("no", False)]
)
def test_smtp_starttls_words(given: str, start_tls: bool | None) -> None:
    assert settings(1025, smtp_starttls=given).smtp_start_tls is start_tls
