"""The Kafka ACL file `deploy/acl.yaml`: its typed model, loading with strict validation, and its
expansion for a topic prefix.

    acl = load_acl()                       # deploy/acl.yaml, validated
    acl.principal("funding").acls          # what funding may do
    acl.for_prefix("t123.")                # the same grants on the names a test prefixes
    acl.for_prefix("t123.").bindings()     # flat, as Kafka's admin API and kafka-acls.sh name them

The file names topics, groups and transactional ids without KAFKA_TOPIC_PREFIX; `for_prefix`
gives the grants for the prefixed names, which is what a broker must hold for services that run
with that prefix. The local stack applies the result with Kafka's admin API; deploy/k8s/generate.py
turns it into Strimzi KafkaUsers.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

ACL_FILE = Path(__file__).resolve().parent / "acl.yaml"

# The only name of the cluster resource in Kafka's ACLs.
CLUSTER_NAME = "kafka-cluster"
# A literal `*` is every resource of its type (Kafka's wildcard).
WILDCARD = "*"
PRINCIPAL_NAME_PATTERN = r"^[a-z][a-z0-9-]*$"


class ResourceType(StrEnum):
    TOPIC = "topic"
    GROUP = "group"
    CLUSTER = "cluster"
    TRANSACTIONAL_ID = "transactionalId"


class PatternType(StrEnum):
    LITERAL = "literal"
    PREFIX = "prefix"


class Operation(StrEnum):
    READ = "Read"
    WRITE = "Write"
    CREATE = "Create"
    DELETE = "Delete"
    ALTER = "Alter"
    DESCRIBE = "Describe"
    CLUSTER_ACTION = "ClusterAction"
    ALTER_CONFIGS = "AlterConfigs"
    DESCRIBE_CONFIGS = "DescribeConfigs"
    IDEMPOTENT_WRITE = "IdempotentWrite"
    ALL = "All"


# Which operations Kafka's authorizer checks on which resource type.
VALID_OPERATIONS: dict[ResourceType, frozenset[Operation]] = {
    ResourceType.TOPIC: frozenset(
        {
            Operation.READ,
            Operation.WRITE,
            Operation.CREATE,
            Operation.DELETE,
            Operation.ALTER,
            Operation.DESCRIBE,
            Operation.ALTER_CONFIGS,
            Operation.DESCRIBE_CONFIGS,
            Operation.ALL,
        }
    ),
    ResourceType.GROUP: frozenset({Operation.READ, Operation.DESCRIBE, Operation.DELETE, Operation.ALL}),
    ResourceType.TRANSACTIONAL_ID: frozenset({Operation.WRITE, Operation.DESCRIBE, Operation.ALL}),
    ResourceType.CLUSTER: frozenset(
        {
            Operation.CREATE,
            Operation.ALTER,
            Operation.DESCRIBE,
            Operation.CLUSTER_ACTION,
            Operation.ALTER_CONFIGS,
            Operation.DESCRIBE_CONFIGS,
            Operation.IDEMPOTENT_WRITE,
            Operation.ALL,
        }
    ),
}

# Read and Write imply Describe in Kafka's authorizer (and All implies everything).
_IMPLIED: dict[Operation, frozenset[Operation]] = {
    Operation.READ: frozenset({Operation.DESCRIBE}),
    Operation.WRITE: frozenset({Operation.DESCRIBE}),
    Operation.DELETE: frozenset({Operation.DESCRIBE}),
    Operation.ALTER: frozenset({Operation.DESCRIBE}),
    Operation.ALTER_CONFIGS: frozenset({Operation.DESCRIBE_CONFIGS}),
}


@dataclass(frozen=True)
class AclBinding:
    """One allow rule as Kafka's admin API and `kafka-acls.sh` spell it, for whoever applies them:
    principal `User:<name>`, resource type `TOPIC`/`GROUP`/`CLUSTER`/`TRANSACTIONAL_ID`, pattern
    `LITERAL`/`PREFIXED`, operation `READ`, `WRITE`, `DESCRIBE_CONFIGS`, … (host `*`)."""

    principal: str
    resource_type: str
    resource_name: str
    pattern_type: str
    operation: str


_KAFKA_RESOURCE_TYPES = {
    ResourceType.TOPIC: "TOPIC",
    ResourceType.GROUP: "GROUP",
    ResourceType.CLUSTER: "CLUSTER",
    ResourceType.TRANSACTIONAL_ID: "TRANSACTIONAL_ID",
}
_KAFKA_PATTERN_TYPES = {PatternType.LITERAL: "LITERAL", PatternType.PREFIX: "PREFIXED"}


def _kafka_operation(operation: Operation) -> str:
    # DescribeConfigs -> DESCRIBE_CONFIGS, IdempotentWrite -> IDEMPOTENT_WRITE
    return re.sub(r"(?<!^)(?=[A-Z])", "_", operation.value).upper()


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, frozen=True, extra="forbid")


class AclRule(_Strict):
    """Allow `operations` on the resources of `resource` type named (or prefixed) `name`."""

    resource: ResourceType
    name: str = Field(min_length=1)
    pattern: PatternType = PatternType.LITERAL
    operations: tuple[Operation, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> AclRule:
        if len(set(self.operations)) != len(self.operations):
            raise ValueError(f"{self.name}: an operation is listed twice")
        invalid = set(self.operations) - VALID_OPERATIONS[self.resource]
        if invalid:
            raise ValueError(f"{self.name}: {sorted(invalid)} do not apply to a {self.resource}")
        if self.resource is ResourceType.CLUSTER and (
            self.name != CLUSTER_NAME or self.pattern is not PatternType.LITERAL
        ):
            raise ValueError(f"the cluster resource is named {CLUSTER_NAME!r}, literally")
        if WILDCARD in self.name and (self.name != WILDCARD or self.pattern is not PatternType.LITERAL):
            raise ValueError(f"{self.name!r}: '*' stands alone, with the literal pattern")
        return self

    @property
    def is_wildcard(self) -> bool:
        return self.name == WILDCARD

    def matches(self, resource: ResourceType, name: str) -> bool:
        """Whether this rule names the resource `name` of type `resource`."""
        if resource is not self.resource:
            return False
        if self.is_wildcard:
            return True
        if self.pattern is PatternType.PREFIX:
            return name.startswith(self.name)
        return name == self.name

    def grants(self, operation: Operation) -> bool:
        return any(
            operation is granted or granted is Operation.ALL or operation in _IMPLIED.get(granted, ())
            for granted in self.operations
        )

    def for_prefix(self, prefix: str) -> AclRule:
        if not prefix or self.resource is ResourceType.CLUSTER:
            return self
        if self.is_wildcard:
            return self.model_copy(update={"name": prefix, "pattern": PatternType.PREFIX})
        return self.model_copy(update={"name": prefix + self.name})


class Principal(_Strict):
    """A SCRAM user (Kafka principal `User:<name>`) and what it may do."""

    name: str = Field(pattern=PRINCIPAL_NAME_PATTERN)
    description: str = Field(min_length=1)
    super_user: bool = False
    acls: tuple[AclRule, ...] = Field(min_length=1)

    def allows(self, operation: Operation, resource: ResourceType, name: str) -> bool:
        """Whether this principal's rules allow `operation` on the resource (super users: always)."""
        if self.super_user:
            return True
        return any(rule.matches(resource, name) and rule.grants(operation) for rule in self.acls)

    def for_prefix(self, prefix: str) -> Principal:
        return self.model_copy(update={"acls": tuple(rule.for_prefix(prefix) for rule in self.acls)})


class AclFile(_Strict):
    version: Literal[1]
    principals: tuple[Principal, ...] = Field(min_length=1)

    @field_validator("principals")
    @classmethod
    def _unique(cls, principals: tuple[Principal, ...]) -> tuple[Principal, ...]:
        names = [principal.name for principal in principals]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"principals declared twice: {duplicates}")
        return principals

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(principal.name for principal in self.principals)

    @property
    def super_users(self) -> tuple[str, ...]:
        return tuple(principal.name for principal in self.principals if principal.super_user)

    def principal(self, name: str) -> Principal:
        for principal in self.principals:
            if principal.name == name:
                return principal
        raise KeyError(f"no principal {name!r} in the ACL file")

    def for_prefix(self, prefix: str) -> AclFile:
        """The same grants for topics, groups and transactional ids that carry `prefix`."""
        return self.model_copy(
            update={"principals": tuple(principal.for_prefix(prefix) for principal in self.principals)}
        )

    def bindings(self) -> tuple[AclBinding, ...]:
        """Every rule of every principal as one binding per operation, in the file's order."""
        return tuple(
            AclBinding(
                principal=f"User:{principal.name}",
                resource_type=_KAFKA_RESOURCE_TYPES[rule.resource],
                resource_name=rule.name,
                pattern_type=_KAFKA_PATTERN_TYPES[rule.pattern],
                operation=_kafka_operation(operation),
            )
            for principal in self.principals
            for rule in principal.acls
            for operation in rule.operations
        )

    def topics(self) -> frozenset[str]:
        """Every topic named literally (not by `*` or a prefix)."""
        return frozenset(
            rule.name
            for principal in self.principals
            for rule in principal.acls
            if rule.resource is ResourceType.TOPIC
            and rule.pattern is PatternType.LITERAL
            and not rule.is_wildcard
        )


def parse_acl(text: str) -> AclFile:
    """Validate the YAML text of an ACL file; raises pydantic.ValidationError or ValueError."""
    data = yaml.safe_load(text)
    if not isinstance(data, dict):
        raise ValueError("an ACL file is a mapping with `version` and `principals`")
    # Validated as JSON so that strict mode takes YAML's lists and strings for tuples and enums,
    # and nothing else (no number for a name, no string for a list).
    return AclFile.model_validate_json(json.dumps(data))


def load_acl(path: Path = ACL_FILE) -> AclFile:
    return parse_acl(path.read_text(encoding="utf-8"))


def expand_for_prefix(acl: AclFile, prefix: str) -> AclFile:
    """The ACLs to apply for services that run with KAFKA_TOPIC_PREFIX=`prefix`."""
    return acl.for_prefix(prefix)
