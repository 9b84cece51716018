"""Reruns do only the work a change calls for."""

from __future__ import annotations

import gc
import os
import shutil

import pandas as pd

from pipeline import flow
from pipeline.sample.generate import generate
from tests.conftest import REGISTER, make_settings


def _build(settings, periods):
    ctx = flow.make_context(settings)
    for p in periods:
        flow.ingest(ctx, p)
    return flow.build_warehouse(ctx, periods, run_id="t")


def test_correction_rebuilds_its_period_and_the_next_only(tmp_path):
    register = pd.read_csv(REGISTER, dtype=str)
    settings = make_settings(tmp_path)
    periods = ["2017-01", "2017-02", "2017-03"]
    written = {p: generate(register, p, settings.raw_dir / p, seed=100 + i) for i, p in enumerate(periods)}
    first = _build(settings, periods)
    assert [b.period for b in first.built] == periods

    unchanged = _build(settings, periods)
    assert unchanged.built == [] and unchanged.skipped == periods

    # A district corrects January: new figures, a later file.
    victim = written["2017-01"][0]  # paths come in register order: same district in both
    replacement = generate(register, "2017-01", tmp_path / "scratch", seed=999)[0]
    shutil.copyfile(replacement, victim)
    os.utime(victim, (victim.stat().st_atime, victim.stat().st_mtime + 3600))

    again = _build(settings, periods)
    # January changed; February's history checks compare with January; March is untouched.
    assert [b.period for b in again.built] == ["2017-01", "2017-02"]
    assert again.skipped == ["2017-03"]


def test_cli_run_skips_periods_whose_inputs_did_not_change(tmp_path, raw_copy, monkeypatch):
    from pipeline.runner import run_pipeline

    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    monkeypatch.setattr("pipeline.reports.pdf.soffice_path", lambda: None)
    settings = make_settings(tmp_path, raw_dir=raw_copy)
    first = run_pipeline(settings, quiet=True)
    assert first.success and first.unchanged == []
    assert gc.get_freeze_count() == 0  # frozen for the run only: a long-lived caller still collects

    again = run_pipeline(settings, quiet=True)
    assert again.success and again.unchanged == ["2016-06"]
    assert again.summary.set_index("unit_type").at["total", "units_with_cell"] == 115

    touched = sorted((raw_copy / "2016-06").iterdir())[0]
    os.utime(touched, (touched.stat().st_atime, touched.stat().st_mtime + 60))
    third = run_pipeline(settings, quiet=True)
    assert third.success and third.unchanged == []


def _tables(settings):
    import duckdb

    con = duckdb.connect(str(settings.warehouse), read_only=True)
    try:
        return {
            t: con.execute(f"select * exclude ({skip}) from {t} order by all").fetchall()
            for t, skip in (
                ("audit.files", "first_seen_at"),
                ("audit.issues", "file_name"),
                ("core.unit_returns", "source_file"),
                ("marts.district_summary", "source_file"),
            )
        }
    finally:
        con.close()


def test_periods_prepared_anywhere_give_the_same_warehouse(tmp_path, monkeypatch):
    """A period's content is prepared by the parse step's workers, by the build's workers
    (when the parse step did not), or in the pipeline process: the warehouse is the same."""
    register = pd.read_csv(REGISTER, dtype=str)
    periods = ["2017-01", "2017-02", "2017-03", "2017-04"]
    results = {}
    from_workers = []
    real = flow.prepare_in_parallel
    real_prepared = flow.Context.prepared

    def spy(*args, **kwargs):
        for period, content in real(*args, **kwargs):
            from_workers.append(content is not None)
            yield period, content

    monkeypatch.setattr(flow, "prepare_in_parallel", spy)
    for mode, minimum in (("parse step", 2), ("build workers", 2), ("in process", 10**9)):
        monkeypatch.setattr(flow, "PARALLEL_PREPARE_MIN_PERIODS", minimum)
        monkeypatch.setattr(flow.Context, "prepared", real_prepared)
        settings = make_settings(tmp_path / mode.replace(" ", "_"))
        for i, p in enumerate(periods):  # random figures: every period has history warnings
            generate(register, p, settings.raw_dir / p, seed=300 + i)
        ctx = flow.make_context(settings)
        for p in periods:
            flow.ingest(ctx, p)
        assert flow.parse(ctx, periods).prepared_now == len(periods)
        if mode != "parse step":  # the build finds nothing prepared
            empty = tmp_path / f"nothing prepared {mode}"
            monkeypatch.setattr(flow.Context, "prepared", property(lambda self: flow.ParseCache.at(empty)))
        assert [b.period for b in flow.build_warehouse(ctx, periods, run_id="t").built] == periods
        results[mode] = _tables(settings)
    assert any(row for row in results["in process"]["audit.issues"])
    assert from_workers == [True] * len(periods)  # only the "build workers" run used the build's workers
    assert results["parse step"] == results["in process"]
    assert results["build workers"] == results["in process"]


def test_build_without_worker_processes_prepares_in_process(tmp_path, monkeypatch):
    from pipeline.ingest import batch

    register = pd.read_csv(REGISTER, dtype=str)
    periods = ["2017-01", "2017-02"]
    settings = make_settings(tmp_path)
    for i, p in enumerate(periods):
        generate(register, p, settings.raw_dir / p, seed=500 + i)
    ctx = flow.make_context(settings)
    for p in periods:
        flow.ingest(ctx, p)
    flow.parse(ctx, periods)
    monkeypatch.setattr(flow, "PARALLEL_PREPARE_MIN_PERIODS", 1)
    # Nothing prepared by the parse step: the build would use its own workers.
    monkeypatch.setattr(flow.Context, "prepared", property(lambda self: flow.ParseCache.at(tmp_path / "nothing prepared")))

    def no_pool(*args, **kwargs):
        raise RuntimeError("parse worker processes could not be started")

    monkeypatch.setattr(batch, "_pool", no_pool)
    assert [b.period for b in flow.build_warehouse(ctx, periods, run_id="t").built] == periods


def test_ingest_and_parse_overlapped_equals_one_after_the_other(tmp_path):
    register = pd.read_csv(REGISTER, dtype=str)
    periods = ["2017-01", "2017-02", "2017-03"]
    raw = tmp_path / "raw"
    for i, p in enumerate(periods):
        generate(register, p, raw / p, seed=700 + i)
    (raw / "2017-02" / "~$lock.xlsx").write_bytes(b"junk")  # ignored, yet recorded
    stepwise = flow.make_context(make_settings(tmp_path / "stepwise", raw_dir=raw))
    collected = flow.ingest_periods(stepwise, periods)
    parsed = flow.parse(stepwise, periods)
    overlapped = flow.make_context(make_settings(tmp_path / "overlapped", raw_dir=raw))
    collected_too, parsed_too = flow.ingest_and_parse(overlapped, periods)

    def shape(c):
        return c.files_in_folder, c.new_versions, [(v.path, v.sha256, v.ignored, v.refusal) for v in c.versions]

    assert {p: shape(c) for p, c in collected_too.items()} == {p: shape(c) for p, c in collected.items()}
    assert parsed_too == parsed and parsed.prepared_now == len(periods)
    for p in periods:  # recorded as the manifest says, and prepared under the key the build looks up
        versions = overlapped.archive.versions(p)
        assert versions == collected_too[p].versions
        assert overlapped.prepared.has(flow.prepared_key(p, versions))
    # Nothing new: nothing archived, parsed or prepared again.
    again, parsed_again = flow.ingest_and_parse(overlapped, periods)
    assert all(c.new_versions == 0 for c in again.values())
    assert parsed_again.parsed_now == 0 and parsed_again.prepared_now == 0


def _marts(con) -> dict[str, list]:
    from pipeline.warehouse.build import MARTS

    return {m: con.execute(f"select * from marts.{m} order by all").fetchall() for m in MARTS}


def test_marts_after_a_correction_equal_marts_made_whole(tmp_path):
    """A build refreshes the marts from its earliest period on; the rest must be what a whole refresh gives."""
    import duckdb

    from pipeline.warehouse import build as wh

    register = pd.read_csv(REGISTER, dtype=str)
    settings = make_settings(tmp_path)
    periods = ["2017-01", "2017-02", "2017-03", "2017-04"]
    written = {p: generate(register, p, settings.raw_dir / p, seed=900 + i) for i, p in enumerate(periods)}
    written["2017-03"][1].unlink()  # a district missing in March: its April changes compare with February
    _build(settings, periods)

    # February corrected: new figures for one district; March is rebuilt for its history checks.
    victim = written["2017-02"][0]
    shutil.copyfile(generate(register, "2017-02", tmp_path / "scratch", seed=999)[0], victim)
    os.utime(victim, (victim.stat().st_atime, victim.stat().st_mtime + 3600))
    calls = []
    real = wh.refresh_marts
    try:
        wh.refresh_marts = lambda con, built=None: (calls.append(built), real(con, built))[1]
        assert [b.period for b in _build(settings, periods).built] == ["2017-02", "2017-03"]
    finally:
        wh.refresh_marts = real
    assert calls == [["2017-02", "2017-03"]]  # from February on, not whole

    con = duckdb.connect(str(settings.warehouse), read_only=True)
    refreshed = _marts(con)
    con.close()
    whole = tmp_path / "whole.duckdb"
    shutil.copyfile(settings.warehouse, whole)
    con = duckdb.connect(str(whole))
    wh.refresh_marts(con, None)
    assert _marts(con) == refreshed
    # Not trivially equal: February's rows compare with January, April's skip back over a missing March.
    assert con.execute("select count(*) from marts.unit_changes where period = '2017-02' and previous_period = '2017-01'").fetchone()[0] > 0
    assert con.execute("select count(*) from marts.unit_changes where period = '2017-04' and previous_period = '2017-02'").fetchone()[0] > 0
    con.close()


def test_marts_of_a_new_warehouse_are_made_even_with_nothing_built(tmp_path):
    import duckdb

    from pipeline.warehouse import build as wh

    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    wh.ensure_schema(con)
    wh.refresh_marts(con, [])
    assert all(rows == [] for rows in _marts(con).values())
    con.close()


def test_a_changed_period_is_built_from_what_the_parse_step_prepared(tmp_path, monkeypatch):
    register = pd.read_csv(REGISTER, dtype=str)
    settings = make_settings(tmp_path)
    periods = ["2017-01", "2017-02"]
    written = {p: generate(register, p, settings.raw_dir / p, seed=40 + i) for i, p in enumerate(periods)}
    ctx = flow.make_context(settings)
    flow.ingest_and_parse(ctx, periods)
    flow.build_warehouse(ctx, periods, run_id="t")

    victim = written["2017-02"][0]
    shutil.copyfile(generate(register, "2017-02", tmp_path / "scratch", seed=999)[0], victim)
    os.utime(victim, (victim.stat().st_atime, victim.stat().st_mtime + 3600))
    assert flow.ingest_and_parse(ctx, ["2017-02"])[1].prepared_now == 1

    def not_again(*args, **kwargs):
        raise AssertionError("prepared again in the build")

    monkeypatch.setattr(flow, "prepare_content", not_again)
    assert [b.period for b in flow.build_warehouse(ctx, ["2017-02"], run_id="t").built] == ["2017-02"]
