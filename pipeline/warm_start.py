"""Warm start for `pipeline run`: a run forked from a process that has already imported everything.

A fresh `pipeline run` spends about 3 s (2 cores) importing Python, Dagster,
pandas and DuckDB: most of a rerun after one return changed (whose own work
is about a second). After a run the command leaves a
*warm process* behind: it imports the pipeline once, then waits. The next
`pipeline run` (the client) hands it its arguments, environment, working
directory and its stdin/stdout/stderr; the warm process forks, and the fork
runs exactly what the command would have run, writing straight to the
client's terminal, while the client waits for its exit status and forwards
Ctrl-C. Each run is still its own process: nothing (Dagster instance,
caches, connections) is carried from one run to the next, only imported code
and the unit register loaded at start (used only while its files' content is
unchanged).

Rules that keep this safe:

- The client imports only the standard library; anything unexpected (no warm
  process, one still importing, a refused handshake, a dead socket) and it runs
  in-process as before.
- A warm process serves one version of the code and one environment: its key
  hashes the interpreter, every file of the ``pipeline`` package (path, size,
  mtime), the installed distributions, and the environment minus the
  variables read only at run time (``RUN_TIME_ENV``). Change any of them and
  the next run starts a new warm process; the old one sees it is no longer
  current and exits.
- One warm process per user; it exits after ``PIPELINE_WARM_IDLE`` seconds
  (default 600) after its last run ended. Its socket lives in a 0700 folder of the
  user's (``$XDG_RUNTIME_DIR`` or the temp folder) and it serves only its own uid.
- ``PIPELINE_WARM_START=off`` turns it off (the test suite does, except the
  tests of this module); ``pipeline warm stop`` ends the warm process.

The first run after a change of code or environment is an ordinary in-process
run. It starts the warm process as it begins, so that the run after it (a
script's next step, a district's corrected return) finds it ready; the warm
process imports in a thread at the idle scheduling class (``SCHED_IDLE``), which
takes only CPU the run leaves unused, and a run finds it only once it has
imported (``<key>.ready``); until then runs run in-process. Its spare
LibreOffice waits until no run is under way in-process (they hold
``in-process.lock`` shared).
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import struct
import sys
import time
from pathlib import Path

ENABLE_ENV = "PIPELINE_WARM_START"
IDLE_ENV = "PIPELINE_WARM_IDLE"
DEFAULT_IDLE_SECONDS = 600.0
# Read by the pipeline (or Dagster) only while a run runs, never at import: a warm
# process serves runs whatever their values. Shell bookkeeping changes from shell to shell.
RUN_TIME_ENV = frozenset(
    {
        "PIPELINE_RAW_DIR",
        "PIPELINE_WAREHOUSE",
        "PIPELINE_REGISTER",
        "PIPELINE_ALIASES",
        "PIPELINE_TEST_KILL_AT",
        "DAGSTER_HOME",
        "PWD",
        "OLDPWD",
        "SHLVL",
        "_",
        "TERM_SESSION_ID",
        "WINDOWID",
        "XDG_SESSION_ID",
        "GPG_TTY",
    }
)
# Likewise whole families of login-session bookkeeping (SSH_CLIENT holds the port of each login).
RUN_TIME_ENV_PREFIXES = ("SSH_", "TMUX")
PACKAGE_DIR = Path(__file__).resolve().parent
_LENGTH = struct.Struct("!I")
_WAKE_SECONDS = 2.0  # how often an idle warm process checks whether it should go
_RUN_WAKE_SECONDS = 0.2  # how often it looks whether runs have ended (then it readies LibreOffice)
_CONNECT_WAIT_SECONDS = 120.0  # a warm process that has imported answers within this


_forked_run = False  # set in a run forked from the warm process
_active_runs: set[int] = set()  # in the warm process: the runs it forked that have not ended


def forked_run() -> bool:
    """Whether this process is a run forked from the warm process."""
    return _forked_run


def enabled(environ: dict | None = None) -> bool:
    value = (environ if environ is not None else os.environ).get(ENABLE_ENV, "on")
    return value.strip().lower() not in {"0", "off", "no", "false"}


def runtime_dir() -> Path | None:
    """The user's private folder for the socket, or None if it is not safely private."""
    base = os.environ.get("XDG_RUNTIME_DIR") or "/tmp"
    folder = Path(base) / f"cbcq-pipeline-{os.getuid()}"
    try:
        folder.mkdir(mode=0o700, exist_ok=True)
        st = folder.stat()
    except OSError:
        return None
    if st.st_uid != os.getuid() or st.st_mode & 0o077:
        return None
    return folder


def code_key(environ: dict | None = None) -> str:
    """What a warm process must share with a run to serve it (see the module docstring)."""
    env = environ if environ is not None else os.environ
    h = hashlib.sha256()
    h.update(f"{sys.executable}\0{sys.version}\0{PACKAGE_DIR}\0".encode())
    for root, dirs, files in os.walk(PACKAGE_DIR):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(files):
            try:
                st = os.stat(os.path.join(root, name))
            except OSError:
                continue
            h.update(f"{root}/{name}\0{st.st_size}\0{st.st_mtime_ns}\0".encode())
    # Not sys.path[0]: the script's folder or the working directory, whichever started Python.
    for entry in sys.path[1:]:
        try:
            names = sorted(n for n in os.listdir(entry or ".") if n.endswith((".dist-info", ".pth", ".egg-link")))
        except OSError:
            continue
        h.update(f"{entry}\0{chr(0).join(names)}\0".encode())
    for name in sorted(env):
        if name not in RUN_TIME_ENV and not name.startswith(RUN_TIME_ENV_PREFIXES):
            h.update(f"{name}={env[name]}\0".encode(errors="surrogateescape"))
    return h.hexdigest()[:24]


def _paths(folder: Path, key: str) -> tuple[Path, Path, Path]:
    return folder / f"{key}.sock", folder / f"{key}.log", folder / "current"


def _in_process_lock(folder: Path) -> Path:
    """Held shared by each run in-process; a warm process starts no spare LibreOffice meanwhile."""
    return folder / "in-process.lock"


def announce_in_process_run() -> int | None:
    """Hold the in-process lock (shared) for this run: the warm process starts no spare
    LibreOffice while the run's own may be starting. The descriptor to close after the run;
    None if off."""
    if not enabled():
        return None
    folder = runtime_dir()
    if folder is None:
        return None
    import fcntl

    try:
        fd = os.open(_in_process_lock(folder), os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)  # only a warm process's probe takes it exclusively
    except OSError:
        pass  # held exclusively for the instant a warm process checks: run anyway
    return fd


def _runs_in_process(folder: Path) -> bool:
    """Whether a run in-process holds the in-process lock now (tried, never waited for)."""
    import fcntl

    try:
        with open(_in_process_lock(folder), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released as the file closes
    except BlockingIOError:
        return True
    except OSError:
        return False
    return False


def _ready_path(sock_path: Path) -> Path:
    """Exists (holding its pid) once the warm process on ``sock_path`` has imported everything."""
    return sock_path.with_suffix(".ready")


def _send(conn: socket.socket, message: dict, fds: list[int] = ()) -> None:
    """A length-prefixed JSON message; ``fds`` travel with the prefix (one sendmsg), the body
    follows in full whatever its size."""
    data = json.dumps(message).encode()
    socket.send_fds(conn, [_LENGTH.pack(len(data))], list(fds))
    conn.sendall(data)


def _recv_exact(conn: socket.socket, size: int) -> bytes:
    chunks, left = [], size
    while left:
        chunk = conn.recv(left)
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _recv(conn: socket.socket) -> dict:
    (size,) = _LENGTH.unpack(_recv_exact(conn, _LENGTH.size))
    return json.loads(_recv_exact(conn, size))


# ---------------------------------------------------------------- client


def run_warm(argv: list[str]) -> int | None:
    """Run ``pipeline <argv>`` in the warm process; its exit status, or None to run in-process."""
    if not enabled():
        return None
    folder = runtime_dir()
    if folder is None:
        return None
    key = code_key()
    sock_path, _, _ = _paths(folder, key)
    if not _ready_path(sock_path).exists():
        # None, or one still importing: waiting for its import and then for LibreOffice to start
        # cost more than this run's own imports (a one-file rerun of 84 periods: 3.2-3.4 s that
        # way, 2.7 s in-process).
        return None
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.settimeout(_CONNECT_WAIT_SECONDS)
        conn.connect(str(sock_path))
        fds = [fd for fd in (0, 1, 2) if _is_open(fd)]
        request = {
            "key": key,
            "argv": argv,
            "cwd": os.getcwd(),
            "env": dict(os.environ),
            "umask": _umask(),
            "fds": fds,
        }
        _send(conn, request, fds)
        reply = _recv(conn)  # the run's pid: from here on the run has started
    except (OSError, EOFError, ValueError):
        conn.close()
        return None
    if "pid" not in reply:
        conn.close()
        return None
    return _wait_for_run(conn, int(reply["pid"]))


def _wait_for_run(conn: socket.socket, pid: int) -> int:
    import signal

    def forward(signum, _frame):
        try:
            os.killpg(pid, signum)  # the run's group, as a terminal's Ctrl-C reaches a whole command
        except OSError:
            pass

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, forward)
    conn.settimeout(None)
    try:
        reply = _recv(conn)
        return int(reply["exit"])
    except (OSError, EOFError, ValueError, KeyError):
        print("pipeline: the run process ended without an exit status (killed?)", file=sys.stderr)
        return 1
    finally:
        conn.close()


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
        return True
    except OSError:
        return False


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def start_warm_process(environ: dict) -> None:
    """Leave a warm process for the next run (after an in-process run); never fails the run.

    ``environ`` is the environment the run started with: a run sets variables of its own.
    """
    if not enabled(environ):
        return
    folder = runtime_dir()
    if folder is None:
        return
    import subprocess

    key = code_key(environ)
    sock_path, log_path, _ = _paths(folder, key)
    if _answers(sock_path):
        return
    # Two runs ending together may start two: the later one binds the socket, and the
    # earlier one, seeing its socket gone, exits (``_still_current``).
    try:
        with open(log_path, "w") as log:
            subprocess.Popen(
                # -P: the working directory does not go on sys.path (a stray pandas.py there).
                [sys.executable, "-P", "-m", "pipeline.warm_start", "serve", key],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # not in the terminal's process group: no Ctrl-C, no SIGHUP
                close_fds=True,
                cwd="/",
                env=environ,
            )
    except OSError:
        return


def _answers(sock_path: Path) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(sock_path))
        return True
    except OSError:
        return False
    finally:
        probe.close()


def _ask(sock_path: Path, message: dict) -> dict | None:
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.settimeout(5)
        conn.connect(str(sock_path))
        _send(conn, message)
        return _recv(conn)
    except (OSError, EOFError, ValueError):
        return None
    finally:
        conn.close()


def stop(folder: Path | None = None) -> list[int]:
    """Ask every warm process of this user to exit; the pids asked."""
    folder = folder or runtime_dir()
    if folder is None:
        return []
    replies = [_ask(sock_path, {"stop": True}) for sock_path in sorted(folder.glob("*.sock"))]
    return [int(r["stopping"]) for r in replies if r and "stopping" in r]


def status() -> list[str]:
    """One line per warm process of this user, saying whether it would serve a run from here."""
    if not enabled():
        return [f"warm start is off ({ENABLE_ENV}={os.environ.get(ENABLE_ENV)})"]
    folder = runtime_dir()
    if folder is None:
        return ["warm start unavailable: no private runtime folder"]
    key = code_key()
    lines = []
    for sock_path in sorted(folder.glob("*.sock")):
        reply = _ask(sock_path, {"status": True})
        if reply:
            serves = "serves runs from here" if reply["key"] == key else "other code or environment"
            office = f"LibreOffice {reply['office']} kept for the PDFs; " if reply.get("office") else ""
            if reply.get("importing"):
                serves += " once it has imported (runs run in-process until then)"
            lines.append(
                f"pid {reply['pid']}: {serves}; {reply['runs']} run(s), idle {reply['idle']:.0f} s "
                f"of {reply['idle_limit']:.0f}; {office}log {sock_path.with_suffix('.log')}"
            )
    return lines or ["no warm process (the next `pipeline run` runs in-process and leaves one)"]


# ---------------------------------------------------------------- warm process


def _preload() -> None:
    """Import what a run imports, so a forked run imports (almost) nothing."""
    import gc
    import importlib
    import pkgutil

    import pipeline

    for module in pkgutil.walk_packages(pipeline.__path__, "pipeline."):
        try:
            importlib.import_module(module.name)
        except Exception as exc:  # noqa: BLE001 - a module that fails here fails the run too, as it would cold
            print(f"preload: {module.name}: {exc}", flush=True)
    for name in RUN_IMPORTS:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            print(f"preload: {name}: {exc}", flush=True)
    try:
        _open_throwaway_instance()
    except Exception as exc:  # noqa: BLE001 - only a head start: a run opens its own instance
        print(f"preload: throwaway Dagster instance: {exc}", flush=True)
    try:
        _load_register()
    except Exception as exc:  # noqa: BLE001 - a run loads it itself (and reports what is wrong)
        print(f"preload: unit register: {exc}", flush=True)
    # Everything imported lives as long as the process: out of the collector's sight, and
    # not written to by it, so the forks share these pages instead of copying them.
    gc.collect()
    gc.freeze()


def _open_throwaway_instance() -> None:
    """Open and close a Dagster instance in a temporary folder: what opening one imports is
    imported, and the migration scripts every opening checks are read (see
    ``remember_migration_scripts``), once here instead of in every run. Nothing stays open."""
    import tempfile

    from dagster import DagsterInstance

    from pipeline.defs.event_storage import remember_migration_scripts

    remember_migration_scripts()
    saved = os.environ.get("DAGSTER_HOME")
    with tempfile.TemporaryDirectory(prefix="warm-dagster-") as home:
        os.environ["DAGSTER_HOME"] = home
        try:
            instance = DagsterInstance.get()
            instance.dispose()
        finally:
            if saved is None:
                os.environ.pop("DAGSTER_HOME", None)
            else:
                os.environ["DAGSTER_HOME"] = saved


def _load_register() -> None:
    """Load the unit register (and its matcher) the runs of this environment use.

    A run forked from here finds it in ``flow.make_context``'s memory, which is
    keyed by the register's content: a register edited since is loaded anew.
    """
    from pipeline import flow
    from pipeline.config import load_settings

    flow.make_context(load_settings())


# Imported during a run rather than by the pipeline's modules or by opening an instance
# (run creation, in-process execution, the file watcher, the parse workers' pool).
# tests/test_warm_start.py fails when a run imports anything the warm process has not.
RUN_IMPORTS = (
    "dagster._core.definitions.external_asset",
    "dagster._core.definitions.repository_definition.repository_data_builder",
    "dagster._core.execution.asset_backfill",
    "dagster._core.execution.execute_in_process",
    "dagster._core.execution.plan.active",
    "dagster._core.executor.in_process",
    "dagster._core.instance.runs.run_domain",
    "dagster._core.storage.noop_compute_log_manager",
    "dagster._core.system_config.composite_descent",
    "dagster._daemon.controller",
    "encodings.cp437",  # zip member names without the UTF-8 flag
    "encodings.cp1252",
    "encodings.latin_1",
    "encodings.utf_16",
    "encodings.utf_16_be",
    "encodings.utf_16_le",
    "encodings.utf_8_sig",
    "openpyxl.packaging.extended",
    "watchdog.observers.polling",
    "multiprocessing.forkserver",
    "multiprocessing.popen_fork",
    "multiprocessing.queues",
    "multiprocessing.resource_tracker",
    "multiprocessing.spawn",
    "multiprocessing.synchronize",
    "runpy",
)


def serve(key: str) -> None:
    """The warm process: bind, import, then fork a run for each request until idle or replaced."""
    import select
    import threading

    folder = runtime_dir()
    if folder is None:
        return
    sock_path, _, current = _paths(folder, key)
    idle_limit = float(os.environ.get(IDLE_ENV, DEFAULT_IDLE_SECONDS))
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock_path.unlink(missing_ok=True)  # left by one that died (a live one was asked first)
        listener.bind(str(sock_path))
        os.chmod(sock_path, 0o600)
        listener.listen(16)
    except OSError as exc:
        print(f"cannot listen on {sock_path}: {exc}", flush=True)
        return
    inode = sock_path.stat().st_ino
    current.write_text(key)
    _remove_dead(folder, keep=key)
    ready = _ready_path(sock_path)
    ready.unlink(missing_ok=True)  # one that died left it: runs come once this one has imported
    print(f"warm process {os.getpid()} for key {key}: importing", flush=True)
    started = time.monotonic()
    # In a thread of the idle class: the run that started this process goes on at full speed,
    # and this one stays able to answer a status or stop request meanwhile. It says it is done
    # on a pipe: the main thread sleeps in select() until then, never waking to take the
    # interpreter lock from the importing thread.
    done_read, done_write = os.pipe()
    importer = threading.Thread(target=_preload_when_idle, args=(done_write,), name="preload", daemon=True)
    importer.start()
    pdf = None  # the PDF module, once imported
    busy = True
    last_used = time.monotonic()
    runs = 0
    office: int | None = None  # the spare LibreOffice's pid
    try:
        while True:
            _reap()
            if pdf is None:
                readable, _, _ = select.select([listener, done_read], [], [])
                if done_read in readable:
                    importer.join()  # no other thread left when runs are forked
                    os.close(done_read)
                    from pipeline.reports import pdf  # imported by now; the client imports only the standard library

                    ready.write_text(str(os.getpid()))
                    print(f"ready after {time.monotonic() - started:.2f} s", flush=True)
                    last_used = time.monotonic()
                    continue
                # else a connection, below: a status or stop request is answered, a run refused
            else:
                # A run in-process (the one that started this process, or any other) may be starting
                # a LibreOffice of its own, and uses the cores: no spare meanwhile, and no idle time.
                busy = bool(_active_runs) or _runs_in_process(folder)
                # Between runs, a LibreOffice waits for the next one's PDFs (its ~1 s start is most
                # of a one-file rerun otherwise); while a run is active, it is looked at often.
                if not busy:
                    office = _keep_office(pdf, office)
                listener.settimeout(_RUN_WAKE_SECONDS if busy else _WAKE_SECONDS)
                if not _still_current(sock_path, inode, current, key):
                    print("replaced or removed: exiting", flush=True)
                    return
                if busy:  # idle counts from the end of the last run (one may be using its LibreOffice)
                    last_used = time.monotonic()
                elif time.monotonic() - last_used > idle_limit:
                    print(f"idle for {idle_limit:.0f} s: exiting", flush=True)
                    return
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            state = {"runs": runs, "idle": time.monotonic() - last_used, "idle_limit": idle_limit,
                     "office": None if busy else office, "importing": pdf is None}
            served = _handle(conn, listener, key, state)
            if served == "run":
                runs += 1
                last_used = time.monotonic()
                pdf.retry_spare()
            elif served == "stop":
                print("asked to stop: exiting", flush=True)
                return
    finally:
        listener.close()
        if pdf is not None:
            pdf.cool_down()
        try:
            if sock_path.stat().st_ino == inode:
                sock_path.unlink()
        except OSError:
            pass
        try:  # not another warm process's for the same key, started since
            if ready.read_text() == str(os.getpid()):
                ready.unlink()
        except OSError:
            pass
        if importer.is_alive():
            # Leaving while the import thread is still in an import: the interpreter's own
            # shutdown would wait for the import lock it holds, or tear modules from under it.
            sys.stdout.flush()
            os._exit(0)


def _preload_when_idle(done: int) -> None:
    """``_preload`` in the calling thread at the idle scheduling class (Linux: a thread's own),
    then a byte on ``done`` (which it closes).

    The class is the thread's, not the process's: runs forked later from the main thread
    run at the normal class, and an unprivileged process could not raise it back.
    """
    try:
        try:
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        except (AttributeError, OSError):
            pass  # not Linux: a nice value there is the whole process's, and its runs' after it
        _preload()
    finally:
        os.write(done, b"\n")
        os.close(done)


def _remove_dead(folder: Path, keep: str) -> None:
    """Sockets nobody answers on (a warm process killed) and the logs of warm processes gone."""
    for sock_path in folder.glob("*.sock"):
        if sock_path.stem != keep and not _answers(sock_path):
            sock_path.unlink(missing_ok=True)
    for ready in folder.glob("*.ready"):
        if ready.stem != keep and not ready.with_suffix(".sock").exists():
            ready.unlink(missing_ok=True)
    for log_path in folder.glob("*.log"):
        if log_path.stem != keep and not log_path.with_suffix(".sock").exists():
            log_path.unlink(missing_ok=True)


def _still_current(sock_path: Path, inode: int, current: Path, key: str) -> bool:
    try:
        return sock_path.stat().st_ino == inode and current.read_text() == key
    except OSError:
        return False


def _reap() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        _active_runs.discard(pid)


def _keep_office(pdf, previous: int | None) -> int | None:
    """A spare LibreOffice for the next run's reports (``pdf.keep_spare``): its pid, None without."""
    if pdf.soffice_path() is None:
        return None
    try:
        pid = pdf.keep_spare()
    except Exception as exc:  # noqa: BLE001 - only a head start: a run starts its own
        print(f"spare LibreOffice: {exc}", flush=True)
        return None
    if pid is not None and pid != previous:
        print(f"LibreOffice {pid} started for the next run's PDFs", flush=True)
    elif pid is None and previous is not None:
        print(f"LibreOffice {previous} ended by itself: none kept until the next run", flush=True)
    return pid


def _handle(conn: socket.socket, listener: socket.socket, key: str, state: dict) -> str | None:
    """Serve one connection: fork a run, answer a status request, or agree to stop."""
    fds: list[int] = []
    try:
        conn.settimeout(10)
        uid = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")))[1]
        if uid != os.getuid():
            return None
        head, fds, _, _ = socket.recv_fds(conn, _LENGTH.size, 3)  # the prefix and the fds sent with it
        if len(head) < _LENGTH.size:  # a probe (``_answers``) that connected and went
            return None
        (size,) = _LENGTH.unpack(head)
        request = json.loads(_recv_exact(conn, size))
        if request.get("stop"):
            _send(conn, {"stopping": os.getpid()})
            return "stop"
        if request.get("status"):
            _send(conn, {"pid": os.getpid(), "key": key, **state})
            return None
        if state["importing"]:  # a run that found a ready file left by one that died: in-process
            _send(conn, {"refused": "importing"})
            return None
        if request.get("key") != key or len(fds) != len(request.get("fds", [])):
            _send(conn, {"refused": "key"})
            return None
        pid = os.fork()
        if pid == 0:
            listener.close()
            _run_forked(conn, request, fds)  # never returns
        _active_runs.add(pid)
        print(f"run {pid}: pipeline {' '.join(request['argv'])}", flush=True)
        return "run"
    except (OSError, EOFError, ValueError):
        return None
    finally:
        conn.close()
        for fd in fds:
            os.close(fd)


def _run_forked(conn: socket.socket, request: dict, fds: list[int]) -> None:
    """In the fork: become the client's `pipeline` process, run, report the exit status."""
    global _forked_run
    _forked_run = True
    code = 1
    try:
        conn.settimeout(None)
        devnull = os.open(os.devnull, os.O_RDWR)
        given = dict(zip(request["fds"], fds))
        for target in (0, 1, 2):
            os.dup2(given.get(target, devnull), target)
        for fd in [*fds, devnull]:
            if fd > 2:
                os.close(fd)
        os.setsid()  # its own process group: LibreOffice and the workers go with it, not with the warm process
        os.chdir(request["cwd"])
        os.umask(int(request["umask"]))
        os.environ.clear()
        os.environ.update(request["env"])
        for stream in (sys.stdout, sys.stderr):
            stream.reconfigure(line_buffering=stream.isatty())
        sys.argv = ["pipeline", *request["argv"]]
        try:
            _send(conn, {"pid": os.getpid()})
        except OSError:  # the client gave up waiting (and runs in-process): not a second run
            os._exit(1)
        from pipeline import cli

        code = cli.main(request["argv"])
    except SystemExit as exc:
        if isinstance(exc.code, str):  # as Python says it for an uncaught SystemExit("...")
            print(exc.code, file=sys.stderr)
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except KeyboardInterrupt:
        code = 130
    except BaseException:  # noqa: BLE001 - printed to the client's stderr, as an uncaught error would be
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        import atexit

        try:
            atexit._run_exitfuncs()
            sys.stdout.flush()
            sys.stderr.flush()
        except BaseException:  # noqa: BLE001
            pass
        try:
            _send(conn, {"exit": code})
        except OSError:
            pass
        os._exit(code)


def main(argv: list[str]) -> None:
    if len(argv) == 2 and argv[0] == "serve":
        serve(argv[1])
    else:
        sys.exit("usage: python -m pipeline.warm_start serve KEY   (started by `pipeline run`)")


if __name__ == "__main__":
    # Run as pipeline.warm_start, not as __main__: its state (``forked_run``) must be the
    # module's the rest of the pipeline imports.
    from pipeline import warm_start

    warm_start.main(sys.argv[1:])
