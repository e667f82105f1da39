"""Writing the export's sheets: one .xlsx workbook, or one CSV file per sheet.

The workbook types its cells: dates as dates (DD.MM.YYYY), times as date and time, amounts as
numbers in the currency format `#,##0.00 €`, counts as integers; the header row is bold, frozen
and filtered. The CSV files are what German Excel opens without an import dialogue: UTF-8 with a
byte order mark, `;` between fields, dates as 31.12.2023, amounts as 1234,56 (no thousands
separator, no currency sign), ja/nein, an empty field for NULL.

Text that a spreadsheet would take for a formula (= + - @ at its start, from a portal's form)
stays text: a typed string cell in the workbook, a leading apostrophe in CSV.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

from openpyxl import Workbook
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter

from lotse.sheets import Cell, Kind, Sheet

EURO_FORMAT = "#,##0.00 €"
DATE_FORMAT = "DD.MM.YYYY"
DATETIME_FORMAT = "DD.MM.YYYY HH:MM"
INTEGER_FORMAT = "#,##0"
_FORMATS = {
    Kind.EURO: EURO_FORMAT,
    Kind.DATE: DATE_FORMAT,
    Kind.DATETIME: DATETIME_FORMAT,
    Kind.INTEGER: INTEGER_FORMAT,
}
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_HEADER_FILL = PatternFill("solid", fgColor="E6EDF3")
_UMLAUTS = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss", " ": "_"})


def csv_file_name(sheet: Sheet) -> str:
    """Förderentscheidungen -> foerderentscheidungen.csv, Budget je Zeitraum -> budget_je_zeitraum.csv."""
    return sheet.title.lower().translate(_UMLAUTS) + ".csv"


def write_xlsx(sheets: Sequence[Sheet], path: Path) -> Path:
    workbook = Workbook()
    workbook.remove(workbook.active)  # type: ignore[arg-type]
    for sheet in sheets:
        worksheet = workbook.create_sheet(sheet.title)
        worksheet.append([column.header for column in sheet.columns])
        for cell in worksheet[1]:
            cell.font = Font(bold=True)
            cell.fill = _HEADER_FILL
            cell.alignment = Alignment(wrap_text=True, vertical="top")
        for row_number, row in enumerate(sheet.rows, start=2):
            for column_number, (column, value) in enumerate(zip(sheet.columns, row, strict=True), start=1):
                cell = worksheet.cell(row=row_number, column=column_number, value=value)
                if isinstance(value, str):
                    cell.data_type = "s"  # never a formula, whatever the text begins with
                if column.kind in _FORMATS:
                    cell.number_format = _FORMATS[column.kind]
        for column_number, column in enumerate(sheet.columns, start=1):
            worksheet.column_dimensions[get_column_letter(column_number)].width = max(
                column.width, min(len(column.header) + 2, 40)
            )
        worksheet.freeze_panes = "A2"
        last = get_column_letter(len(sheet.columns))
        worksheet.auto_filter.ref = f"A1:{last}{max(len(sheet.rows) + 1, 1)}"
    path = path.resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    workbook.save(path)
    return path


def csv_value(kind: Kind, value: Cell) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "ja" if value else "nein"
    if isinstance(value, datetime):
        return f"{value:%d.%m.%Y %H:%M}"
    if isinstance(value, date):
        return f"{value:%d.%m.%Y}"
    if isinstance(value, Decimal):
        return f"{value:.2f}".replace(".", ",")
    if isinstance(value, int):
        return str(value)
    if kind is Kind.TEXT and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


def write_csv(sheets: Sequence[Sheet], directory: Path) -> list[Path]:
    """One file per sheet in `directory` (made as needed); the paths written, in sheet order."""
    directory = directory.resolve()
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for sheet in sheets:
        path = directory / csv_file_name(sheet)
        with path.open("w", encoding="utf-8-sig", newline="") as handle:
            writer = csv.writer(handle, delimiter=";", lineterminator="\r\n")
            writer.writerow([column.header for column in sheet.columns])
            for row in sheet.rows:
                writer.writerow(
                    [csv_value(column.kind, value) for column, value in zip(sheet.columns, row, strict=True)]
                )
        written.append(path)
    return written
