"""`make up REPLICAS=N`: the names, ports and environments of a service's instances."""

from __future__ import annotations

from pathlib import Path

import pytest

from deploy.local import stack
from deploy.local.config import local_env


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, str]:
    monkeypatch.setenv("LOTSE_VAR_DIR", str(tmp_path))
    monkeypatch.setenv("FUNDING_HTTP_PORT", "8082")
    return local_env()


@pytest.mark.parametrize(
    ("instance", "name", "port"), [(0, "funding", 8082), (1, "funding-1", 8092), (2, "funding-2", 8102)]
)
def test_instance_i_is_named_and_listens_ten_ports_further(
    env: dict[str, str], instance: int, name: str, port: int
) -> None:
    assert stack.instance_name("funding", instance) == name
    assert stack.instance_port("funding", env, instance) == port
    own = stack.instance_env(env, "funding", instance)
    assert own["FUNDING_HTTP_PORT"] == str(port)
    assert own["SERVICE_INSTANCE"] == str(instance)
    assert own["KAFKA_SASL_USERNAME"] == "funding"


@pytest.mark.parametrize(("value", "count"), [(None, 1), ("", 1), ("1", 1), ("3", 3), ("9", 9)])
def test_replicas_default_to_one(value: str | None, count: int) -> None:
    assert stack.replicas({} if value is None else {"REPLICAS": value}) == count


@pytest.mark.parametrize("value", ["0", "10", "three", "-1"])
def test_replicas_outside_the_port_step_are_refused(value: str) -> None:
    with pytest.raises(stack.StackError):
        stack.replicas({"REPLICAS": value})


def test_down_and_status_find_every_instance_by_its_pidfile(env: dict[str, str]) -> None:
    run = stack.paths().run
    for name in (
        "funding-10",
        "funding",
        "funding-2",
        "funding-1",
        "fundingx",
        "funding-old",
        "registration",
    ):
        (run / f"{name}.pid").write_text("1\n")
    assert stack.service_instances("funding") == ["funding", "funding-1", "funding-2", "funding-10"]
