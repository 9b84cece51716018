"""Read-only SQL on the published warehouse: one query, or an interactive prompt.

The connection is always read-only. A run never waits for it (the run builds a
private copy and renames it over the file), and an analyst's slip such as
``delete from ...`` is refused by DuckDB instead of changing the warehouse.
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
import sys
from pathlib import Path
from typing import Any, TextIO

import duckdb

# Enough to see a result's shape; the rest is counted, not printed.
MAX_ROWS = 1000
_FLOAT_DIGITS = 6


def _connect(warehouse: Path) -> duckdb.DuckDBPyConnection:
    return duckdb.connect(str(warehouse), read_only=True)


def explain_error(exc: duckdb.Error) -> str:
    """The DuckDB message, preceded by a plain sentence when a statement tried to write."""
    text = str(exc)
    if "read-only mode" in text:
        return (
            "error: the warehouse is read-only here; statements that change it (insert, update, delete, "
            "create, drop, ...) are refused. `pipeline run` rebuilds it from the returns.\n"
            f"  ({text})"
        )
    return f"error: {text}"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, decimal.Decimal)) and not isinstance(value, bool)


def _decimals(value: float | decimal.Decimal) -> int:
    """Digits after the point needed to show ``value`` (shortest repr, capped)."""
    if isinstance(value, decimal.Decimal):
        exponent = value.normalize().as_tuple().exponent
        return min(max(0, -exponent), _FLOAT_DIGITS) if isinstance(exponent, int) else 0
    text = repr(float(value))
    if "e" in text or "E" in text:
        return _FLOAT_DIGITS
    return min(len(text.partition(".")[2].rstrip("0")), _FLOAT_DIGITS)


def _format_column(values: list[Any]) -> tuple[list[str], bool]:
    """Cell texts of one column and whether to right-align it.

    Numbers get thousands separators (``26,053``) and one number of decimals per
    column so the points line up; everything else is shown as DuckDB returns it.
    """
    numbers = [v for v in values if _is_number(v)]
    if numbers and len(numbers) == sum(v is not None for v in values):
        fractional = [v for v in numbers if not isinstance(v, int)]
        finite = [v for v in fractional if not (isinstance(v, float) and not math.isfinite(v))]
        digits = max((_decimals(v) for v in finite), default=0)
        if fractional and digits == 0:
            digits = 1  # 100.0 stays visibly a fraction, as in a percentage column
        out = []
        for v in values:
            if v is None:
                out.append("NULL")
            elif isinstance(v, int):
                out.append(f"{v:,}")
            elif isinstance(v, float) and not math.isfinite(v):
                out.append(str(v))
            else:
                out.append(f"{v:,.{digits}f}")
        return out, True
    out = []
    for v in values:
        if v is None:
            out.append("NULL")
        elif isinstance(v, bool):
            out.append("true" if v else "false")
        elif isinstance(v, (dt.datetime, dt.date, dt.time)):
            out.append(v.isoformat(sep=" ") if isinstance(v, dt.datetime) else v.isoformat())
        else:
            out.append(str(v).replace("\n", "\\n"))
    return out, False


def format_table(columns: list[str], rows: list[tuple], *, total: int | None = None) -> str:
    """An aligned text table with a row count, as analysts expect from a SQL prompt."""
    total = len(rows) if total is None else total
    formatted = [_format_column([r[i] for r in rows]) for i in range(len(columns))]
    widths = [max([len(name)] + [len(c) for c in cells]) for name, (cells, _) in zip(columns, formatted)]
    lines = [
        "  ".join(name.ljust(w) for name, w in zip(columns, widths)).rstrip(),
        "  ".join("-" * w for w in widths),
    ]
    for i in range(len(rows)):
        lines.append("  ".join(
            cells[i].rjust(w) if right else cells[i].ljust(w)
            for (cells, right), w in zip(formatted, widths)
        ).rstrip())
    count = f"({total} row{'s' if total != 1 else ''}"
    count += f", first {len(rows)} shown)" if total > len(rows) else ")"
    lines.append(count)
    return "\n".join(lines)


def execute(con: duckdb.DuckDBPyConnection, query: str, out: TextIO) -> None:
    """Run ``query`` (one or more statements) and print the last result, if it has rows."""
    cursor = con.execute(query)
    if cursor.description is None:
        return
    columns = [d[0] for d in cursor.description]
    rows = cursor.fetchmany(MAX_ROWS)
    total = len(rows)
    if total == MAX_ROWS:
        while chunk := cursor.fetchmany(10_000):
            total += len(chunk)
    print(format_table(columns, rows, total=total), file=out)


def run_query(warehouse: Path, query: str) -> int:
    """Print one query's result; exit status 1 when DuckDB refuses or fails it."""
    try:
        con = _connect(warehouse)
    except duckdb.Error as exc:
        print(explain_error(exc), file=sys.stderr)
        return 1
    try:
        execute(con, query, sys.stdout)
        return 0
    except duckdb.Error as exc:
        print(explain_error(exc), file=sys.stderr)
        return 1
    finally:
        con.close()


_HELP = """Statements end with ';'. Commands: .tables (public tables), .help, .quit (or Ctrl-D).
The connection shows the warehouse as it was when you connected; reconnect (restart) to see a newer run."""

_TABLES = """
select schema_name || '.' || table_name as "table", estimated_size as "rows (approx.)"
from duckdb_tables()
where schema_name in ('marts', 'core', 'audit')
order by schema_name = 'marts' desc, schema_name, table_name
"""


def interactive(warehouse: Path, stdin: TextIO | None = None) -> int:
    """A read-only prompt. With stdin not a terminal (a script piped in), no
    prompts are printed and the exit status is 1 if any statement failed."""
    stdin = stdin or sys.stdin
    tty = stdin.isatty()
    if tty:
        try:
            import readline  # noqa: F401  (line editing and history for input())
        except ImportError:  # pragma: no cover - not on every platform
            pass
        print(f"Read-only SQL on {warehouse}.\n{_HELP}")
    try:
        con = _connect(warehouse)
    except duckdb.Error as exc:
        print(explain_error(exc), file=sys.stderr)
        return 1
    failed = False
    buffer: list[str] = []

    def run(text: str) -> None:
        nonlocal failed
        try:
            execute(con, text, sys.stdout)
        except duckdb.Error as exc:
            failed = True
            print(explain_error(exc), file=sys.stderr if not tty else sys.stdout)
        # A program driving the prompt through a pipe waits for each answer.
        sys.stdout.flush()
        sys.stderr.flush()

    try:
        while True:
            if tty:
                try:
                    line = input("sql> " if not buffer else "...> ")
                except EOFError:
                    print()
                    break
                except KeyboardInterrupt:  # drop the statement being typed, as psql does
                    print()
                    buffer = []
                    continue
            else:
                line = stdin.readline()
                if not line:
                    break
                line = line.rstrip("\n")
            stripped = line.strip()
            if not buffer and stripped.startswith("."):
                command = stripped.split()[0].lower()
                if command in (".quit", ".exit", ".q"):
                    break
                if command == ".tables":
                    run(_TABLES)
                else:
                    print(_HELP)
                continue
            if not buffer and not stripped:
                continue
            buffer.append(line)
            if stripped.endswith(";"):
                text, buffer = "\n".join(buffer), []
                run(text)
        if any(part.strip() for part in buffer):  # a last statement without ';'
            run("\n".join(buffer))
    finally:
        con.close()
    return 1 if failed and not tty else 0
