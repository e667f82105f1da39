"""Monitoring: Prometheus scrape configuration, alerting rules and their tests, the Grafana dashboard
and its provisioning (ADR 0015)."""
