import os
import subprocess
import sys

from bench.observe import WHOLE_MACHINE, CpuMeter, Snapshot, cores_busy, cpu_ms_per_event, tree_cpu_seconds

BURN = """
import time
end = time.process_time() + 0.5
while time.process_time() < end:
    pass
print(flush=True)
input()
"""


def test_cpu_per_event_skips_processes_without_both_snapshots() -> None:
    before: Snapshot = {"funding": 10.0, "gone": 1.0, "late": None}
    after: Snapshot = {"funding": 12.5, "late": 3.0}
    assert cpu_ms_per_event(before, after, 1000) == {"funding": 2.5}
    assert cpu_ms_per_event(before, after, 0) == {}


def test_a_process_tree_counts_live_children_and_the_ones_it_reaped() -> None:
    start = tree_cpu_seconds(os.getpid())
    assert start is not None
    child = subprocess.Popen([sys.executable, "-c", BURN], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert child.stdout is not None and child.stdin is not None
    child.stdout.readline()  # it has burnt its 0.5 s and waits
    alive = tree_cpu_seconds(os.getpid())
    # The kernel charges CPU in clock ticks by sampling, so 0.5 s burnt may read a tick or two less.
    assert alive is not None and alive - start >= 0.4
    child.stdin.close()
    child.wait()
    reaped = tree_cpu_seconds(os.getpid())
    assert reaped is not None and reaped >= alive


def test_the_meter_names_the_benchmark_and_the_whole_machine() -> None:
    snapshot = CpuMeter({"this test": os.getpid(), "no such process": 2**22 + 1}).snapshot()
    assert snapshot["no such process"] is None
    assert snapshot["this test"] is not None and snapshot["benchmark"] is not None
    machine = snapshot[WHOLE_MACHINE]
    assert machine is not None and machine > 0


def test_cores_busy_over_a_phase() -> None:
    assert cores_busy({WHOLE_MACHINE: 100.0}, {WHOLE_MACHINE: 130.0}, 20.0) == 1.5
    assert cores_busy({WHOLE_MACHINE: None}, {WHOLE_MACHINE: 130.0}, 20.0) is None
    assert cores_busy({WHOLE_MACHINE: 100.0}, {WHOLE_MACHINE: 130.0}, 0.0) is None
