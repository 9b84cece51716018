"""A held-out period with broken returns, built from the canonical writer and then damaged.

Used by the acceptance tests: seven districts send only a broken file, three
send a good return followed by a broken resubmission, seven send a good return
only; Office lock files and OS junk lie beside them. Districts are chosen by a
general rule (unit count) from whatever register is in force, never by name.
"""

from __future__ import annotations

import datetime as dt
import os
import random
from dataclasses import dataclass, field
from pathlib import Path

import openpyxl
import pandas as pd

from pipeline.register import Register
from pipeline.sample.generate import build_rows
from pipeline.templates.return_workbook import FIRST_UNIT_ROW, ascii_name, district_identity, last_day, write_return

PERIOD = "2017-12"
SEED = 20171231
GOOD_SENT = dt.timedelta(days=3)
RESUBMITTED = dt.timedelta(days=9)

# Row-error kinds the "every kind" return carries: code -> the column letter its cell is in.
ROW_ERROR_COLUMNS = {
    "count_negative": "E",
    "count_not_integer": "E",
    "cell_members_exceed_total": "J",
    "cell_missing_date": "H",
    "cell_missing_basis": "I",
    "cell_missing_members": "J",
    "date_in_future": "H",
    "hd28_before_issue": "H",
    "unit_unknown": "C",
    "unit_duplicate": "C",
    "totals_mismatch": "G",
}


@dataclass
class Scenario:
    period: str
    raw: Path
    rows: pd.DataFrame  # every register unit's generated figures
    good: list[str] = field(default_factory=list)  # district codes whose good return must be in effect
    resubmitted: list[str] = field(default_factory=list)  # subset of good: a broken file follows the good one
    broken_only: dict[str, str] = field(default_factory=dict)  # district code -> kind of damage
    broken_files: dict[str, str] = field(default_factory=dict)  # file name -> kind of damage
    good_files: dict[str, str] = field(default_factory=dict)  # file name -> district code
    junk_files: list[str] = field(default_factory=list)
    expected_cells: dict[str, str] = field(default_factory=dict)  # row-error code -> Excel ref
    missing_unit: str | None = None  # unit code the every-kind return leaves out
    title_borrowed_from: str | None = None  # district whose units appear under another's title


def _stamp(path: Path, when: dt.datetime) -> None:
    os.utime(path, (when.timestamp(), when.timestamp()))


def _write_good(
    path: Path, register: Register, code: str, rows: pd.DataFrame, period: str, saved_at: dt.datetime | None = None
) -> Path:
    sub = rows[rows["district_code"] == code]
    return write_return(
        path,
        district=district_identity(register.districts, code),
        period=period,
        units=sub[["unit_code", "unit_name", "unit_type"]],
        rows=sub,
        preparer="Nguyễn Văn An",
        signer="Trần Thị Lan",
        timestamp=saved_at,
    )


def _data_rows(ws) -> tuple[int, int]:
    """(first unit row, totals row) of a return written by ``write_return``."""
    r = FIRST_UNIT_ROW
    while ws[f"C{r}"].value != "Tổng cộng":
        r += 1
    return FIRST_UNIT_ROW, r


def _with_cells(rows: pd.DataFrame, code: str, n: int, period: str) -> pd.DataFrame:
    """Give the district's first ``n`` units a valid agency cell, so each cell rule has a row to break."""
    rows = rows.copy()
    idx = rows.index[rows["district_code"] == code][:n]
    as_of = last_day(period)
    for i in idx:
        rows.at[i, "eligible"] = True
        rows.at[i, "has_cell"] = True
        rows.at[i, "established_on"] = as_of - dt.timedelta(days=400)
        rows.at[i, "basis"] = "HD28"
        rows.at[i, "cell_members"] = 8
        rows.at[i, "note"] = None
    return rows


def damage_every_row_error(path: Path, period: str) -> tuple[dict[str, str], str]:
    """One of each row error on its own row; returns code -> cell and the unit code left out.

    Rows 0..5 of the table have a cell (see ``_with_cells``); the rest have none.
    """
    wb = openpyxl.load_workbook(path)
    ws = wb.active
    first, total_row = _data_rows(ws)
    r = [first + k for k in range(total_row - first)]
    cells: dict[str, str] = {}

    ws[f"J{r[0]}"] = int(ws[f"E{r[0]}"].value) + 10
    cells["cell_members_exceed_total"] = f"J{r[0]}"
    ws[f"H{r[1]}"] = None
    cells["cell_missing_date"] = f"H{r[1]}"
    ws[f"I{r[2]}"] = None
    cells["cell_missing_basis"] = f"I{r[2]}"
    ws[f"J{r[3]}"] = None
    cells["cell_missing_members"] = f"J{r[3]}"
    ws[f"H{r[4]}"] = last_day(period) + dt.timedelta(days=45)
    cells["date_in_future"] = f"H{r[4]}"
    ws[f"H{r[5]}"] = dt.date(2013, 5, 2)  # basis is HD 28
    cells["hd28_before_issue"] = f"H{r[5]}"

    ws[f"E{r[6]}"] = -7
    cells["count_negative"] = f"E{r[6]}"
    ws[f"E{r[7]}"] = 95.5
    cells["count_not_integer"] = f"E{r[7]}"
    ws[f"B{r[8]}"] = None
    ws[f"C{r[8]}"] = "Xã Không Có Trong Danh Mục"
    cells["unit_unknown"] = f"C{r[8]}"
    # The later of two rows naming one unit is the duplicate; the unit it replaced is missing.
    missing_unit = str(ws[f"B{r[10]}"].value)
    ws[f"B{r[10]}"] = ws[f"B{r[9]}"].value
    ws[f"C{r[10]}"] = ws[f"C{r[9]}"].value
    cells["unit_duplicate"] = f"C{r[10]}"
    ws[f"G{total_row}"] = int(ws[f"G{total_row}"].value or 0) + 3
    cells["totals_mismatch"] = f"G{total_row}"
    wb.save(path)
    return cells, missing_unit


def damage_exceed(path: Path) -> str:
    """Cell members above the unit's total on the first unit row that has a cell."""
    wb = openpyxl.load_workbook(path)
    ws = wb.active
    first, total_row = _data_rows(ws)
    row = next(r for r in range(first, total_row) if ws[f"G{r}"].value)
    ws[f"J{row}"] = int(ws[f"E{row}"].value) + 1
    wb.save(path)
    return f"J{row}"


def damage_drop_column(path: Path, column: int = 10) -> None:
    """Delete a required column (default J, the cell's members) as a clerk would."""
    wb = openpyxl.load_workbook(path)
    ws = wb.active
    for rng in list(ws.merged_cells.ranges):
        if rng.min_col <= column <= rng.max_col:
            ws.unmerge_cells(str(rng))
    ws.delete_cols(column)
    wb.save(path)


def damage_formula_totals(path: Path) -> list[str]:
    """Totals as live formulas: openpyxl saves them without cached values."""
    wb = openpyxl.load_workbook(path)
    ws = wb.active
    first, total_row = _data_rows(ws)
    last = total_row - 1
    refs = []
    for col in "EJ":
        ws[f"{col}{total_row}"] = f"=SUM({col}{first}:{col}{last})"
        refs.append(f"{col}{total_row}")
    for col in "FG":
        ws[f"{col}{total_row}"] = f'=COUNTIF({col}{first}:{col}{last},"x")'
        refs.append(f"{col}{total_row}")
    wb.save(path)
    return refs


def damage_drop_unit_row(path: Path) -> None:
    wb = openpyxl.load_workbook(path)
    ws = wb.active
    ws.delete_rows(FIRST_UNIT_ROW + 1)
    wb.save(path)


def build_scenario(raw_root: Path, register: Register, period: str = PERIOD, seed: int = SEED) -> Scenario:
    rows = build_rows(register.units, period, seed)
    folder = raw_root / period
    folder.mkdir(parents=True)
    sc = Scenario(period=period, raw=raw_root, rows=rows)
    as_of = dt.datetime.combine(last_day(period), dt.time(9, 0))
    rng = random.Random(seed)

    # Largest district first: the every-kind return needs a dozen rows.
    sizes = rows.groupby("district_code").size().sort_values(ascending=False, kind="stable")
    order = list(sizes.index)
    every_kind, *rest = order
    broken_only = [every_kind, *rest[:6]]
    good = rest[6:]
    sc.good = list(good)
    sc.resubmitted = good[:3]

    def name(code: str, tag: str = "") -> str:
        return f"BC CBCQ {ascii_name(district_identity(register.districts, code)['short_name'])}{tag}.xlsx"

    for code in good:
        path = _write_good(folder / name(code), register, code, rows, period)
        _stamp(path, as_of + GOOD_SENT)
        sc.good_files[path.name] = code

    kinds = ["every_row_error", "title_other_district", "missing_column", "formulas", "corrupt", "not_spreadsheet", "empty"]
    for code, kind in zip(broken_only, kinds):
        path = folder / name(code)
        if kind == "every_row_error":
            _write_good(path, register, code, _with_cells(rows, code, 6, period), period)
            sc.expected_cells, sc.missing_unit = damage_every_row_error(path, period)
        elif kind == "title_other_district":
            # This district's title over a neighbour's good return (units and figures).
            donor = good[-1]
            sub = rows[rows["district_code"] == donor]
            write_return(path, district=district_identity(register.districts, code), period=period,
                         units=sub[["unit_code", "unit_name", "unit_type"]], rows=sub)
            sc.title_borrowed_from = donor
        elif kind == "missing_column":
            _write_good(path, register, code, rows, period)
            damage_drop_column(path)
        elif kind == "formulas":
            _write_good(path, register, code, rows, period)
            damage_formula_totals(path)
        elif kind == "corrupt":
            _write_good(path, register, code, rows, period)
            data = path.read_bytes()
            # A download cut in the middle and overwritten with noise: the zip is damaged.
            path.write_bytes(data[:200] + bytes(rng.randrange(256) for _ in range(3000)))
        elif kind == "not_spreadsheet":
            path.write_bytes(b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n")
        elif kind == "empty":
            path.write_bytes(b"")
        _stamp(path, as_of + GOOD_SENT)
        sc.broken_only[code] = kind
        sc.broken_files[path.name] = kind

    for code, kind in zip(sc.resubmitted, ("exceed", "formulas", "missing_unit")):
        path = _write_good(folder / name(code, " (sua lan 2)"), register, code, rows, period)
        {"exceed": damage_exceed, "formulas": damage_formula_totals, "missing_unit": damage_drop_unit_row}[kind](path)
        _stamp(path, as_of + RESUBMITTED)
        sc.broken_files[path.name] = f"resubmission_{kind}"

    lock = folder / f"~${name(good[0])}"
    lock.write_bytes(b"\x0bNguyen Van An" + b"\x00" * 150)
    (folder / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0" + b"\x00" * 60)
    (folder / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1" + b"\x00" * 40)
    sc.junk_files = [lock.name, "Thumbs.db", ".DS_Store"]
    return sc


def expected_province(rows: pd.DataFrame, districts: list[str]) -> pd.DataFrame:
    """The province figures over ``districts``, computed from the generated rows (the spec's definitions)."""
    from pipeline.sample.generate import round_half_up

    sub = rows[rows["district_code"].isin(districts)].copy()
    sub["with_cell"] = sub["eligible"].astype(bool) & sub["has_cell"].astype(bool)
    out = {}
    for unit_type, g in [*sub.groupby("unit_type"), ("total", sub)]:
        cells = g[g["with_cell"]]
        members = int(pd.to_numeric(cells["cell_members"]).sum())
        total = int(g["total_members"].sum())
        out[unit_type] = {
            "units": len(g),
            "units_with_cell": len(cells),
            "coverage_pct": float(round_half_up(100 * len(cells) / len(g))) if len(g) else None,
            "cell_members": members,
            "total_members": total,
            "member_share_pct": float(round_half_up(100 * members / total)) if total else None,
            "cells_hd28": int((cells["basis"] == "HD28").sum()),
            "cells_hd10": int((cells["basis"] == "HD10").sum()),
        }
    return pd.DataFrame(out).T
