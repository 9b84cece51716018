"""The pipeline's steps as plain functions over settings; Dagster assets call these.

ingest (raw → archive) → parse (archive → cache) → warehouse (cache → DuckDB,
published atomically) → reports (warehouse → workbooks).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import cache

import pandas as pd

from pipeline.archive import Archive, FileVersion, merge_versions
from pipeline.config import Settings
from pipeline.ingest.batch import ParseCache, ParseSummary, jobs_for, parse_all, parse_periods, prepare_in_parallel
from pipeline.ingest.collect import Collected, collect_periods, record_taken, take_in_period
from pipeline.ingest.guards import Limits
from pipeline.ingest.match import UnitMatcher
from pipeline.register import Register, load_register
from pipeline.runner import crash_point
from pipeline.versions import PARSER_VERSION, build_code_version, file_digest
from pipeline.warehouse import build as wh
from pipeline.warehouse.load import (
    PendingRows,
    PeriodResult,
    PreparedContent,
    PriorRows,
    Snapshot,
    check_history,
    finish_period,
    load_register as load_register_tables,
    prepare_content,
    record_build,
    write_pending,
)


@dataclass
class Context:
    settings: Settings
    register: Register
    matcher: UnitMatcher
    register_fingerprint: str
    limits: Limits = field(default_factory=Limits)

    @property
    def archive(self) -> Archive:
        return Archive(self.settings.archive_dir)

    @property
    def cache(self) -> ParseCache:
        return ParseCache(self.settings.cache_dir, self.register_fingerprint)

    @property
    def prepared(self) -> ParseCache:
        """Periods' prepared content (load.PreparedContent) by ``prepared_key``, kept like parse results."""
        version = hashlib.sha256(f"{PARSER_VERSION}:{self.register_fingerprint}:{build_code_version()}".encode()).hexdigest()
        return ParseCache.at(self.settings.cache_dir / "prepared" / version[:16])


@cache
def _context_for(settings: Settings, register_fingerprint: str) -> Context:
    # A missing aliases file means no aliases, as its fingerprint says.
    register = load_register(settings.register, settings.aliases)
    return Context(
        settings=settings,
        register=register,
        matcher=UnitMatcher(register),
        register_fingerprint=register_fingerprint,
    )


def make_context(settings: Settings) -> Context:
    """The run's context. Kept per settings and register content: a process that runs many
    times (the warm process's forks, tests) loads a register again only when its files change."""
    return _context_for(settings, file_digest(settings.register, settings.aliases))


def ingest(ctx: Context, period: str) -> Collected:
    """Archive every file of the period folder (the raw folder is never modified)."""
    return ingest_periods(ctx, [period])[period]


def ingest_periods(ctx: Context, periods: list[str]) -> dict[str, Collected]:
    """``ingest`` for many periods, with one flush to disk for all of them."""
    collected = collect_periods(ctx.settings.raw_dir, periods, ctx.archive, ctx.limits)
    crash_point("ingested")  # test-only: the periods' manifests are written
    return collected


def parse(ctx: Context, periods: list[str]) -> ParseSummary:
    """Parse every version of the periods not already parsed, and prepare each period's content for the build."""
    todo = {}
    for p in periods:
        versions = ctx.archive.versions(p)
        todo[p] = (versions, prepared_key(p, versions))
    return parse_periods(todo, ctx.archive, ctx.cache, ctx.prepared, ctx.matcher, ctx.limits)


def ingest_and_parse(ctx: Context, periods: list[str]) -> tuple[dict[str, Collected], ParseSummary]:
    """``ingest_periods`` and ``parse`` overlapped: each period goes to the parse workers as soon
    as its files are archived, while this process archives the next one.

    The archive keeps its order: every object is stored and made durable, then
    every manifest, before any parse result is kept.
    """
    taken: dict[str, tuple[list[FileVersion], int]] = {}
    collected: dict[str, Collected] = {}

    def archived():
        for period in periods:
            seen, files = take_in_period(ctx.settings.raw_dir, period, ctx.archive, ctx.limits)
            taken[period] = (seen, files)
            versions, _ = merge_versions(ctx.archive.versions(period), seen)  # what the manifest will hold
            yield period, (versions, prepared_key(period, versions))
        collected.update(record_taken(ctx.archive, taken))
        crash_point("ingested")  # test-only: the periods' manifests are written

    periods_archived = archived()
    summary = parse_periods(
        periods_archived, ctx.archive, ctx.cache, ctx.prepared, ctx.matcher, ctx.limits, expected_periods=len(periods)
    )
    for _ in periods_archived:  # parse_periods takes every period; should it not, ingest still completes
        pass
    return collected, summary


def prepared_key(period: str, versions: list[FileVersion]) -> str:
    """What a period's prepared content depends on besides the register and code (``Context.prepared``):
    its versions, every field (first-seen times decide between copies)."""
    digest = hashlib.sha256(period.encode())
    for v in sorted(versions, key=lambda v: (v.path, v.sha256)):
        digest.update(repr(sorted(v.as_dict().items())).encode())
    return digest.hexdigest()




def period_fingerprint(ctx: Context, versions: list[FileVersion], previous: str = "") -> str:
    """Everything a period's build depends on. ``previous`` digests the earlier
    rows the history checks compare with, so a correction that changes a
    period's figures also refreshes the period after it, and no other."""
    digest = hashlib.sha256()
    digest.update(f"{PARSER_VERSION}:{ctx.register_fingerprint}:{build_code_version()}:{previous}".encode())
    for v in sorted(versions, key=lambda v: (v.path, v.sha256)):
        digest.update(f"{v.path}\0{v.sha256}\0{v.modified_at}\n".encode())
    return digest.hexdigest()


@dataclass
class Overview:
    """What the warehouse step shows in the UI, read from the build before it is published."""

    counts: dict[str, int]
    summary_md: str
    refusals_md: str


@dataclass
class BuildResult:
    built: list[PeriodResult]
    skipped: list[str]
    check_results: dict[str, list[tuple[str, bool, str]]] = field(default_factory=dict)
    overview: Overview | None = None


# Below this many periods to build, worker processes cost more than they save.
PARALLEL_PREPARE_MIN_PERIODS = 4


def build_warehouse(
    ctx: Context, periods: list[str], run_id: str, force: bool = False, preview: list[str] | None = None
) -> BuildResult:
    """Load the periods into a private copy of the warehouse and publish it.

    Three passes: walk the periods in order, deciding which to build and
    preparing their content (in worker processes for those certain to be
    built); check every built period's history at once; then decide what is
    in effect, gather the rows and write each table once. With ``preview``
    (periods), the result also carries the ``Overview`` of those periods.
    """
    result = BuildResult(built=[], skipped=[])
    with wh.building(ctx.settings.warehouse, ctx.settings.work_dir) as con:
        load_register_tables(con, ctx.register)
        built_before = dict(con.execute("select period, fingerprint from audit.period_builds").fetchall())
        requested = set(periods)
        prior = PriorRows.from_warehouse(con)
        walk = [p for p in sorted(requested | set(built_before) | set(ctx.archive.periods())) if p in requested or p in built_before]
        versions_of = {p: ctx.archive.versions(p) for p in walk}
        # Periods certain to be built (new, or forced) have their content checked in worker
        # processes ahead of the walk; the walk itself only decides and keeps order.
        certain = [p for p in walk if p in requested and (force or p not in built_before)]
        is_certain = set(certain)
        # Most were prepared by the parse step; the rest are prepared in worker processes ahead of the walk.
        stored = ctx.prepared
        ready = {p: stored.get(prepared_key(p, versions_of[p])) for p in certain}
        missing = [p for p in certain if ready[p] is None]
        ahead = (
            prepare_in_parallel([(p, versions_of[p]) for p in missing], ctx.cache, ctx.matcher)
            if len(missing) >= PARALLEL_PREPARE_MIN_PERIODS
            else None
        )
        prepared: list[PreparedContent] = []
        snapshots: dict[str, Snapshot] = {}
        try:
            for period in walk:
                versions = versions_of[period]
                snapshot = prior.snapshot()
                if period not in is_certain:
                    # A period not asked for is rebuilt only when an earlier correction made it stale.
                    fingerprint = period_fingerprint(ctx, versions, prior.digests([snapshot])[0])
                    if built_before.get(period) == fingerprint and not (force and period in requested):
                        if period in requested:
                            result.skipped.append(period)
                        prior.advance(period)
                        continue
                content = ready.get(period)
                if content is None and ahead is not None and period in is_certain:
                    done, content = next(ahead)
                    assert done == period, (done, period)  # missing periods are built, in walk order
                if content is None and period not in is_certain:  # changed since its last build
                    content = stored.get(prepared_key(period, versions))
                if content is None:
                    parsed, _ = parse_all(jobs_for(versions), ctx.archive, ctx.cache, ctx.matcher, ctx.limits)
                    content = prepare_content(period, versions, parsed, ctx.register, ctx.matcher)
                prepared.append(content)
                snapshots[period] = snapshot
                prior.advance(period, content.unit_rows)
                crash_point("build_period_loaded")  # test-only: mid-build, nothing published
        finally:
            if ahead is not None:
                ahead.close()
        history = check_history(prepared, snapshots, prior, ctx.register)
        digests = prior.digests([snapshots[c.period] for c in prepared])
        pending = PendingRows()
        for content, digest in zip(prepared, digests):
            period = content.period
            shas = content.issues.keys()
            own_history = {sha: history.get((period, sha), []) for sha in shas}
            result.built.append(finish_period(content, versions_of[period], own_history, ctx.register, pending))
            fingerprint = period_fingerprint(ctx, versions_of[period], digest)
            record_build(pending, period, fingerprint, len(versions_of[period]), run_id)
        write_pending(con, pending)
        wh.refresh_marts(con, None if force else [c.period for c in prepared])
        result.check_results = warehouse_checks(con, periods)
        if preview is not None:  # from the build's own connection: what is about to be published
            result.overview = Overview(table_counts(con), summary_markdown(con, preview), refusals_markdown(con, preview))
    crash_point("published")  # test-only: warehouse published, reports not yet written
    return result


def warehouse_checks(con, periods: list[str]) -> dict[str, list[tuple[str, bool, str]]]:
    """Reconciliation and completeness checks: name → [(period, passed, detail)]."""
    out: dict[str, list[tuple[str, bool, str]]] = {}
    for name in ("province_equals_districts", "units_match_register", "complete", "no_refusals"):
        rows = con.execute(wh.sql(f"checks/{name}.sql"), {"periods": list(periods)}).fetchall()
        out[name] = [(r[0], bool(r[1]), r[2]) for r in rows]
    return out


def open_published(settings: Settings):
    return wh.connect_read_only(settings.warehouse)


def table_counts(con) -> dict[str, int]:
    """Rows per public table (for materialisation metadata): each asset is a whole table."""
    tables = {
        "audit_files": "audit.files",
        "audit_issues": "audit.issues",
        "unit_returns": "core.unit_returns",
        "district_summary": "marts.district_summary",
        "province_summary": "marts.province_summary",
        "unit_changes": "marts.unit_changes",
        "province_trend": "marts.province_trend",
    }
    return {name: con.execute(f"select count(*) from {table}").fetchone()[0] for name, table in tables.items()}


def summary_markdown(con, periods: list[str]) -> str:
    frame = con.execute(
        """
        select period, unit_type, units, units_with_cell, coverage_pct, cell_members, member_share_pct,
               cells_hd28, districts_reported, districts_expected, is_complete
        from marts.province_summary where list_contains($periods, period) order by period
        """,
        {"periods": periods},
    ).df()
    return _markdown(frame)


def refusals_markdown(con, periods: list[str]) -> str:
    frame = con.execute(
        """
        select f.period, f.file_name, f.district_code, count(i.code) as errors,
               any_value(i.message order by i.cell nulls first) as first_error
        from audit.files f
        left join audit.issues i on i.period = f.period and i.sha256 = f.sha256 and i.severity = 'error'
        where f.status = 'refused' and list_contains($periods, f.period)
        group by all order by f.period, f.file_name
        """,
        {"periods": periods},
    ).df()
    return "No refused files." if frame.empty else _markdown(frame)


def _markdown(frame: pd.DataFrame) -> str:
    cols = [str(c) for c in frame.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in frame.itertuples(index=False):
        lines.append("| " + " | ".join("" if pd.isna(v) else str(v).replace("|", "/") for v in row) + " |")
    return "\n".join(lines)
