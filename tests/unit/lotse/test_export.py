"""`lotse export`'s sheets (lotse.sheets), the workbook and the CSV files (lotse.workbook)."""

from __future__ import annotations

import csv
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import openpyxl
import pytest
from openpyxl.cell.cell import Cell

from lotse.export import kommune_records
from lotse.reference import load_reference_data
from lotse.sheets import (
    FundingRecord,
    KommuneRecord,
    RegistrationRecord,
    Sheet,
    budget_sheet,
    decisions_sheet,
    euros,
    kommunen_sheet,
    local,
    registrations_sheet,
)
from lotse.workbook import EURO_FORMAT, csv_file_name, write_csv, write_xlsx
from services.funding.operations import BudgetFigures
from shared.program import DEFAULT_PROGRAM_FILE
from shared.settings import DEFAULT_DIRECTORY_FILE

SUBMITTED = datetime(2023, 5, 2, 7, 0, tzinfo=UTC)  # 09:00 in Berlin
NAMES = {"03241": "Region Hannover", "033510001001": "Bergen"}


def registration(reg: str, **changes: object) -> RegistrationRecord:
    values: dict[str, object] = {
        "registration_id": reg,
        "seminar_id": "NSI-DL-2023-01",
        "seminar_title": "Digitallotsen Grundkurs 1",
        "seminar_starts_on": date(2023, 6, 5),
        "given_kommune_key": "03241",
        "kommune_key": "03241",
        "given_name": "Özlem",
        "family_name": "Weiß",
        "participant_email": "oezlem@kommunen.example",
        "status": "accepted",
        "reason": None,
        "submitted_at": SUBMITTED,
        "created_at": datetime(2023, 5, 2, 7, 0, 5, tzinfo=UTC),
        **changes,
    }
    return RegistrationRecord(**values)  # type: ignore[arg-type]


def decision(reg: str, status: str, kommune: str = "03241", **changes: object) -> FundingRecord:
    values: dict[str, object] = {
        "registration_id": reg,
        "kommune_key": kommune,
        "seminar_id": "NSI-DL-2023-01",
        "seminar_starts_on": date(2023, 6, 5),
        "course": "basic",
        "status": status,
        "period_id": "2023",
        "reason": None,
        "amount_cents": 123_456,
        "promoted": False,
        "decided_at": datetime(2023, 5, 2, 7, 1, tzinfo=UTC),
        "updated_at": datetime(2023, 5, 2, 7, 1, tzinfo=UTC),
        **changes,
    }
    return FundingRecord(**values)  # type: ignore[arg-type]


PERIODS = [
    BudgetFigures("2021-2022", date(2021, 3, 4), date(2022, 12, 31), None, 0, 0, 0, None, 0, True),
    BudgetFigures(
        "2023",
        date(2023, 1, 1),
        date(2023, 12, 31),
        20_000_000,
        250_000,
        50_000,
        200_000,
        19_800_000,
        2,
        False,
    ),
]


def sheets() -> list[Sheet]:
    registrations = [
        registration("R1"),
        # Erased: the registration database holds NULL in the personal columns.
        registration("R2", given_name=None, family_name=None, participant_email=None, status="withdrawn",
                     reason="withdrawn_by_portal", submitted_at=datetime(2023, 5, 1, tzinfo=UTC)),
        registration("R3", given_name="=HYPERLINK(\"http://x\")", seminar_title=None, seminar_starts_on=None,
                     status="waiting_for_seminar", submitted_at=None),
    ]  # fmt: skip
    fundings = [
        decision("R1", "approved"),
        decision("R4", "waitlisted", reason="quota_exhausted", amount_cents=50_000),
        decision("R5", "declined", kommune="033510001001", period_id=None, amount_cents=None,
                 reason="kommune_not_eligible"),
    ]  # fmt: skip
    kommunen = [
        KommuneRecord("03241", "Region Hannover", "Landkreis", "Region Hannover", True, 2),
        KommuneRecord("033510001001", "Bergen", "Mitgliedsgemeinde", "Celle", False, None),
    ]
    return [
        registrations_sheet(registrations, NAMES),
        decisions_sheet(fundings, NAMES),
        kommunen_sheet(kommunen, fundings),
        budget_sheet(PERIODS),
    ]


@pytest.mark.parametrize(
    ("cents", "expected"),
    [(0, Decimal("0.00")), (123_456, Decimal("1234.56")), (5, Decimal("0.05")), (None, None)],
)
def test_amounts_become_exact_euros(cents: int | None, expected: Decimal | None) -> None:
    assert euros(cents) == expected


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (datetime(2023, 5, 2, 7, 0, tzinfo=UTC), datetime(2023, 5, 2, 9, 0)),  # summer: +2
        (datetime(2023, 12, 31, 23, 30, tzinfo=UTC), datetime(2024, 1, 1, 0, 30)),  # winter: +1
        (None, None),
    ],
)
def test_times_are_shown_in_berlin_without_a_zone(moment: datetime | None, expected: datetime | None) -> None:
    assert local(moment) == expected


def test_the_sheets_have_german_headers_and_typed_rows() -> None:
    registrations, decisions, kommunen, budget = sheets()
    assert [sheet.title for sheet in sheets()] == [
        "Registrierungen",
        "Förderentscheidungen",
        "Kommunen",
        "Budget je Zeitraum",
    ]
    assert registrations.columns[0].header == "Registrierung"
    # Oldest submission first; a parked one without a submission time is ordered by its arrival.
    assert [row[0] for row in registrations.rows] == ["R2", "R1", "R3"]
    erased = registrations.rows[0]
    headers = [column.header for column in registrations.columns]
    assert [erased[headers.index(name)] for name in ("Vorname", "Nachname", "E-Mail (Teilnehmende)")] == [
        None,
        None,
        None,
    ]
    assert registrations.rows[1][headers.index("Kommune")] == "Region Hannover"
    assert registrations.rows[1][headers.index("Eingereicht (Berlin)")] == datetime(2023, 5, 2, 9, 0)
    decision_headers = [column.header for column in decisions.columns]
    assert decisions.rows[0][decision_headers.index("Betrag")] == Decimal("1234.56")
    assert decisions.rows[2][decision_headers.index("Betrag")] is None
    # Nothing personal beyond the registrations sheet.
    for sheet in (decisions, kommunen, budget):
        assert not {"Vorname", "Nachname", "E-Mail (Teilnehmende)"} & {c.header for c in sheet.columns}
    assert kommunen.rows == (
        ("03241", "Region Hannover", "Landkreis", "Region Hannover", True, 2, 1, 1),
        ("033510001001", "Bergen", "Mitgliedsgemeinde", "Celle", False, None, 0, 0),
    )
    assert budget.rows[0][3] is None  # unlimited: no budget figure
    assert budget.rows[1][3:8] == (
        Decimal("200000.00"),
        Decimal("2500.00"),
        Decimal("500.00"),
        Decimal("2000.00"),
        Decimal("198000.00"),
    )


def test_the_kommunen_sheet_lists_every_eligible_kommune_and_the_others_that_registered() -> None:
    reference = load_reference_data(DEFAULT_PROGRAM_FILE, DEFAULT_DIRECTORY_FILE)
    member = next(
        k
        for k in reference.directory.kommunen.values()
        if k.kind.value == "mitgliedsgemeinde" and k.land == "03"
    )
    records = kommune_records(reference, {"03241": 7}, {member.key, "99999"})
    assert len(records) == reference.eligible_kommunen + 1  # the unknown key is not in the directory
    by_key = {record.key: record for record in records}
    assert by_key["03241"].places == 7 and by_key["03241"].eligible
    assert not by_key[member.key].eligible and by_key[member.key].places is None
    kreis = reference.directory.get(member.key[:5])
    assert kreis is not None and by_key[member.key].kreis == kreis.name
    assert by_key["03241"].kreis == "Region Hannover"
    assert by_key["031010000000"].kreis == "Braunschweig, Stadt"  # a kreisfreie Stadt is its own Kreis


def test_the_workbook_types_its_cells_and_freezes_the_header(tmp_path: Path) -> None:
    path = write_xlsx(sheets(), tmp_path / "out" / "export.xlsx")
    workbook = openpyxl.load_workbook(path)
    assert workbook.sheetnames == [
        "Registrierungen",
        "Förderentscheidungen",
        "Kommunen",
        "Budget je Zeitraum",
    ]
    for worksheet in workbook.worksheets:
        assert worksheet.freeze_panes == "A2"
        assert all(cell.font.bold for cell in worksheet[1])
        assert worksheet.column_dimensions["A"].width >= 12
    registrations = workbook["Registrierungen"]
    header = [cell.value for cell in registrations[1]]
    submitted = registrations.cell(row=3, column=header.index("Eingereicht (Berlin)") + 1)
    assert isinstance(submitted, Cell)
    assert submitted.value == datetime(2023, 5, 2, 9, 0) and submitted.is_date
    assert submitted.number_format == "DD.MM.YYYY HH:MM"
    starts = registrations.cell(row=3, column=header.index("Seminarbeginn") + 1)
    assert isinstance(starts, Cell)
    assert starts.is_date and starts.number_format == "DD.MM.YYYY"
    assert starts.value == datetime(2023, 6, 5)  # openpyxl reads a date cell back as a datetime
    erased_name = registrations.cell(row=2, column=header.index("Vorname") + 1)
    assert erased_name.value is None
    formula_like = registrations.cell(row=4, column=header.index("Vorname") + 1)
    assert formula_like.data_type == "s" and formula_like.value == '=HYPERLINK("http://x")'
    decisions = workbook["Förderentscheidungen"]
    decision_header = [cell.value for cell in decisions[1]]
    amount = decisions.cell(row=2, column=decision_header.index("Betrag") + 1)
    assert amount.data_type == "n" and amount.value == pytest.approx(1234.56)
    assert amount.number_format == EURO_FORMAT == "#,##0.00 €"
    promoted = decisions.cell(row=2, column=decision_header.index("Nachgerückt") + 1)
    assert promoted.value is False
    budget = workbook["Budget je Zeitraum"]
    assert budget["D2"].value is None  # unlimited
    assert budget["D3"].value == 200_000 and budget["D3"].number_format == EURO_FORMAT
    assert budget["I3"].value == 2 and budget["I3"].data_type == "n"


def test_the_csv_files_are_what_german_excel_opens(tmp_path: Path) -> None:
    written = write_csv(sheets(), tmp_path / "csv")
    assert [path.name for path in written] == [
        "registrierungen.csv",
        "foerderentscheidungen.csv",
        "kommunen.csv",
        "budget_je_zeitraum.csv",
    ]
    raw = written[0].read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # UTF-8 byte order mark
    assert b"\r\n" in raw
    with written[0].open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.reader(handle, delimiter=";"))
    header = rows[0]
    assert header[:3] == ["Registrierung", "Eingereicht (Berlin)", "Erfasst (Berlin)"]
    erased, present, formula_like = rows[1], rows[2], rows[3]
    assert erased[header.index("Vorname")] == "" and erased[header.index("E-Mail (Teilnehmende)")] == ""
    assert present[header.index("Vorname")] == "Özlem"
    assert present[header.index("Eingereicht (Berlin)")] == "02.05.2023 09:00"
    assert present[header.index("Seminarbeginn")] == "05.06.2023"
    assert formula_like[header.index("Vorname")] == '\'=HYPERLINK("http://x")'
    assert formula_like[header.index("Seminarbeginn")] == ""
    with written[1].open(encoding="utf-8-sig", newline="") as handle:
        decisions = list(csv.DictReader(handle, delimiter=";"))
    assert decisions[0]["Betrag"] == "1234,56"
    assert decisions[0]["Nachgerückt"] == "nein"
    assert decisions[2]["Betrag"] == ""
    with written[3].open(encoding="utf-8-sig", newline="") as handle:
        budget = list(csv.DictReader(handle, delimiter=";"))
    assert budget[1]["Verbleibend"] == "198000,00" and budget[0]["Budget"] == ""
    assert budget[0]["Geschlossen"] == "ja"


@pytest.mark.parametrize(
    ("title", "name"),
    [
        ("Registrierungen", "registrierungen.csv"),
        ("Förderentscheidungen", "foerderentscheidungen.csv"),
        ("Budget je Zeitraum", "budget_je_zeitraum.csv"),
    ],
)
def test_csv_file_names_are_plain(title: str, name: str) -> None:
    assert csv_file_name(Sheet(title, (), ())) == name
