"""The Dagster code location: every asset, check, job, schedule and sensor of the pipeline."""

from __future__ import annotations

import dagster as dg

from pipeline.config import Settings
from pipeline.defs import assets
from pipeline.defs.resources import default_resources

# Materialise everything for the selected period(s): used by the CLI, the sensor and the schedule.
refresh_periods = dg.define_asset_job(
    "refresh_periods",
    selection=dg.AssetSelection.all(),
    description="Ingest, check, load and report the selected period(s).",
)


def build_definitions(settings: Settings | None = None) -> dg.Definitions:
    return dg.Definitions(
        assets=[assets.raw_returns, assets.parsed_returns, assets.warehouse, assets.province_report, assets.district_feedback],
        jobs=[refresh_periods],
        resources=default_resources(settings),
    )


defs = build_definitions()
