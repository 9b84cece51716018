"""Reruns do only the work a change calls for."""

from __future__ import annotations

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

    again = run_pipeline(settings, quiet=True)
    assert again.success and again.unchanged == ["2016-06"]
    assert again.summary.set_index("unit_type").at["total", "units_with_cell"] == 115

    touched = sorted((raw_copy / "2016-06").iterdir())[0]
    os.utime(touched, (touched.stat().st_atime, touched.stat().st_mtime + 60))
    third = run_pipeline(settings, quiet=True)
    assert third.success and third.unchanged == []
