"""PDF copies of report workbooks, rendered by LibreOffice when it is installed.

The PDF is a convenience for reading and printing; the workbook stays the
report, so every failure here returns None instead of raising.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)


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
    # A private profile per run: LibreOffice locks its user profile, so two
    # conversions sharing one would fail or hang. Output goes to a private
    # folder first so a stale PDF from an earlier run is never mistaken for
    # this run's, and the final rename is atomic.
    with tempfile.TemporaryDirectory(prefix="soffice-") as tmp:
        tmp_dir = Path(tmp)
        profile, render_dir = tmp_dir / "profile", tmp_dir / "out"
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
                                env={**os.environ, "HOME": str(tmp_dir)})
        try:
            _, stderr = proc.communicate(timeout=timeout + 10 * (len(paths) - 1))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            log.warning("soffice timed out on %d workbook(s)", len(paths))
            return {}
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
