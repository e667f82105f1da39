"""Applies deploy/acl.yaml to a broker with Kafka's admin API (CreateAcls / DeleteAcls, v1).

aiokafka's admin client has no ACL methods; its protocol module has the requests, sent here in one
batch to one node of the cluster. Creating an ACL that exists is a no-op in Kafka, so applying the
file again (every `make up`, every test's prefix) is idempotent. Super users (admin) get no ACLs:
`super.users` in server.properties covers them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import for_code
from aiokafka.protocol.admin import CreateAclsRequest_v1, DeleteAclsRequest_v1, DescribeAclsRequest
from aiokafka.protocol.api import Request

from deploy.acl import AclFile, Operation, PatternType, ResourceType, load_acl
from shared.kafka import KafkaSecurity, make_admin

# Kafka's wire codes (org.apache.kafka.common.acl / resource).
RESOURCE_CODES = {
    ResourceType.TOPIC: 2,
    ResourceType.GROUP: 3,
    ResourceType.CLUSTER: 4,
    ResourceType.TRANSACTIONAL_ID: 5,
}
PATTERN_CODES = {PatternType.LITERAL: 3, PatternType.PREFIX: 4}
OPERATION_CODES = {
    Operation.ALL: 2,
    Operation.READ: 3,
    Operation.WRITE: 4,
    Operation.CREATE: 5,
    Operation.DELETE: 6,
    Operation.ALTER: 7,
    Operation.DESCRIBE: 8,
    Operation.CLUSTER_ACTION: 9,
    Operation.DESCRIBE_CONFIGS: 10,
    Operation.ALTER_CONFIGS: 11,
    Operation.IDEMPOTENT_WRITE: 12,
}
ALLOW = 3
ANY_HOST = "*"


@dataclass(frozen=True)
class AclBinding:
    """One Kafka ACL: allow `principal` `operation` on a resource (by name or prefix)."""

    principal: str
    resource: ResourceType
    name: str
    pattern: PatternType
    operation: Operation

    def as_creation(self) -> tuple[int, str, int, str, str, int, int]:
        return (
            RESOURCE_CODES[self.resource],
            self.name,
            PATTERN_CODES[self.pattern],
            f"User:{self.principal}",
            ANY_HOST,
            OPERATION_CODES[self.operation],
            ALLOW,
        )


def bindings(acl: AclFile) -> list[AclBinding]:
    """Every ACL of the file's principals that are not super users, one per operation."""
    return [
        AclBinding(principal.name, rule.resource, rule.name, rule.pattern, operation)
        for principal in acl.principals
        if not principal.super_user
        for rule in principal.acls
        for operation in rule.operations
    ]


class _CreateAcls(Request[CreateAclsRequest_v1]):  # type: ignore[misc]  # aiokafka.protocol is untyped
    API_KEY = 30

    def __init__(self, creations: Sequence[tuple[int, str, int, str, str, int, int]]) -> None:
        self._creations = list(creations)

    def build(self, request_struct_class: type[CreateAclsRequest_v1]) -> CreateAclsRequest_v1:
        return request_struct_class(self._creations)


class _DeleteAcls(Request[DeleteAclsRequest_v1]):  # type: ignore[misc]
    API_KEY = 31

    def __init__(self, filters: Sequence[tuple[int, str, int, str, str, int, int]]) -> None:
        self._filters = list(filters)

    def build(self, request_struct_class: type[DeleteAclsRequest_v1]) -> DeleteAclsRequest_v1:
        return request_struct_class(self._filters)


class AclError(RuntimeError):
    pass


async def _send(
    admin: AIOKafkaAdminClient, request: Request[CreateAclsRequest_v1] | Request[DeleteAclsRequest_v1]
) -> list[tuple[int, str]]:
    response = await admin._send_request(request)
    results = (
        response.creation_responses if hasattr(response, "creation_responses") else response.filter_responses
    )
    return [(result[0], result[1]) for result in results]


async def _wait_until_authorizing(
    admin: AIOKafkaAdminClient, last: tuple[int, str, int, str, str, int, int], timeout: float = 30.0
) -> None:
    """CreateAcls returns once the ACLs are in the metadata log; the broker's authorizer applies
    them a moment later. They are applied in order: once the last one shows, all do."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        response = await admin._send_request(DescribeAclsRequest(*last))
        if response.error_code == 0 and response.resources:
            return
        if loop.time() > deadline:
            raise AclError(f"the broker did not apply the new ACLs within {timeout:.0f} s")
        await asyncio.sleep(0.05)


async def create_acls(
    bootstrap: str, acl_bindings: Iterable[AclBinding], *, security: KafkaSecurity | None = None
) -> int:
    """Create the bindings (existing ones stay as they are); returns how many were sent."""
    creations = [binding.as_creation() for binding in acl_bindings]
    if not creations:
        return 0
    admin = make_admin(bootstrap, client_id="lotse-acls", security=security)
    await admin.start()
    try:
        failures = [(code, message) for code, message in await _send(admin, _CreateAcls(creations)) if code]
        if not failures:
            await _wait_until_authorizing(admin, creations[-1])
    finally:
        await admin.close()
    if failures:
        code, message = failures[0]
        raise AclError(f"{len(failures)} ACL(s) refused: {for_code(code).__name__}: {message}")
    return len(creations)


async def delete_acls(
    bootstrap: str, acl_bindings: Iterable[AclBinding], *, security: KafkaSecurity | None = None
) -> None:
    filters = [binding.as_creation() for binding in acl_bindings]
    if not filters:
        return
    admin = make_admin(bootstrap, client_id="lotse-acls", security=security)
    await admin.start()
    try:
        failures = [(code, message) for code, message in await _send(admin, _DeleteAcls(filters)) if code]
    finally:
        await admin.close()
    if failures:
        code, message = failures[0]
        raise AclError(f"{len(failures)} ACL deletion(s) refused: {for_code(code).__name__}: {message}")


def acl_for_prefix(prefix: str = "") -> AclFile:
    """deploy/acl.yaml, for the topics, groups and transactional ids under `prefix`."""
    acl = load_acl()
    return acl.for_prefix(prefix) if prefix else acl


async def apply_acl_file(bootstrap: str, prefix: str = "", *, security: KafkaSecurity | None = None) -> int:
    return await create_acls(bootstrap, bindings(acl_for_prefix(prefix)), security=security)


async def remove_acl_file(bootstrap: str, prefix: str, *, security: KafkaSecurity | None = None) -> None:
    """Remove what `apply_acl_file(prefix)` created (a test's prefix, after the test)."""
    if not prefix:
        raise ValueError("only a prefix's ACLs are removed; the stack's own stay")
    await delete_acls(bootstrap, bindings(acl_for_prefix(prefix)), security=security)
