"""benchmarks.run: the one-file change behind the rerun measurement, on generated and on other returns."""

import hashlib
import os

import pytest
from openpyxl import Workbook
from python_calamine import CalamineWorkbook

from benchmarks.run import changeable, main, make_new_version, resave


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _cells(path):
    wb = CalamineWorkbook.from_path(str(path))
    return {name: wb.get_sheet_by_name(name).to_python() for name in wb.sheet_names}


def _foreign_return(path):
    """A workbook that is not in the generated layout (another sheet name, other columns)."""
    wb = Workbook()
    ws = wb.active
    ws.title = "Bieu 1"
    ws.append(["STT", "Tên xã", "Đảng viên"])
    ws.append([1, "Xã Ia Dêr", 120])
    wb.save(path)
    return path


def test_resave_makes_a_new_version_with_the_same_cells(tmp_path):
    path = _foreign_return(tmp_path / "Ia Grai.xlsx")
    link = tmp_path / "linked.xlsx"
    os.link(path, link)  # the benchmark's raw folders are hard links into the data set
    before, cells = _digest(path), _cells(path)
    resave(path)
    assert _digest(path) != before
    assert _cells(path) == cells
    assert _digest(link) == before  # written to a new inode: the data set is untouched
    resave(path)
    assert _digest(path) != before  # every repetition is a new version


def test_new_version_of_a_return_outside_the_generated_layout(tmp_path):
    path = _foreign_return(tmp_path / "x.xlsx")
    before = _digest(path)
    make_new_version(path)
    assert _digest(path) != before
    assert _cells(path)["Bieu 1"][1] == [1.0, "Xã Ia Dêr", 120.0]


def test_changeable_skips_formats_it_cannot_rewrite(tmp_path):
    (tmp_path / "a.xls").write_bytes(b"\xd0\xcf\x11\xe0")
    (tmp_path / ".hidden.xlsx").write_bytes(b"")
    target = _foreign_return(tmp_path / "b.xlsx")
    assert changeable(tmp_path) == target
    target.unlink()
    with pytest.raises(SystemExit, match="no .xlsx"):
        changeable(tmp_path)


def test_raw_folder_needs_enough_periods(tmp_path):
    raw = tmp_path / "raw"
    for period in ("2024-01", "2024-02", "2024-03"):
        (raw / period).mkdir(parents=True)
    (raw / "notes").mkdir()  # not a period: not counted
    with pytest.raises(SystemExit, match="at least 4 period folders"):
        main(["--raw", str(raw), "--out", str(tmp_path / "out"), "--skip-national"])
    with pytest.raises(SystemExit):
        main(["--raw", str(tmp_path / "missing"), "--out", str(tmp_path / "out")])
