"""Who may command: only `operator` writes operations.commands; a forged command from another
principal (the portals) is refused by the broker, whatever it says."""

from __future__ import annotations

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import TopicAuthorizationFailedError

from deploy.local.config import var_dir
from deploy.local.secrets import local_secrets
from lotse.commands import new_command
from shared.commands import CLOSE_PERIOD, command_envelope, command_key
from shared.kafka import KafkaSecurity, client_options
from shared.topics import Topics

pytestmark = pytest.mark.integration


def principal(name: str) -> KafkaSecurity:
    secrets = local_secrets(var_dir())
    if KafkaSecurity.from_environment().protocol == "PLAINTEXT" or not secrets.ca_cert.exists():
        pytest.skip("the trust boundary is tested against the local stack (`make test`), with its secrets")
    return KafkaSecurity(username=name, password=secrets.kafka_password(name), ca_file=secrets.ca_cert)


async def write_command(bootstrap: str, topics: Topics, as_principal: str) -> None:
    command = new_command(CLOSE_PERIOD, "gefälscht", period_id="2023")
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", **client_options(principal(as_principal))
    )
    await producer.start()
    try:
        await producer.send_and_wait(
            topics.operations_commands,
            command_envelope(CLOSE_PERIOD, command).model_dump_json().encode(),
            key=command_key(command).encode(),
        )
    finally:
        await producer.stop()


async def test_a_command_forged_by_the_portal_is_refused_by_the_broker(
    kafka_bootstrap: str, topics: Topics
) -> None:
    with pytest.raises(TopicAuthorizationFailedError):
        await write_command(kafka_bootstrap, topics, "portal")


@pytest.mark.parametrize("service", ["registration", "funding", "notification"])
async def test_no_service_may_command_another(kafka_bootstrap: str, topics: Topics, service: str) -> None:
    with pytest.raises(TopicAuthorizationFailedError):
        await write_command(kafka_bootstrap, topics, service)


async def test_the_operator_may_command(kafka_bootstrap: str, topics: Topics) -> None:
    await write_command(kafka_bootstrap, topics, "operator")
