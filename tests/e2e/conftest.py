"""The end-to-end tests run against a second stack of their own (tests/support/stack.py).

The stack fixture checks what `make up` and `make down` promise: a second `up` does no harm, and
`down` leaves no process behind.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

from shared.program import DEFAULT_PROGRAM_FILE
from shared.settings import REPO_ROOT
from tests.support.stack import COMPONENTS, Stack, port_open, process_alive, stack_env, stack_ports

PORT_OFFSET = 10_000


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    var_dir = REPO_ROOT / "var" / "e2e-stack"
    shutil.rmtree(var_dir, ignore_errors=True)
    var_dir.mkdir(parents=True)
    os.chmod(var_dir, 0o755)  # the postgres system user must reach its data folder
    # test_demo.py checks Niedersachsen's figures, whatever programme the caller selected.
    env = {**stack_env(var_dir, PORT_OFFSET), "FUNDING_PROGRAM_FILE": str(DEFAULT_PROGRAM_FILE)}
    started = Stack(env, var_dir)
    try:
        first = started.run("-m", "deploy.local.stack", "up", check=False)
        assert first.returncode == 0, first.stdout + first.stderr
        pids = started.pids()
        assert set(pids) == set(COMPONENTS), pids
        # `make up` twice does no harm: nothing new is started, the same processes keep running.
        second = started.run("-m", "deploy.local.stack", "up", check=False)
        assert second.returncode == 0, second.stdout + second.stderr
        assert "started now: nothing" in second.stdout
        assert started.pids() == pids
        yield started
    finally:
        pids = started.pids()
        down = started.run("-m", "deploy.local.stack", "down", check=False)
    assert down.returncode == 0, down.stdout + down.stderr
    # `make down` stops exactly what `make up` started, and leaves nothing behind.
    assert not [name for name, pid in pids.items() if process_alive(pid)]
    assert not [port for port in stack_ports(started.env) if port_open(port)]
