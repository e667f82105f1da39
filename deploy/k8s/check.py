"""`make deploy-check`: renders every overlay with kustomize and validates it offline.

1. The generated files (KafkaUsers from deploy/acl.yaml, KafkaTopics from the catalogue) are current.
2. Every core object validates against the Kubernetes schemas (kubernetes-validate, strict: an
   unknown field is an error, as `kubectl apply --validate=strict` makes it).
3. Every Strimzi, KEDA, CloudNativePG and Prometheus Operator object validates against the
   openAPIV3Schema of its real CRD in ../shared/schemas/crds/ (jsonschema). Fields a schema does not
   declare are errors too, where the schema does not keep unknown fields: the API server would drop
   them silently, which hides typos.
4. Our own rules (`rules`): a Deployment, Service, PodDisruptionBudget, ScaledObject and
   ServiceMonitor per service; probes, security context, resources and graceful shutdown; replicas
   within partitions; a KafkaUser per principal with exactly the ACL file's grants; a KafkaTopic per
   contract topic; one database and role per service and a read-only operator role; every variable
   a documented one; every Secret and ConfigMap a pod needs made by someone.

    python -m deploy.k8s.check                      # every overlay; exit 1 on any problem
    python -m deploy.k8s.check render production    # the rendered YAML, nothing else
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import jsonschema
import kubernetes_validate
import yaml

from deploy.acl import ACL_FILE, load_acl
from deploy.k8s import generate, secrets
from deploy.k8s.catalogue import (
    PERSONAL_DATA_RETENTION_HOURS,
    SERVICE_SPECS,
    Service,
    contract_topics,
)
from shared.settings import REPO_ROOT
from shared.topics import all_topics

K8S_DIR = Path(__file__).resolve().parent
OVERLAYS = ("local", "production")
SHARED_DIR = REPO_ROOT.parent / "shared"
CRD_DIR = Path(os.environ.get("DEPLOY_CRD_DIR", SHARED_DIR / "schemas" / "crds"))
# The oldest Kubernetes release the manifests must run on.
KUBERNETES_VERSION = "1.33"
KUSTOMIZE_MODULE = "sigs.k8s.io/kustomize/kustomize/v5"
KUSTOMIZE_VERSION = "v5.7.1"
IMAGE = "digitallotsen"
MIN_PRODUCTION_REPLICAS = 2
MIN_KAFKA_NODES = 3
PRODUCTION_TOPIC_REPLICAS = 3
PRODUCTION_MIN_INSYNC = 2
PRODUCTION_POSTGRES_INSTANCES = 3
HOUR_MS = 3_600_000

Manifest = dict[str, Any]


class CheckError(Exception):
    """The manifests cannot even be rendered or parsed."""


# --- rendering ------------------------------------------------------------------------------


def kustomize_binary() -> Path:
    """kustomize from KUSTOMIZE, .venv/bin or PATH; installed into .venv/bin with `go install`
    (through the Go module proxy) when there is none."""
    configured = os.environ.get("KUSTOMIZE")
    if configured:
        return Path(configured)
    local = REPO_ROOT / ".venv" / "bin" / "kustomize"
    if local.exists():
        return local
    found = shutil.which("kustomize")
    if found:
        return Path(found)
    go = shutil.which("go")
    if go is None:
        raise CheckError("kustomize is missing and so is Go to install it (make deploy-check installs it)")
    local.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [go, "install", f"{KUSTOMIZE_MODULE}@{KUSTOMIZE_VERSION}"],
        check=True,
        env={**os.environ, "GOBIN": str(local.parent)},
        stdout=sys.stderr,
    )
    return local


def render(overlay: str | Path) -> str:
    path = Path(overlay) if isinstance(overlay, Path) else K8S_DIR / "overlays" / overlay
    result = subprocess.run(
        [str(kustomize_binary()), "build", str(path)], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise CheckError(f"kustomize build {path} failed:\n{result.stderr}")
    return result.stdout


def parse(text: str) -> list[Manifest]:
    objects = [document for document in yaml.safe_load_all(text) if document is not None]
    for document in objects:
        if not isinstance(document, dict) or "kind" not in document or "apiVersion" not in document:
            raise CheckError(f"not a Kubernetes object: {str(document)[:120]}")
    return objects


def name_of(obj: Manifest) -> str:
    return f"{obj['kind']}/{obj.get('metadata', {}).get('name', '?')}"


# --- schemas --------------------------------------------------------------------------------


@dataclass(frozen=True)
class CrdSchema:
    group: str
    version: str
    kind: str
    schema: Mapping[str, Any]


def _closed(schema: Any) -> Any:
    """The schema with `additionalProperties: false` wherever it lists properties and neither keeps
    unknown fields nor says what else may come: what the API server prunes is an error here."""
    if isinstance(schema, list):
        return [_closed(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    closed = {key: _closed(value) for key, value in schema.items()}
    if (
        "properties" in closed
        and "additionalProperties" not in closed
        and not closed.get("x-kubernetes-preserve-unknown-fields")
    ):
        closed["additionalProperties"] = False
    return closed


@cache
def crd_schemas(directory: Path = CRD_DIR) -> dict[tuple[str, str], CrdSchema]:
    """(apiVersion, kind) -> the served version's schema, for every CRD in the directory."""
    if not directory.is_dir():
        raise CheckError(f"no CRD schemas at {directory} (../shared/schemas/crds beside the checkout)")
    found: dict[tuple[str, str], CrdSchema] = {}
    for path in sorted(directory.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if not document or document.get("kind") != "CustomResourceDefinition":
                continue
            group = document["spec"]["group"]
            kind = document["spec"]["names"]["kind"]
            for version in document["spec"]["versions"]:
                if not version.get("served", False):
                    continue
                schema = _closed(version["schema"]["openAPIV3Schema"])
                found[(f"{group}/{version['name']}", kind)] = CrdSchema(group, version["name"], kind, schema)
    return found


def schema_problems(objects: Iterable[Manifest]) -> list[str]:
    problems = []
    crds = crd_schemas()
    for obj in objects:
        key = (obj["apiVersion"], obj["kind"])
        if key in crds:
            # OpenAPI 3.0's schema objects are close to JSON Schema draft 4 (boolean exclusiveMinimum).
            validator = jsonschema.Draft4Validator(crds[key].schema)
            for error in sorted(validator.iter_errors(obj), key=lambda e: list(e.absolute_path)):
                where = "/".join(str(part) for part in error.absolute_path)
                problems.append(f"{name_of(obj)}: {where}: {error.message} (CRD {key[0]})")
            continue
        group = obj["apiVersion"].split("/")[0] if "/" in obj["apiVersion"] else ""
        if "." in group and not group.endswith(".k8s.io"):
            problems.append(f"{name_of(obj)}: no CRD schema for {obj['apiVersion']} in {CRD_DIR}")
            continue
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            problems.append(f"{name_of(obj)}: {obj['apiVersion']} is not in Kubernetes {KUBERNETES_VERSION}")
        except kubernetes_validate.ValidationError as error:
            where = "/".join(str(part) for part in error.path)
            problems.append(f"{name_of(obj)}: {where}: {error.message} (Kubernetes {KUBERNETES_VERSION})")
    return problems


# --- our own rules --------------------------------------------------------------------------


class Objects:
    def __init__(self, objects: list[Manifest]) -> None:
        self.all = objects

    def of(self, kind: str) -> list[Manifest]:
        return [obj for obj in self.all if obj["kind"] == kind]

    def named(self, kind: str, name: str) -> Manifest | None:
        for obj in self.of(kind):
            if obj["metadata"]["name"] == name:
                return obj
        return None

    def config_data(self) -> dict[str, str]:
        """Every key of every ConfigMap (the services' variables), later ones winning."""
        data: dict[str, str] = {}
        for config_map in self.of("ConfigMap"):
            data.update(config_map.get("data", {}))
        return data


def _documented_variables() -> frozenset[str]:
    """The variables of the README's configuration table and INTERFACES.md's environment table."""
    names: set[str] = set()
    for path in (REPO_ROOT / "README.md", SHARED_DIR / "INTERFACES.md"):
        if not path.exists():
            continue
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.startswith("| `"):
                continue
            for token in re.findall(r"`([A-Z<][A-Z0-9_<>]*)`", line):
                if "<SERVICE>" in token:
                    names.update(token.replace("<SERVICE>", spec.name.upper()) for spec in SERVICE_SPECS)
                elif "<" not in token:
                    names.add(token)
    # INTERFACES.md: "every password also as `<NAME>_FILE`"
    names.update(f"{name}_FILE" for name in list(names) if name.endswith(("PASSWORD", "KEY")))
    return frozenset(names)


def _containers(pod_spec: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    yield from pod_spec.get("initContainers", [])
    yield from pod_spec.get("containers", [])


def _labels_match(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    wanted = selector.get("matchLabels", {})
    return bool(wanted) and all(labels.get(key) == value for key, value in wanted.items())


def deployment_problems(spec: Service, deployment: Manifest, production: bool) -> list[str]:
    problems = []
    where = f"Deployment/{spec.name}"
    pod = deployment["spec"]["template"]["spec"]
    replicas = deployment["spec"].get("replicas", 1)
    if production and replicas < MIN_PRODUCTION_REPLICAS:
        problems.append(f"{where}: {replicas} replica(s) in production, at least {MIN_PRODUCTION_REPLICAS}")
    pod_context = pod.get("securityContext", {})
    for container in _containers(pod):
        at = f"{where}: container {container['name']}"
        context = container.get("securityContext", {})
        if not (context.get("runAsNonRoot") or pod_context.get("runAsNonRoot")):
            problems.append(f"{at}: runAsNonRoot is not set")
        if context.get("readOnlyRootFilesystem") is not True:
            problems.append(f"{at}: the root filesystem is not read-only")
        if context.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{at}: allowPrivilegeEscalation is not false")
        if "ALL" not in context.get("capabilities", {}).get("drop", []):
            problems.append(f"{at}: capabilities are not all dropped")
        resources = container.get("resources", {})
        for bound in ("requests", "limits"):
            missing = {"cpu", "memory"} - set(resources.get(bound, {}))
            if missing:
                problems.append(f"{at}: no {bound} for {sorted(missing)}")
        image = container.get("image", "")
        if image.split("/")[-1].split(":")[0] != IMAGE or ":" not in image.split("/")[-1]:
            problems.append(f"{at}: image {image!r} is not {IMAGE}:<tag> from deploy/Dockerfile")
        elif image.endswith(":latest"):
            problems.append(f"{at}: image {image!r} has no fixed tag")
    main = next((c for c in pod.get("containers", []) if c["name"] == spec.name), None)
    if main is None:
        return [*problems, f"{where}: no container named {spec.name}"]
    if main.get("command") != ["python", "-m", f"services.{spec.name}"]:
        problems.append(f"{where}: does not run python -m services.{spec.name}")
    ports = {port.get("name"): port["containerPort"] for port in main.get("ports", [])}
    if ports.get("http") != spec.http_port:
        problems.append(f"{where}: port http is not {spec.http_port}")
    for probe, path in (("livenessProbe", "/livez"), ("readinessProbe", "/readyz")):
        http = main.get(probe, {}).get("httpGet", {})
        if http.get("path") != path or http.get("port") not in ("http", spec.http_port):
            problems.append(f"{where}: {probe} is not GET {path} on the http port")
    pre_stop = main.get("lifecycle", {}).get("preStop")
    if not pre_stop:
        problems.append(f"{where}: no preStop hook")
    grace = pod.get("terminationGracePeriodSeconds", 30)
    pause = (pre_stop or {}).get("sleep", {}).get("seconds", 0)
    # The batch in hand and the relay's transaction need time after the preStop pause.
    if grace - pause < 30:
        problems.append(f"{where}: terminationGracePeriodSeconds {grace} leaves under 30 s after preStop")
    return problems


def service_problems(objects: Objects, production: bool) -> list[str]:
    problems: list[str] = []
    config = objects.config_data()
    partitions = {t["spec"]["topicName"]: t["spec"]["partitions"] for t in objects.of("KafkaTopic")}
    for spec in SERVICE_SPECS:
        deployment = objects.named("Deployment", spec.name)
        if deployment is None:
            problems.append(f"no Deployment for {spec.name}")
            continue
        problems += deployment_problems(spec, deployment, production)
        pod_labels = deployment["spec"]["template"]["metadata"].get("labels", {})
        service = objects.named("Service", spec.name)
        if service is None or not all(pod_labels.get(k) == v for k, v in service["spec"]["selector"].items()):
            problems.append(f"no Service selecting the pods of {spec.name}")
        if not any(
            _labels_match(p["spec"]["selector"], pod_labels) for p in objects.of("PodDisruptionBudget")
        ):
            problems.append(f"no PodDisruptionBudget for {spec.name}")
        monitors = [
            m
            for m in objects.of("ServiceMonitor")
            if service is not None
            and _labels_match(m["spec"]["selector"], service["metadata"].get("labels", {}))
        ]
        if not any(
            e.get("path") == "/metrics" and e.get("port") == "http"
            for m in monitors
            for e in m["spec"]["endpoints"]
        ):
            problems.append(f"no ServiceMonitor scraping /metrics of {spec.name}")
        problems += scaling_problems(spec, objects, partitions, config, production)
    return problems


def scaling_problems(
    spec: Service,
    objects: Objects,
    partitions: Mapping[str, int],
    config: Mapping[str, str],
    production: bool,
) -> list[str]:
    scaled = [s for s in objects.of("ScaledObject") if s["spec"]["scaleTargetRef"].get("name") == spec.name]
    if len(scaled) != 1:
        return [f"{len(scaled)} ScaledObjects for {spec.name}, one wanted"]
    obj = scaled[0]["spec"]
    where = f"ScaledObject/{scaled[0]['metadata']['name']}"
    problems = []
    consumed = [partitions[t] for t in spec.consumes if t in partitions]
    largest = max(consumed, default=0)
    maximum, minimum = obj.get("maxReplicaCount", 100), obj.get("minReplicaCount", 0)
    if maximum > largest:
        problems.append(
            f"{where}: maxReplicaCount {maximum} is above {largest}, "
            "the most partitions of a topic it consumes"
        )
    if minimum > maximum:
        problems.append(f"{where}: minReplicaCount {minimum} is above maxReplicaCount {maximum}")
    if production and minimum < MIN_PRODUCTION_REPLICAS:
        problems.append(
            f"{where}: minReplicaCount {minimum} in production, at least {MIN_PRODUCTION_REPLICAS}"
        )
    topics = set()
    for trigger in obj["triggers"]:
        meta = trigger.get("metadata", {})
        if trigger.get("type") != "kafka":
            problems.append(f"{where}: a {trigger.get('type')} trigger; only kafka (consumer lag) is wanted")
            continue
        topics.add(meta.get("topic"))
        if meta.get("topic") not in spec.consumes:
            problems.append(f"{where}: trigger on {meta.get('topic')!r}, which {spec.name} does not consume")
        if meta.get("consumerGroup") != spec.consumer_group:
            problems.append(
                f"{where}: consumerGroup {meta.get('consumerGroup')!r} is not {spec.consumer_group!r}"
            )
        if meta.get("bootstrapServers") != config.get("KAFKA_BOOTSTRAP_SERVERS"):
            problems.append(f"{where}: bootstrapServers is not the services' KAFKA_BOOTSTRAP_SERVERS")
        if not str(meta.get("lagThreshold", "")).isdigit() or int(meta["lagThreshold"]) < 1:
            problems.append(f"{where}: lagThreshold must be a positive number")
        auth = objects.named("TriggerAuthentication", trigger.get("authenticationRef", {}).get("name", ""))
        if meta.get("tls") != "enable":
            problems.append(
                f"{where}: the {meta.get('topic')} trigger does not use TLS, as the listener does"
            )
        if meta.get("sasl") != "scram_sha512" or auth is None:
            problems.append(
                f"{where}: the {meta.get('topic')} trigger has no SCRAM-SHA-512 TriggerAuthentication"
            )
        else:
            parameters = {
                ref["parameter"]
                for source in ("secretTargetRef", "configMapTargetRef")
                for ref in auth["spec"].get(source, [])
            }
            if not {"username", "password"} <= parameters:
                problems.append(f"TriggerAuthentication/{auth['metadata']['name']}: no username and password")
    lagging = {t for t in spec.consumes if partitions.get(t, 0) > 1}
    if lagging - topics:
        problems.append(f"{where}: no lag trigger for {sorted(lagging - topics)}")
    return problems


def kafka_problems(objects: Objects, production: bool) -> list[str]:
    problems = []
    acl = load_acl(ACL_FILE)
    clusters = objects.of("Kafka")
    if len(clusters) != 1:
        return [f"{len(clusters)} Kafka clusters, one wanted"]
    cluster = clusters[0]
    name = cluster["metadata"]["name"]
    kafka = cluster["spec"]["kafka"]
    authorization = kafka.get("authorization", {})
    if authorization.get("type") != "simple":
        problems.append("Kafka: authorization is not simple")
    if set(authorization.get("superUsers", [])) != set(acl.super_users):
        problems.append(f"Kafka: superUsers are not the ACL file's {list(acl.super_users)}")
    for listener in kafka["listeners"]:
        if listener.get("authentication", {}).get("type") != "scram-sha-512" or not listener.get("tls"):
            problems.append(f"Kafka: listener {listener['name']} is not TLS with SCRAM-SHA-512")
    pools = [
        p
        for p in objects.of("KafkaNodePool")
        if p["metadata"].get("labels", {}).get("strimzi.io/cluster") == name
    ]
    brokers = sum(p["spec"]["replicas"] for p in pools if "broker" in p["spec"]["roles"])
    controllers = sum(p["spec"]["replicas"] for p in pools if "controller" in p["spec"]["roles"])
    if not controllers:
        problems.append("Kafka: no KRaft controller in any KafkaNodePool")
    if production and (brokers < MIN_KAFKA_NODES or controllers < MIN_KAFKA_NODES):
        problems.append(
            f"Kafka: {brokers} brokers and {controllers} controllers, {MIN_KAFKA_NODES} of each wanted"
        )
    return [*problems, *user_problems(objects, name), *topic_problems(objects, name, production)]


def user_problems(objects: Objects, cluster: str) -> list[str]:
    """A KafkaUser for every principal, with exactly the grants of deploy/acl.yaml."""
    problems = []
    acl = load_acl(ACL_FILE)
    name = cluster
    users = {u["metadata"]["name"]: u for u in objects.of("KafkaUser")}
    expected_users = {u["metadata"]["name"]: u for u in generate.kafka_users(acl)}
    for principal in acl.names:
        user = users.get(principal)
        if user is None:
            problems.append(f"no KafkaUser for the principal {principal}")
            continue
        if user["metadata"].get("labels", {}).get("strimzi.io/cluster") != name:
            problems.append(f"KafkaUser/{principal}: not labelled for the cluster {name}")
        if user["spec"] != expected_users[principal]["spec"]:
            problems.append(f"KafkaUser/{principal}: its authentication or ACLs differ from deploy/acl.yaml")
    for extra in sorted(set(users) - set(acl.names)):
        problems.append(f"KafkaUser/{extra}: not a principal of deploy/acl.yaml")
    return problems


def topic_problems(objects: Objects, cluster: str, production: bool) -> list[str]:
    """A KafkaTopic for every topic of the contract, the ACL file and the local stack, as they say."""
    problems = []
    acl = load_acl(ACL_FILE)
    name = cluster
    retention_hours = int(objects.config_data().get("KAFKA_PERSONAL_DATA_RETENTION_HOURS", "-1"))
    if retention_hours != PERSONAL_DATA_RETENTION_HOURS:
        problems.append(
            f"KAFKA_PERSONAL_DATA_RETENTION_HOURS is {retention_hours}, the topics are made with "
            f"{PERSONAL_DATA_RETENTION_HOURS} (deploy/k8s/catalogue.py)"
        )
    topics = {t["spec"].get("topicName", t["metadata"]["name"]): t for t in objects.of("KafkaTopic")}
    wanted = {t.name: t for t in contract_topics()}
    local_layout = {t.name: t.partitions for t in all_topics()}
    for topic_name in sorted(set(wanted) | acl.topics() | set(local_layout)):
        topic = topics.get(topic_name)
        if topic is None:
            problems.append(f"no KafkaTopic for the topic {topic_name}")
            continue
        spec = topic["spec"]
        where = f"KafkaTopic/{topic['metadata']['name']}"
        if topic["metadata"].get("labels", {}).get("strimzi.io/cluster") != name:
            problems.append(f"{where}: not labelled for the cluster {name}")
        if topic_name in local_layout and spec.get("partitions") != local_layout[topic_name]:
            problems.append(
                f"{where}: {spec.get('partitions')} partitions, "
                f"the local stack has {local_layout[topic_name]}"
            )
        if topic_name in wanted:
            if spec.get("partitions") != wanted[topic_name].partitions:
                problems.append(
                    f"{where}: {spec.get('partitions')} partitions, "
                    f"the catalogue says {wanted[topic_name].partitions}"
                )
            if (
                int(spec.get("config", {}).get("retention.ms", -1))
                != wanted[topic_name].retention_hours * HOUR_MS
            ):
                problems.append(f"{where}: retention.ms is not {wanted[topic_name].retention_hours} hours")
        if production:
            if spec.get("replicas") != PRODUCTION_TOPIC_REPLICAS:
                problems.append(
                    f"{where}: replicas {spec.get('replicas')}, {PRODUCTION_TOPIC_REPLICAS} wanted"
                )
            if int(spec.get("config", {}).get("min.insync.replicas", 1)) != PRODUCTION_MIN_INSYNC:
                problems.append(f"{where}: min.insync.replicas is not {PRODUCTION_MIN_INSYNC}")
    for extra in sorted(set(topics) - set(wanted)):
        problems.append(f"KafkaTopic for {extra}, which is no topic of the contract")
    return problems


def postgres_problems(objects: Objects, production: bool) -> list[str]:
    clusters = objects.of("Cluster")
    if len(clusters) != 1:
        return [f"{len(clusters)} PostgreSQL clusters, one wanted"]
    cluster = clusters[0]
    name = cluster["metadata"]["name"]
    problems = []
    instances = cluster["spec"]["instances"]
    if production and instances < PRODUCTION_POSTGRES_INSTANCES:
        problems.append(f"Cluster/{name}: {instances} instances, {PRODUCTION_POSTGRES_INSTANCES} wanted")
    roles = {r["name"]: r for r in cluster["spec"].get("managed", {}).get("roles", [])}
    config = objects.config_data()
    for spec in SERVICE_SPECS:
        role = roles.get(spec.name)
        if role is None or not role.get("login") or "passwordSecret" not in role:
            problems.append(f"Cluster/{name}: no login role {spec.name} with a password Secret")
        databases = [d for d in objects.of("Database") if d["spec"]["name"] == spec.name]
        if len(databases) != 1 or databases[0]["spec"]["owner"] != spec.name:
            problems.append(f"no Database {spec.name} owned by the role {spec.name}")
        elif databases[0]["spec"]["cluster"]["name"] != name:
            problems.append(f"Database/{spec.name}: not in the cluster {name}")
        url = urlparse(config.get(f"{spec.name.upper()}_DATABASE_URL", ""))
        if url.password is not None:
            problems.append(f"{spec.name.upper()}_DATABASE_URL carries a password")
        if url.hostname != f"{name}-rw" or url.path != f"/{spec.name}" or url.username != spec.name:
            problems.append(f"{spec.name.upper()}_DATABASE_URL is not {spec.name}@{name}-rw/{spec.name}")
    operator = roles.get("operator")
    if operator is None or operator.get("inRoles") != ["pg_read_all_data"] or operator.get("superuser"):
        problems.append(f"Cluster/{name}: no read-only operator role (pg_read_all_data only)")
    if cluster["spec"].get("enableSuperuserAccess", False):
        problems.append(f"Cluster/{name}: the superuser can sign in from outside")
    return problems


def reference_problems(objects: Objects) -> list[str]:
    """Every Secret and ConfigMap a pod or trigger needs is rendered or made by someone known."""
    kafka = {c["metadata"]["name"] for c in objects.of("Kafka")}
    made_secrets = {
        *secrets.made_secret_names(),
        *secrets.EXTERNAL_SECRETS,
        *(u["metadata"]["name"] for u in objects.of("KafkaUser")),  # Strimzi's User Operator
        *(f"{name}-cluster-ca-cert" for name in kafka),  # Strimzi's Cluster Operator
        *(f"{c['metadata']['name']}-ca" for c in objects.of("Cluster")),  # CloudNativePG
        *(s["metadata"]["name"] for s in objects.of("Secret")),
    }
    config_maps = {*secrets.EXTERNAL_CONFIG_MAPS, *(c["metadata"]["name"] for c in objects.of("ConfigMap"))}
    documented = _documented_variables()
    problems = []
    for deployment in objects.of("Deployment"):
        pod = deployment["spec"]["template"]["spec"]
        is_service = deployment["metadata"]["name"] in {s.name for s in SERVICE_SPECS}
        for volume in pod.get("volumes", []):
            sources = [volume, *volume.get("projected", {}).get("sources", [])]
            for source in sources:
                if "secret" in source:
                    secret = source["secret"].get("secretName") or source["secret"].get("name")
                    if secret not in made_secrets:
                        problems.append(f"{name_of(deployment)}: nobody makes the Secret {secret}")
                if "configMap" in source and source["configMap"]["name"] not in config_maps:
                    problems.append(f"{name_of(deployment)}: no ConfigMap {source['configMap']['name']}")
        for container in _containers(pod):
            for item in container.get("envFrom", []):
                ref = item.get("configMapRef", {}).get("name")
                if ref is not None and ref not in config_maps:
                    problems.append(f"{name_of(deployment)}: no ConfigMap {ref}")
                    continue
                keys = objects.named("ConfigMap", ref).get("data", {}) if ref else {}  # type: ignore[union-attr]
                if is_service:
                    problems += [
                        f"ConfigMap/{ref}: {key} is no variable of the README or INTERFACES.md"
                        for key in keys
                        if key not in documented
                    ]
            for env in container.get("env", []):
                secret_ref = env.get("valueFrom", {}).get("secretKeyRef")
                if secret_ref and secret_ref["name"] not in made_secrets:
                    problems.append(f"{name_of(deployment)}: nobody makes the Secret {secret_ref['name']}")
                if is_service and env["name"] not in documented and env["name"] != "TMPDIR":
                    problems.append(
                        f"{name_of(deployment)}: {env['name']} is no variable of the README or INTERFACES.md"
                    )
    for auth in objects.of("TriggerAuthentication"):
        for ref in auth["spec"].get("secretTargetRef", []):
            if ref["name"] not in made_secrets:
                problems.append(f"{name_of(auth)}: nobody makes the Secret {ref['name']}")
        for ref in auth["spec"].get("configMapTargetRef", []):
            if ref["name"] not in config_maps:
                problems.append(f"{name_of(auth)}: no ConfigMap {ref['name']}")
    for cluster in objects.of("Cluster"):
        for role in cluster["spec"].get("managed", {}).get("roles", []):
            secret = role.get("passwordSecret", {}).get("name")
            if secret and secret not in made_secrets:
                problems.append(
                    f"{name_of(cluster)}: nobody makes the Secret {secret} of the role {role['name']}"
                )
    return problems


def rules(objects: list[Manifest], production: bool) -> list[str]:
    found = Objects(objects)
    return [
        *service_problems(found, production),
        *kafka_problems(found, production),
        *postgres_problems(found, production),
        *reference_problems(found),
    ]


def problems_of(objects: list[Manifest], production: bool) -> list[str]:
    problems = schema_problems(objects)
    try:
        return [*problems, *rules(objects, production)]
    except (KeyError, TypeError, AttributeError, ValueError) as error:
        # Our rules read objects of the schemas' shape; an object of another shape is reported above.
        if not problems:
            raise
        return [*problems, f"our rules did not run on objects of the wrong shape ({error!r})"]


def check_overlay(overlay: str) -> list[str]:
    return problems_of(parse(render(overlay)), production=overlay == "production")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="render and validate the Kubernetes deployment offline")
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("check", help="validate every overlay (the default)")
    render_command = commands.add_parser("render", help="print one overlay's rendered YAML")
    render_command.add_argument("overlay", choices=OVERLAYS)
    args = parser.parse_args(argv)
    try:
        if args.command == "render":
            sys.stdout.write(render(args.overlay))
            return 0
        problems = [
            f"generated: {path.name} is out of date (python -m deploy.k8s.generate)"
            for path in generate.stale_files()
        ]
        problems += [f"secrets: {p}" for p in schema_problems(secrets.secret_objects("digitallotsen"))]
        for overlay in OVERLAYS:
            objects = parse(render(overlay))
            overlay_problems = problems_of(objects, production=overlay == "production")
            problems += [f"{overlay}: {problem}" for problem in overlay_problems]
            print(f"{overlay}: {len(objects)} objects, {len(overlay_problems)} problem(s)")
    except CheckError as error:
        print(error, file=sys.stderr)
        return 1
    for problem in problems:
        print(problem)
    print("deploy-check: " + ("ok" if not problems else f"{len(problems)} problem(s)"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
