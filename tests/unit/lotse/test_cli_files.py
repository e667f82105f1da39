"""`lotse report --html` and `lotse export` refuse bad arguments before they read anything."""

from __future__ import annotations

from typer.testing import CliRunner

from lotse.cli import app


def test_export_needs_a_workbook_or_a_folder() -> None:
    result = CliRunner().invoke(app, ["export"])
    assert result.exit_code == 2
    assert "--xlsx FILE or --csv DIR" in result.output


def test_report_refuses_an_unknown_format_even_with_html() -> None:
    result = CliRunner().invoke(app, ["report", "--format", "xml", "--html", "report.html"])
    assert result.exit_code == 2
    assert "--format must be csv or json" in result.output
