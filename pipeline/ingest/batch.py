"""Parse many archived versions: in parallel, each in isolation, cached by content hash.

Each file is parsed in a worker process with a memory cap and a time limit, so
a hostile file that slips past the guards costs one refusal, not the run.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import resource
import tempfile
from concurrent.futures import ProcessPoolExecutor, TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

from pipeline.archive import Archive, FileVersion
from pipeline.checks.catalogue import make_issue
from pipeline.ingest.guards import Limits
from pipeline.ingest.match import UnitMatcher
from pipeline.ingest.model import ParsedReturn
from pipeline.ingest.parse import parse_return

# Bump when parsing changes meaning, so cached results are not reused.
PARSER_VERSION = "1"
WORKER_MEMORY_BYTES = 768 * 1024 * 1024
PARSE_TIMEOUT_SECONDS = 60

_worker_matcher: UnitMatcher | None = None


@dataclass(frozen=True)
class ParseJob:
    sha256: str
    file_name: str
    archived_path: str
    refusal: str | None
    refusal_detail: str = ""


def cache_key(sha256: str, register_fingerprint: str) -> str:
    return hashlib.sha256(f"{PARSER_VERSION}:{register_fingerprint}:{sha256}".encode()).hexdigest()


def _init_worker(matcher: UnitMatcher) -> None:
    global _worker_matcher
    _worker_matcher = matcher
    try:
        resource.setrlimit(resource.RLIMIT_AS, (WORKER_MEMORY_BYTES, WORKER_MEMORY_BYTES))
    except (ValueError, OSError):
        pass  # not permitted here: the pre-parse guards still bound the input


def _parse_in_worker(data: bytes, file_name: str, limits: Limits) -> ParsedReturn:
    assert _worker_matcher is not None
    try:
        return parse_return(data, file_name, _worker_matcher, limits)
    except MemoryError:
        return _refused(file_name, "file_zip_bomb", "vượt giới hạn bộ nhớ khi đọc")
    except Exception as exc:  # one file's failure must never take the run down
        return _refused(file_name, "file_corrupt", f"{type(exc).__name__}: {exc}")


def _refused(file_name: str, code: str, detail: str = "") -> ParsedReturn:
    return ParsedReturn(file_name=file_name, issues=[make_issue(code, file=file_name, detail=detail)])


class ParseCache:
    def __init__(self, root: Path, register_fingerprint: str) -> None:
        self.root = root / "parsed"
        self.fingerprint = register_fingerprint

    def _path(self, sha256: str) -> Path:
        key = cache_key(sha256, self.fingerprint)
        return self.root / key[:2] / f"{key}.pkl"

    def get(self, sha256: str) -> ParsedReturn | None:
        path = self._path(sha256)
        if not path.exists():
            return None
        try:
            return pickle.loads(path.read_bytes())
        except Exception:
            return None  # a damaged cache entry is simply recomputed

    def put(self, sha256: str, parsed: ParsedReturn) -> None:
        path = self._path(sha256)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        with os.fdopen(fd, "wb") as fh:
            pickle.dump(parsed, fh, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)


def jobs_for(versions: list[FileVersion]) -> list[ParseJob]:
    """One job per distinct content among versions that carry bytes."""
    jobs: dict[str, ParseJob] = {}
    for v in versions:
        if v.ignored or v.sha256 in jobs:
            continue
        jobs[v.sha256] = ParseJob(v.sha256, v.file_name, v.archived_path or "", v.refusal, v.refusal_detail)
    return list(jobs.values())


def parse_all(
    jobs: list[ParseJob],
    archive: Archive,
    cache: ParseCache,
    matcher: UnitMatcher,
    limits: Limits,
    workers: int | None = None,
) -> tuple[dict[str, ParsedReturn], int]:
    """Parse every job not already cached; returns results by sha256 and the number parsed."""
    results: dict[str, ParsedReturn] = {}
    todo: list[ParseJob] = []
    for job in jobs:
        if job.refusal:
            results[job.sha256] = _refused(job.file_name, job.refusal, job.refusal_detail)
            continue
        cached = cache.get(job.sha256)
        if cached is not None:
            cached.file_name = job.file_name
            results[job.sha256] = cached
        else:
            todo.append(job)
    if not todo:
        return results, 0

    workers = workers or min(len(todo), os.cpu_count() or 1)
    pending = list(todo)
    while pending:
        pending = _run_pool(pending, archive, cache, matcher, limits, workers, results)
    return results, len(todo)


def _run_pool(jobs, archive, cache, matcher, limits, workers, results) -> list[ParseJob]:
    """Run jobs in a pool; on a crash or time-out, refuse the culprit and return the rest to retry."""
    with ProcessPoolExecutor(max_workers=workers, initializer=_init_worker, initargs=(matcher,)) as pool:
        futures = [(job, pool.submit(_parse_in_worker, archive.read(job.archived_path), job.file_name, limits)) for job in jobs]
        for i, (job, future) in enumerate(futures):
            try:
                parsed = future.result(timeout=PARSE_TIMEOUT_SECONDS)
            except FutureTimeout:
                parsed = _refused(job.file_name, "file_parse_timeout")
                _kill(pool)
                results[job.sha256] = parsed
                cache.put(job.sha256, parsed)
                return [j for j, _ in futures[i + 1 :] if j.sha256 not in results]
            except BrokenProcessPool:
                parsed = _refused(job.file_name, "file_corrupt", "trình đọc bị dừng đột ngột")
                results[job.sha256] = parsed
                return [j for j, _ in futures[i + 1 :] if j.sha256 not in results]
            results[job.sha256] = parsed
            cache.put(job.sha256, parsed)
    return []


def _kill(pool: ProcessPoolExecutor) -> None:
    for proc in list(getattr(pool, "_processes", {}).values()):
        proc.kill()
    pool.shutdown(wait=False, cancel_futures=True)
