"""The canonical return: blank template protections/validations, filled values, formula guard."""

from __future__ import annotations

import datetime as dt
import zipfile

import openpyxl
import pandas as pd
import pytest

from pipeline.templates.return_workbook import (
    district_identity,
    template_for_district,
    templates_for_period,
    write_return,
)

REGISTER = pd.DataFrame(
    {
        "district_code": ["627", "627", "627", "623"],
        "district_name": ["Huyện Chư Păh", "Huyện Chư Păh", "Huyện Chư Păh", "Thị xã An Khê"],
        "unit_code": ["23722", "23737", "23740", "23614"],
        "unit_name": ["Phú Hòa", "Ia Mơ Nông", "Đăk Tơ Ver", "An Bình"],
        "unit_type": ["thi_tran", "xa", "xa", "phuong"],
    }
)
DISTRICT = district_identity(REGISTER, "627")
UNITS = REGISTER[REGISTER["district_code"] == "627"][["unit_code", "unit_name", "unit_type"]]
ROWS = pd.DataFrame(
    {
        "unit_code": ["23722", "23737", "23740"],
        "total_members": [250, 120, 90],
        "eligible": [True, True, False],
        "has_cell": [True, True, False],
        "established_on": [dt.date(2012, 5, 3), dt.date(2015, 3, 12), None],
        "basis": ["HD10", "HD28", None],
        "cell_members": [12, 9, None],
        "note": [None, "=HYPERLINK(\"http://x\",\"y\")", "+1 tháng"],
    }
)


def test_district_identity_derives_titles():
    assert DISTRICT["committee_title"] == "HUYỆN ỦY CHƯ PĂH"
    assert DISTRICT["short_name"] == "Chư Păh"
    assert district_identity(REGISTER, "623")["committee_title"] == "THỊ ỦY AN KHÊ"


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    path = template_for_district(REGISTER, "627", "2016-06", tmp_path_factory.mktemp("tpl"))
    return path, openpyxl.load_workbook(path)


def test_template_name_and_instructions_first(template):
    path, wb = template
    assert path.name == "Mau_bao_cao_2016-06_Chu_Pah.xlsx"
    assert wb.sheetnames[0] == "Hướng dẫn"
    assert "HƯỚNG DẪN" in wb["Hướng dẫn"]["A1"].value


def test_template_title_block_and_units(template):
    ws = template[1]["Báo cáo"]
    assert ws["A2"].value == "HUYỆN ỦY CHƯ PĂH"
    assert ws["G3"].value == "Chư Păh, ngày 30 tháng 6 năm 2016"
    assert ws["A6"].value == "(Số liệu tính đến ngày 30/06/2016)"
    assert [ws[f"C{r}"].value for r in (11, 12, 13)] == ["Thị trấn Phú Hòa", "Xã Ia Mơ Nông", "Xã Đăk Tơ Ver"]
    assert ws["D11"].value == "Thị trấn" and ws["B12"].value == "23737"
    assert "F8:J8" in {str(m) for m in ws.merged_cells.ranges}


def test_template_protection_locks_units_not_inputs(template):
    ws = template[1]["Báo cáo"]
    assert ws.protection.sheet
    for col in "ABCD":
        assert ws[f"{col}12"].protection.locked
    for col in "EFGHIJK":
        assert not ws[f"{col}12"].protection.locked
    assert ws["C8"].protection.locked


def test_template_validations(template):
    ws = template[1]["Báo cáo"]
    by_kind = {}
    for dv in ws.data_validations.dataValidation:
        by_kind.setdefault(dv.type, []).append((str(dv.sqref), dv.formula1))
    assert ("F11:G13", '"x"') in by_kind["list"]
    assert ("I11:I13", '"HD 10-HD/BTCTW,HD 28-HD/BTCTW"') in by_kind["list"]
    assert {s for s, _ in by_kind["whole"]} == {"E11:E13", "J11:J13"}
    assert [s for s, _ in by_kind["date"]] == ["H11:H13"]


def test_template_totals_are_formulas(template):
    ws = template[1]["Báo cáo"]
    assert ws["C14"].value == "Tổng cộng"
    assert ws["E14"].value == "=SUM(E11:E13)"
    assert ws["G14"].value == '=COUNTIF(G11:G13,"x")'


def test_templates_for_period_all_or_one(tmp_path):
    assert len(templates_for_period(REGISTER, "2016-06", tmp_path)) == 2
    assert [p.name for p in templates_for_period(REGISTER, "2016-06", tmp_path, "623")] == [
        "Mau_bao_cao_2016-06_An_Khe.xlsx"
    ]
    with pytest.raises(KeyError):
        templates_for_period(REGISTER, "2016-06", tmp_path, "999")


def test_filled_return_values_and_formula_guard(tmp_path):
    path = write_return(tmp_path / "r.xlsx", district=DISTRICT, period="2016-06", units=UNITS, rows=ROWS)
    ws = openpyxl.load_workbook(path)["Báo cáo"]
    assert [c.value for c in ws[12]][4:10] == [120, "x", "x", dt.datetime(2015, 3, 12), "HD 28-HD/BTCTW", 9]
    assert ws["H12"].number_format == "dd/mm/yyyy"
    assert ws["F13"].value is None and ws["I13"].value is None
    # A note that looks like a formula stays the same text, typed as a string.
    assert ws["K12"].value == '=HYPERLINK("http://x","y")' and ws["K12"].data_type == "s"
    assert ws["K13"].value == "+1 tháng" and ws["K13"].data_type == "s"
    # Declared totals are values, not formulas: nothing in the file is a formula.
    assert [ws[f"{c}14"].value for c in "EFGJ"] == [460, 2, 2, 21]
    with zipfile.ZipFile(path) as zf:
        sheets = [n for n in zf.namelist() if n.startswith("xl/worksheets/sheet")]
        assert not any(b"<f>" in zf.read(n) or b"<f " in zf.read(n) for n in sheets)
    assert not ws.protection.sheet


def test_timestamp_makes_bytes_reproducible(tmp_path):
    when = dt.datetime(2016, 7, 2, 8, 0)
    a = write_return(tmp_path / "a.xlsx", district=DISTRICT, period="2016-06", units=UNITS, rows=ROWS, timestamp=when)
    b = write_return(tmp_path / "b.xlsx", district=DISTRICT, period="2016-06", units=UNITS, rows=ROWS, timestamp=when)
    assert a.read_bytes() == b.read_bytes()
    assert openpyxl.load_workbook(a).properties.modified == when


def test_rejects_rows_for_unlisted_units_and_bad_basis(tmp_path):
    with pytest.raises(ValueError):
        write_return(tmp_path / "x.xlsx", district=DISTRICT, period="2016-06", units=UNITS.iloc[:1], rows=ROWS)
    bad = ROWS.assign(basis=["HD10", "28", None])
    with pytest.raises(ValueError):
        write_return(tmp_path / "y.xlsx", district=DISTRICT, period="2016-06", units=UNITS, rows=bad)
