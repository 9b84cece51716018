"""The province report workbook the Board signs: title block, narrative,
figures by unit type and by district, HD28 cells, submission status, charts.

Every cell goes through :func:`excel_safe.write_cell`: district and unit names
come from untrusted returns. Figures are written as values (no formulas), so
the workbook reads the same in any program and after any later edit.
"""

from __future__ import annotations

import datetime as dt
import math
from functools import lru_cache
from pathlib import Path

import pandas as pd
from openpyxl import Workbook
from openpyxl.chart import BarChart, Reference
from openpyxl.chart.label import DataLabelList
from openpyxl.styles import Alignment, Border, Font, PatternFill, Side
from openpyxl.utils import get_column_letter

from pipeline.reports.excel_safe import stamp_workbook
from openpyxl.worksheet.page import PageMargins
from openpyxl.worksheet.pagebreak import Break
from openpyxl.worksheet.worksheet import Worksheet

from .excel_safe import write_cell
from .narrative import HD28_SHEET, UNIT_TYPE_LABELS, UNIT_TYPES, period_phrase, province_paragraph
from .vn_format import fmt_date, fmt_date_long

FONT = "Times New Roman"
# [$-42A] is the Vietnamese locale: LibreOffice (and the PDF) then shows 1.091
# and 51,8; Excel uses the reader's own separators either way.
INT_FORMAT = "[$-42A]#,##0"
PCT_FORMAT = "[$-42A]0.0"

STATUS_LABELS = {
    "accepted": "Đã chấp nhận",
    "accepted_with_warnings": "Chấp nhận, có cảnh báo",
    "refused": "Bị từ chối",
    "missing": "Chưa gửi",
}
_STATUS_FILLS = {
    "accepted_with_warnings": PatternFill("solid", fgColor="FFF2CC"),
    "refused": PatternFill("solid", fgColor="F8CBAD"),
    "missing": PatternFill("solid", fgColor="E7E6E6"),
}

SHEET_REPORT = "Báo cáo"
SHEET_DISTRICTS = "Theo huyện"
SHEET_HD28 = HD28_SHEET  # the narrative refers to it by name
SHEET_STATUS = "Tình hình gửi báo cáo"

_THIN = Side(style="thin")
_BOX = Border(left=_THIN, right=_THIN, top=_THIN, bottom=_THIN)
_WRAP_CENTER = Alignment(horizontal="center", vertical="center", wrap_text=True)
_WRAP_LEFT = Alignment(horizontal="left", vertical="center", wrap_text=True)
_CENTER = Alignment(horizontal="center", vertical="center")
_RIGHT = Alignment(horizontal="right", vertical="center")
_JUSTIFY = Alignment(horizontal="justify", vertical="top", wrap_text=True)

# Measured on LibreOffice's PDF output: a line of Times New Roman 12 holds ~1.3
# characters per column-width unit (1.15 leaves slack for Excel), ~15.5 points high.
_CHARS_PER_WIDTH = 1.15
_LINE_POINTS = 15.5

# (header, frame column, number format) of the figure columns shared by the
# by-type and by-district tables.
_FIGURES = (
    ("Số đơn vị", "units", INT_FORMAT),
    ("Số đã thành lập chi bộ cơ quan", "units_with_cell", INT_FORMAT),
    ("Tỷ lệ (%)", "coverage_pct", PCT_FORMAT),
    ("Số đảng viên chi bộ cơ quan", "cell_members", INT_FORMAT),
    ("Tổng số đảng viên", "total_members", INT_FORMAT),
    ("Tỷ lệ đảng viên (%)", "member_share_pct", PCT_FORMAT),
)
_BY_TYPE = (
    ("Loại đơn vị", None, None),
    *_FIGURES,
    ("Theo HD 28", "cells_hd28", INT_FORMAT),
    ("Theo HD 10", "cells_hd10", INT_FORMAT),
)
_BY_TYPE_WIDTHS = (14, 9, 12, 9, 12, 11, 11, 9, 9)
# A bar per district reads up to a few dozen districts (a province has 17); hundreds (a national
# register) would make pages of bars no one reads, so the table on its sheet stands alone.
MAX_DISTRICTS_CHARTED = 60


@lru_cache(maxsize=64)
def _font(size: int = 12, **kw) -> Font:
    """One Font object per look: write_cell knows a style it has written by its objects."""
    return Font(name=FONT, size=size, **kw)


def _text_row(ws: Worksheet, row: int, first: int, last: int, text: str, *, font: Font,
              align: Alignment = _CENTER, height: float | None = None) -> None:
    write_cell(ws, row, first, text, font=font, alignment=align)
    if last > first:
        ws.merge_cells(start_row=row, start_column=first, end_row=row, end_column=last)
    if height:
        ws.row_dimensions[row].height = height


def _lines(text, width: float) -> int:
    return max(1, math.ceil(len(str(text)) / (width * _CHARS_PER_WIDTH))) if text else 1


def _paragraph(ws: Worksheet, row: int, last_col: int, text: str) -> None:
    """A justified paragraph over columns A..last_col, tall enough for its lines."""
    width = sum(ws.column_dimensions[get_column_letter(c)].width for c in range(1, last_col + 1))
    _text_row(ws, row, 1, last_col, text, font=_font(),
              align=_JUSTIFY,
              height=_lines(text, width) * _LINE_POINTS + 4)


def _fit_row(ws: Worksheet, row: int, n_cols: int) -> None:
    """Row height for the longest wrapped text: Excel and LibreOffice do not
    grow rows written by openpyxl, so long district or unit names would be cut."""
    lines = 1
    for col in range(1, n_cols + 1):
        value = ws.cell(row, col).value
        if isinstance(value, str):
            lines = max(lines, _lines(value, ws.column_dimensions[get_column_letter(col)].width))
    if lines > 1:
        ws.row_dimensions[row].height = lines * _LINE_POINTS + 3


def _set_widths(ws: Worksheet, widths) -> None:
    for i, w in enumerate(widths, start=1):
        ws.column_dimensions[get_column_letter(i)].width = w


def _header(ws: Worksheet, row: int, labels, height: float = 48) -> int:
    """Header row plus the numbered row "(1) (2) ..." of Vietnamese statistical tables."""
    for col, label in enumerate(labels, start=1):
        write_cell(ws, row, col, label, font=_font(11, bold=True), alignment=_WRAP_CENTER, border=_BOX)
        write_cell(ws, row + 1, col, f"({col})", font=_font(10, italic=True), alignment=_CENTER, border=_BOX)
    ws.row_dimensions[row].height = height
    return row + 2


def _figure_cells(ws: Worksheet, row: int, first_col: int, record, columns, *, bold=False) -> None:
    for offset, (_, key, fmt) in enumerate(columns):
        value = record.get(key) if key else None
        write_cell(ws, row, first_col + offset, value,
                   font=_font(12, bold=bold), alignment=_RIGHT,
                   border=_BOX, number_format=fmt)


def _print_setup(ws: Worksheet, *, landscape: bool = False, title_rows: str | None = None) -> None:
    ws.page_setup.paperSize = ws.PAPERSIZE_A4
    ws.page_setup.orientation = "landscape" if landscape else "portrait"
    ws.sheet_properties.pageSetUpPr.fitToPage = True
    ws.page_setup.fitToWidth = 1
    ws.page_setup.fitToHeight = 0  # as many pages as needed down
    # Vietnamese administrative layout (inches): 3 cm binding margin left, 1.5 cm right, 2 cm top and bottom.
    ws.page_margins = PageMargins(left=1.18, right=0.59, top=0.79, bottom=0.79, header=0.3, footer=0.3)
    ws.print_options.horizontalCentered = True
    if title_rows:
        ws.print_title_rows = title_rows
    ws.oddFooter.center.text = "Trang &P/&N"
    ws.oddFooter.center.font = f"{FONT},Italic"
    ws.oddFooter.center.size = 9


def _sheet_title(ws: Worksheet, last_col: int, title: str, period: str) -> int:
    _text_row(ws, 1, 1, last_col, title, font=_font(13, bold=True), align=_WRAP_CENTER, height=22)
    _text_row(ws, 2, 1, last_col, f"(Số liệu tính đến {period_phrase(period)})",
              font=_font(12, italic=True))
    return 4


def _report_sheet(ws: Worksheet, *, period, by_type, hd28, province_name, generated_at) -> dict:
    last = len(_BY_TYPE)
    _set_widths(ws, _BY_TYPE_WIDTHS)
    half = last // 2
    _text_row(ws, 1, 1, half, f"TỈNH ỦY {province_name.upper()}", font=_font(12))
    _text_row(ws, 2, 1, half, "BAN TỔ CHỨC", font=_font(12, bold=True))
    _text_row(ws, 3, 1, half, "*", font=_font(12))
    _text_row(ws, 4, 1, half, "Số       -BC/BTCTU", font=_font(12))
    _text_row(ws, 1, half + 1, last, "ĐẢNG CỘNG SẢN VIỆT NAM", font=_font(12, bold=True, underline="single"))
    _text_row(ws, 3, half + 1, last, f"{province_name}, {fmt_date_long(generated_at.date())}",
              font=_font(12, italic=True))
    _text_row(ws, 6, 1, last, "BÁO CÁO", font=_font(14, bold=True), height=20)
    _text_row(ws, 7, 1, last, "Kết quả thành lập chi bộ cơ quan xã, phường, thị trấn", font=_font(13, bold=True))
    _text_row(ws, 8, 1, last, f"(Số liệu tính đến {period_phrase(period)})", font=_font(12, italic=True))

    row = 10
    for text in province_paragraph(by_type, hd28, period=period):
        _paragraph(ws, row, last, text)
        row += 1

    row += 1
    _text_row(ws, row, 1, last, "Kết quả theo loại đơn vị", font=_font(12, bold=True), align=_WRAP_LEFT)
    row = _header(ws, row + 1, [label for label, _, _ in _BY_TYPE], height=64)
    rows = {str(r["unit_type"]): r for _, r in by_type.iterrows()}
    first_type_row = row
    for key in (*UNIT_TYPES, "total"):
        if key not in rows:
            continue
        bold = key == "total"
        write_cell(ws, row, 1, UNIT_TYPE_LABELS[key], font=_font(12, bold=bold), alignment=_WRAP_LEFT, border=_BOX)
        _figure_cells(ws, row, 2, rows[key], _BY_TYPE[1:], bold=bold)
        row += 1
    type_rows = (first_type_row, row - 2 if "total" in rows else row - 1)

    total = rows.get("total")
    if total is not None and not pd.isna(total.get("districts_expected")):
        note = (f"Nguồn: tổng hợp từ báo cáo của {int(total['districts_reported'])}/"
                f"{int(total['districts_expected'])} huyện, thị xã, thành phố.")
        _text_row(ws, row, 1, last, note, font=_font(11, italic=True), align=_WRAP_LEFT)
        row += 1
    return {"type_rows": type_rows, "next_row": row + 1, "last_col": last}


def _bar_chart(ws: Worksheet, row: int, caption: str, values: Reference, categories: Reference, *,
               horizontal: bool = False, height_cm: float = 7.5) -> int:
    """A coverage bar chart (0-100 %) under a caption row, in rows reserved for it
    so nothing written later sits under the chart. Returns the next free row."""
    last = len(_BY_TYPE)
    _text_row(ws, row, 1, last, caption, font=_font(12, bold=True), align=_WRAP_LEFT)
    chart = BarChart()
    chart.type = "bar" if horizontal else "col"
    chart.add_data(values, titles_from_data=False)
    chart.set_categories(categories)
    if horizontal:
        chart.x_axis.scaling.orientation = "maxMin"  # top to bottom in the table's order
    chart.legend = None
    chart.width, chart.height = 16, height_cm
    chart.y_axis.scaling.min = 0
    # Headroom above 100 so the label of a full bar ("100,0") is not cut by the plot edge.
    chart.y_axis.scaling.max = 110
    chart.y_axis.majorUnit = 20
    chart.y_axis.number_format = "0"
    # openpyxl 3.1 hides axes unless told otherwise.
    chart.x_axis.delete = False
    chart.y_axis.delete = False
    chart.dataLabels = DataLabelList()
    chart.dataLabels.showVal = True
    for flag in ("showSerName", "showCatName", "showLegendKey", "showPercent"):
        setattr(chart.dataLabels, flag, False)
    chart.dataLabels.numFmt = PCT_FORMAT
    ws.add_chart(chart, f"A{row + 1}")
    n_rows = math.ceil(height_cm * 28.35 / 15) + 1  # 1 cm = 28.35 pt, rows of 15 pt
    for r in range(row + 1, row + 1 + n_rows):
        ws.row_dimensions[r].height = 15
    return row + 1 + n_rows


def _signature(ws: Worksheet, row: int, last_col: int) -> int:
    """Recipients on the left, the signer on the right; returns the row after the block."""
    half = last_col // 2
    write_cell(ws, row, 1, "Nơi nhận:", font=_font(12, bold=True, italic=True))
    recipients = ("- Thường trực Tỉnh ủy (b/c),", "- Lãnh đạo Ban,", "- Lưu VT.")
    for i, line in enumerate(recipients, start=1):
        write_cell(ws, row + i, 1, line, font=_font(11))
    _text_row(ws, row, half + 1, last_col, "TRƯỞNG BAN", font=_font(12, bold=True))
    return row + len(recipients) + 4  # room for the signature and the signer's name


def _district_sheet(ws: Worksheet, *, period, by_district, by_type) -> tuple[int, int]:
    columns = (("STT", None, None), ("Huyện, thị xã, thành phố", None, None),
               ("Tình hình gửi báo cáo", None, None), *_FIGURES)
    _set_widths(ws, (5, 20, 20, 9, 12, 9, 12, 11, 11))
    row = _sheet_title(ws, len(columns), "Kết quả thành lập chi bộ cơ quan theo huyện, thị xã, thành phố", period)
    header_row = row
    row = _header(ws, row, [c[0] for c in columns], height=64)
    frame = by_district
    if "district_code" in frame.columns:
        frame = frame.sort_values("district_code", kind="stable")
    first = row
    for i, (_, rec) in enumerate(frame.iterrows(), start=1):
        status = str(rec.get("status", ""))
        fill = _STATUS_FILLS.get(status)
        write_cell(ws, row, 1, i, font=_font(), alignment=_CENTER, border=_BOX)
        write_cell(ws, row, 2, rec.get("district_name"), font=_font(), alignment=_WRAP_LEFT, border=_BOX)
        write_cell(ws, row, 3, STATUS_LABELS.get(status, status), font=_font(11), alignment=_WRAP_LEFT,
                   border=_BOX, fill=fill)
        _figure_cells(ws, row, 4, rec, _FIGURES)
        _fit_row(ws, row, len(columns))
        row += 1
    last_district = row - 1
    totals = by_type[by_type["unit_type"].astype(str) == "total"]
    if not totals.empty:
        write_cell(ws, row, 1, None, border=_BOX)
        write_cell(ws, row, 2, "Toàn tỉnh", font=_font(bold=True), alignment=_WRAP_LEFT, border=_BOX)
        write_cell(ws, row, 3, None, border=_BOX)
        _figure_cells(ws, row, 4, totals.iloc[0], _FIGURES, bold=True)
    _print_setup(ws, title_rows=f"{header_row}:{header_row + 1}")
    ws.freeze_panes = ws.cell(row=header_row + 2, column=3)
    return first, last_district


def _hd28_sheet(ws: Worksheet, *, period, hd28: pd.DataFrame) -> None:
    optional = [(label, key) for label, key in (("Ngày thành lập", "established_on"), ("Số đảng viên", "cell_members"))
                if key in hd28.columns]
    labels = ["STT", "Huyện, thị xã, thành phố", "Đơn vị", "Loại đơn vị", *[label for label, _ in optional]]
    _set_widths(ws, (5, 24, 26, 12, 14, 12)[: len(labels)])
    row = _sheet_title(ws, len(labels), "Danh sách chi bộ cơ quan thành lập theo Hướng dẫn 28-HD/BTCTW", period)
    header_row = row
    row = _header(ws, row, labels, height=36)
    frame = hd28.sort_values("district_code", kind="stable") if "district_code" in hd28.columns else hd28
    if frame.empty:
        _text_row(ws, row, 1, len(labels), "Chưa có chi bộ cơ quan nào thành lập theo Hướng dẫn 28-HD/BTCTW.",
                  font=_font(italic=True), align=_WRAP_LEFT)
    type_words = {k: v for k, v in UNIT_TYPE_LABELS.items() if k != "total"}
    for i, (_, rec) in enumerate(frame.iterrows(), start=1):
        write_cell(ws, row, 1, i, font=_font(), alignment=_CENTER, border=_BOX)
        write_cell(ws, row, 2, rec.get("district_name"), font=_font(), alignment=_WRAP_LEFT, border=_BOX)
        write_cell(ws, row, 3, rec.get("unit_name"), font=_font(), alignment=_WRAP_LEFT, border=_BOX)
        unit_type = str(rec.get("unit_type"))
        write_cell(ws, row, 4, type_words.get(unit_type, unit_type), font=_font(), alignment=_CENTER, border=_BOX)
        for offset, (_, key) in enumerate(optional):
            value = rec.get(key)
            fmt = "dd/mm/yyyy" if key == "established_on" else INT_FORMAT
            write_cell(ws, row, 5 + offset, value, font=_font(),
                       alignment=_CENTER, border=_BOX, number_format=fmt)
        _fit_row(ws, row, len(labels))
        row += 1
    _print_setup(ws, title_rows=f"{header_row}:{header_row + 1}")


def _status_sheet(ws: Worksheet, *, period, status: pd.DataFrame, generated_at: dt.datetime) -> None:
    labels = ["STT", "Huyện, thị xã, thành phố", "Tình hình", "Tệp báo cáo"]
    _set_widths(ws, (5, 24, 24, 40))
    row = _sheet_title(ws, len(labels), "Tình hình gửi báo cáo của các huyện, thị xã, thành phố", period)
    header_row = row
    row = _header(ws, row, labels, height=24)
    frame = status.sort_values("district_code", kind="stable") if "district_code" in status.columns else status
    for i, (_, rec) in enumerate(frame.iterrows(), start=1):
        code = str(rec.get("status", ""))
        write_cell(ws, row, 1, i, font=_font(), alignment=_CENTER, border=_BOX)
        write_cell(ws, row, 2, rec.get("district_name"), font=_font(), alignment=_WRAP_LEFT, border=_BOX)
        write_cell(ws, row, 3, STATUS_LABELS.get(code, code), font=_font(), alignment=_WRAP_LEFT, border=_BOX,
                   fill=_STATUS_FILLS.get(code))
        write_cell(ws, row, 4, rec.get("source_file"), font=_font(11), alignment=_WRAP_LEFT, border=_BOX)
        _fit_row(ws, row, len(labels))
        row += 1
    received = int(frame["status"].astype(str).isin(["accepted", "accepted_with_warnings"]).sum()) if len(frame) else 0
    _text_row(ws, row + 1, 1, len(labels),
              f"Đã chấp nhận {received}/{len(frame)} báo cáo. Lập lúc {generated_at:%H:%M} "
              f"ngày {fmt_date(generated_at.date())}.", font=_font(11, italic=True), align=_WRAP_LEFT)
    _print_setup(ws, title_rows=f"{header_row}:{header_row + 1}")


def write_province_report(
    out_path: Path,
    *,
    period: str,
    by_type: pd.DataFrame,
    by_district: pd.DataFrame,
    hd28: pd.DataFrame,
    status: pd.DataFrame,
    province_name: str = "Gia Lai",
    generated_at: dt.datetime | None = None,
    stamp: str | None = None,
) -> Path:
    """Write the province report for one period and return its path.

    Frames follow the warehouse marts (see spec/warehouse.md): ``by_type`` the
    ``marts.province_summary`` rows of the period, ``by_district`` the
    ``marts.district_summary`` rows, ``hd28`` one row per HD28 cell
    (district_name, unit_name, unit_type; optional district_code,
    established_on, cell_members), ``status`` one row per district
    (district_name, status, source_file; optional district_code). ``stamp`` (a
    digest of the inputs) is kept in the workbook's properties.
    """
    out_path = Path(out_path)
    generated_at = generated_at or dt.datetime.now()
    wb = Workbook()
    report = wb.active
    report.title = SHEET_REPORT
    districts = wb.create_sheet(SHEET_DISTRICTS)
    layout = _report_sheet(report, period=period, by_type=by_type, hd28=hd28,
                           province_name=province_name, generated_at=generated_at)
    district_rows = _district_sheet(districts, period=period, by_district=by_district, by_type=by_type)
    first, last = layout["type_rows"]
    row = layout["next_row"]
    if last >= first:
        row = _bar_chart(report, row, "Biểu đồ 1. Tỷ lệ đơn vị đã thành lập chi bộ cơ quan theo loại đơn vị (%)",
                         Reference(report, min_col=4, min_row=first, max_row=last),
                         Reference(report, min_col=1, min_row=first, max_row=last))
    row = _signature(report, row + 1, layout["last_col"])
    first, last = district_rows
    if first <= last < first + MAX_DISTRICTS_CHARTED:
        # The district chart is an annex: it starts a page after the signature.
        report.row_breaks.append(Break(id=row))
        _bar_chart(report, row + 1, "Biểu đồ 2. Tỷ lệ đơn vị đã thành lập chi bộ cơ quan theo huyện, thị xã, thành phố (%)",
                   Reference(districts, min_col=6, min_row=first, max_row=last),
                   Reference(districts, min_col=2, min_row=first, max_row=last),
                   horizontal=True, height_cm=max(7.5, 0.6 * (last - first + 1) + 2))
    _print_setup(report)
    _hd28_sheet(wb.create_sheet(SHEET_HD28), period=period, hd28=hd28)
    _status_sheet(wb.create_sheet(SHEET_STATUS), period=period, status=status, generated_at=generated_at)
    wb.properties.title = f"Báo cáo kết quả thành lập chi bộ cơ quan xã, phường, thị trấn ({period})"
    wb.properties.creator = f"Ban Tổ chức Tỉnh ủy {province_name}"
    stamp_workbook(wb, stamp)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    wb.save(out_path)
    return out_path
