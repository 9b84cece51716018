"""`pipeline template`: the blank return a district fills loads with no error and no warning."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import openpyxl
import pytest

from pipeline.checks.rules import check_return
from pipeline.cli import main
from pipeline.ingest.parse import parse_return
from pipeline.reports.pdf import soffice_path
from pipeline.sample.generate import build_rows
from pipeline.templates.return_workbook import BASIS_LABELS, DATA_SHEET, FIRST_UNIT_ROW

PERIOD = "2016-12"


@pytest.fixture(scope="module")
def district(register):
    # The largest district: the most rows for a clerk to get wrong.
    return register.units.groupby("district_code").size().idxmax()


@pytest.fixture
def template(tmp_path, district) -> Path:
    out = tmp_path / "mau"
    assert main(["template", "--period", PERIOD, "--district", district, "--out", str(out)]) == 0
    (path,) = out.glob("*.xlsx")
    return path


def fill_like_a_clerk(path: Path, register, district: str, out: Path, keep_formulas: bool = False) -> dict[str, int]:
    """Type each unit's figures into the input columns; returns the totals a spreadsheet would compute.

    openpyxl cannot compute formulas, so unless ``keep_formulas`` the totals row's
    formulas are replaced by their values, as Excel's saved cache would hold them.
    """
    rows = build_rows(register.units, PERIOD, 3)
    by_code = rows[rows["district_code"] == district].set_index("unit_code")
    wb = openpyxl.load_workbook(path)
    ws = wb[DATA_SHEET]
    r = FIRST_UNIT_ROW
    totals = {"E": 0, "F": 0, "G": 0, "J": 0}
    while ws[f"C{r}"].value != "Tổng cộng":
        u = by_code.loc[str(ws[f"B{r}"].value)]
        ws[f"E{r}"] = int(u.total_members)
        ws[f"F{r}"] = "x" if u.eligible else None
        ws[f"G{r}"] = "x" if u.has_cell else None
        if u.has_cell:
            ws[f"H{r}"] = u.established_on
            ws[f"I{r}"] = BASIS_LABELS[u.basis]
            ws[f"J{r}"] = int(u.cell_members)
        ws[f"K{r}"] = u.note
        totals["E"] += int(u.total_members)
        totals["F"] += bool(u.eligible)
        totals["G"] += bool(u.has_cell)
        totals["J"] += int(u.cell_members) if u.has_cell else 0
        r += 1
    for col, value in totals.items():
        assert str(ws[f"{col}{r}"].value).startswith("="), "the template's totals are formulas"
        if not keep_formulas:
            ws[f"{col}{r}"] = value
    wb.save(out)
    return totals


def check(path: Path, register, matcher):
    parsed = parse_return(path.read_bytes(), path.name, matcher)
    issues = list(parsed.issues) + check_return(
        parsed, units=register.units, districts=register.districts, period=PERIOD, suggest=matcher.suggest
    )
    return parsed, issues


def test_template_command_writes_one_workbook_per_district(tmp_path, register):
    assert main(["template", "--period", PERIOD, "--out", str(tmp_path)]) == 0
    assert len(list(tmp_path.glob("*.xlsx"))) == register.districts["district_code"].nunique()


def test_template_command_refuses_an_unknown_district(tmp_path, capsys):
    assert main(["template", "--period", PERIOD, "--district", "999", "--out", str(tmp_path)]) == 2
    assert "unknown district" in capsys.readouterr().err


def test_a_filled_template_loads_with_no_error_and_no_warning(tmp_path, template, register, matcher, district):
    filled = tmp_path / "filled.xlsx"
    totals = fill_like_a_clerk(template, register, district, filled)
    parsed, issues = check(filled, register, matcher)
    assert [(i.severity, i.code, i.cell) for i in issues if i.severity != "info"] == []
    assert parsed.district_code == district and parsed.title_district_code == district
    assert len(parsed.rows) == int((register.units["district_code"] == district).sum())
    assert parsed.totals_row is not None
    assert int(parsed.totals["total_members"]) == totals["E"] and int(parsed.totals["cell_members"]) == totals["J"]
    # Nothing to suggest either: codes are pre-filled and the totals row is there.
    assert issues == []


def test_a_template_filled_by_a_program_keeping_formulas_is_refused_with_a_clear_reason(tmp_path, template, register, matcher, district):
    filled = tmp_path / "formulas.xlsx"
    fill_like_a_clerk(template, register, district, filled, keep_formulas=True)
    _, issues = check(filled, register, matcher)
    assert {i.code for i in issues if i.severity == "error"} == {"formula_without_value"}


@pytest.mark.skipif(soffice_path() is None, reason="LibreOffice (soffice) not installed")
def test_a_template_saved_by_a_spreadsheet_program_loads_clean(tmp_path, template, register, matcher, district):
    """Open and save through LibreOffice: the totals row gets real cached values of its formulas."""
    filled = tmp_path / "filled_formulas.xlsx"
    totals = fill_like_a_clerk(template, register, district, filled, keep_formulas=True)
    out = tmp_path / "saved"
    subprocess.run(
        [soffice_path(), "--headless", f"-env:UserInstallation=file://{tmp_path / 'lo-profile'}",
         "--convert-to", "xlsx:Calc MS Excel 2007 XML", "--outdir", str(out), str(filled)],
        check=True, capture_output=True, timeout=180,
    )  # fmt: skip
    saved = out / filled.name
    parsed, issues = check(saved, register, matcher)
    assert [(i.severity, i.code, i.cell) for i in issues] == []
    assert int(parsed.totals["total_members"]) == totals["E"]
    assert int(parsed.totals["has_cell"]) == totals["G"]
    shutil.rmtree(tmp_path / "lo-profile", ignore_errors=True)


def test_the_template_names_the_province_of_the_deployment(tmp_path, template, district, monkeypatch):
    assert openpyxl.load_workbook(template)[DATA_SHEET]["A1"].value == "TỈNH ỦY GIA LAI"  # the default
    monkeypatch.setenv("PIPELINE_PROVINCE", "Đắk Lắk")
    out = tmp_path / "dak-lak"
    assert main(["template", "--period", PERIOD, "--district", district, "--out", str(out)]) == 0
    (path,) = out.glob("*.xlsx")
    assert openpyxl.load_workbook(path)[DATA_SHEET]["A1"].value == "TỈNH ỦY ĐẮK LẮK"
