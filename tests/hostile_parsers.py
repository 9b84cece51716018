"""Stand-in parsers for the isolation tests, imported by name in the parse workers.

Kept apart from the test module so a worker imports almost nothing before the
job's time limit starts counting.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from pipeline.ingest.parse import parse_return


def hang_on_marker(data: bytes, file_name: str, matcher, limits):
    """Never returns for files named HANG-<token>…; writes its pid to pid_file(token).

    (Not an environment variable: workers fork from a server started earlier,
    with the environment of that moment.)
    """
    if file_name.startswith("HANG-"):
        pid_file(file_name[5:].split(".")[0]).write_text(str(os.getpid()))
        time.sleep(600)
    return parse_return(data, file_name, matcher, limits)


def pid_file(token: str) -> Path:
    return Path(tempfile.gettempdir()) / f"hostile-hang-{token}.pid"


def exit_on_marker(data: bytes, file_name: str, matcher, limits):
    """The process vanishes (as on a native abort) for files named *DIE*."""
    if "DIE" in file_name:
        os._exit(70)
    return parse_return(data, file_name, matcher, limits)
