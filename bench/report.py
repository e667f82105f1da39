"""The run's output: a table on the terminal, JSON and PNG plots under bench/results/."""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench.hops import SEGMENTS
from bench.run import Results

RESULTS_DIR = Path(__file__).parent / "results"

# The targets of the latency and efficiency issue: (label, where in a phase's figures, goal,
# True when higher is better, scale for display). Latency targets hold at 100/s and at 500/s.
LATENCY_TARGETS: list[tuple[str, tuple[str, ...], float, bool, float]] = [
    ("p99 to decision (ms)", ("decision_latency_s", "p99"), 100.0, False, 1000.0),
    ("p99 to first email (ms)", ("first_email_latency_s", "p99"), 1000.0, False, 1000.0),
]
LATENCY_TARGET_RATES = ("100", "500")
BURST_TARGETS: list[tuple[str, tuple[str, ...], float, bool, float]] = [
    ("decisions / raw floor", ("decisions_to_raw_floor",), 0.5, True, 1.0),
    ("registrations emailed / raw floor", ("emailed_to_raw_floor",), 0.5, True, 1.0),
    (
        "CPU ms per registration, services + Kafka + PostgreSQL",
        ("system_cpu_ms_per_registration",),
        2.0,
        False,
        1.0,
    ),
]
RSS_LIMIT_MB = 200


def _get(data: Any, path: tuple[str, ...]) -> Any:
    node: Any = data
    for part in path:
        node = node.get(part) if isinstance(node, dict) else None
    return node


def _fmt(value: Any, scale: float = 1.0, digits: int = 0) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, int | float):
        return f"{value * scale:,.{digits}f}"
    return str(value)


def _judged(value: Any, goal: float, higher: bool, scale: float, digits: int) -> str:
    shown = _fmt(value, scale, digits)
    if isinstance(value, int | float):
        met = value >= goal if higher else value * scale <= goal
        shown += "" if met else " (!)"
    return shown


def table(results: Results) -> Table:
    out = Table(title="Digitallotsen benchmark", show_lines=False)
    out.add_column("measure")
    out.add_column("value", justify="right")
    out.add_column("target", justify="right")
    for kind, floor in results.floors.items():
        out.add_row(f"floor ({kind}): events/s through 3 hops", _fmt(floor.get("per_second")), "")
    for rate, phase in results.steady.items():
        out.add_row(
            f"latency {rate}/s: offered/s, complete",
            f"{_fmt(phase.get('offered_per_s'))}, {_fmt(phase.get('complete'))}",
            "",
        )
        for kind in ("decision", "first_email", "last_email"):
            latency = phase.get(f"{kind}_latency_s", {})
            label = kind.replace("_", " ")
            shown = " / ".join(_fmt(latency.get(q), 1000.0) for q in ("p50", "p95", "p99", "max"))
            out.add_row(f"latency {rate}/s: {label} p50/p95/p99/max (ms)", shown, "")
        for label, path, goal, higher, scale in LATENCY_TARGETS:
            if rate in LATENCY_TARGET_RATES:
                value = _get(phase, path)
                out.add_row(
                    f"latency {rate}/s: {label}", _judged(value, goal, higher, scale, 0), f"≤ {goal:g}"
                )
        segments = _get(phase, ("hops", "segments_s")) or {}
        for segment in SEGMENTS:
            figures = segments.get(segment, {})
            shown = " / ".join(_fmt(figures.get(q), 1000.0) for q in ("p50", "p99"))
            out.add_row(f"latency {rate}/s: hop {segment} p50/p99 (ms)", shown, "")
        out.add_row(
            f"latency {rate}/s: CPU ms per registration, services + Kafka + PostgreSQL",
            _fmt(phase.get("system_cpu_ms_per_registration"), digits=2),
            "",
        )
        out.add_row(
            f"latency {rate}/s: cores busy (of {os.cpu_count()})", _fmt(phase.get("cores_busy"), digits=2), ""
        )
    for size, burst in results.bursts.items():
        out.add_row(f"burst {int(size):,}: complete", _fmt(burst.get("complete")), "")
        out.add_row(f"burst {int(size):,}: decisions/s", _fmt(burst.get("decisions_per_s")), "")
        out.add_row(
            f"burst {int(size):,}: registrations emailed/s",
            _fmt(burst.get("registrations_emailed_per_s")),
            "",
        )
        out.add_row(
            f"burst {int(size):,}: decisions / FastStream floor",
            _fmt(burst.get("decisions_to_faststream_floor"), digits=2),
            "",
        )
        for label, path, goal, higher, scale in BURST_TARGETS:
            value = _get(burst, path)
            out.add_row(
                f"burst {int(size):,}: {label}",
                _judged(value, goal, higher, scale, 2),
                f"{'≥' if higher else '≤'} {goal:g}",
            )
        out.add_row(
            f"burst {int(size):,}: cores busy (of {os.cpu_count()})",
            _fmt(burst.get("cores_busy"), digits=2),
            "",
        )
        out.add_row(
            f"burst {int(size):,}: WAL KB per registration (three databases)",
            _fmt(burst.get("wal_kb_per_registration"), digits=1),
            "",
        )
        spent = burst.get("cpu_ms_per_registration", {})
        for name, ms in sorted(spent.items(), key=lambda item: -item[1]):
            out.add_row(f"burst {int(size):,}: CPU ms per registration, {name}", _fmt(ms, digits=2), "")
    for service, peak in results.peak_rss_mb.items():
        out.add_row(
            f"peak RSS {service} (MB)", _judged(peak, RSS_LIMIT_MB, False, 1.0, 1), f"≤ {RSS_LIMIT_MB}"
        )
    return out


def write_json(results: Results, stamp: str) -> Path:
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"{stamp}.json"
    path.write_text(json.dumps(asdict(results), indent=1) + "\n")
    return path


def plot(results: Results, stamp: str) -> list[Path]:
    """Latency against offered load, throughput against burst size, and each burst over time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    replicas = results.tuning.get("REPLICAS", "1")
    written = []
    figure, (latency_axis, throughput_axis) = plt.subplots(1, 2, figsize=(13, 5))
    rates = sorted(results.steady, key=float)
    for kind, label in (("decision", "to decision"), ("first_email", "to first email")):
        for q in ("p50", "p99"):
            values = [_get(results.steady[r], (f"{kind}_latency_s", q)) for r in rates]
            latency_axis.plot(
                [float(r) for r in rates],
                [float("nan") if v is None else v * 1000 for v in values],
                marker="o",
                label=f"{q} {label}",
            )
    latency_axis.axhline(100, color="grey", linestyle=":", label="decision target (p99)")
    latency_axis.axhline(1000, color="grey", linestyle="--", label="email target (p99)")
    latency_axis.set_yscale("log")
    latency_axis.set_xlabel("offered registrations/s")
    latency_axis.set_ylabel("ms from occurred_at")
    latency_axis.set_title(f"latency against offered load ({replicas} instance(s) per service)")
    latency_axis.legend(fontsize="small")
    sizes = sorted(results.bursts, key=int)
    for key, label in (
        ("decisions_per_s", "decisions/s"),
        ("registrations_emailed_per_s", "registrations emailed/s"),
    ):
        values = [results.bursts[s].get(key) for s in sizes]
        throughput_axis.plot(
            [int(s) for s in sizes],
            [float("nan") if v is None else v for v in values],
            marker="o",
            label=label,
        )
    for kind, floor in results.floors.items():
        if floor.get("per_second"):
            throughput_axis.axhline(
                floor["per_second"],
                linestyle="--",
                color="grey" if kind == "raw" else "silver",
                label=f"{kind} floor",
            )
    throughput_axis.set_xscale("log")
    throughput_axis.set_xlabel("registrations in the burst")
    throughput_axis.set_ylabel("per second")
    throughput_axis.set_title("throughput against burst size")
    throughput_axis.legend(fontsize="small")
    figure.tight_layout()
    path = RESULTS_DIR / f"{stamp}-curves.png"
    figure.savefig(path, dpi=100)
    plt.close(figure)
    written.append(path)

    figure, axes = plt.subplots(len(sizes) or 1, 1, figsize=(11, 3.5 * max(1, len(sizes))), squeeze=False)
    for axis, size in zip(axes[:, 0], sizes, strict=False):
        axis.plot(results.series.get(f"burst{size}_decisions_per_s", []), label="funding decisions/s")
        axis.plot(results.series.get(f"burst{size}_emails_per_s", []), label="emails accepted/s")
        axis.set_title(f"burst of {int(size):,} registrations")
        axis.set_xlabel("seconds since the first publish")
        axis.set_ylabel("per second")
        axis.legend()
    figure.tight_layout()
    path = RESULTS_DIR / f"{stamp}-bursts.png"
    figure.savefig(path, dpi=100)
    plt.close(figure)
    written.append(path)
    return written


def report(results: Results, stamp: str, console: Console) -> None:
    console.print(table(results))
    console.print(f"JSON: {write_json(results, stamp)}")
    for path in plot(results, stamp):
        console.print(f"plot: {path}")
