"""Broken and hostile files never crash a run, exhaust memory or lose data.

One period holds the 17 sample returns and every kind of hostile file from
tests/hostile.py plus junk; `pipeline run` goes through as a separate process
(exit code and the memory of the whole process tree are measured), and the
warehouse must show each hostile file refused with a Vietnamese reason, junk
ignored and the published figures exact. Then the parse isolation itself: a
file that kills its worker process, and a file that never finishes.
"""

from __future__ import annotations

import importlib.util
import os
import re
import time
from pathlib import Path

import duckdb
import pytest

from pipeline.archive import Archive, FileVersion, sha256_of
from pipeline.config import PROJECT_ROOT
from pipeline.ingest import batch
from pipeline.ingest.batch import ParseCache, ParseJob, parse_all
from pipeline.ingest.guards import Limits
from tests import hostile
from tests.conftest import SAMPLE_RAW
from tests.hostile_parsers import exit_on_marker, hang_on_marker, pid_file
from tests.hostile_period import ACCEPTED, IGNORED, REFUSED, build_hostile_period

PERIOD = "2016-06"
MEMORY_LIMIT_MB = 1024
# The Board's published 2016-06 figures (spec/domain.md).
PUBLISHED = {
    "xa": (186, 82, 694),
    "phuong": (24, 24, 282),
    "thi_tran": (12, 9, 115),
    "total": (222, 115, 1091),
}
_VIETNAMESE = re.compile(r"[àáảãạăắằẳẵặâấầẩẫậđèéẻẽẹêếềểễệìíỉĩịòóỏõọôốồổỗộơớờởỡợùúủũụưứừửữựỳýỷỹỵ]", re.IGNORECASE)


def _measure_module():
    spec = importlib.util.spec_from_file_location("measure_memory", PROJECT_ROOT / "scripts" / "measure_memory.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    expected = build_hostile_period(root / "raw" / PERIOD, SAMPLE_RAW / PERIOD)
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}  # ephemeral instance
    warehouse = root / "out" / "warehouse.duckdb"
    result = _measure_module().measure(root / "raw", warehouse, env=env)
    return root, warehouse, expected, result


def _query(warehouse: Path, sql: str, params=None):
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return con.execute(sql, params or {}).df()
    finally:
        con.close()


def test_run_exits_zero_within_one_gigabyte(hostile_run):
    _, _, _, result = hostile_run
    assert result["exit_code"] == 0, result["output"][-3000:]
    assert result["peak_processes"] >= 2  # the sampler saw the parse workers too
    assert 0 < result["peak_tree_rss_mb"] < MEMORY_LIMIT_MB, result
    print({k: v for k, v in result.items() if k != "output"})


def test_every_file_gets_the_expected_status(hostile_run):
    _, warehouse, expected, _ = hostile_run
    files = _query(warehouse, "select file_name, status from audit.files where period = $p", {"p": PERIOD})
    assert files["file_name"].is_unique
    got = {
        row.file_name: ACCEPTED if row.status.startswith("accepted") else row.status for row in files.itertuples()
    }
    assert got == expected
    assert sum(v == REFUSED for v in got.values()) >= 19 and sum(v == IGNORED for v in got.values()) == 5


def test_each_refusal_has_a_clear_vietnamese_reason(hostile_run):
    _, warehouse, _, _ = hostile_run
    refusals = _query(
        warehouse,
        """
        select f.file_name, i.code, i.message, i.action
        from audit.files f join audit.issues i on i.period = f.period and i.sha256 = f.sha256
        where f.period = $p and f.status = 'refused' and i.severity = 'error'
        """,
        {"p": PERIOD},
    )
    refused = _query(warehouse, "select file_name from audit.files where period = $p and status = 'refused'", {"p": PERIOD})
    assert set(refusals["file_name"]) == set(refused["file_name"])  # none refused without a reason
    for row in refusals.itertuples():
        assert row.code.startswith("file_"), row  # refused as a file, before any figure was read
        assert row.file_name in row.message and _VIETNAMESE.search(row.message), row
        assert "Error" not in row.message and "Traceback" not in row.message, row
        assert row.action and _VIETNAMESE.search(row.action), row
    codes = dict(zip(refusals["file_name"], refusals["code"]))
    assert codes["bomb.xlsx"] == "file_zip_bomb"
    assert codes["laughs.xlsx"] == "file_xml_entities"
    assert codes["Bao cao (mat khau).xlsx"] == "file_encrypted"
    assert codes["far.xlsx"] == "file_too_many_rows"
    assert codes["Danh sach dang vien.xlsx"] == "file_too_many_rows"
    assert codes["Chu Pah (lien ket).xlsx"] == "file_unsafe_path"


def test_good_returns_load_exactly(hostile_run):
    _, warehouse, _, _ = hostile_run
    summary = _query(warehouse, "select * from marts.province_summary where period = $p", {"p": PERIOD}).set_index("unit_type")
    for unit_type, (units, with_cell, members) in PUBLISHED.items():
        assert (summary.at[unit_type, "units"], summary.at[unit_type, "units_with_cell"], summary.at[unit_type, "cell_members"]) == (
            units,
            with_cell,
            members,
        ), unit_type
    assert summary.at["total", "coverage_pct"] == 51.8 and summary.at["total", "cells_hd28"] == 8
    units = _query(warehouse, "select unit_code from core.unit_returns where period = $p", {"p": PERIOD})
    assert len(units) == 222 and units["unit_code"].is_unique


def test_nothing_outside_the_period_folder_was_read(hostile_run):
    root, _, _, _ = hostile_run
    passwd = Path("/etc/passwd").read_bytes()
    archived = list((root / "out" / "archive" / "objects").rglob("*"))
    assert archived and not any(p.is_file() and p.read_bytes() == passwd for p in archived)


# ------------------------------------------------------------ parse isolation


def _jobs(tmp_path: Path, files: list[tuple[str, bytes]]) -> tuple[Archive, list[ParseJob]]:
    archive = Archive(tmp_path / "archive")
    jobs = []
    for name, data in files:
        sha = sha256_of(data)
        jobs.append(ParseJob(sha, name, archive.store(data, sha, Path(name).suffix), None))
    return archive, jobs


def _good_files(n: int) -> list[tuple[str, bytes]]:
    return [(p.name, p.read_bytes()) for p in sorted((SAMPLE_RAW / PERIOD).glob("*.xlsx"))[:n]]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_a_file_that_kills_its_worker_costs_one_refusal(tmp_path, matcher):
    """A real native abort: with the sheet-size guard lifted, calamine's allocation for a far cell
    fails under the worker's memory cap and Rust aborts the process (no exception to catch)."""
    far = hostile.far_cell_xlsx(tmp_path).read_bytes()
    good = _good_files(4)
    archive, jobs = _jobs(tmp_path, good[:2] + [("far.xlsx", far)] + good[2:])
    lifted = Limits(max_sheet_rows=10**9, max_sheet_cols=10**9)
    cache = ParseCache(tmp_path / "cache", "test")
    results, parsed_now = parse_all(jobs, archive, cache, matcher, lifted, workers=2)
    assert parsed_now == 5
    culprit = results[jobs[2].sha256]
    assert culprit.rows is None and [i.code for i in culprit.issues] == ["file_corrupt"]
    assert "dừng đột ngột" in culprit.issues[0].message
    for job in jobs[:2] + jobs[3:]:
        assert results[job.sha256].district_code is not None, job.file_name
        assert results[job.sha256].issues == [], job.file_name
    # The refusal is remembered, so the re-run (and the build step) agree without crashing again.
    again, parsed_again = parse_all(jobs, archive, cache, matcher, lifted, workers=2)
    assert parsed_again == 0 and [i.code for i in again[jobs[2].sha256].issues] == ["file_corrupt"]


def test_worker_deaths_never_refuse_an_innocent_file(tmp_path, matcher, monkeypatch):
    good = _good_files(5)
    files = [good[0], ("DIE one.xlsx", good[1][1] + b"1"), good[2], ("DIE two.xlsx", good[3][1] + b"2"), good[4]]
    archive, jobs = _jobs(tmp_path, files)
    results, _ = parse_all(jobs, archive, ParseCache(tmp_path / "cache", "t"), matcher, Limits(), 2, exit_on_marker)
    for job in jobs:
        codes = [i.code for i in results[job.sha256].issues]
        if "DIE" in job.file_name:
            assert codes == ["file_corrupt"], job.file_name
        else:
            assert codes == [] and results[job.sha256].district_code is not None, job.file_name


def test_a_file_that_never_finishes_is_timed_out_and_its_worker_killed(tmp_path, matcher, monkeypatch):
    monkeypatch.setattr(batch, "PARSE_TIMEOUT_SECONDS", 3)
    token = f"{os.getpid()}{time.monotonic_ns()}"
    pidfile = pid_file(token)
    good = _good_files(3)
    files = [good[0], (f"HANG-{token}.xlsx", good[1][1] + b"h"), good[2]]
    archive, jobs = _jobs(tmp_path, files)
    started = time.monotonic()
    results, _ = parse_all(jobs, archive, ParseCache(tmp_path / "cache", "t"), matcher, Limits(), 2, hang_on_marker)
    assert time.monotonic() - started < 30
    assert [i.code for i in results[jobs[1].sha256].issues] == ["file_parse_timeout"]
    assert results[jobs[0].sha256].district_code and results[jobs[2].sha256].district_code
    pid = int(pidfile.read_text())
    pidfile.unlink()
    assert not _alive(pid)


def _period_versions(archive: Archive, period: str, files: list[tuple[str, bytes]]) -> list[FileVersion]:
    versions = []
    for name, data in files:
        sha = sha256_of(data)
        versions.append(FileVersion(period=period, path=f"{period}/{name}", file_name=name, sha256=sha, size_bytes=len(data),
                                    modified_at="2016-07-01T00:00:00Z", first_seen_at="2016-07-01T00:00:00Z",
                                    archived_path=archive.store(data, sha, Path(name).suffix)))  # fmt: skip
    return versions


def test_a_worker_death_in_a_period_task_costs_one_refusal_and_that_periods_preparation(tmp_path, matcher):
    """The parse step parses a period's files in one task: when a file kills the worker,
    the task's files are parsed again one by one (only the culprit is refused) and the
    period is left for the build to prepare; other periods are unaffected."""
    good = _good_files(5)
    archive = Archive(tmp_path / "archive")
    bad = _period_versions(archive, "2016-06", [good[0], ("DIE one.xlsx", good[1][1] + b"1"), good[2]])
    fine = _period_versions(archive, "2016-07", good[3:])
    cache, prepared = ParseCache(tmp_path / "cache", "t"), ParseCache.at(tmp_path / "prepared")
    periods = {"2016-06": (bad, "key-06"), "2016-07": (fine, "key-07")}
    done = batch.parse_periods(periods, archive, cache, prepared, matcher, Limits(), 2, exit_on_marker)
    assert (done.versions, done.parsed_now, done.unreadable) == (5, 5, 1)
    for v in bad + fine:
        codes = [i.code for i in cache.get(v.sha256).issues]
        assert codes == (["file_corrupt"] if "DIE" in v.file_name else []), v.file_name
    assert prepared.get("key-06") is None and prepared.get("key-07") is not None
    # Nothing is parsed again; the period the task could not prepare is prepared now.
    again = batch.parse_periods(periods, archive, cache, prepared, matcher, Limits(), 2, exit_on_marker)
    assert (again.parsed_now, again.unreadable, again.prepared_now) == (0, 1, 1)
    assert [i.code for i in prepared.get("key-06").issues[bad[1].sha256]] == ["file_corrupt"]


def test_a_period_task_that_never_finishes_is_timed_out(tmp_path, matcher, monkeypatch):
    monkeypatch.setattr(batch, "PARSE_TIMEOUT_SECONDS", 3)
    token = f"{os.getpid()}{time.monotonic_ns()}"
    pidfile = pid_file(token)
    good = _good_files(3)
    archive = Archive(tmp_path / "archive")
    versions = _period_versions(archive, "2016-06", [good[0], (f"HANG-{token}.xlsx", good[1][1] + b"h"), good[2]])
    cache = ParseCache(tmp_path / "cache", "t")
    started = time.monotonic()
    done = batch.parse_periods({"2016-06": (versions, "k")}, archive, cache, ParseCache.at(tmp_path / "p"), matcher, Limits(), 2, hang_on_marker)
    assert time.monotonic() - started < 30
    assert (done.parsed_now, done.unreadable) == (3, 1)
    assert [i.code for i in cache.get(versions[1].sha256).issues] == ["file_parse_timeout"]
    assert cache.get(versions[0].sha256).district_code and cache.get(versions[2].sha256).district_code
    pidfile.unlink(missing_ok=True)


def test_worker_memory_cap_leaves_room_for_two_workers_under_one_gigabyte():
    # What a worker may take on top of its start, twice, plus the pipeline (~250 MB), stays under 1 GB.
    assert 2 * batch.WORKER_HEADROOM_BYTES + 250 * 2**20 < 2**30
    assert batch.worker_memory_limit(300 * 2**20) == 300 * 2**20 + batch.WORKER_HEADROOM_BYTES
    assert batch.worker_memory_limit(None) == batch.WORKER_MEMORY_BYTES
    assert batch.worker_memory_limit(700 * 2**20) == batch.WORKER_MEMORY_BYTES
