from __future__ import annotations

import datetime as dt
import zipfile

import openpyxl
import pandas as pd
import pytest

from pipeline.reports import feedback as F
from pipeline.reports.excel_safe import assert_no_formulas, find_formulas

EVIL = '=HYPERLINK("http://evil.example","bấm vào đây")'


def make_source(path):
    """A tiny return: title, header on row 3, two unit rows; one name is formula-like text."""
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "BC"
    ws["A1"] = "HUYỆN ỦY CHƯ PĂH"
    ws.merge_cells("A1:D1")
    for c, label in enumerate(["STT", "Tên đơn vị", "Tổng số đảng viên", "Ngày thành lập"], start=1):
        ws.cell(row=3, column=c, value=label)
    ws.append([1, "Xã Ia Mơ Nông", 412, dt.date(2015, 3, 12)])
    ws.append([2, None, -5, None])
    ws["B5"].value = EVIL
    ws["B5"].data_type = "s"  # stored as text by the clerk's program, not as a formula
    wb.save(path)
    return path


def issues_frame() -> pd.DataFrame:
    return pd.DataFrame(
        [
            ("BC", "C5", "error", "count_negative", "Ô C5: số đảng viên âm (-5).", "Ghi số không âm."),
            ("BC", "C5", "warning", "members_jump", "Ô C5: tổng số thay đổi hơn một nửa.", "Kiểm tra lại."),
            ("BC", "D4", "warning", "cell_not_eligible", "Ô D4: có chi bộ nhưng không đủ điều kiện.", "Kiểm tra lại."),
            ("BC", "B5", "error", "unit_unknown", f'Ô B5: "{EVIL}" không có trong danh mục.', "Sửa tên."),
            ("BC", None, "info", "totals_missing", "Bảng không có dòng tổng cộng.", "Nên thêm."),
        ],
        columns=["sheet", "cell", "severity", "code", "message", "action"],
    )


def fill_of(cell) -> str:
    return cell.fill.fgColor.rgb[-6:] if cell.fill and cell.fill.fill_type == "solid" else ""


def test_district_feedback_lists_issues_and_marks_the_copy(tmp_path):
    src = make_source(tmp_path / "Chu Pah.xlsx")
    out = F.write_district_feedback(
        tmp_path / "out" / "phan_hoi.xlsx",
        period="2016-06",
        district_name="Huyện Chư Păh",
        file_name="Chu Pah.xlsx",
        status="refused",
        issues=issues_frame(),
        source_path=src,
    )
    assert_no_formulas(out)
    wb = openpyxl.load_workbook(out)
    assert wb.sheetnames == [F.ISSUE_SHEET, F.COPY_SHEET]

    ws = wb[F.ISSUE_SHEET]
    texts = [str(c.value) for row in ws.iter_rows() for c in row if c.value is not None]
    assert "Phản hồi báo cáo chi bộ cơ quan kỳ tháng 6/2016" in texts
    assert "Kết quả: Bị từ chối – cần sửa và gửi lại" in texts
    header = next(r for r in ws.iter_rows(values_only=True) if r[0] == "STT")
    assert list(header) == ["STT", "Mức độ", "Trang", "Ô", "Nội dung", "Cách sửa"]
    table = [r for r in ws.iter_rows(values_only=True) if isinstance(r[0], int)]
    # Errors first, then warnings, then notes.
    assert [r[1] for r in table] == ["Lỗi", "Lỗi", "Cảnh báo", "Cảnh báo", "Lưu ý"]
    assert table[0][3] == "C5" and table[0][4] == "Ô C5: số đảng viên âm (-5)."
    assert any(EVIL in (r[4] or "") for r in table)

    copy = wb[F.COPY_SHEET]
    assert copy["B4"].value == "Xã Ia Mơ Nông" and copy["C4"].value == 412
    assert copy["D4"].value.date() == dt.date(2015, 3, 12)
    assert copy["B5"].value == EVIL and copy["B5"].data_type == "s"
    assert "A1:D1" in {str(r) for r in copy.merged_cells.ranges}
    # C5 has an error and a warning: red, both messages in one comment.
    assert fill_of(copy["C5"]) == "FF8080"
    assert "số đảng viên âm" in copy["C5"].comment.text and "thay đổi hơn một nửa" in copy["C5"].comment.text
    assert fill_of(copy["D4"]) == "FFE066"
    assert "không đủ điều kiện" in copy["D4"].comment.text
    assert copy["A4"].comment is None and fill_of(copy["A4"]) == ""


def test_no_formula_element_anywhere(tmp_path):
    src = make_source(tmp_path / "r.xlsx")
    out = F.write_district_feedback(
        tmp_path / "f.xlsx", period="2016-06", district_name=EVIL, file_name=EVIL, status="refused", issues=issues_frame(), source_path=src
    )
    assert find_formulas(out) == []
    with zipfile.ZipFile(out) as zf:
        for name in zf.namelist():
            if name.startswith("xl/worksheets/"):
                assert b"<f>" not in zf.read(name) and b"<f " not in zf.read(name)


def test_without_or_with_unreadable_source_only_the_list(tmp_path):
    junk = tmp_path / "junk.xlsx"
    junk.write_bytes(b"not a workbook at all")
    for source in (None, junk, tmp_path / "does-not-exist.xlsx"):
        out = F.write_district_feedback(
            tmp_path / "f.xlsx", period="2016-06", district_name="Huyện Chư Păh", file_name="x.xlsx", status="refused", issues=issues_frame(), source_path=source
        )
        assert openpyxl.load_workbook(out).sheetnames == [F.ISSUE_SHEET]


def test_accepted_return_without_issues(tmp_path):
    empty = pd.DataFrame(columns=["sheet", "cell", "severity", "code", "message", "action"])
    out = F.write_district_feedback(
        tmp_path / "f.xlsx", period="2016-12", district_name="Thị xã An Khê", file_name="AnKhe.xlsx", status="accepted", issues=empty, source_path=make_source(tmp_path / "a.xlsx")
    )
    wb = openpyxl.load_workbook(out)
    assert wb.sheetnames == [F.ISSUE_SHEET]  # nothing to mark, no copy
    texts = [c.value for row in wb.active.iter_rows() for c in row if c.value]
    assert "Kết quả: Đã tiếp nhận" in texts and "Không có lỗi hay cảnh báo nào." in texts


def test_status_overview(tmp_path):
    status = pd.DataFrame(
        [
            ("2016-06", "627", "Huyện Chư Păh", "accepted", "Chu Pah.xlsx", 0, 0),
            ("2016-06", "623", "Thị xã An Khê", "refused", EVIL, 3, 1),
            ("2016-12", "627", "Huyện Chư Păh", "accepted_with_warnings", "Chu Pah (2).xlsx", 0, 2),
            ("2016-12", "623", "Thị xã An Khê", "missing", None, None, None),
        ],
        columns=["period", "district_code", "district_name", "status", "source_file", "errors", "warnings"],
    )
    out = F.write_status_overview(tmp_path / "tong_hop.xlsx", status=status)
    assert_no_formulas(out)
    wb = openpyxl.load_workbook(out)
    assert wb.sheetnames == [F.OVERVIEW_SHEET, F.MATRIX_SHEET]
    ws = wb[F.OVERVIEW_SHEET]
    rows = [r for r in ws.iter_rows(min_row=4, values_only=True)]
    # Newest period first, districts by name within a period.
    assert [(r[0], r[2]) for r in rows] == [
        ("tháng 12/2016", "Huyện Chư Păh"),
        ("tháng 12/2016", "Thị xã An Khê"),
        ("tháng 6/2016", "Huyện Chư Păh"),
        ("tháng 6/2016", "Thị xã An Khê"),
    ]
    assert rows[1][3] == "Chưa gửi báo cáo" and rows[1][5] is None
    assert rows[3][3].startswith("Bị từ chối") and rows[3][4] == EVIL and rows[3][5] == 3
    assert fill_of(ws["D7"]) == "FFC7CE" and fill_of(ws["D6"]) == "C6EFCE"

    matrix = wb[F.MATRIX_SHEET]
    head = next(matrix.iter_rows(min_row=3, max_row=3, values_only=True))
    assert list(head) == ["Mã", "Đơn vị", "tháng 6/2016", "tháng 12/2016"]
    an_khe = next(r for r in matrix.iter_rows(min_row=4) if r[1].value == "Thị xã An Khê")
    assert an_khe[2].value.startswith("Bị từ chối") and fill_of(an_khe[2]) == "FFC7CE"
    assert an_khe[3].value == "Chưa gửi báo cáo"


@pytest.mark.parametrize("period", ["2016-06", "2017-01"])
def test_period_label(period):
    assert F.period_label(period) in ("tháng 6/2016", "tháng 1/2017")


def test_inputs_stamp_changes_with_any_input():
    from pipeline.reports.outputs import inputs_stamp

    issues = pd.DataFrame({"cell": ["E12"], "message": ["Số đảng viên âm"]})
    base = inputs_stamp("feedback", "2016-06", "accepted", frame=issues)
    assert base == inputs_stamp("feedback", "2016-06", "accepted", frame=issues.copy())
    assert base != inputs_stamp("feedback", "2016-06", "refused", frame=issues)
    assert base != inputs_stamp("feedback", "2016-06", "accepted", frame=issues.assign(cell=["E13"]))
    assert base != inputs_stamp("feedback", "2016-06", "accepted", frame=issues.rename(columns={"cell": "o"}))


def test_status_overview_lists_the_newest_periods_and_the_matrix_keeps_every_one(tmp_path):
    periods = [f"2016-{m:02d}" for m in range(1, 13)] + ["2017-01", "2017-02"]
    status = pd.DataFrame(
        [(p, code, name, "accepted", f"{code}.xlsx", 0, 0) for p in periods for code, name in [("623", "Thị xã An Khê"), ("627", "Huyện Chư Păh")]],
        columns=["period", "district_code", "district_name", "status", "source_file", "errors", "warnings"],
    )
    wb = openpyxl.load_workbook(F.write_status_overview(tmp_path / "tong_hop.xlsx", status=status))
    ws = wb[F.OVERVIEW_SHEET]
    listed = [r[0] for r in ws.iter_rows(min_row=4, values_only=True)]
    assert len(listed) == 2 * F.DETAIL_PERIODS == 24
    assert listed[0] == "tháng 2/2017" and listed[-1] == "tháng 3/2016"  # newest first, the two oldest left out
    assert "12 kỳ gần nhất" in ws["A2"].value and "14 kỳ" in ws["A2"].value and "tháng 1/2016" in ws["A2"].value
    head = next(wb[F.MATRIX_SHEET].iter_rows(min_row=3, max_row=3, values_only=True))
    assert head[2] == "tháng 1/2016" and head[-1] == "tháng 2/2017" and len(head) == 2 + 14
