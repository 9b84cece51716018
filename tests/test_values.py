import datetime as dt
import math

import pandas as pd
import pytest

from pipeline.checks.catalogue import rules
from pipeline.ingest.values import (
    fold,
    parse_basis,
    parse_count,
    parse_date,
    parse_flag,
    parse_series,
    parse_unit_type,
    strip_blank,
)

D = dt.date

BLANKS = [None, "", "   ", "\u00a0", " \u00a0\u200b ", "\ufeff", "\t\n", float("nan")]


# ------------------------------------------------------------------ strip_blank


@pytest.mark.parametrize("raw", BLANKS)
def test_strip_blank_blank(raw):
    assert strip_blank(raw) is None


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  Ia Mơ Nông\u00a0", "Ia Mơ Nông"),
        ("\u200bxã\u200b", "xã"),
        ("Ch\u00adP¨h", "Ch\u00adP¨h"),  # TCVN3 "ư" (soft hyphen) must survive
        (25, "25"),
    ],
)
def test_strip_blank_text(raw, expected):
    assert strip_blank(raw) == expected


# ---------------------------------------------------------------------- counts


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (25, 25),
        (0, 0),
        (25.0, 25),
        (12.0, 12),
        (24.999999999999996, 25),  # formula noise Excel displays as 25
        (-3, -3),
        (-3.0, -3),
        ("25", 25),
        (" 25 ", 25),
        ("\u00a025\u00a0", 25),
        ("1.091", 1091),
        ("1,091", 1091),
        ("1 091", 1091),
        ("1\u00a0091", 1091),
        ("1\u202f091", 1091),
        ("1.091.000", 1091000),
        ("12,0", 12),
        ("12.00", 12),
        ("-5", -5),
        ("- 5", -5),
        ("−5", -5),
        ("+7", 7),
        ("007", 7),
        ("25 đv", 25),
        ("25 ĐV", 25),
        ("25 đ/v", 25),
        ("9 đảng viên", 9),
    ],
)
def test_count_ok(raw, expected):
    value, err = parse_count(raw)
    assert (value, err) == (expected, None)
    assert type(value) is int


@pytest.mark.parametrize("raw", [*BLANKS, "-", "–", "—", pd.NA])
def test_count_blank(raw):
    assert parse_count(raw) == (None, None)


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (12.5, "count_not_integer"),
        ("12,5", "count_not_integer"),
        ("12.5", "count_not_integer"),
        ("1.0910", "count_not_integer"),
        ("1.091,5", "count_not_integer"),
        (",5", "count_not_integer"),
        ("abc", "count_not_number"),
        ("25 người và 3", "count_not_number"),
        ("1.2.3", "count_not_number"),
        ("10 91", "count_not_number"),  # a space that is not a thousands group
        ("x", "count_not_number"),
        ("1e3", "count_not_number"),
        (True, "count_not_number"),
        (False, "count_not_number"),
        (D(1900, 1, 25), "count_not_number"),
        (dt.time(12, 0), "count_not_number"),
        (float("inf"), "count_not_number"),
    ],
)
def test_count_errors(raw, code):
    assert parse_count(raw) == (None, code)


# ----------------------------------------------------------------------- flags


@pytest.mark.parametrize(
    "raw",
    ["x", "X", " x ", "có", "Có", "CÓ", "co", "Co", "✓", "✔", "☑", "×", "1", "yes", "Yes", "true", "TRUE",
     "đúng", 1, 1.0, True],
)
def test_flag_true(raw):
    assert parse_flag(raw) == (True, None)


@pytest.mark.parametrize(
    "raw",
    [*BLANKS, "0", "không", "Không", "KHÔNG", "khong", "ko", "-", "–", "—", "no", "No", "false", "chưa", "Chưa",
     0, 0.0, False],
)
def test_flag_false(raw):
    assert parse_flag(raw) == (False, None)


@pytest.mark.parametrize("raw", ["xx", "v", "có?", "đã", "2", 2, 0.5, "?", "✗", "chưa rõ", D(2015, 3, 12)])
def test_flag_invalid(raw):
    assert parse_flag(raw) == (None, "flag_invalid")


# ----------------------------------------------------------------------- dates


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (D(2015, 3, 12), D(2015, 3, 12)),
        (dt.datetime(2015, 3, 12, 10, 30), D(2015, 3, 12)),
        (pd.Timestamp("2015-03-12"), D(2015, 3, 12)),
        (42075, D(2015, 3, 12)),
        (42075.0, D(2015, 3, 12)),
        (42075.75, D(2015, 3, 12)),  # the fraction is a time of day
        ("42075", D(2015, 3, 12)),
        ("12/03/2015", D(2015, 3, 12)),
        ("12/3/2015", D(2015, 3, 12)),
        ("2/3/2015", D(2015, 3, 2)),  # day first, never 3 February
        ("12-03-2015", D(2015, 3, 12)),
        ("12.03.2015", D(2015, 3, 12)),
        (" 12 / 3 / 2015 ", D(2015, 3, 12)),
        ("12/03/15", D(2015, 3, 12)),
        ("12/03/98", D(1998, 3, 12)),
        ("12/03/2015 00:00:00", D(2015, 3, 12)),
        ("ngày 12/3/2015", D(2015, 3, 12)),
        ("ngày 12 tháng 3 năm 2015", D(2015, 3, 12)),
        ("Ngày 12 tháng 03 năm 2015", D(2015, 3, 12)),
        ("ngay 12 thang 3 nam 2015", D(2015, 3, 12)),
        ("12 tháng 3 năm 2015", D(2015, 3, 12)),
        ("2015-03-12", D(2015, 3, 12)),
        ("2015-03-12 00:00:00", D(2015, 3, 12)),
        ("2015/3/12", D(2015, 3, 12)),
        ("29/02/2016", D(2016, 2, 29)),
        ("\u00a012/3/2015\u200b", D(2015, 3, 12)),
    ],
)
def test_date_ok(raw, expected):
    assert parse_date(raw) == (expected, None)


def test_date_epoch_1904():
    # The same day is 1462 days lower in the 1904 system.
    assert parse_date(42075 - 1462, epoch_1904=True) == (D(2015, 3, 12), None)
    assert parse_date(42075, epoch_1904=True) != (D(2015, 3, 12), None)


def test_date_serial_1900_leap_bug():
    from pipeline.ingest import values

    # Excel's nonexistent 29/2/1900 and the days around it, with the lower bound lifted.
    old = values.EARLIEST_DATE
    values.EARLIEST_DATE = D(1900, 1, 1)
    try:
        assert parse_date(1) == (D(1900, 1, 1), None)
        assert parse_date(59) == (D(1900, 2, 28), None)
        assert parse_date(60) == (None, "date_invalid")
        assert parse_date(61) == (D(1900, 3, 1), None)
    finally:
        values.EARLIEST_DATE = old


@pytest.mark.parametrize("raw", [*BLANKS, "-", "–", pd.NA, pd.NaT])
def test_date_blank(raw):
    assert parse_date(raw) == (None, None)


@pytest.mark.parametrize(
    "raw",
    [
        "31/02/2015",
        "29/02/2015",
        "12/13/2015",  # no month 13: we never swap to month first
        "00/03/2015",
        "abc",
        "3/2015",  # month and year only
        "2015",  # a bare year is not a serial of 1905
        2015,
        25,  # a count in a date column
        D(1900, 1, 25),  # a count typed into a date-formatted cell
        D(2150, 1, 1),
        0,
        -5,
        float("inf"),
        True,
        dt.time(12, 0),
        dt.timedelta(days=3),
        "12/3/2015 (QĐ số 5)",
        "ngày 31 tháng 4 năm 2015",
    ],
)
def test_date_invalid(raw):
    assert parse_date(raw) == (None, "date_invalid")


# ----------------------------------------------------------------------- basis


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("HD 28-HD/BTCTW", "HD28"),
        ("HD 10-HD/BTCTW", "HD10"),
        ("HD28", "HD28"),
        ("HD10", "HD10"),
        ("hd 28", "HD28"),
        ("HĐ 28", "HD28"),
        ("HĐ28", "HD28"),
        ("H.D 28", "HD28"),
        ("Hướng dẫn 28", "HD28"),
        ("Hướng dẫn 10", "HD10"),
        ("Hướng dẫn số 10", "HD10"),
        ("Huong dan so 28-HD/BTCTW", "HD28"),
        ("HƯỚNG DẪN SỐ 28-HD/BTCTW", "HD28"),
        ("28-HD/BTCTW", "HD28"),
        ("10-HD/BTCTW", "HD10"),
        ("28/HD-BTCTW", "HD28"),
        ("28", "HD28"),
        (" 10 ", "HD10"),
        ("số 28", "HD28"),
        (28, "HD28"),
        (28.0, "HD28"),
        (10, "HD10"),
        ("Theo HD số 28-HD/BTCTW ngày 10/10/2014", "HD28"),
        ("HD 28 ngày 10/10/2014", "HD28"),
        ("Hướng dẫn số 10-HD/BTCTW\nngày 10/10/2014", "HD10"),
    ],
)
def test_basis_ok(raw, expected):
    assert parse_basis(raw) == (expected, None)


@pytest.mark.parametrize("raw", [*BLANKS, "-", "–"])
def test_basis_blank(raw):
    assert parse_basis(raw) == (None, None)


@pytest.mark.parametrize(
    "raw",
    ["abc", "HD 15", "15", 15, 28.5, "HD 10 và HD 28", "Quyết định 28", "x", True, "HD", "280", "HD 10/10/2014",
     D(2014, 10, 10)],
)
def test_basis_invalid(raw):
    assert parse_basis(raw) == (None, "basis_invalid")


# ------------------------------------------------------------------- unit type


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Xã", "xa"),
        ("xã", "xa"),
        ("XÃ", "xa"),
        ("xa", "xa"),
        ("Phường", "phuong"),
        ("PHƯỜNG", "phuong"),
        ("phuong", "phuong"),
        ("P", "phuong"),
        ("P.", "phuong"),
        ("Thị trấn", "thi_tran"),
        ("Thị Trấn", "thi_tran"),
        ("THỊ TRẤN", "thi_tran"),
        ("thi tran", "thi_tran"),
        ("TT", "thi_tran"),
        ("T.T", "thi_tran"),
        (" Xã\u00a0", "xa"),
        ("Xa\u0303", "xa"),  # decomposed input still folds
    ],
)
def test_unit_type_ok(raw, expected):
    assert parse_unit_type(raw) == (expected, None)


@pytest.mark.parametrize("raw", [*BLANKS, "-"])
def test_unit_type_blank(raw):
    assert parse_unit_type(raw) == (None, None)


@pytest.mark.parametrize("raw", ["Thị xã", "Huyện", "Thành phố", "abc", 1, "X"])
def test_unit_type_unknown(raw):
    assert parse_unit_type(raw) == (None, "unit_type_unknown")


# ------------------------------------------------------------------ catalogue


def test_every_error_code_is_in_catalogue():
    codes = {"count_not_number", "count_not_integer", "flag_invalid", "date_invalid", "basis_invalid",
             "unit_type_unknown"}
    assert codes <= set(rules())
    assert rules()["unit_type_unknown"].severity == "warning"


# ------------------------------------------------------------------ vectorised


def test_parse_series_pandas():
    s = pd.Series([25, "1.091", None, "12,5", float("nan")], dtype=object)
    values, errors = parse_series(s, parse_count)
    assert values == [25, 1091, None, None, None]
    assert errors == [None, None, None, "count_not_integer", None]


def test_parse_series_numeric_dtype_and_kwargs():
    values, errors = parse_series(pd.Series([42075 - 1462, math.nan]), parse_date, epoch_1904=True)
    assert values == [D(2015, 3, 12), None]
    assert errors == [None, None]


def test_fold():
    assert fold("Hướng Dẫn Đảng") == "huong dan dang"


def test_remembered_parsers_answer_as_the_parsers_do():
    from pipeline.ingest.parse import _PARSERS, _remembered

    cells = ["x", "X", "", None, 1, 1.0, True, 0, False, "12", 12.5, -3, "HD10", "Xã", dt.date(2020, 1, 2),
             dt.datetime(2020, 1, 2, 0, 0), "02/01/2020", 43831, float("nan")]  # fmt: skip
    for name, parse in _PARSERS.items():
        for _ in range(2):  # the second pass answers from memory
            for v in cells:
                assert repr(parse(v)) == repr(parse.__wrapped__(v)), (name, v)
    tiny = _remembered(lambda v: (v, None), size=2)
    assert [tiny(v) for v in (1, True, 1.0, 1, "a")] == [(1, None), (True, None), (1.0, None), (1, None), ("a", None)]
    assert type(tiny(True)[0]) is bool and type(tiny(1.0)[0]) is float
