"""History: what each period's history checks compare with, walking periods in order."""

import pandas as pd

from pipeline.warehouse.load import History, rows_digest


def _rows(period, district, units, has_cell=True, members=10):
    return pd.DataFrame(
        {
            "period": period,
            "district_code": district,
            "unit_code": units,
            "has_cell": [has_cell] * len(units),
            "total_members": [members] * len(units),
        }
    )


def test_each_district_is_compared_with_its_own_latest_period():
    stored = pd.concat([_rows("2016-01", "D1", ["u1"]), _rows("2016-01", "D2", ["u2"]), _rows("2016-02", "D1", ["u1"], members=12)])
    history = History(stored)
    assert history.previous().empty
    history.advance("2016-01")
    history.advance("2016-02")
    previous = history.previous().set_index("unit_code")
    # D2 missed 2016-02: its 2016-01 rows still count; D1 is compared with 2016-02.
    assert previous.loc["u1", "period"] == "2016-02" and previous.loc["u1", "total_members"] == 12
    assert previous.loc["u2", "period"] == "2016-01"


def test_a_period_rebuilt_now_replaces_what_the_warehouse_held():
    history = History(_rows("2016-01", "D1", ["u1"], has_cell=True))
    history.advance("2016-01", _rows("2016-01", "D1", ["u1"], has_cell=False))
    assert history.previous()["has_cell"].tolist() == [False]


def test_digest_ignores_row_order_and_dtype_but_not_values():
    a = pd.concat([_rows("2016-01", "D1", ["u1", "u2"])])
    b = a.iloc[::-1].astype({"total_members": "float64"})
    assert rows_digest(a) == rows_digest(b)
    assert rows_digest(a) != rows_digest(a.assign(total_members=[10, 11]))
    missing = a.assign(total_members=pd.array([None, 10], dtype="Int64"))
    assert rows_digest(missing) == rows_digest(missing.astype({"total_members": object}))
