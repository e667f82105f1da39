"""docker-compose.yml cannot run on a machine without a Docker engine, so its structure is checked
against the local topology: the same components, ports, environment and commands."""

from __future__ import annotations

import importlib
import re
from typing import Any

import pytest
import yaml
from pydantic_settings import BaseSettings

from deploy.local.config import DEFAULT_HTTP_PORTS, SERVICES
from shared.program import DEFAULT_PROGRAM_FILE
from shared.settings import REPO_ROOT, CommonSettings

COMPOSE = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
DOCKERFILE = REPO_ROOT / "deploy" / "Dockerfile"
# Given to every service so that the whole stack runs one programme (issue 19), also to those that
# do not read it (yet): registration.
STACK_WIDE = {"FUNDING_PROGRAM_FILE"}


def settings_class(service: str) -> type[BaseSettings]:
    module = importlib.import_module(f"services.{service}.settings")
    found = [
        value
        for value in vars(module).values()
        if isinstance(value, type) and issubclass(value, CommonSettings) and value is not CommonSettings
    ]
    assert len(found) == 1, f"services.{service}.settings should define one settings class"
    return found[0]


def aliases(model: type[BaseSettings]) -> set[str]:
    return {str(field.validation_alias) for field in model.model_fields.values() if field.validation_alias}


def published(service: dict[str, Any]) -> dict[int, str]:
    """Container port -> host binding, e.g. {9092: "127.0.0.1:9092"}."""
    bindings = {}
    for entry in service.get("ports", []):
        host_ip, host_port, container_port = entry.split(":")
        bindings[int(container_port)] = f"{host_ip}:{host_port}"
    return bindings


def test_compose_has_the_local_topology() -> None:
    assert set(COMPOSE["services"]) == {
        "kafka",
        "postgres",
        "mailpit",
        "topics",
        "prometheus",
        "grafana",
        *SERVICES,
    }
    assert COMPOSE["services"]["kafka"]["image"].startswith("apache/kafka:4.")
    assert COMPOSE["services"]["postgres"]["image"].startswith("postgres:")
    assert COMPOSE["services"]["mailpit"]["image"].startswith("axllent/mailpit")


def broker_properties() -> dict[str, str]:
    text = (REPO_ROOT / "deploy" / "compose" / "kafka.properties").read_text()
    pairs = [line.split("=", 1) for line in text.splitlines() if line.strip() and not line.startswith("#")]
    return {key: value for key, value in pairs}


def test_kafka_runs_kraft_as_broker_and_controller_without_auto_created_topics() -> None:
    env = COMPOSE["services"]["kafka"]["environment"]
    properties = broker_properties()
    assert properties["process.roles"] == "broker,controller"
    assert properties["auto.create.topics.enable"] == "false"
    heap = re.search(r"-Xmx(\d+)m", env["KAFKA_HEAP_OPTS"])
    assert heap is not None and int(heap.group(1)) <= 512


def test_kafka_authenticates_and_authorises_every_client_as_the_local_stack_does() -> None:
    compose = broker_properties()
    local = (REPO_ROOT / "deploy" / "local" / "kafka" / "server.properties").read_text()
    assert compose["listener.security.protocol.map"] == "CLIENT:SASL_SSL,CONTROLLER:SSL"
    assert compose["listener.name.controller.ssl.client.auth"] == "required"
    assert compose["sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    assert compose["allow.everyone.if.no.acl.found"] == "false"
    assert compose["authorizer.class.name"].endswith("StandardAuthorizer")
    assert "PLAINTEXT" not in compose["listener.security.protocol.map"]
    for key in ("listener.security.protocol.map", "allow.everyone.if.no.acl.found", "authorizer.class.name"):
        assert f"{key}={compose[key]}" in local
    # The broker's password comes from its Docker secret, never from the file itself.
    assert (
        "${dir:/run/secrets:kafka_admin_password}"
        in compose["listener.name.client.scram-sha-512.sasl.jaas.config"]
    )
    start = (REPO_ROOT / "deploy" / "compose" / "kafka-start.sh").read_text()
    assert "--add-scram" in start


def test_infrastructure_ports_match_the_local_stack_and_bind_to_loopback() -> None:
    services = COMPOSE["services"]
    assert published(services["kafka"]) == {9092: "127.0.0.1:9092"}
    assert published(services["postgres"]) == {5432: "127.0.0.1:5432"}
    assert published(services["mailpit"])[1025] == "127.0.0.1:1025"
    assert published(services["prometheus"]) == {9090: "127.0.0.1:9090"}
    assert published(services["grafana"]) == {3000: "127.0.0.1:3000"}
    for service in services.values():
        assert all(binding.startswith("127.0.0.1:") for binding in published(service).values())


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_runs_from_the_one_dockerfile_with_its_own_command(service: str) -> None:
    spec = COMPOSE["services"][service]
    assert spec["build"] == {"context": ".", "dockerfile": "deploy/Dockerfile"}
    assert spec["command"] == ["python", "-m", f"services.{service}"]
    assert spec["depends_on"]["topics"]["condition"] == "service_completed_successfully"


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_gets_its_database_port_and_broker_from_the_environment(service: str) -> None:
    spec = COMPOSE["services"][service]
    env = {key: str(value) for key, value in spec["environment"].items()}
    upper = service.upper()
    port = DEFAULT_HTTP_PORTS[service]
    assert env[f"{upper}_HTTP_PORT"] == str(port)
    assert published(spec) == {port: f"127.0.0.1:{port}"}
    # The service's own role and database, on the postgres service; the password apart, as a secret.
    assert env[f"{upper}_DATABASE_URL"] == f"postgresql://{service}@postgres:5432/{service}"
    assert env[f"{upper}_DATABASE_PASSWORD_FILE"] == f"/run/secrets/postgres_{service}_password"
    assert env["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
    # Its own Kafka principal, over SASL_SSL.
    assert env["KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert env["KAFKA_SASL_USERNAME"] == service
    assert env["KAFKA_SASL_PASSWORD_FILE"] == f"/run/secrets/kafka_{service}_password"
    assert set(spec["secrets"]) == {"ca_crt", f"kafka_{service}_password", f"postgres_{service}_password"}
    # Every variable given is one the service really reads: a typo would silently do nothing
    # (`<NAME>_FILE` is read for every password <NAME>).
    given = {name.removesuffix("_FILE") if name.endswith("PASSWORD_FILE") else name for name in env}
    unknown = given - aliases(settings_class(service)) - STACK_WIDE
    assert not unknown, f"{service} does not read {sorted(unknown)}"


def test_every_service_gets_the_same_programme_file_which_exists_in_the_image() -> None:
    given = {
        service: COMPOSE["services"][service]["environment"]["FUNDING_PROGRAM_FILE"] for service in SERVICES
    }
    assert len(set(given.values())) == 1, given
    # `${FUNDING_PROGRAM_FILE:-default}`: the operator's choice, else Niedersachsen's file.
    found = re.fullmatch(r"\$\{FUNDING_PROGRAM_FILE:-([^}]+)\}", given["funding"])
    assert found is not None, given["funding"]
    assert (REPO_ROOT / found.group(1)).resolve() == DEFAULT_PROGRAM_FILE
    assert "COPY services ./services" in DOCKERFILE.read_text()  # the file is in the image under /app


def test_notification_sends_to_mailpit() -> None:
    env = COMPOSE["services"]["notification"]["environment"]
    assert (env["SMTP_HOST"], int(env["SMTP_PORT"])) == ("mailpit", 1025)


def test_postgres_wants_scram_for_every_role() -> None:
    env = COMPOSE["services"]["postgres"]["environment"]
    assert env["POSTGRES_INITDB_ARGS"] == "--auth=scram-sha-256"
    assert env["POSTGRES_HOST_AUTH_METHOD"] == "scram-sha-256"
    assert "POSTGRES_PASSWORD" not in env and env["POSTGRES_PASSWORD_FILE"].startswith("/run/secrets/")


def test_every_secret_is_a_file_the_local_stack_writes() -> None:
    for name, secret in COMPOSE["secrets"].items():
        assert secret["file"].startswith("./var/secrets/"), name


def test_postgres_creates_one_role_and_database_per_service() -> None:
    mount = next(v for v in COMPOSE["services"]["postgres"]["volumes"] if "init-roles.sql" in v)
    script = (REPO_ROOT / mount.split(":")[0]).read_text()
    for service in SERVICES:
        assert f"CREATE ROLE {service} LOGIN" in script
        assert f"CREATE DATABASE {service} OWNER {service}" in script
        assert f"REVOKE CONNECT, TEMPORARY ON DATABASE {service} FROM PUBLIC" in script


def test_dockerfile_copies_only_what_exists() -> None:
    sources = [
        part
        for line in DOCKERFILE.read_text().splitlines()
        if line.startswith("COPY ")
        for part in line.split()[1:-1]
    ]
    assert sources, "the Dockerfile copies nothing"
    assert all((REPO_ROOT / source).exists() for source in sources), sources


def test_readme_lists_every_environment_variable() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    variables = set().union(*(aliases(settings_class(service)) for service in SERVICES))
    missing = sorted(name for name in variables if f"`{name}`" not in readme)
    assert not missing, f"README lacks {missing}"


def mounts(service: str) -> dict[str, str]:
    """Container path -> the repository path mounted there (read-only mounts only)."""
    found = {}
    for entry in COMPOSE["services"][service].get("volumes", []):
        source, target, mode = entry.split(":")
        assert mode == "ro", f"{service} mounts {source} writable"
        found[target] = source.removeprefix("./")
    return found


def test_prometheus_scrapes_every_service_by_its_compose_name_and_loads_the_alert_rules() -> None:
    volumes = mounts("prometheus")
    config = yaml.safe_load((REPO_ROOT / volumes["/etc/prometheus/prometheus.yml"]).read_text())
    assert volumes["/etc/prometheus/rules"] == "deploy/monitoring/rules"
    assert (REPO_ROOT / "deploy/monitoring/rules/lotse.rules.yml").is_file()
    assert config["rule_files"] == ["/etc/prometheus/rules/*.yml"]
    local = yaml.safe_load((REPO_ROOT / "deploy/monitoring/prometheus.yml").read_text())
    assert config["global"] == local["global"]
    targets = {job["job_name"]: job["static_configs"][0]["targets"] for job in config["scrape_configs"]}
    assert targets == {service: [f"{service}:{DEFAULT_HTTP_PORTS[service]}"] for service in SERVICES}
    for service in SERVICES:
        assert COMPOSE["services"][service]["environment"]["HTTP_HOST"] == "0.0.0.0"


def test_grafana_is_provisioned_with_the_datasource_and_the_dashboard_and_only_lets_viewers_in() -> None:
    volumes = mounts("grafana")
    assert volumes["/etc/grafana/provisioning"] == "deploy/monitoring/grafana/provisioning"
    assert volumes["/var/lib/grafana/dashboards/lotse"] == "deploy/monitoring/grafana/dashboards"
    provider = yaml.safe_load(
        (REPO_ROOT / "deploy/monitoring/grafana/provisioning/dashboards/lotse.yml").read_text()
    )
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards/lotse"
    datasource = yaml.safe_load(
        (REPO_ROOT / "deploy/monitoring/grafana/provisioning/datasources/prometheus.yml").read_text()
    )
    assert datasource["datasources"][0]["url"] == "http://prometheus:9090"
    assert (REPO_ROOT / "deploy/monitoring/grafana/dashboards/lotse.json").is_file()
    environment = COMPOSE["services"]["grafana"]["environment"]
    assert environment["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"
    assert environment["GF_AUTH_DISABLE_LOGIN_FORM"] == "true"
