"""The province report of a held-out period, end to end through `pipeline run`.

(b) A generated period shaped to 117/222 units with a cell (52,7%) and 1.168
cell members: the workbook's by-type table holds the exact figures (as numbers
in the Vietnamese number format) and the narrative states them in Vietnamese
formatting. (c) A return whose note cell holds ``=HYPERLINK(...)`` as text: no
output workbook holds a formula, and the note survives as text in the warehouse.
"""

from __future__ import annotations

import datetime as dt
import random
import shutil
import subprocess
from pathlib import Path

import duckdb
import openpyxl
import pandas as pd
import pytest

from pipeline.reports.excel_safe import find_formulas
from pipeline.reports.province_report import SHEET_REPORT
from pipeline.reports.vn_format import fmt_int, fmt_pct, pct
from pipeline.runner import run_pipeline
from pipeline.sample.generate import build_rows
from pipeline.templates.return_workbook import district_identity, write_return
from tests.conftest import REGISTER, make_settings

PERIOD = "2016-12"
CELLS, CELL_MEMBERS = 117, 1168
HYPERLINK = '=HYPERLINK("http://x","y")'
TYPE_LABELS = {"xa": "Xã", "phuong": "Phường", "thi_tran": "Thị trấn", "total": "Toàn tỉnh"}


def shape(rows: pd.DataFrame, cells: int, cell_members: int, seed: int = 7) -> pd.DataFrame:
    """``rows`` changed so that exactly ``cells`` units are eligible with a cell and
    their cells hold ``cell_members`` members; nothing else about them is special."""
    rng = random.Random(seed)
    rows = rows.copy()
    counted = rows["eligible"].astype(bool) & rows["has_cell"].astype(bool)
    have = list(rows.index[counted])
    lack = list(rows.index[~counted])
    rng.shuffle(have)
    rng.shuffle(lack)
    for i in have[cells:]:  # too many: these cells are not set up yet
        rows.loc[i, ["has_cell", "established_on", "basis", "cell_members", "note"]] = (
            False, None, None, None, "Đang chuẩn bị nhân sự")
    for i in lack[: max(0, cells - len(have))]:  # too few: these set one up under Guidance 10
        rows.loc[i, ["eligible", "has_cell", "established_on", "basis", "note"]] = (
            True, True, dt.date(2012, 5, 1), "HD10", None)
    chosen = rows.index[rows["eligible"].astype(bool) & rows["has_cell"].astype(bool)]
    assert len(chosen) == cells
    base, extra = divmod(cell_members, cells)
    for k, i in enumerate(chosen):
        rows.at[i, "cell_members"] = base + (1 if k < extra else 0)
    rows["total_members"] = [max(int(t), int(c or 0) + 30) for t, c in zip(rows["total_members"], rows["cell_members"])]
    return rows


def expected_by_type(rows: pd.DataFrame) -> dict[str, dict]:
    out = {}
    counted = rows["eligible"].astype(bool) & rows["has_cell"].astype(bool)
    for key in ("xa", "phuong", "thi_tran", "total"):
        sel = rows["unit_type"] == key if key != "total" else pd.Series(True, index=rows.index)
        units, with_cell = int(sel.sum()), int((sel & counted).sum())
        members = int(pd.to_numeric(rows.loc[sel & counted, "cell_members"]).sum())
        total = int(rows.loc[sel, "total_members"].sum())
        out[key] = dict(units=units, units_with_cell=with_cell, coverage_pct=pct(with_cell, units),
                        cell_members=members, total_members=total, member_share_pct=pct(members, total),
                        cells_hd28=int((sel & counted & (rows["basis"] == "HD28")).sum()),
                        cells_hd10=int((sel & counted & (rows["basis"] == "HD10")).sum()))
    return out


def put_text_note(path: Path, unit_code: str, text: str) -> None:
    """Store ``text`` in the unit's note cell as a plain string, formula-looking or not."""
    wb = openpyxl.load_workbook(path)
    for ws in wb.worksheets:
        for row in ws.iter_rows():
            if any(c.value == unit_code for c in row):
                note = row[0].offset(column=10)  # column K, "Ghi chú"
                note.value = text
                note.data_type = "s"  # text, as a clerk's pasted string is
                wb.save(path)
                return
    raise AssertionError(f"unit {unit_code} not found in {path}")


@pytest.fixture(scope="module")
def held_out(tmp_path_factory):
    register = pd.read_csv(REGISTER, dtype=str, keep_default_na=False)
    rows = shape(build_rows(register, PERIOD, seed=1612), CELLS, CELL_MEMBERS)
    # (c): a unit without a cell gets the formula-looking note, plus stray cell
    # members so its file draws a warning and a feedback copy is written.
    target = rows.index[~rows["has_cell"].astype(bool)][0]
    rows.at[target, "cell_members"] = 3
    target_code = rows.at[target, "unit_code"]
    root = tmp_path_factory.mktemp("report")
    raw = root / "raw" / PERIOD
    target_file = None
    for code in dict.fromkeys(rows["district_code"]):
        sub = rows[rows["district_code"] == code]
        path = write_return(raw / f"BC_{code}_{PERIOD}.xlsx", district=district_identity(register, code),
                            period=PERIOD, units=sub[["unit_code", "unit_name", "unit_type"]], rows=sub,
                            preparer="Nguyễn Văn An", signer="Trần Thị Lan")
        if target_code in set(sub["unit_code"]):
            target_file = path
    put_text_note(target_file, target_code, HYPERLINK)
    assert find_formulas(target_file) == []  # the input holds text, not a formula

    settings = make_settings(root)
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("DAGSTER_HOME", raising=False)
        outcome = run_pipeline(settings, period=PERIOD, quiet=True)
    assert outcome.success, outcome.failure
    return dict(settings=settings, rows=rows, target_code=target_code,
                report=settings.reports_dir / PERIOD / f"Bao_cao_chi_bo_co_quan_{PERIOD}.xlsx")


def _by_type_table(ws) -> dict[str, list]:
    """Rows of the by-type table keyed by their label, values as stored."""
    found = {}
    for row in ws.iter_rows(min_col=1, max_col=9):
        label = row[0].value
        if label in TYPE_LABELS.values() and isinstance(row[1].value, (int, float)):
            found[label] = row
    return found


def test_by_type_table_holds_the_exact_figures_in_vietnamese_format(held_out):
    expected = expected_by_type(held_out["rows"])
    assert (expected["total"]["units_with_cell"], expected["total"]["units"]) == (CELLS, 222)
    assert expected["total"]["coverage_pct"] == 52.7 and expected["total"]["cell_members"] == CELL_MEMBERS
    ws = openpyxl.load_workbook(held_out["report"])[SHEET_REPORT]
    table = _by_type_table(ws)
    assert set(table) == set(TYPE_LABELS.values())
    columns = ("units", "units_with_cell", "coverage_pct", "cell_members", "total_members",
               "member_share_pct", "cells_hd28", "cells_hd10")
    for key, label in TYPE_LABELS.items():
        cells = table[label][1:]
        assert [c.value for c in cells] == [expected[key][c] for c in columns], label
        for cell, column in zip(cells, columns):
            # The Vietnamese locale tag makes LibreOffice (and the PDF) show 1.168 and 52,7.
            assert cell.number_format.startswith("[$-42A]"), (label, column)
            assert ("0.0" in cell.number_format) == column.endswith("_pct"), (label, column)


def test_narrative_states_the_figures_in_vietnamese_formatting(held_out):
    expected = expected_by_type(held_out["rows"])["total"]
    ws = openpyxl.load_workbook(held_out["report"])[SHEET_REPORT]
    texts = [c.value for row in ws.iter_rows() for c in row if isinstance(c.value, str)]
    paragraph = next(t for t in texts if t.startswith("Tính đến"))
    assert "117/222" in paragraph
    assert "(đạt 52,7%)" in paragraph
    assert "với 1.168 đảng viên" in paragraph
    assert f"chiếm {fmt_pct(expected['member_share_pct'], drop_zero=True)}%" in paragraph
    assert "ngày 31/12/2016" in paragraph


@pytest.mark.skipif(shutil.which("pdftotext") is None, reason="poppler-utils not installed")
def test_pdf_shows_the_table_in_vietnamese_formatting(held_out):
    pdf = held_out["report"].with_suffix(".pdf")
    if not pdf.exists():
        pytest.skip("LibreOffice not installed: no PDF")
    text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    total = next(line for line in text.splitlines() if line.strip().startswith("Toàn tỉnh") and "1.168" in line)
    expected = expected_by_type(held_out["rows"])["total"]
    for figure in ("222", "117", "52,7", "1.168", fmt_int(expected["total_members"])):
        assert figure in total.split(), (figure, total)


def test_no_output_workbook_holds_a_formula(held_out):
    settings = held_out["settings"]
    books = sorted(settings.reports_dir.rglob("*.xlsx")) + sorted(settings.feedback_dir.rglob("*.xlsx"))
    assert any(p.parent.parent == settings.feedback_dir for p in books), "expected a feedback workbook"
    hits = {str(p): find_formulas(p) for p in books}
    assert not any(hits.values()), hits
    # The feedback copy of the return carries the note, as text.
    shown = [c.value for p in settings.feedback_dir.rglob("*.xlsx")
             for ws in openpyxl.load_workbook(p).worksheets for row in ws.iter_rows() for c in row]
    assert any(isinstance(v, str) and "HYPERLINK" in v for v in shown)


def test_note_survives_as_text_in_the_warehouse(held_out):
    con = duckdb.connect(str(held_out["settings"].warehouse), read_only=True)
    try:
        note = con.execute("select note from core.unit_returns where period = ? and unit_code = ?",
                           [PERIOD, held_out["target_code"]]).fetchone()
    finally:
        con.close()
    assert note == (HYPERLINK,)
