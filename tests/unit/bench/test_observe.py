import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from bench.observe import (
    WHOLE_MACHINE,
    CpuMeter,
    Snapshot,
    cores_busy,
    cpu_ms_per_event,
    jit_compiler_seconds,
    tree_cpu_seconds,
)

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


class BurningThread(threading.Thread):
    """A thread of this process, known to the kernel by `name`, that burns CPU and then waits
    (a thread's time leaves /proc with it)."""

    def __init__(self, name: str, seconds: float) -> None:
        super().__init__()
        self.kernel_name, self.seconds = name, seconds
        self.burnt, self.done = threading.Event(), threading.Event()

    def run(self) -> None:
        Path(f"/proc/self/task/{threading.get_native_id()}/comm").write_text(self.kernel_name)
        end = time.thread_time() + self.seconds
        while time.thread_time() < end:
            pass
        self.burnt.set()
        self.done.wait()


def test_only_the_jvm_compiler_threads_count_as_jit_time() -> None:
    start = jit_compiler_seconds(os.getpid())
    assert start == 0.0  # no thread of pytest is called so
    # The kernel keeps 15 characters of HotSpot's "C2 CompilerThread0".
    threads = [BurningThread("worker", 0.3), BurningThread("C2 CompilerThre", 0.5)]
    for thread in threads:
        thread.start()
        thread.burnt.wait()
    try:
        compiled = jit_compiler_seconds(os.getpid())
        # Charged in clock ticks by sampling: 0.5 s may read a tick or two less, 0.3 s never 0.4.
        assert compiled is not None and 0.4 <= compiled < 0.7
    finally:
        for thread in threads:
            thread.done.set()
            thread.join()
    assert jit_compiler_seconds(2**22 + 1) is None
