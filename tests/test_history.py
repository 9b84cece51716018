"""History across periods: two generated periods with known changes between them,
loaded by two runs into one warehouse; marts.unit_changes and marts.province_trend.

The second period is the first one's rows with one cell established, one
dissolved (with a note, so no warning), one unit's members and one cell's
members changed; every other unit is unchanged.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from pipeline.runner import run_pipeline
from pipeline.sample.generate import build_rows
from pipeline.templates.return_workbook import district_identity, write_return
from tests.conftest import REGISTER, make_settings

P1, P2 = "2016-09", "2016-12"
SEED = 909


def write_period(register: pd.DataFrame, rows: pd.DataFrame, period: str, out_dir: Path) -> list[Path]:
    """One canonical return per district from ``rows`` (build_rows' shape)."""
    paths = []
    for code in dict.fromkeys(rows["district_code"]):
        sub = rows[rows["district_code"] == code]
        path = out_dir / f"BC_{code}_{period}.xlsx"
        write_return(path, district=district_identity(register, code), period=period,
                     units=sub[["unit_code", "unit_name", "unit_type"]], rows=sub,
                     preparer="Nguyễn Văn An", signer="Trần Thị Lan")
        paths.append(path)
    return paths


def _counted(rows: pd.DataFrame) -> pd.Series:
    return rows["eligible"].astype(bool) & rows["has_cell"].astype(bool)


@pytest.fixture(scope="module")
def history(tmp_path_factory):
    register = pd.read_csv(REGISTER, dtype=str, keep_default_na=False)
    first = build_rows(register, P1, SEED)
    second = first.copy()
    counted = _counted(first)
    # Picked by property, not by name: the first unit of each kind in register order.
    establish = first.index[first["eligible"].astype(bool) & ~first["has_cell"].astype(bool)][0]
    with_cell = first.index[counted]
    dissolve, cell_grows, members_move = with_cell[0], with_cell[1], with_cell[2]

    second.loc[establish, ["has_cell", "established_on", "basis", "cell_members", "note"]] = (
        True, dt.date(2016, 11, 15), "HD28", 7, None)
    second.loc[dissolve, ["has_cell", "established_on", "basis", "cell_members", "note"]] = (
        False, None, None, None, "Giải thể theo Quyết định số 15-QĐ/HU ngày 20/10/2016")
    second.at[cell_grows, "cell_members"] = int(first.at[cell_grows, "cell_members"]) + 2
    second.at[members_move, "total_members"] = int(first.at[members_move, "total_members"]) + 10

    root = tmp_path_factory.mktemp("history")
    write_period(register, first, P1, root / "raw" / P1)
    write_period(register, second, P2, root / "raw" / P2)
    settings = make_settings(root)
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("DAGSTER_HOME", raising=False)
        # History is about the warehouse; the PDF (LibreOffice) only costs time here.
        mp.setattr("pipeline.reports.pdf.soffice_path", lambda: None)
        # Two nightly runs, one period each: the second must keep the first's period.
        outcomes = [run_pipeline(settings, period=P1, quiet=True), run_pipeline(settings, period=P2, quiet=True)]
    con = duckdb.connect(str(settings.warehouse), read_only=True)
    yield {
        "con": con, "outcomes": outcomes, "first": first, "second": second,
        "codes": {k: first.at[i, "unit_code"] for k, i in
                  dict(establish=establish, dissolve=dissolve, cell_grows=cell_grows, members_move=members_move).items()},
    }
    con.close()


def test_both_runs_succeed_and_the_warehouse_holds_both_periods(history):
    assert all(o.success for o in history["outcomes"])
    periods = history["con"].sql("select distinct period from core.unit_returns order by 1").fetchall()
    assert periods == [(P1,), (P2,)]


def test_explained_dissolution_raises_no_warning(history):
    codes = history["con"].sql(
        "select code from audit.issues where period = ? and severity <> 'info'", params=[P2]).fetchall()
    assert codes == []


def test_unit_changes_name_exactly_the_changed_units(history):
    con, codes = history["con"], history["codes"]
    frame = con.execute("select * from marts.unit_changes where period = ?", [P2]).df().set_index("unit_code")
    assert len(frame) == len(history["second"])
    assert (frame["previous_period"] == P1).all()
    assert frame.at[codes["establish"], "cell_change"] == "cell_established"
    assert frame.at[codes["dissolve"], "cell_change"] == "cell_dissolved"
    assert frame.at[codes["dissolve"], "note"].startswith("Giải thể")
    changed = frame[frame["cell_change"] != "unchanged"]
    assert set(changed.index) == {codes["establish"], codes["dissolve"]}

    assert frame.at[codes["members_move"], "member_change"] == 10
    moved = frame[frame["member_change"] != 0]
    assert list(moved.index) == [codes["members_move"]]

    dissolved_members = int(history["first"].set_index("unit_code").at[codes["dissolve"], "cell_members"])
    assert frame.at[codes["cell_grows"], "cell_member_change"] == 2
    assert frame.at[codes["establish"], "cell_member_change"] == 7
    assert frame.at[codes["dissolve"], "cell_member_change"] == -dissolved_members
    assert set(frame.index[frame["cell_member_change"] != 0]) == {
        codes["cell_grows"], codes["establish"], codes["dissolve"]}
    assert frame.at[codes["establish"], "counted_change"] == 1
    assert frame.at[codes["dissolve"], "counted_change"] == -1


def test_first_period_is_a_first_report(history):
    con = history["con"]
    kinds = con.execute("select distinct cell_change from marts.unit_changes where period = ?", [P1]).fetchall()
    assert kinds == [("first_report",)]


def test_province_trend_reconciles_with_the_rows(history):
    con, first, second = history["con"], history["first"], history["second"]
    trend = con.sql("select * from marts.province_trend order by period").df().set_index("period")
    assert list(trend.index) == [P1, P2]
    for period, rows in ((P1, first), (P2, second)):
        counted = _counted(rows)
        assert trend.at[period, "units_with_cell"] == int(counted.sum())
        assert trend.at[period, "cell_members"] == int(pd.to_numeric(rows.loc[counted, "cell_members"]).sum())
        assert trend.at[period, "total_members"] == int(rows["total_members"].sum())
    row = trend.loc[P2]
    assert row["previous_period"] == P1 and bool(row["comparable"])
    assert row["units_with_cell_change"] == 0  # one established, one dissolved
    assert row["coverage_pct_change"] == 0.0
    assert row["total_members_change"] == 10
    dissolved_members = int(first.set_index("unit_code").at[history["codes"]["dissolve"], "cell_members"])
    assert row["cell_members_change"] == 7 + 2 - dissolved_members
    assert row["cells_hd28_change"] == int((second["basis"] == "HD28").sum() - (first["basis"] == "HD28").sum())
    assert pd.isna(trend.at[P1, "units_with_cell_change"])
    # Every unit reported both times, so the per-unit changes add up to the province's.
    counted_sum, members_sum = con.execute(
        "select sum(counted_change), sum(case when counted or previous_counted then cell_member_change end) "
        "from marts.unit_changes where period = ?", [P2]).fetchone()
    assert counted_sum == row["units_with_cell_change"]
    assert members_sum == row["cell_members_change"]


def test_percent_point_changes_keep_one_decimal(tmp_path):
    """coverage 44.1 -> 51.8 is +7.7 points, not 7.699999999999996."""
    from pipeline.warehouse.build import ensure_schema, refresh_mart

    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    ensure_schema(con)
    con.execute("""create or replace table marts.province_summary as
        select * from (values ('2016-06', 'total', 222, 98, 44.1, 900, 20000, 4.5, 3, 95, 17, 17, true),
                              ('2016-12', 'total', 222, 115, 51.8, 1091, 26053, 4.2, 8, 107, 17, 16, false))
        t(period, unit_type, units, units_with_cell, coverage_pct, cell_members, total_members,
          member_share_pct, cells_hd28, cells_hd10, districts_expected, districts_reported, is_complete)""")
    refresh_mart(con, "province_trend")
    row = con.execute("select coverage_pct_change, member_share_pct_change, comparable from marts.province_trend "
                      "where period = '2016-12'").fetchone()
    assert row == (7.7, -0.3, False)  # 2016-12 is incomplete: not like for like
