"""Analysts query the warehouse while the nightly run works.

A separate reader *process* holds ``duckdb.connect(path, read_only=True)`` open
and answers queries over a pipe, while ``pipeline run --period <new>`` runs as
another process. The run must succeed without waiting for the reader; the open
connection keeps seeing exactly the old periods; a new connection sees the new
period's exact figures. Also with the SQL prompt (``pipeline sql``, the
DuckDB CLI's ``-readonly`` semantics, and the ``duckdb`` CLI itself when it is
installed), and with a reader in the middle of a long query.

Runs are real subprocesses (each takes several seconds), so this file takes
about a minute.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from pipeline.config import PROJECT_ROOT
from pipeline.sample.generate import build_rows, generate
from tests.conftest import ALIASES, REGISTER, SAMPLE_RAW

OLD, NEW = "2016-06", "2016-12"
SEED = 1612
RUN_TIMEOUT = 300

READER = textwrap.dedent(
    """
    import json, sys, threading, time
    import duckdb

    con = None
    long = {}
    stop = threading.Event()

    def pause(x: int) -> int:
        # A slow row that does not burn CPU: the query stays in the middle of
        # its scan of the warehouse for as long as the test needs.
        stop.wait(0.25)
        return x

    def answer(obj):
        sys.stdout.write(json.dumps(obj, default=str) + "\\n")
        sys.stdout.flush()

    def run_long(sql):
        long["started"] = time.time()
        try:
            long["result"] = con.execute(sql).fetchall()
        except Exception as exc:  # interrupted on purpose
            long["error"] = type(exc).__name__
        long["ended"] = time.time()

    for line in sys.stdin:
        msg = json.loads(line)
        op = msg["op"]
        try:
            if op == "connect":
                # One thread leaves a core to the run; no progress bar on the pipe.
                con = duckdb.connect(msg["path"], read_only=True, config={"threads": 1})
                con.execute("pragma disable_progress_bar")
                con.create_function("pause", pause, ["BIGINT"], "BIGINT")
                answer({"ok": True})
            elif op == "query":
                answer({"ok": True, "rows": con.execute(msg["sql"], msg.get("params", [])).fetchall()})
            elif op == "close":
                con.close()
                con = None
                answer({"ok": True})
            elif op == "long":
                thread = threading.Thread(target=run_long, args=(msg["sql"],), daemon=True)
                thread.start()
                while "started" not in long:
                    time.sleep(0.01)
                time.sleep(0.5)  # well inside the query before the caller moves on
                answer({"ok": True, "running": thread.is_alive()})
            elif op == "long_status":
                answer({"ok": True, "running": thread.is_alive(), **long})
            elif op == "interrupt":
                stop.set()
                con.interrupt()
                thread.join(30)
                answer({"ok": True, "running": thread.is_alive(), **long})
            elif op == "quit":
                answer({"ok": True})
                break
        except Exception as exc:
            answer({"ok": False, "error": f"{type(exc).__name__}: {exc}"})
    """
)

PERIODS_SQL = "select distinct period from core.unit_returns order by period"
TOTAL_SQL = ("select units, units_with_cell, coverage_pct, cell_members, total_members, member_share_pct "
             "from marts.province_summary where unit_type = 'total' and period = ?")


class Reader:
    """A reader process holding one read-only connection, driven over a pipe."""

    def __init__(self, path: Path):
        self.proc = subprocess.Popen([sys.executable, "-c", READER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, cwd=PROJECT_ROOT)
        self.ask(op="connect", path=str(path))

    def ask(self, **msg):
        self.proc.stdin.write(json.dumps(msg) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line, f"reader died (exit {self.proc.poll()})"
        reply = json.loads(line)
        assert reply["ok"], reply
        return reply

    def rows(self, sql: str, *params) -> list[tuple]:
        return [tuple(r) for r in self.ask(op="query", sql=sql, params=list(params))["rows"]]

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                self.ask(op="quit")
            finally:
                self.proc.wait(10)


def pipeline_command() -> list[str]:
    """`uv run pipeline` as the docs say; the venv's own script when uv is not on PATH."""
    uv = shutil.which("uv") or (str(PROJECT_ROOT / ".tools/bin/uv") if (PROJECT_ROOT / ".tools/bin/uv").exists() else None)
    if uv:
        return [uv, "run", "--frozen", "--project", str(PROJECT_ROOT), "pipeline"]
    return [str(Path(sys.executable).with_name("pipeline"))]


def run_env(root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
    env.update(PIPELINE_RAW_DIR=str(root / "raw"), PIPELINE_WAREHOUSE=str(root / "out" / "warehouse.duckdb"),
               PIPELINE_REGISTER=str(REGISTER), PIPELINE_ALIASES=str(ALIASES))
    return env


def run_period(root: Path, period: str) -> tuple[float, subprocess.CompletedProcess]:
    started = time.monotonic()
    done = subprocess.run([*pipeline_command(), "run", "--period", period, "--quiet"], env=run_env(root),
                          capture_output=True, text=True, timeout=RUN_TIMEOUT, cwd=PROJECT_ROOT)
    return time.monotonic() - started, done


def expected_total(period: str) -> tuple:
    """The province totals the generated period must show, from the rows it was written from."""
    from pipeline.reports.vn_format import pct

    rows = build_rows(pd.read_csv(REGISTER, dtype=str, keep_default_na=False), period, SEED)
    counted = rows["eligible"].astype(bool) & rows["has_cell"].astype(bool)
    cells = int(counted.sum())
    members = int(pd.to_numeric(rows.loc[counted, "cell_members"]).sum())
    total = int(rows["total_members"].sum())
    return (len(rows), cells, pct(cells, len(rows)), members, total, pct(members, total))


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    """A published warehouse with 2016-06, and the raw files of 2016-12 waiting."""
    root = tmp_path_factory.mktemp("snap") / "base"
    shutil.copytree(SAMPLE_RAW, root / "raw")
    _, done = run_period(root, OLD)
    assert done.returncode == 0, done.stderr[-2000:]
    register = pd.read_csv(REGISTER, dtype=str, keep_default_na=False)
    generate(register, NEW, root / "raw" / NEW, SEED)
    return root


@pytest.fixture
def site(base: Path, tmp_path: Path) -> Path:
    """A private copy of the base site (warehouse, archive, cache, raw) per test."""
    root = tmp_path / "site"
    shutil.copytree(base, root)
    return root


@pytest.fixture(scope="module")
def baseline_seconds(base: Path, tmp_path_factory) -> float:
    """How long the new period's run takes with nobody reading."""
    root = tmp_path_factory.mktemp("alone") / "site"
    shutil.copytree(base, root)
    seconds, done = run_period(root, NEW)
    assert done.returncode == 0, done.stderr[-2000:]
    return seconds


def _assert_no_waiting(with_reader: float, alone: float) -> None:
    # A run that waited for the reader would block until the reader let go
    # (never, here) or fail on the lock; "no waiting" means about as fast as alone.
    assert with_reader < alone * 2 + 15, f"run took {with_reader:.1f}s with a reader, {alone:.1f}s alone"


def test_open_reader_keeps_old_snapshot_and_run_does_not_wait(site, baseline_seconds):
    warehouse = site / "out" / "warehouse.duckdb"
    old_total = duckdb.connect(str(warehouse), read_only=True).execute(TOTAL_SQL, [OLD]).fetchall()
    reader = Reader(warehouse)
    try:
        assert reader.rows(PERIODS_SQL) == [(OLD,)]
        seconds, done = run_period(site, NEW)
        assert done.returncode == 0, done.stderr[-2000:]
        _assert_no_waiting(seconds, baseline_seconds)
        print(f"\nrun with an open reader: {seconds:.1f}s; alone: {baseline_seconds:.1f}s")

        # The open connection: exactly the old periods, with the old figures.
        assert reader.rows(PERIODS_SQL) == [(OLD,)]
        assert reader.rows(TOTAL_SQL, OLD) == [tuple(r) for r in old_total]
        assert reader.rows(TOTAL_SQL, NEW) == []

        # A new connection, from another process: the new period's exact figures.
        fresh = duckdb.connect(str(warehouse), read_only=True)
        try:
            assert fresh.execute(PERIODS_SQL).fetchall() == [(OLD,), (NEW,)]
            assert fresh.execute(TOTAL_SQL, [NEW]).fetchall() == [expected_total(NEW)]
            assert fresh.execute(TOTAL_SQL, [OLD]).fetchall() == old_total
        finally:
            fresh.close()

        # The reader itself sees the new period once it closes and reconnects.
        reader.ask(op="close")
        reader.ask(op="connect", path=str(warehouse))
        assert reader.rows(PERIODS_SQL) == [(OLD,), (NEW,)]
        assert reader.rows(TOTAL_SQL, NEW) == [expected_total(NEW)]
    finally:
        reader.stop()


def test_run_succeeds_while_a_reader_is_mid_query(site, baseline_seconds):
    warehouse = site / "out" / "warehouse.duckdb"
    reader = Reader(warehouse)
    # Scans the warehouse at a quarter second per unit (about a minute) unless stopped.
    long_sql = "select sum(pause(total_members)) from core.unit_returns"
    try:
        assert reader.ask(op="long", sql=long_sql)["running"]
        seconds, done = run_period(site, NEW)
        assert done.returncode == 0, done.stderr[-2000:]
        _assert_no_waiting(seconds, baseline_seconds)
        print(f"\nrun during a long query: {seconds:.1f}s; alone: {baseline_seconds:.1f}s")
        status = reader.ask(op="long_status")
        assert status["running"], "the long query should still be running after the run"
        assert status["started"] < time.time() - seconds
        stopped = reader.ask(op="interrupt")
        assert not stopped["running"]
        # Same connection, after the publish: still the old snapshot.
        assert reader.rows(PERIODS_SQL) == [(OLD,)]
    finally:
        reader.stop()
    with duckdb.connect(str(warehouse), read_only=True) as fresh:
        assert fresh.execute(TOTAL_SQL, [NEW]).fetchall() == [expected_total(NEW)]


def _prompt(argv: list[str], env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, cwd=PROJECT_ROOT)


def _ask_prompt(proc: subprocess.Popen, sql: str, marker: str) -> list[str]:
    """Send a statement and a marker query; return the lines printed before the marker."""
    proc.stdin.write(f"{sql}\nselect '{marker}' as marker;\n")
    proc.stdin.flush()
    lines = []
    while True:
        line = proc.stdout.readline()
        assert line, f"prompt exited: {proc.poll()} {proc.stderr.read()[-1000:]}"
        if marker in line:
            break
        lines.append(line.rstrip("\n"))
    return lines


def _duckdb_cli_argv(warehouse: Path) -> list[str] | None:
    cli = shutil.which("duckdb")
    return [cli, "-readonly", "-csv", str(warehouse)] if cli else None


@pytest.mark.parametrize("prompt", ["pipeline sql", "duckdb -readonly"])
def test_sql_prompt_keeps_its_snapshot_while_a_run_publishes(site, baseline_seconds, prompt):
    warehouse = site / "out" / "warehouse.duckdb"
    env = run_env(site)
    argv = [*pipeline_command(), "sql"] if prompt == "pipeline sql" else _duckdb_cli_argv(warehouse)
    if argv is None:
        pytest.skip("the duckdb CLI is not installed")
    proc = _prompt(argv, env)
    try:
        before = "\n".join(_ask_prompt(proc, f"{PERIODS_SQL};", "m1"))
        assert OLD in before and NEW not in before
        seconds, done = run_period(site, NEW)
        assert done.returncode == 0, done.stderr[-2000:]
        _assert_no_waiting(seconds, baseline_seconds)
        after = "\n".join(_ask_prompt(proc, f"{PERIODS_SQL};", "m2"))
        assert OLD in after and NEW not in after  # the prompt's snapshot is the one it opened
    finally:
        proc.stdin.close()
        proc.wait(30)
    fresh = subprocess.run([*pipeline_command(), "sql", PERIODS_SQL], env=env, capture_output=True, text=True,
                           timeout=120, cwd=PROJECT_ROOT)
    assert fresh.returncode == 0 and NEW in fresh.stdout
