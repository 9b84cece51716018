"""Seeded sample returns: one canonical workbook per district of the register.

    python -m pipeline.sample.generate --period 2016-06 --out data/raw/2016-06 --seed 20160630

When a published-figures file exists for the period (``published_YYYY_MM.json``
beside this module, or ``--published``), the sample adds up exactly to it: units
with a cell and cell members per unit type, the share of cell members in all
members (rounded half-up to one decimal), and the units whose cells were set
up under Guidance 28, found in the register by a spelling-insensitive name key.
Without one, the figures are random but plausible. Same seed, same bytes.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import re
import unicodedata
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pandas as pd

from pipeline.config import load_settings
from pipeline.templates.return_workbook import ascii_name, district_identity, last_day, write_return

HERE = Path(__file__).resolve().parent
HD28_FROM = dt.date(2014, 10, 10)
HD10_FROM = dt.date(2008, 1, 1)
# Districts send their returns in the days after the as-of date (UTC+7).
VN_TZ = dt.timezone(dt.timedelta(hours=7))

CELL_MEMBERS_RANGE = (5, 15)
# Party members per unit, by type: wards and towns have larger organisations.
MEMBERS_RANGE = {"xa": (60, 150), "thi_tran": (170, 340), "phuong": (130, 300)}
# A cell is well below its unit: at least this many members stay outside it.
MIN_MEMBERS_OUTSIDE_CELL = 30

FILE_PATTERNS = (
    "{name}_{yyyymm}.xlsx",
    "BC CBCQ {name} T{m}-{yyyy}.xlsx",
    "{compact}.xlsx",
    "Bao cao chi bo co quan {name} thang {m}.{yyyy}.xlsx",
    "{compact}_{yyyymm} (1).xlsx",
    "BC chi bo co quan - {name} - {mm}{yyyy}.xlsx",
    "{name}.xlsx",
)
FAMILY = ("Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Võ", "Đỗ", "Phan", "Rơ Châm", "Siu", "Ksor", "Rah Lan")
MIDDLE = ("Văn", "Thị", "Đình", "Minh", "Hữu", "Thanh", "Ngọc", "Quang")
GIVEN = ("An", "Bình", "Cường", "Dũng", "Hà", "Hùng", "Lan", "Long", "Nam", "Phong", "Thảo", "Tuấn", "H'Luân", "Blơk")
NOTES_NO_CELL_ELIGIBLE = ("Đang chuẩn bị nhân sự", "Dự kiến thành lập trong quý tới", None, None)
NOTES_NOT_ELIGIBLE = ("Chưa đủ số đảng viên ở cơ quan", None, None, None, None)


def name_key(text: str) -> str:
    """Spelling-insensitive key: no diacritics, case, spaces or apostrophes ("Đăk HLơ" == "Đak Hlơ")."""
    text = unicodedata.normalize("NFD", str(text).replace("Đ", "D").replace("đ", "d"))
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    return re.sub(r"[^0-9a-z]", "", text.lower())


def round_half_up(value: float | Decimal, places: int = 1) -> Decimal:
    return Decimal(str(value)).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


def load_published(period: str, path: Path | None = None) -> dict | None:
    path = path or HERE / f"published_{period.replace('-', '_')}.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def hd28_unit_codes(register: pd.DataFrame, published: dict) -> set[str]:
    """Resolve the published Guidance-28 units (district + name + type) to register codes."""
    districts = {name_key(district_identity(register, c)["short_name"]): c
                 for c in dict.fromkeys(register["district_code"])}
    codes: set[str] = set()
    for entry in published.get("hd28_cells", []):
        dcode = districts.get(name_key(entry["district"]))
        if dcode is None:
            raise KeyError(f"published district {entry['district']!r} not in register")
        sub = register[register["district_code"] == dcode]
        for unit in entry["units"]:
            hit = sub[(sub["unit_name"].map(name_key) == name_key(unit["name"])) & (sub["unit_type"] == unit["type"])]
            if len(hit) != 1:
                raise KeyError(f"published unit {unit['name']!r} ({entry['district']}) matches {len(hit)} register units")
            codes.add(hit.iloc[0]["unit_code"])
    return codes


def _spread(rng: random.Random, n: int, total: int, low: int, high: int) -> list[int]:
    """n integers in [low, high] adding up to ``total``, random but seeded."""
    if not n * low <= total <= n * high:
        raise ValueError(f"cannot spread {total} over {n} values in [{low}, {high}]")
    values = [low] * n
    for _ in range(total - n * low):
        i = rng.choice([k for k in range(n) if values[k] < high])
        values[i] += 1
    return values


def _member_total_range(cell_members: int, pct: float) -> tuple[int, int]:
    """Total members T for which cell_members / T rounds half-up to ``pct`` percent."""
    lo = int(cell_members * 100 / (pct + 0.05)) + 1
    hi = int(cell_members * 100 / (pct - 0.05))
    ok = [t for t in range(lo - 2, hi + 3) if round_half_up(Decimal(cell_members * 100) / t) == round_half_up(pct)]
    return min(ok), max(ok)


def _random_date(rng: random.Random, start: dt.date, end: dt.date) -> dt.date:
    return start + dt.timedelta(days=rng.randint(0, (end - start).days))


def build_rows(register: pd.DataFrame, period: str, seed: int, published: dict | None = None) -> pd.DataFrame:
    """One row per register unit with the sample's figures (the register's columns plus the return's)."""
    rng = random.Random(seed)
    reg = register.reset_index(drop=True).copy()
    as_of = last_day(period)
    hd28 = hd28_unit_codes(reg, published) if published else set()

    has_cell = pd.Series(False, index=reg.index)
    cell_members = pd.Series(0, index=reg.index, dtype="int64")
    for unit_type in sorted(reg["unit_type"].unique()):
        idx = list(reg.index[reg["unit_type"] == unit_type])
        if published:
            target = published["by_type"][unit_type]
            if target["units"] != len(idx):
                raise ValueError(f"register has {len(idx)} {unit_type} units, published {target['units']}")
            n_cells, members = target["cells"], target["cell_members"]
        else:
            n_cells = rng.randint(len(idx) // 3, len(idx))
            members = None
        fixed = [i for i in idx if reg.at[i, "unit_code"] in hd28]
        others = [i for i in idx if i not in fixed]
        chosen = sorted(fixed + rng.sample(others, n_cells - len(fixed)))
        has_cell[chosen] = True
        if members is None:
            values = [rng.randint(*CELL_MEMBERS_RANGE) for _ in chosen]
        else:
            values = _spread(rng, len(chosen), members, *CELL_MEMBERS_RANGE)
        cell_members[chosen] = values

    # Eligible: every unit with a cell (the sample stays clean), plus some without one yet.
    eligible = has_cell | pd.Series([rng.random() < 0.25 for _ in reg.index], index=reg.index)

    total = pd.Series([rng.randint(*MEMBERS_RANGE[t]) for t in reg["unit_type"]], index=reg.index, dtype="int64")
    floor = cell_members + MIN_MEMBERS_OUTSIDE_CELL
    if published and published.get("member_share_pct") is not None:
        lo, hi = _member_total_range(int(cell_members.sum()), float(published["member_share_pct"]))
        quarter = (hi - lo) // 4
        target_total = rng.randint(lo + quarter, hi - quarter)
        total = (total * target_total / total.sum()).round().astype("int64").clip(lower=floor)
        diff = target_total - int(total.sum())
        while diff:
            step = 1 if diff > 0 else -1
            candidates = [i for i in reg.index if total[i] + step >= floor[i]]
            total[rng.choice(candidates)] += step
            diff -= step
    total = total.clip(lower=floor)

    established, basis, notes = [], [], []
    for i in reg.index:
        note = None
        if has_cell[i]:
            code = reg.at[i, "unit_code"]
            under_28 = code in hd28 if published else None
            if under_28 is None:
                day = _random_date(rng, HD10_FROM, as_of)
                under_28 = day >= HD28_FROM
            elif under_28:
                day = _random_date(rng, HD28_FROM, as_of - dt.timedelta(days=1))
            else:
                day = _random_date(rng, HD10_FROM, HD28_FROM - dt.timedelta(days=1))
            established.append(day)
            basis.append("HD28" if under_28 else "HD10")
        else:
            established.append(None)
            basis.append(None)
            note = rng.choice(NOTES_NO_CELL_ELIGIBLE if eligible[i] else NOTES_NOT_ELIGIBLE)
        notes.append(note)

    reg["total_members"] = total
    reg["eligible"] = eligible
    reg["has_cell"] = has_cell
    reg["established_on"] = pd.Series(established, index=reg.index, dtype="object")
    reg["basis"] = pd.Series(basis, index=reg.index, dtype="object")
    reg["cell_members"] = pd.Series([int(c) if h else None for c, h in zip(cell_members, has_cell)],
                                    index=reg.index, dtype="object")
    reg["note"] = pd.Series(notes, index=reg.index, dtype="object")
    return reg


def file_name(rng: random.Random, short_name: str, period: str) -> str:
    as_of = last_day(period)
    name = ascii_name(short_name)
    return rng.choice(FILE_PATTERNS).format(
        name=name, compact=name.replace(" ", ""), yyyymm=f"{as_of:%Y%m}", yyyy=as_of.year,
        m=as_of.month, mm=f"{as_of:%m}",
    )


def _person(rng: random.Random) -> str:
    return f"{rng.choice(FAMILY)} {rng.choice(MIDDLE)} {rng.choice(GIVEN)}"


def generate(register: pd.DataFrame, period: str, out_dir: Path, seed: int,
             published: dict | None = None) -> list[Path]:
    """Write one return per district into ``out_dir``; return the paths in register order."""
    out_dir = Path(out_dir)
    rows = build_rows(register, period, seed, published)
    rng = random.Random(f"{seed}-files")
    as_of = last_day(period)
    paths: list[Path] = []
    for code in dict.fromkeys(rows["district_code"]):
        district = district_identity(register, code)
        sub = rows[rows["district_code"] == code]
        path = out_dir / file_name(rng, district["short_name"], period)
        if path in paths:
            raise ValueError(f"two districts would share the file name {path.name}")
        sent = dt.datetime.combine(as_of + dt.timedelta(days=rng.randint(1, 10)), dt.time(7, 30), VN_TZ)
        sent += dt.timedelta(minutes=rng.randint(0, 9 * 60))
        write_return(
            path, district=district, period=period, units=sub[["unit_code", "unit_name", "unit_type"]],
            rows=sub, preparer=_person(rng), signer=_person(rng),
            timestamp=sent.astimezone(dt.timezone.utc).replace(tzinfo=None),
        )
        os.utime(path, (sent.timestamp(), sent.timestamp()))
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write seeded sample district returns.")
    parser.add_argument("--period", required=True, help="YYYY-MM")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--register", type=Path, default=None, help="units CSV (default: settings)")
    parser.add_argument("--published", type=Path, default=None, help="published figures JSON to match")
    args = parser.parse_args(argv)
    register = pd.read_csv(args.register or load_settings().register, dtype=str, keep_default_na=False)
    published = load_published(args.period, args.published)
    paths = generate(register, args.period, args.out, args.seed, published)
    print(f"{len(paths)} returns written to {args.out}" + (" (matching published figures)" if published else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
