"""Returns written the way districts really send them are read right, unaided.

The corpus under tests/fixtures/returns (see tests/fixtures/make_fixtures.py)
has one file per variation, as .xlsx, .xlsm, and .xls/.ods/.xlsx written by
LibreOffice; expected.json holds each file's true figures.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import shutil
from pathlib import Path

import pandas as pd
import pytest

from pipeline import flow
from pipeline.checks.rules import check_return
from pipeline.ingest.parse import parse_return
from pipeline.sample.generate import build_rows, file_name
from pipeline.templates.return_workbook import district_identity, last_day
from tests.conftest import REGISTER, make_settings
from tests.fixtures.variants import VARIATIONS, VARIATIONS_BY_NAME, Variation, expected_units, write_variant

FIXTURES = Path(__file__).parent / "fixtures"
RETURNS = FIXTURES / "returns"
EXPECTED: dict[str, dict] = json.loads((FIXTURES / "expected.json").read_text(encoding="utf-8"))

# Variations the reader does not yet get right, with the reason (owned by pipeline/ingest/text.py).
KNOWN_FAILURES: dict[str, str] = {}


def _allowed_infos(v: Variation) -> set[str]:
    allowed = set()
    if v.extras:
        allowed.add("extra_column")
    if v.codes == "blank":
        allowed |= {"unit_code_missing", "unit_codes_missing"}
    if v.totals is None:
        allowed.add("totals_missing")  # sub-totals by type are not the return's declared totals
    return allowed


def _value(v):
    if v is None or v is pd.NA or (isinstance(v, float) and v != v) or v is pd.NaT:
        return None
    if hasattr(v, "item"):
        v = v.item()
    if isinstance(v, dt.date):
        return v.isoformat()
    return v


def assert_figures(rows: pd.DataFrame, units: dict[str, dict]) -> None:
    got = {r["matched_unit_code"]: r for r in rows.to_dict("records")}
    assert set(got) == set(units), "every unit matched, once, and nothing else"
    for code, want in units.items():
        row = got[code]
        for f in ("total_members", "eligible", "has_cell", "established_on", "basis"):
            assert _value(row[f]) == want[f], (code, f, row[f"{f}_raw"])
        cm = _value(row["cell_members"])
        assert cm == want["cell_members"] if want["has_cell"] else cm in (None, 0), (code, row["cell_members_raw"])


def test_corpus_covers_every_variation_and_format():
    assert {e["variation"] for e in EXPECTED.values()} == set(VARIATIONS_BY_NAME)
    assert {e["format"] for e in EXPECTED.values()} >= {"xlsx", "xlsm", "xls", "ods", "lo_xlsx"}
    assert {p.name for p in RETURNS.iterdir()} == set(EXPECTED)


def _params():
    for name in sorted(EXPECTED):
        reason = KNOWN_FAILURES.get(EXPECTED[name]["variation"])
        yield pytest.param(name, marks=pytest.mark.xfail(reason=reason, strict=True)) if reason else name


@pytest.mark.parametrize("name", list(_params()))
def test_variant_is_read_right(name, register, matcher):
    meta = EXPECTED[name]
    v = VARIATIONS_BY_NAME[meta["variation"]]
    parsed = parse_return((RETURNS / name).read_bytes(), name, matcher)
    issues = list(parsed.issues) + check_return(
        parsed, units=register.units, districts=register.districts, period=meta["period"], suggest=matcher.suggest
    )
    problems = [(i.severity, i.code, i.cell, i.message) for i in issues if i.severity != "info"]
    assert problems == []
    infos = {i.code for i in issues if i.severity == "info"}
    assert infos <= _allowed_infos(v), infos
    assert parsed.district_code == meta["district_code"]
    assert parsed.title_district_code == meta["district_code"]
    assert parsed.as_of == last_day(meta["period"])
    assert_figures(parsed.rows, meta["units"])


# --------------------------------------------------------------------------- end to end

PERIOD_SEEDS = {"2016-06": 606, "2016-12": 1612}


def _truth(units: dict[str, dict], register) -> pd.DataFrame:
    types = dict(zip(register.units["unit_code"], register.units["unit_type"]))
    frame = pd.DataFrame([{"unit_code": c, "unit_type": types[c], **u} for c, u in units.items()])
    frame["with_cell"] = frame["eligible"] & frame["has_cell"]
    frame["cm"] = frame["cell_members"].fillna(0).astype(int).where(frame["with_cell"], 0)
    frame["hd28"] = frame["with_cell"] & (frame["basis"] == "HD28")
    out = {}
    for key, sub in [*frame.groupby("unit_type"), ("total", frame)]:
        out[key] = {
            "units": len(sub),
            "units_with_cell": int(sub["with_cell"].sum()),
            "cell_members": int(sub["cm"].sum()),
            "total_members": int(sub["total_members"].sum()),
            "cells_hd28": int(sub["hd28"].sum()),
        }
    return pd.DataFrame(out).T.sort_index()


def _stamp(path: Path, when: dt.datetime) -> None:
    os.utime(path, (when.timestamp(), when.timestamp()))


def test_two_periods_mixed_variations_end_to_end(tmp_path, register):
    reg_frame = pd.read_csv(REGISTER, dtype=str, keep_default_na=False)
    districts = list(dict.fromkeys(reg_frame["district_code"]))
    raw = tmp_path / "raw"
    truth: dict[str, dict[str, dict]] = {}
    corrections: dict[str, tuple[str, str]] = {}
    for p_i, (period, seed) in enumerate(PERIOD_SEEDS.items()):
        folder = raw / period
        folder.mkdir(parents=True)
        sent = dt.datetime.combine(last_day(period) + dt.timedelta(days=3), dt.time(8))
        rows = build_rows(reg_frame, period, seed)
        units: dict[str, dict] = {}
        covered: dict[str, Path] = {}
        names = random.Random(seed)
        # Committed corpus files of this period: .xls/.ods/.xlsm and LibreOffice .xlsx among them.
        for n, (name, meta) in enumerate(sorted(EXPECTED.items())):
            if meta["period"] != period or meta["variation"] in KNOWN_FAILURES or meta["district_code"] in covered:
                continue
            dest = folder / name.split("_", 1)[1]
            shutil.copyfile(RETURNS / name, dest)
            _stamp(dest, sent + dt.timedelta(minutes=n))
            covered[meta["district_code"]] = dest
            units.update(meta["units"])
        # The other districts, written now in variations taken in turn.
        # Totals formulas get their values only from a program that computes them (see make_fixtures).
        usable = [v for v in VARIATIONS if v.name not in KNOWN_FAILURES and not v.totals_formulas]
        for k, d in enumerate(x for x in districts if x not in covered):
            v = usable[(k * 5 + p_i) % len(usable)]
            sub = rows[rows["district_code"] == d]
            identity = district_identity(reg_frame, d)
            path = write_variant(folder / file_name(names, identity["short_name"], period), sub, identity, period, v)
            _stamp(path, sent + dt.timedelta(hours=1, minutes=k))
            covered[d] = path
            units.update(expected_units(sub))
        # A corrected resubmission: same district, other figures, later file; its figures are the true ones.
        fixed = [d for d in districts if d in covered][p_i * 3 + 1]
        corrected = build_rows(reg_frame, period, seed + 1)
        corrected = corrected[corrected["district_code"] == fixed]
        assert expected_units(corrected) != {c: units[c] for c in expected_units(corrected)}
        v = usable[(p_i * 7 + 3) % len(usable)]
        first = covered[fixed]
        path = write_variant(first.with_name(f"{first.stem} (sua lan 2).xlsx"), corrected,
                             district_identity(reg_frame, fixed), period, v)
        _stamp(path, sent + dt.timedelta(days=2))
        units.update(expected_units(corrected))
        # A duplicate download: the same bytes under "X (1).xlsx", downloaded later.
        other = next(d for d in districts if d != fixed)
        src = covered[other]
        dup = src.with_name(f"{src.stem} (1){src.suffix}")
        shutil.copyfile(src, dup)
        _stamp(dup, sent + dt.timedelta(days=1))
        truth[period] = units
        corrections[period] = (fixed, path.name)

    settings = make_settings(tmp_path, raw_dir=raw)
    ctx = flow.make_context(settings)
    for period in PERIOD_SEEDS:
        flow.ingest(ctx, period)
    result = flow.build_warehouse(ctx, list(PERIOD_SEEDS), run_id="test-variants")
    assert not result.skipped

    con = flow.open_published(settings)
    try:
        errors = con.execute("select file_name, cell, message from audit.issues where severity = 'error'").fetchall()
        assert errors == []
        statuses = dict(con.execute("select status, count(*) from audit.files group by status").fetchall())
        assert "refused" not in statuses, statuses
        assert statuses.get("superseded") == len(PERIOD_SEEDS) and statuses.get("duplicate") == len(PERIOD_SEEDS), statuses
        for period, (district, name) in corrections.items():
            in_effect = con.execute(
                "select source_file from core.district_returns where period = $p and district_code = $d",
                {"p": period, "d": district},
            ).fetchone()
            assert in_effect == (name,)
        for period, units in truth.items():
            assert len(units) == len(register.units)
            got = con.execute(
                """select unit_type, units, units_with_cell, cell_members, total_members, cells_hd28,
                          districts_reported, districts_expected
                   from marts.province_summary where period = $p""",
                {"p": period},
            ).df().set_index("unit_type").sort_index()
            assert (got["districts_reported"] == len(districts)).all()
            want = _truth(units, register)
            pd.testing.assert_frame_equal(
                got[want.columns.tolist()].astype("int64"), want.astype("int64"), check_names=False
            )
    finally:
        con.close()


def test_nbsp_after_capital_a_tilde_is_not_mojibake():
    from pipeline.ingest.text import decode_cells

    assert decode_cells(["XÃ\u00a0IA KA", "HUYỆN ỦY IA PA"])[0].replace("\u00a0", " ") == "XÃ IA KA"
