"""PriorRows: what each period's history checks compare with, walking periods in order."""

import pandas as pd

from pipeline.warehouse.load import PriorRows, _history_rows


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


def _walk(stored, periods):
    """Snapshots taken before each period, as the build takes them."""
    prior = PriorRows(stored)
    snapshots = {}
    for p in periods:
        snapshots[p] = prior.snapshot()
        prior.advance(p)
    return prior, snapshots


def test_each_district_is_compared_with_its_own_latest_period():
    stored = pd.concat([_rows("2016-01", "D1", ["u1"]), _rows("2016-01", "D2", ["u2"]), _rows("2016-02", "D1", ["u1"], members=12)])
    prior, snapshots = _walk(stored, ["2016-01", "2016-02", "2016-03"])
    assert snapshots["2016-01"] == {}
    # D2 missed 2016-02: its 2016-01 rows still count; D1 is compared with 2016-02.
    assert snapshots["2016-03"] == {"D1": "2016-02", "D2": "2016-01"}
    previous = prior.rows_for({"2016-03": snapshots["2016-03"]}).set_index("unit_code")
    assert previous.loc["u1", "period"] == "2016-02" and previous.loc["u1", "total_members"] == 12
    assert previous.loc["u2", "period"] == "2016-01"
    assert set(previous["for_period"]) == {"2016-03"}


def test_rows_for_many_periods_at_once_keep_each_periods_own_rows():
    stored = pd.concat([_rows("2016-01", "D1", ["u1"], members=5), _rows("2016-02", "D1", ["u1"], members=7)])
    prior, snapshots = _walk(stored, ["2016-01", "2016-02", "2016-03"])
    both = prior.rows_for({p: snapshots[p] for p in ("2016-02", "2016-03")})
    assert both.set_index("for_period")["total_members"].to_dict() == {"2016-02": 5, "2016-03": 7}


def test_a_period_rebuilt_now_replaces_what_the_warehouse_held():
    prior = PriorRows(_rows("2016-01", "D1", ["u1"], has_cell=True))
    prior.advance("2016-01", _history_rows(_rows("2016-01", "D1", ["u1"], has_cell=False)))
    assert prior.rows_for({"2016-02": prior.snapshot()})["has_cell"].tolist() == [False]


def test_digest_ignores_row_order_and_dtype_but_not_values():
    def digest(rows):
        prior = PriorRows(rows)
        prior.advance("2016-01")
        return prior.digests([prior.snapshot()])[0]

    a = pd.concat([_rows("2016-01", "D1", ["u1", "u2"])])
    b = a.iloc[::-1].astype({"total_members": "float64"})
    assert digest(a) == digest(b)
    assert digest(a) != digest(a.assign(total_members=[10, 11]))
    missing = a.assign(total_members=pd.array([None, 10], dtype="Int64"))
    assert digest(missing) == digest(missing.astype({"total_members": object}))


def test_digest_follows_a_rebuilt_period():
    prior = PriorRows(_rows("2016-01", "D1", ["u1"]))
    prior.advance("2016-01")
    before = prior.digests([prior.snapshot()])[0]
    prior.advance("2016-01", _history_rows(_rows("2016-01", "D1", ["u1"], members=11)))
    assert prior.digests([prior.snapshot()])[0] != before
    assert prior.digests([{}])[0] != before  # nothing to compare with digests as such
