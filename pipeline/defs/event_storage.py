"""Write a run's batches of events to Dagster's SQLite storage in one transaction per shard.

A run over many periods records one materialisation per partition and asset.
Dagster's SQLite event storage writes each event on its own: a new engine, two
connections and two commits (run shard and index shard), about 10 ms apiece —
for a backfill of 84 periods that alone costs more than parsing the returns.
Dagster already hands these events over as batches (one per asset and range)
when ``DAGSTER_EVENT_BATCH_SIZE`` is set, but the SQLite storage stores a batch
event by event. ``batch_sqlite_events`` gives the instance's storage a
``store_event_batch`` that writes the same rows as ``store_event`` would, event
by event (event log of the run shard; for asset, check and run-status events
the index shard's event log, asset event tags, asset-key index and check
executions), in one transaction per shard. A run's planned events (its assets'
and its checks') come as such a batch too. Anything other than a batch of one
run's events is left to Dagster as it is.

The same storage also keeps one SQLite connection per shard (per thread) for
the instance's life instead of a new engine and connection for every read
and write: a run records a few dozen single events, each of which opened
about five connections (~1.5 ms apiece). Each use is still its own
transaction, so nothing is held between them; other processes (the UI, the
daemon) read and write the same files as before. Its commits do not wait for
the disk (``_relaxed_sync``), and a table it has once seen is not looked up
again (``has_table``). A new run's shard is a copy of an empty shard made once
(``_shard_from_template``) instead of being created table by table: Dagster's
creation of its ~20 tables and indexes commits to disk several times, 30–150 ms
of every run here.

Instances on other storage (PostgreSQL in production) are left alone;
dagster is pinned exactly, so the private helpers used here are the ones the
tests exercise.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import sqlalchemy as db
from dagster import __version__ as DAGSTER_VERSION
from dagster._core.events import ASSET_EVENTS, EVENT_TYPE_TO_PIPELINE_RUN_STATUS
from dagster._core.events.log import EventLogEntry
from dagster._core.storage.event_log.sqlite.sqlite_event_log import INDEX_SHARD_NAME, SqliteEventLogStorage
from dagster._core.storage.event_log.sql_event_log import ASSET_CHECK_EVENTS
from dagster._core.storage.sqlalchemy_compat import db_result
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS
from sqlalchemy.engine import Connection
from sqlalchemy.pool import NullPool, SingletonThreadPool

from pipeline.archive import fsync_path

# Large enough that a range of partitions is always one batch (Dagster flushes at its end).
EVENT_BATCH_SIZE = "100000"


# What the SQLite storage mirrors into the index shard (see SqliteEventLogStorage.store_event).
_MIRRORED = ASSET_EVENTS | ASSET_CHECK_EVENTS | set(EVENT_TYPE_TO_PIPELINE_RUN_STATUS)


def _batchable(events: Sequence[EventLogEntry]) -> bool:
    return len(events) > 1 and len({e.run_id for e in events}) == 1 and bool(events[0].run_id)


class BatchedSqliteEventLogStorage(SqliteEventLogStorage):
    """SQLite event storage that stores a batch of one run's events in two transactions
    and keeps its connections open."""

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:
        # Within a batch, the index shard's writes (Dagster's own helpers among them) join its transaction.
        held = self.__dict__.get("_held_index")
        if held is not None and shard == INDEX_SHARD_NAME and held[0] == threading.get_ident():
            yield held[1]
            return
        # As SqliteEventLogStorage._connect, but the engine (and, through its pool, one connection
        # per thread) is made once per shard.
        with self._db_lock:
            engines = self.__dict__.setdefault("_kept_engines", {})
            engine = engines.get(shard)
            if engine is None:
                engine = db.create_engine(
                    self.conn_string_for_shard(shard),
                    poolclass=SingletonThreadPool,
                    connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS},
                )
                db.event.listen(engine, "connect", _relaxed_sync)
                if shard not in self._initialized_dbs and shard != INDEX_SHARD_NAME:
                    self._shard_from_template(shard)
                if shard not in self._initialized_dbs:
                    self._initdb(engine)
                    self._initialized_dbs.add(shard)
                    engine.dispose()  # a new shard is in WAL mode only now: reconnect to relax its syncing
                engines[shard] = engine
            with engine.connect() as conn:
                with conn.begin():
                    yield conn

    def _shard_from_template(self, shard: str) -> None:
        """Give a run shard that does not exist yet the tables of an empty one, by copying it.

        Dagster's ``_initdb`` still runs on the copy: it finds the schema stamped
        at its head revision and creates nothing (a template of another Dagster
        version is never used: the version is in its name). Any failure leaves
        the shard to Dagster's own creation.
        """
        target = self.path_for_shard(shard)
        if os.path.exists(target):
            return
        tmp = f"{target}.{os.getpid()}.part"
        try:
            template = self._run_shard_template()
            shutil.copyfile(template, tmp)
            fsync_path(tmp)  # SQLite's later commits assume the file they extend is on disk
            os.link(tmp, target)  # never over a shard that appeared meanwhile
        except (OSError, db.exc.SQLAlchemyError):  # the template's making failed too: Dagster makes the shard
            pass
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def _run_shard_template(self) -> str:
        """An empty run shard made by Dagster's own ``_initdb``, kept beside the shards (made once)."""
        # Not *.db: Dagster takes every *.db in the folder for a run's shard.
        path = os.path.join(self._base_dir, f".run-shard-template-{DAGSTER_VERSION}.sqlite")
        if os.path.exists(path):
            return path
        tmp = f"{path}.{os.getpid()}.part"
        engine = db.create_engine(f"sqlite:///{tmp}", poolclass=NullPool)
        try:
            self._initdb(engine)
            with engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            engine.dispose()
        try:
            if os.path.exists(f"{tmp}-wal") and os.path.getsize(f"{tmp}-wal"):
                raise OSError("the template's log was not folded into it")
            fsync_path(tmp)
            os.replace(tmp, path)
        finally:
            for leftover in (tmp, f"{tmp}-wal", f"{tmp}-shm"):
                if os.path.exists(leftover):
                    os.unlink(leftover)
        return path

    def has_table(self, table_name: str) -> bool:
        # Asked about thirty times a run, each time through a new engine and connection. Tables
        # are only ever added (by migrations), so one seen once is there for the storage's life.
        seen = self.__dict__.setdefault("_tables_seen", set())
        if table_name not in seen and super().has_table(table_name):
            seen.add(table_name)
        return table_name in seen

    def dispose(self) -> None:
        for engine in self.__dict__.pop("_kept_engines", {}).values():
            engine.dispose()
        super().dispose()

    def store_event_batch(self, events: Sequence[EventLogEntry]) -> None:
        """What ``store_event`` writes for each event, in one transaction per shard."""
        if not _batchable(events):
            super().store_event_batch(events)
            return
        with self.run_connection(events[0].run_id) as conn:
            conn.execute(self.prepare_insert_event_batch(events))
        mirrored = [e for e in events if e.is_dagster_event and e.dagster_event_type in _MIRRORED]
        if not mirrored:
            return
        with self.index_transaction() as conn:
            self.__dict__["_held_index"] = (threading.get_ident(), conn)
            try:
                # Index ids in event order, as when stored one by one.
                ids = [self._insert_index_event(conn, e) for e in mirrored]
                assets = [(e, i) for e, i in zip(mirrored, ids) if e.dagster_event_type in ASSET_EVENTS]
                if assets:
                    self._store_asset_event_tags(conn, [e for e, _ in assets], [i for _, i in assets])
                # The asset-key index keeps the latest event per asset: only the last one counts.
                latest = {e.get_dagster_event().asset_key: (e, i) for e, i in assets}
                for event, event_id in latest.values():
                    self._store_asset_event(conn, event, event_id)
                for event, event_id in zip(mirrored, ids):
                    if event.dagster_event_type in ASSET_CHECK_EVENTS:
                        self.store_asset_check_event(event, event_id)
            finally:
                del self.__dict__["_held_index"]

    def _insert_index_event(self, conn: Connection, event: EventLogEntry) -> int:
        # One statement each: SQLite returns one inserted id per statement.
        with db_result(conn, self.prepare_insert_event(event)) as result:
            return result.inserted_primary_key[0]


def _relaxed_sync(dbapi_connection, _record) -> None:
    """Commit without waiting for the disk, in WAL mode (which Dagster's SQLite storage sets).

    There a crash of the process loses nothing and a power cut at most the
    newest events, never the database; a run records a few dozen commits, each
    waiting ~1 ms for the disk otherwise. These are the run logs the UI shows;
    the warehouse is flushed to disk on its own.
    """
    if dbapi_connection.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal":
        dbapi_connection.execute("PRAGMA synchronous=NORMAL")


def batch_sqlite_events(instance) -> bool:
    """Make ``instance`` store event batches in one transaction when it uses plain SQLite storage.

    Returns whether it did. Also turns on the two Dagster switches that send
    batches: partition events of one output as one batch, and one planned event
    per asset for a run over a range of partitions (instead of one per
    partition). The latter means a failed ranged run does not mark each of its
    partitions failed; the run itself shows the failure.
    """
    os.environ.setdefault("DAGSTER_EVENT_BATCH_SIZE", EVENT_BATCH_SIZE)
    os.environ.setdefault("DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS", "1")
    storage = instance.event_log_storage
    if type(storage) is not SqliteEventLogStorage:
        return False
    # Same state, same files, one more method: swapping the class is enough.
    storage.__class__ = BatchedSqliteEventLogStorage
    return True


def remember_migration_scripts() -> None:
    """Read Dagster's migration scripts once per process, not once per storage opened.

    Opening the SQLite instance checks each storage's schema version against
    its migration scripts (alembic), and every check reads and executes the
    ~110 script files again: four times a run, ~0.06 s, a tenth of a warm
    one-file rerun. The scripts ship with the pinned Dagster and do not change
    while a process lives, so the directory read is kept, per configuration.
    """
    from alembic.script import ScriptDirectory

    if getattr(ScriptDirectory.from_config, "remembered", False):
        return
    original = ScriptDirectory.from_config.__func__
    kept: dict = {}

    def from_config(cls, config):
        key = (cls, config.config_file_name, config.get_alembic_option("script_location"))
        if key not in kept:
            kept[key] = original(cls, config)
        return kept[key]

    from_config.remembered = True
    from_config.original = original
    ScriptDirectory.from_config = classmethod(from_config)

