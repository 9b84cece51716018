"""The shapes passed between the reading steps (no logic here)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Internal names of the fields a return carries, in the template's order.
FIELDS = (
    "stt",
    "unit_code",
    "unit_name",
    "unit_type",
    "total_members",
    "eligible",
    "has_cell",
    "established_on",
    "basis",
    "cell_members",
    "note",
)
# A return without one of these cannot be read; the others may be absent.
REQUIRED_FIELDS = ("unit_name", "total_members", "eligible", "has_cell", "established_on", "basis", "cell_members")
COUNT_FIELDS = ("total_members", "cell_members")


@dataclass
class Sheet:
    """One worksheet as a dense grid; ``rows[r][c]`` is Excel cell (r+1, c+1)."""

    name: str
    rows: list[list[Any]]
    merged: list[tuple[tuple[int, int], tuple[int, int]]] = field(default_factory=list)
    # Excel refs of cells holding a formula whose cached value is missing.
    formulas_without_value: list[str] = field(default_factory=list)


@dataclass
class Layout:
    """Where the table sits on a sheet (all indexes 0-based grid positions)."""

    header_rows: list[int]
    columns: dict[str, int]  # field -> column index
    extra_columns: list[tuple[int, str]]  # (column index, label) of columns not in the template
    data_rows: list[int]  # unit rows: blank rows, totals row and signature block excluded
    totals_row: int | None
    title_lines: list[str]  # non-empty text above the header, top to bottom
    score: float = 0.0
