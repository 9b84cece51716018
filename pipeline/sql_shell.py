"""Read-only SQL on the published warehouse: one query, or an interactive prompt."""

from __future__ import annotations

import sys
from pathlib import Path

import duckdb

from pipeline.reports.console import table


def _connect(warehouse: Path) -> duckdb.DuckDBPyConnection:
    # Read-only: never blocks or is blocked by a run, which publishes by renaming a new file.
    return duckdb.connect(str(warehouse), read_only=True)


def run_query(warehouse: Path, query: str) -> int:
    con = _connect(warehouse)
    try:
        rel = con.sql(query)
        if rel is not None:
            print(table(rel.df()))
        return 0
    except duckdb.Error as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        con.close()


def interactive(warehouse: Path) -> int:
    print(f"Read-only SQL on {warehouse}. End statements with ';'. Ctrl-D to quit.")
    con = _connect(warehouse)
    buffer: list[str] = []
    try:
        while True:
            try:
                line = input("sql> " if not buffer else "...> ")
            except EOFError:
                print()
                return 0
            buffer.append(line)
            if not line.rstrip().endswith(";"):
                continue
            query, buffer = "\n".join(buffer), []
            try:
                rel = con.sql(query)
                if rel is not None:
                    print(table(rel.df()))
            except duckdb.Error as exc:
                print(f"error: {exc}")
    finally:
        con.close()
