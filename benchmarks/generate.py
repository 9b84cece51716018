"""Generate benchmark data in the real return format, cached under one folder.

    uv run python -m benchmarks.generate [--out /tmp/cbcq-bench] [--periods 72]

Two data sets, both written with the project's own return writer
(``pipeline.templates.return_workbook.write_return``) and plausible random
figures (``pipeline.sample.generate.build_rows``, one draw a year for the
province data set), so the pipeline reads them
exactly as it reads a district's return:

- ``province/``: the Gia Lai register over ``--periods`` monthly periods from
  2017-01 (17 returns a period), ``province/raw/YYYY-MM/*.xlsx``.
- ``varied/`` (``--varied``): the same province as districts really send it:
  13 returns a month in each district's own layout, encoding and format
  (.xlsx/.xls/.ods), a few cut short (``make_varied``).
- ``national/``: a synthetic register of about 10,000 units in about 700
  districts (``national/units.csv``, same columns as data/reference/units.csv)
  and one period of returns, one file per district, ``national/raw/YYYY-MM``.

Writing a workbook with openpyxl costs tens of milliseconds, so the files are
written in a process pool; a data set whose ``.done`` marker matches the
requested parameters is not written again.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import shutil
import subprocess
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pandas as pd

from pipeline.config import PROJECT_ROOT
from pipeline.sample.generate import VN_TZ, _person, build_rows, file_name, generate
from pipeline.templates.return_workbook import ascii_name, district_identity, last_day, write_return

DEFAULT_OUT = Path("/tmp/cbcq-bench")
GIA_LAI_REGISTER = PROJECT_ROOT / "data/reference/units.csv"
FIRST_PERIOD = "2017-01"
NATIONAL_PERIOD = "2024-06"
NATIONAL_UNITS = 10_000
NATIONAL_DISTRICTS = 700
REGISTER_COLUMNS = ["district_code", "district_name", "unit_code", "unit_name", "unit_type", "gso_unit_type", "note"]

# Syllables of Vietnamese place names (Kinh and Central Highlands), combined two at a time.
SYLLABLES = (
    "An", "Bình", "Phú", "Tân", "Hòa", "Thạnh", "Long", "Mỹ", "Đông", "Tây", "Nam", "Bắc", "Sơn", "Hải",
    "Thuận", "Lợi", "Phước", "Hưng", "Thành", "Trung", "Vĩnh", "Quang", "Đức", "Hiệp", "Lộc", "Thái",
    "Cát", "Kim", "Ngọc", "Xuân", "Hà", "Thủy", "Lâm", "Yên", "Định", "Hồng", "Cẩm", "Gia", "Nghĩa",
    "Hoàng", "Đại", "Tiến", "Khánh", "Minh", "Phong", "Tường", "Sa", "Ia", "Đăk", "Chư", "Kon", "Krông",
    "Ea", "Lạc", "Hội", "Tịnh", "Quế", "Cao", "Châu", "Diên", "Hữu", "Lương", "Mai", "Nhơn", "Phổ",
    "Quý", "Sông", "Tam", "Uyên", "Văn", "Vân", "Bảo", "Cửu", "Đồng", "Giang", "Hạ", "Kỳ", "Linh",
)


def periods_from(first: str, count: int) -> list[str]:
    year, month = map(int, first.split("-"))
    out = []
    for i in range(count):
        y, m = divmod(month - 1 + i, 12)
        out.append(f"{year + y:04d}-{m + 1:02d}")
    return out


def _marker_ok(folder: Path, params: dict) -> bool:
    marker = folder / ".done"
    return marker.exists() and json.loads(marker.read_text()) == params


def _write_marker(folder: Path, params: dict) -> None:
    (folder / ".done").write_text(json.dumps(params))


def _read_register(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False)


# --- (a) one province over many periods --------------------------------------------------------

def _province_period(args: tuple[str, str, str]) -> int:
    register_path, period, out = args
    register = _read_register(Path(register_path))
    # One draw of figures a year, its months repeating them: a district's return changes little
    # from one month to the next, and figures drawn afresh every month tripped ~4 history
    # warnings a return (cells vanishing, members jumping), far heavier checks and feedback than
    # real returns. The year boundaries still change every unit's figures.
    seed = int(period[:4])
    # published=None: random plausible figures (a published file only exists for the sample period).
    return len(generate(register, period, Path(out) / period, seed, published=None))


def make_province(out: Path, periods: int, workers: int) -> Path:
    """Gia Lai returns for ``periods`` months; returns the raw folder (one sub-folder per period)."""
    root = out / "province"
    params = {"register": str(GIA_LAI_REGISTER), "first": FIRST_PERIOD, "periods": periods, "v": 2}
    raw = root / "raw"
    if _marker_ok(root, params):
        return raw
    wanted = periods_from(FIRST_PERIOD, periods)
    existing = {p.name for p in raw.iterdir()} if raw.is_dir() else set()
    stale = existing - set(wanted)
    for name in stale:
        shutil.rmtree(raw / name)
    todo = [p for p in wanted if not (raw / p / ".ok").exists()]
    started = time.monotonic()
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for period, n in zip(todo, pool.map(_province_period, [(str(GIA_LAI_REGISTER), p, str(raw)) for p in todo])):
            (raw / period / ".ok").touch()
    print(f"province: {len(todo)} periods written in {time.monotonic() - started:.1f} s ({len(wanted)} wanted)")
    _write_marker(root, params)
    return raw


# --- (a') the same province, returns as districts really send them --------------------------------

VARIED_DISTRICTS_PER_PERIOD = 13  # not every district reports every month
VARIED_FORMATS = ("xlsx",) * 6 + ("xls",) * 2 + ("ods",) * 2  # each district keeps its own
VARIED_BROKEN = 8  # returns cut short, as a copy interrupted
_LO_FILTERS = {"xls": "xls:MS Excel 97", "ods": "ods"}


def make_varied(
    out: Path, periods: int, seed: int = 2026, formats: tuple[str, ...] = VARIED_FORMATS, broken: int = VARIED_BROKEN
) -> Path:
    """Gia Lai returns for ``periods`` months written the way districts send them; returns the raw folder.

    Each district keeps a layout (``tests.fixtures.variants.random_variation``: title
    rows, header shapes and wording, column order, extra columns, totals, encodings
    TCVN3/VNI/mojibake, numbers and flags written every accepted way, legacy fonts)
    and a format (.xlsx, or .xls/.ods saved by LibreOffice), and changes its layout
    now and then; 13 of the 17 districts report each month; figures are drawn once a
    year; a few files are cut short. Needs LibreOffice (``soffice``) for .xls/.ods;
    without it those districts send .xlsx.
    """
    from tests.fixtures.variants import random_variation, write_variant

    root = out / "varied"
    params = {"register": str(GIA_LAI_REGISTER), "first": FIRST_PERIOD, "periods": periods, "seed": seed,
              "formats": list(formats), "broken": broken, "v": 1}  # fmt: skip
    raw = root / "raw"
    if _marker_ok(root, params):
        return raw
    if raw.exists():
        shutil.rmtree(raw)
    started = time.monotonic()
    register = _read_register(GIA_LAI_REGISTER)
    districts = list(dict.fromkeys(register["district_code"]))
    rng = random.Random(seed)
    layout = {d: random_variation(rng, d) for d in districts}
    soffice = shutil.which("soffice")
    fmt_of = {d: rng.choice(formats) if soffice else "xlsx" for d in districts}
    to_convert: dict[str, list[tuple[Path, Path]]] = {"xls": [], "ods": []}
    with tempfile.TemporaryDirectory(prefix="varied_") as tmp_name:
        tmp = Path(tmp_name)
        for n, period in enumerate(periods_from(FIRST_PERIOD, periods)):
            rows = build_rows(register, period, int(period[:4]))
            (raw / period).mkdir(parents=True)
            for d in rng.sample(districts, VARIED_DISTRICTS_PER_PERIOD):
                if rng.random() < 0.15:
                    layout[d] = random_variation(rng, d)
                identity = district_identity(register, d)
                stem = Path(file_name(rng, identity["short_name"], period)).stem
                written = write_variant(tmp / f"{period}_{d}.xlsx", rows[rows["district_code"] == d], identity, period, layout[d])
                if fmt_of[d] == "xlsx":
                    shutil.move(written, raw / period / f"{stem}.xlsx")
                else:
                    to_convert[fmt_of[d]].append((written, raw / period / f"{stem}.{fmt_of[d]}"))
        for fmt, pairs in to_convert.items():
            converted = tmp / f"as_{fmt}"
            for i in range(0, len(pairs), 100):  # one LibreOffice start converts many files
                subprocess.run(
                    [soffice, f"-env:UserInstallation={(tmp / 'profile').as_uri()}", "--headless", "--norestore",
                     "--convert-to", _LO_FILTERS[fmt], "--outdir", str(converted), *(str(src) for src, _ in pairs[i : i + 100])],
                    check=True, capture_output=True, timeout=1800,
                )  # fmt: skip
            for src, dst in pairs:
                shutil.move(converted / f"{src.stem}.{fmt}", dst)
    for path in rng.sample(sorted(raw.glob("*/*")), broken):
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    files = sum(1 for _ in raw.glob("*/*"))
    print(f"varied: {files} returns over {periods} periods written in {time.monotonic() - started:.1f} s")
    _write_marker(root, params)
    return raw


# --- (b) a national register, one period --------------------------------------------------------

def _name_pool(rng: random.Random, taken: set[str], count: int) -> list[str]:
    """``count`` two-syllable names whose diacritics-free forms are all distinct and not in ``taken``."""
    names = []
    while len(names) < count:
        a, b = rng.sample(SYLLABLES, 2)
        name = f"{a} {b}"
        key = ascii_name(name).lower()
        if key in taken:
            continue
        taken.add(key)
        names.append(name)
    return names


def national_register(units: int = NATIONAL_UNITS, districts: int = NATIONAL_DISTRICTS, seed: int = 7) -> pd.DataFrame:
    """A deterministic register shaped like a country's: district sizes vary, codes are unique."""
    rng = random.Random(seed)
    # Sizes around units/districts, never below 3, adding up to ``units`` exactly.
    mean = units / districts
    sizes = [max(3, int(rng.gauss(mean, mean / 2.5))) for _ in range(districts)]
    while sum(sizes) != units:
        i = rng.randrange(districts)
        step = 1 if sum(sizes) < units else -1
        if sizes[i] + step >= 3:
            sizes[i] += step
    short_names = _name_pool(rng, set(), districts)
    rows = []
    unit_code = 10000
    for d, (short, size) in enumerate(zip(short_names, sizes)):
        district_code = f"{100 + d:03d}"
        kind = rng.choices(("Huyện", "Thị xã", "Thành phố", "Quận"), weights=(70, 10, 12, 8))[0]
        if kind == "Quận":
            types = ["phuong"] * size
        elif kind in ("Thị xã", "Thành phố"):
            types = [rng.choices(("phuong", "xa"), weights=(60, 40))[0] for _ in range(size)]
        else:
            types = ["thi_tran"] + [rng.choices(("xa", "thi_tran"), weights=(93, 7))[0] for _ in range(size - 1)]
        for name, unit_type in zip(_name_pool(rng, set(), size), types):
            unit_code += rng.randint(1, 3)
            rows.append({
                "district_code": district_code,
                "district_name": f"{kind} {short}",
                "unit_code": str(unit_code),
                "unit_name": name,
                "unit_type": unit_type,
                "gso_unit_type": unit_type,
                "note": "",
            })
    return pd.DataFrame(rows, columns=REGISTER_COLUMNS)


def _national_chunk(args: tuple[str, str, list[tuple[str, str, str, str, str]]]) -> int:
    """Write one chunk of district returns: (district_code, file name, preparer, signer, sent iso)."""
    rows_path, period, jobs = args
    rows = pd.read_pickle(rows_path)
    for code, path, preparer, signer, sent_iso in jobs:
        sub = rows[rows["district_code"] == code]
        sent = dt.datetime.fromisoformat(sent_iso)
        write_return(
            Path(path), district=district_identity(sub, code), period=period,
            units=sub[["unit_code", "unit_name", "unit_type"]], rows=sub, preparer=preparer, signer=signer,
            province_title="TỈNH ỦY", timestamp=sent.astimezone(dt.timezone.utc).replace(tzinfo=None),
        )
        os.utime(path, (sent.timestamp(), sent.timestamp()))
    return len(jobs)


def make_national(out: Path, workers: int, units: int = NATIONAL_UNITS, districts: int = NATIONAL_DISTRICTS) -> tuple[Path, Path]:
    """The synthetic national register and one period of returns; returns (register CSV, raw folder)."""
    root = out / "national"
    params = {"units": units, "districts": districts, "period": NATIONAL_PERIOD, "v": 1}
    register_path, raw = root / "units.csv", root / "raw"
    if _marker_ok(root, params):
        return register_path, raw
    if root.exists():
        shutil.rmtree(root)
    (raw / NATIONAL_PERIOD).mkdir(parents=True)
    started = time.monotonic()
    register = national_register(units, districts)
    register.to_csv(register_path, index=False)
    rows = build_rows(register, NATIONAL_PERIOD, seed=int(NATIONAL_PERIOD.replace("-", "")))
    rows_path = root / ".rows.pkl"
    rows.to_pickle(rows_path)
    rng = random.Random("national-files")
    as_of = last_day(NATIONAL_PERIOD)
    jobs, names = [], set()
    for code in dict.fromkeys(register["district_code"]):
        short = district_identity(register[register["district_code"] == code], code)["short_name"]
        name = file_name(rng, short, NATIONAL_PERIOD)
        if name in names:
            raise ValueError(f"two districts would share the file name {name}")
        names.add(name)
        sent = dt.datetime.combine(as_of + dt.timedelta(days=rng.randint(1, 10)), dt.time(7, 30), VN_TZ)
        sent += dt.timedelta(minutes=rng.randint(0, 9 * 60))
        jobs.append((code, str(raw / NATIONAL_PERIOD / name), _person(rng), _person(rng), sent.isoformat()))
    chunks = [jobs[i::workers * 4] for i in range(workers * 4)]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        written = sum(pool.map(_national_chunk, [(str(rows_path), NATIONAL_PERIOD, c) for c in chunks if c]))
    rows_path.unlink()
    print(f"national: {len(register)} units, {written} returns written in {time.monotonic() - started:.1f} s")
    _write_marker(root, params)
    return register_path, raw


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Generate (or reuse) the benchmark returns.")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--periods", type=int, default=72, help="monthly periods of the province data set")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--skip-national", action="store_true")
    parser.add_argument("--varied", action="store_true", help="also the varied data set (needs LibreOffice)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    raw = make_province(args.out, args.periods, args.workers)
    print(f"province returns: {raw} ({sum(1 for _ in raw.glob('*/*.xlsx'))} files)")
    if args.varied:
        varied = make_varied(args.out, args.periods)
        print(f"varied returns: {varied} ({sum(1 for _ in varied.glob('*/*'))} files)")
    if not args.skip_national:
        register_path, nraw = make_national(args.out, args.workers)
        print(f"national register: {register_path}; returns: {nraw} ({sum(1 for _ in nraw.glob('*/*.xlsx'))} files)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
