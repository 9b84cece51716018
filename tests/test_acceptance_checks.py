"""Acceptance: check every return, keep every version, tell each district exactly what to fix.

A held-out period (tests/scenario.py): seven districts send only a broken file
(every row error, another district's units under their title, a missing
required column, formulas without saved values, corrupt, not a spreadsheet,
empty), three follow a good return with a broken resubmission, seven send a
good return; Office lock files and OS junk lie beside them.
"""

from __future__ import annotations

import duckdb
import openpyxl
import pandas as pd
import pytest

from pipeline import flow
from pipeline.reports import feedback as F
from pipeline.reports import outputs
from tests.conftest import make_settings
from tests.scenario import ROW_ERROR_COLUMNS, build_scenario, expected_province

FILE_LEVEL_CODES = {
    "corrupt": {"file_corrupt", "file_truncated"},
    "not_spreadsheet": {"file_not_spreadsheet"},
    "empty": {"file_empty"},
    "missing_column": {"missing_column"},
    "formulas": {"formula_without_value"},
    "title_other_district": {"district_title_mismatch"},
    "resubmission_formulas": {"formula_without_value"},
    "resubmission_exceed": {"cell_members_exceed_total"},
    "resubmission_missing_unit": {"unit_missing"},
}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("acceptance")
    settings = make_settings(root)
    ctx = flow.make_context(settings)
    sc = build_scenario(settings.raw_dir, ctx.register)
    flow.ingest(ctx, sc.period)
    result = flow.build_warehouse(ctx, [sc.period], run_id="acceptance")
    con = flow.open_published(settings)
    try:
        feedback = outputs.write_period_feedback(con, settings, sc.period)
        overview = outputs.write_overview(con, settings)
        tables = {
            name: con.execute(f"select * from {name} where period = $p", {"p": sc.period}).df()
            for name in ("audit.files", "audit.issues", "marts.district_summary", "marts.province_summary", "core.unit_returns")
        }
    finally:
        con.close()
    return sc, settings, result, tables, feedback, overview


def _files(run) -> pd.DataFrame:
    return run[3]["audit.files"]


def _issues(run) -> pd.DataFrame:
    return run[3]["audit.issues"]


def test_every_broken_file_is_refused_with_an_error_naming_it(run):
    sc = run[0]
    files = _files(run).set_index("file_name")
    issues = _issues(run)
    assert len(sc.broken_files) == 10
    for name, kind in sc.broken_files.items():
        assert files.at[name, "status"] == "refused", (name, kind)
        errors = issues[(issues["file_name"] == name) & (issues["severity"] == "error")]
        assert len(errors) >= 1, name
        # Vietnamese, with a stable code; file-level problems name the file itself.
        assert errors["message"].str.len().gt(10).all()
        if kind in FILE_LEVEL_CODES:
            assert FILE_LEVEL_CODES[kind] & set(errors["code"]), (name, set(errors["code"]))
        if kind in ("corrupt", "not_spreadsheet", "empty"):
            assert errors["message"].str.contains(name, regex=False).any()


def test_lock_files_and_os_junk_are_ignored_without_issues(run):
    sc = run[0]
    files = _files(run).set_index("file_name")
    issues = _issues(run)
    for name in sc.junk_files:
        if name in files.index:
            assert files.at[name, "status"] == "ignored", name
        assert not (issues["file_name"] == name).any(), name


def test_the_accepted_districts_are_exactly_the_ten_good_ones(run):
    sc = run[0]
    files = _files(run)
    in_effect = files[files["status"].isin(["accepted", "accepted_with_warnings"])]
    assert len(sc.good) == 10
    assert sorted(in_effect["district_code"]) == sorted(sc.good)
    assert set(in_effect["file_name"]) == set(sc.good_files)
    units = run[3]["core.unit_returns"]
    assert set(units["district_code"]) == set(sc.good)
    assert len(units) == int(sc.rows["district_code"].isin(sc.good).sum())


def test_earlier_good_returns_stay_in_effect_after_broken_resubmissions(run):
    sc = run[0]
    summary = run[3]["marts.district_summary"].set_index("district_code")
    files = _files(run).set_index("file_name")
    issues = _issues(run)
    good_file = {code: name for name, code in sc.good_files.items()}
    for code in sc.resubmitted:
        assert summary.at[code, "status"] == "accepted"
        assert summary.at[code, "source_file"] == good_file[code]
        later = [n for n, k in sc.broken_files.items() if k.startswith("resubmission") and files.at[n, "district_code"] == code]
        assert len(later) == 1 and files.at[later[0], "modified_at"] > files.at[good_file[code], "modified_at"]
        # The district is told its earlier return still counts.
        kept = issues[(issues["file_name"] == later[0]) & (issues["code"] == "superseded_refused")]
        assert len(kept) == 1 and good_file[code] in kept["message"].iloc[0]


def test_province_figures_are_exact_over_the_good_districts_and_flagged_incomplete(run):
    sc = run[0]
    got = run[3]["marts.province_summary"].set_index("unit_type")
    want = expected_province(sc.rows, sc.good)
    assert set(want.index) <= set(got.index)
    for unit_type, expected in want.iterrows():
        for column, value in expected.items():
            assert got.at[unit_type, column] == value, (unit_type, column, got.at[unit_type, column], value)
    total = got.loc["total"]
    assert total["districts_reported"] == 10 and total["districts_expected"] == 17
    assert not bool(total["is_complete"])


def test_district_statuses(run):
    sc = run[0]
    summary = run[3]["marts.district_summary"].set_index("district_code")["status"]
    assert len(summary) == 17
    for code in sc.good:
        assert summary[code] == "accepted", code
    unreadable = {"corrupt", "not_spreadsheet", "empty", "title_other_district"}
    for code, kind in sc.broken_only.items():
        # A file that cannot be attributed to its sender (unreadable, or showing another
        # district's units) leaves the sender without a return: missing, not refused.
        assert summary[code] == ("missing" if kind in unreadable else "refused"), (code, kind)
    assert set(summary) == {"accepted", "refused", "missing"}


def test_each_row_error_is_reported_with_its_code_at_its_cell(run):
    sc = run[0]
    issues = _issues(run)
    name = next(n for n, k in sc.broken_files.items() if k == "every_row_error")
    mine = issues[issues["file_name"] == name]
    found = set(zip(mine["code"], mine["cell"]))
    assert set(sc.expected_cells) == set(ROW_ERROR_COLUMNS)
    for code, cell in sc.expected_cells.items():
        assert cell.startswith(ROW_ERROR_COLUMNS[code])
        assert (code, cell) in found, (code, cell, sorted(found, key=str))
        message = mine[(mine["code"] == code) & (mine["cell"] == cell)]["message"].iloc[0]
        assert message.startswith(f"Ô {cell}:"), message
    missing = mine[mine["code"] == "unit_missing"]
    assert any(f"mã {sc.missing_unit}" in m for m in missing["message"])
    assert (mine["severity"] == "error").sum() >= len(sc.expected_cells) + 1


def test_missing_column_and_formula_refusals_say_which(run):
    sc = run[0]
    issues = _issues(run)
    by_kind = {k: n for n, k in sc.broken_files.items()}
    col = issues[(issues["file_name"] == by_kind["missing_column"]) & (issues["code"] == "missing_column")]
    assert "Số đảng viên chi bộ cơ quan" in col["message"].iloc[0]
    formulas = issues[(issues["file_name"] == by_kind["formulas"]) & (issues["code"] == "formula_without_value")]
    assert {c[0] for c in formulas["cell"]} == set("EFGJ")
    assert formulas["action"].str.contains("lưu lại").all()


def test_one_feedback_workbook_per_problem_file_with_every_issue_and_cell(run):
    sc, settings, _, tables, feedback, overview = run
    files = _files(run)
    issues = _issues(run)
    problem = files[files["sha256"].isin(issues.loc[issues["severity"].isin(["error", "warning"]), "sha256"])]
    assert set(sc.broken_files) <= set(problem["file_name"])
    assert len(feedback) == len(problem)
    assert all(p.parent == settings.feedback_dir / sc.period for p in feedback)
    for f in problem.itertuples():
        path = next(p for p in feedback if p.stem.endswith(f.sha256[:8]))
        ws = openpyxl.load_workbook(path)[F.ISSUE_SHEET]
        table = [r for r in ws.iter_rows(values_only=True) if isinstance(r[0], int)]
        want = issues[issues["sha256"] == f.sha256]
        assert sorted((r[3] or "", r[4]) for r in table) == sorted(
            ("" if pd.isna(c) else c, m) for c, m in zip(want["cell"], want["message"])
        ), f.file_name


def test_marked_copy_highlights_offending_cells_with_comments(run):
    sc, _, _, _, feedback, _ = run
    files = _files(run)
    name = next(n for n, k in sc.broken_files.items() if k == "every_row_error")
    sha = files.loc[files["file_name"] == name, "sha256"].iloc[0]
    wb = openpyxl.load_workbook(next(p for p in feedback if p.stem.endswith(sha[:8])))
    assert wb.sheetnames == [F.ISSUE_SHEET, F.COPY_SHEET]
    copy = wb[F.COPY_SHEET]
    for code, cell in sc.expected_cells.items():
        c = copy[cell]
        assert c.fill.fill_type == "solid" and c.fill.fgColor.rgb.endswith("FF8080"), (code, cell)
        assert c.comment is not None and f"Ô {cell}:" in c.comment.text, (code, cell)
    # An untouched cell keeps no mark.
    assert copy["C11"].comment is None


def test_overview_workbook_lists_every_district(run):
    sc, _, _, tables, _, overview = run
    assert overview.exists()
    ws = openpyxl.load_workbook(overview)[F.OVERVIEW_SHEET]
    rows = [r for r in ws.iter_rows(min_row=4, values_only=True) if r[1]]
    assert len(rows) == 17
    labels = {r[1]: r[3] for r in rows}
    summary = tables["marts.district_summary"].set_index("district_code")["status"]
    assert all(labels[code] == F.status_label(status) for code, status in summary.items())


def test_workbooks_made_from_the_same_inputs_are_not_written_again(run):
    sc, settings, _, _, feedback, overview = run
    before = {p: p.stat().st_mtime_ns for p in [*feedback, overview]}
    con = flow.open_published(settings)
    try:
        assert outputs.write_period_feedback(con, settings, sc.period) == []
        assert outputs.write_overview(con, settings) is None
        assert {p: p.stat().st_mtime_ns for p in before} == before
        # A workbook that is not what this code made from these inputs (replaced by hand here) is.
        victim = feedback[0]
        openpyxl.Workbook().save(victim)
        assert outputs.write_period_feedback(con, settings, sc.period) == [victim]
        assert openpyxl.load_workbook(victim).sheetnames[0] == F.ISSUE_SHEET
        assert sorted(outputs.write_period_feedback(con, settings, sc.period, force=True)) == sorted(feedback)
        assert outputs.write_overview(con, settings, force=True) == overview
    finally:
        con.close()


def test_warehouse_checks_flag_incompleteness_and_refusals(run):
    checks = run[2].check_results
    assert [ok for _, ok, _ in checks["complete"]] == [False]
    assert [ok for _, ok, _ in checks["no_refusals"]] == [False]
    assert [ok for _, ok, _ in checks["province_equals_districts"]] == [True]
    assert [ok for _, ok, _ in checks["units_match_register"]] == [True]


def test_cli_run_exits_0_and_asset_checks_warn(tmp_path, monkeypatch):
    """The CLI path (`pipeline run` → Dagster job): exit 0; 'complete' and 'no_refusals' fail as WARN."""
    import dagster as dg

    from pipeline.cli import main
    from pipeline.register import load_register
    from tests.conftest import ALIASES, REGISTER

    settings = make_settings(tmp_path)
    sc = build_scenario(settings.raw_dir, load_register(REGISTER, ALIASES))
    home = tmp_path / "dagster_home"
    monkeypatch.setenv("PIPELINE_RAW_DIR", str(settings.raw_dir))
    monkeypatch.setenv("PIPELINE_WAREHOUSE", str(settings.warehouse))
    monkeypatch.setenv("PIPELINE_REGISTER", str(REGISTER))
    monkeypatch.setenv("PIPELINE_ALIASES", str(ALIASES))
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    # The PDF of the province report (LibreOffice) is not under test here and costs most of the run.
    monkeypatch.setattr("pipeline.reports.pdf.soffice_path", lambda: None)
    assert main(["run", "--quiet"]) == 0

    con = duckdb.connect(str(settings.warehouse), read_only=True)
    try:
        total = con.execute("select * from marts.province_summary where unit_type = 'total'").df().iloc[0]
        refused = con.execute("select count(*) from audit.files where status = 'refused'").fetchone()[0]
    finally:
        con.close()
    assert total["districts_reported"] == 10 and not bool(total["is_complete"])
    assert refused == len(sc.broken_files)
    assert (settings.feedback_dir / "Tinh_hinh_gui_bao_cao.xlsx").exists()
    assert len(list((settings.feedback_dir / sc.period).glob("*.xlsx"))) >= len(sc.broken_files)

    with dg.DagsterInstance.from_config(str(home)) as instance:
        runs = instance.get_runs()
        assert len(runs) == 1 and runs[0].is_success
        records = instance.get_records_for_run(runs[0].run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION).records
        evaluations = {r.event_log_entry.dagster_event.event_specific_data.check_name: r.event_log_entry.dagster_event.event_specific_data for r in records}
    assert evaluations["complete"].passed is False and evaluations["complete"].severity == dg.AssetCheckSeverity.WARN
    assert evaluations["no_refusals"].passed is False and evaluations["no_refusals"].severity == dg.AssetCheckSeverity.WARN
    assert evaluations["province_equals_districts"].passed and evaluations["units_match_register"].passed
    # The run's connections to its logs were closed: SQLite folded its write-ahead logs in.
    assert not list(home.rglob("*.db-wal"))


# --------------------------------------------------------------------------- keeping every version


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """The register, generated rows and the smallest district (one-district runs stay fast)."""
    from pipeline.register import load_register
    from pipeline.sample.generate import build_rows
    from tests.conftest import ALIASES, REGISTER

    register = load_register(REGISTER, ALIASES)
    rows = build_rows(register.units, "2018-06", 7)
    code = rows.groupby("district_code").size().idxmin()
    return register, rows, code


def _write(path, small, period="2018-06", when_days=3):
    import datetime as dt
    import os

    from tests.scenario import _write_good

    register, rows, code = small
    _write_good(path, register, code, rows, period)
    stamp = dt.datetime(2018, 7, 1, 9, 0) + dt.timedelta(days=when_days)
    os.utime(path, (stamp.timestamp(), stamp.timestamp()))
    return path


def _run_once(settings, period="2018-06"):
    ctx = flow.make_context(settings)
    flow.ingest(ctx, period)
    flow.build_warehouse(ctx, [period], run_id="t")
    con = flow.open_published(settings)
    try:
        files = con.execute("select * from audit.files where period = $p order by modified_at, path", {"p": period}).df()
        status = con.execute("select district_code, status, source_file from marts.district_summary where period = $p", {"p": period}).df()
    finally:
        con.close()
    return files, status.set_index("district_code")


def test_a_deleted_raw_file_stays_in_effect_from_the_archive(tmp_path, small):
    settings = make_settings(tmp_path)
    path = _write(settings.raw_dir / "2018-06" / "bao cao.xlsx", small)
    _run_once(settings)
    path.unlink()
    files, status = _run_once(settings)
    code = small[2]
    assert status.at[code, "status"] == "accepted" and status.at[code, "source_file"] == "bao cao.xlsx"
    assert list(files["status"]) == ["accepted"]


def test_an_overwritten_file_refused_keeps_the_older_accepted_version(tmp_path, small):
    from tests.scenario import damage_exceed

    settings = make_settings(tmp_path)
    path = _write(settings.raw_dir / "2018-06" / "bao cao.xlsx", small)
    first_sha = _run_once(settings)[0]["sha256"].iloc[0]
    damage_exceed(path)  # the broken version replaces the good one under the same name, later
    import os

    later = path.stat().st_mtime + 86400 * 5
    os.utime(path, (later, later))
    files, status = _run_once(settings)
    assert len(files) == 2 and files["path"].nunique() == 1
    by_sha = files.set_index("sha256")["status"]
    assert by_sha[first_sha] == "accepted"
    assert (by_sha.drop(first_sha) == "refused").all()
    assert status.at[small[2], "status"] == "accepted"


def test_versions_saved_together_the_workbook_saved_last_is_in_effect(tmp_path, small):
    """Attachments saved at once (or a zip extracted) share their modification time: the time
    each workbook was itself last saved tells the correction from the original."""
    import datetime as dt
    import os

    from tests.scenario import _write_good

    register, rows, code = small
    settings = make_settings(tmp_path)
    folder = settings.raw_dir / "2018-06"
    corrected = rows.copy()
    corrected.loc[corrected["district_code"] == code, "note"] = "Sửa lại ghi chú"
    # By name alone "bao cao.xlsx" would win: it sorts after "bao cao (sua lai).xlsx".
    original = _write_good(folder / "bao cao.xlsx", register, code, rows, "2018-06", saved_at=dt.datetime(2018, 7, 2, 8, 0))
    correction = _write_good(
        folder / "bao cao (sua lai).xlsx", register, code, corrected, "2018-06", saved_at=dt.datetime(2018, 7, 6, 15, 30)
    )
    together = dt.datetime(2018, 7, 10, 9, 0).timestamp()
    for path in (original, correction):
        os.utime(path, (together, together))
    files, status = _run_once(settings)
    by_name = files.set_index("file_name")["status"]
    assert by_name[correction.name] == "accepted" and by_name[original.name] == "superseded"
    assert status.at[code, "source_file"] == correction.name


def test_duplicates_and_superseded_versions(tmp_path, small):
    import os
    import shutil

    settings = make_settings(tmp_path)
    folder = settings.raw_dir / "2018-06"
    first = _write(folder / "lan 1.xlsx", small, when_days=2)
    copy = folder / "lan 1 (1).xlsx"
    shutil.copyfile(first, copy)  # same bytes under another name, saved a little later
    os.utime(copy, (first.stat().st_mtime + 60, first.stat().st_mtime + 60))
    register, rows, code = small
    changed = rows.copy()
    changed.loc[changed["district_code"] == code, "note"] = "Sửa lại ghi chú"
    second = _write(folder / "lan 2.xlsx", (register, changed, code), when_days=6)
    files, status = _run_once(settings)
    by_name = files.set_index("file_name")["status"]
    assert by_name["lan 2.xlsx"] == "accepted"
    assert by_name["lan 1.xlsx"] == "superseded"
    assert by_name["lan 1 (1).xlsx"] == "duplicate"
    assert status.at[code, "source_file"] == second.name
