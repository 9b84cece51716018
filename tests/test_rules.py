from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from pipeline.checks import rules as R
from pipeline.checks.catalogue import rules as catalogue
from pipeline.ingest.model import FIELDS, ParsedReturn

UNITS = pd.DataFrame(
    [
        ("627", "Huyện Chư Păh", "23737", "Ia Mơ Nông", "xa"),
        ("627", "Huyện Chư Păh", "23710", "Phú Hòa", "thi_tran"),
        ("628", "Huyện Ia Grai", "23800", "Ia Kha", "thi_tran"),
    ],
    columns=["district_code", "district_name", "unit_code", "unit_name", "unit_type"],
)
DISTRICTS = pd.DataFrame(
    [
        ("627", "Huyện Chư Păh", "Chư Păh", "HUYỆN ỦY CHƯ PĂH", 2),
        ("628", "Huyện Ia Grai", "Ia Grai", "HUYỆN ỦY IA GRAI", 1),
    ],
    columns=["district_code", "district_name", "short_name", "committee_title", "units_expected"],
)
COLUMNS = dict(zip(FIELDS, "ABCDEFGHIJK"))
PERIOD = "2016-06"


def unit_row(excel_row: int, code: str, name: str, **kw) -> dict:
    row = {
        "excel_row": excel_row,
        "stt": str(excel_row - 10),
        "unit_code": code,
        "unit_name": name,
        "unit_type": "xa",
        "total_members": 100,
        "eligible": True,
        "has_cell": True,
        "established_on": date(2012, 3, 1),
        "basis": "HD10",
        "cell_members": 8,
        "note": None,
        "matched_unit_code": code,
        "match_method": "code",
        "code_conflict": False,
    }
    row.update({f"{f}_raw": row[f] for f in FIELDS})
    row.update({f"{f}_error": None for f in FIELDS if f not in ("stt", "note", "unit_name")})
    row.update(kw)
    return row


def frame(rows: list[dict]) -> pd.DataFrame:
    df = pd.DataFrame(rows)
    return df.astype({"total_members": "Int64", "cell_members": "Int64", "eligible": "boolean", "has_cell": "boolean", "code_conflict": "boolean"})


def clean_rows() -> list[dict]:
    return [
        unit_row(11, "23737", "Xã Ia Mơ Nông", unit_type_raw="Xã"),
        unit_row(12, "23710", "Thị trấn Phú Hòa", unit_type="thi_tran", unit_type_raw="Thị trấn", total_members=60, cell_members=5),
    ]


def make_return(rows: list[dict] | None = None, **kw) -> ParsedReturn:
    rows = clean_rows() if rows is None else rows
    df = frame(rows or [unit_row(0, "x", "x")]).iloc[int(not rows) :]
    totals = {
        "total_members": int(df["total_members"].fillna(0).sum()),
        "eligible": int(df["eligible"].fillna(False).sum()),
        "has_cell": int(df["has_cell"].fillna(False).sum()),
        "cell_members": int(df["cell_members"].fillna(0).sum()),
    }
    base = dict(
        file_name="Chu Pah.xlsx",
        sheet="BC",
        columns=dict(COLUMNS),
        rows=df,
        totals=totals,
        totals_row=13,
        district_code="627",
        title_district_code="627",
        filename_district_code="627",
        district_counts={"627": len(rows)},
        as_of=date(2016, 6, 30),
    )
    base.update(kw)
    return ParsedReturn(**base)


def check(parsed: ParsedReturn, **kw):
    return R.check_return(parsed, units=UNITS, districts=DISTRICTS, period=kw.pop("period", PERIOD), **kw)


def codes(issues) -> list[tuple[str, str | None]]:
    return [(i.code, i.cell) for i in issues]


def test_clean_return_has_no_issue():
    assert check(make_return()) == []


def test_registry_codes_are_in_catalogue():
    known = set(catalogue())
    for rule_codes, fn in R.RULES:
        missing = [c for c in rule_codes if c not in known and c != "unit_type_unknown"]
        assert not missing, (fn.__name__, missing)
    assert R.FALLBACK_VALUE_CODE in known


def test_no_rows_means_no_content_issue():
    parsed = make_return(rows=[], district_counts={}, district_code=None)
    assert parsed.rows.empty
    assert check(parsed) == []


# ---------------------------------------------------------------- values


def test_value_errors_name_the_cell_and_value():
    rows = clean_rows()
    rows[0].update(total_members=None, total_members_raw="nhiều", total_members_error="count_not_number")
    rows[1].update(has_cell=None, has_cell_raw="?", has_cell_error="flag_invalid", established_on=None, established_on_raw="32/13/2015", established_on_error="date_invalid")
    issues = check(make_return(rows, totals_row=None))
    got = codes(issues)
    assert ("count_not_number", "E11") in got
    assert ("flag_invalid", "G12") in got
    assert ("date_invalid", "H12") in got
    # The unreadable count is not reported a second time as blank.
    assert ("count_missing", "E11") not in got
    msg = next(i.message for i in issues if i.code == "count_not_number")
    assert "E11" in msg and "nhiều" in msg


def test_unknown_parser_code_falls_back_to_generic_error():
    rows = clean_rows()
    rows[0].update(basis=None, basis_raw="???", basis_error="no_such_code_anywhere")
    issues = check(make_return(rows))
    assert ("value_invalid", "I11") in codes(issues)
    assert R.has_errors(issues)


def test_count_negative():
    rows = clean_rows()
    rows[1].update(cell_members=-3)
    got = codes(check(make_return(rows)))
    assert ("count_negative", "J12") in got


def test_count_negative_not_repeated_when_parser_flagged_it():
    rows = clean_rows()
    rows[1].update(total_members=-3, total_members_raw="-3", total_members_error="count_negative")
    got = codes(check(make_return(rows, totals_row=None)))
    assert got.count(("count_negative", "E12")) == 1


def test_count_missing():
    rows = clean_rows()
    rows[0].update(total_members=None, total_members_raw=None)
    issues = check(make_return(rows, totals_row=None))
    assert ("count_missing", "E11") in codes(issues)
    assert next(i for i in issues if i.code == "count_missing").severity == "error"


# ---------------------------------------------------------------- units


def test_unit_unknown_with_suggestions():
    rows = clean_rows()
    rows.append(unit_row(13, None, "Xã Ia Mo Nong 2", unit_code_raw=None, matched_unit_code=None, match_method=None))
    calls = []

    def suggest(name, district):
        calls.append((name, district))
        return ["Xã Ia Mơ Nông", "Thị trấn Phú Hòa"]

    issues = check(make_return(rows, totals_row=None), suggest=suggest)
    issue = next(i for i in issues if i.code == "unit_unknown")
    assert issue.cell == "C13"
    assert "Có phải: Xã Ia Mơ Nông, Thị trấn Phú Hòa?" in issue.message
    assert "Huyện Chư Păh" in issue.message
    assert calls == [("Xã Ia Mo Nong 2", "627")]


def test_unit_of_another_district_is_unknown_here():
    rows = clean_rows()
    rows.append(unit_row(13, "23800", "Thị trấn Ia Kha", unit_type="thi_tran"))
    issues = check(make_return(rows, totals_row=None))
    assert ("unit_unknown", "C13") in codes(issues)


def test_unit_duplicate_lists_rows():
    rows = clean_rows()
    rows.append(unit_row(14, "23737", "Ia Mơ Nông"))
    issues = check(make_return(rows, totals_row=None))
    dup = [i for i in issues if i.code == "unit_duplicate"]
    assert len(dup) == 1
    assert dup[0].cell == "C14" and "11, 14" in dup[0].message and "Xã Ia Mơ Nông" in dup[0].message


def test_unit_missing():
    issues = check(make_return(clean_rows()[:1], totals_row=None))
    missing = [i for i in issues if i.code == "unit_missing"]
    assert len(missing) == 1 and missing[0].cell is None
    assert "Thị trấn Phú Hòa" in missing[0].message and "23710" in missing[0].message


def test_unit_code_missing_is_info_and_only_when_column_exists():
    rows = clean_rows()
    rows[0].update(unit_code=None, unit_code_raw=None, match_method="name")
    issues = check(make_return(rows))
    note = [i for i in issues if i.code == "unit_code_missing"]
    assert [(i.cell, i.severity) for i in note] == [("B11", "info")]
    assert "23737" in note[0].action
    columns = {k: v for k, v in COLUMNS.items() if k != "unit_code"}
    assert not [i for i in check(make_return(rows, columns=columns)) if i.code == "unit_code_missing"]


def test_unit_code_column_blank_throughout_is_one_note():
    rows = clean_rows()
    for r in rows:
        r.update(unit_code=None, unit_code_raw=None, match_method="name")
    issues = check(make_return(rows))
    assert [(i.code, i.cell, i.severity) for i in issues] == [("unit_codes_missing", "B11", "info")]
    assert "2 dòng" in issues[0].message


def test_unit_code_name_mismatch():
    rows = clean_rows()
    rows[0].update(unit_name="Xã Ia Ka", unit_name_raw="Xã Ia Ka", code_conflict=True)
    issues = check(make_return(rows))
    issue = next(i for i in issues if i.code == "unit_code_name_mismatch")
    assert issue.cell == "B11" and issue.severity == "warning"
    assert "Xã Ia Mơ Nông" in issue.message and "Xã Ia Ka" in issue.message


def test_unit_type_mismatch():
    rows = clean_rows()
    rows[1].update(unit_type="xa", unit_type_raw="Xã")
    issues = check(make_return(rows))
    issue = next(i for i in issues if i.code == "unit_type_mismatch")
    assert issue.cell == "D12" and issue.severity == "warning" and "thị trấn" in issue.message


# ---------------------------------------------------------------- district and period


def test_district_unknown():
    assert ("district_unknown", None) in codes(check(make_return(district_code=None)))
    assert ("district_unknown", None) not in codes(check(make_return()))


def test_district_title_mismatch():
    issues = check(make_return(title_district_code="628"))
    issue = next(i for i in issues if i.code == "district_title_mismatch")
    assert issue.severity == "error" and "Huyện Ia Grai" in issue.message and "Huyện Chư Păh" in issue.message
    assert "district_title_mismatch" not in {i.code for i in check(make_return(title_district_code=None))}


def test_district_mixed():
    issues = check(make_return(district_counts={"627": 2, "628": 1}))
    issue = next(i for i in issues if i.code == "district_mixed")
    assert "Huyện Ia Grai: 1" in issue.message
    assert "district_mixed" not in {i.code for i in check(make_return(district_counts={"627": 2, "628": 0}))}


def test_district_filename_mismatch():
    issues = check(make_return(filename_district_code="628"))
    issue = next(i for i in issues if i.code == "district_filename_mismatch")
    assert issue.severity == "warning" and "Chu Pah.xlsx" in issue.message


@pytest.mark.parametrize(("as_of", "flagged"), [(date(2016, 6, 30), False), (date(2016, 6, 15), False), (date(2016, 5, 31), True), (None, False)])
def test_period_mismatch(as_of, flagged):
    issues = [i for i in check(make_return(as_of=as_of)) if i.code == "period_mismatch"]
    assert bool(issues) == flagged
    if flagged:
        assert "31/05/2016" in issues[0].message and "tháng 6/2016" in issues[0].message


# ---------------------------------------------------------------- the cell


@pytest.mark.parametrize(
    ("field", "code", "cell"),
    [("established_on", "cell_missing_date", "H12"), ("basis", "cell_missing_basis", "I12"), ("cell_members", "cell_missing_members", "J12")],
)
def test_cell_missing_details(field, code, cell):
    rows = clean_rows()
    rows[1].update({field: None, f"{field}_raw": None})
    issues = check(make_return(rows, totals_row=None))
    assert (code, cell) in codes(issues)
    # Without the cell, a blank detail is right.
    rows[1].update(has_cell=False)
    assert code not in {i.code for i in check(make_return(rows, totals_row=None))}


def test_cell_members_exceed_total():
    rows = clean_rows()
    rows[1].update(cell_members=61)
    issues = check(make_return(rows, totals_row=None))
    issue = next(i for i in issues if i.code == "cell_members_exceed_total")
    assert issue.cell == "J12" and "61" in issue.message and "60" in issue.message
    rows[1].update(cell_members=60)
    assert "cell_members_exceed_total" not in {i.code for i in check(make_return(rows, totals_row=None))}


def test_cell_data_without_cell():
    rows = clean_rows()
    rows[1].update(has_cell=False, established_on=None, established_on_raw=None, basis=None, basis_raw=None, cell_members=0)
    assert check(make_return(rows)) == []  # a zero for no cell is fine
    rows[1].update(basis="HD10", basis_raw="HD 10", cell_members=4)
    issue = next(i for i in check(make_return(rows)) if i.code == "cell_data_without_cell")
    assert issue.cell == "I12" and issue.severity == "warning"
    assert "căn cứ thành lập, số đảng viên chi bộ cơ quan" in issue.message


def test_cell_not_eligible():
    rows = clean_rows()
    rows[0].update(eligible=False)
    issue = next(i for i in check(make_return(rows)) if i.code == "cell_not_eligible")
    assert issue.cell == "F11" and issue.severity == "warning"


def test_date_in_future_is_after_period_end():
    rows = clean_rows()
    rows[0].update(established_on=date(2016, 6, 30))
    assert "date_in_future" not in {i.code for i in check(make_return(rows))}
    rows[0].update(established_on=date(2016, 7, 1))
    issue = next(i for i in check(make_return(rows)) if i.code == "date_in_future")
    assert issue.cell == "H11" and "01/07/2016" in issue.message and "30/06/2016" in issue.message


def test_hd28_before_issue():
    rows = clean_rows()
    rows[0].update(basis="HD28", established_on=date(2014, 10, 10))
    assert "hd28_before_issue" not in {i.code for i in check(make_return(rows))}
    rows[0].update(established_on=date(2014, 10, 9))
    assert ("hd28_before_issue", "H11") in codes(check(make_return(rows)))
    rows[0].update(basis="HD10")
    assert "hd28_before_issue" not in {i.code for i in check(make_return(rows))}


# ---------------------------------------------------------------- totals


def test_totals_mismatch_points_at_totals_row():
    parsed = make_return()
    parsed.totals["total_members"] = 150
    parsed.totals["has_cell"] = 1
    issues = check(parsed)
    got = codes(issues)
    assert ("totals_mismatch", "E13") in got and ("totals_mismatch", "G13") in got
    msg = next(i.message for i in issues if i.cell == "E13")
    assert "150" in msg and "160" in msg


def test_totals_accepts_numeric_text_and_skips_absent_cells():
    parsed = make_return()
    parsed.totals = {"total_members": "160", "cell_members": None}
    assert check(parsed) == []


def test_totals_missing_is_info():
    issues = check(make_return(totals_row=None))
    assert [(i.code, i.severity) for i in issues] == [("totals_missing", "info")]


# ---------------------------------------------------------------- history


def previous(**kw) -> pd.DataFrame:
    base = {"unit_code": ["23737", "23710"], "has_cell": [True, True], "total_members": [100, 60], "period": ["2016-05", "2016-05"]}
    base.update(kw)
    return pd.DataFrame(base)


def test_cell_disappeared_unless_explained():
    assert check(make_return(), previous=previous()) == []
    rows = clean_rows()
    rows[1].update(has_cell=False, established_on=None, basis=None, cell_members=0, established_on_raw=None, basis_raw=None)
    issue = next(i for i in check(make_return(rows), previous=previous()) if i.code == "cell_disappeared")
    assert issue.cell == "G12" and "tháng 5/2016" in issue.message
    rows[1].update(note="Giải thể theo QĐ 12")
    assert "cell_disappeared" not in {i.code for i in check(make_return(rows), previous=previous())}


def test_members_jump():
    issues = check(make_return(), previous=previous(total_members=[100, 30]))
    jumps = [i for i in issues if i.code == "members_jump"]
    assert [i.cell for i in jumps] == ["E12"] and "30 → 60" in jumps[0].message
    # Exactly half is still tolerated.
    assert check(make_return(), previous=previous(total_members=[100, 40])) == []


def test_issues_in_sheet_order():
    rows = clean_rows()
    rows[1].update(cell_members=-1)
    rows[0].update(eligible=False)
    issues = check(make_return(rows, district_code="627", title_district_code="628"))
    cells = [i.cell for i in issues]
    assert cells[0] is None
    assert cells.index("F11") < cells.index("J12")


def test_unit_type_of_gso_class_is_not_a_mismatch():
    units = UNITS.assign(gso_unit_type=["thi_tran", "thi_tran", "thi_tran"])
    rows = clean_rows()
    rows[0].update(unit_type="thi_tran", unit_type_raw="Thị trấn")  # register says xa, GSO says town
    issues = R.check_return(make_return(rows), units=units, districts=DISTRICTS, period=PERIOD)
    assert "unit_type_mismatch" not in {i.code for i in issues}


def test_negative_total_is_not_also_exceeded():
    rows = clean_rows()
    rows[1].update(total_members=-60)
    got = {i.code for i in check(make_return(rows, totals_row=None))}
    assert "count_negative" in got and "cell_members_exceed_total" not in got


# ---------------------------------------------------------------- a period's returns at once


def ia_grai_return(**kw) -> ParsedReturn:
    """A 628 return without a unit-code column and without unit_name_raw in its rows."""
    row = unit_row(11, "23800", "Thị trấn Ia Kha", unit_type="thi_tran", unit_type_raw="Thị trấn", total_members=90, cell_members=7)
    del row["unit_name_raw"]
    columns = {k: v for k, v in COLUMNS.items() if k != "unit_code"}
    base = dict(file_name="Ia Grai.xlsx", columns=columns, district_code="628", title_district_code="628",
                filename_district_code="628", district_counts={"628": 1})  # fmt: skip
    base.update(kw)
    return make_return([row], **base)


def mixed_returns() -> list[ParsedReturn]:
    def rows_with(n: int, **kw) -> list[dict]:
        rows = clean_rows()
        rows[n].update(kw)
        return rows

    dup = clean_rows() + [unit_row(14, "23737", "Ia Mơ Nông", cell_members=-2)]
    unknown = clean_rows() + [unit_row(13, None, "Xã Không Có", unit_code_raw=None, matched_unit_code=None, match_method=None)]
    blank_codes = clean_rows()
    for r in blank_codes:
        r.update(unit_code=None, unit_code_raw=None, match_method="name")
    bad_values = rows_with(0, total_members=None, total_members_raw="nhiều", total_members_error="count_not_number")
    bad_values[1].update(basis=None, basis_raw="???", basis_error="no_such_code_anywhere")
    totals_off = make_return()
    totals_off.totals["total_members"] = 150
    text_dates = rows_with(1, established_on="2016-07-02")  # not what the parser gives, but must not leak across returns
    return [
        make_return(),
        make_return(dup, totals_row=None),
        make_return(unknown, district_code=None, title_district_code="628", district_counts={"627": 2, "628": 1}),
        make_return(rows=[], district_counts={}, district_code=None),
        make_return(blank_codes),
        make_return(bad_values, filename_district_code="628", as_of=date(2016, 5, 31)),
        totals_off,
        make_return(rows_with(1, has_cell=False, established_on=date(2017, 1, 1), basis="HD28", basis_raw="HD 28", cell_members=0)),
        make_return(rows_with(0, basis="HD28", established_on=date(2014, 1, 1), eligible=False, unit_type="thi_tran", code_conflict=True)),
        ia_grai_return(),
        make_return(text_dates),
        make_return(rows_with(1, total_members=20, has_cell=False, established_on=None, basis=None, cell_members=None)),
    ]


def test_check_returns_equals_one_return_at_a_time():
    returns = mixed_returns()
    prev = previous(district_code=["627", "627"])
    kw = dict(units=UNITS, districts=DISTRICTS, period=PERIOD, previous=prev, suggest=lambda name, district: ["Xã Ia Mơ Nông"])
    together = R.check_returns(returns, **kw)
    alone = [R.check_return(p, **kw) for p in returns]
    assert together == alone
    # Messages and parameters too (Issue equality leaves params out).
    assert [[(i.message, i.action, i.params) for i in issues] for issues in together] == [
        [(i.message, i.action, i.params) for i in issues] for issues in alone
    ]
    # The mix really is broken in many ways, and the clean return stays clean.
    found = {i.code for issues in together for i in issues}
    assert len(found) >= 20, found
    assert together[0] == [] and together[3] == []
    # Same answer in reverse order: no return's rows leak into another's.
    assert R.check_returns(returns[::-1], **kw) == together[::-1]


def test_check_returns_of_nothing():
    assert R.check_returns([], units=UNITS, districts=DISTRICTS, period=PERIOD) == []


def test_previous_of_all_districts_compares_each_return_with_its_own():
    prev = pd.DataFrame(
        {
            "unit_code": ["23737", "23710", "23800"],
            "has_cell": [True, True, True],
            "total_members": [100, 60, 30],
            # A district's last accepted period may be older than another's.
            "period": ["2016-05", "2016-05", "2016-03"],
            "district_code": ["627", "627", "628"],
        }
    )
    chu_pah = make_return()
    ia_grai = ia_grai_return()
    # 628's file lists a 627 unit (itself an error): 627's history is not 628's to answer for.
    stray = unit_row(12, "23737", "Xã Ia Mơ Nông", total_members=500, has_cell=False, established_on=None, basis=None, cell_members=0)
    del stray["unit_name_raw"]
    ia_grai.rows = pd.concat([ia_grai.rows, frame([stray])], ignore_index=True)
    unknown = make_return(district_code=None)
    got = R.check_returns([chu_pah, ia_grai, unknown], units=UNITS, districts=DISTRICTS, period=PERIOD, previous=prev)
    assert got[0] == []
    jumps = [i for i in got[1] if i.code == "members_jump"]
    assert [i.cell for i in jumps] == ["E11"] and "tháng 3/2016" in jumps[0].message and "30 → 90" in jumps[0].message
    assert not {"cell_disappeared"} & {i.code for i in got[1]}
    assert ("unit_unknown", "C12") in codes(got[1])
    # A return whose district is unknown has no history to compare with.
    assert not {"members_jump", "cell_disappeared"} & {i.code for i in got[2]}
