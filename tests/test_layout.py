"""Finding the return's table on sheet grids built in memory."""

from __future__ import annotations

import datetime as dt
import unicodedata

import pytest

from pipeline.ingest.layout import (
    cell_ref,
    choose_sheet,
    column_letter,
    find_layout,
    label_key,
    missing_required,
)
from pipeline.ingest.model import FIELDS, REQUIRED_FIELDS, Sheet

TITLE = [
    ["TỈNH ỦY GIA LAI", None, None, None, None, None, "ĐẢNG CỘNG SẢN VIỆT NAM"],
    ["HUYỆN ỦY CHƯ PĂH"],
    [None, None, None, None, None, None, "Chư Păh, ngày 30 tháng 6 năm 2016"],
    ["BÁO CÁO"],
    ["Tình hình thành lập chi bộ cơ quan xã, phường, thị trấn"],
    ["(Số liệu tính đến ngày 30/6/2016)"],
    [],
]
TOP = ["STT", "Mã ĐVHC", "Tên đơn vị hành chính cấp xã", "Loại đơn vị", "Tổng số đảng viên của đảng bộ",
       "Chi bộ cơ quan", None, None, None, None, "Ghi chú"]
SUB = [None, None, None, None, None, "Đủ điều kiện thành lập", "Đã thành lập", "Ngày thành lập",
       "Căn cứ thành lập", "Số đảng viên", None]
ONE_ROW = ["STT", "Mã ĐVHC", "Tên đơn vị", "Loại đơn vị", "Tổng số đảng viên", "Đủ điều kiện", "Đã thành lập",
           "Ngày thành lập", "Căn cứ thành lập", "Số đảng viên chi bộ cơ quan", "Ghi chú"]
NUMBERS = [f"({i})" for i in range(1, 12)]
CANONICAL = dict(zip(FIELDS, range(11)))


def unit(i: int, name: str = "Xã Ia Mơ Nông", members: int = 412) -> list:
    return [i, f"5{i:04d}", name, "Xã", members, "x", "x", dt.datetime(2015, 3, 12), "HD 28-HD/BTCTW", 9, None]


def units(n: int) -> list[list]:
    return [unit(i + 1, f"Xã {chr(65 + i)}", 100 + i) for i in range(n)]


TOTALS = [None, None, "Tổng cộng", None, 1000, 3, 3, None, None, 27, None]
SIGNATURE = [[], [None, "Người lập biểu", None, None, None, None, None, "T/M BAN THƯỜNG VỤ"]]


def canonical_grid(body=None, *, numbers=True) -> tuple[list[list], list]:
    """The province template: title block, merged two-row header, number row, units, totals, signature."""
    rows = [list(r) for r in TITLE] + [list(TOP), list(SUB)]
    if numbers:
        rows.append(list(NUMBERS))
    rows += body if body is not None else units(3) + [list(TOTALS)] + SIGNATURE
    h = len(TITLE)
    merged = [((h, c), (h + 1, c)) for c in (0, 1, 2, 3, 4, 10)] + [((h, 5), (h, 9)), ((3, 0), (3, 10))]
    return rows, merged


def sheet(rows, merged=None, name="Sheet1") -> Sheet:
    width = max((len(r) for r in rows), default=0)
    dense = [list(r) + [None] * (width - len(r)) for r in rows]
    return Sheet(name=name, rows=dense, merged=merged or [])


def shift(rows: list[list], cols: int) -> list[list]:
    return [[None] * cols + list(r) if r else [] for r in rows]


def values(layout, s, r, fld):
    return s.rows[r][layout.columns[fld]]


# ---------------------------------------------------------------- helpers


def test_label_key_normalises_case_diacritics_breaks_and_punctuation():
    assert label_key("Tổng số\nĐẢNG   VIÊN (của đảng bộ)") == "tong so dang vien cua dang bo"
    assert label_key(unicodedata.normalize("NFD", "Đã thành lập")) == "da thanh lap"
    assert label_key("T/M BAN THƯỜNG VỤ") == "t m ban thuong vu"
    assert label_key(None) == ""


@pytest.mark.parametrize("idx,letters", [(0, "A"), (25, "Z"), (26, "AA"), (27, "AB"), (701, "ZZ"), (702, "AAA")])
def test_column_letter(idx, letters):
    assert column_letter(idx) == letters


def test_cell_ref():
    assert cell_ref(11, 6) == "G12"
    assert cell_ref(0, 0) == "A1"


# ---------------------------------------------------------------- header shapes


def test_canonical_two_row_template():
    rows, merged = canonical_grid()
    s = sheet(rows, merged)
    layout = find_layout(s)
    assert layout is not None
    assert layout.header_rows == [7, 8]
    assert layout.columns == CANONICAL
    assert layout.extra_columns == []
    assert layout.data_rows == [10, 11, 12]
    assert layout.totals_row == 13
    assert missing_required(layout) == []
    assert layout.title_lines[0] == "TỈNH ỦY GIA LAI ĐẢNG CỘNG SẢN VIỆT NAM"
    assert "HUYỆN ỦY CHƯ PĂH" in layout.title_lines
    assert "(Số liệu tính đến ngày 30/6/2016)" in layout.title_lines


def test_two_row_header_without_merge_information():
    # Some readers lose merges: the group label sits alone in its first column.
    rows, _ = canonical_grid()
    layout = find_layout(sheet(rows))
    assert layout.columns == CANONICAL
    assert layout.data_rows == [10, 11, 12]


def test_group_label_decides_between_unit_and_cell_members():
    rows, merged = canonical_grid()
    rows[7][4] = "Số đảng viên"  # unit total labelled like the cell's sub column
    layout = find_layout(sheet(rows, merged))
    assert layout.columns["total_members"] == 4
    assert layout.columns["cell_members"] == 9


def test_one_row_header():
    s = sheet([["BÁO CÁO"], ONE_ROW, *units(2)])
    layout = find_layout(s)
    assert layout.header_rows == [1]
    assert layout.columns == CANONICAL
    assert layout.data_rows == [2, 3]
    assert layout.totals_row is None
    assert layout.title_lines == ["BÁO CÁO"]


def test_reordered_columns():
    order = [2, 0, 9, 4, 6, 5, 10, 7, 8, 3, 1]
    header = [ONE_ROW[i] for i in order]
    body = [[u[i] for i in order] for u in units(2)]
    layout = find_layout(sheet([header, *body]))
    assert layout.columns == {FIELDS[i]: pos for pos, i in enumerate(order)}
    assert layout.data_rows == [1, 2]


def test_no_diacritics_abbreviated_upper_case_and_line_breaks():
    header = ["TT", "Ma DVHC", "TEN DON VI", "Loai", "Tong so\nDV", "Du DK", "Da TL CBCQ", "Ngay TL",
              "Can cu", "So DV chi bo co quan", "GHI CHU"]
    layout = find_layout(sheet([header, *units(1)]))
    assert layout.columns == CANONICAL


def test_abbreviated_header_in_upper_case_with_diacritics():
    header = ["SỐ TT", "MÃ XÃ", "TÊN\nĐƠN VỊ", "LOẠI", "TỔNG SỐ ĐV", "ĐỦ ĐK", "ĐÃ TL",
              "THỜI ĐIỂM\nTHÀNH LẬP", "THEO HƯỚNG DẪN", "SỐ ĐV CHI BỘ", "GHI CHÚ"]
    layout = find_layout(sheet([header, *units(1)]))
    assert layout.columns == CANONICAL


def test_extra_columns_are_noted_with_their_label():
    header = ONE_ROW[:5] + ["Dân số"] + ONE_ROW[5:] + ["Điện thoại liên hệ"]
    body = [u[:5] + [5000] + u[5:] + ["0269"] for u in units(2)]
    layout = find_layout(sheet([header, *body]))
    assert layout.extra_columns == [(5, "Dân số"), (12, "Điện thoại liên hệ")]
    assert layout.columns["total_members"] == 4
    assert layout.columns["eligible"] == 6
    assert layout.columns["note"] == 11


def test_header_starting_in_column_c_after_many_title_rows():
    rows, merged = canonical_grid()
    rows = [["Ghi chú cho người nhập"]] * 3 + shift(rows, 2)
    merged = [((r0 + 3, c0 + 2), (r1 + 3, c1 + 2)) for (r0, c0), (r1, c1) in merged]
    layout = find_layout(sheet(rows, merged))
    assert layout.columns == {f: c + 2 for f, c in CANONICAL.items()}
    assert layout.header_rows == [10, 11]
    assert layout.data_rows == [13, 14, 15]
    assert layout.totals_row == 16


def test_number_row_of_plain_integers_is_skipped():
    s = sheet([ONE_ROW, list(range(1, 12)), *units(2)])
    layout = find_layout(s)
    assert layout.data_rows == [2, 3]


def test_number_row_in_parentheses_is_skipped_in_one_row_header():
    layout = find_layout(sheet([ONE_ROW, NUMBERS, *units(2)]))
    assert layout.header_rows == [0]
    assert layout.data_rows == [2, 3]


def test_missing_required_column_is_reported():
    header = [h for i, h in enumerate(ONE_ROW) if i != 8]  # no "Căn cứ thành lập"
    body = [[v for i, v in enumerate(u) if i != 8] for u in units(2)]
    layout = find_layout(sheet([header, *body]))
    assert layout is not None
    assert "basis" not in layout.columns
    assert missing_required(layout) == ["basis"]
    assert set(missing_required(layout)) <= set(REQUIRED_FIELDS)


def test_sheet_without_a_table_has_no_layout():
    s = sheet([["Hướng dẫn điền báo cáo"], ["Ghi rõ số liệu theo từng xã"], [1, 2, 3], ["Tổng cộng", None, 5]])
    assert find_layout(s) is None
    assert find_layout(sheet([])) is None


def test_name_column_plus_two_fields_is_the_minimum():
    assert find_layout(sheet([["Tên đơn vị", "Ghi chú", "Dân số"], ["Xã A", "", 5]])) is None
    layout = find_layout(sheet([["Tên đơn vị", "Ghi chú", "Tổng số đảng viên"], ["Xã A", "", 5]]))
    assert layout is not None and layout.data_rows == [1]


# ---------------------------------------------------------------- body


def test_blank_rows_inside_the_table_are_skipped():
    body = [unit(1), [], [None] * 11, unit(2), ["", " ", "\xa0"], unit(3), list(TOTALS)] + SIGNATURE
    rows, merged = canonical_grid(body)
    layout = find_layout(sheet(rows, merged))
    assert layout.data_rows == [10, 13, 15]
    assert layout.totals_row == 16


@pytest.mark.parametrize("label", ["Tổng cộng", "TỔNG CỘNG", "Cộng", "Tổng số", "Toàn huyện", "Tổng", "Tong cong:",
                                   "Tổng cộng toàn huyện"])
def test_totals_row_variants_in_name_column(label):
    body = units(2) + [[None, None, label, None, 201]] + SIGNATURE
    rows, merged = canonical_grid(body)
    layout = find_layout(sheet(rows, merged))
    assert layout.totals_row == 12
    assert layout.data_rows == [10, 11]


def test_totals_row_in_stt_column_and_first_in_table():
    body = [["Cộng", None, None, None, 201]] + units(2)
    rows, merged = canonical_grid(body)
    layout = find_layout(sheet(rows, merged))
    assert layout.totals_row == 10
    assert layout.data_rows == [11, 12]


def test_totals_row_text_merged_from_column_a():
    rows = [ONE_ROW, *units(2), ["TỔNG CỘNG", None, None, None, 201]]
    layout = find_layout(sheet(rows, [((3, 0), (3, 3))]))
    assert layout.totals_row == 3
    assert layout.data_rows == [1, 2]


@pytest.mark.parametrize(
    "signature",
    [
        [[None, "Người lập biểu"]],
        [[None, None, None, None, None, None, None, "T/M BAN THƯỜNG VỤ"]],
        [[None, None, None, None, None, None, None, "TM. BAN THƯỜNG VỤ"]],
        [[None, "NGƯỜI LẬP"], [None, "(Ký, ghi rõ họ tên)"]],
        [[None, None, "Nơi nhận:"], [None, None, "- Ban Tổ chức Tỉnh ủy"]],
        [[None, None, None, None, None, None, None, "PHÓ BÍ THƯ"]],
        [[None, None, None, None, None, None, None, "Chư Păh, ngày 30 tháng 6 năm 2016"]],
        [[None, None, None, None, None, None, None, "Chư Păh, ngày …  tháng … năm …"]],
        [[None, None, "Xác nhận của Ban Thường vụ"]],
    ],
)
def test_signature_block_ends_the_table(signature):
    body = units(2) + [list(TOTALS)] + signature + [[None, "Nguyễn Văn A", None, None, None, None, None, "Trần B"]]
    rows, merged = canonical_grid(body)
    layout = find_layout(sheet(rows, merged))
    assert layout.data_rows == [10, 11]
    assert layout.totals_row == 12


def test_signature_without_totals_row_and_without_blank_line():
    body = units(2) + [[None, "Người lập biểu", None, None, None, None, None, "T/M BAN THƯỜNG VỤ"],
                       [None, "Lê Văn C", None, None, None, None, None, "Phạm D"]]
    rows, merged = canonical_grid(body)
    layout = find_layout(sheet(rows, merged))
    assert layout.data_rows == [10, 11]
    assert layout.totals_row is None


def test_unit_row_with_dated_note_is_not_a_signature():
    row = unit(2)
    row[10] = "Thành lập ngày 12 tháng 3 năm 2015, xác nhận lại"
    rows, merged = canonical_grid([unit(1), row, unit(3)])
    layout = find_layout(sheet(rows, merged))
    assert layout.data_rows == [10, 11, 12]


def test_row_with_name_but_no_numbers_is_still_data():
    rows, merged = canonical_grid([unit(1), [None, None, "Xã Ia Ka"], unit(3), list(TOTALS)])
    layout = find_layout(sheet(rows, merged))
    assert layout.data_rows == [10, 11, 12]


def test_footnote_after_two_blank_rows_ends_the_table():
    rows = [ONE_ROW, *units(2), [], [], ["Ghi chú: cột (6) đánh dấu x nếu đủ điều kiện"]]
    layout = find_layout(sheet(rows))
    assert layout.data_rows == [1, 2]


def test_units_continue_after_two_blank_rows():
    rows = [ONE_ROW, *units(2), [], [], unit(3)]
    layout = find_layout(sheet(rows))
    assert layout.data_rows == [1, 2, 5]


def test_text_after_totals_row_ends_the_table():
    rows = [ONE_ROW, *units(2), [None, None, "Tổng cộng", None, 201], ["* Số liệu do Ban Tổ chức Huyện ủy tổng hợp"]]
    layout = find_layout(sheet(rows))
    assert layout.data_rows == [1, 2]
    assert layout.totals_row == 3


def test_data_rows_never_include_totals_or_signature_rows():
    rows, merged = canonical_grid()
    s = sheet(rows, merged)
    layout = find_layout(s)
    names = [values(layout, s, r, "unit_name") for r in layout.data_rows]
    assert names == ["Xã A", "Xã B", "Xã C"]
    assert layout.totals_row not in layout.data_rows


# ---------------------------------------------------------------- choosing the sheet


def test_instructions_sheet_first_is_passed_over():
    instructions = sheet([["HƯỚNG DẪN"], ["Cột Tên đơn vị: ghi tên xã"], ["Cột Ghi chú: ghi nội dung khác"]],
                         name="Huong dan")
    rows, merged = canonical_grid()
    data = sheet(rows, merged, name="Bao cao")
    chosen = choose_sheet([instructions, data])
    assert chosen is not None
    assert chosen[0].name == "Bao cao"
    assert chosen[1].data_rows == [10, 11, 12]


def test_sheet_with_rows_beats_an_empty_template_copy():
    empty_rows, empty_merged = canonical_grid([list(TOTALS)] + SIGNATURE)
    rows, merged = canonical_grid()
    chosen = choose_sheet([sheet(empty_rows, empty_merged, "Mau"), sheet(rows, merged, "Chu Pah")])
    assert chosen[0].name == "Chu Pah"


def test_choose_sheet_none_without_any_table():
    assert choose_sheet([sheet([["Ghi chú"]], name="A"), sheet([], name="B")]) is None


def test_blank_template_alone_is_returned_without_rows():
    rows, merged = canonical_grid([list(TOTALS)] + SIGNATURE)
    chosen = choose_sheet([sheet(rows, merged)])
    assert chosen is not None and chosen[1].data_rows == []


def test_subtotals_by_type_are_not_units_and_the_grand_total_is_kept():
    body = units(2) + [[None, None, "Cộng xã", None, 201], unit(3, "Phường X"),
                       [None, None, "Cộng phường", None, 102], list(TOTALS)] + SIGNATURE
    rows, merged = canonical_grid(body)
    layout = find_layout(sheet(rows, merged))
    assert layout.data_rows == [10, 11, 13]
    assert layout.totals_row == 15


def test_large_sheet_is_fast():
    import time

    rows, merged = canonical_grid(units(20) * 150 + [list(TOTALS)] + SIGNATURE)
    start = time.perf_counter()
    layout = find_layout(sheet(rows, merged))
    assert len(layout.data_rows) == 3000
    assert time.perf_counter() - start < 2.0


def test_formulas_without_value_finds_only_formula_cells_lacking_a_cached_value():
    from pipeline.ingest.read import formulas_without_value

    xml = (
        b'<sheetData><row r="1"><c r="A1"><f>SUM(B1)</f></c><c\nr="B1" t="n"><f t="shared" si="0"/></c>'
        b'<c r="C1"><f>1</f><v>1</v></c><c r="D1"><f>2</f><v></v></c><c r="E1" s="1"/><c r="F1"><v>3</v></c>'
        b'<c r="G1" t="inlineStr"><is><t>f</t></is></c></row></sheetData>'
    )
    assert formulas_without_value(xml) == ["A1", "B1", "D1"]
    assert formulas_without_value(b'<sheetData><row r="1"><c r="A1"><v>1</v></c></row></sheetData>') == []


def _every_candidate(s: Sheet):
    """The header search without its pruning: every row as a one-row and as a two-row header."""
    from pipeline.ingest import layout

    rows = s.rows
    limit = min(len(rows), layout.HEADER_SEARCH_ROWS)
    width = max((len(rows[r]) for r in range(min(len(rows), limit + 1))), default=0)
    merges = layout._Merges(s, limit + 1, width)
    merged_rows = {r for r, _ in merges.at}
    labels = [sum(map(layout._is_label, row)) for row in rows[: limit + 1]]
    best, best_key = None, None
    for r in range(limit):
        tries = [([r], layout._columns_single(rows, r))] if labels[r] >= 3 else []
        if r + 1 < len(rows) and labels[r + 1] and (labels[r] or r in merged_rows):
            if not layout._row_is_data_like(rows[r + 1]):
                tries.append(([r, r + 1], layout._columns_pair(rows, merges, r, width)))
        for header_rows, columns in tries:
            if len(columns) < 3:
                continue
            mapping, quality = layout._assign(columns)
            if layout._acceptable(mapping):
                key = (len(mapping), round(sum(quality.values()), 6), -len(header_rows), -r)
                if best_key is None or key > best_key:
                    best, best_key = (header_rows, columns, mapping, quality), key
    return best


def _fixture_sheets() -> list[Sheet]:
    from pathlib import Path

    from pipeline.ingest.guards import screen_bytes
    from pipeline.ingest.parse import decode_sheets
    from pipeline.ingest.read import read_workbook

    out = []
    for path in sorted((Path(__file__).parent / "fixtures" / "returns").iterdir()):
        data, parts = path.read_bytes(), {}
        fmt, refusal = screen_bytes(data, path.name, parts=parts)
        if refusal is None:
            sheets = read_workbook(data, fmt, 100_000, 1_000, parts)
            decode_sheets(sheets, data if fmt in ("xlsx", "xlsm") else None, parts)
            out += sheets
    return out


def test_pruned_header_search_finds_what_trying_every_row_finds():
    from pipeline.ingest.layout import _find_header

    grids = [canonical_grid(), canonical_grid(numbers=False), (shift(canonical_grid()[0], 2), [])]
    sheets = [sheet(rows, merged) for rows, merged in grids] + _fixture_sheets()
    assert len(sheets) > 30
    for s in sheets:
        assert _find_header(s) == _every_candidate(s), s.name
