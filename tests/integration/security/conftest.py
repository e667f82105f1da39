"""The local stack's principals and roles, with their passwords from var/secrets."""

from __future__ import annotations

import pytest

from deploy.local.config import var_dir
from deploy.local.secrets import LocalSecrets, local_secrets
from shared.kafka import KafkaSecurity
from tests.support.infra import Infrastructure


@pytest.fixture(scope="session")
def secrets(infra: Infrastructure) -> LocalSecrets:
    found = local_secrets(var_dir())
    if KafkaSecurity.from_environment().protocol == "PLAINTEXT" or not found.ca_cert.exists():
        pytest.skip("the trust boundary is tested against the local stack (`make test`), with its secrets")
    return found


def principal(secrets: LocalSecrets, name: str) -> KafkaSecurity:
    return KafkaSecurity(username=name, password=secrets.kafka_password(name), ca_file=secrets.ca_cert)
