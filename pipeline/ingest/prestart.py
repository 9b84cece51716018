"""Start the parse workers' fork server before anything heavy is imported.

The fork server imports the parsing code (pandas, calamine, the register
matcher) once, about a second of work. Started first thing in ``pipeline run``
it does that on another core while the main process imports Dagster, instead
of after. Kept free of heavy imports on purpose: importing pipeline.ingest.batch
here would cost the very time this saves.
"""

from __future__ import annotations

import logging
import multiprocessing
import os

log = logging.getLogger(__name__)

# Imported once in the fork server, so every worker starts with them loaded: the
# worker module and the warehouse's load module, frozen (see worker_preload.py).
WORKER_PRELOAD = ["pipeline.ingest.worker_preload"]


def start_fork_server(modules: list[str] = WORKER_PRELOAD) -> bool:
    """Launch the fork server with ``modules`` preloaded; False where there is none (non-Linux)."""
    try:
        mp = multiprocessing.get_context("forkserver")
        mp.set_forkserver_preload(list(modules))
        from multiprocessing import forkserver

        forkserver.ensure_running()
        return True
    except (ValueError, OSError) as exc:  # no fork server here: workers start when first needed
        log.debug("fork server not started early: %s", exc)
        return False


def single_threaded() -> bool:
    """Whether this process has one thread, native ones included (Linux; elsewhere: assume not).

    Then the parse workers are forked from it directly: nothing can be caught
    holding a lock mid-fork, and a run forked from the warm process has every
    module they need already imported. A fresh ``pipeline run`` is not (numpy's
    BLAS starts a thread at import), so its workers come from the fork server.
    """
    try:
        return len(os.listdir("/proc/self/task")) == 1
    except OSError:
        return False
