"""The reference data lotse reads: the funding programme (shared.program) over the municipality
directory (shared.directory), and the eligibility it gives each Kommune, in words."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from shared.directory import KIND_LABELS_DE, Directory, Kommune, KommuneKind, load_directory
from shared.program import Program, load_program

# Baden-Württemberg calls its kreisfreie Städte Stadtkreise.
_KREIS_LABELS = {"08": {KommuneKind.KREISFREIE_STADT: "Stadtkreis"}}
_KREIS_KINDS = (KommuneKind.LANDKREIS, KommuneKind.KREISFREIE_STADT)
_KREIS_LENGTH = 5


@dataclass(frozen=True)
class Area:
    """A Kreis (Landkreis, kreisfreie Stadt or Stadtkreis) or a Bezirk of the programme's Land,
    with the canonical keys of the eligible Kommunen in it (itself included)."""

    level: str  # "kreis" or "bezirk"
    key: str  # 5 digits for a Kreis, 3 for a Bezirk
    name: str
    label: str  # "Landkreis", "kreisfreie Stadt", "Stadtkreis", "Bezirk"
    eligible: frozenset[str]


@dataclass(frozen=True)
class ReferenceData:
    program: Program
    directory: Directory

    @property
    def budgets(self) -> dict[str, int | None]:
        return {period.id: period.budget_cents for period in self.program.periods}

    @cached_property
    def eligible(self) -> list[Kommune]:
        return self.program.eligible_kommunen(self.directory)

    @property
    def eligible_kommunen(self) -> int:
        return len(self.eligible)

    @cached_property
    def places(self) -> int:
        return self.program.places_in(self.directory)

    @cached_property
    def areas(self) -> tuple[Area, ...]:
        """The programme's Kreise (Landkreise and kreisfreie Städte or Stadtkreise), and for a
        programme that funds Bezirke (Bayern) its Bezirke, each with its eligible Kommunen."""
        lands = set(self.program.eligibility.lands)
        in_lands = sorted(
            (kommune for kommune in self.directory.kommunen.values() if kommune.land in lands),
            key=lambda kommune: kommune.key,
        )
        areas: list[Area] = []
        for kommune in in_lands:
            if kommune.kind in _KREIS_KINDS:
                prefix = kommune.key[:_KREIS_LENGTH]
                label = _KREIS_LABELS.get(kommune.land, {}).get(kommune.kind, KIND_LABELS_DE[kommune.kind])
                areas.append(Area("kreis", prefix, kommune.name, label, self._eligible_under(prefix)))
            elif kommune.kind is KommuneKind.BEZIRK and self.program.eligible(kommune):
                areas.append(
                    Area("bezirk", kommune.key, kommune.name, "Bezirk", self._eligible_under(kommune.key))
                )
        return tuple(sorted(areas, key=lambda area: (area.level != "bezirk", area.key)))

    def _eligible_under(self, prefix: str) -> frozenset[str]:
        # Keys nest: a Bezirk's 3 digits begin its Kreise's 5, which begin their Gemeinden's 12.
        return frozenset(kommune.key for kommune in self.eligible if kommune.key.startswith(prefix))

    def eligibility_of(self, kommune: Kommune) -> tuple[bool, str]:
        """Whether the programme funds the Kommune, and why, in words an operator can pass on."""
        rules = self.program.eligibility
        label = KIND_LABELS_DE[kommune.kind]
        if kommune.land not in rules.lands:
            return (
                False,
                f"it lies in Land {kommune.land}; the programme covers Land {', '.join(rules.lands)}",
            )
        if self.program.eligible(kommune):
            return True, f"{label} in Land {kommune.land}"
        parent = self.directory.get(kommune.parent_key) if kommune.parent_key else None
        if kommune.kind is KommuneKind.MITGLIEDSGEMEINDE and parent is not None:
            return False, (
                f"{label} of the Samtgemeinde {parent.name} ({parent.key}), which is the eligible Kommune"
            )
        return False, f"a {label} is not among the eligible kinds of Kommune"


def load_reference_data(program_file: Path, directory_file: Path) -> ReferenceData:
    return ReferenceData(load_program(program_file), load_directory(str(directory_file)))
