"""The short fault suite in `make test`: the harness of `make chaos` with few events and three
faults (kill -9 of a funding instance with a restart, SMTP 451 for 30 s, SIGSTOP of a registration
instance past its session timeout) on two instances of every service, every message
published twice and some withdrawals before their submissions. It runs as a process of its own,
like `make chaos`, on its own stack (ports +14000, var/chaos-short)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from shared.settings import REPO_ROOT

pytestmark = pytest.mark.e2e


@pytest.mark.timeout(600)  # two instances of every service take a while to start on 2 cores
def test_the_short_fault_suite_loses_nothing_and_duplicates_nothing(tmp_path: Path) -> None:
    figures_file = tmp_path / "figures.json"
    done = subprocess.run(
        [
            sys.executable, "-m", "tests.reliability.chaos",
            "--events", "250", "--short", "--rate", "12",
            "--var-dir", str(REPO_ROOT / "var" / "chaos-short"),
            "--json", str(figures_file),
        ],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=540, check=False,
    )  # fmt: skip
    output = done.stdout[-6000:] + done.stderr[-3000:]
    assert figures_file.exists(), output
    figures = json.loads(figures_file.read_text())
    # The faults happened, and the stream was real.
    assert figures["faults"] == {"kill -9 funding": 1, "smtp 451": 1, "SIGSTOP registration": 1}, output
    assert figures["instances_per_service"] == 2
    assert figures["dead_letters_replayed"] >= 2  # the poisoned submissions, replayed newest first
    assert figures["events"] >= 250 and figures["messages_published"] >= 2 * 250
    assert figures["funding_decisions"] > 0 and figures["emails_expected"] > figures["registrations"]
    assert figures["budget_bound"], "the 2023 budget must bind"
    # Nothing lost, nothing decided twice, never overdrawn.
    for name in (
        "lost_registration_outcomes",
        "lost_funding_decisions",
        "lost_emails",
        "duplicate_decisions",
        "duplicate_publications",
        "decisions_without_seat",
        "unexplained_duplicate_emails",
        "parked_emails",
        "overdrafts",
        "quota_exceeded",
        "invariant_violations",
        "order_violations",
        "final_state_differences",
    ):
        assert figures[name] == 0, f"{name} = {figures[name]}\n{output}"
    assert all(math.isfinite(seconds) for _, seconds in figures["recovery_seconds"]), (
        "a probe never got through"
    )
    assert done.returncode == 0, output
