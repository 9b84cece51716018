"""The committed sample returns for 2016-06 add up to the figures the province published.

Read back with openpyxl directly (not the pipeline's reader) so the sample is
checked independently of the code it is meant to test.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter, defaultdict
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import openpyxl
import pandas as pd
import pytest

from pipeline.sample.generate import build_rows, generate, load_published, name_key

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "data/raw/2016-06"
REGISTER = ROOT / "data/reference/units.csv"
PUBLISHED = json.loads((ROOT / "pipeline/sample/published_2016_06.json").read_text(encoding="utf-8"))
TYPES = {"Xã": "xa", "Phường": "phuong", "Thị trấn": "thi_tran"}


def _read(path: Path) -> dict:
    ws = openpyxl.load_workbook(path)["Báo cáo"]
    grid = [list(r) for r in ws.iter_rows(values_only=True)]
    header = next(i for i, r in enumerate(grid) if r[0] == "STT")
    total = next(i for i, r in enumerate(grid) if r[2] == "Tổng cộng")
    units = [r for r in grid[header + 3 : total] if r[2]]
    return {"title": grid[1][0], "units": units, "totals": grid[total]}


@pytest.fixture(scope="module")
def returns() -> dict[str, dict]:
    return {p.name: _read(p) for p in sorted(SAMPLE.glob("*.xlsx"))}


def _pct(num: int, den: int) -> Decimal:
    return (Decimal(num * 100) / den).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)


def test_one_return_per_district_covering_the_register(returns):
    register = pd.read_csv(REGISTER, dtype=str)
    assert len(returns) == register["district_code"].nunique() == 17
    codes = [u[1] for r in returns.values() for u in r["units"]]
    assert sorted(codes) == sorted(register["unit_code"])


def test_totals_by_type_match_published(returns):
    units, cells, members = Counter(), Counter(), Counter()
    all_members = 0
    for r in returns.values():
        for u in r["units"]:
            t = TYPES[u[3]]
            units[t] += 1
            all_members += u[4]
            if u[5] == "x" and u[6] == "x":
                cells[t] += 1
                members[t] += u[9]
    for t, want in PUBLISHED["by_type"].items():
        assert (units[t], cells[t], members[t]) == (want["units"], want["cells"], want["cell_members"]), t
    assert (sum(units.values()), sum(cells.values()), sum(members.values())) == (222, 115, 1091)
    assert _pct(sum(cells.values()), 222) == Decimal("51.8")
    assert _pct(sum(members.values()), all_members) == Decimal("4.2")


def test_hd28_cells_are_the_published_units(returns):
    found = defaultdict(set)
    for r in returns.values():
        for u in r["units"]:
            if u[8] == "HD 28-HD/BTCTW":
                # Title "HUYỆN ỦY CHƯ PĂH" -> district key; unit name minus its type prefix.
                district = name_key(r["title"].split("ỦY", 1)[1])
                found[district].add(name_key(u[2][len(u[3]) :]))
    expected = {name_key(e["district"]): {name_key(x["name"]) for x in e["units"]} for e in PUBLISHED["hd28_cells"]}
    assert dict(found) == expected
    assert sum(map(len, found.values())) == 8


def test_unit_rows_are_clean_and_plausible(returns):
    for name, r in returns.items():
        for u in r["units"]:
            _, _, _, _, total, eligible, has_cell, day, basis, cell_members, _ = u
            if has_cell == "x":
                assert eligible == "x", name
                assert isinstance(day, dt.datetime) and day.date() <= dt.date(2016, 6, 30)
                assert (day.date() >= dt.date(2014, 10, 10)) == (basis == "HD 28-HD/BTCTW"), (name, u)
                assert 5 <= cell_members <= 15 and cell_members < total - 20
            else:
                assert day is None and basis is None and cell_members is None


def test_declared_totals_equal_row_sums(returns):
    for name, r in returns.items():
        rows = r["units"]
        declared = [r["totals"][c] for c in (4, 5, 6, 9)]
        assert declared == [
            sum(u[4] for u in rows),
            sum(u[5] == "x" for u in rows),
            sum(u[6] == "x" for u in rows),
            sum(u[9] or 0 for u in rows),
        ], name


def test_generator_is_deterministic_and_seed_sensitive():
    register = pd.read_csv(REGISTER, dtype=str)
    published = load_published("2016-06")
    a = build_rows(register, "2016-06", 1, published)
    pd.testing.assert_frame_equal(a, build_rows(register, "2016-06", 1, published))
    assert not a["has_cell"].equals(build_rows(register, "2016-06", 2, published)["has_cell"])


def test_committed_sample_is_what_the_generator_writes(tmp_path):
    register = pd.read_csv(REGISTER, dtype=str)
    paths = generate(register, "2016-06", tmp_path, 20160630, load_published("2016-06"))
    assert sorted(p.name for p in paths) == sorted(p.name for p in SAMPLE.glob("*.xlsx"))
    for p in paths:
        assert p.read_bytes() == (SAMPLE / p.name).read_bytes(), p.name
        # git does not keep mtimes, so the "sent" time is checked on fresh output only.
        sent = dt.datetime.fromtimestamp(p.stat().st_mtime, dt.timezone.utc)
        assert dt.datetime(2016, 7, 1, tzinfo=dt.timezone.utc) <= sent < dt.datetime(2016, 7, 15, tzinfo=dt.timezone.utc)
