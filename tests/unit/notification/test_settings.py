"""The SMTP and mail settings come from the environment variables the issue names."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.notification.settings import LEASE_RENEWALS_PER_LEASE, NotificationSettings
from shared.program import PROGRAMS_DIR


def test_smtp_and_sender_settings_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "SMTP_HOST": "smtp.example.org",
        "SMTP_PORT": "2525",
        "SMTP_USERNAME": "lotse",
        "SMTP_PASSWORD": "geheim",
        "SMTP_STARTTLS": "true",
        "MAIL_FROM": "Förderstelle Nord <foerderung@example.org>",
        "NOTIFICATION_MAX_ATTEMPTS": "5",
        "NOTIFICATION_MAX_PERMANENT_ATTEMPTS": "2",
    }.items():
        monkeypatch.setenv(name, value)
    settings = NotificationSettings()
    assert (settings.smtp_host, settings.smtp_port, settings.smtp_username) == (
        "smtp.example.org",
        2525,
        "lotse",
    )
    assert settings.smtp_password is not None and settings.smtp_password.get_secret_value() == "geheim"
    assert "geheim" not in repr(settings)
    assert settings.smtp_starttls and not settings.smtp_tls
    assert settings.sender.display_name == "Förderstelle Nord"
    assert settings.sender.addr_spec == "foerderung@example.org"
    assert settings.office.sender == settings.sender
    assert (settings.notification_max_attempts, settings.notification_max_permanent_attempts) == (5, 2)


def test_implicit_tls_is_a_setting_of_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SMTP_STARTTLS", raising=False)
    monkeypatch.setenv("SMTP_TLS", "true")
    settings = NotificationSettings()
    # TLS from the first byte: no STARTTLS on top of it.
    assert settings.smtp_tls and settings.smtp_start_tls is False


def test_starttls_and_implicit_tls_together_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMTP_TLS", "true")
    monkeypatch.setenv("SMTP_STARTTLS", "true")
    with pytest.raises(ValueError, match="SMTP_STARTTLS=true and SMTP_TLS"):
        NotificationSettings()


def test_a_permanent_failure_parks_at_the_first_attempt_unless_configured_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("NOTIFICATION_MAX_PERMANENT_ATTEMPTS", raising=False)
    assert NotificationSettings().notification_max_permanent_attempts == 1


@pytest.mark.parametrize("lease", [1.0, 10.0, 600.0])
def test_a_live_sender_renews_its_lease_several_times_before_it_could_run_out(lease: float) -> None:
    """The sender renews the leases of its unrecorded emails: two renewals may fail before another
    sender may take an email whose delivery is still alive (docs/adr/0004, 0017)."""
    settings = NotificationSettings(notification_sender_lease_seconds=lease)
    assert settings.sender_lease_seconds == lease
    assert settings.sender_lease_renew_seconds * LEASE_RENEWALS_PER_LEASE <= lease
    assert LEASE_RENEWALS_PER_LEASE >= 3


def test_a_crashed_senders_emails_are_taken_over_within_15_seconds_by_default() -> None:
    settings = NotificationSettings()
    assert settings.sender_lease_seconds + settings.sender_poll_interval_seconds <= 15


MAIL_VARIABLES = ("MAIL_FROM", "MAIL_OFFICE_NAME", "MAIL_OFFICE_ORGANISATION", "MAIL_OFFICE_ADDRESS")


@pytest.mark.parametrize(
    ("programme", "mail_from", "organisation"),
    [
        (
            "niedersachsen",
            "digitallotsen@nsi-hannover.de",
            "Niedersächsisches Studieninstitut für kommunale Verwaltung e. V.",
        ),
        ("bayern", "digitallotsen@bvs.example", "Bayerische Verwaltungsschule"),
        ("baden-wuerttemberg", "digitallotsen@digitalakademie-bw.example", "Digitalakademie@bw"),
    ],
)
def test_the_office_is_the_programmes_unless_a_deployment_sets_it(
    monkeypatch: pytest.MonkeyPatch, programme: str, mail_from: str, organisation: str
) -> None:
    for name in MAIL_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FUNDING_PROGRAM_FILE", str(PROGRAMS_DIR / f"{programme}.toml"))
    office = NotificationSettings().office
    assert office.sender.addr_spec == mail_from
    assert office.name == "Programmbüro Digitallotsen"
    assert office.organisation == organisation
    assert office.address_lines == ()

    monkeypatch.setenv("MAIL_OFFICE_ORGANISATION", "Förderstelle Nord")
    monkeypatch.setenv("MAIL_OFFICE_ADDRESS", "Am Markt 1\\n12345 Musterstadt")
    office = NotificationSettings().office
    assert office.organisation == "Förderstelle Nord"
    assert office.address_lines == ("Am Markt 1", "12345 Musterstadt")
    assert office.sender.addr_spec == mail_from  # field by field: the address stays the file's
    assert office.name == "Programmbüro Digitallotsen"


def test_a_programme_file_without_letters_is_refused_at_startup(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    text = (PROGRAMS_DIR / "bayern.toml").read_text("utf-8")
    without_letters = text[: text.index("[letters]")]
    path = tmp_path / "no-letters.toml"
    path.write_text(without_letters, "utf-8")
    monkeypatch.setenv("FUNDING_PROGRAM_FILE", str(path))
    settings = NotificationSettings()  # lotse reads the settings without the letters
    with pytest.raises(ValueError, match=r"\[letters\]"):
        _ = settings.office
