"""No secret value in a log under var/, in `stack env`, in lotse's output or in a repr."""

from __future__ import annotations

import subprocess
import sys

import pytest

from deploy.local.secrets import LocalSecrets
from deploy.local.stack import logs_with_secrets
from shared.kafka import KafkaSecurity
from shared.settings import REPO_ROOT, CommonSettings
from tests.integration.security.conftest import principal

pytestmark = pytest.mark.integration


def values(secrets: LocalSecrets) -> list[str]:
    found = secrets.secret_values()
    assert len(found) >= 11  # six principals, five roles
    return found


def test_no_log_under_var_holds_a_secret(secrets: LocalSecrets) -> None:
    assert values(secrets)
    assert logs_with_secrets() == []


def run(*args: str) -> str:
    done = subprocess.run([sys.executable, *args], cwd=REPO_ROOT, capture_output=True, text=True, check=False)
    return done.stdout + done.stderr


def test_stack_env_names_the_files_and_shows_values_only_when_asked(secrets: LocalSecrets) -> None:
    plain = run("-m", "deploy.local.stack", "env", "--as", "portal")
    assert "KAFKA_SASL_PASSWORD_FILE=" in plain and "KAFKA_SASL_USERNAME=portal" in plain
    assert not [value for value in values(secrets) if value in plain]
    shown = run("-m", "deploy.local.stack", "env", "--as", "portal", "--show-secrets")
    assert secrets.kafka_password("portal").get_secret_value() in shown


def test_lotse_status_shows_no_secret(secrets: LocalSecrets) -> None:
    output = run("-m", "lotse.cli", "status")
    assert "kafka" in output
    assert not [value for value in values(secrets) if value in output]


def test_reprs_mask_the_passwords(secrets: LocalSecrets) -> None:
    security = principal(secrets, "funding")
    password = secrets.kafka_password("funding").get_secret_value()
    settings = CommonSettings(kafka_sasl_username="funding", kafka_sasl_password=password)
    for text in (repr(security), str(security), repr(settings), str(settings.model_dump())):
        assert password not in text
    assert KafkaSecurity.from_settings(settings).password is not None
