import pandas as pd

from pipeline.reports.narrative import district_party_name, province_paragraph, unit_phrase
from pipeline.reports.vn_format import pct

HD28_2016 = [
    ("627", "Huyện Chư Păh", "Ia Mơ Nông", "xa"),
    ("632", "Huyện Chư Prông", "Bàu Cạn", "xa"),
    ("632", "Huyện Chư Prông", "Thị trấn Chư Prông", "thi_tran"),
    ("625", "Huyện KBang", "KBang", "thi_tran"),
    ("625", "Huyện KBang", "Đak Hlơ", "xa"),
    ("625", "Huyện KBang", "Kon Pne", "xa"),
    ("637", "Huyện Krông Pa", "Phú Túc", "thi_tran"),
    ("634", "Huyện Đăk Pơ", "Đak Pơ", "thi_tran"),
]


def by_type(counts, *, expected=17, reported=17, hd28=8):
    """marts.province_summary rows from (unit_type, units, units_with_cell, cell_members, total_members)."""
    rows = []
    for unit_type, units, with_cell, members, total in counts:
        rows.append(dict(
            period="2016-06", unit_type=unit_type, units=units, units_eligible=units, units_with_cell=with_cell,
            coverage_pct=pct(with_cell, units), cell_members=members, total_members=total,
            member_share_pct=pct(members, total), cells_hd28=hd28 if unit_type == "total" else 0,
            cells_hd10=with_cell - hd28 if unit_type == "total" else with_cell,
            districts_expected=expected, districts_reported=reported, is_complete=reported == expected,
        ))
    return pd.DataFrame(rows)


PUBLISHED = [("xa", 186, 82, 694, 20000), ("phuong", 24, 24, 282, 3500), ("thi_tran", 12, 9, 115, 2500),
             ("total", 222, 115, 1091, 26000)]


def hd28_frame(rows=HD28_2016):
    return pd.DataFrame(rows, columns=["district_code", "district_name", "unit_name", "unit_type"])


def test_published_figures_read_as_the_board_wrote_them():
    first, second = province_paragraph(by_type(PUBLISHED), hd28_frame(), period="2016-06")
    assert first.startswith("Tính đến ngày 30/6/2016, toàn tỉnh có 115/222 xã, phường, thị trấn đủ điều kiện")
    for piece in ("(đạt 51,8%)", "với 1.091 đảng viên", "(chiếm 4,2% tổng số đảng viên ở xã, phường, thị trấn)",
                  "82 chi bộ cơ quan xã với 694 đảng viên, đạt 44,1%",
                  "24 chi bộ cơ quan phường với 282 đảng viên, đạt 100%",
                  "9 chi bộ cơ quan thị trấn với 115 đảng viên, đạt 75%."):
        assert piece in first
    assert "số liệu của" not in first
    assert second.startswith(
        "Toàn tỉnh hiện có 8 xã, thị trấn thành lập chi bộ cơ quan theo Hướng dẫn 28-HD/BTCTW, "
        "chiếm 3,6% tổng số xã, phường, thị trấn. Trong đó, Đảng bộ huyện KBang có 3 đơn vị "
        "(thị trấn KBang, xã Đak Hlơ, xã Kon Pne), Đảng bộ huyện Chư Păh 1 đơn vị (xã Ia Mơ Nông), "
        "Đảng bộ huyện Chư Prông 2 đơn vị (xã Bàu Cạn, thị trấn Chư Prông)"
    )
    assert "Có 107 chi bộ cơ quan được thành lập theo Hướng dẫn 10-HD/BTCTW." in second


def test_other_period_is_generated_not_copied():
    counts = [("xa", 186, 84, 741, 20500), ("phuong", 24, 24, 300, 3600), ("thi_tran", 12, 9, 127, 2600),
              ("total", 222, 117, 1168, 26700)]
    first, _ = province_paragraph(by_type(counts), hd28_frame(), period="2017-12")
    assert "Tính đến ngày 31/12/2017, toàn tỉnh có 117/222" in first
    assert "(đạt 52,7%) với 1.168 đảng viên (chiếm 4,4%" in first
    assert "84 chi bộ cơ quan xã với 741 đảng viên, đạt 45,2%" in first
    assert "115/222" not in first and "1.091" not in first


def test_types_without_units_or_cells_are_left_out():
    counts = [("xa", 10, 0, 0, 500), ("phuong", 4, 2, 20, 300), ("thi_tran", 0, 0, 0, 0), ("total", 14, 2, 20, 800)]
    first, second = province_paragraph(by_type(counts, hd28=0), hd28_frame([]), period="2016-06")
    assert "toàn tỉnh có 2/14 xã, phường đủ điều kiện" in first
    assert "Trong đó, có 2 chi bộ cơ quan phường với 20 đảng viên, đạt 50%." in first
    assert "chi bộ cơ quan xã" not in first and "thị trấn" not in first
    assert second == "Toàn tỉnh chưa có xã, phường nào thành lập chi bộ cơ quan theo Hướng dẫn 28-HD/BTCTW."


def test_incomplete_period_says_how_many_districts_reported():
    counts = [("xa", 160, 70, 600, 17000), ("phuong", 24, 24, 282, 3500), ("total", 184, 94, 882, 20500)]
    first, _ = province_paragraph(by_type(counts, expected=17, reported=15), hd28_frame(), period="2016-06")
    assert first.startswith("Tính đến ngày 30/6/2016 (số liệu của 15/17 huyện, thị xã, thành phố đã báo cáo), "
                            "toàn tỉnh có 94/184 xã, phường đủ điều kiện")


def test_missing_percentages_are_recomputed_and_zero_members_skip_the_share():
    frame = by_type([("xa", 3, 1, 5, 0), ("total", 3, 1, 5, 0)], hd28=0)
    frame["coverage_pct"] = None
    first, _ = province_paragraph(frame, hd28_frame([]), period="2016-06")
    assert "1/3 xã đủ điều kiện và đã thành lập chi bộ cơ quan (đạt 33,3%) với 5 đảng viên." in first


def test_name_phrases():
    assert district_party_name("Huyện Chư Păh") == "Đảng bộ huyện Chư Păh"
    assert district_party_name("Thành phố  Pleiku") == "Đảng bộ thành phố Pleiku"
    assert district_party_name("Thị xã An Khê") == "Đảng bộ thị xã An Khê"
    assert district_party_name("Chư Sê") == "Đảng bộ Chư Sê"
    assert unit_phrase("Ia Mơ Nông", "xa") == "xã Ia Mơ Nông"
    assert unit_phrase("Thị trấn Phú Túc", "thi_tran") == "thị trấn Phú Túc"
    assert unit_phrase("Yên Đỗ", "phuong") == "phường Yên Đỗ"
    assert unit_phrase("Yên Đỗ", None) == "Yên Đỗ"


def _many_hd28(districts: int, units_each: int) -> pd.DataFrame:
    rows = [(f"{d:03d}", f"Huyện Số {d}", f"Xã {d}-{u}", "xa") for d in range(districts) for u in range(units_each)]
    return hd28_frame(rows)


def test_many_hd28_units_are_counted_per_district_and_left_to_the_annex():
    text = province_paragraph(by_type(PUBLISHED, hd28=72), _many_hd28(12, 6), period="2016-06")[1]
    assert "Trong đó, Đảng bộ huyện Số 0 có 6 đơn vị, Đảng bộ huyện Số 1 6 đơn vị," in text
    assert "Xã 0-1" not in text and "huyện Số 11 6 đơn vị (danh sách tại biểu “Chi bộ HD28”)." in text


def test_hundreds_of_districts_fit_in_one_sentence():
    # A national register: 3,000 units over 600 districts once overflowed the cell (32,767 characters).
    text = province_paragraph(by_type(PUBLISHED, hd28=3000), _many_hd28(600, 5), period="2016-06")[1]
    assert "Các chi bộ này thuộc 600 đảng bộ huyện, thị xã, thành phố; danh sách tại biểu “Chi bộ HD28”." in text
    assert len(text) < 500 and "Huyện Số" not in text
