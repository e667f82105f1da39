"""The Grafana dashboard `grafana/dashboards/lotse.json`: a row per service and one for the
programme, over the metrics of shared/metrics.py and FastStream's middleware. Generated, so that
every panel follows the same layout and the queries stay readable here:

    python -m deploy.monitoring.dashboard > deploy/monitoring/grafana/dashboards/lotse.json
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MONITORING_DIR = Path(__file__).resolve().parent
DASHBOARD_FILE = MONITORING_DIR / "grafana" / "dashboards" / "lotse.json"
DATASOURCE = {"type": "prometheus", "uid": "lotse-prometheus"}  # provisioned with this uid
DASHBOARD_UID = "lotse-overview"
SERVICES = ("registration", "funding", "notification")
WIDTH = 24  # Grafana's grid


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str = ""


@dataclass(frozen=True)
class Panel:
    title: str
    queries: Sequence[Query]
    unit: str = "short"
    kind: str = "timeseries"  # or "stat"
    width: int = 8
    height: int = 7
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def service_panels(service: str) -> list[Panel]:
    s = service
    panels = [
        Panel(
            "Ready",
            [Query(f'min by (instance) (lotse_service_ready{{service="{s}"}})', "{{instance}}")],
            kind="stat",
            width=4,
            description="1: /readyz answers 200 (broker, database, consumers and relay fine)",
        ),
        Panel(
            "Scraped",
            [Query(f'up{{job="{s}"}}', "{{instance}}")],
            kind="stat",
            width=4,
            description="1: the instance answers /metrics",
        ),
        Panel(
            "Events consumed by outcome",
            [
                Query(
                    f'sum by (topic, outcome) (rate(lotse_events_total{{service="{s}"}}[1m]))',
                    "{{topic}} {{outcome}}",
                )
            ],
            unit="ops",
        ),
        Panel(
            "Consumer lag",
            [
                Query(
                    "sum by (topic) (max by (topic, partition) "
                    f'(lotse_consumer_lag_messages{{group=~".*{s}"}}))',
                    "{{topic}}",
                )
            ],
            description="Messages not yet committed by the service's group, summed over partitions",
        ),
        Panel(
            "Batch time p95",
            [
                Query(
                    "histogram_quantile(0.95, sum by (le, topic) "
                    f'(rate(lotse_batch_seconds_bucket{{service="{s}"}}[5m])))',
                    "{{topic}}",
                )
            ],
            unit="s",
        ),
        Panel(
            "Outbox backlog",
            [Query(f'max(lotse_outbox_backlog_rows{{service="{s}"}})', "unpublished rows")],
        ),
        Panel(
            "Oldest unpublished outbox row",
            [Query(f'max(lotse_outbox_oldest_unpublished_age_seconds{{service="{s}"}})', "age")],
            unit="s",
        ),
        Panel(
            "Dead letters (10 min)",
            [
                Query(
                    f'sum by (topic) (increase(lotse_dead_letters_total{{service="{s}"}}[10m]))', "{{topic}}"
                )
            ],
        ),
        Panel(
            "FastStream messages",
            [
                Query(
                    f'sum by (handler) (rate(faststream_received_messages_total{{app_name="{s}"}}[1m]))',
                    "received {{handler}}",
                ),
                Query(
                    f'sum by (destination) (rate(faststream_published_messages_total{{app_name="{s}"}}[1m]))',
                    "published {{destination}}",
                ),
            ],
            unit="ops",
            description="What FastStream's Prometheus middleware counts on the service's broker",
        ),
    ]
    if service == "notification":
        panels.append(
            Panel(
                "Undelivered emails by state",
                [Query("max by (state) (lotse_notification_emails)", "{{state}}")],
                description="pending: not tried yet; failed: a retry is due; parked: needs an operator",
            )
        )
    return panels


def programme_panels() -> list[Panel]:
    return [
        Panel(
            "Remaining budget",
            [Query("max by (period) (lotse_funding_budget_remaining_euros)", "{{period}}")],
            unit="currencyEUR",
            description="Budget minus approved plus released, per period with a limit",
        ),
        Panel(
            "Budget used",
            [
                Query(
                    "1 - max by (period) (lotse_funding_budget_remaining_euros)"
                    " / max by (period) (lotse_funding_budget_euros > 0)",
                    "{{period}}",
                )
            ],
            unit="percentunit",
        ),
        Panel(
            "Funding waitlist",
            [Query("max by (period, kind) (lotse_funding_waitlist_registrations)", "{{period}} {{kind}}")],
            description="quota: the Kommune's places are taken; budget: the period's money is",
        ),
        Panel(
            "Funded Kommunen",
            [Query("max(lotse_funding_funded_kommunen)", "Kommunen")],
            kind="stat",
            width=6,
        ),
        Panel(
            "Registrations applied by funding",
            [
                Query(
                    "sum by (outcome) (rate(lotse_events_total"
                    '{service="funding", topic=~".*registration.events"}[5m]))',
                    "{{outcome}}",
                )
            ],
            unit="ops",
            width=18,
            description="registration.events the funding service applied, duplicates and dead letters",
        ),
    ]


def _panel_json(panel: Panel, panel_id: int, x: int, y: int) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": panel_id,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": DATASOURCE,
        "gridPos": {"h": panel.height, "w": panel.width, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": panel.unit}, "overrides": []},
        "targets": [
            {"refId": chr(ord("A") + i), "datasource": DATASOURCE, "expr": q.expr, "legendFormat": q.legend}
            for i, q in enumerate(panel.queries)
        ],
    }
    if panel.kind == "timeseries":
        body["options"] = {
            "legend": {"displayMode": "list", "placement": "bottom"},
            "tooltip": {"mode": "multi"},
        }
    else:
        body["options"] = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}}
    body.update(panel.extra)
    return body


def _rows() -> Iterator[tuple[str, list[Panel]]]:
    for service in SERVICES:
        yield service, service_panels(service)
    yield "programme", programme_panels()


def dashboard() -> dict[str, Any]:
    panels: list[dict[str, Any]] = []
    panel_id, y = 1, 0
    for title, row_panels in _rows():
        panels.append(
            {
                "id": panel_id,
                "type": "row",
                "title": title,
                "collapsed": False,
                "gridPos": {"h": 1, "w": WIDTH, "x": 0, "y": y},
                "panels": [],
            }
        )
        panel_id, y, x, row_height = panel_id + 1, y + 1, 0, 0
        for panel in row_panels:
            if x + panel.width > WIDTH:
                x, y, row_height = 0, y + row_height, 0
            panels.append(_panel_json(panel, panel_id, x, y))
            panel_id, x, row_height = panel_id + 1, x + panel.width, max(row_height, panel.height)
        y += row_height
    return {
        "uid": DASHBOARD_UID,
        "title": "Digitallotsen",
        "description": "Lag, outbox, emails, dead letters, readiness per service; the programme's figures",
        "tags": ["lotse"],
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "refresh": "10s",
        "time": {"from": "now-1h", "to": "now"},
        "templating": {"list": []},
        "annotations": {"list": []},
        "panels": panels,
    }


def render() -> str:
    return json.dumps(dashboard(), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
