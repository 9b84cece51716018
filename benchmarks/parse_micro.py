"""Micro-benchmark of ``parse_return`` on the real sample period, in this process.

    uv run python -m benchmarks.parse_micro [--raw data/raw/2016-06] [--reps 20] [--stages]

Reads every return of the folder once into memory, parses one file to pay the
imports, then times ``parse_return`` over all files ``--reps`` times and prints
the median and best ms per file, and the first round (cold text caches).
``--stages`` also times the steps parse_return is made of, on the same bytes,
so a regression can be placed.
The python-calamine read alone is printed as the floor.
"""

from __future__ import annotations

import argparse
import io
import statistics
import time
from pathlib import Path

from pipeline.ingest.guards import Limits, check_bytes, sniff_format
from pipeline.ingest.layout import choose_sheet
from pipeline.ingest.match import UnitMatcher
from pipeline.ingest.parse import _match_units, _typed_columns, decode_sheets, parse_return, unit_frame
from pipeline.ingest.read import read_workbook
from pipeline.ingest.model import ParsedReturn
from pipeline.register import load_register

ROOT = Path(__file__).resolve().parent.parent
SUFFIXES = (".xlsx", ".xlsm", ".xls", ".ods")


def _per_file(fn, payloads, reps: int) -> tuple[float, float, float]:
    """(first, median, best) ms per file of ``fn(name, data)`` over all payloads, ``reps`` rounds after the first.

    The first round runs with cold text caches (every distinct cell text and
    unit name is new to the process), the others with warm ones.
    """
    started = time.perf_counter()
    for name, data in payloads:
        fn(name, data)
    first = (time.perf_counter() - started) * 1000 / len(payloads)
    rounds = []
    for _ in range(reps):
        started = time.perf_counter()
        for name, data in payloads:
            fn(name, data)
        rounds.append((time.perf_counter() - started) * 1000 / len(payloads))
    return first, statistics.median(rounds), min(rounds)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--raw", type=Path, default=ROOT / "data/raw/2016-06")
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--stages", action="store_true")
    args = ap.parse_args(argv)

    paths = sorted(p for p in args.raw.iterdir() if p.suffix.lower() in SUFFIXES)
    matcher = UnitMatcher(load_register(ROOT / "data/reference/units.csv", ROOT / "data/reference/aliases.csv"))
    limits = Limits()

    def calamine(name, data):
        import python_calamine as pc

        wb = pc.CalamineWorkbook.from_filelike(io.BytesIO(data))
        for n in wb.sheet_names:
            wb.get_sheet_by_name(n).to_python(skip_empty_area=False)

    # Files calamine cannot read (cut short, not a workbook) are left out, as from the
    # floor in benchmarks.run: every stage is then timed on the same readable files.
    payloads, unreadable = [], 0
    for p in paths:
        data = p.read_bytes()
        try:
            calamine(p.name, data)
        except Exception:  # noqa: BLE001 - whatever calamine refuses
            unreadable += 1
            continue
        payloads.append((p.name, data))
    if not payloads:
        raise SystemExit(f"no readable return in {args.raw}")
    print(f"{len(payloads)} files from {args.raw} ({unreadable} unreadable left out), {args.reps} rounds")

    def full(name, data):
        parse_return(data, name, matcher, limits)

    rows = [("calamine read (floor)", calamine), ("parse_return", full)]
    if args.stages:
        read_cache = {}

        def read(name, data):
            read_cache[name] = read_workbook(data, sniff_format(data), limits.max_sheet_rows, limits.max_sheet_cols)

        def decode(name, data):
            read(name, data)
            decode_sheets(read_cache[name], data if data[:2] == b"PK" else None)

        def layout(name, data):
            choose_sheet(read_cache[name])

        def typed(name, data):
            sheet, lay = choose_sheet(read_cache[name])
            _typed_columns(sheet, lay)

        def match(name, data):
            sheet, lay = choose_sheet(read_cache[name])
            columns = _typed_columns(sheet, lay)
            _match_units(ParsedReturn(file_name=name, title_lines=lay.title_lines), matcher, columns)

        def frame(name, data):
            sheet, lay = choose_sheet(read_cache[name])
            columns = _typed_columns(sheet, lay)
            _match_units(ParsedReturn(file_name=name, title_lines=lay.title_lines), matcher, columns)
            unit_frame(columns)

        rows[1:1] = [
            ("check_bytes", lambda name, data: check_bytes(data, name, limits)),
            ("read_workbook", read),
            ("read + _decode_text", decode),
            ("choose_sheet (layout)", layout),
            ("layout + _typed_columns", typed),
            ("layout + typed + _match_units", match),
            ("layout + typed + match + unit_frame", frame),
        ]
    # Imports and one-time tables (vocabulary, charmaps) are paid before timing, on one file.
    parse_return(payloads[0][1], payloads[0][0], matcher, limits)
    for label, fn in rows:
        first, med, best = _per_file(fn, payloads, args.reps)
        print(f"{label:32s} {med:7.3f} ms/file (best round {best:.3f}, first round {first:.3f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
