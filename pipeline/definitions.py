"""The Dagster code location: every asset, check, job, schedule and sensor of the pipeline."""

from __future__ import annotations

import dagster as dg

from pipeline.config import Settings
from pipeline.defs import assets, automation
from pipeline.defs.resources import default_resources

# Materialise everything for the selected period(s): used by the CLI, the sensor and the schedule.
refresh_periods = dg.define_asset_job(
    "refresh_periods",
    selection=dg.AssetSelection.all(),
    description="Ingest, check, load and report the selected period(s).",
    # The steps form a chain and parsing fans out on its own; a process per step would only
    # add seconds of start-up each (the CLI runs in-process too).
    executor_def=dg.in_process_executor,
)


def build_definitions(settings: Settings | None = None) -> dg.Definitions:
    return dg.Definitions(
        assets=[assets.ingest, assets.warehouse, assets.reports],
        jobs=[refresh_periods],
        sensors=[automation.raw_folder_sensor],
        schedules=[automation.nightly_refresh],
        resources=default_resources(settings),
    )


defs = build_definitions()
