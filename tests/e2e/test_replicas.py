"""Three instances of every service (`deploy.local.stack up` with REPLICAS=3) on a stack of their
own: the partitions spread over the instances of each consumer group, a stopped instance's
partitions move to the others, and the decisions are those the programme's rules give for the
scenario, as with one instance (docs/adr/0017-instances-and-recovery.md).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from typing import Any

import pytest
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment
from aiokafka.protocol import admin as admin_protocol

from deploy.local.config import SERVICES
from lotse.demo import publish_scenario, wait_until_handled
from lotse.log import read_all
from lotse.scenario import ScenarioSize, build_scenario
from shared.directory import load_directory
from shared.program import DEFAULT_PROGRAM_FILE, load_program
from shared.settings import DEFAULT_DIRECTORY_FILE, REPO_ROOT
from shared.topics import OPERATIONS_COMMANDS, Topics
from tests.e2e.test_demo import ELIGIBLE, QUOTA
from tests.support.kafka import admin_client
from tests.support.stack import Stack, port_open, process_alive, stack_env, stack_ports

pytestmark = pytest.mark.e2e

PORT_OFFSET = 12_000
REPLICAS = 3
# No withdrawals: every registration gets exactly one funding decision, whatever the order.
SIZE = ScenarioSize(
    seminars_first_year=1,
    seminars_second_year=2,
    capacity=40,
    kommunen=12,
    not_eligible=2,
    over_quota=3,
    withdrawals=0,
    fee_cents=100_000,
)
# aiokafka 0.13 decodes a DescribeGroups v3 reply with the v2 schema (without
# authorized_operations) and fails; Kafka 4 answers v3. The test's admin client reads v3 right.
admin_protocol.DescribeGroupsRequest_v3.RESPONSE_TYPE = admin_protocol.DescribeGroupsResponse_v3


@pytest.fixture(scope="module")
def replicated() -> Iterator[Stack]:
    var_dir = REPO_ROOT / "var" / "replicas-stack"
    shutil.rmtree(var_dir, ignore_errors=True)
    var_dir.mkdir(parents=True)
    os.chmod(var_dir, 0o755)  # the postgres system user must reach its data folder
    env = stack_env(var_dir, PORT_OFFSET)
    env["REPLICAS"] = str(REPLICAS)
    started = Stack(env, var_dir)
    try:
        up = started.run("-m", "deploy.local.stack", "up", check=False, timeout=600)
        assert up.returncode == 0, up.stdout + up.stderr
        instances = {f"{s}-{i}" if i else s for s in SERVICES for i in range(REPLICAS)}
        assert instances <= set(started.pids()), started.pids()
        yield started
    finally:
        pids = started.pids()
        down = started.run("-m", "deploy.local.stack", "down", check=False)
    assert down.returncode == 0, down.stdout + down.stderr
    assert not [name for name, pid in pids.items() if process_alive(pid)]
    assert not [port for port in stack_ports(started.env) if port_open(port)]


# group -> topic -> instance -> partitions
Assignment = dict[str, dict[str, dict[str, set[int]]]]


def assignments(stack: Stack) -> Assignment:
    """Which instance holds which partitions, from the broker's description of each group.

    A static member's id begins with its group instance id, `<service>-<instance>-<topic>`."""

    async def describe() -> Assignment:
        admin = admin_client(stack.bootstrap, security=stack.admin_security)
        await admin.start()
        try:
            replies = await admin.describe_consumer_groups(list(SERVICES))
        finally:
            await admin.close()
        found: Assignment = {}
        for reply in replies:
            for group in reply.groups:
                topics: dict[str, dict[str, set[int]]] = defaultdict(dict)
                group_id, members = group[1], group[5]
                for member in members:
                    member_id, assignment = member[0], member[4]
                    instance = member_id.removeprefix(f"{group_id}-").split("-", 1)[0]
                    if not assignment:
                        continue
                    for topic, partitions in ConsumerProtocolMemberAssignment.decode(assignment).assignment:
                        topics[topic][instance] = set(partitions)
                found[group_id] = dict(topics)
        return found

    return asyncio.run(describe())


# Operators' commands keep one order on one partition: one instance of each service holds it.
ONE_PARTITION_TOPICS = {OPERATIONS_COMMANDS}


def settled(topic: str, held: dict[str, set[int]], instances: set[str]) -> bool:
    """Exactly `instances` hold partitions of the topic, each some, together all of them once (a
    one-partition topic: one of `instances` holds it)."""
    partitions = sorted(p for ps in held.values() for p in ps)
    once = partitions == list(range(len(partitions)))
    if topic in ONE_PARTITION_TOPICS:
        return once and len(held) == 1 and set(held) <= instances
    return set(held) == instances and all(held.values()) and once


def wait_for_assignment(stack: Stack, instances: set[str], timeout: float = 90.0) -> Assignment:
    """Until every topic of every group has all its partitions held by exactly `instances`."""
    deadline = time.monotonic() + timeout
    last: Assignment = {}
    while time.monotonic() < deadline:
        last = assignments(stack)
        if len(last) == len(SERVICES) and all(
            topics and all(settled(topic, held, instances) for topic, held in topics.items())
            for topics in last.values()
        ):
            return last
        time.sleep(1)
    raise AssertionError(f"the partitions did not settle on instances {sorted(instances)}: {last}")


def stop_instance(stack: Stack, name: str, how: signal.Signals) -> None:
    pid = stack.pids()[name]
    os.kill(pid, how)
    deadline = time.monotonic() + 30
    while process_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not process_alive(pid)
    (stack.var_dir / "run" / f"{name}.pid").unlink(missing_ok=True)


def test_partitions_spread_over_the_instances_and_move_when_one_stops(replicated: Stack) -> None:
    every = {str(i) for i in range(REPLICAS)}
    spread = wait_for_assignment(replicated, every)
    for group, topics in spread.items():
        for topic, held in topics.items():
            if topic in ONE_PARTITION_TOPICS:
                continue
            assert set(held) == every, (group, topic, held)
            assert all(held.values()), (group, topic, held)  # each instance holds partitions

    # A SIGTERM'd static member does not leave the group: its partitions move once its session
    # ends (KAFKA_SESSION_TIMEOUT_MS); a kill -9'd one the same way.
    for service in SERVICES:
        stop_instance(replicated, f"{service}-2", signal.SIGTERM if service != "funding" else signal.SIGKILL)
    moved = wait_for_assignment(replicated, every - {"2"})
    for group, topics in moved.items():
        for topic, held in topics.items():
            assert set(held) <= {"0", "1"}, (group, topic, held)
            if topic not in ONE_PARTITION_TOPICS:
                assert set(held) == {"0", "1"}, (group, topic, held)


def test_the_instances_decide_as_the_rules_do_for_one(replicated: Stack) -> None:
    directory = load_directory(DEFAULT_DIRECTORY_FILE)
    scenario = build_scenario(directory, load_program(DEFAULT_PROGRAM_FILE), SIZE, seed=2017)

    async def replay() -> None:
        await publish_scenario(replicated.bootstrap, Topics(), scenario)
        await wait_until_handled(replicated.bootstrap, Topics(), scenario, None, timeout=300)

    asyncio.run(replay())
    decisions = asyncio.run(read_all(replicated.bootstrap, Topics().funding_decisions))
    by_registration: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in decisions:
        by_registration[event["data"]["registration_id"]].append(event)
    registrations = {r.registration_id: r for r in scenario.registrations}
    # One decision per registration: nothing lost, nothing decided twice.
    assert set(by_registration) == set(registrations)
    assert all(len(events) == 1 for events in by_registration.values()), by_registration

    outcomes: dict[str, Counter[str]] = defaultdict(Counter)
    for registration_id, [event] in by_registration.items():
        kommune = registrations[registration_id].kommune
        eligible = kommune.kind in ELIGIBLE and kommune.land == "03"
        if not eligible:
            assert event["event_type"] == "funding.declined", event
            assert event["data"]["reason"] == "kommune_not_eligible", event
            continue
        outcomes[kommune.key][event["event_type"]] += 1
    # Per Kommune the quota decides how many are funded, however the instances interleaved.
    per_kommune = Counter(r.kommune.key for r in scenario.registrations)
    for key, counted in outcomes.items():
        assert counted["funding.approved"] == min(QUOTA, per_kommune[key]), (key, counted)
        assert counted["funding.waitlisted"] == max(0, per_kommune[key] - QUOTA), (key, counted)
