"""Batched SQLite event writes: a ranged run records exactly what Dagster's own storage would."""

import dagster as dg
import pytest
from dagster._core.storage.tags import ASSET_PARTITION_RANGE_END_TAG, ASSET_PARTITION_RANGE_START_TAG

from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

from pipeline.defs.event_storage import BatchedSqliteEventLogStorage, _batchable, batch_sqlite_events

PARTS = dg.DynamicPartitionsDefinition(name="p")
KEYS = [f"k{i:02d}" for i in range(12)]


@dg.asset(partitions_def=PARTS, backfill_policy=dg.BackfillPolicy.single_run())
def per_partition(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"partitions": len(context.partition_keys)})


@dg.asset(deps=[per_partition], check_specs=[dg.AssetCheckSpec("positive", asset="whole")])
def whole() -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"ok": True}, check_results=[dg.AssetCheckResult(check_name="positive", passed=True)])


def _run(instance: dg.DagsterInstance, keys: list[str]) -> dg.ExecuteInProcessResult:
    job = dg.define_asset_job("j", selection=dg.AssetSelection.all(), executor_def=dg.in_process_executor)
    defs = dg.Definitions(assets=[per_partition, whole], jobs=[job])
    instance.add_dynamic_partitions("p", KEYS)
    return defs.resolve_job_def("j").execute_in_process(
        instance=instance, tags={ASSET_PARTITION_RANGE_START_TAG: keys[0], ASSET_PARTITION_RANGE_END_TAG: keys[-1]}
    )


def _recorded(instance: dg.DagsterInstance) -> tuple:
    key = dg.AssetKey("per_partition")
    latest = instance.get_latest_materialization_event(key)
    records = instance.fetch_materializations(key, limit=100).records
    return (
        sorted(instance.get_materialized_partitions(key)),
        latest.dagster_event.partition if latest else None,
        sorted(r.partition_key for r in records),
        instance.get_latest_materialization_event(dg.AssetKey("whole")) is not None,
        # The check's execution: planned, then its evaluation (the UI's check view reads these rows).
        [
            (r.status, r.event.dagster_event_type if r.event else None)
            for r in instance.event_log_storage.get_asset_check_execution_history(
                dg.AssetCheckKey(dg.AssetKey("whole"), "positive"), limit=10
            )
        ],
    )


@pytest.fixture
def batching_env(monkeypatch):
    monkeypatch.delenv("DAGSTER_EVENT_BATCH_SIZE", raising=False)
    monkeypatch.delenv("DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS", raising=False)


def test_batched_storage_records_the_same_as_dagster(tmp_path, batching_env):
    (tmp_path / "plain").mkdir()
    (tmp_path / "batched").mkdir()
    with dg.DagsterInstance.local_temp(str(tmp_path / "plain")) as plain:
        assert _run(plain, KEYS[2:9]).success
        expected = _recorded(plain)
    with dg.DagsterInstance.local_temp(str(tmp_path / "batched")) as batched:
        assert batch_sqlite_events(batched)
        assert isinstance(batched.event_log_storage, BatchedSqliteEventLogStorage)
        calls = []
        original = BatchedSqliteEventLogStorage.store_event_batch

        def spy(self, events):
            # Not batchable: Dagster's own storage would write it event by event.
            calls.append((sorted({e.dagster_event_type.value for e in events}), _batchable(events)))
            return original(self, events)

        BatchedSqliteEventLogStorage.store_event_batch = spy
        try:
            assert _run(batched, KEYS[2:9]).success
        finally:
            BatchedSqliteEventLogStorage.store_event_batch = original
        assert _recorded(batched) == expected
        assert expected[0] == KEYS[2:9]
        assert expected[-1][0][0] == AssetCheckExecutionRecordStatus.SUCCEEDED
        # The planned events of the run (assets and the check) as one batch; the seven materialisations as another.
        assert (["ASSET_CHECK_EVALUATION_PLANNED", "ASSET_MATERIALIZATION_PLANNED"], True) in calls
        assert (["ASSET_MATERIALIZATION"], True) in calls
        # The UI's partition view reads the index shard: the status cache agrees.
        status = batched.get_status_by_partition(dg.AssetKey("per_partition"), KEYS, PARTS)
        assert [k for k, v in status.items() if v == dg.AssetPartitionStatus.MATERIALIZED] == KEYS[2:9]


def test_other_storage_is_left_alone(batching_env):
    with dg.DagsterInstance.ephemeral() as instance:
        assert not batch_sqlite_events(instance)
        assert type(instance.event_log_storage) is not BatchedSqliteEventLogStorage


def test_batched_storage_keeps_its_connections(tmp_path, batching_env, monkeypatch):
    from sqlite3 import dbapi2

    opened: list[str] = []
    real_connect = dbapi2.connect

    def connect(*args, **kwargs):
        opened.append(str(args[0] if args else kwargs.get("database")))
        return real_connect(*args, **kwargs)

    def connections(home, batched: bool) -> tuple[int, int]:
        home.mkdir()
        with dg.DagsterInstance.local_temp(str(home)) as instance:
            assert batch_sqlite_events(instance) if batched else True
            opened.clear()
            result = _run(instance, KEYS[:3])
            assert result.success
        runs = home / "history" / "runs"
        return opened.count(str(runs / f"{result.run_id}.db")), opened.count(str(runs / "index.db"))

    monkeypatch.setattr(dbapi2, "connect", connect)
    plain_run, plain_index = connections(tmp_path / "plain", batched=False)
    run_shard, index_shard = connections(tmp_path / "batched", batched=True)
    # One to create the shard, one kept for the run (the first predates WAL mode; see _relaxed_sync).
    assert run_shard == 2 and plain_run > 5  # Dagster's own: a connection per event written
    assert index_shard < plain_index  # the rest are Dagster's table probes, left as they are


def test_migration_scripts_are_read_once_per_process(tmp_path, monkeypatch):
    from alembic.script import ScriptDirectory

    from pipeline.defs.event_storage import remember_migration_scripts

    reads = []
    original = ScriptDirectory.__init__

    def counting_init(self, *args, **kwargs):
        reads.append(args[0] if args else kwargs.get("dir"))
        original(self, *args, **kwargs)

    # As before any run in this process (an earlier test may have filled the memory), restored after.
    plain = getattr(ScriptDirectory.from_config, "original", ScriptDirectory.from_config.__func__)
    monkeypatch.setattr(ScriptDirectory, "from_config", classmethod(plain))
    monkeypatch.setattr(ScriptDirectory, "__init__", counting_init)
    remember_migration_scripts()
    remember_migration_scripts()  # once is enough: not wrapped twice
    counts = []
    for home in ("a", "b"):  # two instances, each opening its run, event log and schedule storage
        monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / home))
        (tmp_path / home).mkdir()
        instance = dg.DagsterInstance.get()
        assert instance.get_runs() == []  # opened and usable
        instance.dispose()
        counts.append(len(reads))
    # Once per storage configuration (run, event log, schedule), however many instances are opened.
    assert 0 < counts[0] <= 3 and counts[1] == counts[0]


def test_commits_wait_for_the_disk_only_outside_wal_mode(tmp_path, batching_env):
    import sqlite3

    from pipeline.defs.event_storage import _relaxed_sync

    with dg.DagsterInstance.local_temp(str(tmp_path)) as instance:
        assert batch_sqlite_events(instance)
        assert _run(instance, KEYS[:2]).success
        storage = instance.event_log_storage
        run_id = instance.get_runs()[0].run_id
        for shard in ("index", run_id):  # both in WAL mode (Dagster sets it), so relaxed
            with storage._connect(shard) as conn:
                assert conn.exec_driver_sql("pragma journal_mode").fetchone()[0] == "wal"
                assert conn.exec_driver_sql("pragma synchronous").fetchone()[0] == 1  # NORMAL
    plain = sqlite3.connect(tmp_path / "rollback-journal.db")
    _relaxed_sync(plain, None)
    assert plain.execute("pragma synchronous").fetchone()[0] == 2  # FULL, as SQLite's default
    plain.close()


def test_tables_once_seen_are_not_looked_up_again(tmp_path, batching_env, monkeypatch):
    from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage

    looked_up = []
    real = SqliteEventLogStorage.has_table
    monkeypatch.setattr(SqliteEventLogStorage, "has_table", lambda self, name: looked_up.append(name) or real(self, name))
    with dg.DagsterInstance.local_temp(str(tmp_path)) as instance:
        assert batch_sqlite_events(instance)
        storage = instance.event_log_storage
        assert storage.has_table("asset_check_executions") and storage.has_table("asset_check_executions")
        assert not storage.has_table("no_such_table") and not storage.has_table("no_such_table")
        assert _run(instance, KEYS[:2]).success
    assert looked_up.count("asset_check_executions") == 1
    assert looked_up.count("no_such_table") == 2  # an absent table may yet be made: asked each time


def _schema(path) -> tuple:
    import sqlite3

    con = sqlite3.connect(path)
    try:
        tables = sorted(con.execute("select type, name, sql from sqlite_master where name not like 'sqlite_%'").fetchall())
        return tables, con.execute("select version_num from alembic_version").fetchall()
    finally:
        con.close()


def test_new_run_shards_are_copies_of_one_empty_shard_dagster_made(tmp_path, batching_env):
    (tmp_path / "plain").mkdir()
    (tmp_path / "batched").mkdir()
    with dg.DagsterInstance.local_temp(str(tmp_path / "plain")) as plain:
        assert _run(plain, KEYS[:2]).success
        made_by_dagster = plain.event_log_storage.path_for_shard(plain.get_runs()[0].run_id)
    with dg.DagsterInstance.local_temp(str(tmp_path / "batched")) as batched:
        assert batch_sqlite_events(batched)
        assert _run(batched, KEYS[:2]).success and _run(batched, KEYS[2:4]).success
        storage = batched.event_log_storage
        shards = [storage.path_for_shard(r.run_id) for r in batched.get_runs()]
        templates = list((tmp_path / "batched").rglob(".run-shard-template-*.sqlite"))
        assert len(templates) == 1 and sorted(storage.get_all_run_ids()) == sorted(r.run_id for r in batched.get_runs())
        assert _schema(templates[0]) == _schema(made_by_dagster)  # same tables, indexes and schema version
        for shard in shards:
            assert _schema(shard) == _schema(made_by_dagster)
        assert len(batched.all_logs(batched.get_runs()[0].run_id)) > 10  # and they hold the runs' events
    assert not [p for p in (tmp_path / "batched").rglob("*") if p.name.endswith(".part")]


def test_a_shard_is_made_by_dagster_when_the_template_cannot_be(tmp_path, batching_env, monkeypatch):
    def fail(self):
        raise OSError("disk full")

    monkeypatch.setattr(BatchedSqliteEventLogStorage, "_run_shard_template", fail)
    with dg.DagsterInstance.local_temp(str(tmp_path)) as instance:
        assert batch_sqlite_events(instance)
        assert _run(instance, KEYS[:2]).success
        run_id = instance.get_runs()[0].run_id
        assert len(instance.all_logs(run_id)) > 10
    assert not list(tmp_path.rglob(".run-shard-template-*"))
