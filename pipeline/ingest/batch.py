"""Parse many archived versions: in parallel, each in isolation, cached by content hash.

Each file is parsed in a worker process with a memory cap and a time limit, so
a hostile file that slips past the guards costs one refusal, not the run:

- workers come from a fork server, not a fork of the pipeline process: the
  pipeline holds DuckDB and Dagster threads whose locks a plain fork would copy
  mid-use, and its address space (which RLIMIT_AS counts) varies with them;
- a worker may grow by WORKER_HEADROOM_BYTES over what it had at start (never
  past WORKER_MEMORY_BYTES), so two workers plus the pipeline stay well under
  1 GB whatever a file does; Python raises MemoryError, native code aborts —
  both end as a refusal;
- when a worker dies (a native abort, the OOM killer), every unfinished job
  is a suspect; suspects are re-run one at a time, so only the file that kills
  a worker on its own is refused;
- a job that runs past PARSE_TIMEOUT_SECONDS is refused and the pool's
  processes are killed (a stuck native call cannot be interrupted otherwise);
  the other unfinished jobs are re-run.

Workers read the archived bytes themselves and send results back pickled; the
pipeline process stores those bytes in the cache without loading them. The
ingest step hands a worker a whole period (``parse_periods``): having the
period's results in memory, the worker also prepares the period's warehouse
content (``load.prepare_content``), so the build neither re-reads results nor
checks content itself. A task that fails is redone file by file with the
isolation above. Crash and time-out refusals are cached like any result, so a
run and its re-run refuse the same files.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import multiprocessing
import os
import pickle
import resource
import signal
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import Future, ProcessPoolExecutor, TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from itertools import chain, islice
from pathlib import Path
from typing import Callable

from pipeline.archive import Archive, FileVersion
from pipeline.checks.catalogue import make_issue
from pipeline.ingest.guards import Limits
from pipeline.ingest.match import UnitMatcher
from pipeline.ingest.model import ParsedReturn
from pipeline.ingest.parse import parse_return
from pipeline.ingest.prestart import WORKER_PRELOAD, single_threaded
from pipeline.runner import crash_point
from pipeline.versions import PARSER_VERSION

log = logging.getLogger(__name__)

WORKER_MEMORY_BYTES = 768 * 1024 * 1024  # absolute ceiling of a worker's address space
WORKER_HEADROOM_BYTES = 320 * 1024 * 1024  # what one file may add to a worker
PARSE_TIMEOUT_SECONDS = 60

ParseFn = Callable[[bytes, str, UnitMatcher, Limits], ParsedReturn]

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


def _address_space_bytes() -> int | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def worker_memory_limit(current: int | None) -> int:
    """The RLIMIT_AS for a worker whose address space is ``current`` bytes at start."""
    if current is None:
        return WORKER_MEMORY_BYTES
    return min(WORKER_MEMORY_BYTES, current + WORKER_HEADROOM_BYTES)


def _die_with_parent() -> None:
    """Make sure this worker ends when the pipeline process dies (SIGKILL, OOM killer).

    A worker waits on its job queue forever, so something must end it. The
    kernel kills it when its parent dies (PR_SET_PDEATHSIG, Linux). Under a
    fork server the parent is the server, which exits when the pipeline is
    gone — but only once every holder of its "alive" pipe is gone, and each
    worker is handed a copy; workers never start processes, so they drop it.
    """
    try:
        from multiprocessing import forkserver

        server = getattr(forkserver, "_forkserver", None)
        fd = getattr(server, "_forkserver_alive_fd", None)
        if fd is not None:
            os.close(fd)
            server._forkserver_alive_fd = None
    except OSError:
        pass
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_PDEATHSIG = 1
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() == 1:  # the parent died before the request was made
        os._exit(1)


def _init_worker(matcher: UnitMatcher) -> None:
    global _worker_matcher
    _die_with_parent()
    _worker_matcher = matcher
    limit = worker_memory_limit(_address_space_bytes())
    try:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    except (ValueError, OSError):
        pass  # not permitted here: the pre-parse guards still bound the input


def _parse_in_worker(path: str, file_name: str, limits: Limits, parse_fn: ParseFn = parse_return) -> bytes:
    """The pickled result: the pipeline keeps these bytes in the cache pack as they are,
    instead of unpickling and pickling every result again."""
    return pickle.dumps(_parse_one(path, file_name, limits, parse_fn), protocol=pickle.HIGHEST_PROTOCOL)


def _parse_one(path: str, file_name: str, limits: Limits, parse_fn: ParseFn) -> ParsedReturn:
    assert _worker_matcher is not None
    try:
        data = Path(path).read_bytes()
        return parse_fn(data, file_name, _worker_matcher, limits)
    except MemoryError:
        return _refused(file_name, "file_zip_bomb", "vượt giới hạn bộ nhớ khi đọc")
    except Exception as exc:  # one file's failure must never take the run down
        log.warning("parsing %s failed: %s: %s", file_name, type(exc).__name__, exc)
        return _refused(file_name, "file_corrupt", f"lỗi khi đọc nội dung tệp: {type(exc).__name__}")


def _refused(file_name: str, code: str, detail: str = "") -> ParsedReturn:
    return ParsedReturn(file_name=file_name, issues=[make_issue(code, file=file_name, detail=detail)])


class ParseCache:
    """Parse results by content hash, kept as packs: one file per batch of results.

    A file per result costs an open, a write and a rename each (about 1.5 ms on
    a plain disk), more than parsing a return; a pack per batch costs that once.
    Packs are read once per process and merged when they pile up. No fsync: a
    pack lost or torn by a crash fails to unpickle and its files are parsed again.
    """

    _MAX_PACKS = 16
    # Shared by every instance in the process: flow.Context makes a new one per use.
    # A value is a result, or its pickle until first asked for.
    _entries: dict[Path, dict[str, ParsedReturn | bytes]] = {}
    _packs_read: dict[Path, set[str]] = {}

    def __init__(self, root: Path, register_fingerprint: str) -> None:
        self.folder = root / "parsed" / cache_key("", register_fingerprint)[:16]
        self._pending: dict[str, ParsedReturn | bytes] = {}

    @classmethod
    def at(cls, folder: Path) -> "ParseCache":
        """The cache kept in ``folder`` (its ``.folder``), e.g. opened again in a worker."""
        cache = cls.__new__(cls)
        cache.folder = Path(folder)
        cache._pending = {}
        return cache

    def _load(self) -> dict[str, ParsedReturn | bytes]:
        entries = self._entries.setdefault(self.folder, {})
        seen = self._packs_read.setdefault(self.folder, set())
        if self.folder.is_dir():
            for pack in sorted(self.folder.glob("*.pkl")):
                if pack.name in seen:
                    continue
                try:
                    entries.update(pickle.loads(pack.read_bytes()))
                except Exception:
                    pass  # a damaged or torn pack (a crash mid-write) is simply recomputed
                seen.add(pack.name)
        return entries

    def get(self, sha256: str) -> ParsedReturn | None:
        entries = self._entries.get(self.folder)
        if entries is None or sha256 not in entries:
            entries = self._load()  # new packs from another run may have appeared
        value = entries.get(sha256)
        if isinstance(value, bytes):
            try:
                value = entries[sha256] = pickle.loads(value)
            except Exception:  # a damaged entry is parsed again, like a damaged pack
                del entries[sha256]
                return None
        return value

    def has(self, sha256: str) -> bool:
        entries = self._entries.get(self.folder)
        if entries is None or sha256 not in entries:
            entries = self._load()
        return sha256 in entries

    def put(self, sha256: str, parsed: ParsedReturn | None, pickled: bytes | None = None) -> None:
        """Keep a result; ``pickled`` (its pickle, as a worker sent it) is what the pack stores.
        With ``parsed`` None the result stays pickled until someone asks for it."""
        entries = self._entries.get(self.folder)
        if entries is None:  # packs are listed once per process, not once per result
            entries = self._load()
        entries[sha256] = parsed if parsed is not None else pickled
        self._pending[sha256] = pickled if pickled is not None else parsed

    def flush(self) -> None:
        """Write the results put since the last flush as one pack."""
        if not self._pending:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        packs = sorted(self.folder.glob("*.pkl"))
        compact = len(packs) >= self._MAX_PACKS
        payload = dict(self._load()) if compact else self._pending
        name = f"{time.time_ns():020d}-{os.getpid()}.pkl"
        self._write(self.folder / name, payload)
        self._packs_read[self.folder].add(name)
        if compact:
            for old in packs:
                old.unlink(missing_ok=True)
        self._pending = {}

    @staticmethod
    def _write(path: Path, payload: dict[str, ParsedReturn | bytes]) -> None:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as fh:
                pickle.dump(payload, fh, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def jobs_for(versions: list[FileVersion]) -> list[ParseJob]:
    """One job per distinct content among versions that carry bytes."""
    jobs: dict[str, ParseJob] = {}
    for v in versions:
        if v.ignored or v.sha256 in jobs:
            continue
        jobs[v.sha256] = ParseJob(v.sha256, v.file_name, v.archived_path or "", v.refusal, v.refusal_detail)
    return list(jobs.values())


def _known(jobs: list[ParseJob], cache: ParseCache) -> tuple[dict[str, ParsedReturn], list[ParseJob]]:
    """(results known without parsing: refusals and cached results, the jobs left to parse)."""
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
    return results, todo


def parse_all(
    jobs: list[ParseJob],
    archive: Archive,
    cache: ParseCache,
    matcher: UnitMatcher,
    limits: Limits,
    workers: int | None = None,
    parse_fn: ParseFn = parse_return,
) -> tuple[dict[str, ParsedReturn], int]:
    """Parse every job not already cached; returns results by sha256 and the number parsed.

    ``parse_fn`` must be a module-level function (workers import it by name).
    """
    results, todo = _known(jobs, cache)
    if not todo:
        return results, 0

    def finish(job: ParseJob, outcome: ParsedReturn | bytes) -> None:
        pickled = outcome if isinstance(outcome, bytes) else None
        parsed = pickle.loads(outcome) if pickled is not None else outcome
        results[job.sha256] = parsed
        cache.put(job.sha256, parsed, pickled)
        crash_point("parsed_one")  # test-only: some results cached, others not

    pending = list(todo)
    isolate = False  # after a worker died: one job at a time, so the culprit is known
    try:
        while pending:
            n = 1 if isolate else (workers or min(len(pending), os.cpu_count() or 1))
            pending, crashed = _run_pool(pending, archive, matcher, limits, n, parse_fn, finish)
            isolate = isolate or crashed
    finally:
        cache.flush()
    return results, len(todo)


# A period of at most this many files to parse is one worker task, which also prepares the
# period's warehouse content from the results it holds; larger periods (a national one)
# are split into tasks of this size and prepared later.
TASK_FILES = 32
# Consecutive small periods share a task, up to this many (and 3 × TASK_FILES files): their
# content is prepared in one go (load.prepare_contents), about half the cost per period.
PERIODS_PER_TASK = 4


@dataclass(frozen=True)
class ParseTask:
    jobs: list[ParseJob]  # parsed in this task
    # The periods whose content the task also prepares: (period, its versions, the key kept under).
    prepare: tuple[tuple[str, list[FileVersion], str], ...] = ()


def periods_per_task(remaining: int | None, workers: int) -> int:
    """How many periods the next task takes: fewer towards the end, so no worker waits long
    for the last (larger) task of another; one when how many remain is not known."""
    if remaining is None:
        return 1
    return max(1, min(PERIODS_PER_TASK, remaining // (2 * max(1, workers))))


@dataclass
class ParseSummary:
    """What the parse step did, without loading the results in the pipeline process."""

    versions: int  # distinct contents of the periods
    parsed_now: int
    unreadable: int
    prepared_now: int = 0


def _run_task_in_worker(
    task: ParseTask, archive_root: str, cache_folder: str, limits: Limits, parse_fn: ParseFn
) -> tuple[list[tuple[str, bytes, bool]], list[bytes | None]]:
    """Parse a task's files, then prepare the content of ``task.prepare``'s periods.

    Returns (sha256, pickled result, readable) per file and, per period to
    prepare, its pickled ``PreparedContent`` (None where not possible here).
    """
    parsed: dict[str, ParsedReturn] = {}
    out = []
    for job in task.jobs:
        result = _parse_one(str(Path(archive_root) / job.archived_path), job.file_name, limits, parse_fn)
        parsed[job.sha256] = result
        out.append((job.sha256, pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL), result.row_count() is not None))
    prepared = _prepare([(period, versions) for period, versions, _ in task.prepare], parsed, cache_folder)
    return out, prepared


def _renamed(result: ParsedReturn, file_name: str) -> ParsedReturn:
    """The result under another file name; its rows stay as they are held (``replace`` would
    make their DataFrame)."""
    renamed = copy.copy(result)
    renamed.file_name = file_name
    return renamed


def _prepare(
    periods: list[tuple[str, list[FileVersion]]], parsed: dict[str, ParsedReturn], cache_folder: str
) -> list[bytes | None]:
    """pipeline.warehouse.load.prepare_contents of periods in a worker, each pickled; None for a
    period with a result neither given nor cached (the pipeline then prepares it itself)."""
    from pipeline.warehouse.load import prepare_contents

    assert _worker_matcher is not None
    cache = ParseCache.at(Path(cache_folder))
    items, positions = [], []
    for n, (period, versions) in enumerate(periods):
        jobs = jobs_for(versions)
        known, todo = _known([j for j in jobs if j.sha256 not in parsed], cache)
        if todo:
            continue
        known.update(parsed)
        own = {}
        for job in jobs:  # a result carries the name of the file it is checked under, in this period
            result = known[job.sha256]
            own[job.sha256] = result if result.file_name == job.file_name else _renamed(result, job.file_name)
        items.append((period, versions, own))
        positions.append(n)
    out: list[bytes | None] = [None] * len(periods)
    if items:
        contents = prepare_contents(items, _worker_matcher.register, _worker_matcher)
        for n, content in zip(positions, contents):
            out[n] = pickle.dumps(content, protocol=pickle.HIGHEST_PROTOCOL)
    return out


def parse_periods(
    periods: Iterable[tuple[str, tuple[list[FileVersion], str]]] | Mapping[str, tuple[list[FileVersion], str]],
    archive: Archive,
    cache: ParseCache,
    prepared: ParseCache,
    matcher: UnitMatcher,
    limits: Limits,
    workers: int | None = None,
    parse_fn: ParseFn = parse_return,
    expected_periods: int | None = None,
) -> ParseSummary:
    """Parse every version of the periods not already parsed and prepare each period's content.

    ``periods``: period -> (its versions, the key its prepared content is kept
    under in ``prepared``), as a mapping or as pairs produced lazily (the
    ingest step yields a period as soon as it has archived it, and workers
    start on it while the next is archived; the pairs are all taken before any
    result is stored; ``expected_periods`` says how many pairs will come). A
    few consecutive periods' files are parsed in one worker task that then
    prepares those periods (``load.prepare_contents``) from the results it
    holds: nothing is read back from the cache, and the pipeline process only
    stores bytes. A task that fails (a worker killed, a time-out) is redone
    file by file with ``parse_all``'s isolation, and its periods are prepared
    by the warehouse build instead.
    """
    shas: set[str] = set()
    unreadable = 0
    cached: list[str] = []

    cores = workers or os.cpu_count() or 1

    def tasks() -> Iterator[ParseTask]:
        nonlocal unreadable
        remaining = len(periods) if isinstance(periods, Mapping) else expected_periods
        batch_jobs: list[ParseJob] = []
        batch_periods: list[tuple[str, list[FileVersion], str]] = []
        for period, (versions, key) in periods.items() if isinstance(periods, Mapping) else periods:
            jobs = jobs_for(versions)
            todo = []
            for job in jobs:
                first = job.sha256 not in shas
                shas.add(job.sha256)
                if job.refusal:
                    unreadable += first
                elif cache.has(job.sha256):
                    if first:
                        cached.append(job.sha256)
                else:
                    todo.append(job)
            prepare = not prepared.has(key)
            if len(todo) <= TASK_FILES and (todo or prepare):
                batch_jobs += todo
                if prepare:
                    batch_periods.append((period, versions, key))
                # periods_per_task only falls as periods go by: now is the smallest for this task.
                if len(batch_periods) >= periods_per_task(remaining, cores) or len(batch_jobs) > 3 * TASK_FILES:
                    yield ParseTask(batch_jobs, tuple(batch_periods))
                    batch_jobs, batch_periods = [], []
            elif todo:
                yield from (ParseTask(todo[i : i + TASK_FILES]) for i in range(0, len(todo), TASK_FILES))
            if remaining is not None:
                remaining -= 1
        if batch_jobs or batch_periods:
            yield ParseTask(batch_jobs, tuple(batch_periods))

    parsed_now: set[str] = set()
    prepared_now = 0
    failed: list[ParseJob] = []

    def done(task: ParseTask, outcome) -> None:
        nonlocal unreadable, prepared_now
        files, contents = outcome
        for sha, pickled, readable in files:
            if sha not in parsed_now:
                parsed_now.add(sha)
                unreadable += not readable
            cache.put(sha, None, pickled)
        for (_, _, key), content in zip(task.prepare, contents):
            if content is not None:
                prepared.put(key, None, content)
                prepared_now += 1
        crash_point("parsed_one")  # test-only: some results cached, others not

    try:
        failed = _run_tasks(tasks(), archive, cache, matcher, limits, workers, parse_fn, done)
    finally:
        cache.flush()
        prepared.flush()
    if failed:  # redone one file at a time where needed, so only a culprit is refused
        again = [j for j in failed if j.sha256 not in parsed_now]
        results, _ = parse_all(again, archive, cache, matcher, limits, workers, parse_fn)
        for sha, result in results.items():
            if sha not in parsed_now:
                parsed_now.add(sha)
                unreadable += result.row_count() is None
    for sha in cached:  # results of an earlier run: loaded only to be counted
        result = cache.get(sha)
        unreadable += result is None or result.row_count() is None
    return ParseSummary(len(shas), len(parsed_now), unreadable, prepared_now)


def _run_tasks(tasks: Iterable[ParseTask], archive, cache, matcher, limits, workers, parse_fn, done) -> list[ParseJob]:
    """Run the tasks, in order; returns the jobs of the tasks that failed, to be parsed file by file.

    Every task is taken from ``tasks`` (which may produce them lazily) and
    submitted before any result is waited for. As in ``_run_pool``: a
    time-out names the task waited for; a dead worker names no one while
    several tasks run, so the unfinished tasks are run again one at a time,
    and then the one that kills its worker is known.
    """
    failed: list[ParseJob] = []
    cores = workers or os.cpu_count() or 1
    source = iter(tasks)
    head = list(islice(source, cores))  # no more workers than tasks (a one-period rerun starts one)
    pending: Iterable[ParseTask] = chain(head, source)
    n, isolate = min(len(head), cores), False
    while n:
        try:
            pool = _pool(n, matcher)
        except Exception as exc:  # noqa: BLE001 - no workers: everything goes the file-by-file way
            log.warning("no worker processes for parsing: %s", exc)
            return failed + [j for t in pending for j in t.jobs]
        futures: list[tuple[ParseTask, Future | None]] = []
        for t in pending:
            future = None
            if not futures or futures[-1][1] is not None:  # after a failed submission, only collect
                try:
                    future = pool.submit(_run_task_in_worker, t, str(archive.root), str(cache.folder), limits, parse_fn)
                except (BrokenProcessPool, RuntimeError):
                    future = None
            futures.append((t, future))
        pending, clean = [], False
        try:
            for i, (task, future) in enumerate(futures):
                try:
                    if future is None:
                        raise BrokenProcessPool("the pool broke before this task was submitted")
                    done(task, future.result(timeout=PARSE_TIMEOUT_SECONDS))
                except (FutureTimeout, BrokenProcessPool) as exc:
                    crashed = isinstance(exc, BrokenProcessPool)
                    log.warning("a parse task of %d files did not finish (%s)", len(task.jobs), type(exc).__name__)
                    _kill(pool)
                    unfinished = []
                    for later, f in futures[i:]:
                        if f is not None and f.done() and not f.cancelled() and f.exception() is None:
                            done(later, f.result())
                        else:
                            unfinished.append(later)
                    if crashed and not isolate and len(unfinished) > 1:
                        pending, isolate = unfinished, True
                    else:  # the task waited for is the one: its files go one by one
                        failed += task.jobs
                        pending = [t for t in unfinished if t is not task]
                    break
            else:
                clean = True
        finally:
            if clean:
                pool.shutdown(wait=True)
            else:
                _kill(pool)
        n = (1 if isolate else min(len(pending), cores)) if pending else 0
    return failed


def _prepare_in_worker(period: str, versions: list[FileVersion], cache_folder: str) -> bytes:
    """pipeline.warehouse.load.prepare_content of one period, from parse results already cached."""
    return _prepare([(period, versions)], {}, cache_folder)[0] or pickle.dumps(None)


def prepare_in_parallel(
    tasks: list[tuple[str, list[FileVersion]]], cache: ParseCache, matcher: UnitMatcher, workers: int | None = None
):
    """Yield ``(period, PreparedContent or None)`` for each task, in order, worked out in worker processes.

    The periods' content checks need nothing from each other, so they run on
    every core while the pipeline process walks the periods in order (the
    history checks). None means "do it yourself": the period was not in the
    cache, or a worker failed. The generator must be closed (it owns a pool).
    """
    try:
        pool = _pool(workers or min(len(tasks), os.cpu_count() or 1), matcher)
    except Exception as exc:  # noqa: BLE001 - no workers here: the pipeline process does it all
        log.warning("no worker processes for preparing periods: %s", exc)
        for period, _ in tasks:
            yield period, None
        return
    try:
        futures = [(period, pool.submit(_prepare_in_worker, period, versions, str(cache.folder))) for period, versions in tasks]
        for period, future in futures:
            try:
                yield period, pickle.loads(future.result(timeout=PARSE_TIMEOUT_SECONDS))
            except Exception as exc:  # noqa: BLE001 - the period is then prepared in process
                log.warning("preparing %s in a worker failed: %s", period, exc)
                yield period, None
    finally:
        _kill(pool)


_start_method: str | None = None  # the first that worked in this process


def fork_directly() -> bool:
    """Whether workers may be forked from this process rather than from the fork server.

    When it has one thread (``prestart.single_threaded``) and is small enough
    that a worker forked from it still gets its full headroom under the
    ceiling (``worker_memory_limit`` counts from the worker's size at start).
    """
    size = _address_space_bytes()
    return size is not None and size + WORKER_HEADROOM_BYTES <= WORKER_MEMORY_BYTES and single_threaded()


def _ready() -> bool:
    return True


def _pool(workers: int, matcher: UnitMatcher) -> ProcessPoolExecutor:
    """A started pool whose workers are known to come up.

    A fork server re-imports the main script in each worker; a script without
    an ``if __name__ == "__main__"`` guard kills every worker before it runs a
    job, which must not be mistaken for files crashing it. So the pool is
    probed first, and plain fork is the fallback. A run forked from the warm
    process forks its workers itself (``fork_directly``); what worked then is
    not remembered, since the process may have threads by its next pool.
    """
    global _start_method
    direct = fork_directly()
    if direct:
        methods = ["fork", "forkserver"]
    else:
        methods = [_start_method] if _start_method else ["forkserver", "fork"]
    for method in methods:
        mp = multiprocessing.get_context(method)
        if method == "forkserver":
            # Imported once in the server, then shared by every worker it forks.
            mp.set_forkserver_preload(WORKER_PRELOAD)  # pipeline run may have started it already
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=mp, initializer=_init_worker, initargs=(matcher,))
        try:
            # One probe per worker starts them all now, so a job's time limit
            # is not spent on a worker's start-up.
            for probe in [pool.submit(_ready) for _ in range(workers)]:
                probe.result(timeout=120)
        except Exception as exc:  # noqa: BLE001 - any failure here is the machinery's, not a file's
            log.warning("parse workers (%s) did not start: %s", method, exc)
            _kill(pool)
            continue
        if not direct:
            _start_method = method
        return pool
    raise RuntimeError("parse worker processes could not be started")


def _run_pool(jobs, archive, matcher, limits, workers, parse_fn, finish) -> tuple[list[ParseJob], bool]:
    """Run jobs in one pool; returns (jobs to run again, whether a worker died).

    Results are waited for in submission order. When job i is waited for,
    every earlier job is finished, so job i holds a worker: its wait is at
    least its running time, and a time-out names it for certain. A dead
    worker names no one when several jobs run at once; then every unfinished
    job goes back, to be re-run in isolation — unless only one was left.
    """
    pool = _pool(workers, matcher)
    futures: list[tuple[ParseJob, Future]] = []
    clean = False
    try:
        for job in jobs:
            path = str(archive.root / job.archived_path)
            futures.append((job, pool.submit(_parse_in_worker, path, job.file_name, limits, parse_fn)))
        for i, (job, future) in enumerate(futures):
            try:
                finish(job, future.result(timeout=PARSE_TIMEOUT_SECONDS))
            except FutureTimeout:
                log.warning("parsing %s timed out after %s s", job.file_name, PARSE_TIMEOUT_SECONDS)
                finish(job, _refused(job.file_name, "file_parse_timeout"))
                _kill(pool)
                return _harvest(futures[i + 1 :], finish), False
            except BrokenProcessPool:
                unfinished = _harvest(futures[i:], finish)
                if workers == 1 or len(unfinished) == 1:
                    log.warning("parsing %s killed its worker", job.file_name)
                    finish(job, _refused(job.file_name, "file_corrupt", "trình đọc bảng tính bị dừng đột ngột"))
                    return [j for j in unfinished if j is not job], True
                return unfinished, True
        clean = True
        return [], False
    finally:
        if clean:
            pool.shutdown(wait=True)
        else:
            _kill(pool)


def _harvest(futures: list[tuple[ParseJob, Future]], finish) -> list[ParseJob]:
    """Keep the results that did arrive; return the jobs that must run again."""
    again = []
    for job, future in futures:
        if future.done() and not future.cancelled() and future.exception() is None:
            finish(job, future.result())
        else:
            again.append(job)
    return again


def _kill(pool: ProcessPoolExecutor) -> None:
    """Stop a pool now: kill its processes (a stuck native call ignores anything gentler)."""
    processes = list((getattr(pool, "_processes", None) or {}).values())
    for proc in processes:
        if proc.is_alive():
            proc.kill()
    pool.shutdown(wait=True, cancel_futures=True)
    deadline = time.monotonic() + 5
    for proc in processes:
        proc.join(max(0.0, deadline - time.monotonic()))
