"""A run killed with SIGKILL at any moment, then run again, gives exactly the uninterrupted figures.

Two periods (the 2016-06 sample and a generated 2016-12) are run once without
interruption for reference. Then, on a fresh output folder, `pipeline run` is
killed six times — four at named stages through the test-only hook
PIPELINE_TEST_KILL_AT (objects archived but manifest not written, one file
parsed, built but not published, published but no reports) and two at
moments chosen by the clock. After every kill the published warehouse must open and no process of
the run may be left behind; after the final normal run every public table
equals the reference, with no duplicate rows and nothing left in .build/.

PDF rendering is switched off (no soffice on PATH) to keep the runs short.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from pipeline.config import PROJECT_ROOT
from pipeline.sample.generate import generate
from tests.conftest import REGISTER, SAMPLE_RAW

PERIODS = ("2016-06", "2016-12")
TABLES = {
    "marts.province_summary": "period, unit_type",
    "marts.district_summary": "period, district_code",
    "core.unit_returns": "period, unit_code",
    "core.district_returns": "period, district_code",
    "audit.files": "period, path, sha256",
    "audit.issues": "period, path, sha256, code, cell",
}
# Differ between two runs by nature, not by outcome.
RUN_COLUMNS = {"first_seen_at", "built_at", "run_id"}


_RUN_TMP: list[Path] = []  # the killed runs' temporary folder (see _killed_runs_tmp)


@pytest.fixture(autouse=True, scope="module")
def _killed_runs_tmp():
    """A run killed outright leaves its temporary files (the parse workers' socket folder,
    Dagster's): in a folder of this module's, not in the machine's /tmp. Short, for the socket."""
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="crash-", dir="/tmp"))
    _RUN_TMP.append(folder)
    yield
    _RUN_TMP.remove(folder)
    shutil.rmtree(folder, ignore_errors=True)


def _env(raw: Path, out: Path, kill_at: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DAGSTER_HOME", "PIPELINE_TEST_KILL_AT")}
    env.update(
        PIPELINE_RAW_DIR=str(raw),
        PIPELINE_WAREHOUSE=str(out / "warehouse.duckdb"),
        PATH=str(Path(sys.executable).parent),  # no soffice: no PDF
    )
    if _RUN_TMP:
        env["TMPDIR"] = str(_RUN_TMP[-1])
    if kill_at:
        env["PIPELINE_TEST_KILL_AT"] = kill_at
    return env


def _start(raw: Path, out: Path, kill_at: str | None = None) -> subprocess.Popen:
    # A run that finished before a clock kill records its inputs, and the next
    # plain run would then have nothing to do; a named stage must be reached.
    extra = ["--force"] if kill_at else []
    return subprocess.Popen(
        [sys.executable, "-m", "pipeline.cli", "run", *extra],
        cwd=PROJECT_ROOT,
        env=_env(raw, out, kill_at),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def _run(raw: Path, out: Path, kill_at: str | None = None) -> tuple[int, str]:
    proc = _start(raw, out, kill_at)
    output, _ = proc.communicate(timeout=300)
    return proc.returncode, output.decode("utf-8", "replace")


def _run_processes(out: Path) -> list[int]:
    """Processes (parse workers, fork server) still working for the run writing to ``out``."""
    marker = f"PIPELINE_WAREHOUSE={out / 'warehouse.duckdb'}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if marker in (entry / "environ").read_bytes().split(b"\0"):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def _after_kill(out: Path) -> None:
    """What every kill must leave: no process behind, a published file that opens (or none yet)."""
    deadline = time.monotonic() + 10
    while _run_processes(out) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _run_processes(out) == [], "processes of the killed run are still alive"
    published = out / "warehouse.duckdb"
    if published.exists():
        assert not Path(f"{published}.wal").exists()
        con = duckdb.connect(str(published), read_only=True)
        try:
            con.execute("select count(*) from core.unit_returns").fetchone()
            con.execute("select count(*) from marts.province_summary").fetchone()
        finally:
            con.close()


def _tables(out: Path) -> dict[str, pd.DataFrame]:
    con = duckdb.connect(str(out / "warehouse.duckdb"), read_only=True)
    try:
        frames = {}
        for table, order in TABLES.items():
            frame = con.execute(f"select * from {table} order by all").df()
            frames[table] = frame.drop(columns=[c for c in frame.columns if c in RUN_COLUMNS]).reset_index(drop=True)
        frames["fingerprints"] = con.execute("select period, fingerprint, files from audit.period_builds order by period").df()
        return frames
    finally:
        con.close()


def _duplicates(out: Path) -> dict[str, int]:
    con = duckdb.connect(str(out / "warehouse.duckdb"), read_only=True)
    try:
        return {
            "unit_returns": con.execute(
                "select count(*) from (select period, unit_code from core.unit_returns group by all having count(*) > 1)"
            ).fetchone()[0],
            "files": con.execute("select count(*) - count(distinct (period, path, sha256)) from audit.files").fetchone()[0],
            "issues": con.execute(
                "select count(*) from (select * from audit.issues group by all having count(*) > 1)"
            ).fetchone()[0],
        }
    finally:
        con.close()


def _assert_same_as_reference(out: Path, reference: dict[str, pd.DataFrame]) -> None:
    got = _tables(out)
    for name, expected in reference.items():
        pd.testing.assert_frame_equal(got[name], expected, obj=name)
    assert _duplicates(out) == {"unit_returns": 0, "files": 0, "issues": 0}
    leftovers = sorted(p.name for p in (out / ".build").iterdir() if p.name != "build.lock")
    assert leftovers == []
    assert not list(out.glob("*.wal")) and not list(out.glob(".write-test-*"))
    for period in PERIODS:
        report = out / "reports" / period / f"Bao_cao_chi_bo_co_quan_{period}.xlsx"
        assert report.exists() and report.stat().st_size > 0
        assert not list((out / "reports" / period).glob(".tmp-*"))


@pytest.fixture(scope="module")
def two_periods(tmp_path_factory):
    root = tmp_path_factory.mktemp("crash")
    raw = root / "raw"
    shutil.copytree(SAMPLE_RAW / PERIODS[0], raw / PERIODS[0])
    register = pd.read_csv(REGISTER, dtype=str, keep_default_na=False)
    generate(register, PERIODS[1], raw / PERIODS[1], seed=20161231)
    started = time.monotonic()
    code, output = _run(raw, root / "reference")
    assert code == 0, output[-3000:]
    seconds = time.monotonic() - started
    reference = _tables(root / "reference")
    assert set(reference["marts.province_summary"]["period"]) == set(PERIODS)
    assert len(reference["core.unit_returns"]) == 2 * 222
    return root, raw, reference, seconds


def test_killed_six_times_then_rerun_gives_the_uninterrupted_figures(two_periods):
    root, raw, reference, seconds = two_periods
    out = root / "killed"
    # Named stages in pipeline order, with kills by the clock in between. Every
    # named stage after a clock kill is reached whatever the clock hit (ingest
    # and the build run on every run; only "parsed_one" needs an empty cache).
    plan = ["archive_stored", "parsed_one", 0.5, "build_before_publish", 0.8, "published"]
    for step in plan:
        if isinstance(step, str):
            code, output = _run(raw, out, kill_at=step)
            assert code == -signal.SIGKILL, f"{step} was not reached:\n{output[-2000:]}"
            if step == "build_before_publish":
                # Built and durable in .build/ but not renamed: what readers see is unchanged.
                assert any((out / ".build").glob("*.duckdb"))
        else:
            proc = _start(raw, out)
            try:
                proc.wait(timeout=seconds * step)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGKILL)  # the run's own process only, as a crash would
            proc.communicate(timeout=60)
        _after_kill(out)
    code, output = _run(raw, out)
    assert code == 0, output[-3000:]
    _assert_same_as_reference(out, reference)


def test_a_stale_wal_beside_the_published_file_is_folded_in_not_replayed_onto_the_next(tmp_path):
    """A writer that died holding the published file read-write leaves a WAL; the next build keeps its data."""
    from pipeline.warehouse.build import building

    published = tmp_path / "warehouse.duckdb"
    with building(published, tmp_path / ".build") as con:
        con.execute("create table t as select 1 as x")
    writer = subprocess.run(
        [
            sys.executable,
            "-c",
            "import duckdb, os, sys; c = duckdb.connect(sys.argv[1]); c.execute('pragma disable_checkpoint_on_shutdown');"
            " c.execute('insert into t values (2)'); os._exit(0)",
            str(published),
        ],
        capture_output=True,
    )
    assert writer.returncode == 0, writer.stderr
    assert Path(f"{published}.wal").exists()
    with building(published, tmp_path / ".build") as con:
        con.execute("insert into t values (3)")
    assert not Path(f"{published}.wal").exists()
    con = duckdb.connect(str(published), read_only=True)
    assert sorted(r[0] for r in con.execute("select x from t").fetchall()) == [1, 2, 3]
    con.close()


def test_collecting_the_same_folder_twice_records_the_same_versions(tmp_path):
    """Junk and refused links carry their own mtime, not the run's clock, so a re-run after a kill matches."""
    from dataclasses import asdict

    from pipeline.archive import Archive
    from pipeline.ingest.collect import collect_period
    from pipeline.ingest.guards import Limits

    folder = tmp_path / "raw" / "2016-06"
    folder.mkdir(parents=True)
    shutil.copy2(SAMPLE_RAW / "2016-06" / "Ia Pa.xlsx", folder)
    (folder / "Thumbs.db").write_bytes(bytes(64))
    (folder / "~$Ia Pa.xlsx").write_bytes(b"owner")
    os.symlink("/etc/passwd", folder / "passwd.xlsx")
    runs = []
    for name in ("first", "second"):
        collected = collect_period(tmp_path / "raw", "2016-06", Archive(tmp_path / name), Limits())
        runs.append([{k: v for k, v in asdict(x).items() if k != "first_seen_at"} for x in collected.versions])
        time.sleep(1.1)  # a later clock second
    assert runs[0] == runs[1] and len(runs[0]) == 4


def test_concurrent_manifest_updates_keep_every_version(tmp_path):
    """Two runs recording at once (CLI and sensor) must not drop each other's versions."""
    import threading

    from pipeline.archive import Archive, FileVersion

    archive = Archive(tmp_path / "archive")

    def version(i: int) -> FileVersion:
        return FileVersion("2016-06", f"2016-06/f{i}.xlsx", f"f{i}.xlsx", f"{i:064x}", 1, "2016-07-01T00:00:00+00:00",
                           "2016-07-01T00:00:00+00:00", None)  # fmt: skip

    def record(start: int) -> None:
        for i in range(start, start + 40):
            Archive(tmp_path / "archive").record("2016-06", [version(i)])

    threads = [threading.Thread(target=record, args=(k * 100,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(archive.versions("2016-06")) == 120
