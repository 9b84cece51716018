"""The shapes passed between the reading steps (no logic here, beyond making
``ParsedReturn.rows`` from the parser's column lists when first asked for)."""

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


class UnitColumns(dict):
    """A return's unit rows as the parser makes them: column name → list of values, in the
    order and with the values ``ParsedReturn.rows`` has (``parse.unit_frame`` makes that)."""


class _Rows:
    """``ParsedReturn.rows``: a DataFrame, made from the parser's ``UnitColumns`` the first time
    it is asked for. A worker that parses returns and prepares their periods never needs one
    per return (pandas costs ~0.1 ms a frame, and pickles a frame ~4x slower than its lists)."""

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return None  # the dataclass field's default
        value = obj.__dict__.get("_rows")
        if isinstance(value, UnitColumns):
            from pipeline.ingest.parse import unit_frame  # parse imports this module

            value = obj.__dict__["_rows"] = unit_frame(value)
        return value

    def __set__(self, obj: Any, value: Any) -> None:
        obj.__dict__["_rows"] = value


@dataclass
class ParsedReturn:
    """One file read into typed unit rows, before any rule is applied.

    ``rows`` has one row per unit row of the table with these columns:
    excel_row (int, Excel row number), and for every field in FIELDS the
    parsed value plus ``<field>_raw`` (the cell value as written, text decoded)
    and, for typed fields, ``<field>_error`` (a catalogue code from the value
    parser or None). Parsed types: unit_code/unit_name/note str|None;
    unit_type 'xa'|'phuong'|'thi_tran'|None; total_members/cell_members
    Int64 (nullable); eligible/has_cell boolean; established_on date|None;
    basis 'HD10'|'HD28'|None. Matching adds: matched_unit_code (register
    code or None), match_method ('code'|'name'|'alias'|None),
    code_conflict (bool: a valid code names another unit than the name).
    """

    file_name: str
    sheet: str | None = None
    columns: dict[str, str] = field(default_factory=dict)  # field -> Excel column letter
    rows: Any = _Rows()  # pandas.DataFrame (see above) or None; may be held as UnitColumns until used
    totals: dict[str, Any] = field(default_factory=dict)  # declared totals: field -> parsed value
    totals_row: int | None = None  # Excel row number of the totals row
    title_lines: list[str] = field(default_factory=list)
    district_code: str | None = None  # decided from the units
    title_district_code: str | None = None
    filename_district_code: str | None = None
    district_counts: dict[str, int] = field(default_factory=dict)  # rows matching only in each district
    as_of: Any = None  # datetime.date found in the title block, or None
    saved_at: str | None = None  # when the workbook says it was last saved (read.saved_time), or None
    issues: list = field(default_factory=list)  # file/layout-level Issues found while reading

    # What the rules and the batch ask of the rows, answered without making the DataFrame.
    def row_count(self) -> int | None:
        """How many unit rows; None when the file could not be read (``rows`` is None)."""
        value = self.__dict__.get("_rows")
        if value is None:
            return None
        return len(value["excel_row"]) if isinstance(value, UnitColumns) else len(value)

    def column_names(self) -> Any:
        """The rows' column names (anything ``in`` works on); empty when ``rows`` is None."""
        value = self.__dict__.get("_rows")
        if value is None:
            return ()
        return value.keys() if isinstance(value, UnitColumns) else value.columns

    def unit_columns(self) -> UnitColumns | None:
        """The rows as the parser's column lists while no DataFrame has been made of them, else None."""
        value = self.__dict__.get("_rows")
        return value if isinstance(value, UnitColumns) else None


# The template's label for each field, used when telling a district what is missing.
FIELD_LABELS = {
    "stt": "STT",
    "unit_code": "Mã ĐVHC",
    "unit_name": "Tên đơn vị hành chính cấp xã",
    "unit_type": "Loại đơn vị",
    "total_members": "Tổng số đảng viên của đảng bộ",
    "eligible": "Đủ điều kiện thành lập chi bộ cơ quan",
    "has_cell": "Đã thành lập chi bộ cơ quan",
    "established_on": "Ngày thành lập",
    "basis": "Căn cứ thành lập",
    "cell_members": "Số đảng viên chi bộ cơ quan",
    "note": "Ghi chú",
}
