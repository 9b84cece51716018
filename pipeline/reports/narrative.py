"""The province figures as the Board writes them in its reports.

Every number comes from the frames passed in (``marts.province_summary`` rows
for one period, and the HD28 cells); the sentences follow the wording the
Board published, e.g. "toàn tỉnh có 115/222 xã, phường, thị trấn đủ điều kiện
và đã thành lập chi bộ cơ quan (đạt 51,8%) với 1.091 đảng viên ...".
"""

from __future__ import annotations

import math
import re

import pandas as pd

from .vn_format import fmt_date, fmt_int, fmt_pct, pct, period_end

UNIT_TYPES = ("xa", "phuong", "thi_tran")
# Lower case as they read inside a sentence ("chi bộ cơ quan xã").
UNIT_TYPE_WORDS = {"xa": "xã", "phuong": "phường", "thi_tran": "thị trấn"}
UNIT_TYPE_LABELS = {"xa": "Xã", "phuong": "Phường", "thi_tran": "Thị trấn", "total": "Toàn tỉnh"}

# A sentence names every Guidance-28 unit up to this many (a province has a handful), else only
# each district's count, up to this many districts; beyond that the report's annex lists them.
MAX_UNITS_NAMED = 60
MAX_DISTRICTS_NAMED = 40
# The report sheet that lists the Guidance-28 cells (province_report.SHEET_HD28).
HD28_SHEET = "Chi bộ HD28"

# District names in the register carry their class ("Huyện Chư Păh"); inside a
# sentence the class is lower case: "Đảng bộ huyện Chư Păh".
_DISTRICT_CLASS = re.compile(r"^(huyện|thị xã|thành phố)\s+", re.IGNORECASE)
_UNIT_PREFIX = re.compile(r"^(xã|phường|thị trấn)\s+", re.IGNORECASE)


def _num(value) -> float | None:
    if value is None or value is pd.NA:
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(value) else value


def _count(row: pd.Series, column: str) -> int:
    value = _num(row.get(column))
    return int(value) if value is not None else 0


def _percent(row: pd.Series, column: str, numerator: str, denominator: str) -> float | None:
    """The mart's rounded percentage, or recomputed when the mart left it empty."""
    value = _num(row.get(column))
    if value is not None:
        return value
    return pct(_num(row.get(numerator)), _num(row.get(denominator)))


def _rows_by_type(by_type: pd.DataFrame) -> dict[str, pd.Series]:
    return {str(r["unit_type"]): r for _, r in by_type.iterrows()}


def _type_list(types) -> str:
    """``["xa", "thi_tran"] -> "xã, thị trấn"`` in the register's order."""
    return ", ".join(UNIT_TYPE_WORDS[t] for t in UNIT_TYPES if t in set(types))


def period_phrase(period: str) -> str:
    """``"2016-06" -> "ngày 30/6/2016"``."""
    return f"ngày {fmt_date(period_end(period))}"


def district_party_name(district_name: str) -> str:
    """``"Huyện Chư Păh" -> "Đảng bộ huyện Chư Păh"``."""
    name = " ".join(str(district_name).split())
    match = _DISTRICT_CLASS.match(name)
    if match:
        name = match.group(1).lower() + " " + name[match.end():]
    return f"Đảng bộ {name}"


def unit_phrase(unit_name: str, unit_type: str | None) -> str:
    """``("Ia Mơ Nông", "xa") -> "xã Ia Mơ Nông"``; an existing prefix is kept, lower-cased."""
    name = " ".join(str(unit_name).split())
    match = _UNIT_PREFIX.match(name)
    if match:
        return match.group(1).lower() + " " + name[match.end():]
    word = UNIT_TYPE_WORDS.get(str(unit_type)) if unit_type is not None else None
    return f"{word} {name}" if word else name


def coverage_paragraph(by_type: pd.DataFrame, *, period: str) -> str:
    """Headline: units with a cell over all units, members, then one clause per unit type."""
    rows = _rows_by_type(by_type)
    if "total" not in rows:
        raise ValueError("by_type needs a 'total' row (marts.province_summary)")
    total = rows["total"]
    present = [t for t in UNIT_TYPES if t in rows and _count(rows[t], "units") > 0]
    types_text = _type_list(present) or "xã, phường, thị trấn"

    opening = f"Tính đến {period_phrase(period)}"
    expected, reported = _count(total, "districts_expected"), _count(total, "districts_reported")
    if expected and reported < expected:
        opening += f" (số liệu của {reported}/{expected} huyện, thị xã, thành phố đã báo cáo)"

    coverage = _percent(total, "coverage_pct", "units_with_cell", "units")
    text = (
        f"{opening}, toàn tỉnh có {fmt_int(_count(total, 'units_with_cell'))}/"
        f"{fmt_int(_count(total, 'units'))} {types_text} đủ điều kiện và đã thành lập chi bộ cơ quan"
    )
    if coverage is not None:
        text += f" (đạt {fmt_pct(coverage, drop_zero=True)}%)"
    text += f" với {fmt_int(_count(total, 'cell_members'))} đảng viên"
    share = _percent(total, "member_share_pct", "cell_members", "total_members")
    if share is not None:
        text += f" (chiếm {fmt_pct(share, drop_zero=True)}% tổng số đảng viên ở {types_text})"
    text += "."

    clauses = []
    for t in present:
        row = rows[t]
        cells = _count(row, "units_with_cell")
        if cells == 0:
            continue
        clause = (
            f"{fmt_int(cells)} chi bộ cơ quan {UNIT_TYPE_WORDS[t]} "
            f"với {fmt_int(_count(row, 'cell_members'))} đảng viên"
        )
        type_coverage = _percent(row, "coverage_pct", "units_with_cell", "units")
        if type_coverage is not None:
            clause += f", đạt {fmt_pct(type_coverage, drop_zero=True)}%"
        clauses.append(clause)
    if clauses:
        text += " Trong đó, có " + "; ".join(clauses) + "."
    return text


def hd28_paragraph(hd28: pd.DataFrame, by_type: pd.DataFrame) -> str:
    """The cells set up under Guidance 28, listed per district in the order given
    (by district code when the frame has one)."""
    rows = _rows_by_type(by_type)
    total = rows.get("total")
    all_units = _count(total, "units") if total is not None else 0
    present_all = [t for t in UNIT_TYPES if t in rows and _count(rows[t], "units") > 0]
    all_text = _type_list(present_all) or "xã, phường, thị trấn"

    cells = hd28.copy() if hd28 is not None else pd.DataFrame()
    if cells.empty:
        return f"Toàn tỉnh chưa có {all_text} nào thành lập chi bộ cơ quan theo Hướng dẫn 28-HD/BTCTW."
    if "district_code" in cells.columns:
        cells = cells.sort_values("district_code", kind="stable")

    n = len(cells)
    text = (
        f"Toàn tỉnh hiện có {fmt_int(n)} {_type_list(cells['unit_type'].astype(str))} "
        "thành lập chi bộ cơ quan theo Hướng dẫn 28-HD/BTCTW"
    )
    share = pct(n, all_units)
    if share is not None:
        text += f", chiếm {fmt_pct(share, drop_zero=True)}% tổng số {all_text}"
    # One pass over plain columns, districts in order of first appearance and without a
    # missing name, as groupby(sort=False) gave them.
    by_district: dict[str, list[tuple[object, object]]] = {}
    for district, unit, unit_type in zip(cells["district_name"], cells["unit_name"], cells["unit_type"]):
        if not pd.isna(district):
            by_district.setdefault(district, []).append((unit, unit_type))
    list_units = n <= MAX_UNITS_NAMED
    if list_units or len(by_district) <= MAX_DISTRICTS_NAMED:
        parts = []
        for i, (district, units) in enumerate(by_district.items()):
            # The Board writes "có" only after the first district of the list.
            verb = "có " if i == 0 else ""
            part = f"{district_party_name(district)} {verb}{fmt_int(len(units))} đơn vị"
            if list_units:
                part += " (" + ", ".join(unit_phrase(u, t) for u, t in units) + ")"
            parts.append(part)
        text += ". Trong đó, " + ", ".join(parts)
        if not list_units:
            text += f" (danh sách tại biểu “{HD28_SHEET}”)"
        text += "."
    else:
        # Hundreds of districts (a national register): a sentence cannot list them; the annex does.
        text += (
            f". Các chi bộ này thuộc {fmt_int(len(by_district))} đảng bộ huyện, thị xã, thành phố; "
            f"danh sách tại biểu “{HD28_SHEET}”."
        )

    if total is not None:
        hd10 = _count(total, "cells_hd10")
        if hd10:
            text += f" Có {fmt_int(hd10)} chi bộ cơ quan được thành lập theo Hướng dẫn 10-HD/BTCTW."
    return text


def province_paragraph(by_type: pd.DataFrame, hd28: pd.DataFrame, *, period: str) -> list[str]:
    """Paragraphs for the province report, in the Board's register."""
    return [coverage_paragraph(by_type, period=period), hd28_paragraph(hd28, by_type)]
