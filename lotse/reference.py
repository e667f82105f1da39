"""The reference data lotse reads: the funding programme (shared.program) over the municipality
directory (shared.directory), and the eligibility it gives each Kommune, in words."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from shared.directory import KIND_LABELS_DE, Directory, Kommune, KommuneKind, load_directory
from shared.program import Program, load_program


@dataclass(frozen=True)
class ReferenceData:
    program: Program
    directory: Directory

    @property
    def budgets(self) -> dict[str, int | None]:
        return {period.id: period.budget_cents for period in self.program.periods}

    @property
    def eligible_kommunen(self) -> int:
        return sum(
            1 for kommune in self.directory.kommunen.values() if self.program.eligibility.admits(kommune)
        )

    def eligibility_of(self, kommune: Kommune) -> tuple[bool, str]:
        """Whether the programme funds the Kommune, and why, in words an operator can pass on."""
        rules = self.program.eligibility
        label = KIND_LABELS_DE[kommune.kind]
        if kommune.land not in rules.lands:
            return (
                False,
                f"it lies in Land {kommune.land}; the programme covers Land {', '.join(rules.lands)}",
            )
        if rules.admits(kommune):
            return True, f"{label} in Land {kommune.land}"
        parent = self.directory.get(kommune.parent_key) if kommune.parent_key else None
        if kommune.kind is KommuneKind.MITGLIEDSGEMEINDE and parent is not None:
            return False, (
                f"{label} of the Samtgemeinde {parent.name} ({parent.key}), which is the eligible Kommune"
            )
        return False, f"a {label} is not among the eligible kinds of Kommune"


def load_reference_data(program_file: Path, directory_file: Path) -> ReferenceData:
    return ReferenceData(load_program(program_file), load_directory(str(directory_file)))
