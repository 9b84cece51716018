"""PDF copies of report workbooks, rendered by LibreOffice when it is installed.

The PDF is a convenience for reading and printing; the workbook stays the
report, so every failure here returns None instead of raising.

LibreOffice takes about a second to start, more than rendering a report.
``warm_up()`` starts it in the background at the lowest priority: ``pipeline
run`` calls it once it knows there is work (while Dagster is imported), the
warehouse step calls it for runs launched otherwise (the sensor, the
schedule, the UI); ``to_pdfs`` then hands the conversion to that instance (LibreOffice passes a
second start with the same profile on to the running one) and falls back to a
start of its own when the instance is not there or not ready. The warm
process (``pipeline.warm_start``) keeps one between runs (``keep_spare``):
the run it forks borrows it instead of starting its own.
"""

from __future__ import annotations

import atexit
import hashlib
import logging
import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)

def _scratch_root() -> str | None:
    """Where LibreOffice's throw-away profiles go: memory (/dev/shm) when there is one.

    A new profile is a few hundred files; on disk their creation competes with
    the run's own writes and flushes for nothing.
    """
    shm = Path("/dev/shm")
    return str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None


# Waits for process $1 to end (gone, or a zombie), then kills process group $2 and removes
# folder $3 and LibreOffice's sockets, the arguments after it.
_WATCH_SCRIPT = (
    'while [ -e "/proc/$1" ] && ! grep -qs "^State:[[:space:]]*Z" "/proc/$1/status"; do sleep 1; done; '
    'kill -9 -"$2" 2>/dev/null; rm -rf "$3"; shift 3; rm -f "$@"'
)


def _office_sockets(profile: Path) -> list[Path]:
    """Where LibreOffice puts the socket of its instance on ``profile``: it removes it when it
    quits, but one killed leaves it, and /tmp would gather one for every run.

    The name is LibreOffice's (desktop/source/app/officeipcthread.cxx): an MD5 of the profile's
    URL in UTF-16, each byte in hex without padding; /tmp, or /var/tmp when /tmp is not writable.
    """
    digest = hashlib.md5(profile.as_uri().encode("utf-16-le")).digest()  # noqa: S324 - a name, not security
    name = f"OSL_PIPE_{os.getuid()}_SingleOfficeIPC_{''.join(f'{b:x}' for b in digest)}"
    return [Path("/tmp") / name, Path("/var/tmp") / name]


def _remove_sockets(profile: Path) -> None:
    for path in _office_sockets(profile):
        try:
            if path.is_socket():
                path.unlink()
        except OSError:
            pass


def _office_env(home: Path) -> dict[str, str]:
    """LibreOffice's environment: its home and temporary files in its own folder, which goes with it."""
    tmp = home / "tmp"
    tmp.mkdir(exist_ok=True)
    return {**os.environ, "HOME": str(home), "TMPDIR": str(tmp)}


class _Watcher:
    """Ends a LibreOffice (its process group) and removes its folder should this process die
    without doing so itself.

    LibreOffice runs in a session of its own (so a time-out can kill all of it), so
    nothing ends it with the run: a run killed outright (SIGKILL, the OOM killer, run
    monitoring) would otherwise leave a headless LibreOffice idling for good, ~80 MB,
    and its profile in memory (/dev/shm). A shell loop that looks once a second costs
    nothing meanwhile; ``cancel`` ends it when the run cleans up after itself.
    """

    def __init__(self, group: int, folder: Path, profile: Path | None) -> None:
        self.proc = None
        sockets = _office_sockets(profile) if profile is not None else []
        try:
            self.proc = subprocess.Popen(
                ["sh", "-c", _WATCH_SCRIPT, "pdf-watch", str(os.getpid()), str(group), str(folder), *map(str, sockets)],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                start_new_session=True,
            )  # fmt: skip
        except OSError as exc:  # no shell: only a killed run would leave LibreOffice behind
            log.info("no watcher for LibreOffice: %s", exc)

    def cancel(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()


class _WarmOffice:
    """A headless LibreOffice with a private profile, started ahead of need; it quits after one conversion.

    Its starter (``owner``) ends it and removes its folder. A process forked from
    the owner (a run forked from the warm process, ``pipeline.warm_start``) may
    *borrow* it: it claims it first (a file created exclusively in its folder, so
    two runs never hand work to one instance) and never ends it; the conversion
    does, and the owner clears up once its runs are over.
    """

    def __init__(self, soffice: str) -> None:
        self.owner = os.getpid()
        self.claimer: int | None = None  # the process that claimed it, as far as this process knows
        # A plain folder rather than a TemporaryDirectory: a fork's exit would run the
        # latter's finaliser and delete the profile under the instance its owner keeps.
        self.home = Path(tempfile.mkdtemp(prefix="soffice-warm-", dir=_scratch_root()))
        self.profile = self.home / "profile"
        nice = shutil.which("nice")
        cmd = [soffice, f"-env:UserInstallation={self.profile.as_uri()}", "--headless", "--norestore", "--nolockcheck"]
        # Low priority: it starts while the run parses on every core and only needs to be ready for the reports.
        try:
            self.proc = subprocess.Popen(
                [nice, "-n", "19", *cmd] if nice else cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                start_new_session=True, env=_office_env(self.home),
            )  # fmt: skip
        except OSError:
            shutil.rmtree(self.home, ignore_errors=True)
            raise
        self.watcher = _Watcher(self.proc.pid, self.home, self.profile)

    def running(self) -> bool:
        if self.owner == os.getpid():
            return self.proc.poll() is None
        return _alive(self.proc.pid)  # not this process's child: it cannot wait for it

    def claimed(self) -> bool:
        return (self.home / "claimed").exists()

    def claim(self) -> bool:
        """Take it for this process's conversion; False when another process took it first."""
        if self.claimer == os.getpid():
            return True
        try:
            os.close(os.open(self.home / "claimed", os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        except OSError:
            return False
        self.claimer = os.getpid()
        return True

    def usable(self) -> bool:
        """Running, and this process's to use: its own, or claimed for it now."""
        if self.owner == os.getpid():
            return self.running()
        return self.running() and self.claim()

    def let_go(self, used: bool) -> None:
        """Done with it: the owner ends it; a borrower leaves it to the owner, handing
        back its claim when it converted nothing (the instance is still fresh)."""
        if self.owner == os.getpid():
            self.close()
        elif self.claimer == os.getpid() and not used:
            self.claimer = None
            (self.home / "claimed").unlink(missing_ok=True)

    def close(self) -> None:
        try:  # the whole session: soffice.bin may outlive the launcher that was started
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()
        self.watcher.cancel()
        shutil.rmtree(self.home, ignore_errors=True)
        _remove_sockets(self.profile)


def _alive(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie (for a process that is not our child)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        # "pid (comm) S ...": the state follows the last ")" (the name may hold one).
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


_warm: _WarmOffice | None = None


def warm_up() -> None:
    """Start LibreOffice now for this process's next ``to_pdfs`` (no-op without LibreOffice),
    unless an instance is ready for it already (its own, or its parent's spare, claimed)."""
    global _warm
    soffice = soffice_path()
    if soffice is None:
        return
    if _warm is not None:
        if _warm.usable():
            return
        warm, _warm = _warm, None
        warm.let_go(used=False)
    try:
        _warm = _WarmOffice(soffice)
    except OSError as exc:
        log.info("could not start LibreOffice ahead: %s", exc)
        return
    atexit.register(cool_down)  # never outlive this process, whether or not a conversion came


_spare_retry = True  # False once a spare ended by itself, until ``retry_spare``


def keep_spare() -> int | None:
    """For a process that forks runs (the warm process), between runs: have an instance
    ready that the next run borrows. Its process id; None without one.

    Call it only while no run it forked is active: an instance a run claimed is
    then used up (or never will be) and is replaced. One that ended by itself,
    unused (LibreOffice broken, or killed), is not started again until
    ``retry_spare``: a broken installation is not restarted every few seconds.
    """
    global _spare_retry
    if _warm is not None and _warm.owner == os.getpid():
        if _warm.running() and not _warm.claimed():
            return _warm.proc.pid
        if not _warm.claimed():
            log.warning("LibreOffice kept for the next run ended by itself (exit %s)", _warm.proc.returncode)
            _spare_retry = False
        cool_down()
    if not _spare_retry:
        return None
    warm_up()
    return _warm.proc.pid if _warm is not None else None


def retry_spare() -> None:
    """A run has come: ``keep_spare`` may start an instance again after one ended by itself."""
    global _spare_retry
    _spare_retry = True


def cool_down() -> None:
    """Let go of the instance ``warm_up`` started or claimed: end it if this process started it."""
    global _warm
    if _warm is not None:
        warm, _warm = _warm, None
        warm.let_go(used=False)


def _take_warm() -> _WarmOffice | None:
    """The warm instance for one conversion (it quits after it), if it is still running.

    It need not have finished starting: a conversion started meanwhile waits
    for it (or, if it is gone by then, simply starts LibreOffice itself).
    """
    global _warm
    warm, _warm = _warm, None
    if warm is not None and not warm.usable():
        warm.let_go(used=False)
        return None
    return warm


def soffice_path() -> str | None:
    return shutil.which("soffice") or shutil.which("libreoffice")


def to_pdf(xlsx_path: Path, out_dir: Path, timeout: float = 120) -> Path | None:
    """Convert ``xlsx_path`` to ``out_dir/<stem>.pdf``; None when LibreOffice is
    missing, fails or runs past ``timeout`` seconds."""
    return to_pdfs([Path(xlsx_path)], Path(out_dir), timeout=timeout).get(Path(xlsx_path).resolve())


def to_pdfs(xlsx_paths: list[Path], out_dir: Path | None = None, timeout: float = 120) -> dict[Path, Path]:
    """Convert many workbooks with one LibreOffice start (its start-up dominates).

    Each PDF goes next to its workbook (or into ``out_dir``); the result maps
    each converted workbook (resolved) to its PDF and omits failures.
    """
    soffice = soffice_path()
    paths = [Path(p).resolve() for p in xlsx_paths]
    if not paths:
        return {}
    if soffice is None:
        log.info("soffice not installed: no PDF for %d workbook(s)", len(paths))
        return {}
    if len({p.stem for p in paths}) != len(paths):
        # One output folder per call: equal stems would overwrite each other.
        out: dict[Path, Path] = {}
        for p in paths:
            out.update(to_pdfs([p], out_dir, timeout))
        return out
    warm = _take_warm()
    try:
        done = _convert(soffice, paths, out_dir, timeout, warm)
    finally:
        if warm is not None:
            warm.let_go(used=True)
    missing = [p for p in paths if p not in done]
    if warm is not None and missing:  # the warm instance let us down: once more, on our own
        log.info("LibreOffice started ahead converted %d of %d workbook(s); converting the rest anew", len(done), len(paths))
        done.update(_convert(soffice, missing, out_dir, timeout, None))
    return done


def _convert(soffice: str, paths: list[Path], out_dir: Path | None, timeout: float, warm: _WarmOffice | None) -> dict[Path, Path]:
    # A private profile per run: LibreOffice locks its user profile, so two
    # conversions sharing one would fail or hang. Output goes to a private
    # folder first so a stale PDF from an earlier run is never mistaken for
    # this run's, and the final rename is atomic.
    with tempfile.TemporaryDirectory(prefix="soffice-", dir=_scratch_root()) as tmp:
        tmp_dir = Path(tmp)
        profile, render_dir = tmp_dir / "profile", tmp_dir / "out"
        home = tmp_dir
        if warm is not None:  # the same profile: this start hands the conversion to the running instance
            profile, home = warm.profile, warm.home
        cmd = [
            soffice,
            f"-env:UserInstallation={profile.as_uri()}",
            "--headless",
            "--norestore",
            "--nolockcheck",
            "--convert-to",
            "pdf",
            "--outdir",
            str(render_dir),
            *map(str, paths),
        ]
        # Own session so a timeout can kill soffice.bin too, not just the wrapper script.
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
                                env=_office_env(home))
        # A borrowed instance (``warm``) is its owner's to end, and its socket with it.
        watcher = _Watcher(proc.pid, tmp_dir, profile if warm is None else None)
        try:
            _, stderr = proc.communicate(timeout=timeout + 10 * (len(paths) - 1))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            if warm is None:  # a borrowed instance's socket is its owner's to clear
                _remove_sockets(profile)
            log.warning("soffice timed out on %d workbook(s)", len(paths))
            return {}
        finally:
            watcher.cancel()
        done: dict[Path, Path] = {}
        for xlsx in paths:
            rendered = render_dir / f"{xlsx.stem}.pdf"
            if not rendered.is_file() or rendered.stat().st_size == 0:
                log.warning("soffice failed on %s (exit %s): %s", xlsx, proc.returncode,
                            stderr.decode(errors="replace").strip()[-500:])
                continue
            target_dir = Path(out_dir) if out_dir is not None else xlsx.parent
            target_dir.mkdir(parents=True, exist_ok=True)
            target = target_dir / rendered.name
            tmp_target = target_dir / f".{rendered.name}.part"
            shutil.copyfile(rendered, tmp_target)
            os.replace(tmp_target, target)
            done[xlsx] = target
        return done
