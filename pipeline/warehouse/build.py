"""Build the warehouse in a private copy and publish it atomically.

A build copies the published file into ``.build/``, replaces the slices of the
periods being rebuilt (delete, then insert), refreshes the marts, checkpoints
and renames the copy over the published file. Readers holding the old file
keep their snapshot; a run killed at any moment leaves the published file as
it was, and the next build starts again from it (removing what the killed
run left in ``.build/``).

The published file never has a WAL beside it (builds checkpoint and close
before renaming; readers are read-only). Should one appear anyway (someone
wrote to the published file), it is folded in before the copy: left there, it
would be replayed onto the next published file, which it does not belong to.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import duckdb

from pipeline.archive import fsync_path
from pipeline.runner import crash_point

SQL_DIR = Path(__file__).with_name("sql")
MARTS = ("province_summary", "district_summary", "unit_changes", "province_trend", "hd28_cells")


def sql(name: str) -> str:
    return (SQL_DIR / name).read_text(encoding="utf-8")


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(sql("schema.sql"))


@contextmanager
def building(published: Path, work_dir: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection to a private copy of the warehouse, published on success.

    Builds are serialised by a lock file; readers are never waited for.
    """
    work_dir.mkdir(parents=True, exist_ok=True)
    published.parent.mkdir(parents=True, exist_ok=True)
    with open(work_dir / "build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for stale in work_dir.glob("*.duckdb*"):
            stale.unlink(missing_ok=True)  # left by a killed run; the published file is intact
        working = work_dir / f"{uuid.uuid4().hex}.duckdb"
        if published.exists():
            _fold_wal(published)
            shutil.copyfile(published, working)
        con = duckdb.connect(str(working))
        try:
            ensure_schema(con)
            yield con
            con.execute("checkpoint")
            con.close()
            fsync_path(working)
            crash_point("build_before_publish")  # test-only: built and durable, not yet published
            os.replace(working, published)
            fsync_path(published.parent)
        except BaseException:
            con.close()
            working.unlink(missing_ok=True)
            Path(f"{working}.wal").unlink(missing_ok=True)
            raise


def _fold_wal(published: Path) -> None:
    if Path(f"{published}.wal").exists():
        con = duckdb.connect(str(published))
        try:
            con.execute("checkpoint")
        finally:
            con.close()


def refresh_marts(con: duckdb.DuckDBPyConnection, periods: list[str] | None = None) -> None:
    """Recompute the marts after a build of ``periods`` (None: whole).

    A mart row depends on its own period and, through the changes since the
    previous period, on earlier ones, never on later ones: after a build of
    some periods, the rows from the earliest of them on are all that can
    differ. Replacing only those keeps a one-period rerun from rewriting (and
    checkpointing) years of history. Whole when every period was built or a
    mart table is missing (a new warehouse).
    """
    present = {r[0] for r in con.execute("select table_name from duckdb_tables() where schema_name = 'marts'").fetchall()}
    since = None
    if periods is not None and present.issuperset(MARTS):
        if not periods:
            return  # nothing built: nothing changed
        first = con.execute("select min(period) from core.district_returns").fetchone()[0]
        if first is not None and min(periods) > first:
            since = min(periods)
    for name in MARTS:
        refresh_mart(con, name, since)


def refresh_mart(con: duckdb.DuckDBPyConnection, name: str, since: str | None = None) -> None:
    """Make marts.<name> from its query (sql/marts/<name>.sql), or replace its rows from ``since`` on."""
    query = sql(f"marts/{name}.sql")  # a file of ours; the name is one of MARTS, values go in as parameters
    if since is None:
        con.execute(f"create or replace table marts.{name} as {query}", {"since": None})
    else:
        con.execute(f"delete from marts.{name} where period >= $since", {"since": since})
        con.execute(f"insert into marts.{name} by name {query}", {"since": since})


def connect_read_only(published: Path) -> duckdb.DuckDBPyConnection:
    return duckdb.connect(str(published), read_only=True)
