"""`pipeline run`: materialise the assets through the Dagster job the UI shows."""

from __future__ import annotations

import gc
import os
import shutil
import signal
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

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
    unchanged: list[str] = field(default_factory=list)  # periods skipped: inputs as at the last run

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


def inputs_state(settings: Settings, periods: list[str]) -> dict[str, str]:
    """What each period's run depends on, read without opening a file: the
    folder listing (as the sensor sees it), the register and the code."""
    import hashlib

    from pipeline.ingest.discover import observe
    from pipeline.versions import OUTPUT_VERSION, PARSER_VERSION, build_code_version, file_digest

    register = file_digest(settings.register, settings.aliases)  # as flow.Context.register_fingerprint
    base = f"{register}:{build_code_version()}:{PARSER_VERSION}:{OUTPUT_VERSION}"
    observed = observe(settings.raw_dir, [p for p in periods if (settings.raw_dir / p).is_dir()])
    return {
        p: hashlib.sha256(f"{base}:{observed[p].state if p in observed else 'absent'}".encode()).hexdigest()
        for p in periods
    }


def _state_file(settings: Settings):
    return settings.output_dir / "last_run_inputs.json"


def _read_states(settings: Settings) -> dict[str, str]:
    import json

    try:
        return json.loads(_state_file(settings).read_text(encoding="utf-8")) if settings.warehouse.exists() else {}
    except (OSError, ValueError):
        return {}


def _write_states(settings: Settings, states: dict[str, str]) -> None:
    import json

    merged = {**_read_states(settings), **states}
    tmp = _state_file(settings).with_suffix(".tmp")
    tmp.write_text(json.dumps(merged, indent=1, sort_keys=True), encoding="utf-8")
    os.replace(tmp, _state_file(settings))


DAGSTER_HOME_SETTINGS = Path(__file__).with_name("defs") / "dagster_home.yaml"


def prepare_dagster_home(home: str | os.PathLike) -> None:
    """Create ``home`` and give it the project's instance settings when it has no dagster.yaml."""
    os.makedirs(home, exist_ok=True)
    target = Path(home) / "dagster.yaml"
    if target.exists():
        return
    tmp = target.with_name(f".dagster.yaml.{os.getpid()}")
    shutil.copyfile(DAGSTER_HOME_SETTINGS, tmp)
    try:
        os.link(tmp, target)  # never over a file that appeared meanwhile
    except FileExistsError:
        pass
    finally:
        tmp.unlink()


def _instance():
    from dagster import DagsterInstance

    from pipeline.defs.event_storage import batch_sqlite_events, remember_migration_scripts

    remember_migration_scripts()
    home = os.environ.get("DAGSTER_HOME")
    if home:
        prepare_dagster_home(home)
        instance = DagsterInstance.get()
    else:
        instance = DagsterInstance.ephemeral()
    # A run over many periods records events per period: written in batches, not one by one.
    batch_sqlite_events(instance)
    # The run's output is on the terminal that started it; a copy in the run history would cost
    # four helper processes a run (`tail` and an orphan watcher, a Python interpreter, for stdout
    # and for stderr). Runs the UI, sensor or schedule launch keep theirs.
    from dagster._core.storage.noop_compute_log_manager import NoOpComputeLogManager

    instance._compute_log_manager = NoOpComputeLogManager()
    instance._compute_log_manager.register_instance(instance)
    return instance


def run_pipeline(
    settings: Settings, period: str | None = None, force: bool = False, quiet: bool = False, all_reports: bool = False
) -> RunOutcome:
    # Until the run starts, this process imports Dagster and sets up the definitions: ~240,000
    # objects made to last, and none of them garbage. The cyclic collector's passes over them
    # as they are made free nothing and cost ~0.3 s of a fresh process, so it is paused until
    # they are frozen (below); the caller's setting is restored on the way out.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _run_pipeline(settings, period, force, quiet, all_reports)
    finally:
        (gc.enable if collecting else gc.disable)()


def _run_pipeline(settings: Settings, period: str | None, force: bool, quiet: bool, all_reports: bool) -> RunOutcome:
    periods = periods_to_run(settings, period)
    _check_writable(settings)
    started = time.monotonic()
    # A period whose folder, register and code are as at the last successful run
    # is not run again: no Dagster run, no per-partition events, nothing rewritten.
    states = inputs_state(settings, periods)
    previous = {} if force or all_reports else _read_states(settings)
    unchanged = [p for p in periods if previous.get(p) == states[p]]
    requested, periods = periods, [p for p in periods if p not in set(unchanged)]
    if not periods:
        outcome = RunOutcome(settings=settings, periods=requested, success=True, seconds=time.monotonic() - started)
        outcome.unchanged = unchanged
        _summarise(outcome, requested)
        return outcome
    from pipeline.reports import pdf

    # The run will end with reports: LibreOffice (lowest priority) starts while Dagster is
    # imported, not when the warehouse step begins (a one-file rerun ~0.25 s sooner).
    pdf.warm_up()
    # Dagster is imported only now: a run with nothing to do does not pay for it.
    from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

    from pipeline.definitions import build_definitions
    from pipeline.defs.partitions import period_partitions

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
        # One run over the span of the periods to run; fresh ones inside it are
        # skipped by the warehouse build's own fingerprint check.
        all_keys = instance.get_dynamic_partitions(period_partitions.name)
        positions = sorted(all_keys.index(p) for p in periods)
        tags[ASSET_PARTITION_RANGE_START_TAG] = all_keys[positions[0]]
        tags[ASSET_PARTITION_RANGE_END_TAG] = all_keys[positions[-1]]
        tags["periods"] = f"{periods[0]}..{periods[-1]}"
        partition_key = None
    run_config = {
        "ops": {
            "warehouse": {"config": {"force": force}},
            "reports": {"config": {"force": force, **({"output_periods": 0} if all_reports else {})}},
        },
        "loggers": {"console": {"config": {"log_level": "ERROR" if quiet else "INFO"}}},
    }
    # What is imported and set up so far (Dagster, pandas, the definitions: ~240,000
    # objects) outlives the run. Frozen out of the cyclic collector's sight for the
    # run, its full passes no longer walk it again and again while the run allocates
    # (84 periods: ~0.4 s less, the status overview alone 0.35 → 0.2 s); the run
    # itself is collected as usual. Unfrozen after, so a process that runs the
    # pipeline many times (tests) still collects whatever was garbage here.
    gc.freeze()
    gc.enable()
    try:
        result = job.execute_in_process(
            instance=instance, partition_key=partition_key, tags=tags, raise_on_error=False, run_config=run_config
        )
    finally:
        gc.unfreeze()
        pdf.cool_down()  # the LibreOffice started ahead, if the reports did not use it
        # Closes the run-log connections the event storage keeps open: the last one to close
        # folds SQLite's write-ahead log into the database and deletes it (left open, each
        # run would leave its ~1.4 MB log beside its ~0.1 MB shard for good).
        instance.dispose()
    outcome = RunOutcome(settings=settings, periods=requested, success=result.success, seconds=time.monotonic() - started)
    outcome.unchanged = unchanged
    if not result.success:
        failures = [e for e in result.all_events if e.is_step_failure]
        outcome.failure = failures[0].step_failure_data.error.message.strip() if failures else "run failed"
    else:
        _write_states(settings, {p: states[p] for p in periods})
    _summarise(outcome, requested)
    return outcome


def _summarise(outcome: RunOutcome, periods: list[str]) -> None:
    settings = outcome.settings
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
