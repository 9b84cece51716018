"""Discovery: junk ignored, unsafe entries refused, odd names survive."""

from __future__ import annotations

import os
import unicodedata
from datetime import UTC

import hostile
import pytest

from pipeline.ingest.discover import is_junk, list_periods, scan_period, skipped_issue


def _reasons(skipped):
    return {s.rel_path: (s.reason, s.refuse) for s in skipped}


def test_list_periods_keeps_only_valid_months(tmp_path):
    for name in ("2016-06", "2016-12", "2016-13", "2016-00", "2016-6", "notes", "2017-01"):
        (tmp_path / name).mkdir()
    (tmp_path / "2018-03").write_text("a file, not a folder")
    os.symlink("/tmp", tmp_path / "2019-01")  # a period folder reaching outside
    assert list_periods(tmp_path) == ["2016-06", "2016-12", "2017-01"]
    assert list_periods(tmp_path / "missing") == []


@pytest.mark.parametrize(
    "name",
    [
        "~$Chu Pah.xlsx",
        "Thumbs.db",
        ".DS_Store",
        "desktop.ini",
        ".~lock.Chu Pah.xlsx#",
        "._Chu Pah.xlsx",
        "__MACOSX",
        "~WRL0001.tmp",
    ],
)
def test_junk_names(name):
    assert is_junk(name)


@pytest.mark.parametrize(
    "name", ["Chu Pah.xlsx", "BC CBCQ ChuProng (sua lan 2).xlsx", "IaPa_201612 (1).xlsx", "~ban nhap.xlsx"]
)
def test_real_names_are_not_junk(name):
    assert not is_junk(name)


def test_scan_period(tmp_path):
    period = tmp_path / "2016-06"
    other = tmp_path / "2016-12"
    period.mkdir()
    other.mkdir()
    hostile.good_xlsx(period)
    (period / "~$Chu Pah.xlsx").write_bytes(b"lock")
    (period / "Thumbs.db").write_bytes(b"x")
    (period / ".hidden").mkdir()
    (period / ".hidden" / "inside.xlsx").write_bytes(b"x")
    (period / "__MACOSX").mkdir()
    (period / "Cong van kem theo.pdf").write_bytes(b"%PDF-1.4")
    (period / "Huyen Ia Pa").mkdir()
    (period / "Huyen Ia Pa" / "IaPa_201606.xlsx").write_bytes(b"x")
    (other / "Krong Pa.xlsx").write_bytes(b"x")
    os.symlink("/etc/passwd", period / "passwd.xlsx")
    os.symlink(other / "Krong Pa.xlsx", period / "Krong Pa.xlsx")  # another period: refused
    os.symlink(period / "Chu Pah.xlsx", period / "lien ket.xlsx")  # inside: followed
    os.symlink(period / "missing.xlsx", period / "hong.xlsx")
    os.symlink(period, period / "Huyen Ia Pa" / "vong lap")  # a loop back up
    os.mkfifo(period / "fifo.xlsx")

    files, skipped = scan_period(tmp_path, "2016-06")

    # A non-spreadsheet attachment is not skipped: the guards refuse it with a reason.
    assert [f.rel_path for f in files] == [
        "2016-06/Chu Pah.xlsx",
        "2016-06/Cong van kem theo.pdf",
        "2016-06/Huyen Ia Pa/IaPa_201606.xlsx",
        "2016-06/lien ket.xlsx",
    ]
    good = files[0]
    assert good.file_name == "Chu Pah.xlsx"
    assert good.size_bytes == good.path.stat().st_size > 0
    assert good.modified_at.tzinfo == UTC
    assert abs(good.modified_at.timestamp() - good.path.stat().st_mtime) < 1e-3
    assert _reasons(skipped) == {
        "2016-06/.hidden": ("ignored_junk", False),
        "2016-06/Krong Pa.xlsx": ("unsafe_path", True),
        "2016-06/Thumbs.db": ("ignored_junk", False),
        "2016-06/__MACOSX": ("ignored_junk", False),
        "2016-06/fifo.xlsx": ("unsafe_path", True),
        "2016-06/hong.xlsx": ("broken_link", True),
        "2016-06/passwd.xlsx": ("unsafe_path", True),
        "2016-06/~$Chu Pah.xlsx": ("ignored_junk", False),
    }
    refused = {s.rel_path: skipped_issue(s) for s in skipped}
    assert refused["2016-06/passwd.xlsx"].code == "file_unsafe_path"
    assert "passwd.xlsx" in refused["2016-06/passwd.xlsx"].message
    assert refused["2016-06/hong.xlsx"].code == "file_corrupt"
    assert refused["2016-06/Thumbs.db"] is None


def test_hostile_symlink_maker_is_refused(tmp_path):
    period = tmp_path / "2016-06"
    period.mkdir()
    hostile.symlink_to_passwd(period)
    files, skipped = scan_period(tmp_path, "2016-06")
    assert files == [] and [(s.reason, s.refuse) for s in skipped] == [("unsafe_path", True)]


def test_odd_names_do_not_crash(tmp_path):
    period = tmp_path / "2016-06"
    period.mkdir()
    nfd = unicodedata.normalize("NFD", "Chư Păh báo cáo.xlsx")
    (period / nfd).write_bytes(b"x")
    (period / ("Đ" * 120 + ".xlsx")).write_bytes(b"x")  # 245 bytes, near the 255-byte limit
    os.close(os.open(os.fsencode(period) + b"/bad\xff\xfename.xlsx", os.O_CREAT | os.O_WRONLY))
    (period / "tab\tand\nnewline.xlsx").write_bytes(b"x")

    files, skipped = scan_period(tmp_path, "2016-06")

    assert skipped == []
    names = {f.file_name for f in files}
    assert "Chư Păh báo cáo.xlsx" in names  # NFC for people and keys
    assert "bad\ufffd\ufffdname.xlsx" in names
    assert all(f.path.exists() for f in files)  # the exact on-disk path still opens
    for f in files:
        f.rel_path.encode("utf-8")  # storable anywhere


def test_symlinked_period_folder_outside_raw_is_refused(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "x.xlsx").write_bytes(b"x")
    raw = tmp_path / "raw"
    raw.mkdir()
    os.symlink(outside, raw / "2016-06")
    files, skipped = scan_period(raw, "2016-06")
    assert files == [] and skipped[0].reason == "unsafe_path"
    assert scan_period(raw, "2016-07") == ([], [])


def test_folder_state_follows_what_the_pipeline_records(tmp_path):
    from pipeline.ingest.discover import period_state

    folder = tmp_path / "2016-06"
    folder.mkdir()
    ret = folder / "Chu Se.xlsx"
    ret.write_bytes(b"x" * 10)
    os.utime(ret, ns=(1_000_000_000_000, 1_000_000_000_000))
    first = period_state(tmp_path, "2016-06")
    assert first.files == 1 and first.newest_mtime == 1000.0
    assert period_state(tmp_path, "2016-06") == first  # a listing gives one state

    (folder / "~$Chu Se.xlsx").write_bytes(b"lock")  # junk: nobody sent it
    (folder / ".DS_Store").write_bytes(b"meta")
    assert period_state(tmp_path, "2016-06").state == first.state

    os.utime(ret, ns=(1_000_000_000_001, 1_000_000_000_001))  # saved again: a nanosecond later
    touched = period_state(tmp_path, "2016-06")
    assert touched.state != first.state

    os.symlink(tmp_path / "gone.xlsx", folder / "link.xlsx")  # refused entries count too
    linked = period_state(tmp_path, "2016-06")
    assert linked.state != touched.state and linked.files == 2
