"""Periods prepared together (one worker task) come out exactly as each prepared alone."""

from __future__ import annotations

import pickle
import shutil

import pandas as pd
import pytest
from conftest import make_settings
from scenario import build_scenario

from pipeline import flow
from pipeline.ingest.batch import PERIODS_PER_TASK, _known, jobs_for, periods_per_task
from pipeline.ingest.parse import parse_return
from pipeline.warehouse.load import prepare_content, prepare_contents

PERIODS = ["2021-05", "2021-06", "2021-07"]


@pytest.fixture(scope="module")
def periods(tmp_path_factory, register):
    """Three scenario periods (good, broken and refused returns); 2021-07 also gets a
    2021-05 return again under another name, so its date no longer matches its period."""
    root = tmp_path_factory.mktemp("batch")
    raw = root / "raw"
    for n, period in enumerate(PERIODS):
        build_scenario(raw, register, period=period, seed=40 + n)
    first = sorted((raw / PERIODS[0]).glob("*.xlsx"))[0]
    shutil.copy(first, raw / PERIODS[2] / f"Gui lai {first.name}")
    ctx = flow.make_context(make_settings(root, raw_dir=raw))
    flow.ingest_periods(ctx, PERIODS)
    parsed, items = {}, []
    for period in PERIODS:
        versions = ctx.archive.versions(period)
        jobs = jobs_for(versions)
        for job in jobs:
            if not job.refusal and job.sha256 not in parsed:
                data = (ctx.settings.archive_dir / job.archived_path).read_bytes()
                parsed[job.sha256] = parse_return(data, job.file_name, ctx.matcher, ctx.limits)
        known, todo = _known([j for j in jobs if j.refusal], ctx.cache)
        assert not todo
        # Each period's own copies, named as its files are (what a worker hands over).
        own = {j.sha256: pickle.loads(pickle.dumps(known.get(j.sha256) or parsed[j.sha256])) for j in jobs}
        for job in jobs:
            own[job.sha256].file_name = job.file_name
        items.append((period, versions, own))
    return ctx, items


def _same(a, b):
    assert a.period == b.period
    assert a.issues == b.issues
    assert a.own_issues == b.own_issues
    assert pickle.dumps(a.returns) == pickle.dumps(b.returns)
    assert a.history_shas == b.history_shas
    for name in ("staging", "history_input", "unit_rows"):
        pd.testing.assert_frame_equal(getattr(a, name), getattr(b, name), check_index_type=True)


def test_periods_prepared_together_equal_each_prepared_alone(periods):
    ctx, items = periods
    alone = [prepare_content(period, versions, own, ctx.register, ctx.matcher) for period, versions, own in items]
    together = prepare_contents(items, ctx.register, ctx.matcher)
    assert [c.period for c in together] == PERIODS
    for a, b in zip(together, alone):
        _same(a, b)
    # The resent return is checked against its new period (its date is May's), under its name there.
    [(period, versions, own)] = [item for item in items if item[0] == "2021-07"]
    resent = next(v.sha256 for v in versions if v.file_name.startswith("Gui lai "))
    mismatch = [i for i in together[2].issues[resent] if i.code == "period_mismatch"]
    assert len(mismatch) == 1 and mismatch[0].params["file"].startswith("Gui lai ")
    assert not any(i.code == "period_mismatch" for i in together[0].issues[resent])


def test_a_period_without_unit_rows_among_others(periods):
    ctx, items = periods
    period, versions, own = items[1]
    empty = (period, [v for v in versions if v.sha256 in own and own[v.sha256].rows is None], own)  # unreadable ones only
    together = prepare_contents([items[0], empty, items[2]], ctx.register, ctx.matcher)
    _same(together[1], prepare_content(*empty, ctx.register, ctx.matcher))
    assert together[1].staging.empty and together[1].history_shas == []
    _same(together[2], prepare_content(*items[2], ctx.register, ctx.matcher))


def test_tasks_take_fewer_periods_towards_the_end():
    assert periods_per_task(None, 2) == 1  # how many remain is not known
    sizes, remaining = [], 84
    while remaining:
        size = min(periods_per_task(remaining, 2), remaining)
        sizes.append(size)
        remaining -= size
    assert max(sizes) == PERIODS_PER_TASK and sizes[-1] == 1
    assert sizes == sorted(sizes, reverse=True)


def test_one_schema_trusts_the_parsers_shared_columns_and_compares_the_rest(periods):
    from pipeline.warehouse.load import _one_schema

    _, items = periods
    frames = [p.rows for _, _, own in items for p in own.values() if p.rows is not None and len(p.rows)]
    assert _one_schema(frames)
    retyped = frames[1].copy()
    retyped["total_members"] = retyped["total_members"].astype(object)
    assert not _one_schema([frames[0], retyped])
    assert not _one_schema([frames[0], frames[1].drop(columns=["note"])])
    assert _one_schema([frames[0], frames[1].copy()])
