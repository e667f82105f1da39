"""`make demo`'s report in a real browser: a small programme year through a stack of its own
(`lotse demo --size small --html`, as `make demo` runs it), then the page in headless Chromium
(Debian's chromium and chromedriver, driven by selenium; nothing downloads a browser), and
`lotse export` against the same databases.

The screenshot lands in var/report.png (the README's docs/report.png is one of these).
"""

from __future__ import annotations

import asyncio
import csv
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import openpyxl
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

from lotse.log import read_all
from lotse.scenario import SMALL, Scenario, build_scenario
from shared.directory import load_directory
from shared.program import DEFAULT_PROGRAM_FILE, load_program
from shared.settings import DEFAULT_DIRECTORY_FILE, REPO_ROOT
from shared.topics import Topics
from tests.support.stack import Stack, stack_env

pytestmark = pytest.mark.e2e

# Beside the other stacks of the suite (+10,000 to +12,000, the fault suite +14,000, bench +20,000).
PORT_OFFSET = 15_000
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SCREENSHOT = REPO_ROOT / "var" / "report.png"
# Niedersachsen: no Bezirke, so one participation chart (per Kreis).
# The decisions are counted per week, or per day, hour, minute or second when a replayed year takes less.
CHART_TITLES = [
    r"Geld je Förderzeitraum: gebunden und verbleibend",
    r"Förderentscheidungen je (Woche|Tag|Stunde|Minute|Sekunde) nach Ergebnis",
    r"Teilnahme je Landkreis und kreisfreier Stadt",
    r"Förder-Wartelisten im Zeitverlauf",
]


@dataclass(frozen=True)
class Demo:
    stack: Stack
    scenario: Scenario
    printed: str
    report: Path


@pytest.fixture(scope="module")
def demo() -> Iterator[Demo]:
    var_dir = REPO_ROOT / "var" / "e2e-report"
    shutil.rmtree(var_dir, ignore_errors=True)
    var_dir.mkdir(parents=True)
    os.chmod(var_dir, 0o755)  # the postgres system user must reach its data folder
    env = {**stack_env(var_dir, PORT_OFFSET), "FUNDING_PROGRAM_FILE": str(DEFAULT_PROGRAM_FILE)}
    stack = Stack(env, var_dir)
    try:
        up = stack.run("-m", "deploy.local.stack", "up", check=False, timeout=600)
        assert up.returncode == 0, up.stdout + up.stderr
        report = var_dir / "report.html"
        done = stack.run(
            "-m", "lotse.cli", "demo", "--size", "small", "--html", str(report),
            check=False, timeout=900, env={"COLUMNS": "250"},
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        scenario = build_scenario(
            load_directory(str(DEFAULT_DIRECTORY_FILE)), load_program(DEFAULT_PROGRAM_FILE), SMALL
        )
        yield Demo(stack, scenario, done.stdout, report)
    finally:
        down = stack.run("-m", "deploy.local.stack", "down", check=False)
        assert down.returncode == 0, down.stdout + down.stderr


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.exists()]
    assert not missing, f"{', '.join(missing)} missing: deploy/local/system-packages.sh installs them"
    options = Options()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    options.add_argument("--window-size=1400,1000")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER)))
    try:
        yield driver
    finally:
        driver.quit()


def test_make_demo_writes_the_html_report_and_prints_its_path(demo: Demo) -> None:
    assert f"HTML report: {demo.report}" in demo.printed
    page = demo.report.read_text(encoding="utf-8")
    assert page.startswith('<!DOCTYPE html>\n<html lang="de">')
    assert "Digitallotsen Niedersachsen" in page
    # `lotse report --html` gives the same page of the same log.
    again = demo.stack.var_dir / "again" / "report.html"
    printed = demo.stack.lotse("report", "--html", str(again)).stdout
    assert str(again) in printed
    assert again.read_text(encoding="utf-8") == page


def test_the_report_renders_in_chromium_with_every_chart(demo: Demo, browser: webdriver.Chrome) -> None:
    browser.get(demo.report.as_uri())
    assert browser.execute_script("return document.documentElement.lang") == "de"
    assert browser.find_element(By.TAG_NAME, "h1").text == "Kommunale Digitallotsen Niedersachsen"
    charts = browser.find_elements(By.CSS_SELECTOR, "svg[role=img]")
    titles = [chart.find_element(By.TAG_NAME, "title").get_attribute("textContent") for chart in charts]
    assert len(titles) == len(CHART_TITLES)
    for title, expected in zip(titles, CHART_TITLES, strict=True):
        assert re.fullmatch(expected, title or ""), title
    for chart in charts:
        assert chart.size["width"] > 300 and chart.size["height"] > 150  # drawn, not collapsed
        section = chart.find_element(By.XPATH, "ancestor::section[1]")
        assert len(section.find_elements(By.CSS_SELECTOR, "table tbody tr")) >= 1  # its table
    # Self-contained: the page loaded nothing besides itself.
    assert browser.execute_script("return performance.getEntriesByType('resource').length") == 0
    logged = browser.get_log("browser")  # type: ignore[no-untyped-call]
    severe = [entry for entry in logged if entry["level"] == "SEVERE"]
    assert severe == []
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(1400, int(height) + 40)
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(SCREENSHOT))
    assert SCREENSHOT.stat().st_size > 10_000


def test_export_writes_the_four_sheets_of_the_same_run(demo: Demo) -> None:
    workbook_path = demo.stack.var_dir / "export" / "lotse.xlsx"
    csv_dir = demo.stack.var_dir / "export" / "csv"
    printed = demo.stack.lotse("export", "--xlsx", str(workbook_path), "--csv", str(csv_dir)).stdout
    registrations = len(demo.scenario.registrations)
    assert f"Registrierungen: {registrations} rows" in printed
    workbook = openpyxl.load_workbook(workbook_path)
    assert workbook.sheetnames == [
        "Registrierungen",
        "Förderentscheidungen",
        "Kommunen",
        "Budget je Zeitraum",
    ]
    assert workbook["Registrierungen"].max_row == registrations + 1
    decided = asyncio.run(read_all(demo.stack.bootstrap, Topics().funding_decisions))
    assert (
        workbook["Förderentscheidungen"].max_row == len({e["data"]["registration_id"] for e in decided}) + 1
    )
    budget = workbook["Budget je Zeitraum"]
    assert [budget.cell(row=row, column=1).value for row in (2, 3)] == ["2021-2022", "2023"]
    assert budget.cell(row=3, column=4).value == 200_000  # the 2023 budget, in euros
    assert budget.cell(row=3, column=4).number_format == "#,##0.00 €"
    with (csv_dir / "kommunen.csv").open(encoding="utf-8-sig", newline="") as handle:
        kommunen = list(csv.DictReader(handle, delimiter=";"))
    eligible = [row for row in kommunen if row["Förderfähig"] == "ja"]
    assert len(eligible) == 440
    assert sum(int(row["Gefördert"]) for row in kommunen) == sum(
        1
        for row in workbook["Förderentscheidungen"].iter_rows(min_row=2, values_only=True)
        if row[8] == "approved"
    )
