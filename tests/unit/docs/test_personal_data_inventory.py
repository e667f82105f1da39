"""docs/personal-data.md (the Löschkonzept) stays true: every column that may hold personal data
and every topic has its row, and every row names something that exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from shared.settings import REPO_ROOT
from shared.topics import all_topics, carries_personal_data

INVENTORY = REPO_ROOT / "docs" / "personal-data.md"
SERVICES = ("registration", "funding", "notification")
# Column names that suggest personal data, or a copy of it (a message, a payload, an error text).
SUGGESTS_PERSONAL_DATA = re.compile(
    r"name|e_?mail|address|recipient|message|payload|envelope|header|participant|person|requested_by"
    r"|login|user|subject|error|phone|birth|hash|ip_?addr",
    re.IGNORECASE,
)
_NOT_COLUMNS = {"CONSTRAINT", "CHECK", "UNIQUE", "PRIMARY", "FOREIGN", "EXCLUDE", "LIKE"}
_CREATE_TABLE = re.compile(r"CREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?(\w+)\s*\((.*?)\n\);", re.S | re.I)
_ALTER_TABLE = re.compile(r"ALTER\s+TABLE\s+(?:IF\s+EXISTS\s+)?(?:ONLY\s+)?(\w+)(.*?);", re.S | re.I)
_ADD_COLUMN = re.compile(r"ADD\s+COLUMN\s+(?:IF\s+NOT\s+EXISTS\s+)?\"?(\w+)\"?", re.I)


def _without_comments(sql: str) -> str:
    return re.sub(r"--[^\n]*", "", sql)


def columns_of(sql: str) -> set[tuple[str, str]]:
    """(table, column) of every CREATE TABLE and ALTER TABLE … ADD COLUMN in a migration."""
    sql = _without_comments(sql)
    found: set[tuple[str, str]] = set()
    for table, body in _CREATE_TABLE.findall(sql):
        depth = 0
        item = ""
        items = []
        for char in body:  # split on the commas at the top level only
            depth += (char == "(") - (char == ")")
            if char == "," and depth == 0:
                items.append(item)
                item = ""
            else:
                item += char
        items.append(item)
        for entry in items:
            words = entry.split()
            if words and words[0].upper() not in _NOT_COLUMNS:
                found.add((table.lower(), words[0].strip('"').lower()))
    for table, body in _ALTER_TABLE.findall(sql):
        found.update((table.lower(), column.lower()) for column in _ADD_COLUMN.findall(body))
    return found


def database_columns() -> set[str]:
    """`<database>.<table>.<column>` of every service database, shared/sql's tables in each."""
    shared = set().union(
        *(columns_of(path.read_text()) for path in (REPO_ROOT / "shared" / "sql").glob("*.sql"))
    )
    found: set[str] = set()
    for service in SERVICES:
        own = set().union(
            *(
                columns_of(path.read_text())
                for path in (REPO_ROOT / "services" / service / "migrations").glob("*.sql")
            )
        )
        found.update(f"{service}.{table}.{column}" for table, column in own | shared)
    return found


def inventory_rows(first_header: str) -> dict[str, list[str]]:
    """The rows of the inventory's tables whose header begins with `first_header`, by their first cell."""
    rows: dict[str, list[str]] = {}
    in_table = False
    for line in INVENTORY.read_text(encoding="utf-8").splitlines():
        if not line.startswith("|"):
            in_table = False
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if cells[0] == first_header:
            in_table = True
        elif in_table and not set(cells[0]) <= {"-", ":"}:
            rows[cells[0].strip("`")] = cells[1:]
    return rows


def suggests_personal_data(column: str) -> bool:
    return bool(SUGGESTS_PERSONAL_DATA.search(column.rsplit(".", 1)[-1]))


def test_the_parser_finds_the_columns_it_must() -> None:
    columns = database_columns()
    # Known ones, from CREATE TABLE and from ALTER TABLE … ADD COLUMN, in each database.
    for expected in (
        "registration.registrations.participant_email",
        "registration.parked_submissions.contact_email",
        "funding.fundings.participant_hash",
        "notification.emails.message",
        "notification.registrations.seminar_location",
        "funding.outbox.payload",
    ):
        assert expected in columns
    assert "registration.registrations.check" not in columns


@pytest.mark.parametrize(
    ("sql", "column"),
    [
        ("CREATE TABLE t (\n    id text PRIMARY KEY,\n    foo_email text NOT NULL\n);", ("t", "foo_email")),
        ("ALTER TABLE t ADD COLUMN reviewer_name text, ADD COLUMN x int;", ("t", "reviewer_name")),
        ("CREATE TABLE t (\n    a numeric(10, 2),\n    requested_by text\n);", ("t", "requested_by")),
    ],
)
def test_a_new_column_with_personal_data_would_be_found(sql: str, column: tuple[str, str]) -> None:
    assert column in columns_of(sql)
    assert suggests_personal_data(".".join(column))


def test_every_column_that_may_hold_personal_data_is_in_the_inventory() -> None:
    listed = set(inventory_rows("column"))
    missing = sorted(
        column for column in database_columns() if suggests_personal_data(column) and column not in listed
    )
    assert not missing, f"list these in docs/personal-data.md (why kept, when deleted): {missing}"


def test_every_column_in_the_inventory_exists() -> None:
    stale = sorted(set(inventory_rows("column")) - database_columns())
    assert not stale, f"docs/personal-data.md lists columns no migration has: {stale}"


def test_every_topic_is_in_the_inventory_with_whether_it_carries_personal_data() -> None:
    listed = inventory_rows("topic")
    names = {spec.name for spec in all_topics()}
    assert sorted(names - set(listed)) == []
    assert sorted(set(listed) - names) == []
    for name, cells in listed.items():
        assert cells[0] == ("yes" if carries_personal_data(name) else "no"), name


def test_every_row_says_when_its_data_is_deleted() -> None:
    for header in ("column", "topic"):
        for where, cells in inventory_rows(header).items():
            assert cells[-1], f"{where}: when is it deleted?"


def test_the_inventory_names_the_other_places() -> None:
    text = Path(INVENTORY).read_text(encoding="utf-8")
    for place in ("operations.commands", "requested_by", "var/mail", "var/log", "Logs", "lotse erase"):
        assert place in text
