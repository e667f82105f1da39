"""The run's output: a table on the terminal, JSON and a PNG plot under bench/results/."""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench.run import Results

RESULTS_DIR = Path(__file__).parent / "results"

# The targets: (label, where in the results, goal, True when higher is better)
TARGETS: list[tuple[str, tuple[str, ...], float, bool]] = [
    ("burst: funding decisions/s", ("burst", "decisions_per_s"), 5000, True),
    ("burst: emails/s", ("burst", "emails_per_s"), 1500, True),
    ("burst: decisions / floor", ("burst", "ratio_to_floor"), 0.5, True),
    ("steady: p99 to decision (ms)", ("steady", "decision_latency_s", "p99"), 100, False),
]


def _get(data: dict[str, Any], path: tuple[str, ...]) -> Any:
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


def table(results: Results) -> Table:
    data = asdict(results)
    out = Table(title="Digitallotsen benchmark", show_lines=False)
    out.add_column("measure")
    out.add_column("value", justify="right")
    out.add_column("target", justify="right")
    floor, burst, steady = results.floor, results.burst, results.steady
    out.add_row("floor: events through 3 pass-through hops", _fmt(floor.get("events")), "")
    out.add_row("floor: events/s", _fmt(floor.get("per_second")), "")
    out.add_row("burst: registrations", _fmt(burst.get("expected")), "")
    out.add_row("burst: complete", _fmt(burst.get("complete")), "")
    out.add_row("burst: publish seconds", _fmt(burst.get("publish_seconds"), digits=1), "")
    for label, path, goal, higher in TARGETS:
        scale, digits = (1000.0, 0) if label.endswith("(ms)") else (1.0, 2 if "floor" in label else 0)
        value = _get(data, path)
        shown = _fmt(value, scale, digits)
        if value is not None:
            met = value >= goal if higher else value * scale <= goal
            shown += "" if met else " (!)"
        out.add_row(label, shown, f"{'≥' if higher else '≤'} {goal:g}")
    out.add_row("burst: registrations fully emailed/s", _fmt(burst.get("registrations_emailed_per_s")), "")
    out.add_row("burst: emailed / floor", _fmt(burst.get("emailed_ratio_to_floor"), digits=2), "")
    out.add_row(f"burst: cores busy (of {os.cpu_count()})", _fmt(burst.get("cores_busy"), digits=2), "")
    spent = burst.get("cpu_ms_per_registration", {})
    for name, ms in sorted(spent.items(), key=lambda item: -item[1]):
        out.add_row(f"burst: CPU ms per registration, {name}", _fmt(ms, digits=2), "")
    out.add_row("steady: offered/s", _fmt(steady.get("offered_per_s")), "")
    out.add_row("steady: complete", _fmt(steady.get("complete")), "")
    for kind in ("decision", "email"):
        latency = steady.get(f"{kind}_latency_s", {})
        for q in ("p50", "p95", "p99", "max"):
            out.add_row(f"steady: {q} to {kind} (ms)", _fmt(latency.get(q), 1000.0), "")
        out.add_row(f"steady: registrations with {kind} latency", _fmt(latency.get("count")), "")
    for service, peak in results.peak_rss_mb.items():
        shown = _fmt(peak, digits=1)
        if peak is not None and peak > 200:
            shown += " (!)"
        out.add_row(f"peak RSS {service} (MB)", shown, "≤ 200")
    return out


def write_json(results: Results, stamp: str) -> Path:
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"{stamp}.json"
    path.write_text(json.dumps(asdict(results), indent=1) + "\n")
    return path


def plot(results: Results, stamp: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = results.series
    figure, (burst_axis, steady_axis, latency_axis) = plt.subplots(3, 1, figsize=(11, 11))
    burst_axis.plot(series.get("decisions_per_s", []), label="funding decisions/s")
    burst_axis.plot(series.get("emails_per_s", []), label="emails accepted/s")
    if results.floor.get("per_second"):
        burst_axis.axhline(results.floor["per_second"], color="grey", linestyle="--", label="floor events/s")
    burst_axis.set_title(f"burst of {results.burst.get('expected', 0):,} registrations")
    burst_axis.set_xlabel("seconds since the first publish")
    burst_axis.set_ylabel("per second")
    burst_axis.legend()
    steady_axis.plot(series.get("steady_decisions_per_s", []), label="funding decisions/s")
    steady_axis.plot(series.get("steady_emails_per_s", []), label="emails accepted/s")
    steady_axis.set_title(f"steady load, {results.options['steady_rate']:.0f} registrations/s offered")
    steady_axis.set_xlabel("seconds since the steady load began")
    steady_axis.set_ylabel("per second")
    steady_axis.legend()
    for name in ("decision", "email"):
        for q in (50, 99):
            values = [None if v is None else v * 1000 for v in series.get(f"steady_{name}_p{q}", [])]
            latency_axis.plot([float("nan") if v is None else v for v in values], label=f"p{q} to {name}")
    latency_axis.set_yscale("log")
    latency_axis.set_title("steady load: latency from occurred_at, by second of submission")
    latency_axis.set_xlabel("seconds since the steady load began")
    latency_axis.set_ylabel("ms")
    latency_axis.legend()
    figure.tight_layout()
    path = RESULTS_DIR / f"{stamp}.png"
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def report(results: Results, stamp: str, console: Console) -> None:
    console.print(table(results))
    console.print(f"JSON: {write_json(results, stamp)}")
    console.print(f"plot: {plot(results, stamp)}")
