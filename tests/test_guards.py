"""Pre-parse guards: every hostile file is refused with its own code, good files pass."""

from __future__ import annotations

import io
import time
import zipfile

import hostile
import openpyxl
import openpyxl.xml
import pytest
import python_calamine

from pipeline.ingest.guards import Limits, check_bytes, check_sheet_dimensions, sniff_format

REFUSED = [
    (hostile.zip_bomb, "xlsx", "file_zip_bomb"),
    (hostile.lying_size_zip, "xlsx", "file_zip_bomb"),
    (hostile.billion_laughs, "xlsx", "file_xml_entities"),
    (hostile.doctype_after_long_comment, "xlsx", "file_xml_entities"),
    (hostile.utf16_doctype, "xlsx", "file_xml_entities"),
    (hostile.far_cell_xlsx, "xlsx", "file_too_many_rows"),
    (hostile.quoted_gt_far_cell_xlsx, "xlsx", "file_too_many_rows"),
    (hostile.far_cell_xls, "xls", "file_too_many_rows"),
    (hostile.encrypted_xlsx, "encrypted_ooxml", "file_encrypted"),
    (hostile.encrypted_xls, "encrypted_xls", "file_encrypted"),
    (hostile.truncated_xlsx, "zip_damaged", "file_truncated"),
    (hostile.truncated_xls, "ole_damaged", "file_truncated"),
    (hostile.corrupt_xlsx, "xlsx", "file_corrupt"),
    (hostile.pdf_as_xlsx, "pdf", "file_not_spreadsheet"),
    (hostile.png_as_xlsx, "image", "file_not_spreadsheet"),
    (hostile.docx_as_xlsx, "zip_other", "file_not_spreadsheet"),
    (hostile.html_as_xls, "html", "file_not_spreadsheet"),
    (hostile.csv_as_xlsx, "csv", "file_not_spreadsheet"),
    (hostile.empty_file, "empty", "file_empty"),
]


@pytest.mark.parametrize(("make", "fmt", "code"), REFUSED, ids=[m.__name__ for m, _, _ in REFUSED])
def test_hostile_file_is_refused_with_its_code(tmp_path, make, fmt, code):
    path = make(tmp_path)
    data = path.read_bytes()
    assert sniff_format(data) == fmt
    issue = check_bytes(data, path.name)
    assert issue is not None and issue.code == code
    assert path.name in issue.message


@pytest.mark.parametrize(
    ("make", "fmt"),
    [
        (hostile.good_xlsx, "xlsx"),
        (hostile.good_xls, "xls"),
        (hostile.good_ods, "ods"),
        (hostile.far_styled_empty_xlsx, "xlsx"),
    ],
)
def test_good_workbooks_pass_and_really_are_readable(tmp_path, make, fmt):
    data = make(tmp_path).read_bytes()
    assert sniff_format(data) == fmt
    assert check_bytes(data, "x") is None
    rows = python_calamine.CalamineWorkbook.from_filelike(io.BytesIO(data)).get_sheet_by_index(0).to_python()
    assert any("Xã Ia Mơ Nông" in str(v) for row in rows for v in row)


def test_zip_bomb_is_judged_from_the_directory_quickly(tmp_path):
    data = hostile.zip_bomb(tmp_path).read_bytes()
    assert len(data) < 2 * 1024 * 1024
    started = time.perf_counter()
    issue = check_bytes(data, "bomb.xlsx")
    assert time.perf_counter() - started < 0.5
    assert "giải nén ra 300 MB từ tệp 0,3 MB" in issue.message


def test_openpyxl_uses_defusedxml_and_refuses_billion_laughs(tmp_path):
    assert openpyxl.xml.DEFUSEDXML is True
    with pytest.raises(ValueError) as caught:
        openpyxl.load_workbook(hostile.billion_laughs(tmp_path))
    assert type(caught.value.__cause__).__name__ == "EntitiesForbidden"


def test_calamine_does_not_expand_entities(tmp_path):
    # Documented behaviour (python-calamine 0.9): the undeclared-by-its-rules
    # entity reference is an XmlError, nothing is expanded. check_bytes refuses
    # the file before calamine ever sees it anyway.
    data = hostile.billion_laughs(tmp_path).read_bytes()
    with pytest.raises(python_calamine.CalamineError):
        python_calamine.CalamineWorkbook.from_filelike(io.BytesIO(data)).get_sheet_by_index(0).to_python()


def test_all_zero_bytes_is_empty_and_limits_are_configurable():
    assert check_bytes(bytes(4096), "a.xlsx").code == "file_empty"
    data = hostile.good_xlsx_bytes()
    big = check_bytes(data, "a.xlsx", Limits(max_file_bytes=1000))
    assert big.code == "file_too_large" and "giới hạn 1 KB" in big.message
    assert check_bytes(data, "a.xlsx", Limits(max_zip_entries=3)).code == "file_zip_bomb"
    assert check_bytes(data, "a.xlsx", Limits(max_sheet_rows=5)).code == "file_too_many_rows"
    assert check_bytes(data, "a.xlsx", Limits(max_sheet_cols=6)).code == "file_too_many_rows"
    assert check_bytes(data, "a.xlsx", Limits(max_sheet_rows=11, max_sheet_cols=7)) is None


def test_compression_ratio_limit_applies_per_entry():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("xl/workbook.xml", "<workbook/>")
        zf.writestr("xl/worksheets/sheet1.xml", b"<worksheet>" + b" " * (3 * 1024 * 1024) + b"</worksheet>")
    issue = check_bytes(buf.getvalue(), "r.xlsx")
    assert issue.code == "file_zip_bomb" and "xl/worksheets/sheet1.xml" in issue.message
    assert check_bytes(buf.getvalue(), "r.xlsx", Limits(max_compression_ratio=10_000)) is None


def test_sniff_xlsm_and_text_exports():
    def with_types(types: str) -> bytes:
        return hostile._rewrite_zip(
            hostile.good_xlsx_bytes(),
            "[Content_Types].xml",
            lambda b: b.replace(
                b"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml", types.encode()
            ),
        )

    assert sniff_format(with_types("application/vnd.ms-excel.sheet.macroEnabled.main+xml")) == "xlsm"
    assert check_bytes(with_types("application/vnd.ms-excel.sheet.macroEnabled.main+xml"), "m.xlsm") is None
    spreadsheetml = b'<?xml version="1.0"?><?mso-application progid="Excel.Sheet"?><Workbook xmlns="urn:schemas-microsoft-com:office:spreadsheet"/>'
    assert sniff_format(spreadsheetml) == "xml"
    assert "XML 2003" in check_bytes(spreadsheetml, "a.xls").message
    assert sniff_format(b"MIME-Version: 1.0\r\nContent-Type: multipart/related;") == "html"
    assert sniff_format("<table><tr><td>Xã</td></tr></table>".encode("utf-16")) == "html"
    assert sniff_format(b"just some words\nno separators here\n") == "text"
    assert sniff_format(b"\x00\x01\x02binary") == "unknown"
    assert sniff_format(b"PK\x03\x04" + bytes(100)) == "zip_damaged"


def test_check_sheet_dimensions():
    limits = Limits(max_sheet_rows=100, max_sheet_cols=10)
    assert check_sheet_dimensions(100, 10, limits)
    assert not check_sheet_dimensions(101, 10, limits)
    assert not check_sheet_dimensions(5, 11, limits)
    assert check_sheet_dimensions(20_000, 200)
