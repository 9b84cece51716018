"""Parse workers forked straight from a single-threaded process (a run forked from the warm process).

Checked in a small child process of its own: the test process has threads
(numpy's BLAS, pytest's), and a worker must never be forked from such a one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from pipeline.config import PROJECT_ROOT
from pipeline.ingest import batch

SCRIPT = r"""
import json, sys
from pathlib import Path
from pipeline.archive import Archive, sha256_of
from pipeline.ingest import batch
from pipeline.ingest.batch import ParseCache, ParseJob, parse_all
from pipeline.ingest.guards import Limits
from pipeline.ingest.match import UnitMatcher
from pipeline.register import load_register
from tests.conftest import ALIASES, REGISTER, SAMPLE_RAW
from tests.hostile_parsers import exit_on_marker

tmp = Path(sys.argv[1])
direct = batch.fork_directly()  # before anything else could start a thread
methods = []
Pool = batch.ProcessPoolExecutor

def recording_pool(*args, mp_context, **kwargs):
    methods.append(mp_context.get_start_method())
    return Pool(*args, mp_context=mp_context, **kwargs)

batch.ProcessPoolExecutor = recording_pool
matcher = UnitMatcher(load_register(REGISTER, ALIASES))
good = [(p.name, p.read_bytes()) for p in sorted((SAMPLE_RAW / "2016-06").glob("*.xlsx"))[:4]]
files = [good[0], ("DIE one.xlsx", good[1][1] + b"1"), good[2], good[3]]
archive = Archive(tmp / "archive")
jobs = [ParseJob(sha256_of(d), n, archive.store(d, sha256_of(d), ".xlsx"), None) for n, d in files]
results, parsed = parse_all(jobs, archive, ParseCache(tmp / "cache", "t"), matcher, Limits(), 2, exit_on_marker)
print(json.dumps({
    "direct": direct,
    "methods": methods,
    "parsed": parsed,
    "codes": {j.file_name: [i.code for i in results[j.sha256].issues] for j in jobs},
    "districts": {j.file_name: results[j.sha256].district_code for j in jobs},
}))
"""


def test_workers_forked_directly_parse_and_contain_a_crash(tmp_path):
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}  # no BLAS thread
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path)], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["direct"] is True
    # The first pool is forked directly. After a worker died, the next pool (one worker, to find
    # the culprit) may see the last pool's threads still winding down, and then takes the fork server.
    assert out["methods"][0] == "fork"
    assert out["parsed"] == 4
    for name, codes in out["codes"].items():
        if "DIE" in name:
            assert codes == ["file_corrupt"]
        else:
            assert codes == [] and out["districts"][name], name


def test_not_from_a_process_with_threads_or_too_large(monkeypatch):
    # This test process has threads: workers come from the fork server.
    assert batch.fork_directly() is False
    monkeypatch.setattr(batch, "single_threaded", lambda: True)
    monkeypatch.setattr(batch, "_address_space_bytes", lambda: batch.WORKER_MEMORY_BYTES - batch.WORKER_HEADROOM_BYTES)
    assert batch.fork_directly() is True
    # A worker forked from a larger process would start with less than its headroom.
    monkeypatch.setattr(batch, "_address_space_bytes", lambda: batch.WORKER_MEMORY_BYTES - batch.WORKER_HEADROOM_BYTES + 1)
    assert batch.fork_directly() is False
    monkeypatch.setattr(batch, "_address_space_bytes", lambda: None)
    assert batch.fork_directly() is False
