"""Warm start: the key that decides which runs a warm process may serve, and a run served by one."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from pipeline import warm_start
from pipeline.reports import pdf
from tests.conftest import SAMPLE_RAW


def test_enabled_reads_the_switch():
    assert warm_start.enabled({})
    assert warm_start.enabled({"PIPELINE_WARM_START": "on"})
    for off in ("off", "0", "no", "False", " OFF "):
        assert not warm_start.enabled({"PIPELINE_WARM_START": off})


def test_key_ignores_run_time_settings_but_not_other_environment():
    base = {"PATH": "/usr/bin", "LANG": "C.UTF-8"}
    key = warm_start.code_key(base)
    assert warm_start.code_key(dict(base)) == key
    # Where a run reads and writes is read at run time: one warm process serves them all.
    moved = {**base, "PIPELINE_WAREHOUSE": "/elsewhere/w.duckdb", "DAGSTER_HOME": "/x", "PWD": "/y"}
    assert warm_start.code_key(moved) == key
    # So is which login or terminal the command comes from.
    login = {**base, "SSH_CLIENT": "10.0.0.5 51234 22", "SSH_TTY": "/dev/pts/3", "TMUX_PANE": "%4"}
    assert warm_start.code_key(login) == key
    # Anything else may be read at import time (thread counts, locale): another warm process.
    assert warm_start.code_key({**base, "OMP_NUM_THREADS": "1"}) != key
    assert warm_start.code_key({**base, "LANG": "vi_VN.UTF-8"}) != key


def test_key_changes_when_the_code_changes(tmp_path, monkeypatch):
    package = tmp_path / "pipeline"
    package.mkdir()
    module = package / "flow.py"
    module.write_text("A = 1\n")
    (package / "__pycache__").mkdir()
    monkeypatch.setattr(warm_start, "PACKAGE_DIR", package)
    key = warm_start.code_key({})
    (package / "__pycache__" / "flow.cpython-311.pyc").write_bytes(b"compiled")
    assert warm_start.code_key({}) == key  # bytecode follows the source
    module.write_text("A = 2\n")
    os.utime(module, ns=(time.time_ns(), time.time_ns() + 10**9))
    assert warm_start.code_key({}) != key
    edited = warm_start.code_key({})
    (package / "sql").mkdir()
    (package / "sql" / "marts.sql").write_text("select 1")
    assert warm_start.code_key({}) != edited


def test_runtime_dir_is_private(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    folder = warm_start.runtime_dir()
    assert folder is not None and folder.parent == tmp_path
    assert folder.stat().st_mode & 0o777 == 0o700
    folder.chmod(0o755)  # others could reach the socket: not used
    assert warm_start.runtime_dir() is None


def test_no_warm_process_means_run_in_process(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    monkeypatch.setenv("PIPELINE_WARM_START", "on")
    assert warm_start.run_warm(["run"]) is None
    monkeypatch.setenv("PIPELINE_WARM_START", "off")
    assert warm_start.run_warm(["run"]) is None
    assert warm_start.status() == ["warm start is off (PIPELINE_WARM_START=off)"]


def test_a_warm_process_still_importing_is_not_waited_for(monkeypatch):
    """Left by a run that has just ended, it would make the next run wait for its import."""
    import socket
    import threading

    runtime = Path(tempfile.mkdtemp(prefix="warm-", dir="/tmp"))  # a socket's path is short
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    monkeypatch.setenv("PIPELINE_WARM_START", "on")
    sock_path, _, _ = warm_start._paths(warm_start.runtime_dir(), warm_start.code_key())
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(sock_path))
    listener.listen(1)  # bound and listening, as while it imports
    listener.settimeout(0.2)
    try:
        assert warm_start.run_warm(["run"]) is None
        with pytest.raises(TimeoutError):
            listener.accept()  # it was not even asked
        warm_start._ready_path(sock_path).write_text("1")  # imported: now it is asked
        asked = []

        def answer():
            conn, _ = listener.accept()
            socket.recv_fds(conn, 4, 3)
            asked.append(True)
            conn.close()  # and refuses (no reply): the client runs in-process

        thread = threading.Thread(target=answer)
        thread.start()
        assert warm_start.run_warm(["run"]) is None
        thread.join()
        assert asked
    finally:
        listener.close()
        shutil.rmtree(runtime, ignore_errors=True)


def test_the_warm_process_sees_runs_in_process_without_holding_them_up(monkeypatch):
    runtime = Path(tempfile.mkdtemp(prefix="warm-", dir="/tmp"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    monkeypatch.setenv("PIPELINE_WARM_START", "on")
    folder = warm_start.runtime_dir()
    try:
        assert not warm_start._runs_in_process(folder)
        run = warm_start.announce_in_process_run()  # a run in-process is under way
        assert run is not None
        assert warm_start._runs_in_process(folder)  # no spare LibreOffice meanwhile
        other = warm_start.announce_in_process_run()  # a second run is not kept waiting by the probe
        assert other is not None
        os.close(run)
        assert warm_start._runs_in_process(folder)
        os.close(other)  # both runs have ended
        assert not warm_start._runs_in_process(folder)
    finally:
        shutil.rmtree(runtime, ignore_errors=True)


@pytest.mark.skipif(not hasattr(os, "SCHED_IDLE"), reason="Linux scheduling classes")
def test_the_import_runs_at_idle_priority_in_its_own_thread_only(monkeypatch):
    """Runs forked later from the main thread must run at the normal class (which an
    unprivileged process could not get back)."""
    import threading

    seen = {}
    monkeypatch.setattr(warm_start, "_preload", lambda: seen.setdefault("policy", os.sched_getscheduler(0)))
    before = os.sched_getscheduler(0)
    done_read, done_write = os.pipe()
    thread = threading.Thread(target=warm_start._preload_when_idle, args=(done_write,))
    thread.start()
    thread.join()
    assert seen["policy"] == os.SCHED_IDLE
    assert os.sched_getscheduler(0) == before != os.SCHED_IDLE
    assert os.read(done_read, 10) == b"\n"  # it says it is done, and closes its end
    assert os.read(done_read, 10) == b""
    os.close(done_read)


_SERVE_WITH_A_SLOW_IMPORT = """
import os, sys, time
from pathlib import Path
from pipeline import warm_start
go = Path(sys.argv[2])
def preload():
    while not go.exists():
        time.sleep(0.02)
warm_start._preload = preload
warm_start._keep_office = lambda pdf, previous: None
warm_start.serve(sys.argv[1])
"""


@contextlib.contextmanager
def _warm_process_importing(monkeypatch, go: Path):
    """A warm process (this environment's key, a private runtime folder) whose import lasts
    until ``go`` exists: (its process, socket path, log path) once it has begun importing."""
    runtime = Path(tempfile.mkdtemp(prefix="warm-", dir="/tmp"))  # a socket's path is short
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    monkeypatch.setenv("PIPELINE_WARM_START", "on")
    key = warm_start.code_key()
    sock_path, log_path, _ = warm_start._paths(warm_start.runtime_dir(), key)
    with open(log_path, "w") as log:
        server = subprocess.Popen(
            [sys.executable, "-c", _SERVE_WITH_A_SLOW_IMPORT, key, str(go)], stdout=log, stderr=subprocess.STDOUT
        )
    try:
        _wait_for(lambda: "importing" in log_path.read_text(), "the warm process to start importing")
        yield server, sock_path, log_path
    finally:
        if server.poll() is None:
            server.kill()
        shutil.rmtree(runtime, ignore_errors=True)


def test_a_warm_process_answers_while_it_imports_and_serves_runs_only_after(monkeypatch, tmp_path):
    go = tmp_path / "go"
    with _warm_process_importing(monkeypatch, go) as (server, sock_path, log_path):
        ready = warm_start._ready_path(sock_path)
        status = warm_start.status()
        assert len(status) == 1 and "once it has imported" in status[0]
        ready.write_text("1")  # as one that died would have left it: the client asks
        assert warm_start.run_warm(["run"]) is None  # refused while importing: the run runs in-process
        assert "run " not in log_path.read_text()
        go.touch()  # the import ends
        _wait_for(lambda: "ready after" in log_path.read_text(), "the import to end")
        assert ready.read_text() == str(server.pid)
        assert "serves runs from here;" in warm_start.status()[0]
        assert warm_start.stop() == [server.pid]
        assert server.wait(timeout=30) == 0
        assert not ready.exists() and not sock_path.exists()


def test_a_warm_process_asked_to_stop_while_it_imports_goes_at_once(monkeypatch, tmp_path):
    with _warm_process_importing(monkeypatch, tmp_path / "never") as (server, sock_path, _):
        assert warm_start.stop() == [server.pid]
        assert server.wait(timeout=10) == 0  # not held by the import thread
        assert not sock_path.exists() and not warm_start._ready_path(sock_path).exists()


def _pipeline(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pipeline.cli", *args], env=env, capture_output=True, text=True, timeout=300
    )


def _wait_for(predicate, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.fixture
def warm_env(tmp_path):
    # A short folder of its own: a socket path must fit in 107 bytes.
    runtime = Path(tempfile.mkdtemp(prefix="warm-", dir="/tmp"))
    raw = tmp_path / "raw"
    shutil.copytree(SAMPLE_RAW, raw)
    env = {
        **os.environ,
        "XDG_RUNTIME_DIR": str(runtime),
        "TMPDIR": str(runtime),  # what a run killed outright leaves goes with the fixture
        "PIPELINE_WARM_START": "on",
        "PIPELINE_WARM_IDLE": "120",
        "PIPELINE_RAW_DIR": str(raw),
        "PIPELINE_WAREHOUSE": str(tmp_path / "out" / "warehouse.duckdb"),
        "DAGSTER_HOME": str(tmp_path / "dagster"),
    }
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    yield env
    _pipeline(env, "warm", "stop")
    shutil.rmtree(runtime, ignore_errors=True)


def test_a_mistyped_run_starts_no_warm_process(warm_env):
    folder = Path(warm_env["XDG_RUNTIME_DIR"]) / f"cbcq-pipeline-{os.getuid()}"
    wrong = _pipeline(warm_env, "run", "--no-such-option")
    assert wrong.returncode == 2 and "--no-such-option" in wrong.stderr
    assert not list(folder.glob("*.log"))  # written before a warm process is started, not after


def test_a_run_leaves_a_warm_process_that_serves_the_next(warm_env, tmp_path):
    folder = Path(warm_env["XDG_RUNTIME_DIR"]) / f"cbcq-pipeline-{os.getuid()}"
    first = _pipeline(warm_env, "run", "--quiet")
    assert first.returncode == 0, first.stderr
    assert "Done in" in first.stdout
    # The first run ran in its own process, then started the warm process.
    logs = list(folder.glob("*.log"))
    assert len(logs) == 1
    _wait_for(lambda: "ready after" in logs[0].read_text(), "the warm process to import")
    assert "serves runs from here;" in _pipeline(warm_env, "warm", "status").stdout
    if shutil.which("soffice"):  # a LibreOffice waits for the next run's PDFs
        _wait_for(lambda: "started for the next run's PDFs" in logs[0].read_text(), "a spare LibreOffice")
        assert "kept for the PDFs" in _pipeline(warm_env, "warm", "status").stdout

    # A return changed: the run forked from the warm process gives the same summary as a fresh one.
    changed = next((Path(warm_env["PIPELINE_RAW_DIR"]) / "2016-06").glob("*.xlsx"))
    changed.write_bytes(changed.read_bytes())
    os.utime(changed, (time.time() + 60, time.time() + 60))
    second = _pipeline(warm_env, "run", "--quiet")
    assert second.returncode == 0, second.stderr
    assert "run " in logs[0].read_text() and "pipeline run --quiet" in logs[0].read_text()
    assert "222" in second.stdout and "Done in" in second.stdout
    # The fork ends with os._exit: the run closed its log connections itself, so SQLite folded the logs in.
    assert not list(Path(warm_env["DAGSTER_HOME"]).rglob("*.db-wal"))

    # Errors come back as they would from a fresh process: text on stderr, the exit status.
    missing = _pipeline(warm_env, "run", "--period", "1999-01")
    assert missing.returncode == 2
    assert "no folder" in missing.stderr and "1999-01" in missing.stderr
    assert logs[0].read_text().count("\nrun ") == 2

    # A run killed outright (here by the crash test's hook, once its files are taken in): the
    # client says so and exits 1; the warm process serves the next run, which converges.
    changed.write_bytes(changed.read_bytes())
    os.utime(changed, (time.time() + 120, time.time() + 120))
    killed = _pipeline({**warm_env, "PIPELINE_TEST_KILL_AT": "ingested"}, "run", "--quiet")
    assert killed.returncode == 1
    assert "ended without an exit status" in killed.stderr
    again = _pipeline(warm_env, "run", "--quiet")
    assert again.returncode == 0 and "222" in again.stdout
    assert logs[0].read_text().count("\nrun ") == 4

    spares = _spare_offices(logs[0].read_text())  # its log goes with it, below

    # Another environment is another warm process: this one is replaced and goes.
    other = {**warm_env, "PIPELINE_WARM_IDLE": "121"}
    assert _pipeline(other, "run", "--quiet").returncode == 0  # in-process: nothing serves this key yet
    old_socket = logs[0].with_suffix(".sock")
    _wait_for(lambda: not old_socket.exists(), "the old warm process to exit")  # its log goes too, soon after
    _wait_for(lambda: len(list(folder.glob("*.sock"))) == 1, "the new warm process")

    stopped = _pipeline(other, "warm", "stop")
    assert stopped.stdout.startswith("asked to stop")
    _wait_for(lambda: not list(folder.glob("*.sock")), "the socket to go")
    # Every spare LibreOffice went with its warm process (the replaced one's and this one's).
    spares += [pid for log in folder.glob("*.log") for pid in _spare_offices(log.read_text())]
    _wait_for(lambda: not any(pdf._alive(pid) for pid in spares), "the spare LibreOffice to end")
    assert "no warm process" in _pipeline(other, "warm", "status").stdout


def _spare_offices(log: str) -> list[int]:
    """The pids of the spare LibreOffices a warm process's log names."""
    return [int(line.split()[1]) for line in log.splitlines() if line.endswith("started for the next run's PDFs")]


_IMPORTS_OF_A_FORKED_RUN = """
import os, sys
from pipeline import warm_start
warm_start._preload()
read, write = os.pipe()
pid = os.fork()
if pid == 0:
    before = set(sys.modules)
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)  # the run's own output
    import pipeline.reports.pdf as pdf
    pdf.soffice_path = lambda: None  # no LibreOffice: what it would import is not Python's
    from pipeline import cli
    code = cli.main(sys.argv[1:])
    os.write(write, ("%d\\n" % code + "\\n".join(sorted(set(sys.modules) - before))).encode())
    import atexit
    atexit._run_exitfuncs()  # as _run_forked does: the worker pool's temporary folder goes
    os._exit(0)
os.close(write)
with os.fdopen(read) as fh:
    print(fh.read())
os.waitpid(pid, 0)
"""


def test_a_run_forked_from_the_warm_process_imports_nothing(tmp_path):
    """Whatever a run imports lazily is imported by the warm process beforehand (RUN_IMPORTS),
    from empty (worker pool, every period) and again after one return changed."""
    raw = tmp_path / "raw"
    shutil.copytree(SAMPLE_RAW, raw)
    env = {
        **os.environ,
        "PIPELINE_WARM_START": "off",
        "PIPELINE_RAW_DIR": str(raw),
        "PIPELINE_WAREHOUSE": str(tmp_path / "out" / "warehouse.duckdb"),
        "DAGSTER_HOME": str(tmp_path / "dagster"),
    }
    for step in ("from empty", "one return changed"):
        if step == "one return changed":
            changed = next((raw / "2016-06").glob("*.xlsx"))
            changed.write_bytes(changed.read_bytes())
            os.utime(changed, (time.time() + 60, time.time() + 60))
        out = subprocess.run(
            [sys.executable, "-c", _IMPORTS_OF_A_FORKED_RUN, "run", "--quiet"],
            env=env, capture_output=True, text=True, timeout=300, cwd=Path(__file__).parents[1],
        )  # fmt: skip
        lines = out.stdout.strip().splitlines()
        assert lines and lines[0] == "0", out.stderr[-2000:]
        assert lines[1:] == [], f"{step}: imported during the run: {lines[1:]}"
