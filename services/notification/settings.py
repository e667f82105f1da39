"""Settings of the notification service (environment variables in validation_alias)."""

from __future__ import annotations

from email.headerregistry import Address
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, PrivateAttr, SecretStr, field_validator, model_validator

from services.notification.compose import Office, sender_address
from services.notification.templates import ProgrammeWording
from shared.program import DEFAULT_PROGRAM_FILE, Program, load_program
from shared.settings import CommonSettings

# Round trips of one SMTP session at most: greeting, EHLO, STARTTLS, EHLO again, AUTH (up to three
# exchanges), MAIL, RCPT, DATA, the message, QUIT. aiosmtplib's timeout holds per round trip.
# How long the sender keeps trying to record a delivery's outcome while the database is away.
RECORD_GIVE_UP_SECONDS = 60.0
# The sender claims a round of emails at once and delivers them over a few sessions: an email
# not started this long after its claim is handed back untried, so that it is never sent long
# after the claim that chose it.
SENDER_START_WINDOW_SECONDS = 10.0
# A live sender renews the leases of its unrecorded emails this many times per lease: two renewals
# may fail (a slow database) before another sender may take an email that is still being delivered.
LEASE_RENEWALS_PER_LEASE = 3


# Boolean spellings of SMTP_STARTTLS, for deployments that set it the way it used to be.
_STARTTLS_WORDS = {"1": "true", "yes": "true", "on": "true", "0": "false", "no": "false", "off": "false"}


class NotificationSettings(CommonSettings):
    database_url: str = Field(
        "postgresql://notification@127.0.0.1:5432/notification",
        validation_alias="NOTIFICATION_DATABASE_URL",
    )
    database_password: SecretStr | None = Field(None, validation_alias="NOTIFICATION_DATABASE_PASSWORD")
    # notification.events is on no one's decision or letter path, and at low load its relay
    # committed one Kafka transaction per email (half the broker's transactions at 10/s).
    outbox_linger_ms: int = Field(250, ge=0, le=1000, validation_alias="OUTBOX_LINGER_MS")
    # Nobody waits on the letter consumers' committed lag, and with two topics they made most of
    # the broker's offset commits at low load: one commit per quarter second each (ADR 0027).
    consumer_commit_interval_ms: int = Field(
        250, ge=0, le=10_000, validation_alias="CONSUMER_COMMIT_INTERVAL_MS"
    )
    http_port: int = Field(8083, validation_alias="NOTIFICATION_HTTP_PORT")
    # Erase a registration's personal data (and its letters) this many days after its seminar
    # ended; drop a delivered letter's bytes this many days after delivery (ADR 0018).
    personal_data_retention_days: int = Field(365, ge=0, validation_alias="PERSONAL_DATA_RETENTION_DAYS")
    letter_retention_days: int = Field(90, ge=0, validation_alias="LETTER_RETENTION_DAYS")
    # How often the retention schedule runs (one instance at a time).
    retention_interval_seconds: float = Field(3600.0, gt=0, validation_alias="RETENTION_INTERVAL_SECONDS")

    smtp_host: str = Field("127.0.0.1", validation_alias="SMTP_HOST")
    smtp_port: int = Field(1025, ge=1, le=65535, validation_alias="SMTP_PORT")
    smtp_username: str | None = Field(None, validation_alias="SMTP_USERNAME")
    smtp_password: SecretStr | None = Field(None, validation_alias="SMTP_PASSWORD")
    # auto: STARTTLS whenever the server offers it; true: required; false: never.
    smtp_starttls: Literal["auto", "true", "false"] = Field("auto", validation_alias="SMTP_STARTTLS")
    smtp_tls: bool = Field(False, validation_alias="SMTP_TLS")
    # The CA that verifies the SMTP server's certificate; unset: the system's trust store.
    smtp_ca_file: Path | None = Field(None, validation_alias="SMTP_CA_FILE")
    smtp_timeout_seconds: float = Field(30.0, gt=0, validation_alias="SMTP_TIMEOUT_SECONDS")
    notification_sender_lease_seconds: float = Field(
        10.0, ge=1.0, validation_alias="NOTIFICATION_SENDER_LEASE_SECONDS"
    )
    notification_delivery_deadline_seconds: float = Field(
        60.0, gt=0, validation_alias="NOTIFICATION_DELIVERY_DEADLINE_SECONDS"
    )

    # The programme whose letters these are (the same file as funding's): its `[letters]` table
    # gives the office and every word about the Land, the amounts, the places and its rules.
    program_file: Path = Field(DEFAULT_PROGRAM_FILE, validation_alias="FUNDING_PROGRAM_FILE")
    # The office that signs: the programme file's unless a deployment sets these (field by field).
    mail_from: str | None = Field(None, validation_alias="MAIL_FROM")
    mail_office_name: str | None = Field(None, validation_alias="MAIL_OFFICE_NAME")
    mail_office_organisation: str | None = Field(None, validation_alias="MAIL_OFFICE_ORGANISATION")
    # The office's postal address, "\n" between lines; set (even empty), it replaces the file's.
    mail_office_address: str | None = Field(None, validation_alias="MAIL_OFFICE_ADDRESS")
    # Extra closing lines under the office name, e.g. a phone number; "\n" separates lines.
    mail_signature: str = Field("", validation_alias="MAIL_SIGNATURE")

    # Temporary failures are retried for ever (never parked); from this many attempts on, each
    # further failure of an email is logged as an error ("email still undelivered").
    notification_max_attempts: int = Field(8, ge=1, validation_alias="NOTIFICATION_MAX_ATTEMPTS")
    # A 5xx reply or a refused address: how many attempts before the email is parked.
    notification_max_permanent_attempts: int = Field(
        1, ge=1, validation_alias="NOTIFICATION_MAX_PERMANENT_ATTEMPTS"
    )
    notification_backoff_base_seconds: float = Field(
        30.0, gt=0, validation_alias="NOTIFICATION_BACKOFF_BASE_SECONDS"
    )
    notification_backoff_max_seconds: float = Field(
        3600.0, gt=0, validation_alias="NOTIFICATION_BACKOFF_MAX_SECONDS"
    )
    sender_batch_size: int = Field(50, ge=1, validation_alias="NOTIFICATION_SENDER_BATCH_SIZE")
    sender_concurrency: int = Field(4, ge=1, validation_alias="NOTIFICATION_SENDER_CONCURRENCY")
    sender_poll_interval_seconds: float = Field(
        1.0, gt=0, validation_alias="NOTIFICATION_SENDER_POLL_INTERVAL_SECONDS"
    )

    # Decisions before letters (services/notification/priority.py): while registration's and
    # funding's consumers lag by this many records or more, the letter consumers and the sender
    # wait before each batch or round (0: never), at most this long each time; the lag is read
    # this often.
    yield_lag: int = Field(200, ge=0, validation_alias="NOTIFICATION_YIELD_LAG")
    yield_max_seconds: float = Field(5.0, gt=0, validation_alias="NOTIFICATION_YIELD_MAX_SECONDS")
    yield_check_seconds: float = Field(0.5, gt=0, validation_alias="NOTIFICATION_YIELD_CHECK_SECONDS")

    _program: Program | None = PrivateAttr(None)
    _wording: ProgrammeWording | None = PrivateAttr(None)

    @field_validator("mail_from")
    @classmethod
    def _mail_from_is_one_address(cls, value: str | None) -> str | None:
        if value is not None:
            sender_address(value)
        return value

    @field_validator("smtp_starttls", mode="before")
    @classmethod
    def _starttls_words(cls, value: Any) -> Any:
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, str):
            word = value.strip().lower()
            return {
                "1": "true",
                "yes": "true",
                "on": "true",
                "0": "false",
                "no": "false",
                "off": "false",
            }.get(word, word)
        return value

    @model_validator(mode="after")
    def _one_kind_of_tls(self) -> NotificationSettings:
        if self.smtp_starttls == "true" and self.smtp_tls:
            raise ValueError("SMTP_STARTTLS=true and SMTP_TLS exclude each other: pick one")
        return self

    @property
    def smtp_start_tls(self) -> bool | None:
        """aiosmtplib's start_tls: None upgrades whenever the server offers STARTTLS."""
        if self.smtp_tls:
            return False  # already TLS from the first byte
        return {"auto": None, "true": True, "false": False}[self.smtp_starttls]

    @property
    def program(self) -> Program:
        """The programme file, read once when first needed (the service builds its letter writer
        at startup, so a file without [letters] stops it before any letter; lotse reads these
        settings without needing the file)."""
        if self._program is None:
            program = load_program(self.program_file)
            self._wording = ProgrammeWording.of(program)
            sender_address(self.mail_from or program.letter_texts().office.mail_from)
            self._program = program
        return self._program

    @property
    def wording(self) -> ProgrammeWording:
        program = self.program
        return self._wording if self._wording is not None else ProgrammeWording.of(program)

    @property
    def effective_mail_from(self) -> str:
        return self.mail_from if self.mail_from is not None else self.program.letter_texts().office.mail_from

    @property
    def sender(self) -> Address:
        return sender_address(self.effective_mail_from)

    @property
    def office(self) -> Office:
        defaults = self.program.letter_texts().office
        address_lines = (
            tuple(defaults.address_lines)
            if self.mail_office_address is None
            else _lines(self.mail_office_address)
        )
        return Office(
            sender=self.sender,
            name=self.mail_office_name if self.mail_office_name is not None else defaults.name,
            organisation=(
                self.mail_office_organisation
                if self.mail_office_organisation is not None
                else defaults.organisation
            ),
            signature_lines=_lines(self.mail_signature),
            address_lines=address_lines,
        )

    @property
    def sender_delivery_deadline_seconds(self) -> float:
        """The longest one delivery may take over SMTP; past it, it counts as a temporary failure.

        A whole-delivery cap rather than a sum of per-command timeouts: the lease follows from it,
        and the lease is how long a crashed sender's emails wait before another sender takes them.
        """
        return self.notification_delivery_deadline_seconds

    @property
    def sender_lease_seconds(self) -> float:
        """How long a claimed email is hidden from other senders without a renewal.

        The sender renews the leases of its round until the round is recorded
        (`sender_lease_renew_seconds`), so a live delivery keeps its email however long it takes,
        and a crashed sender's emails are taken over this long after its last renewal
        (docs/adr/0004, docs/adr/0017).
        """
        return self.notification_sender_lease_seconds

    @property
    def sender_lease_renew_seconds(self) -> float:
        return self.notification_sender_lease_seconds / LEASE_RENEWALS_PER_LEASE


def _lines(value: str) -> tuple[str, ...]:
    """The non-blank lines of a setting, "\\n" (as written in an env file) or a real line break."""
    return tuple(line for line in value.replace("\\n", "\n").splitlines() if line.strip())
