"""`pipeline run`: materialise the assets through the Dagster job the UI shows."""

from __future__ import annotations

import os
import signal
import tempfile
import time
from dataclasses import dataclass, field

import pandas as pd

from pipeline.archive import Archive
from pipeline.config import Settings
from pipeline.ingest.discover import list_periods


CRASH_ENV = "PIPELINE_TEST_KILL_AT"


def crash_point(stage: str) -> None:
    """TEST-ONLY: die by SIGKILL here when PIPELINE_TEST_KILL_AT names this stage.

    tests/test_crash_safety.py kills a run at each named moment and checks that
    the next run gives exactly the figures of an uninterrupted one. Unset (as
    always outside that test) this is one dictionary lookup.
    """
    if os.environ.get(CRASH_ENV) == stage:
        os.kill(os.getpid(), signal.SIGKILL)


class RunError(Exception):
    """The pipeline could not run at all (as opposed to refusing some files)."""


@dataclass
class RunOutcome:
    settings: Settings
    periods: list[str]
    success: bool
    seconds: float
    summary: pd.DataFrame = field(default_factory=pd.DataFrame)
    files: pd.DataFrame = field(default_factory=pd.DataFrame)
    failure: str | None = None

    def render(self) -> str:
        from pipeline.reports.console import render_outcome

        return render_outcome(self)


def _check_writable(settings: Settings) -> None:
    folder = settings.warehouse.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        # Unnamed where the OS allows (O_TMPFILE): a run killed here leaves nothing behind.
        with tempfile.TemporaryFile(dir=folder, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise RunError(f"warehouse folder {folder} is not writable ({exc.strerror or exc})") from exc
    if settings.warehouse.exists() and not os.access(settings.warehouse, os.W_OK):
        raise RunError(f"warehouse {settings.warehouse} is not writable")


def periods_to_run(settings: Settings, period: str | None) -> list[str]:
    if not settings.raw_dir.is_dir():
        raise RunError(f"raw folder {settings.raw_dir} does not exist (set PIPELINE_RAW_DIR)")
    # Periods whose folder was removed still have their archived versions.
    known = sorted(set(list_periods(settings.raw_dir)) | set(Archive(settings.archive_dir).periods()))
    if period is not None:
        if period not in known:
            raise RunError(f"no folder {settings.raw_dir / period} (periods found: {', '.join(known) or 'none'})")
        return [period]
    if not known:
        raise RunError(f"no period folders (YYYY-MM) under {settings.raw_dir}")
    return known


def _instance():
    from dagster import DagsterInstance

    home = os.environ.get("DAGSTER_HOME")
    if home:
        os.makedirs(home, exist_ok=True)
        return DagsterInstance.get()
    return DagsterInstance.ephemeral()


def run_pipeline(
    settings: Settings, period: str | None = None, force: bool = False, quiet: bool = False, all_reports: bool = False
) -> RunOutcome:
    from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

    from pipeline.definitions import build_definitions
    from pipeline.defs.partitions import period_partitions

    periods = periods_to_run(settings, period)
    _check_writable(settings)
    started = time.monotonic()
    defs = build_definitions(settings)
    instance = _instance()
    existing = set(instance.get_dynamic_partitions(period_partitions.name))
    missing = [p for p in periods if p not in existing]
    if missing:
        instance.add_dynamic_partitions(period_partitions.name, missing)

    job = defs.resolve_job_def("refresh_periods")
    tags = {"source": "cli"}
    if len(periods) == 1:
        tags["period"] = periods[0]
        partition_key = periods[0]
    else:
        ordered = [p for p in instance.get_dynamic_partitions(period_partitions.name) if p in set(periods)]
        all_keys = instance.get_dynamic_partitions(period_partitions.name)
        if ordered == all_keys[all_keys.index(ordered[0]) : all_keys.index(ordered[-1]) + 1]:
            tags[ASSET_PARTITION_RANGE_START_TAG] = ordered[0]
            tags[ASSET_PARTITION_RANGE_END_TAG] = ordered[-1]
        else:  # pragma: no cover - keys added out of order; fall back to the whole range
            tags[ASSET_PARTITION_RANGE_START_TAG] = all_keys[0]
            tags[ASSET_PARTITION_RANGE_END_TAG] = all_keys[-1]
        tags["periods"] = f"{periods[0]}..{periods[-1]}"
        partition_key = None
    run_config = {
        "ops": {
            "warehouse": {"config": {"force": force}},
            **{
                op: {"config": {"force": force, **({"output_periods": 0} if all_reports else {})}}
                for op in ("province_report", "district_feedback")
            },
        },
        "loggers": {"console": {"config": {"log_level": "ERROR" if quiet else "INFO"}}},
    }
    result = job.execute_in_process(
        instance=instance, partition_key=partition_key, tags=tags, raise_on_error=False, run_config=run_config
    )
    outcome = RunOutcome(settings=settings, periods=periods, success=result.success, seconds=time.monotonic() - started)
    if not result.success:
        failures = [e for e in result.all_events if e.is_step_failure]
        outcome.failure = failures[0].step_failure_data.error.message.strip() if failures else "run failed"
    if settings.warehouse.exists():
        from pipeline.warehouse.build import connect_read_only

        con = connect_read_only(settings.warehouse)
        try:
            outcome.summary = con.execute(
                "select * from marts.province_summary where list_contains($p, period) order by period",
                {"p": periods},
            ).df()
            outcome.files = con.execute(
                "select period, status, count(*) as files from audit.files where list_contains($p, period) group by all order by all",
                {"p": periods},
            ).df()
        finally:
            con.close()
    return outcome
