import datetime as dt
import math

import pytest

from pipeline.reports.vn_format import fmt_date, fmt_date_long, fmt_int, fmt_pct, pct, period_end, round_half_up


@pytest.mark.parametrize(
    ("value", "expected"),
    [(1091, "1.091"), (0, "0"), (999, "999"), (26000, "26.000"), (1234567, "1.234.567"), (-1091, "-1.091"),
     (1091.0, "1.091"), (None, ""), (math.nan, "")],
)
def test_fmt_int(value, expected):
    assert fmt_int(value) == expected


@pytest.mark.parametrize(
    ("value", "kwargs", "expected"),
    [
        (51.8, {}, "51,8"),
        (100.0, {}, "100,0"),
        (100.0, {"drop_zero": True}, "100"),
        (75.0, {"drop_zero": True}, "75"),
        (44.1, {"drop_zero": True}, "44,1"),
        (4.2, {}, "4,2"),
        (0.0, {"drop_zero": True}, "0"),
        (1234.5, {}, "1.234,5"),
        (44.05, {}, "44,1"),  # half-up, not banker's or binary-float rounding
        (3.6036, {}, "3,6"),
        (None, {}, ""),
        (math.nan, {"drop_zero": True}, ""),
    ],
)
def test_fmt_pct(value, kwargs, expected):
    assert fmt_pct(value, **kwargs) == expected


@pytest.mark.parametrize(
    ("value", "digits", "expected"),
    [(0.05, 1, 0.1), (0.15, 1, 0.2), (0.25, 1, 0.3), (2.675, 2, 2.68), (44.085, 1, 44.1), (-0.05, 1, -0.1), (7, 1, 7.0)],
)
def test_round_half_up(value, digits, expected):
    assert round_half_up(value, digits) == expected


@pytest.mark.parametrize(
    ("num", "den", "expected"),
    [(115, 222, 51.8), (82, 186, 44.1), (24, 24, 100.0), (9, 12, 75.0), (1091, 26000, 4.2), (8, 222, 3.6),
     (1, 8, 12.5), (1, 0, None), (None, 5, None), (3, math.nan, None)],
)
def test_pct(num, den, expected):
    assert pct(num, den) == expected


def test_period_dates():
    assert period_end("2016-06") == dt.date(2016, 6, 30)
    assert period_end("2016-02") == dt.date(2016, 2, 29)
    assert fmt_date(period_end("2016-06")) == "30/6/2016"
    assert fmt_date_long(dt.date(2016, 7, 5)) == "ngày 5 tháng 7 năm 2016"
