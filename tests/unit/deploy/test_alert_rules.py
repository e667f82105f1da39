"""The monitoring files: the alert rules pass promtool's own checks and unit tests, every alert has a
test case that fires and one that stays quiet, and the rules and the dashboard ask only for metrics
that the services export (shared/metrics.py and FastStream's middleware)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from deploy.local.config import DEFAULT_HTTP_PORTS as LOCAL_HTTP_PORTS
from deploy.monitoring import config, dashboard
from shared.metrics import faststream_metric_names, lotse_metric_names

MONITORING = config.MONITORING_DIR
RULES_FILE = MONITORING / "rules" / "lotse.rules.yml"
RULES_TESTS = MONITORING / "tests" / "lotse.rules.test.yml"
GRAFANA = MONITORING / "grafana"
# Series Prometheus writes itself for every target.
PROMETHEUS_SERIES = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}
KNOWN_METRICS = lotse_metric_names() | faststream_metric_names() | PROMETHEUS_SERIES

POLICY_RC_D = Path("/usr/sbin/policy-rc.d")


def _install_promtool() -> None:
    """Debian's `prometheus` package ships promtool. Its daemon must never start here: a
    policy-rc.d that refuses every start is in place while apt runs, and a daemon that a booted
    systemd started anyway is stopped and disabled."""
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        pytest.fail("promtool is missing: install Debian's `prometheus` package (see .ci/run)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "-o", "DPkg::Lock::Timeout=600"]
    placed_policy = not POLICY_RC_D.exists()
    if placed_policy:
        POLICY_RC_D.write_text("#!/bin/sh\n# placed by tests/unit/deploy/test_alert_rules.py\nexit 101\n")
        POLICY_RC_D.chmod(0o755)
    try:
        if subprocess.run([*install, "prometheus"], env=env, check=False).returncode != 0:
            subprocess.run(["apt-get", "update", "-q"], env=env, check=True)
            subprocess.run([*install, "prometheus"], env=env, check=True)
    finally:
        if placed_policy:
            POLICY_RC_D.unlink()
    # A policy-rc.d of the machine's own may allow starts: stop what started, as .ci/run does.
    if Path("/run/systemd/system").is_dir() and shutil.which("systemctl"):
        subprocess.run(["systemctl", "disable", "--now", "prometheus"], check=False)
    elif Path("/etc/init.d/prometheus").exists():
        subprocess.run(["/etc/init.d/prometheus", "stop"], check=False)


@pytest.fixture(scope="module")
def promtool() -> str:
    if shutil.which("promtool") is None:
        _install_promtool()
    found = shutil.which("promtool")
    assert found is not None, "installing Debian's prometheus package gave no promtool"
    return found


def run_promtool(promtool: str, *args: str, cwd: Path = MONITORING) -> str:
    result = subprocess.run([promtool, *args], cwd=cwd, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


# --- promtool ------------------------------------------------------------------------------------


def test_promtool_checks_the_rules(promtool: str) -> None:
    out = run_promtool(promtool, "check", "rules", str(RULES_FILE))
    assert f"SUCCESS: {len(alert_rules())} rules found" in out


def test_the_rules_pass_their_promtool_unit_tests(promtool: str) -> None:
    out = run_promtool(promtool, "test", "rules", str(RULES_TESTS.relative_to(MONITORING)))
    assert "SUCCESS" in out


def test_promtool_checks_the_scrape_config_and_finds_the_rules(promtool: str) -> None:
    out = run_promtool(promtool, "check", "config", "prometheus.yml")
    assert "1 rule files found" in out


# --- what the rules and their tests cover ---------------------------------------------------------


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES_FILE.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def rule_test_cases() -> Iterator[dict[str, Any]]:
    for test in yaml.safe_load(RULES_TESTS.read_text())["tests"]:
        yield from test.get("alert_rule_test", [])


def test_the_issue_asks_for_these_alerts() -> None:
    assert {rule["alert"] for rule in alert_rules()} >= {
        "LotseConsumerLagGrowing",
        "LotseOutboxStuck",
        "LotseEmailsParked",
        "LotseDeadLettersArriving",
        "LotseBudgetNearlySpent",
        "LotseServiceNotReady",
    }


def test_every_alert_has_a_case_that_fires_and_one_that_stays_quiet() -> None:
    cases = list(rule_test_cases())
    for rule in alert_rules():
        mine = [case for case in cases if case["alertname"] == rule["alert"]]
        assert any(case.get("exp_alerts") for case in mine), f"{rule['alert']} never fires in a test"
        assert any(not case.get("exp_alerts") for case in mine), f"{rule['alert']} is never quiet in a test"


def test_every_alert_is_documented() -> None:
    for rule in alert_rules():
        assert rule["labels"]["severity"] in {"info", "warning", "critical"}
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]
    adr = (config.MONITORING_DIR.parents[1] / "docs" / "adr" / "0015-observability.md").read_text()
    missing = [rule["alert"] for rule in alert_rules() if rule["alert"] not in adr]
    assert not missing, f"ADR 0015 does not explain {missing}"


# --- metric names in PromQL ------------------------------------------------------------------------

_PROMQL_WORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right"}
_PROMQL_WORDS |= {"bool", "offset", "inf", "nan", "le"}


def metric_names_in(expr: str) -> set[str]:
    """The metric names a PromQL expression selects: identifiers that are not functions (followed
    by `(`), keywords, label names (inside `{}` or a `by (...)` list) or durations."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # ranges and subqueries
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    text = re.sub(r"\$\w+", "", text)  # dashboard variables
    names = set()
    for match in re.finditer(r"(?<![\w.])([a-zA-Z_:][a-zA-Z0-9_:]*)\b(\s*\()?", text):
        word, call = match.group(1), match.group(2)
        if not call and word not in _PROMQL_WORDS:
            names.add(word)
    return names


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        (
            'sum by (topic) (rate(lotse_events_total{service="a", outcome=~"x|y"}[5m]))',
            {"lotse_events_total"},
        ),
        (
            "histogram_quantile(0.95, sum by (le) (rate(lotse_batch_seconds_bucket[1m])))",
            {"lotse_batch_seconds_bucket"},
        ),
        ("a / on (period) group_left (kind) b > 0.1 and c offset 5m", {"a", "b", "c"}),
        ('up{job=~"registration|funding"} == 0', {"up"}),
    ],
)
def test_metric_names_in_promql(expr: str, names: set[str]) -> None:
    assert metric_names_in(expr) == names


def test_the_rules_use_only_exported_metrics() -> None:
    for rule in alert_rules():
        used = metric_names_in(rule["expr"])
        assert used, rule["alert"]
        assert used <= KNOWN_METRICS, f"{rule['alert']} uses unknown metrics {used - KNOWN_METRICS}"


# --- the dashboard ---------------------------------------------------------------------------------


def dashboard_file() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(dashboard.DASHBOARD_FILE.read_text())
    return loaded


def test_the_dashboard_is_valid_json_and_what_the_generator_writes() -> None:
    assert dashboard_file() == json.loads(dashboard.render())


def test_the_dashboard_has_a_row_per_service_and_one_for_the_programme() -> None:
    rows = [panel["title"] for panel in dashboard_file()["panels"] if panel["type"] == "row"]
    assert rows == ["registration", "funding", "notification", "programme"]


def test_every_panel_asks_for_exported_metrics_from_the_provisioned_datasource() -> None:
    provisioned = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())
    uids = {source["uid"] for source in provisioned["datasources"]}
    panels = [panel for panel in dashboard_file()["panels"] if panel["type"] != "row"]
    assert panels
    ids = [panel["id"] for panel in dashboard_file()["panels"]]
    assert len(ids) == len(set(ids))
    for panel in panels:
        assert panel["datasource"]["uid"] in uids, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            used = metric_names_in(target["expr"])
            assert used, f"{panel['title']}: {target['expr']}"
            assert used <= KNOWN_METRICS, f"{panel['title']} uses unknown metrics {used - KNOWN_METRICS}"


def test_panels_fit_the_grid_without_overlapping() -> None:
    cells: set[tuple[int, int]] = set()
    for panel in dashboard_file()["panels"]:
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= dashboard.WIDTH, panel["title"]
        mine = {
            (x, y) for x in range(pos["x"], pos["x"] + pos["w"]) for y in range(pos["y"], pos["y"] + pos["h"])
        }
        assert not cells & mine, f"{panel['title']} overlaps another panel"
        cells |= mine


def test_the_dashboard_provider_loads_the_dashboard_folder() -> None:
    provider = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "lotse.yml").read_text())
    (entry,) = provider["providers"]
    assert entry["type"] == "file"
    assert entry["options"]["path"].startswith("/")
    assert dashboard.DASHBOARD_FILE.parent == GRAFANA / "dashboards"


# --- the scrape configuration ----------------------------------------------------------------------


def test_the_checked_in_scrape_config_is_the_generated_one() -> None:
    assert yaml.safe_load(config.PROMETHEUS_CONFIG.read_text()) == config.prometheus_config()
    assert config.PROMETHEUS_CONFIG.read_text() == config.render(config.prometheus_config())


def test_the_scrape_config_follows_the_local_stacks_ports() -> None:
    assert config.DEFAULT_HTTP_PORTS == LOCAL_HTTP_PORTS
    jobs = {
        job["job_name"]: job["static_configs"][0]["targets"]
        for job in config.prometheus_config()["scrape_configs"]
    }
    assert jobs == {
        "registration": ["127.0.0.1:8081"],
        "funding": ["127.0.0.1:8082"],
        "notification": ["127.0.0.1:8083"],
    }


def test_instance_i_is_scraped_on_the_port_plus_ten_i() -> None:
    scaled = config.prometheus_config(
        replicas=3, ports={"registration": 9081, "funding": 9082, "notification": 9083}
    )
    targets = {job["job_name"]: job["static_configs"][0]["targets"] for job in scaled["scrape_configs"]}
    assert targets["funding"] == ["127.0.0.1:9082", "127.0.0.1:9092", "127.0.0.1:9102"]
    with pytest.raises(ValueError):
        config.scrape_targets(8081, 0)


def test_the_ports_come_from_the_environment_like_the_stacks() -> None:
    assert config.http_ports({"FUNDING_HTTP_PORT": "18982"})["funding"] == 18982
    assert config.http_ports({})["notification"] == 8083
