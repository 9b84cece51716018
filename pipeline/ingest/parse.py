"""One file's bytes → a ParsedReturn: guards, read, decode, locate, type, match.

Nothing here decides whether a return is accepted: reading problems become
issues on the ParsedReturn, and pipeline.checks.rules judges the content.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from datetime import date
from typing import Any

import numpy as np
import pandas as pd
from pandas.arrays import BooleanArray, IntegerArray

try:  # public since pandas 3: build a frame from ready blocks, without per-column inference
    from pandas.api.internals import create_dataframe_from_blocks as _from_blocks
except ImportError:  # pragma: no cover - older pandas
    _from_blocks = None

from pipeline.checks.catalogue import make_issue
from pipeline.ingest import values
from pipeline.ingest.guards import Limits, screen_bytes
from pipeline.ingest.layout import choose_sheet, column_letter, missing_required
from pipeline.ingest.match import UnitMatcher
from pipeline.ingest.memo import recall
from pipeline.ingest.model import FIELD_LABELS, FIELDS, Layout, ParsedReturn, Sheet, UnitColumns
from pipeline.ingest.read import ReadError, is_blank, read_workbook, saved_time, xlsx_sheet_fonts
from pipeline.ingest.text import decode_cells


def _remembered(parser: Callable[[Any], tuple[Any, str | None]], size: int = 20_000):
    """``parser`` answering again from memory for a cell value it has seen (``memo.recall``);
    its answers are immutable."""
    memo: dict = {}

    def parse(v: Any) -> tuple[Any, str | None]:
        return recall(memo, size, parser, v)

    return functools.update_wrapper(parse, parser)


_PARSERS = {
    "total_members": _remembered(values.parse_count),
    "cell_members": _remembered(values.parse_count),
    "eligible": _remembered(values.parse_flag),
    "has_cell": _remembered(values.parse_flag),
    "established_on": _remembered(values.parse_date),
    "basis": _remembered(values.parse_basis),
    "unit_type": _remembered(values.parse_unit_type),
}
_TEXT_FIELDS = ("stt", "unit_code", "unit_name", "note")
_MAX_FORMULA_ISSUES = 20

_AS_OF = [
    re.compile(r"(?:tính\s+)?đến\s+ngày\s+(\d{1,2})\s*[/.-]\s*(\d{1,2})\s*[/.-]\s*(\d{4})", re.IGNORECASE),
    re.compile(r"ngày\s+(\d{1,2})\s+tháng\s+(\d{1,2})\s+năm\s+(\d{4})", re.IGNORECASE),
    re.compile(r"\b(\d{1,2})\s*/\s*(\d{1,2})\s*/\s*(\d{4})\b"),
]


def parse_return(data: bytes, file_name: str, matcher: UnitMatcher, limits: Limits | None = None) -> ParsedReturn:
    """Read one return from its bytes; every problem becomes an issue, never an exception."""
    limits = limits or Limits()
    result = ParsedReturn(file_name=file_name)
    parts: dict[str, bytes] = {}
    fmt, refusal = screen_bytes(data, file_name, limits, parts)
    if refusal is not None:
        result.issues.append(refusal)
        return result

    try:
        sheets = read_workbook(data, fmt, limits.max_sheet_rows, limits.max_sheet_cols, parts)
    except ReadError as exc:
        result.issues.append(make_issue(exc.code, file=file_name, detail=exc.detail))
        return result

    result.saved_at = saved_time(data, fmt, parts)
    decode_sheets(sheets, data if fmt in ("xlsx", "xlsm") else None, parts)
    chosen = choose_sheet(sheets)
    if chosen is None:
        code = "file_empty" if not any(_has_content(s) for s in sheets) else "no_header"
        result.issues.append(make_issue(code, file=file_name, detail=""))
        return result
    sheet, layout = chosen
    result.sheet = sheet.name
    result.columns = {f: column_letter(c) for f, c in layout.columns.items()}
    result.title_lines = layout.title_lines

    for f in missing_required(layout):
        result.issues.append(make_issue("missing_column", sheet=sheet.name, file=file_name, column=_label(f)))
    result.issues.extend(_formula_issues(sheet, layout, file_name))
    for col, label in layout.extra_columns:
        ref = f"{column_letter(col)}{layout.header_rows[-1] + 1}"
        result.issues.append(make_issue("extra_column", sheet=sheet.name, cell=ref, column=label, file=file_name))

    columns = _typed_columns(sheet, layout)
    if layout.totals_row is not None:
        result.totals_row = layout.totals_row + 1
        result.totals = _typed_totals(sheet.rows[layout.totals_row], layout)
    if not layout.data_rows:
        result.rows = columns
        result.issues.append(make_issue("no_units", sheet=sheet.name, file=file_name))
        return result

    _match_units(result, matcher, columns)
    result.rows = columns  # the DataFrame is made when first asked for (model._Rows)
    result.as_of = find_as_of(layout.title_lines)
    return result


def _has_content(sheet: Sheet) -> bool:
    return any(not is_blank(v) for row in sheet.rows for v in row)


def _label(field: str) -> str:
    return FIELD_LABELS[field]


def decode_sheets(sheets: list[Sheet], xlsx_data: bytes | None, parts: dict[str, bytes] | None = None) -> None:
    """Decode every text cell of the workbook in one batch, so evidence from all cells counts.

    ``parts``: the .xlsx parts ``screen_bytes`` already inflated (styles.xml is looked at).
    """
    positions: list[tuple[int, int, int]] = []
    texts: list[str] = []
    fonts: list[str | None] = []
    workbook_fonts = xlsx_sheet_fonts(xlsx_data, [s.name for s in sheets], parts) if xlsx_data is not None else None
    for s, sheet in enumerate(sheets):
        sheet_fonts = workbook_fonts.get(sheet.name) if workbook_fonts else None
        for r, row in enumerate(sheet.rows):
            for c, v in enumerate(row):
                if isinstance(v, str) and v:
                    positions.append((s, r, c))
                    texts.append(v)
                    fonts.append(sheet_fonts.get((r, c)) if sheet_fonts else None)
    if not texts:
        return
    decoded = decode_cells(texts, fonts if any(fonts) else None, positions=positions)
    for (s, r, c), text in zip(positions, decoded):
        sheets[s].rows[r][c] = text


def _formula_issues(sheet: Sheet, layout: Layout, file_name: str) -> list:
    if not sheet.formulas_without_value:
        return []
    rows_in_table = set(layout.data_rows)
    if layout.totals_row is not None:
        rows_in_table.add(layout.totals_row)
    found = []
    for ref in sheet.formulas_without_value:
        row = int(re.sub(r"[A-Z]+", "", ref)) - 1
        if row in rows_in_table:
            found.append(make_issue("formula_without_value", sheet=sheet.name, cell=ref, file=file_name))
    return found[:_MAX_FORMULA_ISSUES]


def _cell(row: list[Any], col: int | None) -> Any:
    if col is None or col >= len(row):
        return None
    v = row[col]
    return None if v == "" else v


def _typed_columns(sheet: Sheet, layout: Layout) -> UnitColumns:
    """The unit rows as plain lists per column, in ParsedReturn.rows' column order."""
    records = UnitColumns(excel_row=[r + 1 for r in layout.data_rows])
    raw_rows = [sheet.rows[r] for r in layout.data_rows]
    for f in FIELDS:
        col = layout.columns.get(f)
        raw = [_cell(row, col) for row in raw_rows]
        records[f"{f}_raw"] = raw
        parser = _PARSERS.get(f)
        if parser is not None:
            parsed = [parser(v) for v in raw]
            records[f] = [p[0] for p in parsed]
            records[f"{f}_error"] = [p[1] for p in parsed]
        else:
            records[f] = [_clean_text(v) for v in raw]
    return records


def _typed_rows(sheet: Sheet, layout: Layout) -> pd.DataFrame:
    return unit_frame(_typed_columns(sheet, layout))


# Columns with their own dtype; every other column is object (None for blank).
_TYPED_COLUMNS = {
    "excel_row": "int64",
    "total_members": "Int64",
    "cell_members": "Int64",
    "eligible": "boolean",
    "has_cell": "boolean",
    "code_conflict": "bool",
}


def unit_frame(records: dict[str, list]) -> pd.DataFrame:
    """``ParsedReturn.rows`` from its column lists: a single object block plus the typed columns.

    pandas builds and type-infers a block per column when given a dict, which
    costs more than reading a small return. Object columns keep None for blanks
    and their values exactly as parsed.
    """
    names = list(records)
    n_rows = len(records["excel_row"])
    plain = [i for i, n in enumerate(names) if n not in _TYPED_COLUMNS]
    block = np.empty((len(plain), n_rows), dtype=object)
    for j, i in enumerate(plain):
        block[j] = records[names[i]]
    typed = [(i, _typed_array(records[names[i]], _TYPED_COLUMNS[names[i]])) for i, n in enumerate(names) if n in _TYPED_COLUMNS]
    if _from_blocks is not None:
        blocks = [(block, np.array(plain, dtype=np.intp))]
        for i, arr in typed:
            blocks.append((arr.reshape(1, -1) if isinstance(arr, np.ndarray) else arr, np.array([i], dtype=np.intp)))
        return _from_blocks(blocks, index=pd.RangeIndex(n_rows), columns=_column_index(tuple(names)))
    frame = pd.DataFrame(block.T, columns=[names[i] for i in plain], dtype=object, copy=False)
    for i, arr in typed:
        frame.insert(i, names[i], arr)
    return frame


@functools.lru_cache(maxsize=64)
def _column_index(names: tuple[str, ...]) -> pd.Index:
    # Every return has the same columns; an Index is immutable, so frames can share one
    # (building it infers the string dtype each time: ~50 µs, a quarter of the frame).
    return pd.Index(names)


def _typed_array(values: list, dtype: str):
    if dtype in ("int64", "bool"):
        return np.array(values, dtype=dtype)
    mask = np.fromiter((v is None for v in values), dtype=bool, count=len(values))
    if dtype == "Int64":
        data = np.fromiter((0 if v is None else v for v in values), dtype=np.int64, count=len(values))
        return IntegerArray(data, mask)
    data = np.fromiter((bool(v) for v in values), dtype=bool, count=len(values))
    return BooleanArray(data, mask)


def _typed_totals(row: list[Any], layout: Layout) -> dict[str, Any]:
    totals: dict[str, Any] = {}
    for f in ("total_members", "cell_members", "eligible", "has_cell"):
        raw = _cell(row, layout.columns.get(f))
        if raw is None:
            continue
        # In the totals row the flag columns hold counts of units, not flags.
        value, error = values.parse_count(raw)
        if error is None and value is not None:
            totals[f] = value
    return totals


def _match_units(result: ParsedReturn, matcher: UnitMatcher, columns: dict[str, list]) -> None:
    names = columns["unit_name"]
    codes = columns["unit_code"]
    guess = matcher.infer_district(names, codes)
    result.district_code = guess.district_code
    result.district_counts = dict(guess.matched_per_district)
    result.title_district_code = next(
        (d for d in (matcher.district_from_text(line) for line in result.title_lines) if d), None
    )
    result.filename_district_code = matcher.district_from_filename(result.file_name)
    matches = [matcher.match_unit(n, c, result.district_code) for n, c in zip(names, codes)]
    columns["matched_unit_code"] = [m.unit_code for m in matches]
    columns["match_method"] = [m.method for m in matches]
    columns["code_conflict"] = [bool(m.code_conflict) for m in matches]


def _clean_text(v: Any) -> str | None:
    if v is None:
        return None
    if isinstance(v, float) and v.is_integer():
        v = int(v)  # codes and row numbers typed as numbers
    text = " ".join(str(v).split())
    return text or None


def find_as_of(title_lines: list[str]) -> date | None:
    """The "as of" date written in the title block, preferring "tính đến ngày …"."""
    for pattern in _AS_OF:
        for line in title_lines:
            m = pattern.search(line)
            if m:
                d, mth, y = (int(g) for g in m.groups())
                try:
                    return date(y, mth, d)
                except ValueError:
                    continue
    return None
