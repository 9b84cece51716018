"""A rebuilt period whose figures did not change keeps its report and PDF (LibreOffice is not run again)."""

from __future__ import annotations

import dataclasses
import os
import shutil

import openpyxl
import pytest

from benchmarks.run import change_one_cell, resave
from pipeline.reports.excel_safe import read_stamp
from pipeline.reports.pdf import soffice_path
from pipeline.reports.province_report import SHEET_REPORT
from pipeline.runner import run_pipeline
from tests.conftest import SAMPLE_RAW, make_settings

PERIOD = "2016-06"  # the bundled sample


@pytest.fixture
def copied_sample(tmp_path, monkeypatch):
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    shutil.copytree(SAMPLE_RAW / PERIOD, tmp_path / "raw" / PERIOD)
    return make_settings(tmp_path)


def _report(settings):
    folder = settings.reports_dir / PERIOD
    return folder / f"Bao_cao_chi_bo_co_quan_{PERIOD}.xlsx", folder / f"Bao_cao_chi_bo_co_quan_{PERIOD}.pdf"


def test_report_is_kept_for_a_return_sent_again_and_remade_when_a_figure_changes(copied_sample):
    settings = copied_sample
    assert run_pipeline(settings, quiet=True).success
    workbook, pdf = _report(settings)
    stamp, made = read_stamp(workbook), workbook.stat().st_mtime_ns
    assert stamp is not None
    has_pdf = soffice_path() is not None
    if has_pdf:
        assert pdf.is_file()
        pdf_made = pdf.stat().st_mtime_ns

    first = sorted((settings.raw_dir / PERIOD).glob("*.xlsx"))[0]
    resave(first)  # the same cells in new bytes: the period is rebuilt, its figures are not changed
    outcome = run_pipeline(settings, quiet=True)
    assert outcome.success and outcome.periods == [PERIOD] and not outcome.unchanged
    assert workbook.stat().st_mtime_ns == made and read_stamp(workbook) == stamp
    if has_pdf:
        assert pdf.stat().st_mtime_ns == pdf_made

    change_one_cell(first)  # one more member: the report's figures change
    # Sent a minute later: versions are ordered by times kept to the second, and the two
    # runs above can fall within one second.
    later = first.stat().st_mtime + 60
    os.utime(first, (later, later))
    assert run_pipeline(settings, quiet=True).success
    assert read_stamp(workbook) != stamp
    if has_pdf:
        assert pdf.is_file() and pdf.stat().st_mtime_ns != pdf_made


@pytest.mark.skipif(soffice_path() is None, reason="needs LibreOffice")
def test_a_missing_pdf_is_made_again(copied_sample):
    settings = copied_sample
    assert run_pipeline(settings, quiet=True).success
    workbook, pdf = _report(settings)
    pdf.unlink()
    resave(sorted((settings.raw_dir / PERIOD).glob("*.xlsx"))[0])  # rebuilt, same figures
    assert run_pipeline(settings, quiet=True).success
    assert pdf.is_file()


def test_the_report_names_the_province_and_all_reports_rewrites_it_when_that_changes(copied_sample):
    settings = copied_sample
    assert run_pipeline(settings, quiet=True).success
    workbook, _ = _report(settings)
    assert openpyxl.load_workbook(workbook)[SHEET_REPORT]["A1"].value == "TỈNH ỦY GIA LAI"

    other = dataclasses.replace(settings, province="Đắk Lắk")  # PIPELINE_PROVINCE, as another province deploys it
    assert run_pipeline(other, quiet=True, all_reports=True).success
    book = openpyxl.load_workbook(workbook)
    sheet = book[SHEET_REPORT]
    assert sheet["A1"].value == "TỈNH ỦY ĐẮK LẮK"
    assert any(str(c.value).startswith("Đắk Lắk, ngày") for row in sheet.iter_rows(max_row=4) for c in row if c.value)
    assert book.properties.creator == "Ban Tổ chức Tỉnh ủy Đắk Lắk"
