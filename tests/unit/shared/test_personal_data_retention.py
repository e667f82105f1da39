"""Where personal data is kept short: the topics' retention, and what PostgreSQL's log leaves out."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from deploy.k8s.catalogue import contract_topics
from deploy.local.stack import PG_LOG_PRIVACY
from shared.settings import REPO_ROOT
from shared.topics import (
    DEFAULT_PERSONAL_DATA_RETENTION_HOURS,
    HOUR_MS,
    all_topics,
    carries_personal_data,
    personal_data_retention_hours,
)


@pytest.mark.parametrize(
    ("environ", "hours"),
    [
        ({}, DEFAULT_PERSONAL_DATA_RETENTION_HOURS),
        ({"KAFKA_PERSONAL_DATA_RETENTION_HOURS": ""}, DEFAULT_PERSONAL_DATA_RETENTION_HOURS),
        ({"KAFKA_PERSONAL_DATA_RETENTION_HOURS": "24"}, 24),
        ({"KAFKA_PERSONAL_DATA_RETENTION_HOURS": " 1 "}, 1),
    ],
)
def test_the_retention_is_read_in_hours(environ: dict[str, str], hours: int) -> None:
    assert personal_data_retention_hours(environ) == hours


@pytest.mark.parametrize("value", ["0", "-3", "1.5", "a week"])
def test_a_retention_that_is_no_whole_positive_number_of_hours_is_refused(value: str) -> None:
    with pytest.raises(ValueError, match="KAFKA_PERSONAL_DATA_RETENTION_HOURS"):
        personal_data_retention_hours({"KAFKA_PERSONAL_DATA_RETENTION_HOURS": value})


@pytest.mark.parametrize(
    ("topic", "personal"),
    [
        ("portal.registrations", True),
        ("registration.events", True),
        ("notification.events", True),
        ("operations.commands", True),
        ("portal.seminars.dlq", True),
        ("funding.decisions.dlq", True),
        ("portal.seminars", False),
        ("funding.decisions", False),
        ("operations.results", False),
        ("outbox.registration.relay-state", False),
    ],
)
def test_which_topics_carry_personal_data(topic: str, personal: bool) -> None:
    assert carries_personal_data(topic) is personal


def test_every_topic_with_personal_data_is_created_with_its_retention_and_no_other() -> None:
    specs = all_topics("p.", personal_data_retention_hours=5)
    for spec in specs:
        retention = dict(spec.config).get("retention.ms")
        assert spec.personal_data is carries_personal_data(spec.name.removeprefix("p."))
        assert retention == (str(5 * HOUR_MS) if spec.personal_data else None), spec.name
        # Segments roll within a seventh of it (at least an hour), so whole segments age out in time.
        assert dict(spec.config).get("segment.ms") == (str(HOUR_MS) if spec.personal_data else None)
    week = dict(next(s for s in all_topics(personal_data_retention_hours=168) if s.personal_data).config)
    assert week == {"retention.ms": str(168 * HOUR_MS), "segment.ms": str(24 * HOUR_MS)}
    # The Kubernetes topics follow the same list.
    assert {t.name for t in contract_topics() if t.personal_data} == {
        s.name for s in all_topics() if s.personal_data
    }


def test_the_local_cluster_and_the_kubernetes_cluster_keep_personal_data_out_of_the_server_log() -> None:
    wanted = dict(PG_LOG_PRIVACY)
    assert wanted["log_error_verbosity"] == "terse"
    assert wanted["log_min_error_statement"] == "panic"
    assert wanted["log_statement"] == "none"
    assert wanted["log_parameter_max_length_on_error"] == "0"
    cluster = next(
        document
        for document in yaml.safe_load_all(
            Path(REPO_ROOT / "deploy/k8s/base/postgres/cluster.yaml").read_text()
        )
        if document["kind"] == "Cluster"
    )
    parameters = cluster["spec"]["postgresql"]["parameters"]
    assert {name: parameters.get(name) for name in wanted} == wanted
    compose = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
    command = compose["services"]["postgres"]["command"]
    assert {f"{name}={value}" for name, value in wanted.items()} <= set(command)
