"""Dagster assets: thin wrappers that call pipeline.flow and report what happened."""


import dagster as dg
from dagster_duckdb import DuckDBResource

from pipeline import flow
from pipeline.defs.partitions import period_partitions, single_run
from pipeline.defs.resources import PipelineConfig
from pipeline.reports import outputs

OWNERS = ["team:ban-to-chuc"]
PARTITIONED = {"partitions_def": period_partitions, "backfill_policy": single_run}


def _periods(context: dg.AssetExecutionContext) -> list[str]:
    return sorted(context.partition_keys)


@dg.asset(group_name="ingest", owners=OWNERS, kinds={"excel"}, **PARTITIONED)
def raw_returns(context: dg.AssetExecutionContext, paths: PipelineConfig) -> dg.MaterializeResult:
    """Every file dropped in data/raw/<period>/, copied into the content-addressed archive."""
    ctx = flow.make_context(paths.settings())
    rows = []
    for period in _periods(context):
        collected = flow.ingest(ctx, period)
        rows.append((period, collected.files_in_folder, collected.new_versions, len(collected.versions)))
        context.log.info(f"{period}: {collected.files_in_folder} files, {collected.new_versions} new versions")
    table = "| period | files in folder | new versions | versions seen |\n|---|---|---|---|\n" + "\n".join(
        f"| {p} | {f} | {n} | {v} |" for p, f, n, v in rows
    )
    return dg.MaterializeResult(
        metadata={
            "files_in_folder": sum(r[1] for r in rows),
            "new_versions": sum(r[2] for r in rows),
            "versions": dg.MetadataValue.md(table),
        }
    )


@dg.asset(group_name="ingest", owners=OWNERS, deps=[raw_returns], kinds={"python"}, **PARTITIONED)
def parsed_returns(context: dg.AssetExecutionContext, paths: PipelineConfig) -> dg.MaterializeResult:
    """Each archived version read into typed unit rows (parsed in parallel, cached by content hash)."""
    ctx = flow.make_context(paths.settings())
    results, parsed_now = flow.parse(ctx, _periods(context))
    unreadable = sum(1 for p in results.values() if p.rows is None)
    context.log.info(f"{len(results)} versions: {parsed_now} parsed now, {len(results) - parsed_now} from cache, {unreadable} unreadable")
    return dg.MaterializeResult(
        metadata={"versions": len(results), "parsed_now": parsed_now, "from_cache": len(results) - parsed_now, "unreadable": unreadable}
    )


class BuildConfig(dg.Config):
    force: bool = False  # rebuild periods (and their outputs) even when their inputs did not change
    # Reports and feedback for at most this many of the newest changed periods per run (0 = all):
    # a bulk rebuild of history writes the latest ones now, the rest with --all-reports.
    output_periods: int = 3


WAREHOUSE_TABLES = {
    "audit_files": (["audit", "files"], "One row per file version ever seen, with its status."),
    "audit_issues": (["audit", "issues"], "Every problem found in a return, in Vietnamese, with its cell."),
    "unit_returns": (["core", "unit_returns"], "One row per period and unit from the returns in effect."),
    "district_summary": (["marts", "district_summary"], "Per period and district: status and figures."),
    "province_summary": (["marts", "province_summary"], "Per period and unit type: the figures the Board publishes."),
    "unit_changes": (["marts", "unit_changes"], "Per unit and period: change against the unit's previous period."),
    "province_trend": (["marts", "province_trend"], "Province figures across periods."),
}
_KEYS = {name: dg.AssetKey(path) for name, (path, _) in WAREHOUSE_TABLES.items()}
_CHECKS = {
    "province_equals_districts": ("province_summary", "Province totals equal the sum over districts."),
    "units_match_register": ("unit_returns", "Each district in effect reports exactly the register's units."),
    "complete": ("province_summary", "Every expected district has a return in effect."),
    "no_refusals": ("audit_files", "No file of the period was refused."),
}


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            _KEYS[name], description=desc, group_name="warehouse", owners=OWNERS, kinds={"duckdb"}, deps=[parsed_returns]
        )
        for name, (_, desc) in WAREHOUSE_TABLES.items()
    ],
    check_specs=[dg.AssetCheckSpec(check, asset=_KEYS[asset], description=desc) for check, (asset, desc) in _CHECKS.items()],
    **PARTITIONED,
)
def warehouse(context: dg.AssetExecutionContext, paths: PipelineConfig, config: BuildConfig):
    """Check every return, decide what is in effect, load DuckDB and publish it atomically."""
    ctx = flow.make_context(paths.settings())
    periods = _periods(context)
    result = flow.build_warehouse(ctx, periods, run_id=context.run.run_id, force=config.force)
    for b in result.built:
        context.log.info(f"{b.period}: {b.counts}")
    con = flow.open_published(ctx.settings)
    try:
        counts = flow.table_counts(con, periods)
        summary_md = flow.summary_markdown(con, periods)
    finally:
        con.close()
    for name, key in _KEYS.items():
        metadata = {"dagster/row_count": counts.get(name, 0), "periods_built": len(result.built), "periods_unchanged": len(result.skipped)}
        if name == "province_summary":
            metadata["preview"] = dg.MetadataValue.md(summary_md)
        if name == "audit_issues":
            metadata["refusals"] = dg.MetadataValue.md(flow.refusals_markdown(ctx.settings, periods))
        yield dg.MaterializeResult(asset_key=key, metadata=metadata)
    for check, (asset, _) in _CHECKS.items():
        outcomes = result.check_results.get(check, [])
        yield dg.AssetCheckResult(
            asset_key=_KEYS[asset],
            check_name=check,
            passed=all(ok for _, ok, _ in outcomes),
            severity=dg.AssetCheckSeverity.WARN,
            metadata={p: detail for p, _, detail in outcomes},
        )


@dg.asset(
    group_name="reports",
    owners=OWNERS,
    deps=[_KEYS["province_summary"], _KEYS["district_summary"]],
    kinds={"excel"},
    **PARTITIONED,
)
def province_report(
    context: dg.AssetExecutionContext, paths: PipelineConfig, duckdb: DuckDBResource, config: BuildConfig
) -> dg.MaterializeResult:
    """The Board's Vietnamese report per period (Excel, and PDF when LibreOffice is installed)."""
    settings = paths.settings()
    with duckdb.get_connection() as con:
        periods = _periods(context)
        run_id = context.run.run_id
        _, later = outputs.periods_needing(con, settings.reports_dir, periods, config.force, config.output_periods, run_id)
        written = outputs.write_reports(
            con, settings, periods, force=config.force, limit=config.output_periods, run_id=run_id
        )
    context.log.info(f"{len(written)} report file(s) written; unchanged periods kept their reports")
    if later:
        context.log.info(f"{len(later)} older period(s) left for `pipeline run --all-reports`: {later[0]}..{later[-1]}")
    return dg.MaterializeResult(metadata={"files": dg.MetadataValue.md("\n".join(f"- `{p}`" for p in written))})


@dg.asset(group_name="reports", owners=OWNERS, deps=[_KEYS["audit_issues"], _KEYS["audit_files"]], kinds={"excel"}, **PARTITIONED)
def district_feedback(
    context: dg.AssetExecutionContext, paths: PipelineConfig, duckdb: DuckDBResource, config: BuildConfig
) -> dg.MaterializeResult:
    """Per district with problems, a Vietnamese workbook listing what to fix; plus the status overview."""
    settings = paths.settings()
    with duckdb.get_connection() as con:
        written = outputs.write_feedback(
            con, settings, _periods(context), force=config.force, limit=config.output_periods, run_id=context.run.run_id
        )
        written.append(outputs.write_overview(con, settings))
    return dg.MaterializeResult(metadata={"workbooks": len(written)})
