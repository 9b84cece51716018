"""The one door every workbook writer goes through.

District returns are untrusted: a unit name or note such as
``=HYPERLINK("http://x","y")`` must reach a report as the text it is, never
as a live formula (OWASP "CSV/formula injection"). openpyxl turns any string
starting with ``=`` into a formula, so writers call :func:`write_cell` instead
of assigning ``cell.value`` themselves, and tests call
:func:`assert_no_formulas` on what they wrote.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import zipfile
from collections.abc import Iterable
from copy import copy
from pathlib import Path, PurePosixPath
from typing import Any

import pandas as pd
from defusedxml import ElementTree as SafeET
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.worksheet.worksheet import Worksheet

# Leading characters that spreadsheet programs (or a user re-editing the cell)
# may interpret as the start of a formula or a DDE payload.
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r", "\n")

# Excel refuses to open cells longer than this.
MAX_CELL_CHARS = 32_767

_MAIN_NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_REL_NS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_PKG_REL_NS = "http://schemas.openxmlformats.org/package/2006/relationships"
_STYLE_KEYS = {"font", "fill", "border", "alignment", "number_format", "protection"}


def is_formula_like(value: Any) -> bool:
    """True for strings a spreadsheet could read as a formula."""
    return isinstance(value, str) and value.startswith(FORMULA_TRIGGERS)


def safe_value(value: Any) -> Any:
    """Normalise a value for openpyxl: missing -> None, numpy/pandas scalars ->
    Python ones, strings cleaned of XML-illegal control characters and cut to
    Excel's cell limit. Strings keep their leading ``=``: :func:`write_cell`
    is what stores them as text."""
    if value is None:
        return None
    if value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, bool | int | float | dt.date | dt.datetime | dt.time):
        return value
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    text = ILLEGAL_CHARACTERS_RE.sub("", str(value))
    return text[:MAX_CELL_CHARS]


def write_cell(ws: Worksheet, row: int, col: int, value: Any, **style: Any):
    """Write one cell; formula-like strings are stored as plain text.

    ``style`` takes openpyxl cell style attributes: ``font``, ``fill``,
    ``border``, ``alignment``, ``number_format``, ``protection``; or
    ``like=<cell>`` to take that cell's whole style (fast, for long tables).
    """
    unknown = set(style) - _STYLE_KEYS - {"like"}
    if unknown:
        raise TypeError(f"unknown style attributes: {sorted(unknown)}")
    cell = ws.cell(row=row, column=col)
    like = style.pop("like", None)
    if like is not None:
        # The whole style of another cell, copied as is: assigning style objects
        # hashes each one against the workbook's list, ~20x slower per cell.
        cell._style = copy(like._style)
    given = {key: spec for key, spec in style.items() if spec is not None}
    if given:
        _apply_style(ws.parent, cell, given)
    value = safe_value(value)
    cell.value = value
    if is_formula_like(value):
        # data_type 's' makes openpyxl write an inline string instead of <f>;
        # quotePrefix keeps Excel from re-parsing the text when a user edits it.
        cell.data_type = "s"
        cell.quotePrefix = True
    return cell


# Styles remembered per workbook (the style indexes point into its own lists); a bound keeps a
# writer that makes new style objects for every cell from growing the memory for nothing.
_STYLE_MEMORY = 4096


def _apply_style(wb, cell, given: dict[str, Any]) -> None:
    """Set ``given`` style attributes on ``cell``; the same combination again is copied whole.

    openpyxl hashes every style object it is given against the workbook's
    lists, field by field: ~80 µs a cell, most of the time of writing a long
    table. A combination is known by the cell's style before and the identity
    of the objects given (the memory holds them, so an identity is never
    reused): style objects are treated as immutable, as every writer here
    uses them (make a new one rather than change one already written).
    """
    memory = wb.__dict__.setdefault("_write_cell_styles", {})
    before = cell._style  # None until a style is set
    key = (tuple(before) if before is not None else (), *((k, v if isinstance(v, str) else id(v)) for k, v in given.items()))
    known = memory.get(key)
    if known is not None:
        cell._style = copy(known[0])
        return
    for k, v in given.items():
        setattr(cell, k, v)
    if len(memory) < _STYLE_MEMORY:
        memory[key] = (copy(cell._style), tuple(given.values()))


# Custom document property naming what a generated workbook was made from (see
# ``stamp_workbook``): a run compares it before rewriting the same workbook.
STAMP_PROPERTY = "pipeline_inputs"
_CUSTOM_NS = "http://schemas.openxmlformats.org/officeDocument/2006/custom-properties"


def stamp_workbook(wb, stamp: str | None) -> None:
    """Record ``stamp`` (a digest of a workbook's inputs) in the workbook's custom properties."""
    if stamp is not None:
        from openpyxl.packaging.custom import StringProperty

        wb.custom_doc_props.append(StringProperty(name=STAMP_PROPERTY, value=stamp))


def read_stamp(path: Path) -> str | None:
    """The stamp ``stamp_workbook`` put in the workbook at ``path``; None if missing or unreadable."""
    try:
        with zipfile.ZipFile(path) as zf:
            root = SafeET.fromstring(zf.read("docProps/custom.xml"))
    except Exception:  # noqa: BLE001 - no file, not a workbook, no properties: simply not stamped
        return None
    for prop in root.iter(f"{{{_CUSTOM_NS}}}property"):
        if prop.get("name") == STAMP_PROPERTY:
            return "".join(prop.itertext()).strip() or None
    return None


def _sheet_titles(zf: zipfile.ZipFile) -> dict[str, str]:
    """Map worksheet part names (``xl/worksheets/sheet1.xml``) to sheet titles."""
    rels = SafeET.fromstring(zf.read("xl/_rels/workbook.xml.rels"))
    targets = {}
    for rel in rels.iter(f"{{{_PKG_REL_NS}}}Relationship"):
        target = rel.get("Target", "")
        part = target.lstrip("/") if target.startswith("/") else str(PurePosixPath("xl") / target)
        targets[rel.get("Id")] = part
    book = SafeET.fromstring(zf.read("xl/workbook.xml"))
    titles = {}
    for sheet in book.iter(f"{{{_MAIN_NS}}}sheet"):
        part = targets.get(sheet.get(f"{{{_REL_NS}}}id"))
        if part:
            titles[part] = sheet.get("name")
    return titles


def find_formulas(path: Path) -> list[tuple[str, str, str]]:
    """Every formula stored in an .xlsx: ``(sheet title, cell, formula text)``."""
    found = []
    with zipfile.ZipFile(path) as zf:
        titles = _sheet_titles(zf)
        for name in sorted(zf.namelist()):
            if not re.fullmatch(r"xl/worksheets/[^/]+\.xml", name):
                continue
            root = SafeET.fromstring(zf.read(name))
            for c in root.iter(f"{{{_MAIN_NS}}}c"):
                f = c.find(f"{{{_MAIN_NS}}}f")
                if f is not None:
                    found.append((titles.get(name, name), c.get("r", ""), f.text or ""))
    return found


def assert_no_formulas(path: Path, allow: Iterable[str] = ()) -> None:
    """Fail if the workbook holds any formula other than the allowed cells.

    ``allow`` lists cells written as formulas on purpose, as ``"Sheet!A1"``.
    """
    allowed = set(allow)
    unexpected = [f for f in find_formulas(Path(path)) if f"{f[0]}!{f[1]}" not in allowed]
    assert not unexpected, f"formulas found in {path}: {unexpected}"
