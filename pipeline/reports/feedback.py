"""Vietnamese feedback workbooks: one per district return, and a province overview.

Every cell goes through :mod:`pipeline.reports.excel_safe`, so text from a
return (a unit name such as ``=HYPERLINK(...)``) is written as text.

The district workbook carries a copy of the district's own sheet with the
offending cells highlighted. The copy is *rebuilt* cell by cell from the
values the reader sees (python-calamine, text decoded from TCVN3/VNI, the same
path as parsing) rather than loading the clerk's file with openpyxl and saving
it again: an untrusted workbook's formulas, macros, links and styles never
reach our output, every format (.xlsx/.xlsm/.xls/.ods) is handled alike, and
the cell addresses stay those the messages name. Formatting is not kept;
column widths are estimated from the content and merged cells are restored.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from copy import copy
from pathlib import Path
from typing import Any

import pandas as pd
from openpyxl import Workbook
from openpyxl.comments import Comment
from openpyxl.styles import Alignment, Border, Font, PatternFill, Side
from openpyxl.utils import get_column_letter, range_boundaries
from openpyxl.worksheet.worksheet import Worksheet

from pipeline.ingest.model import Sheet
from pipeline.reports.excel_safe import safe_value, stamp_workbook, write_cell

ISSUE_SHEET = "Danh sách lỗi"
COPY_SHEET = "Bản gốc có đánh dấu"
OVERVIEW_SHEET = "Tình hình gửi báo cáo"
MATRIX_SHEET = "Theo kỳ"

SEVERITY_LABELS = {"error": "Lỗi", "warning": "Cảnh báo", "info": "Lưu ý"}
SEVERITY_ORDER = {"error": 0, "warning": 1, "info": 2}
SEVERITY_FILLS = {
    "error": PatternFill("solid", fgColor="FF8080"),
    "warning": PatternFill("solid", fgColor="FFE066"),
    "info": PatternFill("solid", fgColor="BDD7EE"),
}
STATUS_LABELS = {
    "accepted": "Đã tiếp nhận",
    "accepted_with_warnings": "Đã tiếp nhận (có cảnh báo)",
    "refused": "Bị từ chối – cần sửa và gửi lại",
    "missing": "Chưa gửi báo cáo",
    "superseded": "Đã được thay bằng tệp gửi sau",
    "duplicate": "Trùng với tệp đã gửi",
    "ignored": "Không phải báo cáo, bỏ qua",
}
STATUS_FILLS = {
    "accepted": PatternFill("solid", fgColor="C6EFCE"),
    "accepted_with_warnings": PatternFill("solid", fgColor="FFEB9C"),
    "refused": PatternFill("solid", fgColor="FFC7CE"),
    "missing": PatternFill("solid", fgColor="D9D9D9"),
}

_BOLD = Font(bold=True)
_TITLE = Font(bold=True, size=14)
_HEADER_FILL = PatternFill("solid", fgColor="DDEBF7")
_THIN = Side(style="thin", color="999999")
_BOX = Border(left=_THIN, right=_THIN, top=_THIN, bottom=_THIN)
_WRAP = Alignment(wrap_text=True, vertical="top")
_CENTER = Alignment(horizontal="center", vertical="top", wrap_text=True)
_DATE_FORMAT = "DD/MM/YYYY"
_COMMENT_AUTHOR = "Ban Tổ chức Tỉnh ủy"


def period_label(period: str) -> str:
    year, month = str(period).split("-")
    return f"tháng {int(month)}/{year}"


def status_label(status: str) -> str:
    return STATUS_LABELS.get(status, str(status))


# --------------------------------------------------------------------------- helpers


def _table(ws: Worksheet, top: int, headers: list[str], rows: Iterable[list[Any]], widths: list[int]) -> int:
    """A boxed table with a bold header; returns the last row written."""
    for c, (label, width) in enumerate(zip(headers, widths), start=1):
        write_cell(ws, top, c, label, font=_BOLD, fill=_HEADER_FILL, border=_BOX, alignment=_CENTER)
        ws.column_dimensions[get_column_letter(c)].width = width
    r = top
    template = None  # every body cell has the same style: built once, then copied
    for r, values in enumerate(rows, start=top + 1):
        for c, value in enumerate(values, start=1):
            if template is None:
                template = write_cell(ws, r, c, value, border=_BOX, alignment=_WRAP)
            else:
                write_cell(ws, r, c, value, like=template)
    return r


def _sorted_issues(issues: pd.DataFrame | None) -> pd.DataFrame:
    cols = ["sheet", "cell", "severity", "code", "message", "action"]
    if issues is None or issues.empty:
        return pd.DataFrame(columns=cols)
    df = issues.reindex(columns=cols).reset_index(drop=True)
    rank = df["severity"].map(SEVERITY_ORDER).fillna(9)
    # Worst first, keeping the checker's sheet order within a severity.
    return df.assign(_rank=rank).sort_values("_rank", kind="stable").drop(columns="_rank").reset_index(drop=True)


def _text(value: Any) -> str:
    value = safe_value(value)
    return "" if value is None else str(value)


# --------------------------------------------------------------------------- district feedback


def write_district_feedback(
    out_path: Path,
    *,
    period: str,
    district_name: str,
    file_name: str,
    status: str,
    issues: pd.DataFrame,
    source_path: Path | None,
    stamp: str | None = None,
) -> Path:
    """Write the feedback workbook for one submitted file and return its path.

    ``issues`` has columns sheet, cell, severity, code, message, action.
    ``status`` is a warehouse status (accepted, accepted_with_warnings,
    refused, …). When ``source_path`` can be read, a values-only copy of the
    return's sheet with highlighted, commented cells is added. ``stamp`` is
    kept in the workbook's properties (see ``excel_safe.stamp_workbook``).
    """
    out_path = Path(out_path)
    table = _sorted_issues(issues)
    wb = Workbook()
    ws = wb.active
    ws.title = ISSUE_SHEET

    copy_sheet = _copy_target(table)
    source = _read_source(Path(source_path), copy_sheet) if source_path is not None and copy_sheet else None

    counts = table["severity"].value_counts()
    lines = [
        (f"Phản hồi báo cáo chi bộ cơ quan kỳ {period_label(period)}", _TITLE),
        (f"Đơn vị: {district_name or 'chưa xác định'}", _BOLD),
        (f"Tệp: {file_name}", None),
        (f"Kết quả: {status_label(status)}", _BOLD),
        (
            f"Số lỗi: {int(counts.get('error', 0))}; cảnh báo: {int(counts.get('warning', 0))}; "
            f"lưu ý: {int(counts.get('info', 0))}.",
            None,
        ),
    ]
    if status == "refused":
        lines.append(("Báo cáo có lỗi nên chưa được tổng hợp. Đề nghị sửa các lỗi dưới đây và gửi lại cả tệp.", None))
    if source is not None:
        lines.append((f'Trang "{COPY_SHEET}" là bản sao số liệu của tệp đã gửi (không giữ công thức, định dạng): '
                      "ô có lỗi tô đỏ, cảnh báo tô vàng, lưu ý tô xanh; đưa chuột vào ô để xem nội dung.", None))
    for r, (text, font) in enumerate(lines, start=1):
        cell = write_cell(ws, r, 1, text, font=font)
        if r == 4 and status in STATUS_FILLS:
            cell.fill = STATUS_FILLS[status]

    top = len(lines) + 2
    rows = [
        [n, SEVERITY_LABELS.get(sev, sev), sheet, cell, message, action]
        for n, (sev, sheet, cell, message, action) in enumerate(
            table[["severity", "sheet", "cell", "message", "action"]].itertuples(index=False, name=None), start=1
        )
    ]
    if not rows:
        rows = [["", "", "", "", "Không có lỗi hay cảnh báo nào.", ""]]
    last = _table(ws, top, ["STT", "Mức độ", "Trang", "Ô", "Nội dung", "Cách sửa"], rows, [6, 11, 16, 8, 70, 50])
    for r, sev in enumerate(table["severity"], start=top + 1):
        if sev in SEVERITY_FILLS:
            ws.cell(row=r, column=2).fill = SEVERITY_FILLS[sev]
    ws.freeze_panes = ws.cell(row=top + 1, column=1)
    if len(table):
        ws.auto_filter.ref = f"A{top}:F{last}"

    if source is not None:
        _write_marked_copy(wb.create_sheet(COPY_SHEET), source, table[table["sheet"] == copy_sheet])

    stamp_workbook(wb, stamp)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    wb.save(out_path)
    return out_path


def _copy_target(table: pd.DataFrame) -> str | None:
    """The sheet most located issues point at (a return's data sheet)."""
    located = table.loc[table["cell"].notna() & table["sheet"].notna(), "sheet"]
    return None if located.empty else str(located.value_counts().index[0])


def _read_source(path: Path, sheet_name: str) -> Sheet | None:
    """The named sheet of the submitted file as decoded values, or None if it cannot be read.

    Goes through the same guards and reader as parsing, so a file refused as
    unsafe is never opened here either.
    """
    from pipeline.ingest.guards import Limits, check_bytes, sniff_format
    from pipeline.ingest.parse import decode_sheets
    from pipeline.ingest.read import ReadError, read_workbook

    try:
        data = path.read_bytes()
    except OSError:
        return None
    limits = Limits()
    if check_bytes(data, path.name, limits) is not None:
        return None
    fmt = sniff_format(data)
    if fmt not in ("xlsx", "xlsm", "xls", "ods"):
        return None
    try:
        sheets = read_workbook(data, fmt, limits.max_sheet_rows, limits.max_sheet_cols)
    except ReadError:
        return None
    chosen = [s for s in sheets if s.name == sheet_name]
    if not chosen:
        return None
    decode_sheets(chosen, data if fmt in ("xlsx", "xlsm") else None)
    return chosen[0]


def _write_marked_copy(ws: Worksheet, source: Sheet, issues: pd.DataFrame) -> None:
    widths: dict[int, int] = {}
    for r, row in enumerate(source.rows, start=1):
        for c, value in enumerate(row, start=1):
            if value is None or value == "":
                continue
            style = {"number_format": _DATE_FORMAT} if isinstance(value, dt.date) else {}
            write_cell(ws, r, c, value, **style)
            shown = 10 if isinstance(value, dt.date) else max((len(p) for p in _text(value).splitlines()), default=0)
            widths[c] = max(widths.get(c, 0), shown)
    for c, w in widths.items():
        ws.column_dimensions[get_column_letter(c)].width = min(max(w + 2, 6), 50)

    marks = _marks(issues)
    for (r1, c1), (r2, c2) in source.merged:
        area = f"{get_column_letter(c1 + 1)}{r1 + 1}:{get_column_letter(c2 + 1)}{r2 + 1}"
        if (r1, c1) == (r2, c2):
            continue
        # A flagged cell hidden under a merge could not carry its comment; leave that area unmerged.
        hidden = any(_inside(ref, r1 + 1, c1 + 1, r2 + 1, c2 + 1) and ref != area.split(":")[0] for ref in marks)
        if not hidden:
            ws.merge_cells(area)

    for ref, (severity, text) in marks.items():
        cell = ws[ref]
        cell.fill = SEVERITY_FILLS.get(severity, SEVERITY_FILLS["info"])
        comment = Comment(_text(text), _COMMENT_AUTHOR)
        comment.width, comment.height = 320, 160
        cell.comment = comment
    ws.freeze_panes = None


def _marks(issues: pd.DataFrame) -> dict[str, tuple[str, str]]:
    """Per cell: worst severity and every message (with its fix) for that cell."""
    marks: dict[str, tuple[str, list[str]]] = {}
    for cell, severity, message, action in issues[["cell", "severity", "message", "action"]].itertuples(index=False, name=None):
        if not isinstance(cell, str) or not cell:
            continue
        label = SEVERITY_LABELS.get(severity, severity)
        line = f"{label}: {message}" + (f" → {action}" if isinstance(action, str) and action else "")
        worst, lines = marks.get(cell, (severity, []))
        if SEVERITY_ORDER.get(severity, 9) < SEVERITY_ORDER.get(worst, 9):
            worst = severity
        marks[cell] = (worst, [*lines, line])
    return {ref: (sev, "\n".join(lines)) for ref, (sev, lines) in marks.items()}


def _inside(ref: str, r1: int, c1: int, r2: int, c2: int) -> bool:
    col, row, _, _ = range_boundaries(ref)
    return r1 <= row <= r2 and c1 <= col <= c2


# --------------------------------------------------------------------------- province overview


# The list sheet details the newest periods (who sent what, with how many errors): what
# the Board follows up. Every period's status stays in the matrix sheet, and a list
# of years of history would cost each nightly run more than the rest of the overview.
DETAIL_PERIODS = 12


def write_status_overview(out_path: Path, *, status: pd.DataFrame, stamp: str | None = None) -> Path:
    """Province overview of submissions: one row per district for each of the newest
    ``DETAIL_PERIODS`` periods, plus a district × period matrix of every period;
    statuses in Vietnamese, coloured by outcome."""
    out_path = Path(out_path)
    every = status.copy()
    every["period"] = every["period"].astype(str)
    every = every.sort_values(["period", "district_name"], ascending=[False, True], kind="stable").reset_index(drop=True)
    periods = list(dict.fromkeys(every["period"]))  # newest first
    df = every[every["period"].isin(periods[:DETAIL_PERIODS])]

    wb = Workbook()
    ws = wb.active
    ws.title = OVERVIEW_SHEET
    write_cell(ws, 1, 1, "Tình hình gửi báo cáo chi bộ cơ quan của các huyện, thị xã, thành phố", font=_TITLE)
    if len(periods) > DETAIL_PERIODS:
        write_cell(ws, 2, 1, f"Danh sách dưới đây gồm {DETAIL_PERIODS} kỳ gần nhất; tình trạng của cả {len(periods)} kỳ "
                             f"(từ {period_label(periods[-1])}) xem ở trang “{MATRIX_SHEET}”.")  # fmt: skip
    headers = ["Kỳ báo cáo", "Mã", "Đơn vị", "Tình trạng", "Tệp đang có hiệu lực", "Số lỗi", "Số cảnh báo"]
    rows = [
        [
            period_label(r.period),
            r.district_code,
            r.district_name,
            status_label(r.status),
            r.source_file,
            _count(r.errors),
            _count(r.warnings),
        ]
        for r in df.itertuples(index=False)
    ]
    top = 3
    last = _table(ws, top, headers, rows, [14, 8, 26, 30, 40, 8, 12])
    for r, st in enumerate(df["status"], start=top + 1):
        if st in STATUS_FILLS:
            ws.cell(row=r, column=4).fill = STATUS_FILLS[st]
    ws.freeze_panes = ws.cell(row=top + 1, column=1)
    if rows:
        ws.auto_filter.ref = f"A{top}:G{last}"

    _write_matrix(wb.create_sheet(MATRIX_SHEET), every)
    stamp_workbook(wb, stamp)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    wb.save(out_path)
    return out_path


def _count(value: Any) -> int | None:
    value = safe_value(value)
    return None if value is None else int(value)


def _write_matrix(ws: Worksheet, df: pd.DataFrame) -> None:
    periods = sorted(df["period"].unique())
    districts = df[["district_code", "district_name"]].drop_duplicates("district_code").sort_values("district_name")
    lookup = {(p, d): s for p, d, s in df[["period", "district_code", "status"]].itertuples(index=False, name=None)}
    write_cell(ws, 1, 1, "Tình trạng báo cáo theo kỳ", font=_TITLE)
    headers = ["Mã", "Đơn vị", *(period_label(p) for p in periods)]
    rows = [[code, name, *(status_label(lookup[(p, code)]) if (p, code) in lookup else "" for p in periods)] for code, name in districts.itertuples(index=False, name=None)]
    _table(ws, 3, headers, rows, [8, 26, *([22] * len(periods))])
    styled: dict[str, Any] = {}  # status -> its first coloured cell, whose whole style the others copy
    for r, code in enumerate(districts["district_code"], start=4):
        for c, p in enumerate(periods, start=3):
            st = lookup.get((p, code))
            if st in STATUS_FILLS:
                cell = ws.cell(row=r, column=c)
                if st in styled:
                    # Assigning a fill hashes it against the workbook's styles, ~20x a copy;
                    # every body cell of the table has the same style but for the fill.
                    cell._style = copy(styled[st]._style)
                else:
                    cell.fill = STATUS_FILLS[st]
                    styled[st] = cell
    ws.freeze_panes = "C4"
