"""Checks against the previous period: a cell that disappears without a note, a member count that jumps."""

from __future__ import annotations

import datetime as dt
import os

import pytest

from pipeline import flow
from pipeline.register import load_register
from pipeline.sample.generate import build_rows
from pipeline.templates.return_workbook import FIRST_UNIT_ROW, district_identity, write_return
from tests.conftest import ALIASES, REGISTER, make_settings

P1, P2, P3 = "2018-06", "2018-12", "2019-06"


@pytest.fixture(scope="module")
def base():
    register = load_register(REGISTER, ALIASES)
    rows = build_rows(register.units, P1, 11)
    cells = rows[rows["has_cell"] & rows["eligible"]].groupby("district_code").size()
    # Two districts with at least two cells each: one changes, one stays as it was.
    changing, steady = cells[cells >= 2].sort_values(ascending=False, kind="stable").index[:2]
    return register, rows, changing, steady


def _write(raw, register, rows, code, period):
    sub = rows[rows["district_code"] == code]
    path = raw / period / f"{code}.xlsx"
    write_return(path, district=district_identity(register.districts, code), period=period,
                 units=sub[["unit_code", "unit_name", "unit_type"]], rows=sub)
    when = dt.datetime.strptime(period, "%Y-%m") + dt.timedelta(days=35)
    os.utime(path, (when.timestamp(), when.timestamp()))


def _changed(rows, code):
    """The district's rows a period later: one cell gone without a note, one with a note,
    one unit's members doubled without a note, one with a note. Returns rows and Excel rows."""
    rows = rows.copy()
    mine = list(rows.index[rows["district_code"] == code])
    with_cell = [i for i in mine if rows.at[i, "has_cell"] and rows.at[i, "eligible"]]
    gone, gone_noted = with_cell[:2]
    others = [i for i in mine if i not in (gone, gone_noted)]
    jump, jump_noted = others[:2]
    for i, note in ((gone, None), (gone_noted, "Giải thể theo Quyết định số 12-QĐ/HU")):
        rows.at[i, "has_cell"] = False
        rows.at[i, "established_on"] = None
        rows.at[i, "basis"] = None
        rows.at[i, "cell_members"] = None
        rows.at[i, "note"] = note
    for i, note in ((jump, None), (jump_noted, "Sáp nhập thôn, tăng đảng viên")):
        rows.at[i, "total_members"] = int(rows.at[i, "total_members"]) * 2
        rows.at[i, "note"] = note
    excel_row = {i: FIRST_UNIT_ROW + k for k, i in enumerate(mine)}
    return rows, {"gone": excel_row[gone], "gone_noted": excel_row[gone_noted],
                  "jump": excel_row[jump], "jump_noted": excel_row[jump_noted]}


def _load(settings, periods):
    ctx = flow.make_context(settings)
    for p in periods:
        flow.ingest(ctx, p)
    flow.build_warehouse(ctx, periods, run_id="t")
    con = flow.open_published(settings)
    try:
        issues = con.execute("select * from audit.issues").df()
        status = con.execute("select period, district_code, status from marts.district_summary").df()
    finally:
        con.close()
    return issues, status.set_index(["period", "district_code"])["status"]


def test_disappeared_cell_and_member_jump_are_warnings_at_their_cells(tmp_path, base):
    register, rows, changing, steady = base
    settings = make_settings(tmp_path)
    later, where = _changed(rows, changing)
    for code in (changing, steady):
        _write(settings.raw_dir, register, rows, code, P1)
        _write(settings.raw_dir, register, later, code, P2)
    issues, status = _load(settings, [P1, P2])

    mine = issues[(issues["period"] == P2) & (issues["district_code"] == changing)]
    found = set(zip(mine["code"], mine["cell"], mine["severity"]))
    assert ("cell_disappeared", f"G{where['gone']}", "warning") in found
    assert ("members_jump", f"E{where['jump']}", "warning") in found
    # A note explains the change: no question asked.
    assert not any(cell in (f"G{where['gone_noted']}", f"E{where['jump_noted']}") for cell in mine["cell"])
    assert set(mine.loc[mine["severity"] != "info", "code"]) == {"cell_disappeared", "members_jump"}
    message = mine.loc[mine["code"] == "cell_disappeared", "message"].iloc[0]
    assert "tháng 6/2018" in message

    assert status[(P2, changing)] == "accepted_with_warnings"
    assert status[(P2, steady)] == "accepted"
    assert status[(P1, changing)] == "accepted"
    assert not (issues["period"] == P1).any() or set(issues.loc[issues["period"] == P1, "severity"]) <= {"info"}


def test_history_compares_with_the_districts_own_last_accepted_period(tmp_path, base):
    """A district that missed a period is compared with the last return it had accepted."""
    register, rows, changing, steady = base
    settings = make_settings(tmp_path)
    later, where = _changed(rows, changing)
    _write(settings.raw_dir, register, rows, changing, P1)
    _write(settings.raw_dir, register, rows, steady, P1)
    _write(settings.raw_dir, register, rows, steady, P2)  # `changing` sends nothing in P2
    _write(settings.raw_dir, register, later, changing, P3)
    issues, status = _load(settings, [P1, P2, P3])
    mine = issues[(issues["period"] == P3) & (issues["district_code"] == changing)]
    assert ("cell_disappeared", f"G{where['gone']}") in set(zip(mine["code"], mine["cell"]))
    assert status[(P2, changing)] == "missing"
    assert status[(P3, changing)] == "accepted_with_warnings"
