"""One benchmark at a time: a second one must not remove the first one's stack."""

from __future__ import annotations

from pathlib import Path

import pytest

import bench.__main__ as bench_main


def test_a_second_holder_of_the_lock_is_refused_until_the_first_lets_go(tmp_path: Path) -> None:
    lock = tmp_path / "var" / "bench-stack.lock"
    with bench_main.only_benchmark(lock) as first:
        assert first
        with bench_main.only_benchmark(lock) as second:
            assert not second
    with bench_main.only_benchmark(lock) as after:
        assert after


def test_a_benchmark_started_while_another_runs_leaves_its_stack_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stack_dir = tmp_path / "bench-stack"
    stack_dir.mkdir()
    (stack_dir / "running").write_text("the first benchmark's stack")
    monkeypatch.setattr(bench_main, "VAR_DIR", stack_dir)
    monkeypatch.setattr(bench_main, "LOCK_FILE", tmp_path / "bench-stack.lock")
    with bench_main.only_benchmark() as first:
        assert first
        assert bench_main.main(["--quick"]) == 1
    assert (stack_dir / "running").read_text() == "the first benchmark's stack"
    assert "another benchmark is running" in capsys.readouterr().out
