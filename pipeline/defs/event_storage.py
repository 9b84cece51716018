"""Write a run's batches of asset events to Dagster's SQLite storage in one transaction each.

A run over many periods records one materialisation per partition and asset.
Dagster's SQLite event storage writes each event on its own: a new engine, two
connections and two commits (run shard and index shard), about 10 ms apiece —
for a backfill of 84 periods that alone costs more than parsing the returns.
Dagster already hands these events over as batches (one per asset and range)
when ``DAGSTER_EVENT_BATCH_SIZE`` is set, but the SQLite storage stores a batch
event by event. ``batch_sqlite_events`` gives the instance's storage a
``store_event_batch`` that writes the same rows (event log of the run shard,
event log, asset event tags and asset-key index of the index shard) once per
batch. Anything other than a batch of one run's asset events is left to
Dagster as it is.

The same storage also keeps one SQLite connection per shard (per thread) for
the instance's life instead of a new engine and connection for every read
and write: a run records a few dozen single events, each of which opened
about five connections (~1.5 ms apiece). Each use is still its own
transaction, so nothing is held between them; other processes (the UI, the
daemon) read and write the same files as before.

Instances on other storage (PostgreSQL in production) are left alone;
dagster is pinned exactly, so the private helpers used here are the ones the
tests exercise.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import sqlalchemy as db
from dagster._core.events import ASSET_EVENTS
from dagster._core.events.log import EventLogEntry
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage
from dagster._core.storage.sqlalchemy_compat import db_result
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS
from sqlalchemy.engine import Connection
from sqlalchemy.pool import SingletonThreadPool

# Large enough that a range of partitions is always one batch (Dagster flushes at its end).
EVENT_BATCH_SIZE = "100000"


def _batchable(events: Sequence[EventLogEntry]) -> bool:
    return (
        len(events) > 1
        and len({e.run_id for e in events}) == 1
        and all(e.is_dagster_event and e.dagster_event_type in ASSET_EVENTS and e.get_dagster_event().asset_key for e in events)
    )


class BatchedSqliteEventLogStorage(SqliteEventLogStorage):
    """SQLite event storage that stores a batch of one run's asset events in two transactions
    and keeps its connections open."""

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:
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
                if shard not in self._initialized_dbs:
                    self._initdb(engine)
                    self._initialized_dbs.add(shard)
                engines[shard] = engine
            with engine.connect() as conn:
                with conn.begin():
                    yield conn

    def dispose(self) -> None:
        for engine in self.__dict__.pop("_kept_engines", {}).values():
            engine.dispose()
        super().dispose()

    def store_event_batch(self, events: Sequence[EventLogEntry]) -> None:
        if not _batchable(events):
            super().store_event_batch(events)
            return
        with self.run_connection(events[0].run_id) as conn:
            conn.execute(self.prepare_insert_event_batch(events))
        with self.index_transaction() as conn:
            ids = []
            for event in events:  # one statement each: SQLite returns one inserted id per statement
                with db_result(conn, self.prepare_insert_event(event)) as result:
                    ids.append(result.inserted_primary_key[0])
            self._store_asset_event_tags(conn, events, ids)
            # The asset-key index keeps the latest event per asset: only the last one counts.
            latest = {e.get_dagster_event().asset_key: (e, i) for e, i in zip(events, ids)}
            for event, event_id in latest.values():
                self._store_asset_event(conn, event, event_id)


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

