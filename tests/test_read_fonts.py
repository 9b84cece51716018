"""pipeline.ingest.read.xlsx_sheet_fonts: each cell's font read from the parts, as openpyxl's cell.font gives it."""

import io
import re
import zipfile

import openpyxl
import pytest
from openpyxl.formatting.rule import CellIsRule
from openpyxl.styles import Font
from python_calamine import CalamineWorkbook

from pipeline.ingest.read import _parsed_cell_fonts, _writer_cell_fonts, xlsx_sheet_fonts


def _workbook(default_font: str = "Arial") -> bytes:
    wb = openpyxl.Workbook()
    guide = wb.active
    guide.title = "Hướng dẫn"
    guide["A1"] = "Huíng dÉn"
    guide["A1"].font = Font(name=".VnTime")
    data = wb.create_sheet("Báo cáo")
    data["A1"] = "TØnh ñy Gia Lai"
    data["A1"].font = Font(name=".VnTimeH")
    data["B3"] = "Tªn ®¬n vÞ"
    data["B3"].font = Font(name=".VnTime")
    data["C3"] = "Teân ñôn vò"
    data["C3"].font = Font(name="VNI-Times")
    data["D3"] = "Số đảng viên"  # the default font
    data["D3"].font = Font(name=default_font)
    data["E4"] = 12
    data["E4"].font = Font(name=".VnTime")
    data["F9"] = "cuối"
    data["AB40"] = "xa"
    data["AB40"].font = Font(name=".VnArial")
    data.conditional_formatting.add("E4:E9", CellIsRule(operator="lessThan", formula=["0"], font=Font(name="VNI-Helve")))
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def _rewrite_sheets(data: bytes, edit) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            body = src.read(info)
            if info.filename.startswith("xl/worksheets/"):
                body = edit(body)
            dst.writestr(info, body)
    return out.getvalue()


def _openpyxl_fonts(data: bytes) -> dict[str, dict[tuple[int, int], str]]:
    """The reference: openpyxl's font name of every text cell."""
    wb = openpyxl.load_workbook(io.BytesIO(data), read_only=True)
    out = {}
    for ws in wb.worksheets:
        out[ws.title] = {
            (cell.row - 1, cell.column - 1): cell.font.name
            for row in ws.iter_rows()
            for cell in row
            if isinstance(getattr(cell, "value", None), str) and cell.font is not None and cell.font.name
        }
    wb.close()
    return out


def _text_cells(data: bytes, fonts: dict[str, dict[tuple[int, int], str]]) -> dict[str, dict[tuple[int, int], str]]:
    """The fonts of the cells calamine reads as text (the only ones decoding asks about)."""
    wb = CalamineWorkbook.from_filelike(io.BytesIO(data))
    out = {}
    for name in wb.sheet_names:
        rows = wb.get_sheet_by_name(name).to_python(skip_empty_area=False)
        text = {(r, c) for r, row in enumerate(rows) for c, v in enumerate(row) if isinstance(v, str) and v}
        out[name] = {pos: font for pos, font in fonts[name].items() if pos in text}
    return out


def test_workbook_without_legacy_fonts_costs_nothing():
    wb = openpyxl.Workbook()
    wb.active["A1"] = "Tỉnh ủy Gia Lai"
    out = io.BytesIO()
    wb.save(out)
    assert xlsx_sheet_fonts(out.getvalue(), ["Sheet"]) is None


@pytest.mark.parametrize("default_font", ["Arial", ".VnTime"])
def test_fonts_are_openpyxls_on_every_sheet(default_font):
    data = _workbook(default_font)
    fonts = xlsx_sheet_fonts(data, ["Hướng dẫn", "Báo cáo"])
    assert _text_cells(data, fonts) == _openpyxl_fonts(data)
    assert fonts["Báo cáo"][(2, 2)] == "VNI-Times"  # not the conditional format's VNI-Helve
    assert fonts["Báo cáo"][(39, 27)] == ".VnArial"


def test_cells_and_rows_without_references_follow_the_one_before():
    # r= is optional: a row without it follows the row before (row 1 here, so "3" becomes 2),
    # and a cell without it is in that row, one column after the cell before (B3 → C).
    data = _rewrite_sheets(_workbook(), lambda xml: re.sub(rb'<c r="(?:C3|E4)"', b"<c", xml).replace(b'<row r="3"', b"<row"))
    fonts = xlsx_sheet_fonts(data, ["Hướng dẫn", "Báo cáo"])
    assert _text_cells(data, fonts) == _openpyxl_fonts(data)
    assert fonts["Báo cáo"][(1, 2)] == "VNI-Times"
    assert fonts["Báo cáo"][(2, 1)] == ".VnTime"  # B3 keeps its own reference


def test_prefixed_namespace_is_read_like_the_default_one():
    def prefixed(xml: bytes) -> bytes:
        xml = xml.replace(b'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"',
                          b'xmlns:x="http://schemas.openxmlformats.org/spreadsheetml/2006/main"')  # fmt: skip
        return re.sub(rb"<(/?)(?!\?)([A-Za-z]+)([ />])", rb"<\1x:\2\3", xml)

    plain = _workbook()
    fonts = xlsx_sheet_fonts(_rewrite_sheets(plain, prefixed), ["Hướng dẫn", "Báo cáo"])
    assert fonts == xlsx_sheet_fonts(plain, ["Hướng dẫn", "Báo cáo"])


def test_unknown_sheet_has_no_fonts():
    assert xlsx_sheet_fonts(_workbook(), ["Không có"]) == {"Không có": {}}


_NS = 'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'
STYLE_FONTS = [None, ".VnTime", "VNI-Times", "Arial"]


@pytest.mark.parametrize(
    ("cells", "writer_form"),
    [
        ('<row r="1"><c r="A1" s="1" t="s"><v>0</v></c><c r="B1" s="2" t="inlineStr"><is><t>x</t></is></c></row>', True),
        ('<row r="2"><c r="A2" s="1"/><c r="B2" s="3"></c><c r="C2" s="1"> </c><c r="D2" s="2"> <v>1</v></c></row>', True),
        ('<row r="3"><c r="C3" s="9"><v>1</v></c><c r="D3"><v>2</v></c></row>', True),  # unknown style, style 0
        ('<row r="8"><c r="A8" s="1" t="n" /><c r="B8" s="2" ><v>1</v></c></row>', True),  # openpyxl without lxml
        ('<row r="4"><c r="A4" t="s" s="1"><v>0</v></c></row>', False),  # attributes in another order
        ('<row r="5"><c s="1"><v>0</v></c><c r="C5" s="2"><v>1</v></c></row>', False),  # a cell without r=
        ('<row r="6"><!-- <c r="Z6" s="1"><v>0</v></c> --><c r="A6" s="1"><v>0</v></c></row>', False),
        ('<row r="7"><c r="A7" s="1" cm="1"><v>0</v></c></row>', False),  # an attribute writers seldom add
    ],
)
def test_writer_form_fast_path_answers_only_when_exact(cells, writer_form):
    xml = f'<?xml version="1.0"?><worksheet {_NS}><sheetData>{cells}</sheetData></worksheet>'.encode()
    fast = _writer_cell_fonts(xml, STYLE_FONTS)
    assert (fast is not None) == writer_form
    if fast is not None:
        assert fast == _parsed_cell_fonts(xml, STYLE_FONTS)


def test_styles_that_do_not_parse_leave_decoding_to_the_text():
    broken = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(_workbook())) as src, zipfile.ZipFile(broken, "w") as dst:
        for info in src.infolist():
            body = src.read(info)
            if info.filename == "xl/styles.xml":
                body = body.replace(b'fontId="1"', b'fontId="one"', 1)
            dst.writestr(info, body)
    assert xlsx_sheet_fonts(broken.getvalue(), ["Báo cáo"]) is None
