"""The cyclic collector around a run: paused while what lasts is imported, on for the run itself."""

from __future__ import annotations

import gc
import os
import subprocess
import sys

from pipeline.config import PROJECT_ROOT
from tests.conftest import make_settings


def test_collector_paused_for_the_imports_and_on_for_the_run(tmp_path, raw_copy, monkeypatch):
    from pipeline import flow
    from pipeline import definitions
    from pipeline.runner import run_pipeline

    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    monkeypatch.setattr("pipeline.reports.pdf.soffice_path", lambda: None)
    seen = {}
    real_defs, real_build = definitions.build_definitions, flow.build_warehouse

    def defs_spy(*args, **kwargs):
        seen["setting up"] = gc.isenabled()
        return real_defs(*args, **kwargs)

    def build_spy(*args, **kwargs):
        seen["running"] = gc.isenabled()
        return real_build(*args, **kwargs)

    monkeypatch.setattr(definitions, "build_definitions", defs_spy)
    monkeypatch.setattr(flow, "build_warehouse", build_spy)
    assert gc.isenabled()
    outcome = run_pipeline(make_settings(tmp_path, raw_dir=raw_copy), quiet=True)
    assert outcome.success
    assert seen == {"setting up": False, "running": True}
    assert gc.isenabled() and gc.get_freeze_count() == 0  # as the caller had it

    gc.disable()
    try:
        run_pipeline(make_settings(tmp_path / "again", raw_dir=raw_copy), quiet=True)
        assert not gc.isenabled()  # a caller's own choice is kept too
    finally:
        gc.enable()


def test_fork_server_workers_start_with_the_shared_code_frozen(tmp_path):
    script = (
        "import gc, multiprocessing\n"
        "from concurrent.futures import ProcessPoolExecutor\n"
        "from pipeline.ingest.prestart import WORKER_PRELOAD\n"
        "def probe():\n"
        "    import sys\n"
        "    return gc.get_freeze_count(), gc.isenabled(), 'pipeline.ingest.batch' in sys.modules\n"
        "if __name__ == '__main__':\n"
        "    mp = multiprocessing.get_context('forkserver')\n"
        "    mp.set_forkserver_preload(WORKER_PRELOAD)\n"
        "    with ProcessPoolExecutor(1, mp_context=mp) as pool:\n"
        "        print(*pool.submit(probe).result())\n"
    )
    (tmp_path / "probe.py").write_text(script)  # a file: a fork server's workers import their __main__
    out = subprocess.run(
        [sys.executable, str(tmp_path / "probe.py")], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
    )
    frozen, collecting, loaded = out.stdout.split()
    assert int(frozen) > 10_000 and collecting == "True" and loaded == "True", out.stderr
