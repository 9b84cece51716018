"""The whole path on the bundled sample: Dagster assets → DuckDB → the published figures."""

from __future__ import annotations

import dagster as dg
import duckdb
import pytest

from pipeline.defs.partitions import period_partitions
from pipeline.definitions import build_definitions

# The figures the Board published for 2016-06 (seed article, spec/domain.md).
PUBLISHED = {
    "xa": dict(units=186, units_with_cell=82, coverage_pct=44.1, cell_members=694),
    "phuong": dict(units=24, units_with_cell=24, coverage_pct=100.0, cell_members=282),
    "thi_tran": dict(units=12, units_with_cell=9, coverage_pct=75.0, cell_members=115),
    "total": dict(units=222, units_with_cell=115, coverage_pct=51.8, cell_members=1091, member_share_pct=4.2, cells_hd28=8),
}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Materialise every asset for 2016-06 once, as the UI or CLI would."""
    from tests.conftest import make_settings, SAMPLE_RAW

    settings = make_settings(tmp_path_factory.mktemp("run"), raw_dir=SAMPLE_RAW)
    defs = build_definitions(settings)
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(period_partitions.name, ["2016-06"])
    result = defs.resolve_job_def("refresh_periods").execute_in_process(instance=instance, partition_key="2016-06")
    return settings, result


def _query(settings, sql, params=None):
    con = duckdb.connect(str(settings.warehouse), read_only=True)
    try:
        return con.execute(sql, params or {}).df()
    finally:
        con.close()


def test_run_succeeds_and_materialises_every_asset(built):
    settings, result = built
    assert result.success
    materialised = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events() if e.asset_key}
    assert {"raw_returns", "parsed_returns", "marts/province_summary", "core/unit_returns", "province_report"} <= materialised


def test_golden_province_summary_equals_published_figures(built):
    settings, _ = built
    frame = _query(settings, "select * from marts.province_summary where period = '2016-06'").set_index("unit_type")
    for unit_type, expected in PUBLISHED.items():
        for column, value in expected.items():
            assert frame.at[unit_type, column] == value, (unit_type, column)
    total = frame.loc["total"]
    assert total["districts_reported"] == 17 and total["districts_expected"] == 17
    assert bool(total["is_complete"])


def test_asset_checks_pass_on_the_sample(built):
    _, result = built
    evaluations = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert evaluations == {"province_equals_districts": True, "units_match_register": True, "complete": True, "no_refusals": True}


def test_lineage_points_back_to_file_sheet_and_row(built):
    settings, _ = built
    row = _query(
        settings,
        "select source_file, source_sheet, source_row, basis from core.unit_returns where unit_name = 'Ia Mơ Nông'",
    ).iloc[0]
    assert row["source_file"].endswith(".xlsx") and row["source_sheet"] and row["source_row"] >= 10
    assert row["basis"] == "HD28"


def test_every_file_is_recorded_and_archived(built):
    settings, _ = built
    files = _query(settings, "select * from audit.files")
    assert len(files) == 17 and set(files["status"]) == {"accepted"}
    assert all((settings.archive_dir / p).exists() for p in files["archived_path"])


def test_report_workbook_is_written(built):
    settings, _ = built
    assert (settings.reports_dir / "2016-06" / "Bao_cao_chi_bo_co_quan_2016-06.xlsx").exists()


def test_rerun_is_idempotent_and_skips_unchanged_periods(built):
    from pipeline import flow

    settings, _ = built
    before = _query(settings, "select * from core.unit_returns order by unit_code")
    ctx = flow.make_context(settings)
    result = flow.build_warehouse(ctx, ["2016-06"], run_id="again")
    assert result.skipped == ["2016-06"]
    forced = flow.build_warehouse(ctx, ["2016-06"], run_id="forced", force=True)
    assert [b.period for b in forced.built] == ["2016-06"]
    after = _query(settings, "select * from core.unit_returns order by unit_code")
    assert len(after) == 222
    assert before.drop(columns=[]).equals(after)
