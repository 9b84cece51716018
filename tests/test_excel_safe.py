import datetime as dt
import zipfile

import numpy as np
import openpyxl
import pandas as pd
import pytest
from python_calamine import CalamineWorkbook

from pipeline.reports.excel_safe import assert_no_formulas, find_formulas, read_stamp, safe_value, stamp_workbook, write_cell

PAYLOADS = [
    '=HYPERLINK("http://x","y")',
    "+1+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(1,2)",
    "\t=1+1",
    "\r=1+1",
    "\n=1+1",
]


# XML parsers turn a stored CR into LF (XML end-of-line handling); still text.
READ_BACK = [p.replace("\r", "\n") for p in PAYLOADS]


def _roundtrip(tmp_path, values):
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Dữ liệu"
    for i, v in enumerate(values, start=1):
        write_cell(ws, i, 1, v)
    path = tmp_path / "t.xlsx"
    wb.save(path)
    return path


def test_payloads_stay_text_in_openpyxl_calamine_and_xml(tmp_path):
    path = _roundtrip(tmp_path, PAYLOADS)
    ws = openpyxl.load_workbook(path).active
    assert [ws.cell(i, 1).value for i in range(1, len(PAYLOADS) + 1)] == READ_BACK
    assert {ws.cell(i, 1).data_type for i in range(1, len(PAYLOADS) + 1)} == {"s"}
    rows = CalamineWorkbook.from_path(str(path)).get_sheet_by_index(0).to_python()
    assert [r[0] for r in rows] == READ_BACK
    with zipfile.ZipFile(path) as zf:
        assert b"<f>" not in zf.read("xl/worksheets/sheet1.xml")
    assert_no_formulas(path)


def test_assert_no_formulas_catches_a_plain_openpyxl_formula(tmp_path):
    wb = openpyxl.Workbook()
    wb.active.title = "Báo cáo"
    wb.active["B2"] = "=SUM(1,2)"
    wb.create_sheet("Khác")["C3"] = '=HYPERLINK("http://x","y")'
    path = tmp_path / "f.xlsx"
    wb.save(path)
    assert find_formulas(path) == [("Báo cáo", "B2", "SUM(1,2)"), ("Khác", "C3", 'HYPERLINK("http://x","y")')]
    with pytest.raises(AssertionError, match="HYPERLINK"):
        assert_no_formulas(path)
    with pytest.raises(AssertionError):
        assert_no_formulas(path, allow={"Báo cáo!B2"})
    assert_no_formulas(path, allow={"Báo cáo!B2", "Khác!C3"})


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        (np.nan, None),
        (pd.NA, None),
        (pd.NaT, None),
        (np.int64(7), 7),
        (np.float64(4.2), 4.2),
        (np.bool_(True), True),
        ("Chư\x00 Păh\x1f", "Chư Păh"),  # XML-illegal control characters would make openpyxl raise
        ("x" * 40000, "x" * 32767),
        (pd.Timestamp("2016-06-30"), dt.datetime(2016, 6, 30)),
        (dt.date(2015, 3, 12), dt.date(2015, 3, 12)),
    ],
)
def test_safe_value(value, expected):
    result = safe_value(value)
    assert result == expected and type(result) is type(expected)


def test_write_cell_keeps_numbers_and_applies_style(tmp_path):
    wb = openpyxl.Workbook()
    cell = write_cell(wb.active, 1, 1, np.int64(1091), number_format="#,##0")
    assert cell.value == 1091 and cell.data_type == "n" and cell.number_format == "#,##0"
    with pytest.raises(TypeError):
        write_cell(wb.active, 1, 2, "x", colour="red")


def test_like_copies_style_and_keeps_formulas_as_text():
    from openpyxl import Workbook
    from openpyxl.styles import Border, Side

    from pipeline.reports.excel_safe import write_cell

    ws = Workbook().active
    box = Border(left=Side(style="thin"))
    first = write_cell(ws, 1, 1, "x", border=box)
    copied = write_cell(ws, 2, 1, "=HYPERLINK(\"http://x\")", like=first)
    assert copied.border.left.style == "thin"
    assert copied.data_type == "s" and copied.quotePrefix
    assert not first.quotePrefix  # the template's own style is untouched


def test_a_style_written_again_is_the_same_as_written_the_slow_way():
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font, PatternFill

    bold, right = Font(name="Times New Roman", bold=True), Alignment(horizontal="right")
    fill = PatternFill("solid", fgColor="FFF2CC")
    wb = Workbook()
    ws = wb.active
    first = write_cell(ws, 1, 1, 5, font=bold, alignment=right, number_format="#,##0")
    again = write_cell(ws, 2, 1, 6, font=bold, alignment=right, number_format="#,##0")
    assert list(again._style) == list(first._style)
    # A cell with a style of its own keeps what is not given, as a plain assignment would.
    ws.cell(3, 1).fill = fill
    kept = write_cell(ws, 3, 1, 7, font=bold, alignment=right, number_format="#,##0")
    assert kept.fill.fgColor.rgb == "00FFF2CC" and kept.font.b and kept.number_format == "#,##0"
    # Equal-looking but distinct objects give the same look; other objects another one.
    other = write_cell(ws, 4, 1, 8, font=Font(name="Times New Roman", italic=True), alignment=right)
    assert other.font.i and not other.font.b and other.number_format == "General"
    # A formula-like text on a remembered style is still text, and does not change the style remembered.
    text = write_cell(ws, 5, 1, "=1+1", font=bold, alignment=right, number_format="#,##0")
    assert text.data_type == "s" and text.quotePrefix
    plain = write_cell(ws, 6, 1, 9, font=bold, alignment=right, number_format="#,##0")
    assert not plain.quotePrefix and list(plain._style) == list(first._style)
    # Another workbook has its own style lists: nothing remembered in one applies to the other.
    other_wb = Workbook()
    elsewhere = write_cell(other_wb.active, 1, 1, 5, font=bold, alignment=right, number_format="#,##0")
    assert elsewhere.font.b and elsewhere.alignment.horizontal == "right" and elsewhere.number_format == "#,##0"


def test_style_memory_is_bounded(monkeypatch):
    from openpyxl import Workbook
    from openpyxl.styles import Font

    from pipeline.reports import excel_safe

    monkeypatch.setattr(excel_safe, "_STYLE_MEMORY", 3)
    wb = Workbook()
    for row in range(1, 11):  # a writer making a new Font for every cell
        cell = write_cell(wb.active, row, 1, row, font=Font(size=8 + row))
        assert cell.font.sz == 8 + row
    assert len(wb._write_cell_styles) == 3


def test_stamp_survives_the_save_and_is_none_where_there_is_none(tmp_path):
    wb = openpyxl.Workbook()
    stamp_workbook(wb, "abc123")
    wb.save(tmp_path / "stamped.xlsx")
    openpyxl.Workbook().save(tmp_path / "plain.xlsx")
    (tmp_path / "junk.xlsx").write_bytes(b"not a zip")
    assert read_stamp(tmp_path / "stamped.xlsx") == "abc123"
    assert read_stamp(tmp_path / "plain.xlsx") is None
    assert read_stamp(tmp_path / "junk.xlsx") is None
    assert read_stamp(tmp_path / "absent.xlsx") is None
