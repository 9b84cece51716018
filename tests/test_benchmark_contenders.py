"""benchmarks.run: the parse floor and the naive script get through returns as districts send them."""

import shutil
from pathlib import Path

import duckdb
import pytest

from benchmarks.run import _unique_names, floor_main, naive_main

FIXTURES = Path(__file__).parent / "fixtures" / "returns"


def _mixed_raw(tmp_path: Path) -> Path:
    """One period of .xlsx, .xls and (Gnumeric) .ods returns plus a damaged and a non-workbook file."""
    period = tmp_path / "raw" / "2020-01"
    period.mkdir(parents=True)
    for name in ("00_canonical.xlsx", "01_instructions_first.xls", "02_one_row_header.ods",
                 "04_reordered_extra_columns.gnumeric.ods"):  # fmt: skip
        shutil.copy(FIXTURES / name, period / name)
    data = (FIXTURES / "00_canonical.xlsx").read_bytes()
    (period / "cut short.xlsx").write_bytes(data[: len(data) // 2])
    (period / "ghi chu.xls").write_bytes(b"khong phai bang tinh\n")
    return tmp_path / "raw"


def _fields(line: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in line.split())


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning")
def test_naive_script_reads_every_format_and_passes_over_broken_files(tmp_path, capsys):
    raw = _mixed_raw(tmp_path)
    assert naive_main(raw, tmp_path / "naive.duckdb") == 0
    out = _fields(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["files"] == "6"
    assert out["unreadable"] == "2"  # the .xls and .ods engines are installed: only the broken two fail
    con = duckdb.connect(str(tmp_path / "naive.duckdb"), read_only=True)
    files = {f for (f,) in con.execute("select distinct file from returns").fetchall()}
    assert len(files) == 4 and any(f.endswith(".xls") for f in files) and any(f.endswith(".ods") for f in files)


def test_parse_floor_counts_what_calamine_cannot_open(tmp_path, capsys):
    assert floor_main(_mixed_raw(tmp_path)) == 0
    out = _fields(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["files"] == "6"
    assert int(out["cells"]) > 0
    assert out["unreadable"] == "3"  # the broken two, and Gnumeric's .ods (calamine 0.9 refuses its XML)


def test_unique_names_gives_duckdb_distinct_text_labels():
    assert _unique_names(["x", "X", 1, "1", "x_1", None]) == ["x", "X_1", "1", "1_1", "x_1_1", "None"]
