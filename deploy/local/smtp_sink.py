"""An SMTP sink for local runs and tests: every accepted message becomes one .eml file.

With SMTP_SINK_TLS_CERT (a PEM file holding the key and the certificate chain; the local stack
gives it the certificate its CA signed for 127.0.0.1) the sink offers STARTTLS, so the local path
exercises the upgrade the service does by default (SMTP_STARTTLS=auto).

Faults for reliability tests come from `<MAIL_DIR>/.faults.json`, re-read on every command:
  {"tempfail_until": <unix time>, "tempfail_code": 421 | 451,
   "reject_recipients": ["address", ...],
   "drop_data_until": <unix time>}
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import ssl
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

FAULTS_FILE = ".faults.json"

# "<local@domain>" with dot-atoms on both sides, then the parameters: the form every client of
# this sink sends in MAIL FROM and RCPT TO.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_DOT_ATOM = rf"{_ATEXT}(?:\.{_ATEXT})*"
_PLAIN_ANGLE_ADDR = re.compile(rf"<({_DOT_ATOM}@{_DOT_ATOM})>(?: +([!-~][ !-~]*))?")


class PlainAddressSMTP(SMTP):
    """aiosmtpd's server, with a fast path for the plain addresses of MAIL FROM and RCPT TO.

    aiosmtpd parses each address with the email package's header parser and defines a typing
    Protocol class on every call: over a quarter of the sink's CPU per email, which the benchmark's
    machine then lacks for the services. A plain `<addr-spec>` gets the same answer from one
    regular expression (tests/unit/deploy/test_smtp_sink.py holds the two side by side); every
    other form still goes through aiosmtpd's own parser.
    """

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        plain = _PLAIN_ANGLE_ADDR.fullmatch(arg)
        limit = self.local_part_limit
        if plain is None or (limit and len(plain[1].rpartition("@")[0]) > limit):
            return super()._getaddr(arg)
        return plain[1], plain[2] or ""


class SinkController(Controller):
    def factory(self) -> SMTP:
        return PlainAddressSMTP(self.handler, **self.SMTP_kwargs)


class MailSink:
    """aiosmtpd handler: stores the DATA bytes exactly as received, atomically."""

    def __init__(self, mail_dir: Path) -> None:
        self.mail_dir = mail_dir
        self.mail_dir.mkdir(parents=True, exist_ok=True)
        self.stored = 0
        self.stored_over_tls = 0
        self._faults_file = str(mail_dir / FAULTS_FILE)
        self._faults_seen: tuple[int, int, int] | None = None
        self._faults: dict[str, Any] = {}

    def faults(self) -> dict[str, Any]:
        """The fault file as it is now; read again only when it changed (a stat per command is
        much cheaper than a read, and the sink answers several commands per email)."""
        try:
            stat = os.stat(self._faults_file)
        except FileNotFoundError:
            self._faults_seen, self._faults = None, {}
            return self._faults
        seen = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        if seen != self._faults_seen:
            try:
                with open(self._faults_file, encoding="utf-8") as file:
                    loaded = json.load(file)
            except (FileNotFoundError, ValueError):
                return {}  # half written: read it again at the next command
            self._faults_seen, self._faults = seen, loaded if isinstance(loaded, dict) else {}
        return self._faults

    def _tempfail(self) -> str | None:
        faults = self.faults()
        if time.time() < float(faults.get("tempfail_until", 0)):
            code = int(faults.get("tempfail_code", 451))
            return f"{code} 4.3.2 Service temporarily unavailable, try again later"
        return None

    async def handle_MAIL(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope, address: str, mail_options: list[str]
    ) -> str:
        refusal = self._tempfail()
        if refusal is not None:
            return refusal
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        if address.lower() in {a.lower() for a in self.faults().get("reject_recipients", [])}:
            return "550 5.1.1 Mailbox unavailable"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        if time.time() < float(self.faults().get("drop_data_until", 0)):
            # Hang up in the middle of the transaction, as a crashing relay would.
            if isinstance(server.transport, asyncio.Transport):
                server.transport.abort()
            return "421 4.4.2 Connection dropped"
        content = envelope.original_content or b""
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        final = self.mail_dir / f"{stamp}-{uuid.uuid4().hex}.eml"
        partial = final.with_suffix(".part")
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            remaining = memoryview(content)
            while remaining:
                remaining = remaining[os.write(descriptor, remaining) :]
        finally:
            os.close(descriptor)
        os.replace(partial, final)
        self.stored += 1
        if session.ssl is not None:
            self.stored_over_tls += 1
        return "250 Message accepted for delivery"


def server_tls_context(cert_file: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file)
    return context


def start_sink(host: str, port: int, mail_dir: Path, tls_cert: Path | None = None) -> Controller:
    """The sink on host:port; with tls_cert it offers STARTTLS (not required: a plain client may
    still deliver, as to a real relay that only offers it)."""
    controller = SinkController(
        MailSink(mail_dir),
        hostname=host,
        port=port,
        decode_data=False,
        tls_context=server_tls_context(tls_cert) if tls_cert is not None else None,
    )
    controller.start()
    return controller


def main() -> None:
    host = os.environ.get("SMTP_HOST", "127.0.0.1")
    port = int(os.environ.get("SMTP_PORT", "1025"))
    mail_dir = Path(os.environ.get("MAIL_DIR", "var/mail"))
    tls_cert = os.environ.get("SMTP_SINK_TLS_CERT")
    controller = start_sink(host, port, mail_dir, Path(tls_cert) if tls_cert else None)
    stop = asyncio.Event()
    loop = asyncio.new_event_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    offers = ", offering STARTTLS" if tls_cert else ""
    print(f"SMTP sink on {host}:{port}{offers}, storing in {mail_dir}", flush=True)
    try:
        loop.run_until_complete(stop.wait())
    finally:
        controller.stop()
        loop.close()


if __name__ == "__main__":
    main()
