"""The raw-folder sensor and the nightly schedule, evaluated directly against an ephemeral instance."""

import json
import os
import time
from datetime import datetime, timezone

import dagster as dg
import pytest
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG
from dagster._core.test_utils import create_run_for_test

from pipeline.defs import automation
from pipeline.defs.automation import FolderState, plan_tick, stale_periods, state_tag
from pipeline.defs.resources import PipelineConfig
from pipeline.definitions import build_definitions

OLD = time.time() - 3600


@pytest.fixture(autouse=True)
def _settle(monkeypatch):
    monkeypatch.setenv("PIPELINE_SENSOR_SETTLE_SECONDS", "20")


@pytest.fixture
def raw(tmp_path):
    d = tmp_path / "raw"
    d.mkdir()
    return d


@pytest.fixture
def instance():
    # In memory: a sqlite-backed test instance costs ~1.5 s to set up.
    with dg.DagsterInstance.ephemeral() as inst:
        yield inst


def put(raw, rel, data=b"x", mtime=OLD):
    path = raw / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.utime(path, (mtime, mtime))
    return path


def paths(raw, tmp_path):
    return PipelineConfig(
        raw_dir=str(raw), warehouse=str(tmp_path / "w.duckdb"), register_csv=str(tmp_path / "u.csv"), aliases=str(tmp_path / "a.csv")
    )


class Sensor:
    """Ticks the sensor like the daemon does: the cursor and partition requests carry over."""

    def __init__(self, instance, raw, tmp_path):
        self.instance, self.resources, self.cursor = instance, {"paths": paths(raw, tmp_path)}, None

    def tick(self) -> dg.SensorResult:
        with dg.build_sensor_context(instance=self.instance, cursor=self.cursor, resources=self.resources) as ctx:
            result = automation.raw_folder_sensor(ctx)
        for request in result.dynamic_partitions_requests or []:
            self.instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
        self.cursor = result.cursor
        return result


def test_definitions_register_sensor_and_schedule():
    defs = build_definitions()
    sensor = defs.resolve_sensor_def("raw_folder_sensor")
    schedule = defs.resolve_schedule_def("nightly_refresh")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    assert schedule.cron_schedule == "0 1 * * *" and schedule.execution_timezone == "Asia/Ho_Chi_Minh"
    assert sensor.job_name == schedule.job_name == "refresh_periods"


def test_new_period_adds_partition_then_runs_once_settled(instance, raw, tmp_path):
    put(raw, "2016-06/a.xlsx")
    s = Sensor(instance, raw, tmp_path)
    first = s.tick()
    assert [r.partition_keys for r in first.dynamic_partitions_requests] == [["2016-06"]]
    assert first.run_requests == []  # seen once: wait one tick to be sure the copy is over
    second = s.tick()
    assert second.dynamic_partitions_requests == []
    [run] = second.run_requests
    assert run.partition_key == "2016-06"
    assert run.tags["period"] == "2016-06"
    assert run.tags[state_tag("2016-06")] in run.run_key
    assert s.tick().run_requests == []  # same state: nothing new
    assert json.loads(s.cursor)["periods"]["2016-06"]["built"] == run.tags[state_tag("2016-06")]


def test_growing_file_waits(instance, raw, tmp_path):
    path = put(raw, "2016-06/a.xlsx", b"12")
    s = Sensor(instance, raw, tmp_path)
    s.tick()
    put(raw, "2016-06/a.xlsx", b"1234")  # still being copied: size changed since last tick
    assert s.tick().run_requests == []
    os.utime(path, None)  # unchanged listing now, but written a moment ago
    assert s.tick().run_requests == []
    assert s.tick().run_requests == []
    os.utime(path, (OLD, OLD))
    s.tick()
    assert len(s.tick().run_requests) == 1


def test_changed_and_deleted_files_request_new_runs(instance, raw, tmp_path):
    put(raw, "2016-06/a.xlsx")
    b = put(raw, "2016-06/b.xlsx")
    s = Sensor(instance, raw, tmp_path)
    s.tick()
    [first] = s.tick().run_requests
    put(raw, "2016-06/a.xlsx", b"changed", mtime=OLD + 1)
    s.tick()
    [changed] = s.tick().run_requests
    assert changed.run_key != first.run_key
    b.unlink()
    s.tick()
    [deleted] = s.tick().run_requests
    assert len({first.run_key, changed.run_key, deleted.run_key}) == 3
    assert deleted.partition_key == "2016-06"


def test_change_back_to_an_earlier_state_runs_again(instance, raw, tmp_path):
    a = put(raw, "2016-06/a.xlsx")
    s = Sensor(instance, raw, tmp_path)
    s.tick()
    [first] = s.tick().run_requests
    extra = put(raw, "2016-06/b.xlsx")
    s.tick()
    s.tick()
    extra.unlink()
    s.tick()
    [back] = s.tick().run_requests
    assert back.tags[state_tag("2016-06")] == first.tags[state_tag("2016-06")]
    assert back.run_key != first.run_key  # a run key already used would be dropped by Dagster
    assert a.exists()


def test_junk_does_not_trigger(instance, raw, tmp_path):
    put(raw, "2016-06/a.xlsx")
    s = Sensor(instance, raw, tmp_path)
    s.tick()
    s.tick()
    put(raw, "2016-06/~$a.xlsx")
    put(raw, "2016-06/.DS_Store")
    put(raw, "2016-06/Thumbs.db")
    assert s.tick().run_requests == []
    assert s.tick().run_requests == []


def test_only_the_changed_period_runs_and_non_periods_are_ignored(instance, raw, tmp_path):
    put(raw, "2016-06/a.xlsx")
    put(raw, "2016-12/a.xlsx")
    put(raw, "misc/a.xlsx")
    s = Sensor(instance, raw, tmp_path)
    s.tick()
    assert sorted(r.partition_key for r in s.tick().run_requests) == ["2016-06", "2016-12"]
    put(raw, "2016-12/b.xlsx")
    s.tick()
    assert [r.partition_key for r in s.tick().run_requests] == ["2016-12"]
    assert sorted(instance.get_dynamic_partitions("period")) == ["2016-06", "2016-12"]


def test_missing_raw_folder_skips(instance, tmp_path):
    result = Sensor(instance, tmp_path / "nope", tmp_path).tick()
    assert result.run_requests == [] and "does not exist" in result.skip_reason.skip_message


def test_plan_tick_settle_window_and_bad_cursor():
    cursor = automation.load_cursor("not json")
    obs = {"2016-06": FolderState("s1", newest_mtime=100.0, files=1)}
    plan = plan_tick(cursor, obs, set(), now=105.0, settle=30)
    assert plan.new_partitions == ["2016-06"] and plan.runs == []
    plan = plan_tick(plan.cursor, obs, {"2016-06"}, now=110.0, settle=30)
    assert plan.runs == [] and plan.waiting == ["2016-06"]  # unchanged, but modified 10 s ago
    plan = plan_tick(plan.cursor, obs, {"2016-06"}, now=131.0, settle=30)
    assert [p for p, _, _ in plan.runs] == ["2016-06"]


def test_removed_period_folder_runs_once_then_is_forgotten():
    start = {"version": 1, "periods": {"2016-06": {"built": "s1", "seen": "s1"}}}
    plan = plan_tick(start, {}, {"2016-06"}, now=1000.0, settle=0)
    assert plan.runs == []  # seen once
    plan = plan_tick(plan.cursor, {}, {"2016-06"}, now=1000.0, settle=0)
    assert [p for p, _, _ in plan.runs] == ["2016-06"]
    plan = plan_tick(plan.cursor, {}, {"2016-06"}, now=1000.0, settle=0)
    assert plan.runs == [] and plan.cursor["periods"] == {}


# ------------------------------------------------------------------ schedule


def schedule_tick(instance, raw, tmp_path):
    # The schedule body; the decorated function is invoked once below (its context needs a
    # sqlite-backed instance, which is slow to set up).
    return automation.nightly_run_request(instance, raw, time.time())


def test_schedule_invocation_requests_unbuilt_period(raw, tmp_path):
    put(raw, "2016-06/a.xlsx")
    with dg.instance_for_test() as instance:
        with dg.build_schedule_context(
            instance=instance,
            scheduled_execution_time=datetime(2016, 7, 1, 18, tzinfo=timezone.utc),
            resources={"paths": paths(raw, tmp_path)},
        ) as ctx:
            result = automation.nightly_refresh(ctx)
        assert isinstance(result, dg.RunRequest) and result.partition_key == "2016-06"
        assert instance.get_dynamic_partitions("period") == ["2016-06"]


def test_schedule_skips_when_nothing_changed(instance, raw, tmp_path):
    put(raw, "2016-06/a.xlsx")
    state = automation.period_state(raw, "2016-06").state
    create_run_for_test(instance, job_name="refresh_periods", status=dg.DagsterRunStatus.SUCCESS, tags={state_tag("2016-06"): state})
    result = schedule_tick(instance, raw, tmp_path)
    assert isinstance(result, dg.SkipReason)


def test_schedule_one_period_changed(instance, raw, tmp_path):
    put(raw, "2016-06/a.xlsx")
    put(raw, "2016-12/a.xlsx")
    instance.add_dynamic_partitions("period", ["2016-06", "2016-12"])
    for p in ("2016-06", "2016-12"):
        tags = {state_tag(p): automation.period_state(raw, p).state}
        create_run_for_test(instance, job_name="refresh_periods", status=dg.DagsterRunStatus.SUCCESS, tags=tags)
    put(raw, "2016-12/b.xlsx")
    result = schedule_tick(instance, raw, tmp_path)
    assert isinstance(result, dg.RunRequest)
    assert result.partition_key == "2016-12" and result.tags["period"] == "2016-12"


def test_schedule_rebuilds_never_built_and_failed_periods_in_one_range_run(instance, raw, tmp_path):
    for p in ("2016-06", "2016-09", "2016-12"):
        put(raw, f"{p}/a.xlsx")
    instance.add_dynamic_partitions("period", ["2016-06", "2016-09"])  # 2016-12 not added yet
    good = automation.period_state(raw, "2016-09").state
    create_run_for_test(instance, job_name="refresh_periods", status=dg.DagsterRunStatus.SUCCESS, tags={state_tag("2016-09"): good})
    state = automation.period_state(raw, "2016-06").state
    create_run_for_test(instance, job_name="refresh_periods", status=dg.DagsterRunStatus.SUCCESS, tags={state_tag("2016-06"): state})
    create_run_for_test(instance, job_name="refresh_periods", status=dg.DagsterRunStatus.FAILURE, tags={state_tag("2016-06"): state})
    result = schedule_tick(instance, raw, tmp_path)
    assert isinstance(result, dg.RunRequest) and result.partition_key is None
    assert result.tags[ASSET_PARTITION_RANGE_START_TAG] == "2016-06"
    assert result.tags[ASSET_PARTITION_RANGE_END_TAG] == "2016-12"
    assert "2016-12" in instance.get_dynamic_partitions("period")
    assert {state_tag(p) for p in ("2016-06", "2016-09", "2016-12")} <= set(result.tags)


def test_stale_periods_leaves_folders_being_written_to_the_sensor():
    obs = {"a": FolderState("s", newest_mtime=995.0, files=1), "b": FolderState("s", newest_mtime=10.0, files=1)}
    assert stale_periods(obs, {}, now=1000.0, settle=30) == ["b"]
    assert stale_periods(obs, {"b": ("s", True)}, now=1000.0, settle=30) == []
    assert stale_periods(obs, {"b": ("s", False)}, now=1000.0, settle=30) == ["b"]


def test_schedule_trusts_a_running_run_only_for_a_while(instance, raw, tmp_path):
    put(raw, "2016-06/a.xlsx")
    state = automation.period_state(raw, "2016-06").state
    create_run_for_test(instance, job_name="refresh_periods", status=dg.DagsterRunStatus.STARTED, tags={state_tag("2016-06"): state})
    assert isinstance(automation.nightly_run_request(instance, raw, time.time()), dg.SkipReason)
    later = time.time() + automation.IN_FLIGHT_GRACE_SECONDS + 60  # orphaned by a daemon restart
    assert automation.nightly_run_request(instance, raw, later).partition_key == "2016-06"
