"""The GV100AD directory, parsed strictly from the official file, and the kommune_key forms."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from shared.directory import (
    DirectoryFormatError,
    KommuneKind,
    load_directory,
    parse_directory,
)
from shared.kommune_key import is_well_shaped
from shared.settings import DEFAULT_DIRECTORY_FILE


@pytest.fixture(scope="module")
def directory():  # type: ignore[no-untyped-def]
    return load_directory(str(DEFAULT_DIRECTORY_FILE))


def test_lower_saxony_counts_match_the_published_figures(directory) -> None:  # type: ignore[no-untyped-def]
    kinds = Counter(k.kind for k in directory.in_land("03"))
    assert kinds == {
        KommuneKind.LANDKREIS: 37,
        KommuneKind.KREISFREIE_STADT: 8,
        KommuneKind.EINHEITSGEMEINDE: 281,
        KommuneKind.SAMTGEMEINDE: 114,
        KommuneKind.MITGLIEDSGEMEINDE: 650,
        KommuneKind.GEMEINDEFREIES_GEBIET: 25,
    }


@pytest.mark.parametrize(
    ("given", "canonical", "name", "kind"),
    [
        ("03241", "03241", "Region Hannover", KommuneKind.LANDKREIS),
        ("03101", "031010000000", "Braunschweig, Stadt", KommuneKind.KREISFREIE_STADT),
        ("03101000", "031010000000", "Braunschweig, Stadt", KommuneKind.KREISFREIE_STADT),
        ("03241001", "032410001001", "Hannover, Landeshauptstadt", KommuneKind.EINHEITSGEMEINDE),
        ("032410001001", "032410001001", "Hannover, Landeshauptstadt", KommuneKind.EINHEITSGEMEINDE),
        ("033595403", "033595403", "Harsefeld", KommuneKind.SAMTGEMEINDE),
        ("031515401", "031515401", "Boldecker Land", KommuneKind.SAMTGEMEINDE),
        ("03151001", "031515406001", "Adenbüttel", KommuneKind.MITGLIEDSGEMEINDE),
    ],
)
def test_every_key_form_maps_to_its_canonical_kommune(directory, given, canonical, name, kind) -> None:  # type: ignore[no-untyped-def]
    assert directory.canonical_key(given) == canonical
    kommune = directory.get(canonical)
    assert kommune is not None
    assert (kommune.name, kommune.kind) == (name, kind)


def test_member_knows_its_samtgemeinde(directory) -> None:  # type: ignore[no-untyped-def]
    member = directory.get("031515406001")
    assert member.parent_key == "031515406"
    samtgemeinde = directory.get("031515406")
    assert samtgemeinde.kind is KommuneKind.SAMTGEMEINDE


def test_well_shaped_unknown_key_stays_as_given(directory) -> None:  # type: ignore[no-untyped-def]
    assert directory.canonical_key("03999") == "03999"
    assert directory.get("03999") is None


# Full-width and Arabic-Indic digits, and a trailing newline, pass `str.isdigit` or `\\d$`.
BADLY_SHAPED = ["", "0324", "032411", "0324100100", "03241a", " 03241", "0324100100011"]
OTHER_DIGITS = ["０３２４１", "٠٣٢٤١", "03241\n"]


@pytest.mark.parametrize("key", [*BADLY_SHAPED, *OTHER_DIGITS])
def test_badly_shaped_keys_are_refused(directory, key: str) -> None:  # type: ignore[no-untyped-def]
    assert not is_well_shaped(key)
    with pytest.raises(ValueError, match="wrong shape"):
        directory.canonical_key(key)


def test_parser_is_strict_about_line_length(tmp_path: Path) -> None:
    lines = DEFAULT_DIRECTORY_FILE.read_text("utf-8").splitlines()[:3]
    broken = tmp_path / "broken.txt"
    broken.write_text("\n".join([*lines, lines[-1][:-1]]) + "\n", "utf-8")
    with pytest.raises(DirectoryFormatError, match=r":4: line has 219 characters"):
        parse_directory(broken)


def test_parser_refuses_unknown_record_types(tmp_path: Path) -> None:
    line = DEFAULT_DIRECTORY_FILE.read_text("utf-8").splitlines()[0]
    broken = tmp_path / "broken.txt"
    broken.write_text("99" + line[2:] + "\n", "utf-8")
    with pytest.raises(DirectoryFormatError, match="unknown Satzart"):
        parse_directory(broken)
