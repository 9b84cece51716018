"""What `pipeline run` prints: the newest periods in full, earlier ones a line each."""

import pandas as pd

from pipeline.config import Settings
from pipeline.runner import RunOutcome


def _summary(periods):
    rows = []
    for n, p in enumerate(periods):
        for t, units in (("xa", 186), ("phuong", 24), ("thi_tran", 12), ("total", 222)):
            rows.append(
                {
                    "period": p, "unit_type": t, "units": units, "units_with_cell": 100 + n, "coverage_pct": 45.0 + n,
                    "cell_members": 1000 + n, "total_members": 20000, "member_share_pct": 5.0, "cells_hd28": 8,
                    "districts_reported": 17, "districts_expected": 17, "is_complete": n != 1,
                }  # fmt: skip
            )
    return pd.DataFrame(rows)


def test_many_periods_print_compactly(tmp_path):
    periods = [f"2016-{m:02d}" for m in range(1, 7)]
    outcome = RunOutcome(
        settings=Settings(raw_dir=tmp_path, warehouse=tmp_path / "w.duckdb", register=tmp_path / "u.csv", aliases=tmp_path / "a.csv"),
        periods=periods, success=True, seconds=1.0, summary=_summary(periods),
    )
    text = outcome.render()
    assert [line for line in text.splitlines() if line.startswith("Period ")] == [
        f"Period {p}: 17/17 districts reported (complete)" for p in periods[-3:]
    ]
    assert "Province totals, 2016-01 to 2016-03:" in text
    older = text.split("Province totals")[1].split("Period ")[0]
    assert "2016-02" in older and "NO" in older and "2016-04" not in older


def test_few_periods_print_in_full(tmp_path):
    outcome = RunOutcome(
        settings=Settings(raw_dir=tmp_path, warehouse=tmp_path / "w.duckdb", register=tmp_path / "u.csv", aliases=tmp_path / "a.csv"),
        periods=["2016-06"], success=True, seconds=1.0, summary=_summary(["2016-06"]),
    )
    text = outcome.render()
    assert "Period 2016-06" in text and "Province totals" not in text and "Toàn tỉnh" in text
