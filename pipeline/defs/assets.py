"""Dagster assets: thin wrappers that call pipeline.flow and report what happened."""


import dagster as dg
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
    PARTITION_NAME_TAG,
)
from dagster_duckdb import DuckDBResource

from pipeline import flow
from pipeline.reports import pdf
from pipeline.defs.partitions import period_partitions, single_run
from pipeline.defs.resources import PipelineConfig
from pipeline.reports import outputs

OWNERS = ["team:ban-to-chuc"]
PREVIEW_PERIODS = 12  # logs and markdown previews show the newest periods of a run, not years of history
PARTITIONED = {"partitions_def": period_partitions, "backfill_policy": single_run}


def _periods(context: dg.AssetExecutionContext) -> list[str]:
    return sorted(context.partition_keys)


def _run_periods(context: dg.AssetExecutionContext) -> list[str] | None:
    """The periods a run was launched for, seen from an asset that is not partitioned.

    The warehouse, marts and reports hold every period, so they are one asset
    each rather than one per period: a rebuild of years of history then records
    a handful of events instead of thousands. They still work on the run's
    periods: its partition, or its range of partitions; None (a run launched
    on them alone) means every period.
    """
    tags = context.run.tags
    if PARTITION_NAME_TAG in tags:
        return [tags[PARTITION_NAME_TAG]]
    start, end = tags.get(ASSET_PARTITION_RANGE_START_TAG), tags.get(ASSET_PARTITION_RANGE_END_TAG)
    if start and end:
        keys = context.instance.get_dynamic_partitions(period_partitions.name)
        if start in keys and end in keys:
            return keys[keys.index(start) : keys.index(end) + 1]
    return None


RAW_RETURNS = dg.AssetSpec(
    "raw_returns",
    description="Every file dropped in data/raw/<period>/, copied into the content-addressed archive.",
    group_name="ingest", owners=OWNERS, kinds={"excel"},
)  # fmt: skip
PARSED_RETURNS = dg.AssetSpec(
    "parsed_returns",
    description="Each archived version read into typed unit rows (parsed in parallel, cached by content hash).",
    group_name="ingest", owners=OWNERS, kinds={"python"}, deps=[RAW_RETURNS],
)  # fmt: skip


@dg.multi_asset(name="ingest", specs=[RAW_RETURNS, PARSED_RETURNS], **PARTITIONED)
def ingest(context: dg.AssetExecutionContext, paths: PipelineConfig):
    """Archive the period folders' files and parse each new version; parsing starts as each period is archived."""
    ctx = flow.make_context(paths.settings())
    collected, done = flow.ingest_and_parse(ctx, _periods(context))
    rows = [(period, c.files_in_folder, c.new_versions, len(c.versions)) for period, c in collected.items()]
    # One log line and a short table: a materialisation per period carries this metadata,
    # so it must not grow with the number of periods in the run.
    lines = [f"{p}: {f} files, {n} new versions" for p, f, n, _ in rows]
    context.log.info("\n".join(lines[-PREVIEW_PERIODS:]) + (f"\n(+{len(lines) - PREVIEW_PERIODS} earlier periods)" if len(lines) > PREVIEW_PERIODS else ""))
    table = "| period | files in folder | new versions | versions seen |\n|---|---|---|---|\n" + "\n".join(
        f"| {p} | {f} | {n} | {v} |" for p, f, n, v in rows[-PREVIEW_PERIODS:]
    )
    yield dg.MaterializeResult(
        asset_key=RAW_RETURNS.key,
        metadata={
            "periods": len(rows),
            "files_in_folder": sum(r[1] for r in rows),
            "new_versions": sum(r[2] for r in rows),
            "versions": dg.MetadataValue.md(table),
        },
    )
    context.log.info(
        f"{done.versions} versions: {done.parsed_now} parsed now, {done.versions - done.parsed_now} from cache, "
        f"{done.unreadable} unreadable; {done.prepared_now} period(s) prepared for the warehouse"
    )
    yield dg.MaterializeResult(
        asset_key=PARSED_RETURNS.key,
        metadata={
            "versions": done.versions,
            "parsed_now": done.parsed_now,
            "from_cache": done.versions - done.parsed_now,
            "unreadable": done.unreadable,
        },
    )


class BuildConfig(dg.Config):
    force: bool = False  # rebuild periods (and their outputs) even when their inputs did not change
    # Reports and feedback for at most this many of the newest changed periods per run (0 = all):
    # a bulk rebuild of history writes the latest ones now, the rest with --all-reports.
    output_periods: int = 3


WAREHOUSE_TABLES = {
    "audit_files": (["audit", "files"], "warehouse", "One row per file version ever seen, with its status."),
    "audit_issues": (["audit", "issues"], "warehouse", "Every problem found in a return, in Vietnamese, with its cell."),
    "unit_returns": (["core", "unit_returns"], "warehouse", "One row per period and unit from the returns in effect."),
    "district_summary": (["marts", "district_summary"], "marts", "Per period and district: status and figures."),
    "province_summary": (["marts", "province_summary"], "marts", "Per period and unit type: the figures the Board publishes."),
    "unit_changes": (["marts", "unit_changes"], "marts", "Per unit and period: change against the unit's previous period."),
    "province_trend": (["marts", "province_trend"], "marts", "Province figures across periods."),
}
_KEYS = {name: dg.AssetKey(path) for name, (path, _, _) in WAREHOUSE_TABLES.items()}
_CHECKS = {
    "province_equals_districts": ("province_summary", "Province totals equal the sum over districts."),
    "units_match_register": ("unit_returns", "Each district in effect reports exactly the register's units."),
    "complete": ("province_summary", "Every expected district has a return in effect."),
    "no_refusals": ("audit_files", "No file of the period was refused."),
}


@dg.multi_asset(
    specs=[
        dg.AssetSpec(_KEYS[name], description=desc, group_name=group, owners=OWNERS, kinds={"duckdb"}, deps=[PARSED_RETURNS])
        for name, (_, group, desc) in WAREHOUSE_TABLES.items()
    ],
    check_specs=[dg.AssetCheckSpec(check, asset=_KEYS[asset], description=desc) for check, (asset, desc) in _CHECKS.items()],
)
def warehouse(context: dg.AssetExecutionContext, paths: PipelineConfig, config: BuildConfig):
    """Check every return, decide what is in effect, load DuckDB and publish it atomically."""
    ctx = flow.make_context(paths.settings())
    pdf.warm_up()  # runs not started by `pipeline run` (which warmed it already): the report PDFs come next
    scope = _run_periods(context)
    periods = scope if scope is not None else ctx.archive.periods()
    shown = periods[-PREVIEW_PERIODS:]
    result = flow.build_warehouse(ctx, periods, run_id=context.run.run_id, force=config.force, preview=shown)
    if result.built:
        shown_built = result.built[-PREVIEW_PERIODS:]
        context.log.info(
            "\n".join(f"{b.period}: {b.counts}" for b in shown_built)
            + (f"\n(+{len(result.built) - len(shown_built)} earlier periods)" if len(result.built) > len(shown_built) else "")
        )
    overview = result.overview
    built = [b.period for b in result.built]
    for name, key in _KEYS.items():
        metadata = {
            "dagster/row_count": overview.counts.get(name, 0),
            "periods_in_run": len(periods),
            "periods_built": len(built),
            "periods_unchanged": len(result.skipped),
            "built": ", ".join(built[-PREVIEW_PERIODS:]) + (f" (+{len(built) - PREVIEW_PERIODS} earlier)" if len(built) > PREVIEW_PERIODS else ""),
        }
        if name == "province_summary":
            metadata["preview"] = dg.MetadataValue.md(overview.summary_md)
        if name == "audit_issues":
            metadata["refusals"] = dg.MetadataValue.md(overview.refusals_md)
        yield dg.MaterializeResult(asset_key=key, metadata=metadata)
    for check, (asset, _) in _CHECKS.items():
        outcomes = result.check_results.get(check, [])
        failed = [(p, detail) for p, ok, detail in outcomes if not ok]
        yield dg.AssetCheckResult(
            asset_key=_KEYS[asset],
            check_name=check,
            passed=not failed,
            severity=dg.AssetCheckSeverity.WARN,
            # Every failing period (what needs attention), and the newest passing ones.
            metadata={p: detail for p, ok, detail in outcomes if not ok or p in shown},
        )


REPORT_ASSETS = {
    "province_report": (
        "The Board's Vietnamese report per period (Excel, and PDF when LibreOffice is installed).",
        ["province_summary", "district_summary"],
    ),
    "district_feedback": (
        "Per district with problems, a Vietnamese workbook listing what to fix; plus the status overview.",
        ["audit_issues", "audit_files"],
    ),
}


@dg.multi_asset(
    specs=[
        dg.AssetSpec(name, description=desc, group_name="reports", owners=OWNERS, kinds={"excel"}, deps=[_KEYS[d] for d in deps])
        for name, (desc, deps) in REPORT_ASSETS.items()
    ]
)
def reports(context: dg.AssetExecutionContext, paths: PipelineConfig, duckdb: DuckDBResource, config: BuildConfig):
    """Write the province reports and the district feedback of the periods this run changed."""
    settings = paths.settings()
    with duckdb.get_connection() as con:
        scope = _run_periods(context)
        periods = scope if scope is not None else [r[0] for r in con.execute("select period from audit.period_builds order by period").fetchall()]
        written = outputs.write_outputs(
            con, settings, periods, force=config.force, limit=config.output_periods, run_id=context.run.run_id
        )
    context.log.info(f"{len(written.reports)} report file(s), {len(written.feedback)} feedback workbook(s) written")
    if written.later:
        context.log.info(f"{len(written.later)} older period(s) left for `pipeline run --all-reports`: {written.later[0]}..{written.later[-1]}")
    yield dg.MaterializeResult(
        asset_key="province_report",
        metadata={"files": dg.MetadataValue.md("\n".join(f"- `{p}`" for p in written.reports) or "No report changed.")},
    )
    yield dg.MaterializeResult(asset_key="district_feedback", metadata={"workbooks": len(written.feedback)})
