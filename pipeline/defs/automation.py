"""What makes the pipeline run by itself: a sensor on the raw folder and a nightly schedule.

Sensor ``raw_folder_sensor`` (every ``PIPELINE_SENSOR_INTERVAL`` seconds, default 30):

* a new period folder ``YYYY-MM`` adds its dynamic partition ``period``;
* a period whose files were added, changed or deleted gets one run of
  ``refresh_periods`` for that period only, once the folder has settled: the
  listing must be identical on two consecutive ticks and its newest file must be
  older than ``PIPELINE_SENSOR_SETTLE_SECONDS`` (default 30), so a return still
  being copied from a USB stick or saved from an e-mail waits;
* junk (Office lock files, Thumbs.db, hidden files: ``discover.is_junk``) is not
  part of a period's state, so it never triggers anything.

The state of a period is a hash of its sorted (rel_path, size, mtime_ns) listing;
it is cheap (no file is read) and errs towards running: a file touched without
being changed costs one run whose warehouse build is skipped, because the
build fingerprints file contents (``audit.period_builds``).

The cursor is JSON: per period, ``built`` (the last state a run was requested
for) and ``seen`` (the listing observed on the previous tick). The run key is
``period:built_before:state``, so a state never runs twice from the same
starting point, yet a file changed and then changed back still runs again.

Schedule ``nightly_refresh`` (01:00 Asia/Ho_Chi_Minh): re-materialises the periods
whose current folder state differs from the state recorded on the newest run
that covered them (tags ``pipeline.raw_state/<period>``), or whose newest run
failed, or that were never run by the sensor or the schedule — all in one run
over a partition range (the assets use a single-run backfill policy).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from pipeline.defs.partitions import period_partitions
from pipeline.defs.resources import PipelineConfig
# Folder states live with the rest of what reads the raw folder (no Dagster there: `pipeline run` uses them too).
from pipeline.ingest.discover import EMPTY_STATE, FolderState, list_periods, listing_hash, observe, period_state  # noqa: F401

JOB_NAME = "refresh_periods"
STATE_TAG_PREFIX = "pipeline.raw_state/"
CURSOR_VERSION = 1
# Runs looked at when the schedule decides what is stale; far more than a year of sensor runs.
_RUN_HISTORY_LIMIT = 2000


def sensor_interval_seconds() -> int:
    return int(os.environ.get("PIPELINE_SENSOR_INTERVAL", "30"))


def settle_seconds() -> float:
    return float(os.environ.get("PIPELINE_SENSOR_SETTLE_SECONDS", "30"))


def state_tag(period: str) -> str:
    return f"{STATE_TAG_PREFIX}{period}"


# ---------------------------------------------------------------- sensor decision (no Dagster)


@dataclass
class TickPlan:
    new_partitions: list[str] = field(default_factory=list)
    runs: list[tuple[str, str, str]] = field(default_factory=list)  # (period, state, run_key)
    waiting: list[str] = field(default_factory=list)
    cursor: dict = field(default_factory=dict)


def load_cursor(text: str | None) -> dict:
    try:
        data = json.loads(text) if text else {}
    except ValueError:
        data = {}
    if not isinstance(data, dict) or data.get("version") != CURSOR_VERSION:
        return {"version": CURSOR_VERSION, "periods": {}}
    return data


def plan_tick(
    cursor: dict, observed: dict[str, FolderState], partitions: set[str], now: float, settle: float
) -> TickPlan:
    """Decide one sensor tick: partitions to add, runs to request, the next cursor."""
    previous = cursor.get("periods", {})
    plan = TickPlan(new_partitions=sorted(set(observed) - partitions))
    periods: dict[str, dict] = {}
    # A period whose folder disappeared is still watched: its deletion is a change to run.
    for period in sorted(set(observed) | set(previous)):
        entry = dict(previous.get(period, {"built": None, "seen": None}))
        folder = observed.get(period, FolderState(EMPTY_STATE, 0.0, 0))
        if period not in observed and (period not in partitions or entry.get("built") == EMPTY_STATE):
            continue  # gone and nothing left to do: forget it
        if folder.state != entry.get("built"):
            settled = folder.state == entry.get("seen") and now - folder.newest_mtime >= settle
            if settled:
                run_key = f"{period}:{entry.get('built') or 'new'}:{folder.state}"
                plan.runs.append((period, folder.state, run_key))
                entry["built"] = folder.state
            else:
                plan.waiting.append(period)
        entry["seen"] = folder.state
        periods[period] = entry
    plan.cursor = {"version": CURSOR_VERSION, "periods": periods}
    return plan


# ---------------------------------------------------------------- schedule decision (no Dagster)


def stale_periods(
    observed: dict[str, FolderState], last_runs: dict[str, tuple[str, bool]], now: float, settle: float
) -> list[str]:
    """Periods to rebuild tonight.

    ``last_runs`` maps a period to (state recorded on its newest run, that run succeeded or is
    still queued/running). A folder still being written is left to the sensor.
    """
    stale = []
    for period, folder in sorted(observed.items()):
        if folder.newest_mtime and now - folder.newest_mtime < settle:
            continue
        recorded = last_runs.get(period)
        if recorded is None or not recorded[1] or recorded[0] != folder.state:
            stale.append(period)
    return stale


# ---------------------------------------------------------------- Dagster wiring


@dg.sensor(
    job_name=JOB_NAME,
    minimum_interval_seconds=sensor_interval_seconds(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Watches the raw folder: a new period folder adds its partition; new, changed or deleted "
    "returns refresh that period once the files have stopped changing.",
)
def raw_folder_sensor(context: dg.SensorEvaluationContext, paths: PipelineConfig) -> dg.SensorResult:
    raw_dir = paths.settings().raw_dir
    if not raw_dir.is_dir():
        return dg.SensorResult(skip_reason=f"raw folder {raw_dir} does not exist", cursor=context.cursor)
    partitions = set(context.instance.get_dynamic_partitions(period_partitions.name))
    plan = plan_tick(load_cursor(context.cursor), observe(raw_dir), partitions, time.time(), settle_seconds())
    runs = [
        dg.RunRequest(
            run_key=run_key,
            partition_key=period,
            tags={"period": period, "source": "sensor", state_tag(period): state},
        )
        for period, state, run_key in plan.runs
    ]
    skip = None
    if not runs:
        skip = f"waiting for files to settle in {', '.join(plan.waiting)}" if plan.waiting else "no changes"
    return dg.SensorResult(
        run_requests=runs,
        dynamic_partitions_requests=[period_partitions.build_add_request(plan.new_partitions)] if plan.new_partitions else [],
        cursor=json.dumps(plan.cursor, sort_keys=True),
        skip_reason=skip,
    )


_IN_FLIGHT = {dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
              dg.DagsterRunStatus.STARTED}  # fmt: skip
# A run still "in flight" after this long was orphaned (its worker died with the daemon):
# the default run launcher cannot notice, so the schedule stops trusting it.
IN_FLIGHT_GRACE_SECONDS = 6 * 3600


def last_run_states(instance: dg.DagsterInstance, now: float) -> dict[str, tuple[str, bool]]:
    """Per period, the raw state recorded on the newest run that covered it, and whether that run is good."""
    found: dict[str, tuple[str, bool]] = {}
    records = instance.get_run_records(filters=dg.RunsFilter(job_name=JOB_NAME), limit=_RUN_HISTORY_LIMIT)  # newest first
    for record in records:
        run = record.dagster_run
        created = record.create_timestamp.timestamp()
        good = run.status == dg.DagsterRunStatus.SUCCESS or (
            run.status in _IN_FLIGHT and now - created < IN_FLIGHT_GRACE_SECONDS
        )
        for key, value in run.tags.items():
            if key.startswith(STATE_TAG_PREFIX):
                found.setdefault(key[len(STATE_TAG_PREFIX) :], (value, good))
    return found


def nightly_run_request(instance: dg.DagsterInstance, raw_dir: Path, now: float) -> dg.RunRequest | dg.SkipReason:
    periods = list_periods(raw_dir)
    if not periods:
        return dg.SkipReason(f"no period folders under {raw_dir}")
    observed = observe(raw_dir, periods)
    stale = stale_periods(observed, last_run_states(instance, now), now, settle_seconds())
    if not stale:
        return dg.SkipReason("every period is up to date")
    # Schedules cannot return partition requests; the sensor normally added them already.
    known = instance.get_dynamic_partitions(period_partitions.name)
    missing = [p for p in stale if p not in known]
    if missing:
        instance.add_dynamic_partitions(period_partitions.name, missing)
        known = instance.get_dynamic_partitions(period_partitions.name)
    if len(stale) == 1:
        period = stale[0]
        return dg.RunRequest(
            run_key=f"nightly:{period}:{observed[period].state}",
            partition_key=period,
            tags={"period": period, "source": "schedule", state_tag(period): observed[period].state},
        )
    # One run over the range that spans every stale period; fresh periods inside the range are
    # skipped cheaply by the warehouse build (same fingerprint), so one run beats many.
    positions = sorted(known.index(p) for p in stale)
    in_range = known[positions[0] : positions[-1] + 1]
    tags = {
        "source": "schedule",
        "periods": f"{in_range[0]}..{in_range[-1]}",
        ASSET_PARTITION_RANGE_START_TAG: in_range[0],
        ASSET_PARTITION_RANGE_END_TAG: in_range[-1],
    }
    for p in in_range:
        if p in observed:
            tags[state_tag(p)] = observed[p].state
    return dg.RunRequest(run_key="nightly:" + listing_hash(sorted((p, observed[p].state) for p in stale)), tags=tags)


@dg.schedule(
    job_name=JOB_NAME,
    cron_schedule="0 1 * * *",
    execution_timezone="Asia/Ho_Chi_Minh",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every night at 01:00: rebuild the periods whose returns changed, failed or were never built.",
)
def nightly_refresh(context: dg.ScheduleEvaluationContext, paths: PipelineConfig):
    return nightly_run_request(context.instance, paths.settings().raw_dir, time.time())
