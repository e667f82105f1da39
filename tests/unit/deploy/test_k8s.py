"""The Kubernetes deployment (deploy/k8s/): every overlay renders with kustomize and passes
`make deploy-check`'s validation, and a broken manifest is caught by it. No cluster is needed:
the objects are checked against Kubernetes' schemas and the operators' real CRDs, offline."""

from __future__ import annotations

import copy
import subprocess
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from deploy.acl import load_acl
from deploy.k8s import check, generate, secrets
from deploy.k8s.catalogue import SERVICE_SPECS, contract_topics
from shared.settings import REPO_ROOT

Manifest = dict[str, Any]
Mutation = Callable[[list[Manifest]], list[Manifest]]


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[Manifest]]:
    return {overlay: check.parse(check.render(overlay)) for overlay in check.OVERLAYS}


@pytest.fixture(scope="module")
def production(rendered: dict[str, list[Manifest]]) -> list[Manifest]:
    return rendered["production"]


def find(objects: list[Manifest], kind: str, name: str) -> Manifest:
    for obj in objects:
        if obj["kind"] == kind and obj["metadata"]["name"] == name:
            return obj
    raise AssertionError(f"no {kind}/{name}")


@pytest.mark.parametrize("overlay", check.OVERLAYS)
def test_every_overlay_passes_the_schemas_and_our_rules(
    rendered: dict[str, list[Manifest]], overlay: str
) -> None:
    assert check.problems_of(rendered[overlay], production=overlay == "production") == []


def test_the_generated_users_and_topics_are_current() -> None:
    assert generate.stale_files() == []


def test_production_has_the_shape_of_the_issue(production: list[Manifest]) -> None:
    kinds = {obj["kind"] for obj in production}
    assert {
        "Deployment",
        "PodDisruptionBudget",
        "ScaledObject",
        "TriggerAuthentication",
        "ServiceMonitor",
        "Kafka",
        "KafkaNodePool",
        "KafkaTopic",
        "KafkaUser",
        "Cluster",
        "Database",
        "ConfigMap",
    } <= kinds
    for spec in SERVICE_SPECS:
        assert find(production, "Deployment", spec.name)["spec"]["replicas"] >= 2
        assert find(production, "ScaledObject", spec.name)["spec"]["maxReplicaCount"] == 6
    brokers = [p for p in production if p["kind"] == "KafkaNodePool" and "broker" in p["spec"]["roles"]]
    assert sum(p["spec"]["replicas"] for p in brokers) == 3
    assert find(production, "Cluster", "digitallotsen-pg")["spec"]["instances"] == 3
    topics = {t["spec"]["topicName"]: t["spec"] for t in production if t["kind"] == "KafkaTopic"}
    assert set(topics) == {topic.name for topic in contract_topics()}
    assert {"operations.commands", "operations.results", "outbox.funding.relay-state"} <= set(topics)
    assert all(t["replicas"] == 3 and t["config"]["min.insync.replicas"] == 2 for t in topics.values())
    users = {u["metadata"]["name"] for u in production if u["kind"] == "KafkaUser"}
    assert users == set(load_acl().names)


def test_every_object_of_an_operator_is_checked_against_its_crd(production: list[Manifest]) -> None:
    crds = check.crd_schemas()
    custom = {(o["apiVersion"], o["kind"]) for o in production if "." in o["apiVersion"].split("/")[0]}
    custom -= {("apps/v1", "Deployment"), ("policy/v1", "PodDisruptionBudget")}
    assert custom <= set(crds)
    assert ("kafka.strimzi.io/v1", "KafkaUser") in custom and ("keda.sh/v1alpha1", "ScaledObject") in custom


def test_make_deploy_render_prints_the_yaml_and_nothing_else() -> None:
    result = subprocess.run(
        ["make", "--no-print-directory", "deploy-render", "OVERLAY=production"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout == check.render("production")
    assert all(isinstance(doc, dict) and "kind" in doc for doc in yaml.safe_load_all(result.stdout))


def test_the_makefile_installs_the_kustomize_the_check_expects_and_ci_checks_before_testing() -> None:
    assert f"KUSTOMIZE_VERSION := {check.KUSTOMIZE_VERSION}" in (REPO_ROOT / "Makefile").read_text()
    ci = (REPO_ROOT / ".ci" / "run").read_text()
    assert "make deploy-check" in ci
    assert ci.index("make deploy-check") < ci.index("\nmake test")


def test_the_secrets_script_makes_valid_random_secrets_for_every_role(production: list[Manifest]) -> None:
    first, second = secrets.secret_objects("digitallotsen"), secrets.secret_objects("digitallotsen")
    assert check.schema_problems(first) == []
    assert [s["stringData"] for s in first] != [s["stringData"] for s in second]
    roles = find(production, "Cluster", "digitallotsen-pg")["spec"]["managed"]["roles"]
    assert {role["passwordSecret"]["name"] for role in roles} <= {s["metadata"]["name"] for s in first}


# --- broken manifests are caught --------------------------------------------------------------


def edit(kind: str, name: str, change: Callable[[Manifest], None]) -> Mutation:
    def mutate(objects: list[Manifest]) -> list[Manifest]:
        change(find(objects, kind, name))
        return objects

    return mutate


def drop(kind: str, name: str) -> Mutation:
    def mutate(objects: list[Manifest]) -> list[Manifest]:
        find(objects, kind, name)
        return [o for o in objects if not (o["kind"] == kind and o["metadata"]["name"] == name)]

    return mutate


def container(deployment: Manifest) -> dict[str, Any]:
    containers: list[dict[str, Any]] = deployment["spec"]["template"]["spec"]["containers"]
    return containers[0]


def set_path(path: str, value: Any) -> Callable[[Manifest], None]:
    def change(obj: Manifest) -> None:
        *parents, last = path.split("/")
        target = obj
        for part in parents:
            target = target[int(part)] if isinstance(target, list) else target[part]
        target[last] = value

    return change


def allow_root(deployment: Manifest) -> None:
    deployment["spec"]["template"]["spec"]["securityContext"].pop("runAsNonRoot")
    container(deployment)["securityContext"].pop("runAsNonRoot")


BROKEN: list[tuple[str, Mutation, str]] = [
    (
        "maxReplicaCount above the partitions",
        edit("ScaledObject", "funding", set_path("spec/maxReplicaCount", 7)),
        "maxReplicaCount 7 is above 6",
    ),
    ("a principal without KafkaUser", drop("KafkaUser", "portal"), "no KafkaUser for the principal portal"),
    (
        "a contract topic without KafkaTopic",
        drop("KafkaTopic", "operations-results"),
        "no KafkaTopic for the topic operations.results",
    ),
    (
        "a KafkaUser with a grant the ACL file does not give",
        edit(
            "KafkaUser",
            "portal",
            lambda u: u["spec"]["authorization"]["acls"].append(
                {"resource": {"type": "topic", "name": "funding.decisions"}, "operations": ["Write"]}
            ),
        ),
        "KafkaUser/portal: its authentication or ACLs differ",
    ),
    ("no Deployment", drop("Deployment", "notification"), "no Deployment for notification"),
    ("no disruption budget", drop("PodDisruptionBudget", "funding"), "no PodDisruptionBudget for funding"),
    (
        "no ServiceMonitor",
        drop("ServiceMonitor", "registration"),
        "no ServiceMonitor scraping /metrics of registration",
    ),
    (
        "readiness on /healthz",
        edit(
            "Deployment",
            "funding",
            lambda d: container(d)["readinessProbe"]["httpGet"].update(path="/healthz"),
        ),
        "readinessProbe is not GET /readyz",
    ),
    (
        "no liveness probe",
        edit("Deployment", "registration", lambda d: container(d).pop("livenessProbe")),
        "livenessProbe is not GET /livez",
    ),
    (
        "privilege escalation",
        edit(
            "Deployment",
            "funding",
            lambda d: container(d)["securityContext"].update(allowPrivilegeEscalation=True),
        ),
        "allowPrivilegeEscalation is not false",
    ),
    (
        "a writable root filesystem",
        edit(
            "Deployment", "funding", lambda d: container(d)["securityContext"].pop("readOnlyRootFilesystem")
        ),
        "the root filesystem is not read-only",
    ),
    (
        "root allowed",
        edit("Deployment", "notification", allow_root),
        "runAsNonRoot is not set",
    ),
    (
        "no limits",
        edit("Deployment", "registration", lambda d: container(d)["resources"].pop("limits")),
        "no limits for ['cpu', 'memory']",
    ),
    (
        "no preStop",
        edit("Deployment", "notification", lambda d: container(d).pop("lifecycle")),
        "no preStop hook",
    ),
    (
        "a grace period the batch cannot finish in",
        edit("Deployment", "funding", set_path("spec/template/spec/terminationGracePeriodSeconds", 10)),
        "leaves under 30 s after preStop",
    ),
    (
        "one replica in production",
        edit("Deployment", "funding", set_path("spec/replicas", 1)),
        "1 replica(s) in production",
    ),
    (
        "a topic replicated twice",
        edit("KafkaTopic", "funding-decisions", set_path("spec/replicas", 2)),
        "KafkaTopic/funding-decisions: replicas 2, 3 wanted",
    ),
    (
        "partitions other than the local stack's",
        edit("KafkaTopic", "registration-events", set_path("spec/partitions", 12)),
        "12 partitions, the local stack has 6",
    ),
    (
        "two brokers",
        edit("KafkaNodePool", "brokers", set_path("spec/replicas", 2)),
        "2 brokers and 3 controllers",
    ),
    (
        "a trigger on a topic the service does not consume",
        edit(
            "ScaledObject",
            "funding",
            lambda s: s["spec"]["triggers"][0]["metadata"].update(topic="portal.seminars"),
        ),
        "which funding does not consume",
    ),
    (
        "a trigger on another group",
        edit(
            "ScaledObject",
            "registration",
            lambda s: s["spec"]["triggers"][0]["metadata"].update(consumerGroup="x"),
        ),
        "consumerGroup 'x' is not 'registration'",
    ),
    (
        "a trigger without TLS",
        edit("ScaledObject", "notification", lambda s: s["spec"]["triggers"][1]["metadata"].pop("tls")),
        "the funding.decisions trigger does not use TLS",
    ),
    (
        "a database URL with a password",
        edit(
            "ConfigMap",
            "funding-config",
            lambda c: c["data"].update(
                FUNDING_DATABASE_URL="postgresql://funding:pw@digitallotsen-pg-rw:5432/funding"
            ),
        ),
        "FUNDING_DATABASE_URL carries a password",
    ),
    (
        "a variable nobody documents",
        edit("ConfigMap", "digitallotsen-config", lambda c: c["data"].update(KAFKA_BROKERS="x")),
        "KAFKA_BROKERS is no variable",
    ),
    (
        "a Secret nobody makes",
        edit(
            "Deployment",
            "funding",
            lambda d: d["spec"]["template"]["spec"]["volumes"][0]["projected"]["sources"].append(
                {"secret": {"name": "funding-extra"}}
            ),
        ),
        "nobody makes the Secret funding-extra",
    ),
    (
        "an operator role that may write",
        edit(
            "Cluster",
            "digitallotsen-pg",
            lambda c: c["spec"]["managed"]["roles"][3].update(inRoles=["pg_write_all_data"]),
        ),
        "no read-only operator role",
    ),
    ("a database missing", drop("Database", "notification"), "no Database notification"),
    (
        "an unknown field in a CRD object",
        edit("Kafka", "digitallotsen", lambda k: k["spec"]["kafka"].update(listner=[])),
        "'listner' was unexpected",
    ),
    (
        "a wrong type in a CRD object",
        edit("ScaledObject", "notification", set_path("spec/pollingInterval", "often")),
        "'often' is not of type 'integer'",
    ),
    (
        "an unknown field in a core object",
        edit("Deployment", "registration", lambda d: container(d).update(imagePolicy="Always")),
        "'imagePolicy' was unexpected",
    ),
    (
        "an object of no known CRD",
        lambda objects: [
            *objects,
            {"apiVersion": "example.org/v1", "kind": "Thing", "metadata": {"name": "x"}},
        ],
        "no CRD schema for example.org/v1",
    ),
]


@pytest.mark.parametrize(("what", "mutate", "complaint"), BROKEN, ids=[what for what, _, _ in BROKEN])
def test_a_broken_manifest_is_caught(
    production: list[Manifest], what: str, mutate: Mutation, complaint: str
) -> None:
    problems = check.problems_of(mutate(copy.deepcopy(production)), production=True)
    assert any(complaint in problem for problem in problems), f"{what}: {problems}"


def test_the_local_overlay_may_shrink_what_production_may_not(rendered: dict[str, list[Manifest]]) -> None:
    local = rendered["local"]
    assert check.problems_of(local, production=False) == []
    assert any("replica(s) in production" in p for p in check.problems_of(local, production=True))
