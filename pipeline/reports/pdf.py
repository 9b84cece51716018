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
    soffice = soffice_path()
    if soffice is None:
        log.info("soffice not installed: no PDF for %s", xlsx_path)
        return None
    xlsx_path = Path(xlsx_path).resolve()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
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
            str(xlsx_path),
        ]
        # Own session so a timeout can kill soffice.bin too, not just the wrapper script.
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
                                env={**os.environ, "HOME": str(tmp_dir)})
        try:
            _, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            log.warning("soffice timed out after %ss on %s", timeout, xlsx_path)
            return None
        rendered = render_dir / f"{xlsx_path.stem}.pdf"
        if proc.returncode != 0 or not rendered.is_file() or rendered.stat().st_size == 0:
            log.warning("soffice failed on %s (exit %s): %s", xlsx_path, proc.returncode,
                        stderr.decode(errors="replace").strip()[-500:])
            return None
        target = out_dir / rendered.name
        tmp_target = out_dir / f".{rendered.name}.part"
        shutil.copyfile(rendered, tmp_target)
        os.replace(tmp_target, target)
        return target
