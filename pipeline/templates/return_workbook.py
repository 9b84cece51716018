"""Write the canonical district return (see docs/architecture.md, "The canonical return").

Two uses: the blank, protected template the province sends each district
(``blank_template=True``, via ``pipeline template``), and a filled return such as
the seeded sample returns. Both share one layout so the reader has one reference.

The blank template's totals row holds SUM/COUNTIF formulas: a person fills the
template in Excel or LibreOffice, which compute and save the values when the
file is saved. A template filled by a program with openpyxl keeps formulas
without saved values and is refused by the pipeline (``formula_without_value``);
such programs should call ``write_return`` with ``rows`` instead, which writes
the totals as plain values.
"""

from __future__ import annotations

import calendar
import datetime as dt
import os
import re
import tempfile
import unicodedata
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
from openpyxl import Workbook
from openpyxl.cell.cell import Cell
from openpyxl.styles import Alignment, Border, Font, Protection, Side
from openpyxl.utils.datetime import to_excel
from openpyxl.worksheet.datavalidation import DataValidation
from openpyxl.worksheet.worksheet import Worksheet

from pipeline.reports.excel_safe import write_cell

TYPE_LABELS = {"xa": "Xã", "phuong": "Phường", "thi_tran": "Thị trấn"}
BASIS_LABELS = {"HD10": "HD 10-HD/BTCTW", "HD28": "HD 28-HD/BTCTW"}
FLAG_TRUE = "x"

DATA_SHEET = "Báo cáo"
INSTRUCTIONS_SHEET = "Hướng dẫn"

# Layout anchors (1-based Excel rows/columns), shared by the filled return and the template.
HEADER_ROW = 8
SUBHEADER_ROW = 9
NUMBER_ROW = 10
FIRST_UNIT_ROW = 11
COLUMNS = "ABCDEFGHIJK"
WIDTHS = dict(zip(COLUMNS, (6, 10, 28, 10, 14, 13, 11, 13, 18, 10, 24)))
HEADERS = {
    "A": "STT",
    "B": "Mã ĐVHC",
    "C": "Tên đơn vị hành chính cấp xã",
    "D": "Loại đơn vị",
    "E": "Tổng số đảng viên của đảng bộ",
    "K": "Ghi chú",
}
GROUP_LABEL = "Chi bộ cơ quan"
SUBHEADERS = {
    "F": "Đủ điều kiện thành lập",
    "G": "Đã thành lập",
    "H": "Ngày thành lập",
    "I": "Căn cứ thành lập",
    "J": "Số đảng viên",
}
# Cells a district fills in; everything else on the data sheet is locked in the template.
INPUT_COLUMNS = "EFGHIJK"

FONT_NAME = "Times New Roman"
_THIN = Side(style="thin")
_BORDER = Border(left=_THIN, right=_THIN, top=_THIN, bottom=_THIN)
_CENTER = Alignment(horizontal="center", vertical="center", wrap_text=True)
_LEFT = Alignment(horizontal="left", vertical="center", wrap_text=True)
_RIGHT = Alignment(horizontal="right", vertical="center")

# Earliest establishment date the template accepts (Guidance 10 cells predate 2014).
_EARLIEST_DATE = dt.date(1990, 1, 1)


def set_text(cell: Cell, value: Any) -> Cell:
    """Assign ``value`` through the project's formula-injection guard (``excel_safe.write_cell``)."""
    return write_cell(cell.parent, cell.row, cell.column, value)


def last_day(period: str) -> dt.date:
    """The as-of date of a ``YYYY-MM`` period: the last day of that month."""
    m = re.fullmatch(r"(\d{4})-(\d{2})", period)
    if not m or not 1 <= int(m.group(2)) <= 12:
        raise ValueError(f"period must be YYYY-MM, got {period!r}")
    year, month = int(m.group(1)), int(m.group(2))
    return dt.date(year, month, calendar.monthrange(year, month)[1])


def district_identity(register: pd.DataFrame, district_code: str) -> dict[str, str]:
    """District code, name, short name and committee title ("HUYỆN ỦY CHƯ PĂH") from the register.

    Uses the register's ``short_name``/``committee_title`` columns when it has
    them; otherwise derives them from the administrative prefix of the name.
    """
    code = str(district_code)
    sub = register[register["district_code"].astype(str) == code]
    if sub.empty:
        raise KeyError(f"district {code} not in register")
    row = sub.iloc[0]
    name = unicodedata.normalize("NFC", str(row["district_name"]).strip())
    short, committee = name, "HUYỆN ỦY"
    for prefix, title in (("Thành phố", "THÀNH ỦY"), ("Thị xã", "THỊ ỦY"), ("Huyện", "HUYỆN ỦY")):
        if name.startswith(prefix + " "):
            short, committee = name[len(prefix) + 1 :].strip(), title
            break
    if "short_name" in sub.columns and pd.notna(row["short_name"]):
        short = str(row["short_name"])
    title = f"{committee} {short.upper()}"
    if "committee_title" in sub.columns and pd.notna(row["committee_title"]):
        title = str(row["committee_title"])
    return {"district_code": code, "district_name": name, "short_name": short, "committee_title": title}


def ascii_name(text: str) -> str:
    """Diacritics-free form for file names ("Chư Păh" -> "Chu Pah")."""
    text = unicodedata.normalize("NFD", text.replace("Đ", "D").replace("đ", "d"))
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    return re.sub(r"[^A-Za-z0-9' ]+", "", text).replace("'", "").strip()


def _clean(value: Any) -> Any:
    """pandas missing markers and numpy scalars to plain Python values."""
    if value is None:
        return None
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    if isinstance(value, pd.Timestamp):
        return value.date()
    if hasattr(value, "item"):
        return value.item()
    return value


def _style(cell: Cell, *, bold: bool = False, size: int = 12, italic: bool = False, align: Alignment = _CENTER) -> None:
    cell.font = Font(name=FONT_NAME, size=size, bold=bold, italic=italic)
    cell.alignment = align


def _put(ws: Worksheet, ref: str, value: Any, *, merge_to: str | None = None, **style: Any) -> Cell:
    cell = set_text(ws[ref], value)
    _style(cell, **style)
    if merge_to:
        ws.merge_cells(f"{ref}:{merge_to}")
    return cell


def _title_block(ws: Worksheet, district: Mapping, as_of: dt.date, province_title: str) -> None:
    _put(ws, "A1", province_title, merge_to="D1", size=13)
    _put(ws, "A2", district["committee_title"], merge_to="D2", bold=True, size=13)
    _put(ws, "A3", "*", merge_to="D3", size=13)
    _put(ws, "G1", "ĐẢNG CỘNG SẢN VIỆT NAM", merge_to="K1", bold=True, size=13)
    ws["G1"].font = Font(name=FONT_NAME, size=13, bold=True, underline="single")
    place = f"{district['short_name']}, ngày {as_of.day} tháng {as_of.month} năm {as_of.year}"
    _put(ws, "G3", place, merge_to="K3", italic=True, size=13)
    _put(ws, "A4", "BÁO CÁO", merge_to="K4", bold=True, size=14)
    _put(ws, "A5", "Tình hình thành lập chi bộ cơ quan xã, phường, thị trấn", merge_to="K5", bold=True, size=13)
    _put(ws, "A6", f"(Số liệu tính đến ngày {as_of:%d/%m/%Y})", merge_to="K6", italic=True, size=13)


def _header(ws: Worksheet) -> None:
    for col, label in HEADERS.items():
        _put(ws, f"{col}{HEADER_ROW}", label, merge_to=f"{col}{SUBHEADER_ROW}", bold=True)
    _put(ws, f"F{HEADER_ROW}", GROUP_LABEL, merge_to=f"J{HEADER_ROW}", bold=True)
    for col, label in SUBHEADERS.items():
        _put(ws, f"{col}{SUBHEADER_ROW}", label, bold=True)
    for i, col in enumerate(COLUMNS, start=1):
        _put(ws, f"{col}{NUMBER_ROW}", f"({i})", italic=True)
    for r in (HEADER_ROW, SUBHEADER_ROW, NUMBER_ROW):
        for col in COLUMNS:
            ws[f"{col}{r}"].border = _BORDER
    ws.row_dimensions[HEADER_ROW].height = 24
    ws.row_dimensions[SUBHEADER_ROW].height = 48


def _unit_values(unit: Mapping, row: Mapping | None) -> dict[str, Any]:
    unit_type = str(unit["unit_type"])
    if unit_type not in TYPE_LABELS:
        raise ValueError(f"unknown unit_type {unit_type!r} for unit {unit['unit_code']}")
    label = TYPE_LABELS[unit_type]
    values: dict[str, Any] = {
        "B": str(unit["unit_code"]),
        "C": f"{label} {unit['unit_name']}",
        "D": label,
    }
    if row is None:
        return values
    basis = _clean(row.get("basis"))
    if basis is not None and basis not in BASIS_LABELS:
        raise ValueError(f"basis must be one of {sorted(BASIS_LABELS)}, got {basis!r}")
    established = _clean(row.get("established_on"))
    if isinstance(established, dt.datetime):
        established = established.date()
    values.update(
        E=_clean(row.get("total_members")),
        F=FLAG_TRUE if _clean(row.get("eligible")) else None,
        G=FLAG_TRUE if _clean(row.get("has_cell")) else None,
        H=established,
        I=BASIS_LABELS.get(basis) if basis else None,
        J=_clean(row.get("cell_members")),
        K=_clean(row.get("note")),
    )
    return values


def _totals(rows: pd.DataFrame) -> dict[str, int]:
    def count(col: str) -> int:
        return int(sum(bool(_clean(v)) for v in rows[col])) if col in rows else 0

    def total(col: str) -> int:
        return int(sum(_clean(v) or 0 for v in rows[col])) if col in rows else 0

    return {"E": total("total_members"), "F": count("eligible"), "G": count("has_cell"), "J": total("cell_members")}


def _validations(ws: Worksheet, first: int, last: int, as_of: dt.date) -> None:
    def add(dv: DataValidation, ref: str) -> None:
        dv.showErrorMessage = True
        dv.showInputMessage = True
        dv.errorTitle = "Giá trị không hợp lệ"
        ws.add_data_validation(dv)
        dv.add(ref)

    flag = DataValidation(type="list", formula1=f'"{FLAG_TRUE}"', allow_blank=True)
    flag.error = 'Chỉ nhập "x" (có) hoặc để trống (không).'
    flag.promptTitle, flag.prompt = "Đánh dấu", 'Chọn "x" nếu có, để trống nếu không.'
    add(flag, f"F{first}:G{last}")

    basis = DataValidation(type="list", formula1='"' + ",".join(BASIS_LABELS.values()) + '"', allow_blank=True)
    basis.error = "Chọn HD 10-HD/BTCTW hoặc HD 28-HD/BTCTW."
    basis.promptTitle, basis.prompt = "Căn cứ thành lập", "Chọn hướng dẫn làm căn cứ thành lập chi bộ cơ quan."
    add(basis, f"I{first}:I{last}")

    for col, what in (("E", "Tổng số đảng viên"), ("J", "Số đảng viên chi bộ cơ quan")):
        whole = DataValidation(type="whole", operator="greaterThanOrEqual", formula1="0", allow_blank=True)
        whole.error = f"{what}: nhập số nguyên không âm."
        whole.promptTitle, whole.prompt = what, "Nhập số nguyên không âm."
        add(whole, f"{col}{first}:{col}{last}")

    date = DataValidation(
        type="date",
        operator="between",
        formula1=str(int(to_excel(_EARLIEST_DATE))),
        formula2=str(int(to_excel(as_of))),
        allow_blank=True,
    )
    date.error = f"Nhập ngày dạng ngày/tháng/năm, không sau ngày {as_of:%d/%m/%Y}."
    date.promptTitle, date.prompt = "Ngày thành lập", "Nhập ngày dạng ngày/tháng/năm, ví dụ 12/03/2015."
    add(date, f"H{first}:H{last}")


def _instructions(wb: Workbook, district: Mapping, as_of: dt.date) -> None:
    ws = wb.create_sheet(INSTRUCTIONS_SHEET, 0)
    ws.column_dimensions["A"].width = 110
    lines = [
        "HƯỚNG DẪN ĐIỀN BÁO CÁO TÌNH HÌNH THÀNH LẬP CHI BỘ CƠ QUAN XÃ, PHƯỜNG, THỊ TRẤN",
        f"Đơn vị báo cáo: {district['committee_title']}. Số liệu tính đến ngày {as_of:%d/%m/%Y}.",
        f"1. Nhập số liệu ở trang \"{DATA_SHEET}\". Cột (2) Mã ĐVHC, (3) Tên đơn vị và (4) Loại đơn vị đã điền sẵn "
        "theo danh mục của tỉnh và được khóa: không thêm, xóa, đổi tên hay đổi thứ tự các dòng.",
        "2. Nếu danh sách đơn vị không đúng với thực tế (sáp nhập, chia tách, đổi tên), ghi rõ ở cột (11) Ghi chú "
        "và báo ngay cho Ban Tổ chức Tỉnh ủy.",
        "3. Cột (5) Tổng số đảng viên của đảng bộ xã, phường, thị trấn: nhập số nguyên không âm.",
        '4. Cột (6) Đủ điều kiện thành lập và cột (7) Đã thành lập chi bộ cơ quan: chọn "x" nếu có, để trống nếu không.',
        '5. Đơn vị đã thành lập chi bộ cơ quan (cột 7 có "x") phải nhập đủ: cột (8) Ngày thành lập (ngày/tháng/năm, '
        "ví dụ 12/03/2015), cột (9) Căn cứ thành lập (HD 10-HD/BTCTW hoặc HD 28-HD/BTCTW) và cột (10) Số đảng viên "
        "của chi bộ cơ quan.",
        "6. Chi bộ thành lập theo Hướng dẫn 28-HD/BTCTW có ngày thành lập từ 10/10/2014 trở về sau. "
        f"Ngày thành lập không được sau ngày {as_of:%d/%m/%Y}.",
        "7. Số đảng viên của chi bộ cơ quan không được lớn hơn tổng số đảng viên của đảng bộ.",
        "8. Đơn vị đủ điều kiện nhưng chưa thành lập chi bộ cơ quan: ghi lý do ở cột (11) Ghi chú.",
        "9. Dòng \"Tổng cộng\" được tính tự động, không sửa. Nhập xong, lưu tệp bằng Excel hoặc LibreOffice "
        "(để lưu kết quả tính) và gửi tệp về Ban Tổ chức Tỉnh ủy. Có thể đổi tên tệp; không đặt mật khẩu cho tệp.",
    ]
    for i, text in enumerate(lines, start=1):
        cell = set_text(ws.cell(row=i, column=1), text)
        _style(cell, bold=i == 1, size=13, align=_CENTER if i == 1 else _LEFT)
        ws.row_dimensions[i].height = 36 if i > 2 else 22


def _signature(ws: Worksheet, row: int, *, preparer: str | None, signer: str | None, signer_role: str,
               unlock: bool) -> None:
    _put(ws, f"B{row}", "Người lập biểu", merge_to=f"D{row}", bold=True)
    _put(ws, f"H{row}", "T/M BAN THƯỜNG VỤ", merge_to=f"K{row}", bold=True)
    _put(ws, f"H{row + 1}", signer_role, merge_to=f"K{row + 1}", bold=True)
    name_row = row + 5
    _put(ws, f"B{name_row}", preparer, merge_to=f"D{name_row}", bold=True)
    _put(ws, f"H{name_row}", signer, merge_to=f"K{name_row}", bold=True)
    if unlock:
        for ref in (f"B{name_row}", f"H{name_row}", f"H{row + 1}"):
            ws[ref].protection = Protection(locked=False)


def _pin_times(path: Path, when: dt.datetime) -> None:
    """Make the saved bytes depend only on content: fixed zip entry times and core modified date.

    openpyxl stamps the save time into docProps/core.xml and every zip entry,
    which would make regenerated sample files differ on every run.
    """
    stamp = when.strftime("%Y-%m-%dT%H:%M:%SZ")
    with zipfile.ZipFile(path) as src:
        entries = [(info, src.read(info)) for info in src.infolist()]
    with tempfile.NamedTemporaryFile(dir=path.parent, delete=False, suffix=".tmp") as tmp:
        tmp_path = Path(tmp.name)
    try:
        with zipfile.ZipFile(tmp_path, "w", zipfile.ZIP_DEFLATED) as dst:
            for info, data in entries:
                if info.filename == "docProps/core.xml":
                    data = re.sub(rb"(<dcterms:modified[^>]*>)[^<]*(</dcterms:modified>)",
                                  rb"\g<1>" + stamp.encode() + rb"\g<2>", data)
                pinned = zipfile.ZipInfo(info.filename, date_time=when.timetuple()[:6])
                pinned.compress_type = zipfile.ZIP_DEFLATED
                pinned.external_attr = info.external_attr
                dst.writestr(pinned, data)
        # Keep the permissions openpyxl's save gave the file (the temp file is private, 0600).
        os.chmod(tmp_path, path.stat().st_mode)
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


def write_return(
    path: Path,
    *,
    district: Mapping,
    period: str,
    units: pd.DataFrame,
    rows: pd.DataFrame | None = None,
    blank_template: bool = False,
    province_title: str = "TỈNH ỦY GIA LAI",
    preparer: str | None = None,
    signer: str | None = None,
    signer_role: str = "PHÓ BÍ THƯ",
    timestamp: dt.datetime | None = None,
) -> Path:
    """Write one district's return (or its blank template) to ``path`` and return the path.

    ``units``: unit_code, unit_name, unit_type (xa/phuong/thi_tran), in the order to list.
    ``rows``: one row per unit (unit_code, total_members, eligible, has_cell,
    established_on, basis 'HD10'/'HD28', cell_members, note); totals are written as values.
    ``timestamp`` pins the document dates and zip entry times so output bytes are reproducible.
    """
    path = Path(path)
    as_of = last_day(period)
    by_code: dict[str, Mapping] = {}
    if rows is not None:
        by_code = {str(_clean(r["unit_code"])): r for r in rows.to_dict("records")}
        unknown = set(by_code) - {str(c) for c in units["unit_code"]}
        if unknown:
            raise ValueError(f"rows for units not listed: {sorted(unknown)}")

    wb = Workbook()
    ws = wb.active
    ws.title = DATA_SHEET
    for col, width in WIDTHS.items():
        ws.column_dimensions[col].width = width
    _title_block(ws, district, as_of, province_title)
    _header(ws)

    unit_list = units.to_dict("records")
    first = FIRST_UNIT_ROW
    last = first + len(unit_list) - 1
    for i, unit in enumerate(unit_list):
        r = first + i
        values = _unit_values(unit, by_code.get(str(unit["unit_code"])))
        values["A"] = i + 1
        for col in COLUMNS:
            cell = set_text(ws[f"{col}{r}"], values.get(col))
            _style(cell, align=_LEFT if col in "CK" else _CENTER)
            cell.border = _BORDER
            if col in "EJ":
                cell.number_format = "#,##0"
            elif col == "H":
                cell.number_format = "dd/mm/yyyy"
            if blank_template and col in INPUT_COLUMNS:
                cell.protection = Protection(locked=False)

    total_row = last + 1
    _put(ws, f"A{total_row}", None)
    _put(ws, f"C{total_row}", "Tổng cộng", bold=True)
    if blank_template:
        sums = {
            "E": f"=SUM(E{first}:E{last})",
            "F": f'=COUNTIF(F{first}:F{last},"{FLAG_TRUE}")',
            "G": f'=COUNTIF(G{first}:G{last},"{FLAG_TRUE}")',
            "J": f"=SUM(J{first}:J{last})",
        }
    elif rows is not None:
        sums = _totals(pd.DataFrame([by_code[k] for k in by_code]))
    else:
        sums = {}
    for col in COLUMNS:
        cell = ws[f"{col}{total_row}"]
        if col in sums:
            # Formulas are intended here (template only), so bypass the text guard.
            cell.value = sums[col]
        _style(cell, bold=True)
        cell.border = _BORDER
        if col in "EJ":
            cell.number_format = "#,##0"

    _signature(ws, total_row + 2, preparer=preparer, signer=signer, signer_role=signer_role, unlock=blank_template)

    ws.freeze_panes = f"D{first}"
    ws.print_title_rows = f"{HEADER_ROW}:{NUMBER_ROW}"
    ws.page_setup.orientation = "landscape"
    ws.page_setup.paperSize = ws.PAPERSIZE_A4
    ws.page_setup.fitToWidth = 1
    ws.page_setup.fitToHeight = 0
    ws.sheet_properties.pageSetUpPr.fitToPage = True
    ws.print_options.horizontalCentered = True
    ws.page_margins.left = ws.page_margins.right = 0.4

    if blank_template:
        _validations(ws, first, max(first, last), as_of)
        # No password: protection guards against slips, it is not a security boundary.
        ws.protection.sheet = True
        ws.protection.formatColumns = False
        ws.protection.formatRows = False
        _instructions(wb, district, as_of)
        wb.active = wb.sheetnames.index(DATA_SHEET)

    wb.properties.creator = province_title if blank_template else str(district["committee_title"])
    wb.properties.title = f"Báo cáo chi bộ cơ quan {district['short_name']} {as_of:%m/%Y}"
    if timestamp is not None:
        wb.properties.created = timestamp
    path.parent.mkdir(parents=True, exist_ok=True)
    wb.save(path)
    if timestamp is not None:
        _pin_times(path, timestamp)
    return path


def _tables(register: Any) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(units, districts) of a ``pipeline.register.Register`` or of one units table with district columns.

    ``pipeline template`` passes the loaded Register; scripts often pass the units CSV as one frame.
    """
    if isinstance(register, pd.DataFrame):
        return register, register
    return register.units, register.districts


def _units_of(register: Any, district_code: str) -> pd.DataFrame:
    units, _ = _tables(register)
    sub = units[units["district_code"].astype(str) == str(district_code)]
    return sub[["unit_code", "unit_name", "unit_type"]].reset_index(drop=True)


def template_file_name(short_name: str, period: str) -> str:
    return f"Mau_bao_cao_{period}_{ascii_name(short_name).replace(' ', '_')}.xlsx"


def template_for_district(register: Any, district_code: str, period: str, out_dir: Path,
                          **kwargs: Any) -> Path:
    """Write the blank, protected template for one district; extra kwargs go to ``write_return``.

    ``register``: a ``Register`` or a units table with district_code/district_name columns.
    """
    district = district_identity(_tables(register)[1], district_code)
    path = Path(out_dir) / template_file_name(district["short_name"], period)
    return write_return(path, district=district, period=period, units=_units_of(register, district_code),
                        blank_template=True, **kwargs)


def templates_for_period(register: Any, period: str, out_dir: Path,
                         district_code: str | None = None, **kwargs: Any) -> list[Path]:
    """Blank templates for every district of the register (or only ``district_code``)."""
    codes = list(dict.fromkeys(_tables(register)[0]["district_code"].astype(str)))
    if district_code is not None:
        if str(district_code) not in codes:
            raise KeyError(f"district {district_code} not in register")
        codes = [str(district_code)]
    return [template_for_district(register, c, period, out_dir, **kwargs) for c in codes]
