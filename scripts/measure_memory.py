"""Run the pipeline on a raw folder and report the peak memory of the whole process tree.

    uv run python scripts/measure_memory.py RAW_DIR [--warehouse PATH] [--limit-mb 1024] [-- extra pipeline args]

The pipeline runs as `python -m pipeline.cli run` in a child process (the same
code path as `uv run pipeline run`); every few milliseconds the resident
memory of that child and all its descendants (parse workers, LibreOffice) is
read from /proc and summed. Two figures are reported:

- peak tree RSS: the largest sum of RSS over the tree at one instant. Pages a
  forked worker shares with its parent are counted twice, so this overstates;
  it is the figure compared with --limit-mb.
- peak tree PSS: the same with shared pages split between their users
  (/proc/<pid>/smaps_rollup), closer to what the machine actually spent.
- max single-process RSS (getrusage RUSAGE_CHILDREN), which does not depend on
  sampling and bounds the biggest process from below.

Exit status: the pipeline's own, or 3 when the peak exceeded --limit-mb.
Linux only (reads /proc). Standard library only.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as fh:
                out.extend(int(c) for c in fh.read().split())
    except OSError:
        pass
    return out


def _tree(root: int) -> list[int]:
    seen, todo = [], [root]
    while todo:
        pid = todo.pop()
        seen.append(pid)
        todo.extend(_children(pid))
    return seen


def _rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _pss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as fh:
            for line in fh:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class TreeSampler(threading.Thread):
    """Samples the summed RSS/PSS of a process tree until stopped."""

    def __init__(self, pid: int, interval: float = 0.01) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.interval = interval
        self.peak_rss_kb = 0
        self.peak_pss_kb = 0
        self.peak_processes = 0
        self.samples = 0
        self._halt = threading.Event()

    def run(self) -> None:
        tick = 0
        while not self._halt.is_set():
            pids = _tree(self.pid)
            rss = sum(_rss_kb(p) for p in pids)
            self.peak_rss_kb = max(self.peak_rss_kb, rss)
            # PSS is dearer to read; take it every few samples and whenever RSS peaks.
            if tick % 5 == 0 or rss >= self.peak_rss_kb:
                self.peak_pss_kb = max(self.peak_pss_kb, sum(_pss_kb(p) for p in pids))
            self.peak_processes = max(self.peak_processes, len(pids))
            self.samples += 1
            tick += 1
            self._halt.wait(self.interval)

    def stop(self) -> None:
        self._halt.set()
        self.join()


def measure(raw_dir: Path, warehouse: Path, extra: list[str] | None = None, env: dict | None = None) -> dict:
    """Run `pipeline run` over ``raw_dir`` and return the measurements (kB and seconds)."""
    run_env = dict(os.environ if env is None else env)
    run_env.update(PIPELINE_RAW_DIR=str(raw_dir), PIPELINE_WAREHOUSE=str(warehouse))
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline.cli", "run", *(extra or [])],
        cwd=PROJECT_ROOT,
        env=run_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    sampler = TreeSampler(proc.pid)
    sampler.start()
    output, _ = proc.communicate()
    sampler.stop()
    return {
        "exit_code": proc.returncode,
        "seconds": round(time.monotonic() - started, 2),
        "peak_tree_rss_mb": round(sampler.peak_rss_kb / 1024, 1),
        "peak_tree_pss_mb": round(sampler.peak_pss_kb / 1024, 1),
        "max_single_process_rss_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1),
        "peak_processes": sampler.peak_processes,
        "samples": sampler.samples,
        "output": output.decode("utf-8", "replace"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("raw_dir", type=Path)
    parser.add_argument("--warehouse", type=Path, default=None, help="default: a fresh temporary folder")
    parser.add_argument("--limit-mb", type=float, default=1024.0)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--show-output", action="store_true")
    parser.add_argument("extra", nargs="*", help="extra arguments for `pipeline run` (after --)")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="measure-") as tmp:
        warehouse = args.warehouse or Path(tmp) / "out" / "warehouse.duckdb"
        result = measure(args.raw_dir.resolve(), warehouse.resolve(), args.extra)
    if args.show_output:
        print(result["output"])
    figures = {k: v for k, v in result.items() if k != "output"}
    if args.json:
        print(json.dumps(figures))
    else:
        for k, v in figures.items():
            print(f"{k:28} {v}")
    if result["exit_code"] != 0:
        return result["exit_code"]
    return 3 if result["peak_tree_rss_mb"] > args.limit_mb else 0


if __name__ == "__main__":
    raise SystemExit(main())
